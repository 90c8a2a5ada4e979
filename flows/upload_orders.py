"""The orders of ``bulk_upload_and_share``: which patient order each stored study became, and their assignment.

The orders are found again by StudyInstanceUID on every run (never kept from
an earlier one), so a rerun files, assigns and shares the same orders.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prefect.futures import PrefectFuture

from blocks import PostDicomCredentials
from postdicom.models import PatientOrderListAnswer, PatientOrderSummary
from postdicom.upload import FileEntry
from tasks import get_patient_order_list, qido_search

from .assignment import AssignmentCandidate, RowResult, TargetKind, assign_orders_batch, plan_assignments
from .orders import canonical_uuid, fresh, orders_by_uuid
from .upload_report import StudyOrder, UploadAndShareSummary
from .window import run_bounded

ORDER_LOOKUP_ATTEMPTS = 3
"""Looks for the orders of just-stored studies: a real account may index a study a moment after STOW answered.

Not an error retry (the answer is a success that lacks the order, which no
retry layer sees): studies already found are not asked for again.
"""
ORDER_LOOKUP_PAUSE = 2.0
"""Seconds before the second look, growing linearly."""


def patient_of_study(credentials: PostDicomCredentials, study_uid: str) -> PrefectFuture[list[dict[str, Any]]]:
    """Submit the QIDO search (the documented ``qido_search`` task) for the PatientID the server stored."""
    return fresh(qido_search).submit(
        credentials, filters={"StudyInstanceUID": study_uid}, level="study", fields=["PatientID"]
    )


def orders_of_patient(credentials: PostDicomCredentials, patient_id: str) -> PrefectFuture[PatientOrderListAnswer]:
    """Submit the order-list read (the documented ``get_patient_order_list`` task) filtered by one patient."""
    return fresh(get_patient_order_list).submit(credentials, institution_uuid_list=[], patient_id=patient_id or None)


def find_orders_of_studies(
    credentials: PostDicomCredentials, study_uids: Sequence[str], *, concurrency: int
) -> list[PatientOrderSummary]:
    """The patient orders holding ``study_uids``, in the order of ``study_uids`` (missing ones left out).

    QIDO gives each study's PatientID as the server stored it; the order list
    filtered by that patient is then matched on StudyInstanceUid exactly.
    Studies not found at once are looked for again (see
    :data:`ORDER_LOOKUP_ATTEMPTS`).
    """
    found: dict[str, PatientOrderSummary] = {}
    missing = list(dict.fromkeys(study_uids))
    for attempt in range(ORDER_LOOKUP_ATTEMPTS):
        if attempt:
            time.sleep(ORDER_LOOKUP_PAUSE * attempt)
        patients: dict[str, None] = {}
        for matches in run_bounded(lambda uid: patient_of_study(credentials, uid), missing, concurrency=concurrency):
            for match in matches:
                values = (match.get("00100020") or {}).get("Value") or [""]
                patients[str(values[0])] = None
        wanted = set(missing)
        for answer in run_bounded(
            lambda patient: orders_of_patient(credentials, patient), list(patients), concurrency=concurrency
        ):
            for order in answer.patient_order_list:
                if order.study_instance_uid in wanted:
                    found[order.study_instance_uid] = order
        missing = [uid for uid in missing if uid not in found]
        if not missing:
            break
    return [found[uid] for uid in study_uids if uid in found]



def locate_orders(
    credentials: PostDicomCredentials,
    entries: Sequence[FileEntry],
    summary: UploadAndShareSummary,
    *,
    concurrency: int,
) -> list[PatientOrderSummary]:
    """Find the order of every study with a file on the server; record them (and any missing) in ``summary``."""
    study_uids = list(
        dict.fromkeys(
            entry.study_instance_uid
            for entry in entries
            if entry.status in ("stored", "already_stored") and entry.study_instance_uid
        )
    )
    orders = find_orders_of_studies(credentials, study_uids, concurrency=concurrency) if study_uids else []
    by_study = {order.study_instance_uid: order for order in orders}
    for uid in study_uids:
        order = by_study.get(uid)
        summary.studies.append(
            StudyOrder(
                study_instance_uid=uid,
                patient_id=order.patient_id if order else None,
                patient_order_uuid=canonical_uuid(order.patient_order_uuid) if order else None,
                institution_uuid=canonical_uuid(order.institution_uuid) if order else None,
            )
        )
    summary.patient_order_uuids = [study.patient_order_uuid for study in summary.studies if study.patient_order_uuid]
    if len(by_study) < len(study_uids):
        summary.problems.append(f"{len(study_uids) - len(by_study)} stored studies have no patient order on the server")
    return orders


def assign_orders(
    credentials: PostDicomCredentials,
    orders: Sequence[PatientOrderSummary],
    targets: Sequence[tuple[TargetKind, str]],
) -> list[RowResult]:
    """Assign every order to each target, through the same compare-then-send path as batch_reassignment."""
    by_uuid = orders_by_uuid(list(orders))
    candidates = [
        AssignmentCandidate(row=number, patient_order_uuid=order_uuid, target=kind, target_uuid=target)
        for number, (order_uuid, kind, target) in enumerate(
            ((order_uuid, kind, target) for order_uuid in by_uuid for kind, target in targets), start=1
        )
    ]
    to_send, decided = plan_assignments(candidates, by_uuid, dry_run=False)
    sent = assign_orders_batch(to_send, credentials, None) if to_send else []
    return sorted(decided + sent, key=lambda row: row.row)

