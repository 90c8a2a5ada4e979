"""``flows.window``: what a flow keeps of the task runs it fans out."""

from __future__ import annotations

from prefect import flow, task
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from flows.window import submit_bounded, unlink_result


@task(name="window-batch")
def batch(size: int) -> dict[str, list[int]]:
    return {"items": list(range(size))}


@flow(name="window-result-links")
def result_links(batches: int, unlink: bool) -> int:
    """How many result links the flow run holds after ``batches`` task runs whose results it consumed."""
    with ThreadPoolTaskRunner[dict[str, list[int]]](max_workers=2) as runner:
        for _, result, _ in submit_bounded(lambda size: runner.submit(batch, {"size": size}), range(300, 300 + batches), 2):
            assert len(result["items"]) >= 300
            if unlink:
                unlink_result(result)
    context = FlowRunContext.get()
    assert context is not None
    return len(context.run_results)


def test_unlinked_results_leave_the_flow_run_no_link_per_task_run(prefect_harness):
    """Prefect links each result (and its items one level in) to its run for the flow run's life; unlinked, none stay."""
    assert result_links(8, unlink=False) > result_links(2, unlink=False), "Prefect links every result it hands back"
    assert result_links(8, unlink=True) == result_links(2, unlink=True) == 0


def test_unlink_result_outside_a_flow_run_does_nothing():
    unlink_result({"items": [1, 2]})
