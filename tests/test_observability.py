"""Runs you can watch: what a person opening the Prefect UI finds after a flow ran.

The UI shows only what the API stores, so these tests ask the API (through
Prefect's own client) for the flow run, its task runs, its logs and its
artifacts after real runs on the sandbox — and check that the share password
typed by the user is in none of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, Log, TaskRun
from pydantic import SecretStr

from flows import batch_reassignment, bulk_upload_and_share, nightly_order_export

T = TypeVar("T")
SEED_RADIOLOGIST = "9d02eb73-8dd5-4798-9962-621dcebf7caf"
"""Dr. Ana Radióloga in the sandbox's default seed (first institution of the demo account)."""


def _eventually(read: Callable[[], Awaitable[T]], ready: Callable[[T], bool], timeout: float = 60.0) -> T:
    """Poll the API: task runs and logs reach the server as events and batches, a moment after the run ends."""
    deadline = time.monotonic() + timeout
    while True:
        value = asyncio.run(read())
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def _flow_run(run_id: uuid.UUID) -> FlowRun:
    async def read() -> FlowRun:
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


def _flow_name(run: FlowRun) -> str:
    async def read() -> str:
        async with get_client() as client:
            return (await client.read_flow(run.flow_id)).name

    return asyncio.run(read())


def _task_runs(run_id: uuid.UUID, at_least: int) -> list[TaskRun]:
    async def read() -> list[TaskRun]:
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))

    return _eventually(read, lambda runs: len(runs) >= at_least and all(r.state and r.state.is_final() for r in runs))


def _artifacts(run_id: uuid.UUID, keys: set[str]) -> list[Artifact]:
    async def read() -> list[Artifact]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )

    return _eventually(read, lambda found: keys <= {a.key for a in found})


def _logs(run_id: uuid.UUID, containing: str) -> list[Log]:
    async def read() -> list[Log]:
        async with get_client() as client:
            return await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))

    return _eventually(read, lambda found: any(containing in log.message for log in found))


@pytest.fixture
def run_logs_at_info() -> Iterator[None]:
    """Let the runs' INFO lines reach the API, as they do outside tests (the suite quiets Prefect to WARNING)."""
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, before):
        logger.setLevel(level)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


@pytest.mark.slow
def test_upload_and_share_run_shows_its_name_task_runs_logs_and_artifacts(
    prefect_harness: None,
    sandbox_server: Any,
    three_patient_disk: tuple[Path, dict[str, Any]],
    run_logs_at_info: None,
) -> None:
    root, disk = three_patient_disk
    folder = f"Observed {uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    expire = dt.date.today() + dt.timedelta(days=7)
    state = bulk_upload_and_share(
        credentials=sandbox_server.credentials(),
        directory=str(root),
        expire_date=expire,
        share_password=SecretStr(password),
        folder_name=folder,
        batch_size=3,
        return_state=True,
    )
    assert state.is_completed(), state.message
    summary = state.result()
    run_id = state.state_details.flow_run_id

    run = _flow_run(run_id)
    assert _flow_name(run) == "bulk-upload-and-share"
    assert run.name == f"upload-{folder.replace(' ', '-')}-until-{expire.isoformat()}"
    assert run.state is not None and run.state.is_completed()

    stored_files = sum(len(paths) for paths in disk["studies"].values())
    task_runs = _task_runs(run_id, at_least=3)
    names = [task_run.name for task_run in task_runs]
    upload_batches = [name for name in names if name.startswith("upload-files-batch")]
    assert len(upload_batches) >= -(-stored_files // 3), names
    assert any(name.startswith("share_patient_order_with_url") for name in names), names
    assert all(task_run.state is not None and task_run.state.is_completed() for task_run in task_runs)

    artifacts = _artifacts(run_id, {"upload-and-share-summary", "upload-and-share-files-not-stored"})
    by_key = {artifact.key: artifact for artifact in artifacts if artifact.key}
    assert {"upload-and-share-summary", "upload-and-share-files-not-stored"} <= set(by_key)
    markdown = _text(by_key["upload-and-share-summary"].data)
    assert summary.shares and all(share.share_url in markdown for share in summary.shares)
    assert folder in markdown
    not_stored = _text(by_key["upload-and-share-files-not-stored"].data)
    for kind in ("text", "empty", "binary", "fake_dcm"):
        assert disk["odd"][kind].name in not_stored, f"{kind} file missing from the table of files not stored"
    progress = [a for a in artifacts if a.type == "progress"]
    assert progress and float(progress[0].data) == 100.0

    logs = _logs(run_id, containing="upload:")
    assert any(f"{summary.counts['not_dicom']} not_dicom" in log.message for log in logs), [log.message for log in logs]

    stored_by_prefect = [run.model_dump_json()] + [a.model_dump_json() for a in artifacts]
    stored_by_prefect += [log.message for log in logs] + [t.model_dump_json() for t in task_runs]
    assert not [text for text in stored_by_prefect if password in text]


@pytest.mark.slow
def test_export_and_reassignment_runs_are_named_and_leave_artifacts(
    prefect_harness: None,
    sandbox_server: Any,
    three_patient_disk: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    run_logs_at_info: None,
) -> None:
    root, disk = three_patient_disk
    credentials = sandbox_server.credentials()
    expire = dt.date.today() + dt.timedelta(days=7)
    uploaded = bulk_upload_and_share(credentials=credentials, directory=str(root), expire_date=expire)
    study_date = disk["specs"][0].study_date

    export_state = nightly_order_export(
        credentials=credentials,
        destination=str(tmp_path / "export"),
        study_date_from=study_date,
        study_date_to=study_date,
        return_state=True,
    )
    assert export_state.is_completed(), export_state.message
    export_run = _flow_run(export_state.state_details.flow_run_id)
    assert _flow_name(export_run) == "nightly-order-export"
    assert export_run.name == f"order-export-{study_date.isoformat()}"
    export_tasks = _task_runs(export_run.id, at_least=1)
    assert export_tasks and all(t.state is not None and t.state.is_completed() for t in export_tasks)
    artifacts = _artifacts(export_run.id, {"order-export-summary", "order-export-partitions"})
    assert {"order-export-summary", "order-export-partitions"} <= {a.key for a in artifacts}
    partitions = next(a for a in artifacts if a.key == "order-export-partitions").data
    assert "orders" in _text(partitions)
    assert export_state.result().rows["orders"] >= len(uploaded.patient_order_uuids)

    reassign_state = batch_reassignment(
        credentials=credentials,
        assignments=[
            {"patient_order_uuid": order, "assigned_user_uuid": SEED_RADIOLOGIST}
            for order in uploaded.patient_order_uuids
        ],
        dry_run=True,
        return_state=True,
    )
    assert reassign_state.is_completed(), reassign_state.message
    reassign_run = _flow_run(reassign_state.state_details.flow_run_id)
    assert _flow_name(reassign_run) == "batch-reassignment"
    assert reassign_run.name == f"reassign-{len(uploaded.patient_order_uuids)}-rows-dry-run"
    reassign_tasks = _task_runs(reassign_run.id, at_least=1)
    assert reassign_tasks and all(t.state is not None and t.state.is_completed() for t in reassign_tasks)
    (rows_artifact,) = [a for a in _artifacts(reassign_run.id, {"batch-reassignment-rows"}) if a.key == "batch-reassignment-rows"]
    for order in uploaded.patient_order_uuids:
        assert order in _text(rows_artifact.data)
    logs = _logs(reassign_run.id, containing="reassignment finished")
    assert any("reassignment finished" in log.message for log in logs), [log.message for log in logs]


# --------------------------------------------------------------------------- patient data (issue 14, item 10)


def _prefect_store_since(since: dt.datetime, flow_run_ids: list[uuid.UUID]) -> dict[str, list[str]]:
    """What Prefect's API keeps of these flow runs, as text: runs, task runs, logs, artifacts, and every event since."""
    from prefect.events.filters import EventFilter, EventOccurredFilter

    async def read() -> dict[str, list[str]]:
        async with get_client() as client:
            run_filter = FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids))
            runs = [(await client.read_flow_run(run_id)).model_dump_json() for run_id in flow_run_ids]
            task_runs = [t.model_dump_json() for t in await client.read_task_runs(flow_run_filter=run_filter)]
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids))
            )
            page = await client.read_events(EventFilter(occurred=EventOccurredFilter(since=since)), limit=50)
            events = [event.model_dump_json() for event in page.events]
            while page.next_page:
                page = await client.read_events_page(page.next_page)
                events += [event.model_dump_json() for event in page.events]
            return {
                "flow runs": runs,
                "task runs": task_runs,
                "logs": [log.message for log in logs],
                "artifacts": [a.model_dump_json() for a in artifacts],
                "events": events,
            }

    return asyncio.run(read())


def _persisted_exceptions(since: float) -> list[tuple[str, bytes]]:
    """Exceptions Prefect stored into result storage since ``since`` (failed cached tasks), as pickles.

    Each record is read with the serializer it names (Prefect's pickle, or the
    export's compressed chunk serializer), so a compressed record cannot hide a
    value from the search; what is returned is the exception pickled plainly.
    """
    import os

    import cloudpickle
    from prefect._internal.result_records import ResultRecord

    import flows.export_chunks  # noqa: F401 - registers the chunk serializer the export's records name

    found = []
    for path in Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"]).glob("*"):
        if not path.is_file() or path.stat().st_mtime < since:
            continue
        try:
            record = ResultRecord.deserialize(path.read_bytes())
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(record.result, BaseException):
            found.append((path.name, cloudpickle.dumps(record.result)))
    return found


@pytest.mark.slow
def test_no_patient_name_id_or_accession_number_reaches_prefects_database(
    prefect_harness: None,
    sandbox_server: Any,
    tmp_path: Path,
    run_logs_at_info: None,
) -> None:
    """The three flows and the tasks that take patient values (a create, a list, a QIDO search, the same failing)
    leave no patient name, ID or accession number in the runs, task runs, INFO logs, artifacts or events Prefect
    stores, nor in the failed reads' pickled exceptions. Cached answers do hold them (README, Security)."""
    from prefect import flow

    from postdicom.synthetic import StudySpec, write_study
    from tasks import create_patient_order, get_patient_order_list, get_patient_order_properties, qido_search
    from tests.fixtures.sandbox_server import sandbox_faults

    tag = uuid.uuid4().hex[:8].upper()
    day = dt.date(2033, 3, 3)
    spec = StudySpec(f"Quorvex^Wilhelmina{tag}", f"PID{tag}Q", "CT", instances_per_series=2, rows=8, columns=8,
                     study_date=day, accession_number=f"ACC{tag}Q", seed=f"obs-{tag}")
    ordered_id, ordered_accession = f"PID{tag}R", f"ACC{tag}R"
    patient_values = ["Quorvex", f"Wilhelmina{tag}", spec.patient_id, spec.accession_number, ordered_id,
                      ordered_accession]
    write_study(tmp_path / "disk", spec)
    credentials = sandbox_server.credentials()
    no_retries = sandbox_server.credentials(max_retries=0)
    institution = sandbox_server.extra["institution_uuid"]
    started, started_clock = dt.datetime.now(dt.timezone.utc), time.time() - 1

    @flow(name="patient-values-in-tasks")
    def patient_values_in_tasks() -> list[str]:
        """Parameters of its own would be stored by Prefect: the patient values come from the test."""
        order = create_patient_order(credentials, institution, spec.patient_name, ordered_id, dt.date(1960, 1, 1),
                                     "MR", accession_number=ordered_accession)
        get_patient_order_properties(credentials, institution, order.patient_order_uuid)
        get_patient_order_list(credentials, [institution], patient_name=spec.patient_name, patient_id=spec.patient_id,
                               accession_number=spec.accession_number)
        qido_search(credentials, patient_id=spec.patient_id,
                    filters={"PatientName": spec.patient_name, "AccessionNumber": spec.accession_number})
        with sandbox_faults(sandbox_server, "500:1@all"):
            failed = [
                qido_search.with_options(retries=0)(
                    no_retries, patient_id=ordered_id, filters={"AccessionNumber": ordered_accession},
                    return_state=True),
                get_patient_order_list.with_options(retries=0)(
                    no_retries, [institution], patient_name=spec.patient_name, patient_id=ordered_id,
                    accession_number=ordered_accession, return_state=True),
                create_patient_order(no_retries, institution, spec.patient_name, ordered_id, dt.date(1960, 1, 1),
                                     "CT", accession_number=ordered_accession, return_state=True),
            ]
        return [state.type.value for state in failed]

    upload = bulk_upload_and_share(credentials=credentials, directory=str(tmp_path / "disk"),
                                   expire_date=dt.date.today() + dt.timedelta(days=7), share_per="patient",
                                   return_state=True)
    export = nightly_order_export(credentials=credentials, destination=str(tmp_path / "export"),
                                  study_date_from=day, study_date_to=day, return_state=True)
    reassign = batch_reassignment(credentials=credentials, modality_list=["CT"], study_date_from=day,
                                  study_date_to=day, assigned_user_uuid=SEED_RADIOLOGIST, dry_run=True,
                                  return_state=True)
    probe = patient_values_in_tasks(return_state=True)
    states = [upload, export, reassign, probe]
    assert all(state.is_completed() for state in states), [state.message for state in states]
    assert probe.result() == ["FAILED"] * 3
    run_ids = [state.state_details.flow_run_id for state in states]

    _task_runs(probe.state_details.flow_run_id, at_least=7)
    _logs(probe.state_details.flow_run_id, containing="Task run failed with exception")
    stored = _prefect_store_since(started, run_ids)
    assert stored["events"] and any("create_patient_order" in event for event in stored["events"])
    assert any("order(s)" in log for log in stored["logs"]), "INFO lines reached the API"
    leaks = {(where, value) for where, texts in stored.items() for text in texts for value in patient_values
             if value in text}
    assert leaks == set()

    exceptions = _persisted_exceptions(started_clock)
    assert exceptions, "a failed cached read pickles its exception into result storage"
    assert not [(name, value) for name, raw in exceptions for value in patient_values if value.encode() in raw]
