"""The 13 custom endpoints of PostDICOM as data: one :class:`~postdicom.endpoint_row.Endpoint` row each.

The endpoints differ only in data: a path, the name of the parameter header,
the parameters (names, wire types, which are required), the answer model, how
safe it is to send the same call twice, how an over-sized call is split, and
how an earlier attempt's effect is found after a failure. This module holds
those rows and the row-specific functions (lookups and merges); what a row is
and what its retry safety means is :mod:`postdicom.endpoint_row`. The request
engine (:mod:`postdicom.endpoint_engine`) sends any row, and the client's 13
methods (:mod:`postdicom.endpoints`) are written out, each naming its row.
``docs/endpoints.md`` is written from these rows by
``scripts/write_endpoints_doc.py`` (a test checks it is up to date).

Every call is ``GET {WebAddress}{path}`` with an empty body and one header
holding the parameters (see :mod:`postdicom.wire`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from . import models
from .endpoint_row import Encoded, Endpoint, Lookup, Reads, Safety, Split
from .errors import NotFoundError, UnreadableAnswerError
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


# --- row-specific behaviour: lookups and merges --------------------------------------------

_Listing = TypeVar("_Listing", models.SearchFolderAnswer, models.PatientOrderListAnswer)


def _understood(listing: _Listing) -> _Listing:
    """A lookup's list, refused when its rows lack the documented keys: "nothing found" would then be a guess.

    The engine reads the refusal as a lookup that failed: the call it protects
    goes through once, with a warning, and is not sent blind again.
    """
    if not listing.reading.understood:
        raise UnreadableAnswerError(
            f"{listing.reading.endpoint or type(listing).__name__} answered rows without their documented keys:"
            " it cannot tell what exists"
        )
    return listing


def _order_by_accession(client: Reads, encoded: Encoded, before: Any) -> models.CreatePatientOrderAnswer | None:
    listing = _understood(client.get_patient_order_list(
        [encoded["InstitutionUuid"]], accession_number=encoded["AccessionNumber"]
    ))
    for order in listing.patient_order_list:
        if (
            order.accession_number == encoded["AccessionNumber"]
            and order.patient_id == encoded["PatientId"]
            and (order.institution_uuid or "").lower() == encoded["InstitutionUuid"]
        ):
            return models.CreatePatientOrderAnswer.model_validate(order.raw)
    return None


def _matching_folders(client: Reads, encoded: Encoded) -> list[models.FolderAnswer]:
    parent = encoded["ParentFolderUuid"] or None
    name = encoded["FolderName"].strip()
    found = _understood(client.search_folder(parent_folder_uuid=parent, folder_name=name))
    return [f for f in found.folder_list if f.is_named(name, parent)]


def _new_folder(client: Reads, encoded: Encoded, before: Any) -> models.FolderAnswer | None:
    existing = before or set()
    for folder in _matching_folders(client, encoded):
        if folder.folder_uuid not in existing:
            return models.FolderAnswer.model_validate(folder.raw)
    return None


def _existing_folder_uuids(client: Reads, encoded: Encoded) -> set[str | None]:
    return {f.folder_uuid for f in _matching_folders(client, encoded)}


def _order_gone(client: Reads, encoded: Encoded, before: Any) -> models.DeleteOrderAnswer | None:
    try:
        client.get_patient_order_properties(encoded["PatientOrderInstitutionUuid"], encoded["PatientOrderUuid"])
    except NotFoundError:
        return models.DeleteOrderAnswer.model_validate(
            {"PatientOrderUuid": encoded["PatientOrderUuid"], "Deleted": True, "DeletedInstanceCount": None}
        )
    return None


def _merge_order_lists(answers: list[models.PatientOrderListAnswer]) -> dict[str, Any]:
    seen: set[str | None] = set()
    rows = []
    for answer in answers:
        for row in answer.patient_order_list:
            if row.patient_order_uuid not in seen:
                seen.add(row.patient_order_uuid)
                rows.append(row)
    rows.sort(key=lambda r: (r.study_date is None, r.study_date or ""))
    return {"PatientOrderList": [r.raw for r in rows]}


def _merge_folder_additions(answers: list[models.AddOrderToFolderAnswer]) -> dict[str, Any]:
    merged = answers[-1].model_dump(by_alias=True, mode="json")
    merged["AddedFolderUuidList"] = [u for a in answers for u in a.added_folder_uuid_list]
    return merged


def _merge_tag_contents(answers: list[models.DicomTagContentAnswer]) -> dict[str, Any]:
    merged = answers[0].model_dump(by_alias=True, mode="json")
    merged["DicomTagContentList"] = [row.raw for a in answers for row in a.dicom_tag_content_list]
    return merged


_ONE_LINK = "a share is one link; share a folder of the orders instead (add_order_to_folder, share_folder_with_url)"
_NO_LIST = "no list to spread over several calls; shorten the text values"

_ORDER_IN_INSTITUTION = (
    Param("patient_order_institution_uuid", UUID, required=True, doc="Institution the order belongs to."),
    Param("patient_order_uuid", UUID, required=True, doc="The order."),
)


CREATE_SHARE_LINK = Endpoint(
    "CreateShareLink", "/createsharelink", "ShareParameters",
    (
        Param("patient_order_info_list", ORDER_INFO_LIST, required=True, doc="Orders to share."),
        Param("expire_date", DATE, required=True, doc="Last day the link works."),
        Param("share_password", SECRET, doc="Password asked by the link; empty for a public link."),
        Param("downloadable", BOOL, doc="Whether the recipient may download the studies."),
    ),
    models.ShareAnswer, Safety.NO_RETRY_AFTER_SEND,
    "Create a web link that shares one or more patient orders, optionally password protected.",
    "share {patient_order_info_list} order(s) until {expire_date}",
    too_large=_ONE_LINK,
)

SHARE_PATIENT_ORDER_WITH_URL = Endpoint(
    "SharePatientOrderWithUrl", "/sharepatientorderwithurl", "SharePatientOrderParameters",
    (
        Param("order_uuid_list", UUID_LIST, required=True, doc="Orders to share."),
        Param("expire_date", DATE, required=True, doc="Last day the URL works."),
        Param("share_password", SECRET, doc="Password asked by the URL; empty for a public URL."),
        Param("user_can_download_studies", BOOL, doc="Whether the recipient may download the studies."),
    ),
    models.ShareAnswer, Safety.NO_RETRY_AFTER_SEND,
    "Create a shareable URL for selected patient orders, with download permission and password.",
    "share {order_uuid_list} order(s) by URL until {expire_date}",
    too_large=_ONE_LINK,
)

CREATE_FOLDER = Endpoint(
    "CreateFolder", "/createfolder", "CreateFolderParameters",
    (
        Param("folder_name", TEXT, required=True, doc="Visible name (not unique on the server)."),
        Param("folder_description", TEXT),
        Param("parent_folder_uuid", UUID, doc="Create inside this folder; top level when not given."),
    ),
    models.FolderAnswer, Safety.LOOK_BEFORE_CREATE,
    "Create a folder (a virtual container that organises patient orders).",
    "create folder '{folder_name}' in {parent_folder_uuid}",
    lookup=Lookup(
        "looks (SearchFolder) for a folder of the same name and parent that was not there before"
        " the first attempt, and returns it instead of creating another",
        find=_new_folder,
        before=_existing_folder_uuids,
    ),
    too_large=_NO_LIST,
)

SEARCH_FOLDER = Endpoint(
    "SearchFolder", "/searchfolder", "SearchFolderParameters",
    (
        Param("parent_folder_uuid", UUID, doc="Search only the direct children of this folder."),
        Param("folder_name", TEXT, doc="Full or partial name, case-insensitive."),
        Param("get_orders_in_folder", BOOL, doc="Also list the orders in each folder found."),
    ),
    models.SearchFolderAnswer, Safety.READ,
    "Find folders by name and parent, optionally with the orders each holds.",
    "search folders '{folder_name}' in {parent_folder_uuid}",
    too_large=_NO_LIST,
)

SHARE_FOLDER_WITH_URL = Endpoint(
    "ShareFolderWithUrl", "/sharefolderwithurl", "ShareFolderParameters",
    (
        Param("folder_uuid", UUID, required=True, doc="Folder to share with everything in it."),
        Param("share_password", SECRET, doc="Password asked by the URL; empty for a public URL."),
        Param("share_title", TEXT, doc="Title shown on the shared page."),
        Param("share_description", TEXT, doc="Description shown on the shared page."),
        Param("expire_date", DATE, doc="Last day the URL works; never expires when not given."),
        Param("user_can_download_studies", BOOL, doc="Whether the recipient may download the studies."),
    ),
    models.ShareAnswer, Safety.NO_RETRY_AFTER_SEND,
    "Create a shareable URL for a whole folder and its contents.",
    "share folder {folder_uuid} until {expire_date}",
    too_large=_NO_LIST,
)

ADD_ORDER_TO_FOLDER = Endpoint(
    "AddOrderToFolder", "/addordertofolder", "AddOrderToFolderParameters",
    (
        Param("patient_order_uuid", UUID, required=True, doc="The order to file."),
        Param("folder_uuid_list", UUID_LIST, required=True, doc="Folders to put it in."),
    ),
    models.AddOrderToFolderAnswer, Safety.IDEMPOTENT_WRITE,
    "Put an existing patient order into existing folders (an association: nothing is copied).",
    "add order {patient_order_uuid} to {folder_uuid_list} folder(s)",
    split=Split(
        "folder_uuid_list",
        _merge_folder_additions,
        "the folders are spread over several calls; each call adds the order to its folders,"
        " so together they add it to all (FolderUuidList from the last answer, AddedFolderUuidList joined)",
    ),
)

ASSIGN_ORDER_TO_USER = Endpoint(
    "AssignOrderToUser", "/assignordertouser", "AssignOrderToUserParameters",
    (
        Param("patient_order_uuid", UUID, required=True, doc="The order to assign."),
        Param("assigned_user_uuid", UUID, required=True, doc="User who becomes responsible for it."),
    ),
    models.AssignOrderToUserAnswer, Safety.IDEMPOTENT_WRITE,
    "Assign a patient order to one user (replacing the previous assignee).",
    "assign order {patient_order_uuid} to user {assigned_user_uuid}",
    too_large=_NO_LIST,
)

ASSIGN_ORDER_TO_USER_GROUP = Endpoint(
    "AssignOrderToUserGroup", "/assignordertousergroup", "AssignOrderToUserGroupParameters",
    (
        Param("patient_order_uuid", UUID, required=True, doc="The order to assign."),
        Param("assigned_user_group_uuid", UUID, required=True, doc="Group whose members may take it."),
    ),
    models.AssignOrderToUserGroupAnswer, Safety.IDEMPOTENT_WRITE,
    "Assign a patient order to a user group (replacing the previous group).",
    "assign order {patient_order_uuid} to group {assigned_user_group_uuid}",
    too_large=_NO_LIST,
)

CREATE_PATIENT_ORDER = Endpoint(
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
    models.CreatePatientOrderAnswer, Safety.LOOK_BEFORE_CREATE,
    "Create a (scheduled) patient order for an imaging study.",
    "create {modality} order in {institution_uuid}",
    lookup=Lookup(
        "with an accession number, looks (GetPatientOrderList) for the order with that accession number"
        " and patient id in the institution and returns it instead of creating another; without one the"
        " server makes one up, so the call is not repeated once it may have reached the server",
        find=_order_by_accession,
        applies=lambda encoded: bool(encoded["AccessionNumber"]),
    ),
    too_large=_NO_LIST,
)

GET_PATIENT_ORDER_PROPERTIES = Endpoint(
    "GetPatientOrderProperties", "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
    _ORDER_IN_INSTITUTION,
    models.PatientOrderProperties, Safety.READ,
    "Read every property of one patient order (patient, study, series, assignments, folders).",
    "properties of order {patient_order_uuid}",
    too_large=_NO_LIST,
)

GET_DICOM_TAG_CONTENT = Endpoint(
    "GetDicomTagContent", "/getdicomtagcontent", "GetDicomTagContentParameters",
    (
        *_ORDER_IN_INSTITUTION,
        Param("patient_series_uuid", UUID, doc="Read only this series."),
        Param("dicom_tag_id_list", TAG_LIST, doc="Tags to read; a default set when not given."),
    ),
    models.DicomTagContentAnswer, Safety.READ,
    "Read the values of DICOM tags in the images of a patient order.",
    "read {dicom_tag_id_list} tag(s) of order {patient_order_uuid}",
    split=Split(
        "dicom_tag_id_list",
        _merge_tag_contents,
        "the tags are spread over several calls and the rows joined (rows are per series and tag)",
    ),
)

GET_PATIENT_ORDER_LIST = Endpoint(
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
    models.PatientOrderListAnswer, Safety.READ,
    "Search patient orders by patient, accession number, modality and date ranges.",
    "list orders in {institution_uuid_list} institution(s)",
    split=Split(
        "institution_uuid_list",
        _merge_order_lists,
        "the institutions are spread over several calls; the orders are joined (each once)"
        " and sorted by study date (read as they arrive: each once, in the order received)",
        row_key=lambda order: order.patient_order_uuid,
    ),
)

DELETE_PATIENT_ORDER = Endpoint(
    "DeletePatientOrder", "/deleteorder", "DeleteOrderParameters",
    _ORDER_IN_INSTITUTION,
    models.DeleteOrderAnswer, Safety.IDEMPOTENT_WRITE,
    "Delete a patient order permanently, with its series, images, folder memberships and assignments.",
    "delete order {patient_order_uuid}",
    lookup=Lookup(
        "before repeating, reads the order (GetPatientOrderProperties): a 404 means an earlier attempt"
        " deleted it, and that attempt's success is returned (DeletedInstanceCount unknown: null)",
        find=_order_gone,
    ),
    too_large=_NO_LIST,
)


ENDPOINTS: tuple[Endpoint[Any], ...] = (
    CREATE_SHARE_LINK,
    SHARE_PATIENT_ORDER_WITH_URL,
    CREATE_FOLDER,
    SEARCH_FOLDER,
    SHARE_FOLDER_WITH_URL,
    ADD_ORDER_TO_FOLDER,
    ASSIGN_ORDER_TO_USER,
    ASSIGN_ORDER_TO_USER_GROUP,
    CREATE_PATIENT_ORDER,
    GET_PATIENT_ORDER_PROPERTIES,
    GET_DICOM_TAG_CONTENT,
    GET_PATIENT_ORDER_LIST,
    DELETE_PATIENT_ORDER,
)
"""The table. One row per custom endpoint, in the vendor document's order."""

BY_NAME: dict[str, Endpoint[Any]] = {e.python_name: e for e in ENDPOINTS} | {e.vendor_name: e for e in ENDPOINTS}
"""Rows by Python name and by vendor name."""


def endpoint(name: str) -> Endpoint[Any]:
    """The row for ``name`` (``create_share_link`` or ``CreateShareLink``)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no custom endpoint named {name!r}") from None
