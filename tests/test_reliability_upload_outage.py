"""Issue 18.2: the server goes away mid-upload; the run still accounts for every file.

A private sandbox is stopped right after the first STOW request was
answered, before the next one leaves (the run's only request slot is still
held). Later batches then fail at their pre-check ("already stored?") or, if
they passed it before the stop, at their STOW; the run must end Failed with a
``FlowRunFailed`` carrying the report: the first request's files ``stored``,
every other file ``failed`` with the reason, both artifacts written. Started
again, the sandbox has those files (it keeps its data), and a rerun sends
only the rest.
"""

from __future__ import annotations

from typing import Any

import pytest
from prefect.artifacts import Artifact

from flows import bulk_upload_and_share
from flows.reporting import FlowRunFailed
from postdicom.stow import Stow
from postdicom.synthetic import write_study
from tests.fixtures.sandbox_server import launch
from tests.test_flow_upload_and_share import EXPIRE, unique_specs


@pytest.mark.slow
def test_a_server_gone_mid_upload_leaves_every_file_accounted_for(prefect_harness, tmp_path, monkeypatch):
    sandbox = launch(tmp_path / "sandbox")
    try:
        disk = tmp_path / "disk"
        files = [path for spec in unique_specs(3, instances_per_series=2) for path in write_study(disk, spec)]
        real_store_batch = Stow._store_batch
        calls: list[int] = []

        def store_then_stop_the_server(stow: Stow, batch: Any) -> Any:
            outcomes = real_store_batch(stow, batch)
            if not calls:
                sandbox.stop()
            calls.append(len(batch))
            return outcomes

        monkeypatch.setattr(Stow, "_store_batch", store_then_stop_the_server)
        parameters = dict(
            credentials=sandbox.info(0).credentials(max_retries=0), directory=str(disk), expire_date=EXPIRE,
            batch_size=2, concurrency=1,
        )
        with pytest.raises(FlowRunFailed) as raised:
            bulk_upload_and_share(**parameters)

        report = raised.value.report
        assert report.total_files == len(files)
        assert report.counts["stored"] == 2
        assert report.counts["failed"] == len(files) - 2
        assert len(report.files_not_stored) == len(files) - 2
        assert all(issue.status == "failed" and "Error" in issue.reason for issue in report.files_not_stored)
        assert any("not confirmed stored" in issue.reason for issue in report.files_not_stored)
        assert any("could not be sent" in problem for problem in report.problems)
        table = Artifact.get("upload-and-share-files-not-stored")
        assert table is not None and f"{len(files) - 2} of {len(files)} files not stored" in (table.description or "")
        assert Artifact.get("upload-and-share-summary") is not None

        monkeypatch.setattr(Stow, "_store_batch", real_store_batch)
        sandbox.start()
        rerun = bulk_upload_and_share(**parameters)
        assert rerun.counts["already_stored"] == 2
        assert rerun.counts["stored"] == len(files) - 2
    finally:
        sandbox.stop()
