"""Bounded submission: at most N task runs in flight, results handed over as they finish.

Every flow fans work out this way (upload batches, assignment rows, export
chunks), so the rule lives here once. A sliding window rather than ``.map``:
``.map`` submits everything at once, so the pool size would be the only bound
and it is fixed when the flow is declared, while ``concurrency`` is a run
parameter; and results are handed over one by one, so memory does not grow
with the number of items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast

from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.collections import visit_collection

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 16
"""Ceiling of the flows' thread pools; the ``concurrency`` parameters choose how much of it is used."""


def bounded_task_runner() -> TaskRunner[PrefectFuture[Any]]:
    """A thread pool with a fixed ceiling: Prefect's default pool is unbounded."""
    # What @flow(task_runner=...) is annotated to take; Prefect's generic is invariant,
    # so its own ThreadPoolTaskRunner only fits after a cast.
    return cast("TaskRunner[PrefectFuture[Any]]", ThreadPoolTaskRunner(max_workers=MAX_WORKERS))


def chunked(items: Sequence[T], size: int) -> list[list[T]]:
    """Split ``items`` into consecutive lists of at most ``size`` (at least 1)."""
    size = max(1, int(size))
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def take_chunks(items: list[T], size: int, waves_of: int = 1) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` (at least 1), as equal as possible, taken out of ``items`` as handed over.

    Their number is a multiple of ``waves_of`` (the task runs in flight at
    once) when there are items enough, so that every wave of batches keeps
    every slot busy: 1,000 items in lists of at most 100 for 4 slots make 12
    lists of 83-84 (three full waves), not 10 of 100 whose last wave would
    leave two slots idle while the other two take a whole batch's time.
    Unlike :func:`chunked`, nothing keeps a chunk once its consumer drops it:
    ``items`` is emptied as the chunks go (it is consumed, order kept), so a
    flow submitting them through :func:`submit_bounded` holds only the chunks
    in flight, not every one until the last is done.
    """
    size, waves_of = max(1, int(size)), max(1, int(waves_of))
    needed = math.ceil(len(items) / size)
    count = min(len(items), math.ceil(needed / waves_of) * waves_of)
    items.reverse()
    for number in range(count):
        take = math.ceil(len(items) / (count - number))  # the rest shared evenly by the lists still to come
        chunk = items[-take:]
        del items[-take:]
        chunk.reverse()
        yield chunk


def submit_bounded(
    submit: Callable[[T], PrefectFuture[R]],
    items: Iterable[T],
    width: int,
    on_error: Callable[[int, Exception], R] | None = None,
) -> Iterator[tuple[int, R, PrefectFuture[R]]]:
    """Yield ``(index, result, future)`` as submissions finish, with at most ``width`` in flight.

    ``submit(item)`` starts one task run (``task.submit(...)`` or
    ``runner.submit(...)``). After a failure nothing new is submitted; the
    running ones finish (so a cached task keeps its result for the rerun),
    then the first error is raised. With ``on_error``, a failed submission
    (its retries spent) yields ``on_error(index, error)`` as its result
    instead, and the others go on, so a flow can still account for every item.
    """
    width = max(1, int(width))
    pending: dict[PrefectFuture[R], int] = {}
    queue = iter(enumerate(items))
    error: BaseException | None = None
    while True:
        while error is None and len(pending) < width:
            entry = next(queue, None)
            if entry is None:
                break
            pending[submit(entry[1])] = entry[0]
        if not pending:
            break
        future = next(as_completed(list(pending)))
        index = pending.pop(future)
        try:
            result = future.result()
        except BaseException as exc:  # noqa: BLE001 - accounted for by on_error, or re-raised once the running ones are done
            if on_error is None or not isinstance(exc, Exception):
                error = error or exc
                continue
            result = on_error(index, exc)
        if error is None:
            yield index, result, future
    if error is not None:
        raise error


def unlink_result(result: Any) -> None:
    """Drop the links Prefect made from ``result``, and each item one level inside it, to the task run it came from.

    Prefect links every task result to a copy of its run's final state (about
    4 KB) in ``FlowRunContext.run_results``, so that a result passed on to
    another task records that edge in the run graph. The links stay for the
    rest of the flow run, and to the process's end with the context Prefect
    keeps alive for the first tagged task run: one state per task run, 2 MB
    for the 512 chunks of a 20,000-order export (``benchmarks/RESULTS.md``,
    *Export memory, sixth pass*). A flow that consumes a result itself, and
    passes it to no task, calls this once it is done with it.
    """
    context = FlowRunContext.get()
    if context is not None:
        visit_collection(result, lambda item: context.run_results.pop(id(item), None), max_depth=1)


def run_bounded(
    submit: Callable[[T], PrefectFuture[R]],
    items: Sequence[T],
    *,
    concurrency: int,
    on_done: Callable[[int, R], None] | None = None,
    on_error: Callable[[int, Exception], R] | None = None,
) -> list[R]:
    """All results of :func:`submit_bounded`, in the order of ``items``.

    At most ``concurrency`` (capped at :data:`MAX_WORKERS`) run at once;
    ``on_done(index, result)`` is called as each one finishes (progress
    artifacts move with it); ``on_error`` as in :func:`submit_bounded`.
    """
    results: dict[int, R] = {}
    for index, result, _ in submit_bounded(submit, items, min(int(concurrency), MAX_WORKERS), on_error):
        results[index] = result
        if on_done is not None:
            on_done(index, result)
    return [results[index] for index in range(len(items))]
