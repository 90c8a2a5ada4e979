"""Assignments, shared by batch_reassignment and bulk_upload_and_share (which assigns the orders it uploaded).

Validate, compare with the current assignment, send in batches, report one row each.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency as concurrency_slot
from pydantic import BaseModel, Field

from blocks import PostDicomCredentials
from postdicom.errors import PostDicomError, is_transient
from tasks.policies import WRITE_TAGS

from .orders import canonical_uuid, pick


RowStatus = Literal["assigned", "unchanged", "failed", "skipped"]
ASSIGNMENT_STATUSES: tuple[RowStatus, ...] = ("assigned", "unchanged", "failed", "skipped")
TargetKind = Literal["user", "group"]
TARGET_COLUMNS: dict[TargetKind, str] = {"user": "assigned_user_uuid", "group": "assigned_user_group_uuid"}
ANSWER_KEYS: dict[TargetKind, str] = {"user": "AssignedUserUuid", "group": "AssignedUserGroupUuid"}
ROW_ATTEMPTS = 4
"""Tries per row for transient failures (on top of the client's own retries)."""


class RowResult(BaseModel):
    """What happened to one input row."""

    row: int = Field(description="1-based position in the input (data rows; for a selection, in the order list).")
    patient_order_uuid: str
    target: TargetKind | None = None
    target_uuid: str | None = None
    previous_uuid: str | None = Field(default=None, description="Assignment before this run, when known.")
    status: RowStatus
    reason: str = ""


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
    orders: Mapping[str, Mapping[str, Any]],
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
        current = canonical_uuid(pick(order, ANSWER_KEYS[candidate.target]))
        if current == candidate.target_uuid:
            decided.append(row_result(candidate, "unchanged", f"already assigned to this {candidate.target}", current))
        elif dry_run:
            reason = f"dry run: would assign this {candidate.target} (now {current or 'none'})"
            decided.append(row_result(candidate, "skipped", reason, current))
        else:
            to_send.append(PlannedAssignment(**candidate.model_dump(), current_uuid=current))
    return to_send, decided


def assign_one(client: Any, item: PlannedAssignment) -> RowResult:
    """Send one assignment, retrying transient failures; never raises for a server error.

    The client already repeats transient failures of this idempotent call;
    this loop is the second line for outages longer than its backoff, and
    turns a lasting failure into a ``failed`` row instead of a crashed batch.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            if item.target == "user":
                answer = client.assign_order_to_user(
                    patient_order_uuid=item.patient_order_uuid, assigned_user_uuid=item.target_uuid
                )
            else:
                answer = client.assign_order_to_user_group(
                    patient_order_uuid=item.patient_order_uuid, assigned_user_group_uuid=item.target_uuid
                )
            break
        except PostDicomError as exc:
            if is_transient(exc) and attempt < ROW_ATTEMPTS:
                time.sleep(0.5 * 2 ** (attempt - 1) * (1 + random.random() / 2))
                continue
            return row_result(item, "failed", str(exc), item.current_uuid)
    now = canonical_uuid(pick(answer, ANSWER_KEYS[item.target]))
    if now != item.target_uuid:
        return row_result(item, "failed", f"server kept {now or 'none'} after the change", item.current_uuid)
    if pick(answer, "Changed"):
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
    throttle (``requests_per_second``) paces each request for free. Rows are
    retried one by one inside, so a lost connection repeats one row, not the batch.
    """
    slot = concurrency_slot(limit_name, occupy=1) if limit_name else contextlib.nullcontext()
    with slot, credentials.get_client() as client:
        return [assign_one(client, item) for item in batch]


