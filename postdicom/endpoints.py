"""The 13 custom endpoints of PostDICOM as rows of one table, sent by one function.

The endpoints differ only in data: a path, the name of the parameter header,
the parameters (names, wire types, which are required), the answer model, and
how safe it is to send the same call twice. :data:`ENDPOINTS` holds that data;
:meth:`CustomEndpointsMixin.call_endpoint` sends any row; the 13 client methods
(``create_share_link`` ...) are generated from the rows with real signatures
and docstrings, so ``help()``, IPython and Prefect see the documented
parameters. Adding a 14th endpoint is adding a row.

Every call is ``GET {WebAddress}{path}`` with an empty body and one header
holding the parameters (see :mod:`postdicom.wire`).

Retry safety, per row (:class:`Safety`):

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
  and 429 answers (the server did not act) are retried by the HTTP layer.

A parameter header over the safe size (``POSTDICOM_MAX_HEADER_BYTES``, 8 KiB by
default) is split where several smaller calls mean the same as one
(:class:`Split`), and refused before sending everywhere else.
Every row also becomes a section of ``docs/endpoints.md`` (:func:`endpoints_markdown`).
"""

from __future__ import annotations

import enum
import inspect
import logging
import textwrap
import time
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_snake

from . import wire
from .errors import HeaderTooLargeError, NotFoundError, PostDicomError, ProtocolError, ThrottledError, is_transient
from .models import (
    AddOrderToFolderAnswer,
    Answer,
    AssignOrderToUserAnswer,
    AssignOrderToUserGroupAnswer,
    CreatePatientOrderAnswer,
    DeleteOrderAnswer,
    DicomTagContentAnswer,
    FolderAnswer,
    PatientOrderListAnswer,
    PatientOrderProperties,
    SearchFolderAnswer,
    ShareAnswer,
)
from .wire import (
    BOOL,
    DATE,
    DATETIME_MINUTES,
    MODALITY,
    MODALITY_LIST,
    ORDER_INFO_LIST,
    SECRET,
    SEX,
    TAG_LIST,
    TEXT,
    UUID,
    UUID_LIST,
    Param,
)
from .writes import note_write

if TYPE_CHECKING:
    from ._endpoint_signatures import EndpointSignatures
    from .http import HttpSession
else:
    EndpointSignatures = object
    """At run time the methods are generated from the table; type checkers read them from the stub."""

log = logging.getLogger("postdicom.endpoints")

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
        "never sent again once it may have reached the server (a repeat would make a second one)"
    ),
}


@dataclass(frozen=True)
class Lookup:
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
    find: Callable[[CustomEndpointsMixin, Encoded, Any], Answer | None]
    applies: Callable[[Encoded], bool] = lambda encoded: True
    before: Callable[[CustomEndpointsMixin, Encoded], Any] | None = None


@dataclass(frozen=True)
class Split:
    """How an over-sized call becomes several calls that together mean the same.

    Attributes
    ----------
    param:
        The list parameter whose items are spread over the calls.
    merge:
        ``merge(answers)`` returns the JSON object of the combined answer.
    how:
        One sentence for the docs.
    """

    param: str
    merge: Callable[[list[Any]], dict[str, Any]]
    how: str


@dataclass(frozen=True)
class Endpoint:
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
        name a secret or a patient here).
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
    answer: type[Answer]
    safety: Safety
    summary: str
    label: str
    lookup: Lookup | None = None
    split: Split | None = None
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
        """The public parameters: required ones first, then optional ones defaulting to ``None``."""
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
        """The retry choice in words (docs and docstrings)."""
        if self.lookup is not None:
            return f"{self.safety.value}; {self.lookup.how}"
        return f"{self.safety.value}; {_PLAIN_RETRIES[self.safety]}"

    @property
    def too_large_doc(self) -> str:
        """What happens to an over-sized parameter header (docs and docstrings)."""
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

    def docstring(self, leading: Sequence[tuple[str, str, str]] = ()) -> str:
        """A numpydoc docstring for the generated method or task.

        ``leading`` lists ``(name, type, description)`` of parameters that come
        before the documented ones (a task's ``credentials``).
        """
        lines = [self.summary, "", "Parameters", "----------"]
        for name, kind, text in leading:
            lines += [f"{name} : {kind}", f"    {text}"]
        by_name = {p.name: p for p in self.params}
        for sp in self.signature_parameters():
            p = by_name[sp.name]
            optional = "" if p.required else ", optional"
            lines.append(f"{p.name} : {p.wire.name}{optional}")
            meaning = f"{p.doc} " if p.doc else ""
            empty = f" An empty list is sent as ``{wire.EMPTY_LIST}``." if p.empty_ok else ""
            lines.append(f"    {meaning}Wire key ``{p.key}``; {p.wire.accepts}.{empty}")
        lines += [
            "",
            "Returns",
            "-------",
            self.answer.__name__,
            "    The JSON answer parsed; ``.raw`` keeps it as received.",
            "",
            "Raises",
            "------",
            "postdicom.errors.ValidationError",
            "    A parameter is missing or malformed, or the header is too large; nothing was sent.",
            "postdicom.errors.PostDicomError",
            "    The server refused the call or could not be reached (``X-Error-Reason`` included).",
            "",
            "Notes",
            "-----",
            f"``GET {self.path}`` with the parameters in the ``{self.header}`` header.",
            f"Retries: {self.retry_doc}.",
            f"Header over the safe size: {self.too_large_doc}.",
        ]
        return "\n".join(lines)


# --- row-specific behaviour: lookups and merges --------------------------------------------


def _order_by_accession(client: CustomEndpointsMixin, encoded: Encoded, before: Any) -> Answer | None:
    listing = client.get_patient_order_list(
        institution_uuid_list=[encoded["InstitutionUuid"]],
        accession_number=encoded["AccessionNumber"],
    )
    for order in listing.patient_order_list:
        if (
            order.accession_number == encoded["AccessionNumber"]
            and order.patient_id == encoded["PatientId"]
            and (order.institution_uuid or "").lower() == encoded["InstitutionUuid"]
        ):
            return CreatePatientOrderAnswer.from_json(order.raw)
    return None


def _matching_folders(client: CustomEndpointsMixin, encoded: Encoded) -> list[FolderAnswer]:
    # Names compared without surrounding blanks: a server may trim what it stores.
    parent = encoded["ParentFolderUuid"] or None
    name = encoded["FolderName"].strip()
    found = client.search_folder(parent_folder_uuid=parent, folder_name=name)
    return [
        f
        for f in found.folder_list
        if (f.folder_name or "").strip() == name and (f.parent_folder_uuid or None) == parent
    ]


def _new_folder(client: CustomEndpointsMixin, encoded: Encoded, before: Any) -> Answer | None:
    existing = before or set()
    for folder in _matching_folders(client, encoded):
        if folder.folder_uuid not in existing:
            return FolderAnswer.from_json(folder.raw)
    return None


def _existing_folder_uuids(client: CustomEndpointsMixin, encoded: Encoded) -> set[str | None]:
    return {f.folder_uuid for f in _matching_folders(client, encoded)}


def _order_gone(client: CustomEndpointsMixin, encoded: Encoded, before: Any) -> Answer | None:
    try:
        client.get_patient_order_properties(encoded["PatientOrderInstitutionUuid"], encoded["PatientOrderUuid"])
    except NotFoundError:
        return DeleteOrderAnswer.from_json(
            {"PatientOrderUuid": encoded["PatientOrderUuid"], "Deleted": True, "DeletedInstanceCount": None}
        )
    return None


def _merge_order_lists(answers: list[Any]) -> dict[str, Any]:
    seen: set[str | None] = set()
    rows = []
    for answer in answers:
        for row in answer.patient_order_list:
            if row.patient_order_uuid not in seen:
                seen.add(row.patient_order_uuid)
                rows.append(row)
    rows.sort(key=lambda r: (r.study_date is None, r.study_date or ""))
    return {"PatientOrderList": [r.raw for r in rows]}


def _merge_folder_additions(answers: list[Any]) -> dict[str, Any]:
    merged = answers[-1].model_dump(by_alias=True, mode="json")
    merged["AddedFolderUuidList"] = [u for a in answers for u in a.added_folder_uuid_list]
    return merged


def _merge_tag_contents(answers: list[Any]) -> dict[str, Any]:
    merged = answers[0].model_dump(by_alias=True, mode="json")
    merged["DicomTagContentList"] = [row.raw for a in answers for row in a.dicom_tag_content_list]
    return merged


_ONE_LINK = "a share is one link; share a folder of the orders instead (add_order_to_folder, share_folder_with_url)"
_NO_LIST = "no list to spread over several calls; shorten the text values"

_ORDER_IN_INSTITUTION = (
    Param("patient_order_institution_uuid", UUID, required=True, doc="Institution the order belongs to."),
    Param("patient_order_uuid", UUID, required=True, doc="The order."),
)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "CreateShareLink", "/createsharelink", "ShareParameters",
        (
            Param("patient_order_info_list", ORDER_INFO_LIST, required=True, doc="Orders to share."),
            Param("expire_date", DATE, required=True, doc="Last day the link works."),
            Param("share_password", SECRET, doc="Password asked by the link; empty for a public link."),
            Param("downloadable", BOOL, doc="Whether the recipient may download the studies."),
        ),
        ShareAnswer, Safety.NO_RETRY_AFTER_SEND,
        "Create a web link that shares one or more patient orders, optionally password protected.",
        "share {patient_order_info_list} order(s) until {expire_date}",
        too_large=_ONE_LINK,
    ),
    Endpoint(
        "SharePatientOrderWithUrl", "/sharepatientorderwithurl", "SharePatientOrderParameters",
        (
            Param("order_uuid_list", UUID_LIST, required=True, doc="Orders to share."),
            Param("expire_date", DATE, required=True, doc="Last day the URL works."),
            Param("share_password", SECRET, doc="Password asked by the URL; empty for a public URL."),
            Param("user_can_download_studies", BOOL, doc="Whether the recipient may download the studies."),
        ),
        ShareAnswer, Safety.NO_RETRY_AFTER_SEND,
        "Create a shareable URL for selected patient orders, with download permission and password.",
        "share {order_uuid_list} order(s) by URL until {expire_date}",
        too_large=_ONE_LINK,
    ),
    Endpoint(
        "CreateFolder", "/createfolder", "CreateFolderParameters",
        (
            Param("folder_name", TEXT, required=True, doc="Visible name (not unique on the server)."),
            Param("folder_description", TEXT),
            Param("parent_folder_uuid", UUID, doc="Create inside this folder; top level when not given."),
        ),
        FolderAnswer, Safety.LOOK_BEFORE_CREATE,
        "Create a folder (a virtual container that organises patient orders).",
        "create folder '{folder_name}' in {parent_folder_uuid}",
        lookup=Lookup(
            "looks (SearchFolder) for a folder of the same name and parent that was not there before"
            " the first attempt, and returns it instead of creating another",
            find=_new_folder,
            before=_existing_folder_uuids,
        ),
        too_large=_NO_LIST,
    ),
    Endpoint(
        "SearchFolder", "/searchfolder", "SearchFolderParameters",
        (
            Param("parent_folder_uuid", UUID, doc="Search only the direct children of this folder."),
            Param("folder_name", TEXT, doc="Full or partial name, case-insensitive."),
            Param("get_orders_in_folder", BOOL, doc="Also list the orders in each folder found."),
        ),
        SearchFolderAnswer, Safety.READ,
        "Find folders by name and parent, optionally with the orders each holds.",
        "search folders '{folder_name}' in {parent_folder_uuid}",
        too_large=_NO_LIST,
    ),
    Endpoint(
        "ShareFolderWithUrl", "/sharefolderwithurl", "ShareFolderParameters",
        (
            Param("folder_uuid", UUID, required=True, doc="Folder to share with everything in it."),
            Param("share_password", SECRET, doc="Password asked by the URL; empty for a public URL."),
            Param("share_title", TEXT, doc="Title shown on the shared page."),
            Param("share_description", TEXT, doc="Description shown on the shared page."),
            Param("expire_date", DATE, doc="Last day the URL works; never expires when not given."),
            Param("user_can_download_studies", BOOL, doc="Whether the recipient may download the studies."),
        ),
        ShareAnswer, Safety.NO_RETRY_AFTER_SEND,
        "Create a shareable URL for a whole folder and its contents.",
        "share folder {folder_uuid} until {expire_date}",
        too_large=_NO_LIST,
    ),
    Endpoint(
        "AddOrderToFolder", "/addordertofolder", "AddOrderToFolderParameters",
        (
            Param("patient_order_uuid", UUID, required=True, doc="The order to file."),
            Param("folder_uuid_list", UUID_LIST, required=True, doc="Folders to put it in."),
        ),
        AddOrderToFolderAnswer, Safety.IDEMPOTENT_WRITE,
        "Put an existing patient order into existing folders (an association: nothing is copied).",
        "add order {patient_order_uuid} to {folder_uuid_list} folder(s)",
        split=Split(
            "folder_uuid_list",
            _merge_folder_additions,
            "the folders are spread over several calls; each call adds the order to its folders,"
            " so together they add it to all (FolderUuidList from the last answer, AddedFolderUuidList joined)",
        ),
    ),
    Endpoint(
        "AssignOrderToUser", "/assignordertouser", "AssignOrderToUserParameters",
        (
            Param("patient_order_uuid", UUID, required=True, doc="The order to assign."),
            Param("assigned_user_uuid", UUID, required=True, doc="User who becomes responsible for it."),
        ),
        AssignOrderToUserAnswer, Safety.IDEMPOTENT_WRITE,
        "Assign a patient order to one user (replacing the previous assignee).",
        "assign order {patient_order_uuid} to user {assigned_user_uuid}",
        too_large=_NO_LIST,
    ),
    Endpoint(
        "AssignOrderToUserGroup", "/assignordertousergroup", "AssignOrderToUserGroupParameters",
        (
            Param("patient_order_uuid", UUID, required=True, doc="The order to assign."),
            Param("assigned_user_group_uuid", UUID, required=True, doc="Group whose members may take it."),
        ),
        AssignOrderToUserGroupAnswer, Safety.IDEMPOTENT_WRITE,
        "Assign a patient order to a user group (replacing the previous group).",
        "assign order {patient_order_uuid} to group {assigned_user_group_uuid}",
        too_large=_NO_LIST,
    ),
    Endpoint(
        "CreatePatientOrder", "/createpatientorder", "CreatePatientOrderParameters",
        (
            Param("institution_uuid", UUID, required=True, doc="Institution the order is created in."),
            Param("patient_name", TEXT, required=True, doc="DICOM person name, e.g. ``Muñoz^José``."),
            Param("patient_id", TEXT, required=True, doc="Patient identifier (MRN)."),
            Param("other_patient_id", TEXT),
            Param("patient_sex", SEX),
            Param("patient_birthdate", DATE, required=True),
            Param("modality", MODALITY, required=True),
            Param("study_description", TEXT),
            Param(
                "accession_number", TEXT,
                doc="Identifies the order; give one so that a retry can find an order an earlier attempt made.",
            ),
            Param("patient_complaints", TEXT),
            Param("order_scheduled_datetime", DATETIME_MINUTES, doc="When the procedure is scheduled."),
            Param("requested_procedure_id", TEXT),
            Param("requested_procedure_description", TEXT),
            Param("requesting_physician", TEXT),
            Param("referring_physicians_name", TEXT),
            Param("scheduled_equipment_uuid", UUID, doc="Equipment the procedure is scheduled on."),
        ),
        CreatePatientOrderAnswer, Safety.LOOK_BEFORE_CREATE,
        "Create a (scheduled) patient order for an imaging study.",
        "create {modality} order {accession_number} in {institution_uuid}",
        lookup=Lookup(
            "with an accession number, looks (GetPatientOrderList) for the order with that accession number"
            " and patient id in the institution and returns it instead of creating another; without one the"
            " server makes one up, so the call is not repeated once it may have reached the server",
            find=_order_by_accession,
            applies=lambda encoded: bool(encoded["AccessionNumber"]),
        ),
        too_large=_NO_LIST,
    ),
    Endpoint(
        "GetPatientOrderProperties", "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
        _ORDER_IN_INSTITUTION,
        PatientOrderProperties, Safety.READ,
        "Read every property of one patient order (patient, study, series, assignments, folders).",
        "properties of order {patient_order_uuid}",
        too_large=_NO_LIST,
    ),
    Endpoint(
        "GetDicomTagContent", "/getdicomtagcontent", "GetDicomTagContentParameters",
        (
            *_ORDER_IN_INSTITUTION,
            Param("patient_series_uuid", UUID, doc="Read only this series."),
            Param("dicom_tag_id_list", TAG_LIST, doc="Tags to read; a default set when not given."),
        ),
        DicomTagContentAnswer, Safety.READ,
        "Read the values of DICOM tags in the images of a patient order.",
        "read {dicom_tag_id_list} tag(s) of order {patient_order_uuid}",
        split=Split(
            "dicom_tag_id_list",
            _merge_tag_contents,
            "the tags are spread over several calls and the rows joined (rows are per series and tag)",
        ),
    ),
    Endpoint(
        "GetPatientOrderList", "/getpatientorderlist", "GetPatientOrderListParameters",
        (
            Param(
                "institution_uuid_list", UUID_LIST, required=True, empty_ok=True,
                doc="Institutions to search; an empty list searches all of the account's.",
            ),
            Param("patient_name", TEXT, doc="Substring, case-insensitive; ``*`` is a wildcard."),
            Param("patient_id", TEXT, doc="Substring, case-insensitive."),
            Param("other_patient_id", TEXT, doc="Exact match."),
            Param("accession_number", TEXT, doc="Exact match."),
            Param("modality_list", MODALITY_LIST, doc="Orders having any of these modalities."),
            Param("study_date_from", DATE),
            Param("study_date_to", DATE),
            Param("patient_birthdate_from", DATE),
            Param("patient_birthdate_to", DATE),
        ),
        PatientOrderListAnswer, Safety.READ,
        "Search patient orders by patient, accession number, modality and date ranges.",
        "list orders in {institution_uuid_list} institution(s)",
        split=Split(
            "institution_uuid_list",
            _merge_order_lists,
            "the institutions are spread over several calls; the orders are joined (each once)"
            " and sorted by study date",
        ),
    ),
    Endpoint(
        "DeletePatientOrder", "/deleteorder", "DeleteOrderParameters",
        _ORDER_IN_INSTITUTION,
        DeleteOrderAnswer, Safety.IDEMPOTENT_WRITE,
        "Delete a patient order permanently, with its series, images, folder memberships and assignments.",
        "delete order {patient_order_uuid}",
        lookup=Lookup(
            "before repeating, reads the order (GetPatientOrderProperties): a 404 means an earlier attempt"
            " deleted it, and that attempt's success is returned (DeletedInstanceCount unknown: null)",
            find=_order_gone,
        ),
        too_large=_NO_LIST,
    ),
)
"""The table. One row per custom endpoint, in the vendor document's order."""

BY_NAME: dict[str, Endpoint] = {e.python_name: e for e in ENDPOINTS} | {e.vendor_name: e for e in ENDPOINTS}
"""Rows by Python name and by vendor name."""


def endpoint(name: str) -> Endpoint:
    """The row for ``name`` (``create_share_link`` or ``CreateShareLink``)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no custom endpoint named {name!r}") from None


# --- the one request function -------------------------------------------------------------


def _too_large(row: Endpoint, size: int, limit: int, why: str) -> HeaderTooLargeError:
    return HeaderTooLargeError(
        f"{row.vendor_name}: the {row.header} header would be {size} bytes, over the safe"
        f" {limit} (set {wire.MAX_HEADER_ENV} to change it); {why}"
    )


class CustomEndpointsMixin(EndpointSignatures):
    """Custom endpoint methods of :class:`postdicom.client.PostDicomClient`.

    The 13 public methods are generated from :data:`ENDPOINTS`; all of them
    go through :meth:`call_endpoint`. Static type checkers and editors, which
    cannot run that generation, read the same signatures from
    ``postdicom/_endpoint_signatures.pyi`` (:func:`signatures_stub`).
    """

    _http: HttpSession

    max_parameter_header_bytes: int | None = None
    """Safe size of a parameter header; ``None`` means ``POSTDICOM_MAX_HEADER_BYTES`` or 8 KiB."""

    def call_endpoint(self, row: Endpoint | str, values: Mapping[str, Any], *, repeat: bool = False) -> Answer:
        """Validate, encode and send one call of any row, honouring its retry safety.

        Parameters
        ----------
        row:
            The :class:`Endpoint` (or its Python or vendor name).
        values:
            Parameter values by Python name; absent means not given.
        repeat:
            ``True`` when this call repeats one that may already have reached
            the server (a Prefect task retry): rows with a lookup look first.

        Returns
        -------
        Answer
            The parsed answer (merged, if the call was split).
        """
        row = endpoint(row) if isinstance(row, str) else row
        plan = self._plan(row, values)
        answers = [self._send(row, encoded, repeat=repeat) for encoded in plan]
        if len(answers) == 1:
            return answers[0]
        assert row.split is not None
        log.info("%s: header over the safe size, sent as %d calls", row.vendor_name, len(answers))
        return row.answer.from_json(row.split.merge(answers))

    def _header_limit(self) -> int:
        return self.max_parameter_header_bytes or wire.max_header_bytes()

    def _plan(self, row: Endpoint, values: Mapping[str, Any]) -> list[Encoded]:
        """The header objects to send: one, or several when an over-sized call can be split."""
        limit = self._header_limit()
        # A generator would be spent by the first encoding, before a split reads it again.
        values = {k: list(v) if isinstance(v, Iterator) else v for k, v in values.items()}

        def fits(encoded: Encoded) -> bool:
            return wire.header_size(row.header, wire.header_value(encoded)) <= limit

        encoded = wire.encode_parameters(row.params, values)
        if fits(encoded):
            return [encoded]
        size = wire.header_size(row.header, wire.header_value(encoded))
        if row.split is None:
            raise _too_large(row, size, limit, row.too_large)
        name = row.split.param

        def with_items(items: list[Any]) -> Encoded:
            return wire.encode_parameters(row.params, {**values, name: items})

        single = f"even one item of {name} does not fit with the other values"
        chunks: list[list[Any]] = []
        current: list[Any] = []
        for item in values.get(name) or []:
            if fits(with_items([*current, item])):
                current.append(item)
            elif current and fits(with_items([item])):
                chunks.append(current)
                current = [item]
            else:
                raise _too_large(row, size, limit, single)
        if not current:
            raise _too_large(row, size, limit, single)
        chunks.append(current)
        return [with_items(chunk) for chunk in chunks]

    def _send(self, row: Endpoint, encoded: Encoded, *, repeat: bool) -> Answer:
        """Send one header object with the row's retry rule."""
        look = row.lookup if row.lookup is not None and row.lookup.applies(encoded) else None
        if look is None:
            # Reads and idempotent writes: the HTTP layer repeats transient failures.
            # Creates without a usable lookup: it repeats only what never left (and 429s).
            return self._exchange(row, encoded, idempotent=row.safety.repeatable)
        before = look.before(self, encoded) if look.before is not None and not repeat else None
        policy = self._http.retry
        attempt = 0
        while True:
            attempt += 1
            if repeat or attempt > 1:
                found = look.find(self, encoded, before)
                if found is not None:
                    log.info("%s: an earlier attempt had already done it; not sent again", row.vendor_name)
                    return found
            try:
                return self._exchange(row, encoded, idempotent=False)
            except PostDicomError as exc:
                # 429: the HTTP layer already waited and retried as long as the policy allows.
                if isinstance(exc, ThrottledError) or not is_transient(exc) or attempt >= policy.attempts:
                    raise
                delay = policy.delay(attempt, getattr(exc, "retry_after", None))
                log.info(
                    "%s may have reached the server (%s); looking before trying again in %.2fs",
                    row.vendor_name,
                    type(exc).__name__,
                    delay,
                )
                time.sleep(delay)

    def _exchange(self, row: Endpoint, encoded: Encoded, *, idempotent: bool) -> Answer:
        """One GET with the parameter header; the answer parsed into the row's model."""
        if row.safety is not Safety.READ:
            note_write()
        response = self._http.request(
            "GET", row.path, headers={row.header: wire.header_value(encoded)}, idempotent=idempotent
        )
        where = dict(status=response.status_code, method="GET", url=str(response.request.url))
        try:
            data = response.json()
        except ValueError:
            raise ProtocolError(f"{row.vendor_name} answered something that is not JSON", **where) from None
        if not isinstance(data, dict):
            raise ProtocolError(f"{row.vendor_name} answered JSON that is not an object", **where)
        try:
            return row.answer.from_json(data)
        except PydanticValidationError as exc:
            raise ProtocolError(
                f"{row.vendor_name} answered an object {row.answer.__name__} cannot read: {exc.errors()[0]['msg']}",
                **where,
            ) from None


def _method(row: Endpoint) -> Callable[..., Answer]:
    """A client method with the row's real signature that sends through :meth:`call_endpoint`."""
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = inspect.Signature([self_param, *row.signature_parameters()], return_annotation=row.answer)

    def method(self: CustomEndpointsMixin, *args: Any, **kwargs: Any) -> Answer:
        bound = signature.bind(self, *args, **kwargs)
        values = {k: v for k, v in bound.arguments.items() if k != "self"}
        return self.call_endpoint(row, values)

    method.__name__ = row.python_name
    method.__qualname__ = f"CustomEndpointsMixin.{row.python_name}"
    method.__module__ = __name__
    method.__doc__ = row.docstring()
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__annotations__ = {p.name: p.annotation for p in signature.parameters.values() if p.name != "self"}
    method.__annotations__["return"] = row.answer
    return method


for _row in ENDPOINTS:
    setattr(CustomEndpointsMixin, _row.python_name, _method(_row))


# --- documentation generated from the table -------------------------------------------------


REGENERATE_DOCS = (
    "python -c 'import postdicom.endpoints as e; print(e.endpoints_markdown(), end=\"\")' > docs/endpoints.md"
)
"""The command that rewrites ``docs/endpoints.md`` (shown in the file and by the test that checks it)."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def endpoints_markdown(rows: Sequence[Endpoint] = ENDPOINTS) -> str:
    """``docs/endpoints.md``: the table in Markdown, so the docs cannot drift from the code."""
    out = [
        "# Custom endpoints",
        "",
        f"<!-- Generated from postdicom/endpoints.py by: {REGENERATE_DOCS}"
        " -- do not edit by hand (a test checks it is up to date). -->",
        "",
        "Every call is `GET {WebAddress}{path}` with an empty body and the parameters as one JSON",
        "header whose values are all strings (see `postdicom/wire.py`). Each row is a method of",
        "`PostDicomClient` and a Prefect task in `tasks` with the same name (the task takes the",
        "`credentials` block first). Prefect retries the tasks of reads and idempotent writes on",
        "transient errors (a retried task looks first where the row has a lookup); creates are",
        "retried only inside the client call, where it is known what may have reached the server.",
        "Tasks of reads are cached (`POSTDICOM_CACHE_MINUTES`) until the process sends a write;",
        "mutations never are. The safe",
        f"header size is {wire.DEFAULT_MAX_HEADER_BYTES} bytes unless `{wire.MAX_HEADER_ENV}` says otherwise.",
        "",
        "| function | method / task | request | answer | retry safety | header too large |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        out.append(
            f"| {row.vendor_name} | `{row.python_name}` | `GET {row.path}`, header `{row.header}`"
            f" | `{row.answer.__name__}` | {_cell(row.retry_doc)} | {_cell(row.too_large_doc)} |"
        )
    for row in rows:
        out += [
            "",
            f"## {row.vendor_name}",
            "",
            row.summary,
            "",
            "| parameter | wire key | type | required | accepts |",
            "|---|---|---|---|---|",
        ]
        by_name = {p.name: p for p in row.params}
        for sp in row.signature_parameters():
            p = by_name[sp.name]
            need = "yes (may be empty)" if p.empty_ok else ("yes" if p.required else "no")
            accepts = f"{p.doc} Accepts {p.wire.accepts}." if p.doc else f"Accepts {p.wire.accepts}."
            out.append(f"| `{p.name}` | `{p.key}` | {p.wire.name} | {need} | {_cell(accepts)} |")
    return "\n".join(out) + "\n"


REGENERATE_STUB = (
    "python -c 'import postdicom.endpoints as e; print(e.signatures_stub(), end=\"\")'"
    " > postdicom/_endpoint_signatures.pyi"
)
"""The command that rewrites the type stub of the generated methods (a test checks it is up to date)."""


def _type_text(annotation: Any, modules: set[str]) -> str:
    """``annotation`` as stub source, with every class named by its module (collected in ``modules``)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(arg, modules) for arg in args)
    if origin is not None:
        return f"{_type_text(origin, modules)}[{', '.join(_type_text(arg, modules) for arg in args)}]"
    if annotation is type(None):
        return "None"
    if annotation.__module__ == "builtins":
        return annotation.__qualname__
    modules.add(annotation.__module__)
    return f"{annotation.__module__}.{annotation.__qualname__}"


def signatures_stub(rows: Sequence[Endpoint] = ENDPOINTS) -> str:
    """``postdicom/_endpoint_signatures.pyi``: the generated methods' signatures for type checkers."""
    modules: set[str] = set()
    methods = []
    for row in rows:
        parameters = ["self"]
        for parameter in row.signature_parameters():
            text = f"{parameter.name}: {_type_text(parameter.annotation, modules)}"
            parameters.append(text if parameter.default is inspect.Parameter.empty else f"{text} = None")
        doc = textwrap.indent(row.docstring(), "        ").lstrip()
        methods += [
            f"    def {row.python_name}(",
            *(f"        {text}," for text in parameters),
            f"    ) -> {_type_text(row.answer, modules)}:",
            f'        """{doc}\n        """',
            "",
        ]
    return "\n".join([
        f"# Generated from postdicom/endpoints.py by: {REGENERATE_STUB}",
        "# Do not edit by hand (a test checks it is up to date).",
        '"""Signatures of the custom-endpoint methods, which are generated at run time from the table."""',
        "",
        *(f"import {module}" for module in sorted(modules)),
        "",
        "",
        "class EndpointSignatures:",
        *methods,
    ]).rstrip("\n") + "\n"
