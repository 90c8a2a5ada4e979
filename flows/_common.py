"""What the upload-and-share and the reassignment flows both need, written once.

Both flows fan work out in batches over a bounded pool, read the account's
patient orders through the order list (the only way to learn an order's
institution without asking every institution), read the client's answers in
the same tolerant way, and end Failed with their report still in hand. Each of
those is a small helper here so the two flows cannot drift apart.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency as concurrency_slot
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from blocks import PostDicomCredentials
from postdicom.errors import PostDicomError, is_transient
from tasks.policies import WRITE_TAGS, read_task_options

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 16
"""Ceiling of the flows' thread pools; the ``concurrency`` parameters choose how much of it is used."""


def bounded_task_runner() -> ThreadPoolTaskRunner:
    """A thread pool with a fixed ceiling: Prefect's default pool is unbounded."""
    return ThreadPoolTaskRunner(max_workers=MAX_WORKERS)


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Split ``items`` into consecutive lists of at most ``size`` (at least 1)."""
    size = max(1, int(size))
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def run_bounded(
    task_: Task[..., R],
    batches: Sequence[T],
    *,
    concurrency: int,
    on_done: Callable[[int, R], None] | None = None,
    **kwargs: Any,
) -> list[R]:
    """Run ``task_(batch, **kwargs)`` for every batch with at most ``concurrency`` running at once.

    A sliding window rather than ``.map``: ``.map`` submits everything at once,
    so the pool size would be the only bound and it is fixed when the flow is
    declared, while ``concurrency`` is a run parameter. ``on_done(index, result)``
    is called as each batch finishes (progress artifacts move with it). Results
    come back in the order of ``batches``; a task that raised re-raises here.
    """
    width = max(1, min(int(concurrency), MAX_WORKERS))
    results: dict[int, R] = {}
    pending: dict[PrefectFuture[R], int] = {}
    queue: Iterator[tuple[int, T]] = iter(enumerate(batches))

    def top_up() -> None:
        for index, batch in queue:
            pending[task_.submit(batch, **kwargs)] = index
            if len(pending) >= width:
                return

    top_up()
    while pending:
        future = next(as_completed(list(pending)))
        index = pending.pop(future)
        results[index] = future.result()
        if on_done is not None:
            on_done(index, results[index])
        top_up()
    return [results[index] for index in range(len(batches))]


def answer_dict(answer: Any) -> dict[str, Any]:
    """The server's JSON answer as a dict, whether the client returned a dict or a model keeping ``raw``."""
    if isinstance(answer, Mapping):
        return dict(answer)
    raw = getattr(answer, "raw", None)
    if isinstance(raw, Mapping):
        return dict(raw)
    dump = getattr(answer, "model_dump", None)
    if callable(dump):
        return dict(dump(by_alias=True))
    raise TypeError(f"cannot read an answer of type {type(answer).__name__}")


def pick(answer: Any, key: str, default: Any = None) -> Any:
    """``answer[key]`` ignoring key case (the answers' contract says case is not significant)."""
    data = answer_dict(answer)
    if key in data:
        return data[key]
    lowered = key.lower()
    for name, value in data.items():
        if name.lower() == lowered:
            return value
    return default


def canonical_uuid(value: Any) -> str | None:
    """The lower-case canonical form of a UUID string, or ``None`` when it is not one."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def fetch_orders(client: Any, **filters: Any) -> list[dict[str, Any]]:
    """Order-list rows as dicts; filters are GetPatientOrderList's (no institutions: all of them)."""
    institutions = list(filters.pop("institution_uuid_list", None) or [])
    given = {name: value for name, value in filters.items() if value not in (None, [], "")}
    answer = client.get_patient_order_list(institution_uuid_list=institutions, **given)
    return [answer_dict(row) for row in pick(answer, "PatientOrderList") or []]


@task(name="list-patient-orders", **read_task_options(cached=False))
def list_patient_orders(
    credentials: PostDicomCredentials,
    institution_uuid_list: list[str] | None = None,
    modality_list: list[str] | None = None,
    study_date_from: Any = None,
    study_date_to: Any = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
) -> list[dict[str, Any]]:
    """The account's patient orders matching the filters (each order-list row as a dict).

    Not cached on purpose: both flows compare against the server's *current*
    state (which orders exist, who is assigned), so a ten-minute-old answer
    would make a rerun report the wrong thing.
    """
    with credentials.get_client() as client:
        return fetch_orders(
            client,
            institution_uuid_list=institution_uuid_list,
            modality_list=modality_list,
            study_date_from=study_date_from,
            study_date_to=study_date_to,
            patient_id=patient_id,
            patient_name=patient_name,
        )


class FlowRunFailed(Exception):
    """Raised at the end of a flow that did all it could but left some items failed.

    Carries the flow's full report in ``report``, so a caller who catches it
    (or reads ``state.result(raise_on_failure=False)``) still has every row;
    Prefect marks the run Failed with this exception as its result. The
    message holds counts only, never a value from the input.
    """

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.report))


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>])")


def md(text: Any) -> str:
    """``text`` safe to drop into a Markdown table cell or paragraph."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def count_by(values: Iterable[str], known: Iterable[str]) -> dict[str, int]:
    """Occurrences of each value, with every ``known`` value present (zero when absent)."""
    counts = dict.fromkeys(known, 0)
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


# Assignments, shared by batch_reassignment and bulk_upload_and_share (which
# assigns the orders it uploaded): validate, compare with the current
# assignment, send in batches, report one row each.

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


def ensure_concurrency_limit(name: str, slots: int) -> None:
    """Create the global concurrency limit ``name`` with ``slots`` if it does not exist.

    An existing limit is left as its operator set it: it is shared by every run
    of the flow, which is the point (two runs together stay within it).
    """
    with get_client(sync_client=True) as prefect_client:
        try:
            prefect_client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                prefect_client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=max(1, slots))
                )
            except ObjectAlreadyExists:
                pass


