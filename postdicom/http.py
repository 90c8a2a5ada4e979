"""The HTTP session every request of one account goes through.

One ``httpx.Client`` per account (connection reuse, a bounded pool), Basic
authentication encoded as UTF-8, timeouts, a request-rate throttle, and the
retry rule: transient failures (connection errors, 408, 429, 5xx) are tried
again with exponential backoff and jitter, waiting at least what the server's
``Retry-After`` asks up to a ceiling, within the budget of the logical call
(:mod:`postdicom.retry`). A request that is not idempotent is only tried again
when it certainly never reached the server (the connection could not be
opened), or was refused with 429.

No answer can hold a request past its limits (:class:`HttpLimits`): an overall
deadline per request, a size cap for answers read into memory, and a 3xx is an
error naming where it points (redirects are never followed: the credentials
would go along, and a silent "no results" is worse than a clear error).

Request bodies are given as a *factory*: a callable that returns a fresh
iterable of bytes. A retry calls it again, so a retried upload re-reads its
files instead of re-sending a stream that was already spent (the way another
client loses data silently).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypedDict

from typing_extensions import Unpack

import httpx

from .errors import (
    AnswerTooLargeError,
    DeadlineExceededError,
    HTTPStatusError,
    PostDicomError,
    RedirectError,
    ThrottledError,
    TransportError,
    error_for_status,
    is_transient,
    shown_url,
)
from .retry import RetryBudget, RetryPolicy, retry_scope
from .settings import env_number
from .transport import request_deadline, use_large_reads

log = logging.getLogger("postdicom.http")

BodyFactory = Callable[[], Iterable[bytes]]
"""Returns a fresh iterable of body chunks each time it is called."""

USER_AGENT = "postdicom-flows/0.1 (+httpx)"


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on one request that no server answer can push past.

    Parameters
    ----------
    request_deadline:
        Seconds one request may take in all, from sending to the last byte of
        an answer read whole (``POSTDICOM_REQUEST_DEADLINE``). The read
        timeout alone restarts with every byte that arrives.
    download_deadline:
        The same for a streamed answer (a WADO download), whose body may
        rightly take long (``POSTDICOM_DOWNLOAD_DEADLINE``).
    max_json_bytes:
        Largest answer read into memory (QIDO, custom endpoints, STOW answers),
        counted after decompression (``POSTDICOM_MAX_JSON_BYTES``).
    """

    request_deadline: float = 300.0
    download_deadline: float = 3600.0
    max_json_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_env(cls) -> HttpLimits:
        """The limits of the ``POSTDICOM_*`` settings (defaults above when unset)."""
        default = cls()
        return cls(
            request_deadline=env_number("POSTDICOM_REQUEST_DEADLINE", default.request_deadline, minimum=0.001),
            download_deadline=env_number("POSTDICOM_DOWNLOAD_DEADLINE", default.download_deadline, minimum=0.001),
            max_json_bytes=int(env_number("POSTDICOM_MAX_JSON_BYTES", default.max_json_bytes, minimum=1, whole=True)),
        )


ERROR_BODY_BYTES = 64 * 1024
"""At most this much of an error answer's body is read (only a short excerpt is ever shown)."""


class RateLimiter:
    """A thread-safe request-rate throttle (at most ``rate`` starts per second).

    Prefect's global rate limits cost a round trip to the Prefect server per
    acquisition; this one costs a lock, so it can sit in front of every request.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("requests_per_second must be positive")
        self._interval = 1.0 / rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


class _BasicAuth(httpx.Auth):
    """HTTP Basic with the user name and password encoded as UTF-8.

    Kept as its own object so that the encoded secret is never part of a repr,
    an error or a log line.
    """

    def __init__(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
        self._header = f"Basic {token}"

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "<BasicAuth ****>"


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_reason(response: httpx.Response) -> str | None:
    """The server's explanation: ``X-Error-Reason``, else a short body excerpt."""
    reason = response.headers.get("X-Error-Reason")
    if reason:
        return reason
    try:
        text = response.text.strip()
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return None
    return text[:300] or None


def _never_sent(exc: httpx.TransportError) -> bool:
    """True when the request certainly did not reach the server."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


class RequestOptions(TypedDict, total=False):
    """What a request may carry besides its method and path.

    ``query`` is an already-encoded query string (see ``postdicom.query`` for
    why httpx's own encoding is not used); ``body`` a factory so a retry
    rebuilds it; ``idempotent=False`` stops retries once the request may have
    reached the server; ``accept_status`` lets a caller take an error status as
    an answer (STOW bodies are read whatever the status).
    """

    query: str | None
    headers: Mapping[str, str] | None
    body: BodyFactory | bytes | None
    idempotent: bool
    retry: RetryPolicy | None
    accept_status: Callable[[int], bool] | None


class HttpSession:
    """Authenticated, retrying, throttled HTTP access to one DICOMweb base URL.

    Parameters
    ----------
    base_url:
        The account's WebAddress; paths given to :meth:`request` are appended
        to it (a trailing slash on the base is ignored).
    username, password:
        Basic-auth credentials (the account e-mail and password).
    timeout:
        Seconds to wait for each read/write; connecting has ``connect_timeout``.
    retry:
        The :class:`~postdicom.retry.RetryPolicy` for transient failures
        (default: the ``POSTDICOM_RETRY_*`` settings).
    limits:
        The :class:`HttpLimits` (default: the ``POSTDICOM_*`` settings).
    max_connections:
        Size of the connection pool (and so of useful concurrency).
    requests_per_second:
        Optional throttle shared by every thread using this session.
    transport:
        An ``httpx`` transport to use instead of the network (tests).
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        limits: HttpLimits | None = None,
        max_connections: int = 16,
        requests_per_second: float | None = None,
        verify: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy.from_env()
        self.limits = limits if limits is not None else HttpLimits.from_env()
        self._throttle = RateLimiter(requests_per_second) if requests_per_second else None
        pool = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        if transport is None:
            transport = httpx.HTTPTransport(verify=verify, limits=pool)
            use_large_reads(transport)
        self._client = httpx.Client(
            auth=_BasicAuth(username, password),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=pool,
            headers={"User-Agent": USER_AGENT},
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    def url(self, path: str, query: str | None = None) -> str:
        """The absolute URL of ``path`` (which starts with ``/``) and a ready query string."""
        if path and not path.startswith("/"):
            path = "/" + path
        url = self.base_url + path
        return f"{url}?{query}" if query else url

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def request(self, method: str, path: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a request and read its whole answer (at most ``limits.max_json_bytes``).

        A connection lost while the answer is being read counts as a transient
        failure like any other: an idempotent request is sent again.
        Raises a :class:`~postdicom.errors.PostDicomError`.
        """
        with self._exchange(method, path, read=True, **options) as response:
            return response

    def stream(self, method: str, path: str, **options: Unpack[RequestOptions]):
        """Send a request and yield the answer with its body not yet read.

        Use as a context manager. Error statuses are raised (and retried)
        before anything is yielded; the body is then the caller's to iterate
        (``iter_bytes``/``iter_raw``) before ``limits.download_deadline``, and
        a failure while doing so is the caller's to retry (only it knows what
        it already consumed).
        """
        return self._exchange(method, path, read=False, **options)

    @contextlib.contextmanager
    def _exchange(
        self,
        method: str,
        path: str,
        *,
        read: bool,
        query: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: BodyFactory | bytes | None = None,
        idempotent: bool = True,
        retry: RetryPolicy | None = None,
        accept_status: Callable[[int], bool] | None = None,
    ) -> Iterator[httpx.Response]:
        url = self.url(path, query)
        with retry_scope(retry or self.retry) as budget:
            while True:
                if self._throttle is not None:
                    self._throttle.acquire()
                started = time.monotonic()
                deadline = _Deadline(started, self.limits.request_deadline, "POSTDICOM_REQUEST_DEADLINE")
                try:
                    response, ok = self._send_once(
                        method, url, deadline, read=read, headers=headers, body=body, accept_status=accept_status
                    )
                except TransportError as failure:
                    # A request that certainly never left may be sent again even if it is not idempotent.
                    if idempotent or failure.never_sent:
                        self._wait(budget, None, failure)
                        continue
                    raise
                if ok:
                    break
                error = self._error_from(response, method, url, deadline, _header_values(headers))
                # A 429 means the server did not act on the request, so even a
                # create may be sent again; other transient errors only for idempotent requests.
                if isinstance(error, ThrottledError) or (idempotent and is_transient(error)):
                    self._wait(budget, error.retry_after, error)
                    continue
                raise error
        if read:
            try:
                yield response
            finally:
                response.close()
            return
        download = _Deadline(started, self.limits.download_deadline, "POSTDICOM_DOWNLOAD_DEADLINE")
        response.stream = _DeadlineStream(_sync_stream(response), download, method, url)
        try:
            with request_deadline(download.at):
                yield response
        finally:
            response.close()

    def _send_once(
        self,
        method: str,
        url: str,
        deadline: _Deadline,
        *,
        read: bool,
        headers: Mapping[str, str] | None,
        body: BodyFactory | bytes | None,
        accept_status: Callable[[int], bool] | None,
    ) -> tuple[httpx.Response, bool]:
        """One try: the answer and whether it is one to return (its body read if ``read``).

        Raises :class:`TransportError` (with ``never_sent`` set when the
        request certainly did not reach the server), :class:`RedirectError`,
        :class:`DeadlineExceededError` or :class:`AnswerTooLargeError`.
        """
        content = body() if callable(body) else body
        request = self._client.build_request(method, url, headers=headers, content=content)
        response: httpx.Response | None = None
        try:
            with request_deadline(deadline.at):
                response = self._client.send(request, stream=True)
                response.stream = _DeadlineStream(_sync_stream(response), deadline, method, url)
                status = response.status_code
                if 300 <= status < 400:
                    raise _redirect_error(response, method, url)
                ok = status < 400 or bool(accept_status and accept_status(status))
                if ok and read:
                    _read_body(response, self.limits.max_json_bytes, method, url)
            return response, ok
        except httpx.TransportError as exc:
            if response is not None:
                response.close()
            if deadline.passed():
                raise deadline.error(method, url) from None
            error = TransportError(
                f"could not complete the request ({type(exc).__name__}: {exc})", method=method, url=url
            )
            error.never_sent = response is None and _never_sent(exc)
            raise error from None
        except BaseException:
            if response is not None:
                response.close()
            raise

    def _error_from(
        self, response: httpx.Response, method: str, url: str, deadline: _Deadline, private: list[str]
    ) -> HTTPStatusError:
        try:
            with request_deadline(deadline.at):
                _read_body(response, ERROR_BODY_BYTES, method, url, truncate=True)
        except (httpx.HTTPError, PostDicomError):
            pass
        finally:
            response.close()
        return error_for_status(
            response.status_code,
            reason=error_reason(response),
            method=method,
            url=url,
            retry_after=_retry_after_seconds(response),
            private=private,
        )

    def _wait(self, budget: RetryBudget, retry_after: float | None, error: PostDicomError) -> None:
        """Sleep before the next try, or raise ``error`` when the call's retry budget is spent."""
        delay = budget.next_wait(retry_after)
        if delay is None:
            raise error
        log.info(
            "retrying %s after %.2fs (attempt %d of %d): %s",
            error.method,
            delay,
            budget.retries + 1,
            budget.policy.attempts,
            error,
        )
        time.sleep(delay)


@dataclass(frozen=True)
class _Deadline:
    """When one request must be over, and the setting that said so (for the error)."""

    started: float
    seconds: float
    setting: str

    @property
    def at(self) -> float:
        return self.started + self.seconds

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def error(self, method: str, url: str) -> DeadlineExceededError:
        return DeadlineExceededError(
            f"no complete answer within {self.seconds:g} s, the most one request may take ({self.setting})",
            method=method,
            url=url,
        )


class _DeadlineStream(httpx.SyncByteStream):
    """An answer body that stops with :class:`DeadlineExceededError` once the deadline has passed.

    The socket-level deadline (:func:`~postdicom.transport.request_deadline`)
    covers the session's own connections; this covers every transport, and
    turns the socket's timeout at the deadline into the clear error.
    """

    def __init__(self, stream: httpx.SyncByteStream, deadline: _Deadline, method: str, url: str) -> None:
        self.inner = stream
        self._deadline = deadline
        self._method = method
        self._url = url

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.inner:
                if self._deadline.passed():
                    raise self._deadline.error(self._method, self._url)
                yield chunk
        except httpx.TimeoutException:
            if self._deadline.passed():
                raise self._deadline.error(self._method, self._url) from None
            raise

    def close(self) -> None:
        self.inner.close()


def _header_values(headers: Mapping[str, str] | None) -> list[str]:
    """The text values inside JSON request headers (a custom endpoint's parameters: names, IDs)."""
    found: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for text in (headers or {}).values():
        if text.startswith(("{", "[")):
            try:
                collect(json.loads(text))
            except ValueError:
                continue
    return found


def _sync_stream(response: httpx.Response) -> httpx.SyncByteStream:
    """The body stream of an answer from the synchronous client (what its type cannot say)."""
    stream = response.stream
    if isinstance(stream, _DeadlineStream):
        stream = stream.inner
    if not isinstance(stream, httpx.SyncByteStream):
        raise TypeError(f"expected a synchronous answer stream, got {type(stream).__name__}")
    return stream


def _read_body(response: httpx.Response, limit: int, method: str, url: str, *, truncate: bool = False) -> None:
    """Read ``response``'s (decoded) body, at most ``limit`` bytes.

    Past the limit, raise :class:`AnswerTooLargeError` (or, with ``truncate``,
    keep the first ``limit`` bytes and stop reading). A declared
    ``Content-Length`` over the limit is refused before anything is read.
    The body is stored where ``response.read()`` stores it, so ``.json()``
    and ``.text`` work as usual.
    """
    declared = response.headers.get("Content-Length", "")
    if not truncate and declared.isdigit() and int(declared) > limit:
        raise _too_large(response, limit, method, url, f"it announces {int(declared)} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            if not truncate:
                raise _too_large(response, limit, method, url, "more arrived")
            chunks.append(chunk[: limit - (size - len(chunk))])
            break
        chunks.append(chunk)
    # httpx keeps a read body in ``_content`` (what ``Response.read()`` fills);
    # reading through ``iter_bytes`` is what lets the size be checked as it grows.
    response._content = b"".join(chunks)


def _too_large(response: httpx.Response, limit: int, method: str, url: str, seen: str) -> AnswerTooLargeError:
    return AnswerTooLargeError(
        f"the answer is larger than the {limit} bytes allowed for an answer read whole ({seen};"
        " POSTDICOM_MAX_JSON_BYTES)",
        status=response.status_code,
        method=method,
        url=url,
    )


def _redirect_error(response: httpx.Response, method: str, url: str) -> RedirectError:
    """The error for a 3xx answer: where it points, and the likely fix."""
    location = response.headers.get("Location")
    target: httpx.URL | None = None
    if location:
        try:
            target = response.request.url.join(location)
        except httpx.InvalidURL:
            target = None
    asked = response.request.url
    if target is None:
        message = "the server answered with a redirect but no usable Location; redirects are not followed"
    elif asked.scheme == "http" and target.scheme == "https":
        message = (
            f"the server redirects to {shown_url(str(target))}: web_address starts with http:// but the service"
            " answers at https://; use the https:// address in web_address"
        )
    else:
        message = (
            f"the server redirects to {shown_url(str(target))}; redirects are not followed (the credentials would"
            " go along): set web_address to where the service answers"
        )
    return RedirectError(
        message,
        location=str(target) if target is not None else location,
        status=response.status_code,
        method=method,
        url=url,
    )
