"""``multipart/related`` in both directions, streamed: parts go to and from files, never whole in memory.

STOW bodies are split with python-multipart's push parser as the bytes arrive
(each part lands in a temp file); WADO answers are generated from the stored
files in chunks, with a Content-Length computed up front because it is cheap.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from sandbox.errors import ApiError

if TYPE_CHECKING:  # python-multipart declares its callback table for type checkers only
    from python_multipart.multipart import MultipartCallbacks

CHUNK = 1024 * 1024


@dataclass
class ReceivedPart:
    path: Path
    headers: dict[str, str] = field(default_factory=dict)
    size: int = 0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """Media type and parameters; quoted values (a boundary with spaces) are unquoted."""
    media, params = parse_options_header(value)
    return (media.decode("latin-1").lower(),
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in params.items()})


class _PartSink:
    """python-multipart callbacks that write each part to its own temp file."""

    def __init__(self, new_path: Callable[[], Path]):
        self.new_path = new_path
        self.parts: list[ReceivedPart] = []
        self._handle: BinaryIO | None = None
        self._field = bytearray()
        self._value = bytearray()
        self.finished = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self.on_header_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        part = ReceivedPart(self.new_path())
        self.parts.append(part)
        self._handle = part.path.open("wb")

    def on_header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self.parts[-1].headers[name] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        """Written through a memoryview: slicing the bytes would copy every received byte once more."""
        if self._handle is None:
            raise ApiError(400, "multipart part data outside a part")
        self._handle.write(memoryview(data)[start:end])
        self.parts[-1].size += end - start

    def on_part_end(self) -> None:
        self.close()

    def on_end(self) -> None:
        self.finished = True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def receive_parts(chunks: AsyncIterator[bytes], boundary: str,
                        new_path: Callable[[], Path]) -> list[ReceivedPart]:
    """Split a multipart body into temp files as it streams in.

    python-multipart rejects a non-empty preamble, which RFC 2046 allows; the
    bytes before the first delimiter are skipped here. On any failure the temp
    files written so far are removed.
    """
    sink = _PartSink(new_path)
    parser = MultipartParser(boundary.encode("latin-1"), sink.callbacks(), max_header_count=64,
                             max_header_size=16 * 1024)
    delimiter = b"--" + boundary.encode("latin-1")
    pending = b""
    started = False
    try:
        async for chunk in chunks:
            if not started:
                pending += chunk
                at = pending.find(delimiter)
                if at < 0:
                    pending = pending[-len(delimiter):]
                    continue
                started = True
                chunk, pending = pending[at:], b""
            if chunk:
                parser.write(chunk)
        if not started:
            raise ApiError(400, f"multipart body holds no delimiter for boundary {boundary!r}")
        parser.finalize()
        if not sink.finished:
            raise ApiError(400, "multipart body ends before its closing delimiter")
    except ApiError:
        _discard(sink)
        raise
    except Exception as exc:
        _discard(sink)
        raise ApiError(400, "malformed multipart body") from exc
    finally:
        sink.close()
    return sink.parts


def _discard(sink: _PartSink) -> None:
    sink.close()
    for part in sink.parts:
        part.path.unlink(missing_ok=True)


@dataclass
class OutgoingPart:
    """A part to send: a stored file (streamed) or, for small values, bytes in memory."""

    path: Path | None
    size: int
    content_type: str
    location: str = ""
    data: bytes | None = None


def multipart_body(parts: list[OutgoingPart]) -> tuple[str, int, Iterator[bytes]]:
    """Boundary, exact Content-Length and a chunk iterator for a ``multipart/related`` answer."""
    boundary = secrets.token_hex(16)
    heads = []
    for part in parts:
        head = f"--{boundary}\r\nContent-Type: {part.content_type}\r\nContent-Length: {part.size}\r\n"
        if part.location:
            head += f"Content-Location: {part.location}\r\n"
        heads.append((head + "\r\n").encode("latin-1"))
    tail = f"--{boundary}--\r\n".encode("latin-1")
    length = sum(len(h) + p.size + 2 for h, p in zip(heads, parts)) + len(tail)

    def chunks() -> Iterator[bytes]:
        for head, part in zip(heads, parts):
            yield head
            if part.data is not None:
                yield part.data + b"\r\n"
                continue
            if part.path is None:
                raise ValueError("an outgoing part has neither a file nor data")
            sent = 0
            with part.path.open("rb") as handle:
                while sent < part.size:
                    block = handle.read(min(CHUNK, part.size - sent))
                    if not block:
                        raise OSError(f"{part.path} is shorter than indexed")
                    sent += len(block)
                    yield block
            yield b"\r\n"
        yield tail

    return boundary, length, chunks()
