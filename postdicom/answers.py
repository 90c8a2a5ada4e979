"""Reading a custom endpoint's answer whatever its overall shape.

The vendor documents parameters, not answers (``docs/api-answers.md`` is our
guess), so an answer is read in two steps: this module finds the answer
object inside whatever the server sent, then :mod:`postdicom.models` reads its
keys and values tolerantly. Accepted, besides the documented object:

- a bare JSON array for a list answer (SearchFolder, GetPatientOrderList,
  GetDicomTagContent), or the list under another key (``{"Folders": [...]}``);
- the answer inside an envelope: ``{"Data": ...}``, ``{"Result": ...}``,
  ``{"d": ...}`` (ASP.NET), ``{"Value": ...}`` ... possibly with status keys
  beside it (``Success``, ``Message``), or under a single other key;
- the answer as a JSON string holding JSON; a UTF-8 byte-order mark;
- an object answer sent as a one-element array; ``null`` or an empty body for
  a list answer (an empty list);
- an empty body on success for a write (the answer is then what the request
  asked for, see :meth:`postdicom.models.Answer.from_request`);
- an ``X-Error-Reason`` header on a success answer (the vendor's sample prints
  it on every answer): still a success, noted.

Every fallback is noted on the answer (``answer.reading``), so
``postdicom-flows check`` can report what a real account sends. An answer
that cannot be read raises :class:`~postdicom.errors.UnreadableAnswerError`
naming the endpoint and the expected shape and quoting the first bytes of the
body with every value masked (keys and structure only: answers carry patient
data and share links). A success answer whose envelope or ``Error`` key says
the call failed raises :class:`~postdicom.errors.FailedAnswerError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, NoReturn, Protocol

import httpx

from . import json_text
from .errors import FailedAnswerError, UnreadableAnswerError
from .answer_fields import NOTES, key_form
from .models import Answer, AnswerReading

log = logging.getLogger("postdicom.answers")

EXCERPT_BYTES = 200
"""How much of an unreadable body an error quotes (values masked)."""

ENVELOPE_KEYS = frozenset(
    key_form(k) for k in ("Data", "Result", "Results", "d", "Value", "Payload", "Response", "Content", "Body", "Item")
)
"""Keys under which a .NET service may wrap its real answer (compared as :func:`key_form`)."""

STATUS_KEYS = frozenset(
    key_form(k)
    for k in (
        "Success", "IsSuccess", "Succeeded", "Successful", "Ok", "Status", "StatusCode", "Code",
        "Message", "Messages", "Error", "Errors", "ErrorMessage", "ErrorCode", "HasError", "IsError",
        "Warnings", "Count", "TotalCount", "Total",
    )
)
"""Keys an envelope may carry beside the answer; they never count as the answer itself."""

_SUCCESS_FLAGS = frozenset(key_form(k) for k in ("Success", "IsSuccess", "Succeeded", "Successful", "Ok"))
_ERROR_FLAGS = frozenset(key_form(k) for k in ("HasError", "IsError"))
_ERROR_TEXTS = frozenset(key_form(k) for k in ("Error", "ErrorMessage", "Message", "Errors"))
_MAX_UNWRAP = 4


class AnsweringRow(Protocol):
    """What :func:`read_answer` needs of an endpoint row (see :class:`postdicom.endpoint_row.Endpoint`)."""

    @property
    def vendor_name(self) -> str: ...

    @property
    def answer(self) -> type[Answer]: ...


def expected_shape(model: type[Answer]) -> str:
    """The documented shape of ``model`` in words, for error messages."""
    if model.list_key:
        return f'{{"{model.list_key}": [...]}} or a bare array of objects'
    keys = ", ".join(model.documented_keys()[:4])
    return f"an object with {keys} ..."


def masked_excerpt(body: bytes, limit: int = EXCERPT_BYTES) -> str:
    """The first ``limit`` bytes of ``body`` with every value masked: keys and structure only.

    JSON strings that are not keys become ``"…"``, numbers ``0``; in any
    other text, URLs and runs of four or more digits are masked. Answers hold
    patient names, identifiers and share links, and this text goes into
    exception messages and logs.
    """
    if not body.strip():
        return "(nothing)"
    text = body[:limit].decode("utf-8", errors="replace")
    cut = "…" if len(body) > limit else ""
    if text.lstrip("\ufeff \r\n\t")[:1] in ("{", "[", '"'):
        token = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?|"[^"]*$|(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')

        def mask(match: re.Match[str]) -> str:
            if match.group(1):
                return match.group(0)  # a key
            return '"…"' if match.group(0).startswith('"') else "0"

        return token.sub(mask, text) + cut
    text = re.sub(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+", "<url>", text)
    return re.sub(r"\d{4,}", "<digits>", text) + cut


def read_answer(
    row: AnsweringRow, response: httpx.Response, request: Mapping[str, str] | None = None, *, writes: bool = False
) -> Answer:
    """The answer of one successful call, read whatever its shape (see the module docstring).

    Parameters
    ----------
    row:
        The endpoint that answered (its vendor name, answer model, and whether it writes).
    response:
        The success answer, body read.
    request:
        The parameter header object that was sent (an empty write answer is read from it).
    writes:
        Whether the endpoint changes something (only then is an empty answer a success).

    Returns
    -------
    Answer
        The parsed answer; ``answer.reading`` says which fallbacks were needed.

    Raises
    ------
    postdicom.errors.UnreadableAnswerError
        The body cannot be read as any accepted shape.
    postdicom.errors.FailedAnswerError
        The body says the call failed although the status is a success.
    """
    where = dict(status=response.status_code, method=response.request.method, url=str(response.request.url))
    answer = decode_answer(
        row.vendor_name,
        row.answer,
        response.content,
        writes=writes,
        request=request,
        error_reason=response.headers.get("X-Error-Reason"),
        **where,
    )
    _log_once(answer.reading)
    return answer


_logged: set[tuple[str, tuple[str, ...], bool]] = set()


def _log_once(reading: AnswerReading) -> None:
    """Say once per process and endpoint how an undocumented answer was read (never a value)."""
    key = (reading.endpoint, tuple(reading.fallbacks), reading.understood)
    if reading.documented or key in _logged:
        return
    _logged.add(key)
    if not reading.understood:
        log.warning(
            "%s answered an object without any documented key (%s); its fields read as empty."
            " Run 'postdicom-flows check' and send us its report",
            reading.endpoint,
            ", ".join(reading.unknown_keys[:10]),
        )
    elif reading.fallbacks:
        log.info("%s answered in an undocumented shape, read with: %s", reading.endpoint, "; ".join(reading.fallbacks))


def decode_answer(
    endpoint: str,
    model: type[Answer],
    body: bytes,
    *,
    writes: bool = False,
    request: Mapping[str, str] | None = None,
    error_reason: str | None = None,
    **where: Any,
) -> Answer:
    """:func:`read_answer` on a body already in hand (``where``: status, method, url for errors)."""
    reading = AnswerRead(endpoint, model, body, error_reason, where)
    text = reading.without_bom(body.decode("utf-8", errors="replace"))
    if not text.strip():
        return reading.answer(None, writes=writes, request=request, empty=True)
    try:
        data = json_text.loads(text)
    except ValueError:
        raise reading.unreadable(not_json(text)) from None
    return reading.answer(data, writes=writes, request=request)


def not_json(text: str) -> str:
    """What a body that is not JSON looks like, in a word, for :meth:`AnswerRead.unreadable`."""
    return "HTML" if text.lstrip()[:1] == "<" else "not JSON"


class AnswerRead:
    """One answer being read: what it is noted with, and the steps from its JSON to its model.

    :func:`decode_answer` reads a body in hand; :mod:`postdicom.answer_stream`
    reads a list answer as it arrives and gives :meth:`answer` the answer's
    JSON with the list it already handed on left out. Both read every shape
    with the same steps.
    """

    def __init__(
        self, endpoint: str, model: type[Answer], head: bytes, error_reason: str | None, where: Mapping[str, Any]
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self.head = head
        self.where = dict(where)
        self.reading = AnswerReading(endpoint=endpoint, status=self.where.get("status"))
        self.fallbacks: dict[str, None] = {}
        self.envelope_keys: list[str] = []
        self.notes: dict[str, Any] = {NOTES: {}}
        self.listed: Any = None
        """The JSON value a list answer's list was read from (what :mod:`postdicom.answer_stream` checks)."""
        if error_reason:
            self.fallbacks.setdefault("X-Error-Reason header on a success answer (read as a success)", None)

    def unreadable(self, why: str) -> UnreadableAnswerError:
        """The error for an answer that cannot be read, quoting its first bytes with every value masked."""
        return UnreadableAnswerError(
            f"{self.endpoint} answered something that cannot be read ({why}); expected {expected_shape(self.model)};"
            f" the answer began with: {masked_excerpt(self.head)}",
            **self.where,
        )

    def without_bom(self, text: str) -> str:
        """``text`` without a UTF-8 byte-order mark (noted)."""
        if text.startswith("\ufeff"):
            self.fallbacks.setdefault("UTF-8 byte-order mark before the JSON", None)
            return text[1:]
        return text

    def answer(
        self, data: Any, *, writes: bool = False, request: Mapping[str, str] | None = None, empty: bool = False
    ) -> Answer:
        """The model of the answer whose JSON is ``data`` (``empty``: the body held nothing at all)."""
        model, reading, fallbacks = self.model, self.reading, self.fallbacks
        received = None if empty else data
        from_request = False
        if empty:
            reading.empty = True
            reading.shape = "empty body"
        elif isinstance(data, str) and data.strip()[:1] in ("{", "["):
            try:
                data = json_text.loads(data)
            except ValueError:
                raise self.unreadable("a JSON string that does not hold JSON") from None
            fallbacks.setdefault("answer sent as a JSON string holding JSON", None)
            reading.shape = "JSON in a JSON string"
        data = _unwrap(model, data, reading, fallbacks, self.envelope_keys, self.endpoint, self.where)

        if model.list_key:
            found = _as_list_answer(model, data, reading, fallbacks)
            if found is None:
                if isinstance(data, Mapping):  # no list, but perhaps a body that says why
                    _raise_if_failed(self.endpoint, model, data, self.where)
                raise self.unreadable("no list of objects found")
            data = found
            self.listed = next(value for key, value in data.items() if model.known_key(key) == model.list_key)
        else:
            if isinstance(data, list):
                if len(data) == 1 and isinstance(data[0], Mapping):
                    fallbacks.setdefault("object sent as a one-element array", None)
                    reading.shape = "one-element array"
                    data = data[0]
                elif not data and writes:
                    data = None
                else:
                    raise self.unreadable(f"an array of {len(data)} item(s) where one object was expected")
            if data is None:
                if not writes:
                    raise self.unreadable("an empty answer")
                fallbacks.setdefault("empty answer on success: read as what the request asked for", None)
                reading.empty = True
                data = model.from_request(request or {})
                from_request = True
            elif not isinstance(data, Mapping):
                raise self.unreadable(f"a JSON {type(data).__name__} where an object was expected")
        _raise_if_failed(self.endpoint, model, data, self.where)

        context: dict[str, Any] = {NOTES: {}} if from_request else self.notes
        answer = self.validate(model, data, context)
        answer._received = received
        reading.unknown_keys = [f"(envelope).{key}" for key in self.envelope_keys] + answer.unknown_keys()
        reading.understood = reading.empty or (_understood(model, data) and _rows_understood(model, answer))
        self.done(answer)
        return answer

    def validate(self, model: type[Answer], data: Any, context: dict[str, Any]) -> Answer:
        """``model`` read from ``data``; what no fallback reads is an :meth:`unreadable` answer."""
        try:
            return model.model_validate(data, context=context)
        except Exception as exc:  # pydantic's ValidationError: the object holds something no fallback reads
            first = getattr(exc, "errors", lambda: [{"msg": str(exc)}])()[0]
            raise self.unreadable(f"{model.__name__}: {first.get('msg')} at {first.get('loc')}") from None

    def done(self, answer: Answer) -> None:
        """Put the notes of the reading so far (fallbacks, the values' own) on ``answer``."""
        # The request's own wire forms (a list as a JSON string ...) are not the server's: not in ``self.notes``.
        for key in self.notes[NOTES]:
            self.fallbacks.setdefault(key, None)
        self.reading.fallbacks = list(self.fallbacks)
        answer._reading = self.reading


def _unwrap(
    model: type[Answer],
    data: Any,
    reading: AnswerReading,
    fallbacks: dict[str, None],
    envelope_keys: list[str],
    endpoint: str,
    where: Mapping[str, Any],
) -> Any:
    """Strip envelopes until the answer object (or list) is reached."""
    for _ in range(_MAX_UNWRAP):
        if not isinstance(data, Mapping) or _has_documented_key(model, data):
            return data
        inner = [k for k in data if key_form(k) in ENVELOPE_KEYS]
        others = [k for k in data if key_form(k) not in STATUS_KEYS and k not in inner]
        if len(inner) == 1 and not others:
            key = inner[0]
        elif not inner and len(others) == 1 and isinstance(data[others[0]], (Mapping, list)) and (
            not model.list_key or isinstance(data[others[0]], Mapping)
        ):
            key = others[0]  # one other key holding an object (a list is left to _as_list_answer)
        else:
            return data
        _raise_if_failed(endpoint, model, {k: v for k, v in data.items() if k != key}, where)
        envelope_keys += [str(k) for k in data if k != key]
        fallbacks.setdefault(f"answer inside a {key!r} envelope", None)
        reading.shape = f"{key!r} envelope"
        data = data[key]
        if isinstance(data, str) and data.strip()[:1] in ("{", "["):
            try:
                data = json_text.loads(data)
                fallbacks.setdefault("answer sent as a JSON string holding JSON", None)
            except ValueError:
                return data
    return data


def _has_documented_key(model: type[Answer], data: Mapping[str, Any]) -> bool:
    return any(model.known_key(k) for k in data)


def _understood(model: type[Answer], data: Any) -> bool:
    if not isinstance(data, Mapping):
        return False
    if model.list_key:
        return any(model.known_key(k) == model.list_key for k in data)
    return _has_documented_key(model, data)


def _rows_understood(model: type[Answer], answer: Answer) -> bool:
    """Whether every row of a list answer has a documented key (a row without one reads as all ``None``)."""
    if not model.list_key:
        return True
    return all(row_understood(row) for row in list_rows(answer))


def list_rows(answer: Answer) -> list[Any]:
    """The rows of a list answer (its :attr:`~postdicom.models.Answer.list_key` field)."""
    model = type(answer)
    name = next(name for name, f in model.model_fields.items() if (f.alias or name) == model.list_key)
    return getattr(answer, name) or []


def row_understood(row: Any) -> bool:
    """Whether a row of a list answer, as received, has at least one documented key."""
    if isinstance(row, Answer) and isinstance(row.received, Mapping):
        return any(type(row).known_key(key) for key in row.received)
    return True


def _as_list_answer(model: type[Answer], data: Any, reading: AnswerReading, fallbacks: dict[str, None]) -> Any:
    """A list answer's object ``{list_key: [...]}`` from whatever held the list, or ``None``."""
    list_key = model.list_key
    assert list_key is not None
    if data is None:
        fallbacks.setdefault("no answer (empty body or null) read as an empty list", None)
        reading.shape = "empty body" if reading.empty else "null"
        return {list_key: []}
    if isinstance(data, list):
        if not all(isinstance(item, Mapping) for item in data):
            return None
        fallbacks.setdefault(f"bare array instead of {{{list_key!r}: [...]}}", None)
        reading.shape = "bare array"
        return {list_key: data}
    if not isinstance(data, Mapping):
        return None
    if any(model.known_key(k) == list_key for k in data):
        return data
    lists = [k for k, v in data.items() if isinstance(v, list) and all(isinstance(i, Mapping) for i in v)]
    if len(lists) == 1:
        key = lists[0]
        fallbacks.setdefault(f"list under {key!r} instead of {list_key!r}", None)
        reading.shape = f"list under {key!r}"
        return {list_key: data[key], **{k: v for k, v in data.items() if k != key}}
    if not data:
        fallbacks.setdefault("empty object read as an empty list", None)
        return {list_key: []}
    return None


def _raise_if_failed(endpoint: str, model: type[Answer], data: Mapping[str, Any], where: Mapping[str, Any]) -> None:
    """Raise when a success answer says, in its body, that the call failed."""
    only_error = not _has_documented_key(model, data) and any(
        key_form(k) == "error" and isinstance(v, str) and v.strip() for k, v in data.items()
    )
    if only_error or flags_failure(data):
        raise_failed(endpoint, data, where)


def flags_failure(data: Mapping[str, Any]) -> bool:
    """Whether a status flag of ``data`` says the call failed (``Success: false``, ``HasError: true`` ...)."""
    for key, value in data.items():
        form = key_form(key)
        flag = _flag(value)
        if (form in _SUCCESS_FLAGS and flag is False) or (form in _ERROR_FLAGS and flag is True):
            return True
    return False


def raise_failed(endpoint: str, data: Mapping[str, Any], where: Mapping[str, Any]) -> NoReturn:
    """Raise the :class:`FailedAnswerError` of a success answer whose body ``data`` says it failed."""
    texts = [str(v) for k, v in data.items() if key_form(k) in _ERROR_TEXTS and v not in (None, "", [], {})]
    reason = "; ".join(texts)[:300] or None
    raise FailedAnswerError(f"{endpoint} answered a success status but its body says the call failed",
                            reason=reason, **where)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None
