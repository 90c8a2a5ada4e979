"""Limits no server answer can push a request past: a deadline per request, a size cap for answers read whole.

:class:`HttpLimits` holds the settings (``POSTDICOM_REQUEST_DEADLINE``,
``POSTDICOM_DOWNLOAD_DEADLINE``, ``POSTDICOM_MAX_JSON_BYTES``,
``POSTDICOM_MAX_DOWNLOAD_BYTES``). A
:class:`Deadline` is one request's; :class:`DeadlineStream` wraps an answer's
body so that reading it stops with :class:`~postdicom.errors.DeadlineExceededError`
once the deadline has passed, whatever the transport, and :func:`read_body`
reads a body into memory only up to its size cap (:func:`bounded_chunks`
hands it on piece by piece under the same cap). The session
(:mod:`postdicom.http`) puts them around every request it sends.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx

from .errors import AnswerTooLargeError, DeadlineExceededError
from .settings import env_number

JSON_BYTES_SETTING = "POSTDICOM_MAX_JSON_BYTES"
DOWNLOAD_BYTES_SETTING = "POSTDICOM_MAX_DOWNLOAD_BYTES"


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
    max_download_bytes:
        Largest streamed download (one WADO answer, all its instances), with
        or without a ``Content-Length`` (``POSTDICOM_MAX_DOWNLOAD_BYTES``). It
        goes to disk, not memory, so it is large; without it a body that
        never ends would fill the disk until the download deadline.
    """

    request_deadline: float = 300.0
    download_deadline: float = 3600.0
    max_json_bytes: int = 64 * 1024 * 1024
    max_download_bytes: int = 64 * 1024 * 1024 * 1024

    @classmethod
    def from_env(cls) -> HttpLimits:
        """The limits of the ``POSTDICOM_*`` settings (defaults above when unset)."""
        default = cls()
        return cls(
            request_deadline=env_number("POSTDICOM_REQUEST_DEADLINE", default.request_deadline, minimum=0.001),
            download_deadline=env_number("POSTDICOM_DOWNLOAD_DEADLINE", default.download_deadline, minimum=0.001),
            max_json_bytes=int(env_number(JSON_BYTES_SETTING, default.max_json_bytes, minimum=1, whole=True)),
            max_download_bytes=int(
                env_number(DOWNLOAD_BYTES_SETTING, default.max_download_bytes, minimum=1, whole=True, unit="bytes")
            ),
        )


ERROR_BODY_BYTES = 64 * 1024
"""At most this much of an error answer's body is read (only a short excerpt is ever shown)."""


@dataclass(frozen=True)
class Deadline:
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


class DeadlineStream(httpx.SyncByteStream):
    """An answer body that stops with :class:`DeadlineExceededError` once the deadline has passed.

    The socket-level deadline (:func:`~postdicom.transport.request_deadline`)
    covers the session's own connections; this covers every transport, and
    turns the socket's timeout at the deadline into the clear error.
    """

    def __init__(self, stream: httpx.SyncByteStream, deadline: Deadline, method: str, url: str) -> None:
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


def sync_stream(response: httpx.Response) -> httpx.SyncByteStream:
    """The body stream of an answer from the synchronous client (what its type cannot say)."""
    stream = response.stream
    if isinstance(stream, DeadlineStream):
        stream = stream.inner
    if not isinstance(stream, httpx.SyncByteStream):
        raise TypeError(f"expected a synchronous answer stream, got {type(stream).__name__}")
    return stream


def bounded_chunks(
    response: httpx.Response,
    limit: int,
    method: str,
    url: str,
    *,
    truncate: bool = False,
    chunks: Iterable[bytes] | None = None,
    setting: str = JSON_BYTES_SETTING,
) -> Iterator[bytes]:
    """``response``'s body as it arrives, at most ``limit`` bytes in all.

    Past the limit, raise :class:`AnswerTooLargeError` naming ``setting`` (or,
    with ``truncate``, end with the first ``limit`` bytes). A declared
    ``Content-Length`` over the limit is refused before anything is read.
    ``chunks`` is the body as the caller reads it (default: decoded,
    ``response.iter_bytes()``). What an answer read whole (:func:`read_body`),
    an answer read piece by piece (:mod:`postdicom.answer_stream`) and a
    download (both through :func:`postdicom.http_errors.bounded_body`) share, so all
    keep their cap the same way.
    """
    declared = response.headers.get("Content-Length", "")
    if not truncate and declared.isdigit() and int(declared) > limit:
        raise too_large(response, limit, method, url, f"it announces {int(declared)} bytes", setting)
    size = 0
    for chunk in response.iter_bytes() if chunks is None else chunks:
        size += len(chunk)
        if size > limit:
            if not truncate:
                raise too_large(response, limit, method, url, "more arrived", setting)
            yield chunk[: limit - (size - len(chunk))]
            return
        yield chunk


def read_body(response: httpx.Response, limit: int, method: str, url: str, *, truncate: bool = False) -> None:
    """Read ``response``'s (decoded) body, at most ``limit`` bytes (see :func:`bounded_chunks`).

    The body is stored where ``response.read()`` stores it, so ``.json()``
    and ``.text`` work as usual.
    """
    # httpx keeps a read body in ``_content`` (what ``Response.read()`` fills);
    # reading through ``iter_bytes`` is what lets the size be checked as it grows.
    response._content = b"".join(bounded_chunks(response, limit, method, url, truncate=truncate))


def too_large(
    response: httpx.Response, limit: int, method: str, url: str, seen: str, setting: str = JSON_BYTES_SETTING
) -> AnswerTooLargeError:
    allowed = "one download" if setting == DOWNLOAD_BYTES_SETTING else "an answer read whole"
    return AnswerTooLargeError(
        f"the answer is larger than the {limit} bytes allowed for {allowed} ({seen}; {setting})",
        status=response.status_code,
        method=method,
        url=url,
    )
