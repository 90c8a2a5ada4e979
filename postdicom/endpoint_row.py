"""What a row of the custom-endpoint table is: :class:`Endpoint`, its retry :class:`Safety`, :class:`Lookup` and :class:`Split`.

The rows themselves are in :mod:`postdicom.endpoint_table`. Retry safety, per row:

- ``read``: repeated freely on transient failures.
- ``idempotent write``: repeating gives the same end state, so it is repeated
  freely too (a row may still look first, see ``delete_patient_order``).
- ``create: look before create``: once a create may have reached the server
  (the connection dropped after sending, a read timeout, a 5xx), the client
  first looks for what the earlier attempt may have created and returns it if
  found; only otherwise does it send the create again.
- ``create: no retry after send``: once the request may have reached the
  server it is never sent again (a share is a new link each time); the error
  goes to the caller. Requests that certainly never left (connection refused)
  and answers saying the server did not act (429, or 503 with ``Retry-After``)
  are retried by the HTTP layer, within the call's retry budget.

A parameter header over the safe size (``POSTDICOM_MAX_HEADER_BYTES``, 8 KiB by
default) is split where several smaller calls mean the same as one
(:class:`Split`), and refused before sending everywhere else.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic.alias_generators import to_snake

from .models import Answer, PatientOrderListAnswer, PatientOrderProperties, SearchFolderAnswer
from .wire import Param, UuidLike

A = TypeVar("A", bound=Answer)
"""The answer model of a row."""

Encoded = dict[str, str]
"""A parameter header object: wire key → wire string."""


class Safety(enum.Enum):
    """What may happen when the same call is sent twice (see the module docstring)."""

    READ = "read"
    IDEMPOTENT_WRITE = "idempotent write"
    LOOK_BEFORE_CREATE = "create: look before create"
    NO_RETRY_AFTER_SEND = "create: no retry after send"

    @property
    def repeatable(self) -> bool:
        """Whether the whole call may simply be run again (what a Prefect task retry does)."""
        return self in (Safety.READ, Safety.IDEMPOTENT_WRITE)


_PLAIN_RETRIES = {
    Safety.READ: "repeated on transient failures (connection, 408, 429, 5xx)",
    Safety.IDEMPOTENT_WRITE: "repeated on transient failures (a repeat leaves the same state)",
    Safety.NO_RETRY_AFTER_SEND: (
        "never sent again once it may have reached the server (a repeat would make a second one);"
        " sent again only when it never left, or after a 429 or a 503 with Retry-After (the server did nothing)"
    ),
}


class Reads(Protocol):
    """The client reads a lookup uses to find what an earlier attempt did (the client's own methods)."""

    def search_folder(
        self, parent_folder_uuid: UuidLike | None = None, folder_name: str | None = None
    ) -> SearchFolderAnswer: ...

    def get_patient_order_list(
        self, institution_uuid_list: Sequence[UuidLike], *, accession_number: str | None = None
    ) -> PatientOrderListAnswer: ...

    def get_patient_order_properties(
        self, patient_order_institution_uuid: UuidLike, patient_order_uuid: UuidLike
    ) -> PatientOrderProperties: ...


@dataclass(frozen=True)
class Lookup(Generic[A]):
    """How to find, after a failure, what an earlier attempt of the same call did.

    Attributes
    ----------
    how:
        One sentence for the docs.
    find:
        ``find(client, encoded, before)`` returns the answer the earlier
        attempt would have given, or ``None`` when it left no trace (then the
        call is sent again).
    applies:
        ``applies(encoded)``: whether this call can be looked up at all (an
        order without accession number cannot); when not, the call is not
        repeated once it may have reached the server.
    before:
        Optional ``before(client, encoded)`` run once before the first attempt;
        its result is handed to ``find`` (folder names are not unique, so the
        folders that already existed must not be mistaken for ours).
    """

    how: str
    find: Callable[[Reads, Encoded, Any], A | None]
    applies: Callable[[Encoded], bool] = lambda encoded: True
    before: Callable[[Reads, Encoded], Any] | None = None


@dataclass(frozen=True)
class Split(Generic[A]):
    """How an over-sized call becomes several calls that together mean the same.

    Attributes
    ----------
    param:
        The list parameter whose items are spread over the calls.
    merge:
        ``merge(answers)`` returns the JSON object of the combined answer.
    how:
        One sentence for the docs.
    row_key:
        For list answers read as they arrive (:meth:`~postdicom.endpoint_engine.EndpointEngine.stream_endpoint`):
        what makes a row the same row in two of the calls' answers (handed on once); ``None``: every row.
    """

    param: str
    merge: Callable[[list[A]], dict[str, Any]]
    how: str
    row_key: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Endpoint(Generic[A]):
    """One custom endpoint: everything that makes it different from the others.

    Attributes
    ----------
    vendor_name:
        The function name in the vendor document (``CreateShareLink``).
    path:
        Appended to the WebAddress.
    header:
        Name of the request header that carries the parameters.
    params:
        The documented parameters, in the vendor's (wire) order.
    answer:
        The :mod:`postdicom.models` class the JSON answer is parsed into.
    safety:
        Retry safety (:class:`Safety`).
    summary:
        One line: what the PostDICOM function does.
    label:
        Describes one call for logs and Prefect run names; formatted with the
        call's values (lists as their length, missing values as ``*``; never
        name a secret or anything that identifies a patient here).
    lookup:
        For creates (and deletes): how to recognise an earlier attempt's effect.
    split:
        How to split an over-sized call; ``None`` means such a call is refused.
    too_large:
        For rows without ``split``: why it cannot be split and what to do instead.
    python_name:
        Method and task name; derived from ``vendor_name`` unless given.
    """

    vendor_name: str
    path: str
    header: str
    params: tuple[Param, ...]
    answer: type[A]
    safety: Safety
    summary: str
    label: str
    lookup: Lookup[A] | None = None
    split: Split[A] | None = None
    too_large: str = ""
    python_name: str = ""

    def __post_init__(self) -> None:
        if not self.python_name:
            object.__setattr__(self, "python_name", to_snake(self.vendor_name))
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.vendor_name}: duplicate parameter names")
        if self.split and self.split.param not in names:
            raise ValueError(f"{self.vendor_name}: split parameter {self.split.param!r} is not a parameter")
        if self.safety is Safety.LOOK_BEFORE_CREATE and self.lookup is None:
            raise ValueError(f"{self.vendor_name}: a look-before-create row needs a lookup")
        if self.split and not self.safety.repeatable:
            raise ValueError(f"{self.vendor_name}: only reads and idempotent writes may be split")

    def signature_parameters(self) -> list[inspect.Parameter]:
        """The public parameters: required ones first, then optional ones defaulting to ``None``.

        The client method and the task of this row have exactly these (a test
        compares them), so the table and the written-out functions cannot drift.
        """
        ordered = [p for p in self.params if p.required] + [p for p in self.params if not p.required]
        return [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=inspect.Parameter.empty if p.required else None,
                annotation=p.wire.annotation if p.required else p.wire.annotation | None,
            )
            for p in ordered
        ]

    @property
    def retry_doc(self) -> str:
        """The retry choice in words (docs)."""
        if self.lookup is not None:
            return f"{self.safety.value}; {self.lookup.how}"
        return f"{self.safety.value}; {_PLAIN_RETRIES[self.safety]}"

    @property
    def too_large_doc(self) -> str:
        """What happens to an over-sized parameter header (docs)."""
        return f"split: {self.split.how}" if self.split else f"refused: {self.too_large}"

    def describe(self, values: Mapping[str, Any]) -> str:
        """The row's :attr:`label` for one call (secrets are never shown, lists as counts)."""
        shown: dict[str, str] = {}
        for p in self.params:
            value = values.get(p.name)
            if p.wire.secret:
                shown[p.name] = "***"
            elif value is None or value == "":
                shown[p.name] = "*"
            elif p.wire.is_list and not isinstance(value, str):
                shown[p.name] = str(len(value)) if isinstance(value, Sized) else "some"
            else:
                shown[p.name] = str(value)
        return self.label.format(**shown)
