"""The HTTP session every request of one account goes through.

One ``httpx.Client`` per account (connection reuse, a bounded pool), Basic
authentication encoded as UTF-8, timeouts, a request-rate throttle, and the
retry rule: transient failures (connection errors, 408, 429, 5xx) are tried
again with exponential backoff and jitter, waiting at least what the server's
``Retry-After`` asks. A request that is not idempotent is only tried again when
it certainly never reached the server (the connection could not be opened).

Request bodies are given as a *factory*: a callable that returns a fresh
iterable of bytes. A retry calls it again, so a retried upload re-reads its
files instead of re-sending a stream that was already spent (the way another
client loses data silently).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypedDict

from typing_extensions import Unpack

import httpx

from .errors import (
    PostDicomError,
    ThrottledError,
    TransportError,
    error_for_status,
    is_transient,
)
from .transport import use_large_reads

log = logging.getLogger("postdicom.http")

BodyFactory = Callable[[], Iterable[bytes]]
"""Returns a fresh iterable of body chunks each time it is called."""

USER_AGENT = "postdicom-flows/0.1 (+httpx)"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a transient failure again.

    ``attempts`` counts every try, the first included (1 = never retry).
    The n-th wait is ``backoff * 2**(n-1)`` seconds, capped by ``max_backoff``,
    stretched by up to ``jitter`` (a fraction) at random, and never shorter
    than the server's ``Retry-After``.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.5

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        base = min(self.max_backoff, self.backoff * (2 ** (retry_number - 1)))
        base *= 1 + random.uniform(0, self.jitter)
        if retry_after is not None:
            base = max(base, min(retry_after, 300.0))
        return base


NO_RETRY = RetryPolicy(attempts=1)


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
        The :class:`RetryPolicy` for transient failures.
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
        retry: RetryPolicy = RetryPolicy(),
        max_connections: int = 16,
        requests_per_second: float | None = None,
        verify: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._throttle = RateLimiter(requests_per_second) if requests_per_second else None
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        if transport is None:
            transport = httpx.HTTPTransport(verify=verify, limits=limits)
            use_large_reads(transport)
        self._client = httpx.Client(
            auth=_BasicAuth(username, password),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=limits,
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
        """Send a request and read its whole answer.

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
        (``iter_bytes``/``iter_raw``), and a failure while doing so is the
        caller's to retry (only it knows what it already consumed).
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
        policy = retry or self.retry
        url = self.url(path, query)
        attempt = 0
        while True:
            attempt += 1
            if self._throttle is not None:
                self._throttle.acquire()
            content = body() if callable(body) else body
            request = self._client.build_request(method, url, headers=headers, content=content)
            response = None
            try:
                response = self._client.send(request, stream=True)
                ok = response.status_code < 400 or bool(accept_status and accept_status(response.status_code))
                if ok and read:
                    response.read()
            except httpx.TransportError as exc:
                if response is not None:
                    response.close()
                error = TransportError(
                    f"could not complete the request ({type(exc).__name__}: {exc})",
                    method=method,
                    url=url,
                )
                may_retry = idempotent or (response is None and _never_sent(exc))
                if may_retry and attempt < policy.attempts:
                    self._wait(policy, attempt, None, error)
                    continue
                raise error from None
            if ok:
                try:
                    yield response
                finally:
                    response.close()
                return
            error = self._error_from(response, method, url)
            # A 429 means the server did not act on the request, so even a
            # create may be sent again; other transient errors only for idempotent requests.
            may_retry = isinstance(error, ThrottledError) or (idempotent and is_transient(error))
            if may_retry and attempt < policy.attempts:
                self._wait(policy, attempt, getattr(error, "retry_after", None), error)
                continue
            raise error

    def _error_from(self, response: httpx.Response, method: str, url: str) -> PostDicomError:
        try:
            response.read()
        except httpx.HTTPError:
            pass
        finally:
            response.close()
        retry_after = _retry_after_seconds(response)
        error = error_for_status(
            response.status_code,
            reason=error_reason(response),
            method=method,
            url=url,
            retry_after=retry_after,
        )
        # 503 (and 408) may carry Retry-After too; only ThrottledError keeps it by itself.
        error.retry_after = retry_after
        return error

    def _wait(
        self,
        policy: RetryPolicy,
        attempt: int,
        retry_after: float | None,
        error: PostDicomError,
    ) -> None:
        delay = policy.delay(attempt, retry_after)
        log.info(
            "retrying %s after %.2fs (attempt %d of %d): %s",
            error.method,
            delay,
            attempt + 1,
            policy.attempts,
            error,
        )
        time.sleep(delay)
