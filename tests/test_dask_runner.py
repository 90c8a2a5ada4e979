"""The scaling path, shown locally: the upload flow's batches run on a Dask cluster.

``bulk_upload_and_share`` submits its upload batches to whatever task runner
it is given, so swapping in ``prefect_dask.DaskTaskRunner`` pointed at a
cluster is all it takes to spread a large disk over many machines. Here the
cluster is a local two-worker ``LocalCluster`` (threads, no extra processes),
and a scheduler plugin records which worker ran which task — proof that the
work went through Dask rather than the flow's default thread pool.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin
from prefect_dask import DaskTaskRunner

from flows import bulk_upload_and_share
from postdicom.synthetic import StudySpec, write_study


class FinishedTasks(SchedulerPlugin):
    """Remembers every task that finished on the scheduler, and on which worker."""

    name = "postdicom-finished-tasks"

    def __init__(self) -> None:
        self.finished: dict[str, str] = {}

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish == "memory":
            self.finished[str(key)] = str(kwargs.get("worker", ""))


@pytest.fixture
def dask_cluster() -> Iterator[tuple[LocalCluster, FinishedTasks]]:
    """A local Dask cluster of two threaded workers, with the recording plugin installed."""
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.register_plugin(FinishedTasks())
            plugin = cluster.scheduler.plugins[FinishedTasks.name]
            assert isinstance(plugin, FinishedTasks)
            yield cluster, plugin


@pytest.mark.slow
def test_upload_flow_runs_its_batches_on_a_dask_cluster(
    prefect_harness: None, sandbox_server: Any, dask_cluster: tuple[LocalCluster, FinishedTasks], tmp_path: Path
) -> None:
    cluster, plugin = dask_cluster
    tag = uuid.uuid4().hex[:8]
    written: list[Path] = []
    for n, modality in enumerate(("CT", "MR", "US")):
        spec = StudySpec(
            f"Dask^Patient{n}", f"DASK-{tag}-{n}", modality, series_count=2, instances_per_series=3, seed=f"dask-{tag}-{n}"
        )
        written += write_study(tmp_path / "disk", spec, suffix="" if n == 1 else ".dcm")

    on_dask = bulk_upload_and_share.with_options(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    state = on_dask(
        credentials=sandbox_server.credentials(),
        directory=str(tmp_path / "disk"),
        expire_date=dt.date.today() + dt.timedelta(days=1),
        folder_name=f"Dask {tag}",
        batch_size=4,
        concurrency=4,
        return_state=True,
    )
    assert state.is_completed(), state.message
    summary = state.result()

    assert summary.total_files == len(written) == 18
    assert summary.counts["stored"] == 18
    assert len(summary.patient_order_uuids) == 3
    assert summary.shares and summary.shares[0].share_url.startswith(sandbox_server.root_url or "http")

    batches = -(-len(written) // 4)
    assert len(plugin.finished) >= batches, plugin.finished
    workers = {worker for worker in plugin.finished.values() if worker}
    assert workers and workers <= set(cluster.scheduler.workers), workers
