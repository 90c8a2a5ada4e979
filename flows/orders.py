"""Reading the account's patient orders, the one way the flows learn an order's state.

The order list is the only way to learn an order's institution and current
assignment without asking every institution. The flows compare against the
server's *current* state (which orders exist, who is assigned), so they read
through :func:`fresh`: the documented task (same name in the UI), never
answered from the read cache, its answer never written to result storage
(an order list is patient data). A flow that needs only who each order is
assigned to (the reassignment) reads :func:`order_index` instead: one task
run that makes the same client call and keeps per order only that
(:class:`OrderIndex`), never the parsed entries with the JSON they came from.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from prefect.states import State

from blocks import PostDicomCredentials
from postdicom import PostDicomClient
from postdicom.answer_fields import canonical_uuid
from postdicom.models import PatientOrderSummary
from tasks.policies import READ_TAGS, transient_retry_options

P = ParamSpec("P")
R = TypeVar("R")


def fresh(task_: Task[P, R]) -> Task[P, R]:
    """``task_`` reading the server now: no cache lookup, no result written to storage."""
    return task_.with_options(cache_policy=NO_CACHE, persist_result=False)


def let_go(state: State[Any]) -> Any:
    """The result of a finished, unstored task run's ``state``; the state no longer holds it.

    Prefect keeps the context of the first task run of a tag set alive with the
    service that takes its tag-limit slots (``ConcurrencySlotAcquisitionWithLeaseService``,
    started from inside that run), and with it that run's state, for the life
    of the process. An order list read that way (about 3 KB per order with the
    JSON it was read from) stayed in memory to the end: through a whole
    reassignment, through a day's export (``benchmarks/RESULTS.md``,
    *Reassignment memory* and *Export flow, second pass*). Only for task runs
    whose result is neither persisted nor cached: nothing reads it there again.
    Raises what the task raised when the run failed.
    """
    result = state.result()
    state.data = None
    return result


def orders_by_uuid(orders: list[PatientOrderSummary]) -> dict[str, PatientOrderSummary]:
    """``orders`` keyed by their canonical UUID (an entry without a readable UUID is left out)."""
    keyed: dict[str, PatientOrderSummary] = {}
    for order in orders:
        key = canonical_uuid(order.patient_order_uuid)
        if key is not None:
            keyed[key] = order
    return keyed


@dataclass(slots=True, frozen=True)
class OrderAssignment:
    """What planning an assignment needs of an order: who it is assigned to now (canonical UUIDs, interned).

    About 0.1 KB an order with its key, against 3-5 KB for an order-list
    entry parsed with the JSON it was read from (``benchmarks/RESULTS.md``,
    *Reassignment memory, second pass*).
    """

    assigned_user_uuid: str | None
    assigned_user_group_uuid: str | None


@dataclass(slots=True)
class OrderIndex:
    """An order list reduced to what planning reads.

    ``assignments``: canonical order UUID -> :class:`OrderAssignment`, for the
    orders asked for (all of them when none were named). ``listed``: when asked
    for, each entry's order UUID as the server gave it, by study date (a
    selection's rows, :func:`index_orders`); entries without a readable UUID are
    listed too, so they are reported rather than lost.
    """

    assignments: dict[str, OrderAssignment] = field(default_factory=dict)
    listed: list[Any] | None = None
    entries: int = 0


def _interned(value: Any) -> str | None:
    uuid = canonical_uuid(value)
    return None if uuid is None else sys.intern(uuid)


def index_orders(
    entries: Iterable[PatientOrderSummary], wanted: Collection[str] | None = None, *, listing: bool = False
) -> OrderIndex:
    """The :class:`OrderIndex` of ``entries``, read one at a time (each entry is dropped once indexed).

    ``wanted``: the canonical UUIDs to keep (``None``: every order). ``listing``:
    also list every entry's order UUID, by study date (orders without one
    last), orders of the same date in the order received. That is the order
    the server gives one call (``docs/api-answers.md``: "sorted by study date,
    then creation") and the order ``get_patient_order_list`` gives a split
    call, so a selection's row numbers do not depend on whether its
    institutions fitted in one call; across the calls of a split, orders of
    the same date come call by call (the list carries no creation time).
    """
    index = OrderIndex()
    listed: list[tuple[bool, dt.date, Any]] | None = [] if listing else None
    for entry in entries:
        index.entries += 1
        if listed is not None:
            listed.append((entry.study_date is None, entry.study_date or dt.date.min, entry.patient_order_uuid))
        key = canonical_uuid(entry.patient_order_uuid)
        if key is None or (wanted is not None and key not in wanted):
            continue
        index.assignments[key] = OrderAssignment(
            _interned(entry.assigned_user_uuid), _interned(entry.assigned_user_group_uuid)
        )
    if listed is not None:
        # Stable: orders of one study date keep the order received.
        listed.sort(key=lambda item: item[:2])
        index.listed = [order_uuid for _, _, order_uuid in listed]
    return index


def _order_list_entries(
    client: PostDicomClient, institution_uuid_list: list[str], filters: Mapping[str, Any]
) -> Iterator[PatientOrderSummary]:
    """GetPatientOrderList's entries as they arrive (:meth:`postdicom.PostDicomClient.iter_patient_order_list`).

    What could not be read in the answer is logged once every entry was handed on.
    """
    with client.iter_patient_order_list(institution_uuid_list, **filters) as entries:
        yield from entries
        warnings = entries.reading.warnings
    for warning in warnings:
        get_run_logger().warning("%s", warning)


def _index_run_name() -> str:
    """``read-order-index: all institutions`` (or how many): no filter value, which could be patient data."""
    count = len(task_run.parameters.get("institution_uuid_list") or [])
    return f"read-order-index: {f'{count} institution(s)' if count else 'all institutions'}"


@task(
    name="read-order-index",
    task_run_name=_index_run_name,
    tags=READ_TAGS,
    cache_policy=NO_CACHE,
    persist_result=False,
    **transient_retry_options(),
)
def read_order_index(
    credentials: PostDicomCredentials,
    institution_uuid_list: list[str],
    filters: dict[str, Any],
    wanted: set[str] | None = None,
    listing: bool = False,
) -> OrderIndex:
    """GetPatientOrderList (the call of the documented ``get_patient_order_list``) read into an :class:`OrderIndex`.

    A read of the server now: never cached, its result never stored. The
    answer is read as it arrives and each entry is indexed, then dropped, so
    the parsed order list (3-5 KB an order at its peak when read whole) is
    never held, and the result is the index only (issue 13 item 5: a task
    calling the client where the whole parsed answer as a task result costs
    too much). The entries come in the order received (for hundreds of
    institutions, call after call); ``listing`` lists them by study date
    across the calls (:func:`index_orders`). A failure part-way (retried by the task, as the documented read is) starts
    the index again.
    """
    with credentials.get_client() as client:
        index = index_orders(_order_list_entries(client, institution_uuid_list, filters), wanted, listing=listing)
    get_run_logger().info("%d orders listed, %d kept for planning", index.entries, len(index.assignments))
    return index


def order_index(
    credentials: PostDicomCredentials,
    wanted: Collection[str] | None = None,
    *,
    listing: bool = False,
    **filters: Any,
) -> OrderIndex:
    """The account's orders matching GetPatientOrderList's ``filters`` as an :class:`OrderIndex` (one task run).

    Empty filters are left out, so ``modality_list=[]`` means "any modality". The
    task run's state lets go of the index once read (:func:`let_go`).
    """
    given = {name: value for name, value in filters.items() if value not in (None, [], "")}
    institutions = list(given.pop("institution_uuid_list", None) or [])
    # The task's own copy, emptied once read: the run's context (its parameters) may stay with Prefect (let_go).
    asked = None if wanted is None else set(wanted)
    try:
        index: OrderIndex = let_go(read_order_index(credentials, institutions, given, asked, listing, return_state=True))
    finally:
        if asked is not None:
            asked.clear()
    return index
