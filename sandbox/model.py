"""The PostDICOM model on top of the index: orders made from studies, series, folders.

Every lookup takes the caller's account, so scoping is not a per-route
afterthought: an object of another account is simply not found (404), and
an account never learns that it exists.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from sandbox.dicom import ParsedInstance, first_value, pn_text
from sandbox.errors import ApiError
from sandbox.store import Store, WriteTransaction, new_uuid, now_text


@dataclass(frozen=True)
class Account:
    uuid: str
    email: str


def institutions(conn: sqlite3.Connection, account: Account) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM institutions WHERE account_uuid = ? ORDER BY position",
                        (account.uuid,)).fetchall()


def institution(conn: sqlite3.Connection, account: Account, uuid: str, name: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM institutions WHERE uuid = ? AND account_uuid = ?",
                       (uuid, account.uuid)).fetchone()
    if row is None:
        raise ApiError(404, f"unknown {name} {uuid}")
    return row


def order(conn: sqlite3.Connection, account: Account, uuid: str, institution_uuid: str | None = None,
          name: str = "PatientOrderUuid") -> sqlite3.Row:
    """The account's order; with ``institution_uuid`` it must also be that institution's."""
    row = conn.execute("SELECT * FROM orders WHERE uuid = ? AND account_uuid = ?",
                       (uuid, account.uuid)).fetchone()
    if row is None:
        raise ApiError(404, f"unknown {name} {uuid}")
    if institution_uuid is not None and row["institution_uuid"] != institution_uuid:
        institution(conn, account, institution_uuid, "PatientOrderInstitutionUuid")
        raise ApiError(404, f"order {uuid} is not in institution {institution_uuid}")
    return row


def folder(conn: sqlite3.Connection, account: Account, uuid: str, name: str = "FolderUuid") -> sqlite3.Row:
    row = conn.execute("SELECT * FROM folders WHERE uuid = ? AND account_uuid = ?",
                       (uuid, account.uuid)).fetchone()
    if row is None:
        raise ApiError(404, f"unknown {name} {uuid}")
    return row


# ---------------------------------------------------------------- answers

def _da_to_iso(value: str | None) -> str | None:
    if value and re.fullmatch(r"\d{8}", value):
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return None


def _tm_to_iso(value: str | None) -> str | None:
    digits = (value or "").split(".")[0].replace(":", "")
    if re.fullmatch(r"\d{2}(\d{2}(\d{2})?)?", digits):
        digits = digits.ljust(6, "0")
        return f"{digits[:2]}:{digits[2:4]}:{digits[4:6]}"
    return None


def series_rows(conn: sqlite3.Connection, order_uuid: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT s.uuid, s.series_instance_uid, s.modality, s.series_number, s.series_description, "
        "COUNT(i.id) AS n FROM series s LEFT JOIN instances i ON i.series_uuid = s.uuid "
        "WHERE s.order_uuid = ? GROUP BY s.uuid ORDER BY s.series_number IS NULL, s.series_number, s.id",
        (order_uuid,)).fetchall()
    return [{"PatientSeriesUuid": r["uuid"], "SeriesInstanceUid": r["series_instance_uid"],
             "Modality": r["modality"], "SeriesNumber": r["series_number"],
             "SeriesDescription": r["series_description"], "NumberOfInstances": r["n"]} for r in rows]


def _modalities(order_row: sqlite3.Row, series: list[dict[str, Any]]) -> list[str]:
    found = list(dict.fromkeys(s["Modality"] for s in series if s["Modality"]))
    return found or ([order_row["modality"]] if order_row["modality"] else [])


def order_summary(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    """One row of GetPatientOrderList (docs/api-answers.md)."""
    series = series_rows(conn, row["uuid"])
    return {
        "PatientOrderUuid": row["uuid"], "InstitutionUuid": row["institution_uuid"],
        "OrderStatus": row["status"], "PatientName": row["patient_name"], "PatientId": row["patient_id"],
        "OtherPatientId": row["other_patient_id"], "PatientSex": row["patient_sex"],
        "PatientBirthdate": row["patient_birthdate"], "AccessionNumber": row["accession_number"],
        "Modality": row["modality"], "ModalityList": _modalities(row, series),
        "StudyInstanceUid": row["study_instance_uid"], "StudyDate": effective_study_date(row),
        "StudyDescription": row["study_description"],
        "AssignedUserUuid": row["assigned_user_uuid"], "AssignedUserGroupUuid": row["assigned_user_group_uuid"],
        "NumberOfSeries": len(series), "NumberOfInstances": sum(s["NumberOfInstances"] for s in series),
    }


def effective_study_date(row: sqlite3.Row) -> str | None:
    """A scheduled order's study date is the date of its scheduled date-time."""
    if row["study_date"]:
        return row["study_date"]
    if row["order_scheduled_datetime"]:
        return row["order_scheduled_datetime"][:10]
    return None


def order_properties(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    """GetPatientOrderProperties (docs/api-answers.md)."""
    series = series_rows(conn, row["uuid"])
    folders = [r["folder_uuid"] for r in conn.execute(
        "SELECT fo.folder_uuid FROM folder_orders fo JOIN folders f ON f.uuid = fo.folder_uuid "
        "WHERE fo.order_uuid = ? ORDER BY f.id", (row["uuid"],))]
    return {
        "PatientOrderUuid": row["uuid"], "InstitutionUuid": row["institution_uuid"],
        "OrderStatus": row["status"], "PatientName": row["patient_name"], "PatientId": row["patient_id"],
        "OtherPatientId": row["other_patient_id"], "PatientSex": row["patient_sex"],
        "PatientBirthdate": row["patient_birthdate"], "Modality": row["modality"],
        "ModalityList": _modalities(row, series), "StudyInstanceUid": row["study_instance_uid"],
        "StudyDate": row["study_date"], "StudyTime": row["study_time"],
        "StudyDescription": row["study_description"], "AccessionNumber": row["accession_number"],
        "PatientComplaints": row["patient_complaints"], "OrderScheduledDatetime": row["order_scheduled_datetime"],
        "RequestedProcedureId": row["requested_procedure_id"],
        "RequestedProcedureDescription": row["requested_procedure_description"],
        "RequestingPhysician": row["requesting_physician"],
        "ReferringPhysiciansName": row["referring_physicians_name"],
        "ScheduledEquipmentUuid": row["scheduled_equipment_uuid"],
        "AssignedUserUuid": row["assigned_user_uuid"], "AssignedUserGroupUuid": row["assigned_user_group_uuid"],
        "FolderUuidList": folders,
        "NumberOfSeries": len(series), "NumberOfInstances": sum(s["NumberOfInstances"] for s in series),
        "SeriesList": series, "CreatedDatetime": row["created_datetime"],
    }


# ---------------------------------------------------------------- storing instances

def _study_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    """Order columns taken from an instance's DICOM JSON."""
    return {
        "patient_name": pn_text(attrs, "00100010"),
        "patient_id": str(first_value(attrs, "00100020", "")),
        "other_patient_id": str(first_value(attrs, "00101000", "")),
        "patient_sex": str(first_value(attrs, "00100040", "")),
        "patient_birthdate": _da_to_iso(first_value(attrs, "00100030")),
        "modality": str(first_value(attrs, "00080060", "")),
        "study_date": _da_to_iso(first_value(attrs, "00080020")),
        "study_time": _tm_to_iso(first_value(attrs, "00080030")),
        "study_description": str(first_value(attrs, "00081030", "")),
        "accession_number": str(first_value(attrs, "00080050", "")),
        "referring_physicians_name": pn_text(attrs, "00080090"),
    }


def default_institution(conn: sqlite3.Connection, account: Account) -> str:
    return institutions(conn, account)[0]["uuid"]


def store_instance(tx: WriteTransaction, store: Store, account: Account, parsed: ParsedInstance,
                   temp_path, size: int) -> bool:
    """Index one parsed instance and move its file into place; ``False`` if it was already stored.

    The study becomes (or joins) an order: an existing order of the same study,
    else a scheduled order waiting for this accession number and patient ID,
    else a new ``Completed`` order in the account's first institution.
    """
    conn = tx.conn
    known = conn.execute("SELECT 1 FROM instances WHERE account_uuid = ? AND sop_instance_uid = ?",
                         (account.uuid, parsed.sop_instance_uid)).fetchone()
    if known:
        return False
    attrs_json = json.dumps(parsed.attrs, ensure_ascii=False)
    order_row = conn.execute("SELECT * FROM orders WHERE account_uuid = ? AND study_instance_uid = ?",
                             (account.uuid, parsed.study_instance_uid)).fetchone()
    if order_row is None:
        order_row = _attach_or_create_order(conn, account, parsed, attrs_json)
    series_row = conn.execute("SELECT uuid FROM series WHERE order_uuid = ? AND series_instance_uid = ?",
                              (order_row["uuid"], parsed.series_instance_uid)).fetchone()
    if series_row is None:
        series_uuid = new_uuid()
        number = first_value(parsed.attrs, "00200011")
        conn.execute(
            "INSERT INTO series (uuid, order_uuid, account_uuid, series_instance_uid, modality, series_number, "
            "series_description, attrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (series_uuid, order_row["uuid"], account.uuid, parsed.series_instance_uid,
             str(first_value(parsed.attrs, "00080060", "")), _int_or_none(number),
             str(first_value(parsed.attrs, "0008103E", "")), attrs_json))
    else:
        series_uuid = series_row["uuid"]
    final = store.instance_path(account.uuid, parsed.study_instance_uid, parsed.series_instance_uid,
                                parsed.sop_instance_uid)
    conn.execute(
        "INSERT INTO instances (account_uuid, order_uuid, series_uuid, study_instance_uid, series_instance_uid, "
        "sop_instance_uid, sop_class_uid, transfer_syntax_uid, instance_number, path, size, attrs) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (account.uuid, order_row["uuid"], series_uuid, parsed.study_instance_uid, parsed.series_instance_uid,
         parsed.sop_instance_uid, parsed.sop_class_uid, parsed.transfer_syntax_uid,
         _int_or_none(first_value(parsed.attrs, "00200013")),
         str(final.relative_to(store.files_dir)), size, attrs_json))
    tx.place_file(temp_path, final)
    return True


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _attach_or_create_order(conn: sqlite3.Connection, account: Account, parsed: ParsedInstance,
                            attrs_json: str) -> sqlite3.Row:
    fields = _study_fields(parsed.attrs)
    waiting = None
    if fields["accession_number"]:
        waiting = conn.execute(
            "SELECT * FROM orders WHERE account_uuid = ? AND status = 'Scheduled' AND study_instance_uid IS NULL "
            "AND accession_number = ? AND patient_id = ? ORDER BY id LIMIT 1",
            (account.uuid, fields["accession_number"], fields["patient_id"])).fetchone()
    if waiting is not None:
        updates = {k: v for k, v in fields.items() if not waiting[k] and v}
        updates.update(study_instance_uid=parsed.study_instance_uid, study_date=fields["study_date"],
                       study_time=fields["study_time"], status="Completed", study_attrs=attrs_json)
        assignments = ", ".join(f"{k} = ?" for k in updates)
        conn.execute(f"UPDATE orders SET {assignments} WHERE uuid = ?", (*updates.values(), waiting["uuid"]))
        return conn.execute("SELECT * FROM orders WHERE uuid = ?", (waiting["uuid"],)).fetchone()
    uuid = new_uuid()
    columns = dict(fields, uuid=uuid, account_uuid=account.uuid,
                   institution_uuid=default_institution(conn, account), status="Completed",
                   study_instance_uid=parsed.study_instance_uid, created_datetime=now_text(),
                   study_attrs=attrs_json)
    conn.execute(f"INSERT INTO orders ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                 tuple(columns.values()))
    return conn.execute("SELECT * FROM orders WHERE uuid = ?", (uuid,)).fetchone()


def delete_order(tx: WriteTransaction, store: Store, order_row: sqlite3.Row) -> int:
    """Remove an order with everything hanging off it; its files go once the delete commits."""
    paths = [r["path"] for r in tx.conn.execute("SELECT path FROM instances WHERE order_uuid = ?",
                                                (order_row["uuid"],))]
    tx.conn.execute("DELETE FROM orders WHERE uuid = ?", (order_row["uuid"],))
    for path in paths:
        tx.unlink_after_commit(store.files_dir / path)
    return len(paths)


def folder_tree_orders(conn: sqlite3.Connection, folder_uuid: str) -> list[str]:
    """Orders in a folder and all its sub-folders (what a folder share shows)."""
    rows = conn.execute(
        "WITH RECURSIVE tree(uuid) AS (SELECT ? UNION SELECT f.uuid FROM folders f JOIN tree t "
        "ON f.parent_uuid = t.uuid) SELECT DISTINCT fo.order_uuid FROM folder_orders fo "
        "JOIN tree t ON fo.folder_uuid = t.uuid JOIN orders o ON o.uuid = fo.order_uuid ORDER BY o.id",
        (folder_uuid,)).fetchall()
    return [r["order_uuid"] for r in rows]


def today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()
