"""The HTTP session every request of one account goes through.

One ``httpx.Client`` per account (connection reuse, a bounded pool), Basic
authentication encoded as UTF-8, timeouts, a request-rate throttle, and the
retry rule: transient failures (connection errors, 408, 429, 5xx) are tried
again with exponential backoff and jitter, waiting at least what the server's
``Retry-After`` asks up to a ceiling, within the budget of the logical call
(:mod:`postdicom.retry`). A request that is not idempotent is only tried again
when it certainly never reached the server (the connection could not be
opened), or was turned away unread: 429, or 503 with ``Retry-After``.

No answer can hold a request past its limits
(:class:`~postdicom.http_limits.HttpLimits`, applied by
:mod:`postdicom.http_limits`): an overall deadline per request, a size cap for
answers read into memory. An error status or a 3xx becomes its exception in
:mod:`postdicom.http_errors` (redirects are never followed: the credentials
would go along, and a silent "no results" is worse than a clear error).

Request bodies are given as a *factory*: a callable that returns a fresh
iterable of bytes. A retry calls it again, so a retried upload re-reads its
files instead of re-sending a stream that was already spent (the way another
client loses data silently).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypedDict

from typing_extensions import Unpack

import httpx

from .errors import PostDicomError, TransportError, is_transient, server_did_not_act
from .http_errors import never_sent, redirect_error, status_error, undecodable_error
from .http_limits import Deadline, DeadlineStream, HttpLimits, read_body, sync_stream
from .retry import RetryBudget, RetryPolicy, retry_scope
from .transport import plain_reads, request_deadline, ssl_context, use_large_reads

log = logging.getLogger("postdicom.http")

BodyFactory = Callable[[], Iterable[bytes]]
"""Returns a fresh iterable of body chunks each time it is called."""

USER_AGENT = "postdicom-flows/0.1 (+httpx)"


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
        tls = ssl_context(verify)
        if transport is None:
            transport = httpx.HTTPTransport(verify=tls, limits=pool)
            use_large_reads(transport)
        self._client = httpx.Client(
            auth=_BasicAuth(username, password),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=pool,
            headers={"User-Agent": USER_AGENT},
            verify=tls,
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

    def stream(self, method: str, path: str, *, json_answer: bool = False, **options: Unpack[RequestOptions]):
        """Send a request and yield the answer with its body not yet read.

        Use as a context manager. Error statuses are raised (and retried)
        before anything is yielded; the body is then the caller's to iterate
        (``iter_bytes``/``iter_raw``) before ``limits.download_deadline``, and
        a failure while doing so is the caller's to retry (only it knows what
        it already consumed). ``json_answer=True``: the body is a JSON answer
        read as it arrives (:mod:`postdicom.answer_stream`), not a download,
        so the request's own deadline applies (``limits.request_deadline``,
        the same as for an answer read whole).
        """
        return self._exchange(method, path, read=False, json_answer=json_answer, **options)

    @contextlib.contextmanager
    def _exchange(
        self,
        method: str,
        path: str,
        *,
        read: bool,
        json_answer: bool = False,
        query: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: BodyFactory | bytes | None = None,
        idempotent: bool = True,
        retry: RetryPolicy | None = None,
        accept_status: Callable[[int], bool] | None = None,
    ) -> Iterator[httpx.Response]:
        url = self.url(path, query)
        # Large socket reads for downloads only (postdicom.transport.plain_reads), for the request and its body.
        reads = contextlib.nullcontext() if not read and not json_answer else plain_reads()
        with reads:
            with retry_scope(retry or self.retry) as budget:
                while True:
                    if self._throttle is not None:
                        self._throttle.acquire()
                    started = time.monotonic()
                    deadline = Deadline(started, self.limits.request_deadline, "POSTDICOM_REQUEST_DEADLINE")
                    try:
                        response, ok = self._send_once(
                            method, url, deadline, read=read, headers=headers, body=body, accept_status=accept_status
                        )
                    except TransportError as failure:
                        # A request that certainly never left may be sent again even if it is not idempotent.
                        if idempotent or failure.never_sent:
                            self.wait_before_retry(budget, None, failure)
                            continue
                        raise
                    if ok:
                        break
                    error = status_error(response, method, url, deadline, headers)
                    # A 429, or a 503 with Retry-After, means the server did not act on the request,
                    # so even a create may be sent again; other transient errors only for idempotent requests.
                    if server_did_not_act(error) or (idempotent and is_transient(error)):
                        self.wait_before_retry(budget, error.retry_after, error)
                        continue
                    raise error
            if read:
                try:
                    yield response
                finally:
                    response.close()
                return
            download = (
                deadline
                if json_answer
                else Deadline(started, self.limits.download_deadline, "POSTDICOM_DOWNLOAD_DEADLINE")
            )
            response.stream = DeadlineStream(sync_stream(response), download, method, url)
            try:
                with request_deadline(download.at):
                    yield response
            finally:
                response.close()

    def _send_once(
        self,
        method: str,
        url: str,
        deadline: Deadline,
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
                response.stream = DeadlineStream(sync_stream(response), deadline, method, url)
                status = response.status_code
                if 300 <= status < 400:
                    raise redirect_error(response, method, url)
                ok = status < 400 or bool(accept_status and accept_status(status))
                if ok and read:
                    read_body(response, self.limits.max_json_bytes, method, url)
            return response, ok
        except httpx.TransportError as exc:
            if response is not None:
                response.close()
            if deadline.passed():
                raise deadline.error(method, url) from None
            error = TransportError(
                f"could not complete the request ({type(exc).__name__}: {exc})", method=method, url=url
            )
            error.never_sent = response is None and never_sent(exc)
            raise error from None
        except httpx.DecodingError as exc:
            if response is None:
                raise
            response.close()
            raise undecodable_error(response, exc, method, url) from None
        except BaseException:
            if response is not None:
                response.close()
            raise

    def wait_before_retry(self, budget: RetryBudget, retry_after: float | None, error: PostDicomError) -> None:
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


