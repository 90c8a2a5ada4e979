"""Assignments, shared by batch_reassignment and bulk_upload_and_share (which assigns the orders it uploaded).

Validate, compare with the current assignment, send in batches, report one row each.
Every change is one run of the documented task (``assign_order_to_user`` or
``assign_order_to_user_group``), so the Prefect UI lists each row's call by
its documented name; its retries (Prefect's, for transient errors, over the
client's own) are the only ones: the flows add no loop of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from pydantic import BaseModel, Field

from blocks import PostDicomCredentials
from postdicom.errors import PostDicomError
from postdicom.settings import env_number
from postdicom.models import AssignOrderToUserAnswer, AssignOrderToUserGroupAnswer, PatientOrderSummary
from tasks import assign_order_to_user, assign_order_to_user_group
from tasks.policies import WRITE_TAGS

from .orders import canonical_uuid
from .slot_leases import acquire_slot, free_dead_leases, recorded_lease, renewed_lease


LEASE_SECONDS_ENV = "POSTDICOM_ASSIGNMENT_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 60.0
"""Lease of a global-limit slot: renewed while the batch runs; a killed run's slots come back after it (plus the
server's repossessor loop, 15 s) or at once when a run on the same machine needs them (:mod:`flows.slot_leases`).
60 s is the least a Prefect server accepts (its default is 300)."""
LIMIT_NOTICE_SECONDS = 5.0
"""A batch that waited this long for a slot says so in the logs, then goes on waiting."""


def lease_seconds() -> float:
    """The slot lease, from ``POSTDICOM_ASSIGNMENT_LEASE_SECONDS`` (60..86400 s: the bounds a Prefect server accepts)."""
    return env_number(LEASE_SECONDS_ENV, DEFAULT_LEASE_SECONDS, minimum=60, maximum=86400, unit="seconds")


@contextlib.contextmanager
def limit_slot(limit_name: str | None) -> Iterator[None]:
    """Hold one slot of the global concurrency limit ``limit_name`` (nothing when ``None``), on a short lease.

    When every slot is taken, the slots of runs of this machine that died
    (recorded by :mod:`flows.slot_leases`) are released first, and logged.
    Waiting longer than :data:`LIMIT_NOTICE_SECONDS` is logged (which limit,
    and that a run killed on another machine keeps its slots until their lease
    expires), so a run held up by the limit never looks hung.
    """
    if not limit_name:
        yield
        return
    lease = lease_seconds()
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        try:
            lease_id = acquire_slot(client, limit_name, lease, timeout=0)
        except TimeoutError:
            freed = free_dead_leases(client, limit_name)
            if freed:
                logger.warning("Freed %d slot(s) of the global concurrency limit %r held by runs of this machine "
                               "that died", freed, limit_name)
            try:
                lease_id = acquire_slot(client, limit_name, lease, timeout=LIMIT_NOTICE_SECONDS)
            except TimeoutError:
                logger.warning(
                    "Waiting for a slot of the global concurrency limit %r: other runs hold every slot "
                    "(slots of a run killed on another machine come back within about %g s, when their lease "
                    "expires)", limit_name, lease + 15,
                )
                lease_id = acquire_slot(client, limit_name, lease, timeout=None)
        if lease_id is None:  # the limit does not exist (deleted since the run began): nothing to hold
            yield
            return
        try:
            with recorded_lease(lease_id, limit_name), renewed_lease(lease_id, lease, logger):
                yield
        finally:
            client.release_concurrency_slots_with_lease(lease_id=lease_id)


RowStatus = Literal["assigned", "unchanged", "failed", "skipped"]
ASSIGNMENT_STATUSES: tuple[RowStatus, ...] = ("assigned", "unchanged", "failed", "skipped")
TargetKind = Literal["user", "group"]
TARGET_COLUMNS: dict[TargetKind, str] = {"user": "assigned_user_uuid", "group": "assigned_user_group_uuid"}
"""The input column naming each kind of target; also the field of the order (and of the answer) holding it."""


class RowResult(BaseModel):
    """What happened to one input row."""

    row: int = Field(description="1-based position in the input (data rows; for a selection, in the order list).")
    patient_order_uuid: str
    target: TargetKind | None = None
    target_uuid: str | None = None
    previous_uuid: str | None = Field(default=None, description="Assignment before this run, when known.")
    status: RowStatus
    reason: str = ""
    duplicate_of: int | None = Field(default=None, description="For a duplicate row: the row that carries it.")


class PlannedAssignment(BaseModel):
    """A validated row resolved against the account: what to send, and what is there now."""

    row: int
    patient_order_uuid: str
    target: TargetKind
    target_uuid: str
    current_uuid: str | None = None


class AssignmentCandidate(BaseModel):
    """A well-formed row, before duplicates are collapsed and the order is looked up."""

    row: int
    patient_order_uuid: str
    target: TargetKind
    target_uuid: str


def row_result(
    candidate: AssignmentCandidate | PlannedAssignment,
    status: RowStatus,
    reason: str = "",
    previous: str | None = None,
) -> RowResult:
    """The result of ``candidate`` (its identity copied, so no result can lose its row number)."""
    return RowResult(
        row=candidate.row,
        patient_order_uuid=candidate.patient_order_uuid,
        target=candidate.target,
        target_uuid=candidate.target_uuid,
        previous_uuid=previous,
        status=status,
        reason=reason,
    )


def plan_assignments(
    candidates: Sequence[AssignmentCandidate],
    orders: Mapping[str, PatientOrderSummary],
    *,
    dry_run: bool,
) -> tuple[list[PlannedAssignment], list[RowResult]]:
    """Resolve candidates against the account's orders: what to send, and what is already decided.

    Unknown orders are skipped; rows whose order already has that user/group
    are ``unchanged`` without a request; in a dry run every remaining row is
    skipped with what it would have changed.
    """
    to_send: list[PlannedAssignment] = []
    decided: list[RowResult] = []
    for candidate in candidates:
        order = orders.get(candidate.patient_order_uuid)
        if order is None:
            decided.append(row_result(candidate, "skipped", "unknown order: not in this account's order list"))
            continue
        current = canonical_uuid(getattr(order, TARGET_COLUMNS[candidate.target]))
        if current == candidate.target_uuid:
            decided.append(row_result(candidate, "unchanged", f"already assigned to this {candidate.target}", current))
        elif dry_run:
            reason = f"dry run: would assign this {candidate.target} (now {current or 'none'})"
            decided.append(row_result(candidate, "skipped", reason, current))
        else:
            to_send.append(PlannedAssignment(**candidate.model_dump(), current_uuid=current))
    return to_send, decided


def assign_one(credentials: PostDicomCredentials, item: PlannedAssignment) -> RowResult:
    """Send one assignment through its documented task; a lasting server error becomes a ``failed`` row.

    The task's retries have already been spent when it raises, so the row is
    reported and the batch goes on.
    """
    answer: AssignOrderToUserAnswer | AssignOrderToUserGroupAnswer
    try:
        if item.target == "user":
            answer = assign_order_to_user(
                credentials, patient_order_uuid=item.patient_order_uuid, assigned_user_uuid=item.target_uuid
            )
        else:
            answer = assign_order_to_user_group(
                credentials, patient_order_uuid=item.patient_order_uuid, assigned_user_group_uuid=item.target_uuid
            )
    except PostDicomError as exc:
        return row_result(item, "failed", str(exc), item.current_uuid)
    now = canonical_uuid(getattr(answer, TARGET_COLUMNS[item.target], None))
    if now != item.target_uuid:
        return row_result(item, "failed", f"server kept {now or 'none'} after the change", item.current_uuid)
    if getattr(answer, "changed", None):
        return row_result(item, "assigned", "", item.current_uuid)
    # It differed when planned and is right now: a repeated request whose first
    # answer was lost, or someone else's identical change. The row is done either way.
    reason = "already so when sent (repeated request or concurrent change)"
    return row_result(item, "assigned", reason, item.current_uuid)


@task(name="assign-orders-batch", cache_policy=NO_CACHE, tags=WRITE_TAGS)
def assign_orders_batch(
    batch: list[PlannedAssignment],
    credentials: PostDicomCredentials,
    limit_name: str | None,
) -> list[RowResult]:
    """Send one batch of assignments, holding one slot of the global concurrency limit.

    One slot per batch, not per request: acquiring a Prefect slot costs a round
    trip to the Prefect server (seconds on SQLite), while the client's own
    throttle (``requests_per_second``) paces each request for free. Each row is
    its own nested run of the documented task, retried alone, so a lost
    connection repeats one row, not the batch.
    """
    with limit_slot(limit_name):
        return [assign_one(credentials, item) for item in batch]


