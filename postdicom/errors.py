"""One exception tree for everything the client raises.

Every error carries what a person needs to act on it: the HTTP status (when
there was an answer), the server's own explanation from the ``X-Error-Reason``
response header, and the request's method and URL. Credentials never appear:
authentication travels in a header that is never copied into an error. Query
values do not appear in the message either (a QIDO search by ``PatientName``
or ``PatientID`` names a patient, and messages end up in logs and in
Prefect's database); ``error.url`` keeps the full URL for a caller's own use.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
        The request that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.reason = reason
        self.method = method
        self.url = url
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.reason:
            parts.append(f"server says: {self.reason}")
        if self.method and self.url:
            parts.append(f"{self.method} {shown_url(self.url)}")
        return " | ".join(parts)

    def __reduce__(self):  # keep keyword attributes through pickling (Prefect results, Dask)
        return (
            _rebuild,
            (type(self), self.message, self.status, self.reason, self.method, self.url),
        )


def _rebuild(cls, message, status, reason, method, url):
    return cls(message, status=status, reason=reason, method=method, url=url)


def shown_url(url: str) -> str:
    """``url`` with each query value replaced by ``...``: which filters were used, not whom they name."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    keys = (item.split("=", 1)[0] for item in parts.query.split("&") if item)
    return urlunsplit(parts._replace(query="&".join(f"{key}=..." for key in keys)))


class TransportError(PostDicomError):
    """No usable answer: connection refused or dropped, DNS failure, timeout."""


class ProtocolError(PostDicomError):
    """An answer came back but does not have the shape the protocol promises."""


class HTTPStatusError(PostDicomError):
    """The server answered with an error status."""


class BadRequestError(HTTPStatusError):
    """400-class answer other than auth, not-found and throttling: the request itself is wrong."""


class AuthenticationError(HTTPStatusError):
    """401 or 403: wrong user name or password, or no right to this resource."""


class NotFoundError(HTTPStatusError):
    """404: the study, order, folder or path does not exist (for this account)."""


class ConflictError(BadRequestError):
    """409: the request conflicts with what the server holds."""


class ThrottledError(HTTPStatusError):
    """429: the server asks the client to slow down.

    ``retry_after`` holds the server's ``Retry-After`` in seconds, if it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


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


def error_for_status(
    status: int,
    *,
    reason: str | None,
    method: str,
    url: str,
    retry_after: float | None = None,
) -> HTTPStatusError:
    """Build the exception that matches an HTTP error status."""
    common = dict(status=status, reason=reason, method=method, url=url)
    if status in (401, 403):
        return AuthenticationError("authentication refused", **common)
    if status == 404:
        return NotFoundError("not found", **common)
    if status == 409:
        return ConflictError("conflict", **common)
    if status == 429:
        return ThrottledError("throttled by the server", retry_after=retry_after, **common)
    if status == 408:
        return ServerError("request timed out on the server", **common)
    if status >= 500:
        return ServerError("server error", **common)
    return BadRequestError("request refused", **common)
