"""The request engine of the custom endpoints: encode → send → decode, for any row of the table.

:meth:`EndpointEngine.call_endpoint` is the one path every custom-endpoint
method of the client takes (:mod:`postdicom.endpoints` writes them out):

1. **encode** the values into the row's parameter header
   (:func:`postdicom.wire.encode_parameters`, which refuses bad input before
   anything is sent);
2. **split** a header over the safe size into several calls when the row says
   how (:class:`~postdicom.endpoint_row.Split`), or refuse it;
3. **send** each header with the row's retry rule: rows with a
   :class:`~postdicom.endpoint_row.Lookup` *look before they create again*
   (and look first when :attr:`EndpointEngine.repeating` says an earlier
   attempt may have reached the server);
4. **decode** the answer whatever its shape (:func:`postdicom.answers.read_answer`) into the
   row's model, merging split answers.

:meth:`EndpointEngine.stream_endpoint` takes the same path for a read whose
answer is a list, but hands each row on as the body arrives
(:mod:`postdicom.answer_stream`) instead of reading the answer whole.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from . import wire
from .answer_stream import AnswerRows, read_list
from .answers import read_answer
from .endpoint_row import A, Encoded, Endpoint, Reads, Safety
from .models import Answer, AnswerReading
from .errors import HeaderTooLargeError, PostDicomError, ProtocolError, TransportError, is_transient, server_did_not_act
from .retry import retry_scope
from .writes import note_write

if TYPE_CHECKING:
    from .http import HttpSession

log = logging.getLogger("postdicom.endpoints")


def _too_large(row: Endpoint[Any], size: int, limit: int, why: str) -> HeaderTooLargeError:
    return HeaderTooLargeError(
        f"{row.vendor_name}: the {row.header} header would be {size} bytes, over the safe"
        f" {limit} (set {wire.MAX_HEADER_ENV} to change it); {why}"
    )


NO_DUPLICATE_PROTECTION = "duplicate protection was not available for this call (its lookup failed)"
"""Warning carried by an answer whose look-before-create lookup could not be made (tasks log it)."""


def _guarded(row: Endpoint[Any], what: str, lookup: Callable[[], Any]) -> tuple[bool, Any]:
    """Run a helper lookup; ``(False, None)`` when it failed transiently or could not read its answer.

    A lookup must never be the reason the call it protects fails. Other errors
    (authentication, a refused request) would fail that call too: raised.
    """
    try:
        return True, lookup()
    except PostDicomError as exc:
        if not (isinstance(exc, ProtocolError) or is_transient(exc)):
            raise
        log.warning("%s: %s failed (%s); %s", row.vendor_name, what, type(exc).__name__, NO_DUPLICATE_PROTECTION)
        return False, None


def _unprotected(row: Endpoint[A], answer: A) -> A:
    """``answer`` of a call sent without its lookup; a create's answer says so."""
    if row.safety is Safety.LOOK_BEFORE_CREATE:
        answer.reading.warnings.append(NO_DUPLICATE_PROTECTION)
    return answer


def _chain_first(first: Answer, rest: Iterator[Answer]) -> Iterator[Answer]:
    yield first
    yield from rest


class EndpointEngine:
    """Sends any row of :data:`~postdicom.endpoint_table.ENDPOINTS`; part of :class:`~postdicom.PostDicomClient`.

    Needs ``self._http`` (an :class:`~postdicom.http.HttpSession`). The
    lookups of the table call the client's own read methods, so the engine
    only works as part of the client (:class:`~postdicom.endpoints.CustomEndpointsMixin`).
    """

    _http: HttpSession

    max_parameter_header_bytes: int | None = None
    """Safe size of a parameter header; ``None`` means ``POSTDICOM_MAX_HEADER_BYTES`` or 8 KiB."""

    repeating: bool = False
    """``True`` when this client repeats work an earlier attempt may already have done
    (a Prefect task retry builds such a client): calls whose row has a lookup look
    before sending anything."""

    def call_endpoint(self, row: Endpoint[A], values: Mapping[str, Any]) -> A:
        """Validate, encode and send one call of any row, honouring its retry safety.

        Parameters
        ----------
        row:
            The :class:`~postdicom.endpoint_row.Endpoint` to call.
        values:
            Parameter values by Python name; absent or ``None`` means not given.

        Returns
        -------
        Answer
            The row's answer model (merged, if the call was split).

        Raises
        ------
        postdicom.errors.ValidationError
            A value is missing or malformed, or the header is too large and
            cannot be split; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached.
        """
        plan = self._plan(row, values)
        answers = [self._send(row, encoded) for encoded in plan]
        if len(answers) == 1:
            return answers[0]
        assert row.split is not None
        log.info("%s: header over the safe size, sent as %d calls", row.vendor_name, len(answers))
        return row.answer.model_validate(row.split.merge(answers))

    def stream_endpoint(self, row: Endpoint[Any], values: Mapping[str, Any]) -> AnswerRows[Any]:
        """Validate, encode and send one call of a list-answer read; its rows handed on as they arrive.

        The same path as :meth:`call_endpoint` (the same checks before
        anything is sent, the same split of an over-sized header, the same
        shapes read) without holding the answer: each row is handed on once
        its JSON has arrived (:mod:`postdicom.answer_stream`). Until the first
        row of a request is handed on, a lost connection is tried again with
        the session's retry policy and budget, as a read answer would be;
        after it, it is raised (the caller has rows of an answer it will not
        get whole). The rows of split calls are handed on once each
        (``row.split.row_key``), in the order received.

        Parameters
        ----------
        row:
            A :attr:`~postdicom.endpoint_row.Safety.READ` row whose answer is a list.
        values:
            Parameter values by Python name; absent or ``None`` means not given.

        Returns
        -------
        AnswerRows
            The rows (iterate once; close it, or use ``with``, to stop early).

        Raises
        ------
        postdicom.errors.ValidationError
            A value is missing or malformed, or the header is too large and
            cannot be split; nothing was sent (raised here, not when iterating).
        postdicom.errors.PostDicomError
            While iterating: the server refused the call, could not be reached,
            or its answer cannot be read.
        """
        if row.safety is not Safety.READ or not row.answer.list_key:
            raise TypeError(f"{row.vendor_name} is not a read answering a list: call it with call_endpoint")
        plan = self._plan(row, values)
        if len(plan) > 1:
            log.info("%s: header over the safe size, sent as %d calls", row.vendor_name, len(plan))
        reading = AnswerReading()
        return AnswerRows(self._stream_plan(row, plan, reading), reading)

    def _stream_plan(
        self, row: Endpoint[Any], plan: list[Encoded], reading: AnswerReading
    ) -> Generator[Answer, None, None]:
        """The rows of every call of ``plan``, each row once."""
        key = row.split.row_key if row.split is not None and len(plan) > 1 else None
        seen: set[Any] = set()
        for encoded in plan:
            with self._open_list(row, encoded, reading) as rows:
                for found in rows:
                    if key is not None:
                        identity = key(found)
                        if identity is not None and identity in seen:
                            continue
                        seen.add(identity)
                    yield found

    @contextlib.contextmanager
    def _open_list(self, row: Endpoint[Any], encoded: Encoded, reading: AnswerReading) -> Iterator[Iterator[Answer]]:
        """One call sent and read up to its first row, tried again as a read answer would be until then."""
        with retry_scope(self._http.retry) as budget:
            while True:
                opened = contextlib.ExitStack()
                try:
                    response = opened.enter_context(
                        self._http.stream("GET", row.path, headers=self._headers(row, encoded), json_answer=True)
                    )
                    rows = read_list(row, response, self._http.limits.max_json_bytes, reading)
                    first = next(rows, None)
                    break
                except TransportError as failure:
                    opened.close()
                    self._http.wait_before_retry(budget, None, failure)
                except BaseException:
                    opened.close()
                    raise
        with opened:
            yield rows if first is None else _chain_first(first, rows)

    @staticmethod
    def _headers(row: Endpoint[Any], encoded: Encoded) -> dict[str, str]:
        """The request headers of one call: its parameter header."""
        return {row.header: wire.header_value(encoded)}

    def _header_limit(self) -> int:
        return self.max_parameter_header_bytes or wire.max_header_bytes()

    def _plan(self, row: Endpoint[A], values: Mapping[str, Any]) -> list[Encoded]:
        """The header objects to send: one, or several when an over-sized call can be split."""
        limit = self._header_limit()
        # A generator would be spent by the first encoding, before a split reads it again.
        values = {k: list(v) if isinstance(v, Iterator) else v for k, v in values.items()}

        def fits(encoded: Encoded) -> bool:
            return wire.header_size(row.header, wire.header_value(encoded)) <= limit

        encoded = wire.encode_parameters(row.params, values)
        if fits(encoded):
            return [encoded]
        size = wire.header_size(row.header, wire.header_value(encoded))
        if row.split is None:
            raise _too_large(row, size, limit, row.too_large)
        name = row.split.param

        def with_items(items: list[Any]) -> Encoded:
            return wire.encode_parameters(row.params, {**values, name: items})

        single = f"even one item of {name} does not fit with the other values"
        chunks: list[list[Any]] = []
        current: list[Any] = []
        for item in values.get(name) or []:
            if fits(with_items([*current, item])):
                current.append(item)
            elif current and fits(with_items([item])):
                chunks.append(current)
                current = [item]
            else:
                raise _too_large(row, size, limit, single)
        if not current:
            raise _too_large(row, size, limit, single)
        chunks.append(current)
        return [with_items(chunk) for chunk in chunks]

    def _send(self, row: Endpoint[A], encoded: Encoded) -> A:
        """Send one header object with the row's retry rule (look before create where the row can).

        A lookup only protects the call from duplicates: when it fails
        transiently or cannot read its answer, the call is still sent once,
        with :data:`NO_DUPLICATE_PROTECTION` on its answer (never again blind
        after an attempt that may have reached the server).
        """
        look = row.lookup if row.lookup is not None and row.lookup.applies(encoded) else None
        if look is None:
            # Reads and idempotent writes: the HTTP layer repeats transient failures.
            # Creates without a usable lookup: it repeats only what never left, 429s and 503s with Retry-After.
            return self._exchange(row, encoded, idempotent=row.safety.repeatable)
        # The engine is always part of the client, whose methods the lookups call.
        client = cast(Reads, self)
        # One logical call: the lookups and every try of the create share one retry budget.
        with retry_scope(self._http.retry) as budget:
            before = None
            first_look = look.before
            if first_look is not None and not self.repeating:
                looked, before = _guarded(row, "looking before the first attempt", lambda: first_look(client, encoded))
                if not looked:
                    return _unprotected(row, self._exchange(row, encoded, idempotent=row.safety.repeatable))
            first = True
            error: PostDicomError | None = None
            while True:
                if self.repeating or not first:
                    looked, found = _guarded(
                        row, "looking for an earlier attempt", lambda: look.find(client, encoded, before)
                    )
                    if not looked:
                        if error is not None:
                            raise error  # sent once already, and it may have arrived: not sent blind again
                        return _unprotected(row, self._exchange(row, encoded, idempotent=row.safety.repeatable))
                    if found is not None:
                        log.info("%s: an earlier attempt had already done it; not sent again", row.vendor_name)
                        return found
                first = False
                try:
                    answer = self._exchange(row, encoded, idempotent=False)
                except PostDicomError as exc:
                    # 429, 503 + Retry-After: the HTTP layer already waited and retried as long as the budget allows.
                    if server_did_not_act(exc) or not is_transient(exc):
                        raise
                    delay = budget.next_wait(getattr(exc, "retry_after", None))
                    if delay is None:
                        raise
                    error = exc
                    log.info(
                        "%s may have reached the server (%s); looking before trying again in %.2fs",
                        row.vendor_name,
                        type(exc).__name__,
                        delay,
                    )
                    time.sleep(delay)
                    continue
                if answer.reading.empty and row.safety is Safety.LOOK_BEFORE_CREATE:
                    # A create that answered nothing: what it made is found the way a retry would find it.
                    looked, found = _guarded(
                        row, "finding what an empty answer created", lambda: look.find(client, encoded, before)
                    )
                    if looked and found is not None:
                        found._reading = answer.reading
                        answer.reading.fallbacks.append("empty create answer completed by a lookup")
                        return found
                return answer

    def _exchange(self, row: Endpoint[A], encoded: Encoded, *, idempotent: bool) -> A:
        """One GET with the parameter header; the answer parsed into the row's model."""
        if row.safety is not Safety.READ:
            note_write()
        response = self._http.request("GET", row.path, headers=self._headers(row, encoded), idempotent=idempotent)
        return cast(A, read_answer(row, response, encoded, writes=row.safety is not Safety.READ))
