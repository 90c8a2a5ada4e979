"""Reading a list answer as it arrives: each row handed on once its JSON has come, never the whole list at once.

GetPatientOrderList does not page: a day of a large account is one answer of
tens of megabytes. Read whole (:func:`postdicom.answers.read_answer`), the
body, its text, its JSON and its models are all alive at once, about 5 KB an
order at the peak. Read here, only the row being handed on and the part of
the body not yet parsed are held: memory is proportional to the largest row
(and the read in hand, parsed in pieces of :data:`PIECE_BYTES`), not to the list.

Every shape :mod:`postdicom.answers` accepts is accepted, with the same steps:
:class:`JsonPull` parses the body piece by piece with the standard library's
own JSON scanner (``json.JSONDecoder.raw_decode``, in C); :func:`read_list`
walks down the objects an answer may be wrapped in (envelopes, the documented
object, up to the depth :mod:`postdicom.answers` unwraps) and streams the
first array of objects it meets (outside the status keys) row by row. What is
left, the answer's JSON with that array empty, goes through the same
:class:`~postdicom.answers.AnswerRead` steps as an answer read whole: they
say whether that array is the list (else the rows handed on were not the
answer's and :class:`~postdicom.errors.UnreadableAnswerError` is raised), note
the shape and the fallbacks, and raise
:class:`~postdicom.errors.FailedAnswerError` for a body that says the call
failed. Shapes that cannot stream (the answer as a JSON string holding JSON,
a single object for the list) are read whole, as before, and their rows
handed on after.

What streaming changes: a status flag that says the call failed is seen
before the first row only when it comes before the list (it usually does);
one that comes after, or a body cut or unreadable after some rows, raises once
those rows were handed on, so a consumer treats what it got as void when the
iteration raises. The size cap (``POSTDICOM_MAX_JSON_BYTES``) and the
request's deadline (``POSTDICOM_REQUEST_DEADLINE``) are those of an answer read
whole.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Generator, Iterator, Mapping
from typing import Any, Generic, TypeVar

import httpx

from .answer_fields import key_form
from .answers import (
    _MAX_UNWRAP,
    EXCERPT_BYTES,
    STATUS_KEYS,
    AnswerRead,
    AnsweringRow,
    _log_once,
    flags_failure,
    list_rows,
    not_json,
    raise_failed,
    row_understood,
)
from .http_errors import bounded_body
from .models import Answer, AnswerReading

R = TypeVar("R")

_SPACE = re.compile(r"[ \t\n\r]*")
PIECE_BYTES = 64 * 1024
"""Largest piece of the body decoded and parsed at once, however large the reads that brought it.

The session's transport reads a JSON answer 64 KiB at a time (:func:`postdicom.transport.plain_reads`),
but a chunk of the body can be larger: a decompressed read, a read of another transport, or of
the session's own before it read JSON answers that way (1 MiB, :data:`postdicom.transport.READ_BYTES`).
Decoded whole, such a chunk became a text of 1 to 4 MiB (a ``str`` holding one
character outside Latin-1 stores every character in 2 or 4 bytes), copied again
when joined to the unparsed rest. In these pieces, reading a 20,000-order list
peaks about 2 MB lower in Python memory and 3 MB lower in the process's RSS
(``benchmarks/RESULTS.md``, *Export memory, seventh pass*). A row cut by a
piece's end is parsed again once the next piece has come, about one row in a
hundred at 600 bytes a row.
"""


def pieces(chunks: Iterator[bytes], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """The body's chunks, each cut into pieces of at most ``size`` bytes (in order, nothing dropped)."""
    for chunk in chunks:
        if len(chunk) <= size:
            yield chunk
            continue
        for start in range(0, len(chunk), size):
            yield chunk[start : start + size]


class JsonPull:
    """A JSON text parsed from the front as its bytes arrive, one value at a time.

    Only what is not parsed yet is kept. A value cut by the end of a piece
    is parsed again once more has come; a value still incomplete waits until
    the unparsed text has doubled, so a large value costs a few parses, not
    one per piece. Raises ``ValueError`` for JSON that cannot be read (and
    at the end of the body inside a value).
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = pieces(chunks)
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._scan = json.JSONDecoder().raw_decode
        self.text = ""
        self.pos = 0
        self.ended = False
        self.head = b""
        """The first bytes of the body (for the masked excerpt of an error)."""

    def _more(self) -> bool:
        """Take the next piece of the body; ``False`` once it has ended."""
        if self.ended:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self.ended = True
            rest = self._utf8.decode(b"", final=True)
            self.text = self.text[self.pos :] + rest
            self.pos = 0
            return bool(rest)
        if len(self.head) <= EXCERPT_BYTES:
            self.head += chunk[: EXCERPT_BYTES + 1 - len(self.head)]
        self.text = self.text[self.pos :] + self._utf8.decode(chunk)
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space, not taken (``""`` at the end of the body)."""
        while True:
            match = _SPACE.match(self.text, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.pos = match.end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def take(self, char: str) -> None:
        """Take ``char``, the next character that is not white space; ``ValueError`` if it is another."""
        if self.peek() != char:
            raise ValueError(f"expected {char!r}")
        self.pos += 1

    def value(self) -> Any:
        """The next JSON value, parsed whole."""
        self.peek()
        while True:
            try:
                value, end = self._scan(self.text, self.pos)
            except (ValueError, RecursionError):
                if not self._grow():
                    raise ValueError("JSON that cannot be read, or cut short") from None
                continue
            if end == len(self.text) and isinstance(value, (int, float)) and self._more():
                continue  # a number at the end of a piece may go on in the next one
            self.pos = end
            return value

    def _grow(self) -> bool:
        """Take pieces until the unparsed text has doubled; ``False`` when nothing more can come."""
        if self.ended:
            return False
        wanted = 2 * (len(self.text) - self.pos)
        while self._more() and len(self.text) - self.pos < wanted:
            pass
        return True


class _Streamed(list[Any]):
    """Stands, empty, for the array whose rows were handed on, in the answer's JSON read at the end."""


class ListRead:
    """The walk of one list answer's JSON (:func:`read_list`): the rows, then what was left around them."""

    def __init__(self, pull: JsonPull, read: AnswerRead) -> None:
        self.pull = pull
        self.read = read
        self.streamed: _Streamed | None = None
        self._open: list[dict[str, Any]] = []

    def walk(self, depth: int = 0, status: bool = False) -> Generator[Mapping[str, Any], None, Any]:
        """Yield the rows of the first array of objects met; return the JSON value read, that array left empty."""
        pull = self.pull
        char = pull.peek()
        if char == "{" and depth <= _MAX_UNWRAP and not status:
            pull.take("{")
            found: dict[str, Any] = {}
            self._open.append(found)
            if pull.peek() == "}":
                pull.take("}")
            else:
                while True:
                    key = pull.value()
                    if not isinstance(key, str):
                        raise ValueError("an object key that is not a string")
                    pull.take(":")
                    listed = self.read.model.known_key(key) == self.read.model.list_key
                    if listed and pull.peek() != "[":
                        found[key] = pull.value()  # the documented list as null, a JSON string, one object ...
                    else:
                        found[key] = yield from self.walk(depth + 1, key_form(key) in STATUS_KEYS)
                    if pull.peek() == ",":
                        pull.take(",")
                        continue
                    pull.take("}")
                    break
            self._open.pop()
            return found
        if char == "[" and self.streamed is None and not status:
            return (yield from self._array())
        return pull.value()

    def _array(self) -> Generator[Mapping[str, Any], None, Any]:
        """An array: streamed row by row when its first item is an object, else read whole."""
        pull = self.pull
        pull.take("[")
        if pull.peek() == "]":
            pull.take("]")
            return []
        first = pull.value()
        if not isinstance(first, Mapping):
            items = [first]
            while pull.peek() == ",":
                pull.take(",")
                items.append(pull.value())
            pull.take("]")
            return items
        for enclosing in self._open:  # a failure said before the list is raised before any row is handed on
            if flags_failure(enclosing):
                raise_failed(self.read.endpoint, enclosing, self.read.where)
        self.streamed = _Streamed()
        yield first
        while pull.peek() == ",":
            pull.take(",")
            item = pull.value()
            if not isinstance(item, Mapping):
                raise self.read.unreadable("no list of objects found (an array of objects and other values)")
            yield item
        pull.take("]")
        return self.streamed


def read_list(
    row: AnsweringRow, response: httpx.Response, limit: int, reading: AnswerReading | None = None
) -> Generator[Answer, None, None]:
    """The rows of a list answer as its body arrives (``response`` streamed, body not read).

    Parameters
    ----------
    row:
        The endpoint that answered (a list answer: its model has a ``list_key``).
    response:
        The success answer, its body not read yet.
    limit:
        Largest body read, counted after decompression (``POSTDICOM_MAX_JSON_BYTES``).
    reading:
        Where to note how the answer was read (shape, fallbacks, unknown keys);
        complete once the generator is exhausted.

    Yields
    ------
    Answer
        Each row, as the row model of the list (``row.answer``'s list field).

    Raises
    ------
    postdicom.errors.UnreadableAnswerError, postdicom.errors.FailedAnswerError
        As :func:`postdicom.answers.read_answer` (possibly after rows were handed on).
    postdicom.errors.AnswerTooLargeError
        The body is over ``limit``.
    postdicom.errors.TransportError
        The connection was lost while the body was read.
    """
    model = row.answer
    assert model.list_key is not None, f"{row.vendor_name} does not answer a list"
    method, url = response.request.method, str(response.request.url)
    where = dict(status=response.status_code, method=method, url=url)
    pull = JsonPull(bounded_body(response, limit, method, url))
    read = AnswerRead(row.vendor_name, model, b"", response.headers.get("X-Error-Reason"), where)
    walk = ListRead(pull, read)
    row_model = _row_model(model)
    unknown: dict[str, None] = {}
    understood = True
    try:
        if pull.peek() == "\ufeff":
            pull.pos += 1
            read.without_bom("\ufeff")
        empty = pull.peek() == ""
        data: Any = None
        rows = walk.walk() if not empty else iter(())
        while True:
            try:
                entry = next(rows)
            except StopIteration as end:
                data = end.value
                break
            found = read.validate(row_model, entry, read.notes)
            understood = understood and row_understood(found)
            for key in found.unknown_keys(f"{model.list_key}[]."):
                unknown.setdefault(key, None)
            yield found
        if pull.peek() != "":
            raise ValueError("more after the JSON value")
    except ValueError:
        read.head = pull.head
        raise read.unreadable(not_json(pull.head.decode("utf-8", errors="replace"))) from None
    read.head = pull.head
    answer = read.answer(data, empty=empty)
    if walk.streamed is not None and read.listed is not walk.streamed:
        raise read.unreadable("several lists of objects; the rows handed on were not the answer's list")
    yield from list_rows(answer)  # the rows of a shape read whole (none when the list was streamed)
    answer.reading.unknown_keys += [key for key in unknown if key not in answer.reading.unknown_keys]
    answer.reading.understood = answer.reading.understood and understood
    _log_once(answer.reading)
    if reading is not None:
        merge_reading(reading, answer.reading)


def _row_model(model: type[Answer]) -> type[Answer]:
    """The model of one row of the list answer ``model``."""
    name = next(name for name, f in model.model_fields.items() if (f.alias or name) == model.list_key)
    annotation = model.model_fields[name].annotation
    (item,) = getattr(annotation, "__args__", (None,))
    assert isinstance(item, type) and issubclass(item, Answer), f"{model.__name__}.{name} is not a list of answers"
    return item


def merge_reading(into: AnswerReading, other: AnswerReading) -> None:
    """Add what ``other`` noted to ``into`` (the answers of a split call read as one)."""
    if not into.endpoint:
        into.endpoint, into.shape, into.status, into.empty = other.endpoint, other.shape, other.status, other.empty
    else:
        into.empty = into.empty and other.empty
    for name in ("fallbacks", "unknown_keys", "warnings"):
        mine = getattr(into, name)
        mine += [item for item in getattr(other, name) if item not in mine]
    into.understood = into.understood and other.understood


class AnswerRows(Generic[R]):
    """The rows of a list answer, each handed on as it arrives (an iterator, and a context manager).

    Iterate once. The connection is let go when the rows are exhausted, when
    iterating raises, or on :meth:`close` (``with`` closes it too, so leaving
    the loop early lets the connection go at once). :attr:`reading` says how
    the answer was read once every row was handed on.
    """

    def __init__(self, rows: Generator[R, None, None], reading: AnswerReading) -> None:
        self._rows = rows
        self.reading = reading

    def __iter__(self) -> AnswerRows[R]:
        return self

    def __next__(self) -> R:
        return next(self._rows)

    def close(self) -> None:
        """Stop reading and let the connection go (the rows not read yet are lost)."""
        self._rows.close()

    def __enter__(self) -> AnswerRows[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["AnswerRows", "JsonPull", "read_list"]
