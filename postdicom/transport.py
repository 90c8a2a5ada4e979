"""The session's direct connections: bigger socket reads, and the request deadline.

httpcore reads an answer 64 KiB at a time, a size fixed in the library. A
WADO-RS answer is tens or hundreds of megabytes, and each read costs a fixed
amount of Python work in httpcore, h11 and the multipart splitter; on a fast
link that work, not the network, limits the download. Asking the socket for
up to :data:`READ_BYTES` instead returns whatever has arrived (a small answer
still comes back in one small read), so large answers cross the Python layers
in a sixteenth of the steps: about a fifth less CPU for a 100 MB study
(benchmarks/RESULTS.md). Only downloads read that way: a JSON answer's
requests run under :func:`plain_reads`.

httpcore takes the change as a documented *network backend*; httpx does not
let a caller pass one, so :func:`use_large_reads` puts it on the pool of an
``httpx.HTTPTransport`` it builds. It checks the one private attribute it
relies on and otherwise leaves the transport as it is: a later httpx that
moves it makes downloads slower, never wrong (tests/test_client_http.py
notices).

The same streams enforce the session's overall deadline per request
(:func:`request_deadline`). httpx's read timeout starts again with every byte,
so a server sending one byte every half second keeps a request alive for ever,
even while it is still sending the answer's headers. While a deadline is set,
each socket read or write may wait only until the deadline, and fails with
httpcore's timeout once it has passed.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import ssl
import time
import typing

import httpcore
import httpx

READ_BYTES = 1024 * 1024
"""Largest single socket read: past 1 MiB the per-read cost no longer shows."""


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("postdicom_request_deadline", default=None)
_plain_reads: contextvars.ContextVar[bool] = contextvars.ContextVar("postdicom_plain_reads", default=False)


@contextlib.contextmanager
def plain_reads() -> typing.Iterator[None]:
    """httpcore's own read size (64 KiB) for this context's socket reads: for answers that are not downloads.

    Large reads pay off for a download's tens of megabytes, not for a JSON
    answer, which is parsed 64 KiB at a time anyway. A 1 MiB read is a 1 MiB
    buffer, copied by h11 and httpx on its way: reading a 20,000-order list
    (12 MB) that way peaked about 6 MB higher than in 64 KiB reads, for no
    time saved (``benchmarks/RESULTS.md``, *Export memory, eighth pass*).
    """
    token = _plain_reads.set(True)
    try:
        yield
    finally:
        _plain_reads.reset(token)


@contextlib.contextmanager
def request_deadline(at: float) -> typing.Iterator[None]:
    """Bound this context's socket reads and writes by ``at`` (a ``time.monotonic()`` instant)."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def deadline_passed() -> bool:
    """Whether a deadline is set in this context and has passed."""
    at = _deadline.get()
    return at is not None and time.monotonic() >= at


def _until_deadline(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to the time left before the deadline; ``expired`` raised once it has passed."""
    at = _deadline.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class LargeReadStream(httpcore.NetworkStream):
    """A network stream whose reads ask the socket for at least :data:`READ_BYTES`, within the deadline."""

    def __init__(self, stream: httpcore.NetworkStream, read_bytes: int = READ_BYTES) -> None:
        self._stream = stream
        self._read_bytes = read_bytes

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        size = max_bytes if _plain_reads.get() else max(max_bytes, self._read_bytes)
        return self._stream.read(size, _until_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _until_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return LargeReadStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._read_bytes)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class LargeReadBackend(httpcore.NetworkBackend):
    """Wraps httpcore's backend so every stream it opens is a :class:`LargeReadStream`."""

    def __init__(self, backend: httpcore.NetworkBackend, read_bytes: int = READ_BYTES) -> None:
        self._backend = backend
        self._read_bytes = read_bytes

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return LargeReadStream(stream, self._read_bytes)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        return LargeReadStream(self._backend.connect_unix_socket(path, timeout, socket_options), self._read_bytes)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@functools.lru_cache(maxsize=4)
def ssl_context(verify: bool = True) -> ssl.SSLContext:
    """The process's one TLS context per ``verify`` setting, shared by every session.

    Building a context reads the whole CA bundle: ~45 ms (20 ms of CPU) here,
    which every new client paid, and so every Prefect task run (each builds
    its client from the block) and every short-lived client. A context is
    made to be shared by many connections and threads; it is read-only once
    built. The CA bundle and the ``SSL_CERT_FILE``/``SSL_CERT_DIR`` settings
    are read the first time, as before for each client.
    """
    return httpx.create_ssl_context(verify=verify)


def use_large_reads(transport: httpx.BaseTransport, read_bytes: int = READ_BYTES) -> bool:
    """Give an ``httpx.HTTPTransport``'s connection pool large reads; ``False`` if it cannot.

    Only a direct-connection pool is changed (a proxy transport, a test
    transport or an unknown layout are left alone), and only once.
    """
    pool = getattr(transport, "_pool", None)
    if not isinstance(transport, httpx.HTTPTransport) or type(pool) is not httpcore.ConnectionPool:
        return False
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, LargeReadBackend):
        return True
    if not isinstance(backend, httpcore.NetworkBackend):
        return False
    pool._network_backend = LargeReadBackend(backend, read_bytes)
    return True
