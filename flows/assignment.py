"""Assignments, shared by batch_reassignment and bulk_upload_and_share (which assigns the orders it uploaded).

Validate, compare with the current assignment, send in batches, report one row each.
A batch is one ``assign-orders-batch`` task run, named after the rows it holds,
that sends its rows through one client built from the block, calling the same
client methods as the documented tasks (``assign_order_to_user``,
``assign_order_to_user_group``). A task run per row cost ~12 ms of CPU in the
flow process and as much in the Prefect API, twenty times the call itself,
and grew faster than the rows (``benchmarks/RESULTS.md``, *Reassignment in
batch task runs*). Each row's retries are the client's (its one retry policy,
``postdicom/retry.py``); the batch task and the flows add none of their own.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.runtime import task_run
from pydantic import Field

from blocks import PostDicomCredentials
from postdicom import PostDicomClient
from postdicom.errors import PostDicomError
from postdicom.settings import env_number
from postdicom.models import AssignOrderToUserAnswer, AssignOrderToUserGroupAnswer
from tasks.policies import WRITE_TAGS

from .orders import canonical_uuid
from .reporting import count_by
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


@dataclass(slots=True, kw_only=True)
class RowResult:
    """What happened to one input row.

    A slotted dataclass, not a pydantic model: a run keeps one per input row
    to the end (the report the flow returns), and a model with its field dict
    and set of fields given cost 1.1 KB a row against 0.14 KB
    (``benchmarks/RESULTS.md``, *Reassignment memory, second pass*). The
    reports holding it are pydantic models, so ``report.model_dump()`` still
    gives each row as a dict.
    """

    row: Annotated[int, Field(description="1-based position in the input (data rows; for a selection, in the order list).")]
    patient_order_uuid: str
    target: TargetKind | None = None
    target_uuid: str | None = None
    previous_uuid: Annotated[str | None, Field(description="Assignment before this run, when known.")] = None
    status: RowStatus
    reason: str = ""
    duplicate_of: Annotated[int | None, Field(description="For a duplicate row: the row that carries it.")] = None


@dataclass(slots=True, frozen=True, kw_only=True)
class AssignmentCandidate:
    """A well-formed row, before duplicates are collapsed and the order is looked up."""

    row: int
    patient_order_uuid: str
    target: TargetKind
    target_uuid: str


@dataclass(slots=True, frozen=True, kw_only=True)
class PlannedAssignment:
    """A validated row resolved against the account: what to send, and what is there now.

    Slotted, as :class:`RowResult`: one per row to send, each dropped once its batch is done.
    """

    row: int
    patient_order_uuid: str
    target: TargetKind
    target_uuid: str
    current_uuid: str | None = None


class CurrentAssignment(Protocol):
    """What planning reads of an order: its assignment now (an order-list entry, or :class:`flows.orders.OrderAssignment`)."""

    @property
    def assigned_user_uuid(self) -> str | None: ...

    @property
    def assigned_user_group_uuid(self) -> str | None: ...


def row_result(
    candidate: AssignmentCandidate | PlannedAssignment,
    status: RowStatus,
    reason: str = "",
    previous: str | None = None,
) -> RowResult:
    """The result of ``candidate`` (its identity copied, so no result can lose its row number).

    The reason is interned: most rows share one of a few reasons, which a run
    of thousands of rows then holds once.
    """
    return RowResult(
        row=candidate.row,
        patient_order_uuid=candidate.patient_order_uuid,
        target=candidate.target,
        target_uuid=candidate.target_uuid,
        previous_uuid=previous,
        status=status,
        reason=sys.intern(reason),
    )


def plan_assignments(
    candidates: Sequence[AssignmentCandidate],
    orders: Mapping[str, CurrentAssignment],
    *,
    dry_run: bool,
) -> tuple[list[PlannedAssignment], list[RowResult]]:
    """Resolve candidates against the account's orders: what to send, and what is already decided.

    ``orders`` maps canonical order UUIDs to what is assigned now (order-list
    entries, or the compact :class:`flows.orders.OrderAssignment`). Unknown
    orders are skipped; rows whose order already has that user/group
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
        current = None if current is None else sys.intern(current)
        if current == candidate.target_uuid:
            decided.append(row_result(candidate, "unchanged", f"already assigned to this {candidate.target}", current))
        elif dry_run:
            reason = f"dry run: would assign this {candidate.target} (now {current or 'none'})"
            decided.append(row_result(candidate, "skipped", reason, current))
        else:
            to_send.append(
                PlannedAssignment(
                    row=candidate.row,
                    patient_order_uuid=candidate.patient_order_uuid,
                    target=candidate.target,
                    target_uuid=candidate.target_uuid,
                    current_uuid=current,
                )
            )
    return to_send, decided


def assign_one(client: PostDicomClient, item: PlannedAssignment) -> RowResult:
    """Send one assignment with the client method of its documented task; a lasting error becomes a ``failed`` row.

    The client has already spent the call's retry budget when it raises, so
    the row is reported and the batch goes on.
    """
    answer: AssignOrderToUserAnswer | AssignOrderToUserGroupAnswer
    try:
        if item.target == "user":
            answer = client.assign_order_to_user(item.patient_order_uuid, item.target_uuid)
        else:
            answer = client.assign_order_to_user_group(item.patient_order_uuid, item.target_uuid)
    except PostDicomError as exc:
        return row_result(item, "failed", str(exc), item.current_uuid)
    for warning in answer.reading.warnings:
        get_run_logger().warning("row %d: %s", item.row, warning)
    now = canonical_uuid(getattr(answer, TARGET_COLUMNS[item.target], None))
    if now != item.target_uuid:
        return row_result(item, "failed", f"server kept {now or 'none'} after the change", item.current_uuid)
    if getattr(answer, "changed", None):
        return row_result(item, "assigned", "", item.current_uuid)
    # It differed when planned and is right now: a repeated request whose first
    # answer was lost, or someone else's identical change. The row is done either way.
    reason = "already so when sent (repeated request or concurrent change)"
    return row_result(item, "assigned", reason, item.current_uuid)


def rows_label(rows: Sequence[int]) -> str:
    """``rows 1-25`` for a run of rows; ``25 rows of 3-40`` when rows between are not in it (decided before)."""
    if not rows:
        return "no rows"
    first, last = min(rows), max(rows)
    if len(rows) == 1:
        return f"row {first}"
    if last - first + 1 == len(rows):
        return f"rows {first}-{last}"
    return f"{len(rows)} rows of {first}-{last}"


def batch_run_name() -> str:
    """``assign-orders-batch: rows 1-25``: which input rows the batch holds (row numbers, no patient data)."""
    return f"assign-orders-batch: {rows_label([item.row for item in task_run.parameters['batch']])}"


@task(name="assign-orders-batch", task_run_name=batch_run_name, cache_policy=NO_CACHE, tags=WRITE_TAGS)
def assign_orders_batch(
    batch: list[PlannedAssignment],
    credentials: PostDicomCredentials,
    limit_name: str | None,
) -> list[RowResult]:
    """Send one batch of assignments through one client, holding one slot of the global concurrency limit.

    One slot per batch, not per request: acquiring a Prefect slot costs a round
    trip to the Prefect server (seconds on SQLite), while the client's own
    throttle (``requests_per_second``) paces each request for free. Each row is
    one call of the client method the documented task makes, with the client's
    retries: a lost connection repeats that row's request, not the batch. The
    task itself is not retried (a repeat would send every row again).
    """
    with limit_slot(limit_name), credentials.get_client() as client:
        results = [assign_one(client, item) for item in batch]
    counts = count_by((result.status for result in results), ASSIGNMENT_STATUSES)
    get_run_logger().info(
        "%s: %s", rows_label([item.row for item in batch]), ", ".join(f"{n} {status}" for status, n in counts.items())
    )
    return results
