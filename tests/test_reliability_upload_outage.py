"""Issue 18.2: the server goes away mid-upload; the run still accounts for every file.

A private sandbox is stopped right after the first batch of files was
stored. The pre-check ("already stored?") of every later batch then fails;
the run must end Failed with a ``FlowRunFailed`` carrying the report: the
first batch ``stored``, every other file ``failed`` with the reason, both
artifacts written. Started again, the sandbox has the first batch (it keeps
its data), and a rerun sends only the rest.
"""

from __future__ import annotations

from typing import Any

import pytest
from prefect.artifacts import Artifact

from flows import bulk_upload_and_share
from flows import upload_and_share as upload_flow
from flows.reporting import FlowRunFailed
from postdicom.synthetic import write_study
from tests.fixtures.sandbox_server import launch
from tests.test_flow_upload_and_share import EXPIRE, unique_specs


@pytest.mark.slow
def test_a_server_gone_mid_upload_leaves_every_file_accounted_for(prefect_harness, tmp_path, monkeypatch):
    sandbox = launch(tmp_path / "sandbox")
    try:
        disk = tmp_path / "disk"
        files = [path for spec in unique_specs(3, instances_per_series=2) for path in write_study(disk, spec)]
        real_upload_files = upload_flow.upload_files
        calls: list[int] = []

        def upload_then_stop_the_server(client: Any, batch: Any, **kwargs: Any) -> Any:
            report = real_upload_files(client, batch, **kwargs)
            if not calls:
                sandbox.stop()
            calls.append(len(batch))
            return report

        monkeypatch.setattr(upload_flow, "upload_files", upload_then_stop_the_server)
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
        assert all(issue.status == "failed" and "not confirmed stored" in issue.reason and "Error" in issue.reason
                   for issue in report.files_not_stored)
        assert any("could not be sent" in problem for problem in report.problems)
        table = Artifact.get("upload-and-share-files-not-stored")
        assert table is not None and f"{len(files) - 2} of {len(files)} files not stored" in (table.description or "")
        assert Artifact.get("upload-and-share-summary") is not None

        monkeypatch.setattr(upload_flow, "upload_files", real_upload_files)
        sandbox.start()
        rerun = bulk_upload_and_share(**parameters)
        assert rerun.counts["already_stored"] == 2
        assert rerun.counts["stored"] == len(files) - 2
    finally:
        sandbox.stop()
