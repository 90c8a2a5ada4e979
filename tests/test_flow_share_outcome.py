"""Issue 18.4: the share step of bulk_upload_and_share says what became of each link, and never loses the files' report.

The runs here upload one study with no folder and no assignment, so the
custom endpoints see exactly two requests: the order list (1st) and the
share (2nd). A sandbox fault rule ``KIND:1/2@custom`` therefore hits the
first try of the share and nothing else, deterministically (no fault rate,
no timing). What the server holds is read back from the sandbox's database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.artifacts import Artifact

from flows import bulk_upload_and_share
from flows.reporting import FlowRunFailed
from postdicom.synthetic import write_study
from tests.fixtures.sandbox_server import launch, sandbox_faults
from tests.fixtures.servers import ServerInfo
from tests.test_flow_upload_and_share import EXPIRE, unique_specs


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Iterator[ServerInfo]:
    """A sandbox of this module's own: its fault counters and share table see only these runs."""
    process = launch(tmp_path_factory.mktemp("share-outcome-sandbox"))
    yield process.info(0)
    process.stop()


def one_study_disk(root: Path) -> list[Path]:
    """One study of two instances, and a text file that is only listed (so the files' table is written)."""
    files = write_study(root, unique_specs(1, instances_per_series=2)[0])
    (root / "notes.txt").write_text("not an image")
    return files


def shares_holding(sandbox: ServerInfo, order_uuids: list[str]) -> int:
    """How many share links the sandbox holds for these orders (order shares and folder shares alike)."""
    database = Path(sandbox.extra["data_dir"]) / "index.sqlite3"
    marks = ",".join("?" * len(order_uuids))
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        (count,) = connection.execute(
            f"SELECT COUNT(DISTINCT s.uuid) FROM shares s LEFT JOIN share_orders so ON so.share_uuid = s.uuid"
            f" LEFT JOIN folder_orders fo ON fo.folder_uuid = s.folder_uuid"
            f" WHERE so.order_uuid IN ({marks}) OR fo.order_uuid IN ({marks})",
            [*order_uuids, *order_uuids],
        ).fetchone()
    return int(count)


def custom_requests_seen(sandbox: ServerInfo) -> int:
    """Requests the (single) fault rule counted so far."""
    described = httpx.get(sandbox.root_url + "/_sandbox/faults", timeout=10).json()
    return int(described["rules"][0]["seen"])


def failed_report(**parameters: Any) -> Any:
    with pytest.raises(FlowRunFailed) as raised:
        bulk_upload_and_share(**parameters)
    return raised.value.report


def summary_markdown() -> str:
    artifact = Artifact.get("upload-and-share-summary")
    assert artifact is not None
    return str(artifact.data)


def test_a_share_turned_away_with_503_and_retry_after_is_sent_again_and_made(prefect_harness, sandbox, tmp_path):
    files = one_study_disk(tmp_path)
    with sandbox_faults(sandbox, "503:1/2@custom", retry_after=1):
        summary = bulk_upload_and_share(credentials=sandbox.credentials(), directory=str(tmp_path), expire_date=EXPIRE)
        assert custom_requests_seen(sandbox) == 3, "order list, share turned away, share again"

    assert summary.counts["stored"] == len(files)
    assert summary.share_status == "made"
    (link,) = summary.shares
    assert link.status == "made" and link.share_url and link.folder_uuid is None
    assert shares_holding(sandbox, summary.patient_order_uuids) == 1
    assert httpx.get(link.share_url, timeout=30).status_code == 200


def test_a_lost_answer_leaves_the_link_unknown_with_what_to_do_and_the_files_report_whole(
    prefect_harness, sandbox, tmp_path
):
    files = one_study_disk(tmp_path)
    with sandbox_faults(sandbox, "drop:1/2@custom"):
        report = failed_report(credentials=sandbox.credentials(), directory=str(tmp_path), expire_date=EXPIRE)
        assert custom_requests_seen(sandbox) == 2, "the share was sent once, never again blind"

    assert report.total_files == len(files) + 1
    assert report.counts["stored"] == len(files) and report.counts["not_dicom"] == 1
    assert [issue.path for issue in report.files_not_stored] == ["notes.txt"]
    assert len(report.patient_order_uuids) == 1
    assert report.share_status == "unknown" and report.share_urls == []
    (link,) = report.shares
    assert link.status == "unknown" and link.share_url is None
    assert link.patient_order_uuids == report.patient_order_uuids
    assert "TransportError" in (link.reason or "")
    assert "look in the PostDICOM web UI" in (link.what_to_do or "") and "second link" in (link.what_to_do or "")
    assert any("share links unknown" in problem for problem in report.problems)

    markdown = summary_markdown()
    assert "Share step: **unknown**" in markdown and "**unknown** (the link may exist)" in markdown
    assert "look in the PostDICOM web UI" in markdown
    table = Artifact.get("upload-and-share-files-not-stored")
    assert table is not None and "1 of 3 files not stored" in (table.description or "")


def test_a_share_still_turned_away_when_the_budget_ends_is_not_made_and_a_rerun_makes_it(
    prefect_harness, sandbox, tmp_path
):
    files = one_study_disk(tmp_path)
    parameters = dict(credentials=sandbox.credentials(max_retries=0), directory=str(tmp_path), expire_date=EXPIRE)
    with sandbox_faults(sandbox, "503:1/2@custom", retry_after=1):
        report = failed_report(**parameters)

    assert report.counts["stored"] == len(files)
    assert report.share_status == "not_made"
    (link,) = report.shares
    assert link.status == "not_made" and link.share_url is None
    assert "HTTP 503" in (link.reason or "") and "run the flow again" in (link.what_to_do or "")
    assert any("share links not made" in problem for problem in report.problems)
    assert "Share step: **not made**" in summary_markdown()
    assert shares_holding(sandbox, report.patient_order_uuids) == 0, "not made means not on the server"

    rerun = bulk_upload_and_share(**parameters)
    assert rerun.counts["already_stored"] == len(files)
    assert rerun.share_status == "made" and len(rerun.share_urls) == 1
    assert shares_holding(sandbox, rerun.patient_order_uuids) == 1


def test_after_a_lost_answer_the_next_patients_link_is_not_tried_and_says_so(prefect_harness, sandbox, tmp_path):
    """Two patients, one link each: order lists are the 1st and 2nd custom requests, the first share the 3rd."""
    for number, spec in enumerate(unique_specs(2, instances_per_series=1)):
        write_study(tmp_path / f"disk{number}", spec)
    with sandbox_faults(sandbox, "drop:1/3@custom"):
        report = failed_report(
            credentials=sandbox.credentials(), directory=str(tmp_path), expire_date=EXPIRE, share_per="patient"
        )
        assert custom_requests_seen(sandbox) == 3, "the second share was not sent"

    assert report.counts["stored"] == 2
    assert report.share_status == "unknown"
    first, second = report.shares
    assert first.status == "unknown" and "look in the PostDICOM web UI" in (first.what_to_do or "")
    assert second.status == "not_made" and "not tried" in (second.reason or "")
    assert "run the flow again" in (second.what_to_do or "")
    assert {first.patient_id, second.patient_id} == {study.patient_id for study in report.studies}
    assert shares_holding(sandbox, report.patient_order_uuids) == 0
    markdown = summary_markdown()
    assert "**not made**" in markdown and "**unknown** (the link may exist)" in markdown
    assert not any(study.patient_id in markdown for study in report.studies), "links are numbered, not named"
