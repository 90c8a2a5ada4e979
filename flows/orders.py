"""Reading the account's patient orders through the public tasks, the one way the flows learn an order's state.

The order list is the only way to learn an order's institution and current
assignment without asking every institution. The flows compare against the
server's *current* state (which orders exist, who is assigned), so they read
through :func:`fresh`: the documented task (same name in the UI), never
answered from the read cache, its answer never written to result storage
(an order list is patient data).
"""

from __future__ import annotations

from typing import Any, ParamSpec, TypeVar

from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from blocks import PostDicomCredentials
from postdicom.answer_fields import canonical_uuid
from postdicom.models import PatientOrderListAnswer, PatientOrderSummary
from tasks import get_patient_order_list

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


def current_orders(credentials: PostDicomCredentials, **filters: Any) -> list[PatientOrderSummary]:
    """The account's orders matching GetPatientOrderList's ``filters`` (no institutions: all of them).

    Empty filters are left out, so ``patient_id=None`` means "any patient".
    The task run's state lets go of the answer (:func:`let_go`).
    """
    given = {name: value for name, value in filters.items() if value not in (None, [], "")}
    institutions = list(given.pop("institution_uuid_list", None) or [])
    answer: PatientOrderListAnswer = let_go(
        fresh(get_patient_order_list)(credentials, institution_uuid_list=institutions, return_state=True, **given)
    )
    return list(answer.patient_order_list)


def orders_by_uuid(orders: list[PatientOrderSummary]) -> dict[str, PatientOrderSummary]:
    """``orders`` keyed by their canonical UUID (an entry without a readable UUID is left out)."""
    keyed: dict[str, PatientOrderSummary] = {}
    for order in orders:
        key = canonical_uuid(order.patient_order_uuid)
        if key is not None:
            keyed[key] = order
    return keyed
