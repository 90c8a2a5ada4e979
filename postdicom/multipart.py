"""Streaming ``multipart/related`` in both directions, with flat memory.

Writing (STOW-RS): :class:`MultipartWriter` describes a body made of files (or
small byte strings) and is itself a *body factory*: each call returns a fresh
iterator that re-reads the files in fixed-size chunks. The exact
``Content-Length`` is computed from the file sizes before anything is sent, so
the request is not chunked (Orthanc and some proxies handle chunked uploads
badly) and a retry rebuilds the identical body from the files.

Reading (WADO-RS): :class:`MultipartReader` is a push parser on top of
``python_multipart.MultipartParser``, which splits the stream incrementally and
keeps each part's headers. Two gaps of that parser are closed here: it fails
on a non-empty preamble (the reader skips to the first delimiter itself), and
it does not notice a body that stops before the closing delimiter (the reader
does, in :meth:`MultipartReader.close`). Each part's bytes go straight to a
sink (a file), never into one big buffer, and a part that announces its size
(``Content-Length``) may not write a byte past it: a server that goes on is
stopped with a :class:`~postdicom.errors.ProtocolError`.
"""

from __future__ import annotations

import io
import itertools
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import ProtocolError, TransportError

CHUNK_SIZE = 256 * 1024
"""Bytes read from a file per chunk: big enough for throughput, small enough for flat memory."""

HEAD_BYTES = 8 * 1024
"""Bytes of each received part also kept in memory (``ReceivedPart.head``): enough for a DICOM
header up to its SOP Instance UID, so the caller need not read the file back to name it."""

PartSource = Union[str, os.PathLike, bytes]
"""A part's content: a file path (streamed) or bytes (tests, small payloads)."""

DICOM_MEDIA_TYPE = "application/dicom"


def new_boundary() -> str:
    """A random boundary (128 bits): the chance that it occurs inside a DICOM file is nil."""
    return "postdicom-" + secrets.token_hex(16)


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a ``Content-Type`` value into the lower-case media type and its parameters.

    Quoted parameters may contain spaces and ``;`` (``boundary="a b;c"``).
    """
    media, params = parse_options_header(value or "")
    return (
        media.decode("latin-1").strip().lower(),
        {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in params.items()},
    )


def multipart_boundary(content_type: str) -> str:
    """The boundary of a ``multipart/*`` content type, or :class:`ProtocolError`."""
    media, params = parse_content_type(content_type)
    boundary = params.get("boundary", "")
    if not media.startswith("multipart/") or not boundary:
        raise ProtocolError(f"expected a multipart answer with a boundary, got Content-Type {content_type!r}")
    return boundary


class MultipartWriter:
    """A re-creatable ``multipart/related`` body made of files and byte strings.

    Parameters
    ----------
    parts
        Each part's content: a path (read in chunks when the body is sent) or bytes.
    media_type
        The media type of every part and the ``type`` parameter of the whole.
    boundary
        The delimiter; random unless given (tests give one).

    Notes
    -----
    Calling the writer returns a new iterator over the body, which is what
    :class:`postdicom.http.HttpSession` expects of a body factory. File sizes
    are taken once, when the writer is made; if a file changes size before it
    is sent, the iterator raises :class:`OSError` rather than send a body that
    contradicts its ``Content-Length``.
    """

    def __init__(
        self,
        parts: Iterable[PartSource],
        *,
        media_type: str = DICOM_MEDIA_TYPE,
        boundary: str | None = None,
    ) -> None:
        self.boundary = boundary or new_boundary()
        self.media_type = media_type
        self.parts: tuple[PartSource, ...] = tuple(parts)
        self._sizes = tuple(
            len(p) if isinstance(p, (bytes, bytearray)) else os.stat(p).st_size for p in self.parts
        )
        self._delimiter = f"--{self.boundary}\r\n".encode("ascii")
        self._closing = f"--{self.boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        """The request's ``Content-Type`` (the boundary quoted, so any legal boundary works)."""
        return f'multipart/related; type="{self.media_type}"; boundary="{self.boundary}"'

    @property
    def content_length(self) -> int:
        """Exact size of the body in bytes, known before it is sent."""
        total = len(self._closing)
        for size in self._sizes:
            total += len(self._delimiter) + len(self._part_headers(size)) + size + 2
        return total

    @property
    def headers(self) -> dict[str, str]:
        """``Content-Type`` and ``Content-Length`` for the request."""
        return {"Content-Type": self.content_type, "Content-Length": str(self.content_length)}

    def _part_headers(self, size: int) -> bytes:
        return f"Content-Type: {self.media_type}\r\nContent-Length: {size}\r\n\r\n".encode("ascii")

    def __call__(self) -> Iterator[bytes]:
        return self._iterate()

    def _iterate(self) -> Iterator[bytes]:
        for source, size in zip(self.parts, self._sizes):
            yield self._delimiter + self._part_headers(size)
            if isinstance(source, (bytes, bytearray)):
                yield bytes(source)
            else:
                yield from _read_exactly(source, size)
            yield b"\r\n"
        yield self._closing


def _read_exactly(path: PartSource, size: int) -> Iterator[bytes]:
    sent = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK_SIZE)
            if not chunk:
                break
            sent += len(chunk)
            if sent > size:
                break
            yield chunk
    if sent != size:
        raise OSError(f"{os.fspath(path)!r} changed size while being sent ({size} bytes expected)")


@dataclass
class ReceivedPart:
    """One part of a multipart answer once its last byte has arrived.

    ``headers`` has lower-case names; ``sink`` is what :class:`MultipartReader`
    wrote the bytes to (already closed when the part comes from
    :func:`split_to_files`), ``size`` the number of bytes written, ``head``
    the first bytes of the part (at most the reader's ``head_bytes``),
    ``announced_size`` the part's own ``Content-Length`` when it gave a
    readable one.
    """

    headers: dict[str, str]
    sink: BinaryIO
    size: int = 0
    path: Path | None = None
    head: bytearray = field(default_factory=bytearray)
    announced_size: int | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def content_location(self) -> str:
        return self.headers.get("content-location", "")


class TruncatedMultipartError(TransportError):
    """The answer stopped before its closing boundary.

    A transport error, not a protocol one: servers that send no
    ``Content-Length`` (Orthanc's WADO) end the body by closing the
    connection, so a dropped connection and a short answer look the same,
    and asking again is the cure.
    """


SinkFactory = Callable[[dict[str, str]], BinaryIO]
"""Given a part's headers, returns a writable binary object for its bytes."""


@dataclass
class _PartState:
    headers: dict[str, str] = field(default_factory=dict)
    name: bytearray = field(default_factory=bytearray)
    value: bytearray = field(default_factory=bytearray)
    part: ReceivedPart | None = None


class MultipartReader:
    """Incremental ``multipart/*`` splitter: feed chunks, get finished parts back.

    Parameters
    ----------
    boundary
        The boundary from the answer's ``Content-Type`` (see :func:`multipart_boundary`).
    open_sink
        Called with each part's headers when they are complete; returns the
        writable object the part's bytes are written to as they arrive.
    max_header_count
        Headers allowed per part (servers add Content-Location, MIME-Version, ...).
    head_bytes
        How many of each part's first bytes to keep in ``ReceivedPart.head``.

    Notes
    -----
    :meth:`feed` returns the parts that ended within the chunk just fed, so a
    caller can finish each file (rename it, read its UID) while the rest of the
    answer is still arriving. :meth:`close` must be called at the end of the
    body: it raises :class:`~postdicom.errors.ProtocolError` if the closing
    delimiter never came (a connection dropped mid-answer looks exactly like
    that when the server sends no ``Content-Length``), as a
    :class:`TruncatedMultipartError`.
    """

    def __init__(
        self,
        boundary: str,
        open_sink: SinkFactory,
        *,
        max_header_count: int = 32,
        head_bytes: int = HEAD_BYTES,
    ) -> None:
        self._head_bytes = head_bytes
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._open_sink = open_sink
        self._state = _PartState()
        self._done: list[ReceivedPart] = []
        self._ended = False
        self._synced = False
        self._pending = b"\r\n"  # a virtual line break: a delimiter at offset 0 then looks like any other
        self._parser = MultipartParser(
            boundary.encode("latin-1"),
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
            max_header_count=max_header_count,
        )

    @property
    def ended(self) -> bool:
        """Whether the closing delimiter has been seen."""
        return self._ended

    def feed(self, data: bytes) -> list[ReceivedPart]:
        """Parse one more chunk; return the parts completed by it."""
        if self._ended or not data:
            return self._take_done()
        if not self._synced:
            synced = self._skip_preamble(data)
            if synced is None:
                return []
            data = synced
        try:
            self._parser.write(data)
        except (MultipartParseError, FormParserError) as exc:
            raise ProtocolError(f"malformed multipart answer: {exc}") from None
        return self._take_done()

    def close(self) -> None:
        """Check the answer was complete; close a part left open by a truncated body."""
        if not self._ended:
            part = self._state.part
            if part is not None and not part.sink.closed:
                part.sink.close()
            raise TruncatedMultipartError("multipart answer ended before its closing boundary")

    def _take_done(self) -> list[ReceivedPart]:
        done, self._done = self._done, []
        return done

    def _skip_preamble(self, data: bytes) -> bytes | None:
        """Drop everything before the first delimiter line (python_multipart cannot)."""
        buffer = self._pending + data
        start = 0
        while True:
            found = buffer.find(self._delimiter, start)
            if found < 0:
                self._pending = buffer[-(len(self._delimiter) - 1) :]
                return None
            after = found + len(self._delimiter)
            if len(buffer) < after + 2:
                self._pending = buffer[found:]
                return None
            if buffer[after : after + 2] in (b"\r\n", b"--"):
                self._synced = True
                self._pending = b""
                return buffer[found + 2 :]
            start = found + 1

    def _on_part_begin(self) -> None:
        self._state = _PartState()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._state.name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._state.value += data[start:end]

    def _on_header_end(self) -> None:
        state = self._state
        name = state.name.decode("latin-1").strip().lower()
        state.headers[name] = state.value.decode("latin-1").strip()
        state.name.clear()
        state.value.clear()

    def _on_headers_finished(self) -> None:
        headers = self._state.headers
        length = headers.get("content-length", "").strip()
        self._state.part = ReceivedPart(
            headers=headers,
            sink=self._open_sink(headers),
            announced_size=int(length) if length.isdigit() else None,
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._state.part
        if part is not None and end > start:
            if part.announced_size is not None and part.size + end - start > part.announced_size:
                part.sink.close()
                raise ProtocolError(
                    f"a multipart part goes on past its announced Content-Length of {part.announced_size} bytes"
                )
            missing = self._head_bytes - len(part.head)
            if missing > 0:
                part.head += data[start : min(end, start + missing)]
            part.sink.write(memoryview(data)[start:end])
            part.size += end - start

    def _on_part_end(self) -> None:
        part = self._state.part
        if part is None:  # a part with no blank line after its headers
            raise ProtocolError("multipart part without a header/body separator")
        self._done.append(part)
        self._state.part = None

    def _on_end(self) -> None:
        self._ended = True


def split_to_files(
    chunks: Iterable[bytes],
    content_type: str,
    directory: str | os.PathLike,
    *,
    prefix: str = ".part-",
) -> Iterator[ReceivedPart]:
    """Split a streamed multipart body into temporary files in ``directory``.

    Yields each part as soon as its last byte is written, its file closed and
    named in ``ReceivedPart.path``; the caller renames (or deletes) it. On any
    error the unfinished file is removed. Memory stays at one chunk whatever
    the size of the answer.

    Raises
    ------
    ProtocolError
        Not multipart, or malformed.
    TruncatedMultipartError
        Cut short before the closing boundary.
    """
    directory = Path(directory)
    opened: list[Path] = []
    token = secrets.token_hex(8)
    numbers = itertools.count()

    def open_sink(headers: dict[str, str]) -> BinaryIO:
        # Exclusive create under a random per-answer token: as safe as a named temporary
        # file, at a fraction of its cost per part.
        path = directory / f"{prefix}{token}-{next(numbers)}.tmp"
        handle = open(path, "xb")
        opened.append(path)
        return handle

    def finish(part: ReceivedPart) -> ReceivedPart:
        part.sink.close()
        part.path = Path(part.sink.name)
        opened.remove(part.path)
        return part

    reader = MultipartReader(multipart_boundary(content_type), open_sink)
    try:
        for chunk in chunks:
            for part in reader.feed(chunk):
                yield finish(part)
        reader.close()
    finally:
        for leftover in opened:
            leftover.unlink(missing_ok=True)


def read_parts(body: bytes | Sequence[bytes], content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a small multipart body held in memory (tests, short answers) into ``(headers, bytes)``."""
    chunks = [body] if isinstance(body, (bytes, bytearray)) else list(body)
    reader = MultipartReader(multipart_boundary(content_type), lambda headers: io.BytesIO())
    parts: list[ReceivedPart] = []
    for chunk in chunks:
        parts += reader.feed(chunk)
    reader.close()
    return [(p.headers, p.sink.getvalue()) for p in parts]  # type: ignore[attr-defined]  # the sinks are BytesIO
