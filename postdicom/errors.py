"""One exception tree for everything the client raises.

Every error carries what a person needs to act on it: the HTTP status (when
there was an answer), the server's own explanation from the ``X-Error-Reason``
response header, and the request's method and URL. Credentials never appear:
authentication travels in a header that is never copied into an error. Query
values are kept nowhere in an error (a QIDO search by ``PatientName`` or
``PatientID`` names a patient, and errors end up in logs and, pickled, in
Prefect's database): ``error.url`` keeps the query's keys with each value
replaced by ``...``, and a server explanation that repeats a query value has
that value masked the same way. What is left is what the error pickles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "..."
"""What a query value is replaced with in an error."""


class PostDicomError(Exception):
    """Base of every error the client raises.

    Parameters
    ----------
    message:
        What went wrong, in plain words.
    status:
        HTTP status code of the answer, or ``None`` when there was no answer.
    reason:
        The server's ``X-Error-Reason`` header (or a short body excerpt).
    method, url:
        The request that failed (``url`` is kept with its query values masked).
    private:
        Other values the request carried that may name someone (a custom
        endpoint's parameter header): masked in ``reason`` like the query's,
        and not kept.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        method: str | None = None,
        url: str | None = None,
        private: Iterable[str] = (),
    ) -> None:
        self.message = message
        self.status = status
        self.reason = masked_reason(reason, url, private)
        self.method = method
        self.url = shown_url(url) if url else url
        super().__init__(str(self))

    @property
    def request_line(self) -> str | None:
        """The request that failed as ``METHOD URL`` (query values masked), or ``None`` when not known."""
        return f"{self.method} {shown_url(self.url)}" if self.method and self.url else None

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.reason:
            parts.append(f"server says: {self.reason}")
        if self.request_line:
            parts.append(self.request_line)
        return " | ".join(parts)

    def __reduce__(self):
        """Pickle the attributes (already masked), not the constructor's arguments.

        Prefect pickles a failed task's exception into its result storage, and
        Dask pickles it between processes; every subclass's own attributes
        (``retry_after``, ``location``, ...) travel with it.
        """
        return (_rebuild, (type(self), dict(self.__dict__)))


def _rebuild(cls: type[PostDicomError], attributes: dict[str, Any]) -> PostDicomError:
    error = cls.__new__(cls)
    error.__dict__.update(attributes)
    error.args = (str(error),)
    return error


def shown_url(url: str) -> str:
    """``url`` with each query value replaced by ``...``: which filters were used, not whom they name."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    keys = (item.split("=", 1)[0] for item in parts.query.split("&") if item)
    return urlunsplit(parts._replace(query="&".join(f"{key}={MASK}" for key in keys)))


SHORTEST_MASKED = 3
"""Query values (and their parts) shorter than this are not searched for in a reason (too many false hits)."""


def _words(values: Iterable[str]) -> set[str]:
    """``values`` raw and decoded, and their parts split at DICOM wildcards and separators."""
    words: set[str] = set()
    for raw in values:
        for value in {raw, unquote_plus(raw)}:
            words.add(value)
            words.update(re.split(r"[*?^, ]", value))
    return {word for word in words if len(word) >= SHORTEST_MASKED}


def masked_reason(reason: str | None, url: str | None, private: Iterable[str] = ()) -> str | None:
    """``reason`` with every query value of ``url``, and every ``private`` value, replaced by ``...``.

    A server may repeat the request in its explanation ("no study for
    PatientName=DOE^JANE"); the error keeps what the server said without
    whom it was said about. Matching ignores letter case.
    """
    if not reason:
        return reason
    query = urlsplit(url).query.split("&") if url else []
    values = [item.split("=", 1)[1] for item in query if "=" in item]
    words = sorted(_words([*values, *private]), key=len, reverse=True)
    if not words:
        return reason
    return re.sub("|".join(map(re.escape, words)), MASK, reason, flags=re.IGNORECASE)


class TransportError(PostDicomError):
    """No usable answer: connection refused or dropped, DNS failure, timeout.

    ``never_sent`` is true when the request certainly did not reach the server
    (the connection could not be opened): even a create may then be sent again.
    """

    never_sent: bool = False


class ProtocolError(PostDicomError):
    """An answer came back but does not have the shape the protocol promises."""


class DeadlineExceededError(PostDicomError):
    """The whole request took longer than its deadline (``POSTDICOM_REQUEST_DEADLINE``).

    Each read and write has its own timeout, but a server that sends one byte
    just before each timeout would keep a request alive for ever; the deadline
    bounds the whole exchange. Not retried: a server that slow is as slow the
    next time.
    """


class AnswerTooLargeError(ProtocolError):
    """An answer is larger than allowed; the message names the setting.

    JSON answers (QIDO, the custom endpoints, STOW) are read whole before they
    are parsed; a larger one is refused before it is read, or as soon as the
    limit is passed, instead of filling the memory (``POSTDICOM_MAX_JSON_BYTES``;
    the pages of one QIDO search together: ``POSTDICOM_QIDO_MAX_BYTES``). A
    WADO download goes to disk under its own, larger cap
    (``POSTDICOM_MAX_DOWNLOAD_BYTES``).
    """


class HTTPStatusError(PostDicomError):
    """The server answered with an error status.

    ``retry_after`` holds the server's ``Retry-After`` in seconds, if it sent
    one (429, and often 503).
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class RedirectError(HTTPStatusError):
    """3xx: the server sends the request elsewhere, and the client does not follow.

    Following would send the account's credentials to another address, and
    the usual cause is a ``web_address`` that is not the service's own (most
    often ``http://`` for an ``https://`` service). ``location`` is where the
    answer points (query values masked).
    """

    def __init__(self, message: str, *, location: str | None = None, **kwargs: Any) -> None:
        self.location = shown_url(location) if location else location
        super().__init__(message, **kwargs)


class BadRequestError(HTTPStatusError):
    """400-class answer other than auth, not-found and throttling: the request itself is wrong."""


class AuthenticationError(HTTPStatusError):
    """401 or 403: wrong user name or password, or no right to this resource."""


class NotFoundError(HTTPStatusError):
    """404: the study, order, folder or path does not exist (for this account).

    Also 405: the address does not take this method, which in practice means
    the web address points somewhere else than the DICOMweb base (e.g. it
    lacks ``/dicomweb``), so no request there can succeed.
    """


class ConflictError(BadRequestError):
    """409: the request conflicts with what the server holds."""


class ThrottledError(HTTPStatusError):
    """429: the server asks the client to slow down (``retry_after``: for how long, if it said)."""


class ServerError(HTTPStatusError):
    """5xx: the server failed; usually worth retrying."""


class ValidationError(PostDicomError, ValueError):
    """Input refused before any request was sent (names the parameter at fault)."""


class HeaderTooLargeError(ValidationError):
    """A custom endpoint's parameter header would exceed the safe size and the call cannot be split."""


TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Whether repeating the same request later may succeed.

    Connection problems, timeouts, throttling (429), 408 and 5xx are transient;
    every other error is a fact about the request and repeating it is useless.
    """
    if isinstance(exc, TransportError):
        return True
    if isinstance(exc, HTTPStatusError):
        return exc.status in TRANSIENT_STATUSES or (exc.status or 0) >= 500
    return False


def server_did_not_act(exc: BaseException) -> bool:
    """Whether an error answer says the server did nothing with the request, so even a create may be sent again.

    True for a 429, and for a 503 that carries ``Retry-After``: both are the
    server turning the request away ("come back in N seconds") before acting
    on it. Not for a 503 without ``Retry-After``, other 5xx or 408: those may
    come after the server acted (a crash after the write, a gateway that gave
    up waiting), and repeating a create could make a second one.
    """
    if not isinstance(exc, HTTPStatusError):
        return False
    return exc.status == 429 or (exc.status == 503 and exc.retry_after is not None)


def may_have_acted(exc: BaseException) -> bool:
    """Whether a write that raised ``exc`` may nevertheless have been done on the server.

    ``False`` when nothing was sent (refused before sending, connection never
    opened), when the server refused the request (4xx, a 3xx the client does
    not follow, an answer saying it failed) or turned it away unread
    (:func:`server_did_not_act`). ``True`` for everything else: an answer lost
    or cut (the request may have arrived), a 5xx or 408, a deadline passed, a
    success answer that cannot be read, and any error that is not the
    client's own (its cause is unknown).
    """
    if isinstance(exc, ValidationError | FailedAnswerError):
        return False
    if isinstance(exc, TransportError):
        return not exc.never_sent
    if isinstance(exc, HTTPStatusError):
        return not server_did_not_act(exc) and (exc.status in TRANSIENT_STATUSES or (exc.status or 0) >= 500)
    return True


def error_for_status(
    status: int,
    *,
    reason: str | None,
    method: str,
    url: str,
    retry_after: float | None = None,
    private: Iterable[str] = (),
) -> HTTPStatusError:
    """Build the exception that matches an HTTP error status (``private``: see :class:`PostDicomError`)."""
    kind: type[HTTPStatusError]
    if status in (401, 403):
        kind, message = AuthenticationError, "authentication refused"
    elif status == 404:
        kind, message = NotFoundError, "not found"
    elif status == 405:
        kind, message = NotFoundError, "method not allowed at this address (is the web address the DICOMweb base?)"
    elif status == 409:
        kind, message = ConflictError, "conflict"
    elif status == 429:
        kind, message = ThrottledError, "throttled by the server"
    elif status == 408:
        kind, message = ServerError, "request timed out on the server"
    elif status >= 500:
        kind, message = ServerError, "server error"
    else:
        kind, message = BadRequestError, "request refused"
    return kind(
        message, status=status, reason=reason, method=method, url=url, retry_after=retry_after, private=private
    )


class UnreadableAnswerError(ProtocolError):
    """A success answer of a custom endpoint in no shape the client can read (see ``postdicom.answers``)."""


class FailedAnswerError(ProtocolError):
    """A success status whose body says the call failed (``{"Success": false}``, only ``{"Error": ...}``)."""
