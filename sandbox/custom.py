"""PostDICOM's 13 custom endpoints: one table row each, one generic route, one handler per function.

A row names the vendor function, its path, its parameter header and its
parameters (kind, required); :func:`route` builds the Starlette route that
decodes the header with :func:`sandbox.params.decode` and calls the handler
in a worker thread. Handlers receive typed values and return the JSON answer
of docs/api-answers.md; they raise :class:`ApiError` for the 4xx cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydicom
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox import model, shares
from sandbox.config import Settings
from sandbox.dicom import element_strings, keyword_of, resolve_tag, tag_key, vr_of
from sandbox.errors import ApiError
from sandbox.params import BOOL, DATE, DATETIME, ORDER_INFO_LIST, TEXT, TEXT_LIST, UUID, UUID_LIST, Param, decode
from sandbox.shapes import encode
from sandbox.store import Store, new_uuid, now_text
from sandbox.wildcard import contains_wildcard
from sandbox.workers import in_worker


@dataclass
class Context:
    """What a handler may use: the store, the caller's account, where the sandbox is reachable."""

    store: Store
    settings: Settings
    account: model.Account
    root_url: str


@dataclass(frozen=True)
class Endpoint:
    function: str
    path: str
    header: str
    params: tuple[Param, ...]
    handler: Callable[[Context, dict[str, Any]], dict[str, Any]]


# ---------------------------------------------------------------- shares

def create_share_link(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.write() as tx:
        return shares.create_share(tx, ctx.settings, ctx.account, ctx.root_url,
                                   order_uuids=p["PatientOrderInfoList"], folder_uuid=None,
                                   expire_date=p["ExpireDate"], password=p["SharePassword"],
                                   downloadable=bool(p["Downloadable"]))


def share_patient_order_with_url(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.write() as tx:
        return shares.create_share(tx, ctx.settings, ctx.account, ctx.root_url,
                                   order_uuids=p["OrderUuidList"], folder_uuid=None,
                                   expire_date=p["ExpireDate"], password=p["SharePassword"],
                                   downloadable=bool(p["UserCanDownloadStudies"]))


def share_folder_with_url(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.write() as tx:
        model.folder(tx.conn, ctx.account, p["FolderUuid"])
        return shares.create_share(tx, ctx.settings, ctx.account, ctx.root_url, order_uuids=[],
                                   folder_uuid=p["FolderUuid"], expire_date=p["ExpireDate"],
                                   password=p["SharePassword"], downloadable=bool(p["UserCanDownloadStudies"]),
                                   title=p["ShareTitle"], description=p["ShareDescription"])


# ---------------------------------------------------------------- folders

def _folder_answer(conn, row, with_orders: bool | None = None) -> dict[str, Any]:
    answer = {"FolderUuid": row["uuid"], "FolderName": row["name"], "FolderDescription": row["description"],
              "ParentFolderUuid": row["parent_uuid"]}
    if with_orders is not None:
        answer["PatientOrderUuidList"] = [r["order_uuid"] for r in conn.execute(
            "SELECT fo.order_uuid FROM folder_orders fo JOIN orders o ON o.uuid = fo.order_uuid "
            "WHERE fo.folder_uuid = ? ORDER BY o.id", (row["uuid"],))] if with_orders else None
    return answer


def create_folder(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    name = p["FolderName"].strip()
    if not name:
        raise ApiError(400, "missing required parameter FolderName")
    with ctx.store.write() as tx:
        if p["ParentFolderUuid"]:
            model.folder(tx.conn, ctx.account, p["ParentFolderUuid"], "ParentFolderUuid")
        uuid = new_uuid()
        tx.conn.execute("INSERT INTO folders (uuid, account_uuid, name, description, parent_uuid, created_datetime) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (uuid, ctx.account.uuid, name, p["FolderDescription"] or "", p["ParentFolderUuid"],
                         now_text()))
        return _folder_answer(tx.conn, model.folder(tx.conn, ctx.account, uuid))


def search_folder(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    conn = ctx.store.read()
    sql = "SELECT * FROM folders WHERE account_uuid = ?"
    args: list[Any] = [ctx.account.uuid]
    if p["ParentFolderUuid"]:
        model.folder(conn, ctx.account, p["ParentFolderUuid"], "ParentFolderUuid")
        sql += " AND parent_uuid = ?"
        args.append(p["ParentFolderUuid"])
    wanted = (p["FolderName"] or "").casefold()
    rows = [r for r in conn.execute(sql + " ORDER BY id", args) if wanted in r["name"].casefold()]
    return {"FolderList": [_folder_answer(conn, r, bool(p["GetOrdersInFolder"])) for r in rows]}


def add_order_to_folder(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.write() as tx:
        order_row = model.order(tx.conn, ctx.account, p["PatientOrderUuid"])
        added = []
        for folder_uuid in p["FolderUuidList"]:
            model.folder(tx.conn, ctx.account, folder_uuid)
            cursor = tx.conn.execute("INSERT OR IGNORE INTO folder_orders VALUES (?, ?, ?)",
                                     (folder_uuid, order_row["uuid"], now_text()))
            if cursor.rowcount:
                added.append(folder_uuid)
        holding = [r["folder_uuid"] for r in tx.conn.execute(
            "SELECT fo.folder_uuid FROM folder_orders fo JOIN folders f ON f.uuid = fo.folder_uuid "
            "WHERE fo.order_uuid = ? ORDER BY f.id", (order_row["uuid"],))]
        return {"PatientOrderUuid": order_row["uuid"], "FolderUuidList": holding, "AddedFolderUuidList": added}


# ---------------------------------------------------------------- assignments

def _assign(ctx: Context, order_uuid: str, target_uuid: str, *, table: str, column: str, kind: str,
            answer_key: str, parameter: str) -> dict[str, Any]:
    with ctx.store.write() as tx:
        order_row = model.order(tx.conn, ctx.account, order_uuid)
        target = tx.conn.execute(f"SELECT 1 FROM {table} WHERE uuid = ? AND institution_uuid = ?",
                                 (target_uuid, order_row["institution_uuid"])).fetchone()
        if target is None:
            raise ApiError(404, f"unknown {parameter} {target_uuid} in the order's institution")
        previous = order_row[column]
        changed = previous != target_uuid
        if changed:
            tx.conn.execute(f"UPDATE orders SET {column} = ? WHERE uuid = ?", (target_uuid, order_uuid))
            tx.conn.execute("INSERT INTO assignments (order_uuid, kind, target_uuid, previous_uuid, "
                            "assigned_datetime) VALUES (?, ?, ?, ?, ?)",
                            (order_uuid, kind, target_uuid, previous, now_text()))
        return {"PatientOrderUuid": order_uuid, answer_key: target_uuid,
                f"Previous{answer_key}": previous, "Changed": changed}


def assign_order_to_user(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _assign(ctx, p["PatientOrderUuid"], p["AssignedUserUuid"], table="users", column="assigned_user_uuid",
                   kind="user", answer_key="AssignedUserUuid", parameter="AssignedUserUuid")


def assign_order_to_user_group(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    return _assign(ctx, p["PatientOrderUuid"], p["AssignedUserGroupUuid"], table="user_groups",
                   column="assigned_user_group_uuid", kind="group", answer_key="AssignedUserGroupUuid",
                   parameter="AssignedUserGroupUuid")


# ---------------------------------------------------------------- orders

SEXES = {"M", "F", "O"}


def create_patient_order(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    sex = (p["PatientSex"] or "").strip().upper()
    if sex and sex not in SEXES:
        raise ApiError(400, f"parameter PatientSex must be M, F or O, not {p['PatientSex']!r}")
    modality = p["Modality"].strip().upper()
    if not re.fullmatch(r"[A-Z0-9_]{1,16}", modality):
        raise ApiError(400, f"parameter Modality is not a DICOM modality code: {p['Modality']!r}")
    with ctx.store.write() as tx:
        model.institution(tx.conn, ctx.account, p["InstitutionUuid"], "InstitutionUuid")
        if p["ScheduledEquipmentUuid"]:
            found = tx.conn.execute("SELECT 1 FROM equipment WHERE uuid = ? AND institution_uuid = ?",
                                    (p["ScheduledEquipmentUuid"], p["InstitutionUuid"])).fetchone()
            if found is None:
                raise ApiError(404, f"unknown ScheduledEquipmentUuid {p['ScheduledEquipmentUuid']}")
        uuid = new_uuid()
        scheduled = p["OrderScheduledDatetime"]
        columns = {
            "uuid": uuid, "account_uuid": ctx.account.uuid, "institution_uuid": p["InstitutionUuid"],
            "status": "Scheduled", "patient_name": p["PatientName"], "patient_id": p["PatientId"],
            "other_patient_id": p["OtherPatientId"] or "", "patient_sex": sex,
            "patient_birthdate": p["PatientBirthdate"].isoformat(), "modality": modality,
            "study_description": p["StudyDescription"] or "", "accession_number": p["AccessionNumber"] or "",
            "patient_complaints": p["PatientComplaints"] or "",
            "order_scheduled_datetime": scheduled.strftime("%Y-%m-%d %H:%M") if scheduled else None,
            "requested_procedure_id": p["RequestedProcedureId"] or "",
            "requested_procedure_description": p["RequestedProcedureDescription"] or "",
            "requesting_physician": p["RequestingPhysician"] or "",
            "referring_physicians_name": p["ReferringPhysiciansName"] or "",
            "scheduled_equipment_uuid": p["ScheduledEquipmentUuid"], "created_datetime": now_text(),
        }
        tx.conn.execute(f"INSERT INTO orders ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                        tuple(columns.values()))
        if not columns["accession_number"]:
            row_id = tx.conn.execute("SELECT id FROM orders WHERE uuid = ?", (uuid,)).fetchone()["id"]
            columns["accession_number"] = f"SBX{row_id:08d}"
            tx.conn.execute("UPDATE orders SET accession_number = ? WHERE uuid = ?",
                            (columns["accession_number"], uuid))
        return {"PatientOrderUuid": uuid, "InstitutionUuid": p["InstitutionUuid"],
                "AccessionNumber": columns["accession_number"], "OrderStatus": "Scheduled"}


def get_patient_order_properties(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    conn = ctx.store.read()
    row = model.order(conn, ctx.account, p["PatientOrderUuid"], p["PatientOrderInstitutionUuid"])
    return model.order_properties(conn, row)


def _contains(wanted: str | None, text: str) -> bool:
    """GetPatientOrderList's text filters: case-insensitive substring match where ``*`` is also a wildcard."""
    return not wanted or contains_wildcard(wanted, text, ignore_case=True, single=None)


def get_patient_order_list(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    conn = ctx.store.read()
    own = [r["uuid"] for r in model.institutions(conn, ctx.account)]
    wanted_institutions = p["InstitutionUuidList"] or own
    for uuid in wanted_institutions:
        model.institution(conn, ctx.account, uuid, "InstitutionUuidList item")
    marks = ", ".join("?" for _ in wanted_institutions)
    rows = conn.execute(f"SELECT * FROM orders WHERE account_uuid = ? AND institution_uuid IN ({marks}) "
                        "ORDER BY id", (ctx.account.uuid, *wanted_institutions)).fetchall()
    modalities = {m.upper() for m in p["ModalityList"] or []}
    ranges = [("StudyDate", p["StudyDateFrom"], p["StudyDateTo"]),
              ("PatientBirthdate", p["PatientBirthdateFrom"], p["PatientBirthdateTo"])]
    found = []
    for row in rows:
        if not (_contains(p["PatientName"], row["patient_name"]) and _contains(p["PatientId"], row["patient_id"])):
            continue
        if p["OtherPatientId"] and row["other_patient_id"] != p["OtherPatientId"]:
            continue
        if p["AccessionNumber"] and row["accession_number"] != p["AccessionNumber"]:
            continue
        summary = model.order_summary(conn, row)
        if modalities and not modalities & set(summary["ModalityList"]):
            continue
        if not all(_in_date_range(summary[key], low, high) for key, low, high in ranges):
            continue
        found.append(summary)
    found.sort(key=lambda o: (o["StudyDate"] is None, o["StudyDate"] or ""))
    return {"PatientOrderList": found}


def _in_date_range(value: str | None, low, high) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low.isoformat()) and (high is None or value <= high.isoformat())


def delete_patient_order(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.write() as tx:
        row = model.order(tx.conn, ctx.account, p["PatientOrderUuid"], p["PatientOrderInstitutionUuid"])
        count = model.delete_order(tx, ctx.store, row)
    return {"PatientOrderUuid": row["uuid"], "Deleted": True, "DeletedInstanceCount": count}


# ---------------------------------------------------------------- tag content

DEFAULT_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "StudyDescription", "AccessionNumber", "Modality", "SeriesDescription", "SeriesNumber",
                "BodyPartExamined", "Manufacturer", "InstitutionName")


def get_dicom_tag_content(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    names = p["DicomTagIdList"] or list(DEFAULT_TAGS)
    tags = []
    for name in names:
        tag = resolve_tag(name)
        if tag is None:
            raise ApiError(400, f"unknown DICOM tag id {name!r} in DicomTagIdList")
        tags.append(tag)
    tags = list(dict.fromkeys(tags))
    conn = ctx.store.read()
    order_row = model.order(conn, ctx.account, p["PatientOrderUuid"], p["PatientOrderInstitutionUuid"])
    series = conn.execute("SELECT uuid, series_instance_uid FROM series WHERE order_uuid = ? ORDER BY id",
                          (order_row["uuid"],)).fetchall()
    if p["PatientSeriesUuid"]:
        series = [s for s in series if s["uuid"] == p["PatientSeriesUuid"]]
        if not series:
            raise ApiError(404, f"unknown PatientSeriesUuid {p['PatientSeriesUuid']} in this order")
    rows: list[dict[str, Any]] = []
    for s in series:
        instances = conn.execute("SELECT sop_instance_uid, path FROM instances WHERE series_uuid = ? ORDER BY "
                                 "instance_number IS NULL, instance_number, id", (s["uuid"],)).fetchall()
        datasets = [(i["sop_instance_uid"], pydicom.dcmread(ctx.store.files_dir / i["path"],
                                                            stop_before_pixels=True, specific_tags=tags))
                    for i in instances]
        for tag in tags:
            values = [(sop, element_strings(ds, tag)) for sop, ds in datasets]
            present = [(sop, v) for sop, v in values if v is not None]
            if not present:
                continue
            base = {"PatientSeriesUuid": s["uuid"], "SeriesInstanceUid": s["series_instance_uid"],
                    "TagId": tag_key(tag), "Keyword": keyword_of(tag), "Vr": _vr_in(datasets, tag)}
            if len(present) == len(values) and all(v == present[0][1] for _, v in present):
                rows.append({**base, "SopInstanceUid": None, "Values": present[0][1]})
            else:
                rows.extend({**base, "SopInstanceUid": sop, "Values": v} for sop, v in present)
    keys = ("PatientSeriesUuid", "SeriesInstanceUid", "SopInstanceUid", "TagId", "Keyword", "Vr", "Values")
    return {"PatientOrderUuid": order_row["uuid"], "DicomTagContentList": [{k: r[k] for k in keys} for r in rows]}


def _vr_in(datasets, tag: int) -> str:
    for _, ds in datasets:
        if tag in ds:
            return str(ds[tag].VR)
    return vr_of(tag)


# ---------------------------------------------------------------- the table

def _p(name: str, kind: str = TEXT, required: bool = False, blank_means_all: bool = False) -> Param:
    return Param(name, kind, required, blank_means_all)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("CreateShareLink", "/createsharelink", "ShareParameters",
             (_p("PatientOrderInfoList", ORDER_INFO_LIST, True), _p("ExpireDate", DATE, True),
              _p("SharePassword"), _p("Downloadable", BOOL)), create_share_link),
    Endpoint("SharePatientOrderWithUrl", "/sharepatientorderwithurl", "SharePatientOrderParameters",
             (_p("OrderUuidList", UUID_LIST, True), _p("ExpireDate", DATE, True), _p("SharePassword"),
              _p("UserCanDownloadStudies", BOOL)), share_patient_order_with_url),
    Endpoint("CreateFolder", "/createfolder", "CreateFolderParameters",
             (_p("FolderName", TEXT, True), _p("FolderDescription"), _p("ParentFolderUuid", UUID)), create_folder),
    Endpoint("SearchFolder", "/searchfolder", "SearchFolderParameters",
             (_p("ParentFolderUuid", UUID), _p("FolderName"), _p("GetOrdersInFolder", BOOL)), search_folder),
    Endpoint("ShareFolderWithUrl", "/sharefolderwithurl", "ShareFolderParameters",
             (_p("FolderUuid", UUID, True), _p("SharePassword"), _p("ShareTitle"), _p("ShareDescription"),
              _p("ExpireDate", DATE), _p("UserCanDownloadStudies", BOOL)), share_folder_with_url),
    Endpoint("AddOrderToFolder", "/addordertofolder", "AddOrderToFolderParameters",
             (_p("PatientOrderUuid", UUID, True), _p("FolderUuidList", UUID_LIST, True)), add_order_to_folder),
    Endpoint("AssignOrderToUser", "/assignordertouser", "AssignOrderToUserParameters",
             (_p("PatientOrderUuid", UUID, True), _p("AssignedUserUuid", UUID, True)), assign_order_to_user),
    Endpoint("AssignOrderToUserGroup", "/assignordertousergroup", "AssignOrderToUserGroupParameters",
             (_p("PatientOrderUuid", UUID, True), _p("AssignedUserGroupUuid", UUID, True)),
             assign_order_to_user_group),
    Endpoint("CreatePatientOrder", "/createpatientorder", "CreatePatientOrderParameters",
             (_p("InstitutionUuid", UUID, True), _p("PatientName", TEXT, True), _p("PatientId", TEXT, True),
              _p("OtherPatientId"), _p("PatientSex"), _p("PatientBirthdate", DATE, True),
              _p("Modality", TEXT, True), _p("StudyDescription"), _p("AccessionNumber"), _p("PatientComplaints"),
              _p("OrderScheduledDatetime", DATETIME), _p("RequestedProcedureId"),
              _p("RequestedProcedureDescription"), _p("RequestingPhysician"), _p("ReferringPhysiciansName"),
              _p("ScheduledEquipmentUuid", UUID)), create_patient_order),
    Endpoint("GetPatientOrderProperties", "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
             (_p("PatientOrderInstitutionUuid", UUID, True), _p("PatientOrderUuid", UUID, True)),
             get_patient_order_properties),
    Endpoint("GetDicomTagContent", "/getdicomtagcontent", "GetDicomTagContentParameters",
             (_p("PatientOrderInstitutionUuid", UUID, True), _p("PatientOrderUuid", UUID, True),
              _p("PatientSeriesUuid", UUID), _p("DicomTagIdList", TEXT_LIST)), get_dicom_tag_content),
    Endpoint("GetPatientOrderList", "/getpatientorderlist", "GetPatientOrderListParameters",
             (_p("InstitutionUuidList", UUID_LIST, True, blank_means_all=True), _p("PatientName"),
              _p("PatientId"), _p("OtherPatientId"), _p("AccessionNumber"), _p("ModalityList", TEXT_LIST),
              _p("StudyDateFrom", DATE), _p("StudyDateTo", DATE), _p("PatientBirthdateFrom", DATE),
              _p("PatientBirthdateTo", DATE)), get_patient_order_list),
    Endpoint("DeletePatientOrder", "/deleteorder", "DeleteOrderParameters",
             (_p("PatientOrderInstitutionUuid", UUID, True), _p("PatientOrderUuid", UUID, True)),
             delete_patient_order),
)


def route(endpoint: Endpoint, prefix: str) -> Route:
    """The GET route of one endpoint: decode its parameter header, run its handler, answer JSON."""

    async def handle(request: Request) -> Response:
        values = decode(endpoint.header, request.headers.get(endpoint.header), endpoint.params)
        ctx = Context(request.app.state.store, request.app.state.settings, request.state.account,
                      str(request.base_url).rstrip("/"))
        answer = await in_worker(request, endpoint.handler, ctx, values)
        body, headers, media_type = encode(endpoint.function, answer, request.app.state.settings.answer_shapes)
        return Response(body, headers=headers, media_type=media_type)

    return Route(prefix + endpoint.path, handle, methods=["GET"], name=endpoint.function)
