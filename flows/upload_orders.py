"""The orders of ``bulk_upload_and_share``: which patient order each stored study became, and their assignment.

The orders are found again by StudyInstanceUID on every run (never kept from
an earlier one), so a rerun files, assigns and shares the same orders.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks import PostDicomCredentials
from postdicom.dicom_json import TAG_PATIENT_ID, first_value
from postdicom.models import PatientOrderSummary
from tasks.policies import READ_TAGS, transient_retry_options

from .assignment import AssignmentCandidate, RowResult, TargetKind, assign_orders_batch, plan_assignments
from .orders import canonical_uuid, orders_by_uuid
from .upload_report import StudyOrder, UploadAndShareSummary
from .window import chunked, run_bounded

ORDER_LOOKUP_ATTEMPTS = 3
"""Looks for the orders of just-stored studies: a real account may index a study a moment after STOW answered.

Not an error retry (the answer is a success that lacks the order, which no
retry layer sees): studies already found are not asked for again.
"""
ORDER_LOOKUP_PAUSE = 2.0
"""Seconds before the second look, growing linearly."""


STUDIES_PER_LOOKUP_TASK = 50
"""Studies one ``find-upload-orders`` task run looks up (fewer when that leaves a ``concurrency`` slot idle).

A task run costs Prefect ~25 ms of CPU (flow process and API server), about
what the two requests of one study cost the server, so one task run per
request made the lookups cost more than the upload of the files.
"""


@task(
    name="find-upload-orders",
    cache_policy=NO_CACHE,
    persist_result=False,
    tags=READ_TAGS,
    **transient_retry_options(),
)
def find_upload_orders(
    study_uids: list[str], credentials: PostDicomCredentials, patient_ids: dict[str, str] | None = None
) -> list[PatientOrderSummary]:
    """The orders of ``study_uids`` (those listed yet), from ``get_patient_order_list`` by patient.

    The order list is asked once per patient and matched on
    StudyInstanceUid exactly. The patients are first those the files gave
    (``patient_ids``: StudyInstanceUID to PatientID, from the upload's
    headers); the studies those lists do not show (a server that stored
    another PatientID, a study with none known) are then looked up by one
    QIDO each, for the PatientID as the server stored it, and the order
    lists of the patients not asked yet follow. Reads only, so Prefect may
    repeat the task on a transient error. Not cached and not persisted: the
    server's state now is wanted, and the answers (and ``patient_ids``) are
    patient data. Logs counts only.
    """
    known = patient_ids or {}
    wanted = set(study_uids)
    found: dict[str, PatientOrderSummary] = {}
    asked: set[str] = set()
    warnings: dict[str, None] = {}
    with credentials.get_client() as client:

        def ask(patients: dict[str, None]) -> None:
            for patient in [patient for patient in patients if patient not in asked]:
                asked.add(patient)
                answer = client.get_patient_order_list([], patient_id=patient or None)
                for order in answer.patient_order_list:
                    if order.study_instance_uid in wanted:
                        found.setdefault(order.study_instance_uid, order)
                warnings.update(dict.fromkeys(answer.reading.warnings))

        ask(dict.fromkeys(known[uid] for uid in study_uids if uid in known))
        unseen = [uid for uid in study_uids if uid not in found]
        from_server: dict[str, None] = {}
        for uid in unseen:
            for match in client.qido_search(filters={"StudyInstanceUID": uid}, level="study", fields=["PatientID"]):
                patient_id = first_value(match, TAG_PATIENT_ID)
                from_server["" if patient_id is None else str(patient_id)] = None
        ask(from_server)
    logger = get_run_logger()
    logger.info(
        "%d of %d studies have an order listed (%d patients asked, %d studies looked up by QIDO)",
        len(found), len(study_uids), len(asked), len(unseen),
    )
    for warning in warnings:
        logger.warning("%s", warning)
    return [found[uid] for uid in study_uids if uid in found]


def find_orders_of_studies(
    credentials: PostDicomCredentials,
    study_uids: Sequence[str],
    *,
    concurrency: int,
    patient_ids: Mapping[str, str] | None = None,
) -> list[PatientOrderSummary]:
    """The patient orders holding ``study_uids``, in the order of ``study_uids`` (missing ones left out).

    The studies go to :func:`find_upload_orders` in groups of at most
    :data:`STUDIES_PER_LOOKUP_TASK`, ``concurrency`` at once, each with the
    PatientIDs ``patient_ids`` knows for its studies (:func:`lookup_groups`
    keeps each patient's studies in one group). Studies not found at once
    are looked for again (see :data:`ORDER_LOOKUP_ATTEMPTS`).
    """
    known = patient_ids or {}
    found: dict[str, PatientOrderSummary] = {}
    missing = list(dict.fromkeys(study_uids))
    for attempt in range(ORDER_LOOKUP_ATTEMPTS):
        if attempt:
            time.sleep(ORDER_LOOKUP_PAUSE * attempt)
        per_task = min(STUDIES_PER_LOOKUP_TASK, -(-len(missing) // max(1, concurrency)))
        for orders in run_bounded(
            lambda group: find_upload_orders.submit(
                group, credentials, {uid: known[uid] for uid in group if uid in known}
            ),
            lookup_groups(missing, known, per_task),
            concurrency=concurrency,
        ):
            found.update({order.study_instance_uid: order for order in orders if order.study_instance_uid})
        missing = [uid for uid in missing if uid not in found]
        if not missing:
            break
    return [found[uid] for uid in study_uids if uid in found]


def lookup_groups(study_uids: Sequence[str], patient_ids: Mapping[str, str], per_task: int) -> list[list[str]]:
    """``study_uids`` in groups of about ``per_task``, each known patient's studies in one group.

    Patients are packed whole, in the order first met: a group takes the
    next patient's studies while it stays within ``per_task`` (a patient
    with more studies than that gets a group of their own), so no patient's
    order list is asked by two groups. Studies of no known patient follow,
    ``per_task`` at a time.
    """
    by_patient: dict[str, list[str]] = {}
    for uid in study_uids:
        if uid in patient_ids:
            by_patient.setdefault(patient_ids[uid], []).append(uid)
    groups: list[list[str]] = []
    for studies in by_patient.values():
        if groups and len(groups[-1]) + len(studies) <= per_task:
            groups[-1] += studies
        else:
            groups.append(list(studies))
    return groups + chunked([uid for uid in study_uids if uid not in patient_ids], per_task)


def locate_orders(
    credentials: PostDicomCredentials,
    study_uids: Sequence[str],
    summary: UploadAndShareSummary,
    *,
    concurrency: int,
    patient_ids: Mapping[str, str] | None = None,
) -> list[PatientOrderSummary]:
    """Find the order of each of ``study_uids`` (the studies with a file on the server); record them in ``summary``.

    ``patient_ids`` (StudyInstanceUID to the PatientID its files carry) saves
    a request per study: see :func:`find_upload_orders`. Missing orders are
    recorded too, with a problem naming how many.
    """
    orders = (
        find_orders_of_studies(credentials, study_uids, concurrency=concurrency, patient_ids=patient_ids)
        if study_uids
        else []
    )
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

