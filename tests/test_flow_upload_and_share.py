"""bulk_upload_and_share on a private sandbox: accounting, idempotent reruns, faults, links, no leaked password.

The flow's promises are about the server's state (one order per study, one
folder, every good file stored once), so these tests read that state back
from the server rather than trusting the flow's own summary.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pydicom.uid import generate_uid

from benchmarks._common import RequestCounter
from blocks import PostDicomCredentials
from flows import bulk_upload_and_share
from flows import upload_and_share as upload_flow
from flows.reporting import FlowRunFailed
from postdicom.synthetic import StudySpec, make_instance, write_study
from tests.fixtures.sandbox_server import launch, sandbox_faults
from tests.fixtures.servers import ServerInfo

EXPIRE = dt.date.today() + dt.timedelta(days=14)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Iterator[ServerInfo]:
    """A sandbox of this module's own: counts of folders, orders and instances are exact."""
    process = launch(tmp_path_factory.mktemp("upload-share-sandbox"))
    yield process.info(0)
    process.stop()


def run(**parameters: Any) -> tuple[Any, Any]:
    """Run the flow; return ``(state, summary)`` whether it ended Completed or Failed."""
    state = bulk_upload_and_share(return_state=True, **parameters)
    result = state.result(raise_on_failure=False)
    if isinstance(result, FlowRunFailed):
        result = result.report
    return state, result


def task_run_names(state: Any) -> list[str]:
    """The names of the task runs Prefect's database holds for the run that ended in ``state``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as prefect_client:
        return [run.name for run in prefect_client.read_task_runs(flow_run_filter=run_filter)]


def documented_task_names(state: Any, expected: set[str], timeout: float = 60.0) -> set[str]:
    """The documented task names (``tasks.__all__``) among the task runs of the run that ended in ``state``.

    Task runs reach Prefect's database through its event stream, a moment
    after the flow returns: read again until ``expected`` are all there (or
    ``timeout``), then return what is there.
    """
    import time

    import tasks

    deadline = time.monotonic() + timeout
    while True:
        names = task_run_names(state)
        found = {name for name in tasks.__all__ if any(run_name.startswith(name) for run_name in names)}
        if found >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def prefect_texts(flow_run_id: Any) -> list[str]:
    """What Prefect keeps of a flow run besides its artifacts: the run, its task runs (names, states), its logs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as prefect_client:
        run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        texts = [prefect_client.read_flow_run(flow_run_id).model_dump_json()]
        texts += [t.model_dump_json() for t in prefect_client.read_task_runs(flow_run_filter=run_filter)]
        logs = prefect_client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        texts += [log.message for log in logs]
    return texts


def unique_specs(count: int, **overrides: Any) -> list[StudySpec]:
    tag = uuid.uuid4().hex[:8]
    modalities = ("CT", "MR", "US")
    return [
        StudySpec(
            f"Test^Patient{n}",
            f"U-{tag}-{n}",
            modalities[n % 3],
            seed=f"{tag}-{n}",
            accession_number=f"ACC-{tag}-{n}",
            **overrides,
        )
        for n in range(count)
    ]


def orders_of(client: Any, patient_ids: list[str]) -> list[dict[str, Any]]:
    rows = client.get_patient_order_list(institution_uuid_list=[]).raw["PatientOrderList"]
    return [row for row in rows if row["PatientId"] in patient_ids]


def stored_sop_uids(client: Any, study_uid: str) -> list[str]:
    """Every SOP Instance UID the server lists for a study (duplicates kept, to be counted)."""
    matches = client.search_for_instances(study_instance_uid=study_uid, fields=("SOPInstanceUID",))
    return [match["00080018"]["Value"][0] for match in matches]


def sop_uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_disk_uploaded_filed_assigned_and_shared_then_a_rerun_changes_nothing(
    prefect_harness, sandbox, three_patient_disk
):
    root, disk = three_patient_disk
    credentials = sandbox.credentials()
    user = sandbox.extra["account"]["Institutions"][0]["Users"][1]["UserUuid"]
    folder_name = f"Handover {uuid.uuid4().hex[:6]}"
    password = "correct horse " + uuid.uuid4().hex[:6]
    parameters = dict(
        credentials=credentials,
        directory=str(root),
        expire_date=EXPIRE,
        share_password=SecretStr(password),
        folder_name=folder_name,
        assign_to_user_uuid=user,
        batch_size=3,
        concurrency=3,
    )
    every_file = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    good = [path for paths in disk["studies"].values() for path in paths]
    patient_ids = list(disk["studies"])

    state, first = run(**parameters)

    assert state.is_completed(), first.problems
    documented = {"search_folder", "create_folder", "add_order_to_folder", "share_patient_order_with_url"}
    assert documented_task_names(state, documented) >= documented
    from tests.test_flow_reassignment import batch_run_names

    names = batch_run_names(state, 1)
    assert [name for name in names if name.startswith("assign")] == ["assign-orders-batch: rows 1-3"], (
        "the three orders are assigned by one batch task run's client, not a task run each"
    )
    lookups = [name for name in names if name.startswith("find-upload-orders")]
    assert 1 <= len(lookups) <= parameters["concurrency"], "the order lookups are a few grouped task runs"
    assert not [name for name in names if name.startswith(("qido_search", "get_patient_order_list"))]
    assert first.total_files == len(every_file) == sum(first.counts.values())
    assert first.counts == {"stored": len(good), "already_stored": 0, "rejected": 0, "not_dicom": 5, "failed": 0}
    assert sorted(issue.path for issue in first.files_not_stored) == sorted(
        str(path.relative_to(root)) for path in disk["odd"].values()
    )
    with credentials.get_client() as client:
        orders = orders_of(client, patient_ids)
        assert sorted(order["StudyInstanceUid"] for order in orders) == sorted(s.study_uid() for s in disk["specs"])
        assert sorted(first.patient_order_uuids) == sorted(order["PatientOrderUuid"] for order in orders)
        folders = [
            f
            for f in client.search_folder(folder_name=folder_name, get_orders_in_folder=True).raw["FolderList"]
            if f["FolderName"] == folder_name
        ]
        assert [f["FolderUuid"] for f in folders] == [first.folder_uuid] and first.folder_created
        assert sorted(folders[0]["PatientOrderUuidList"]) == sorted(first.patient_order_uuids)
        for order in orders:
            properties = client.get_patient_order_properties(
                patient_order_institution_uuid=order["InstitutionUuid"], patient_order_uuid=order["PatientOrderUuid"]
            )
            assert properties.raw["AssignedUserUuid"] == user
            assert first.folder_uuid in properties.raw["FolderUuidList"]

    (url,) = first.share_urls
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        locked = browser.get(url)
        assert locked.status_code == 200 and 'type="password"' in locked.text
        assert not any(patient in locked.text for patient in patient_ids)
        assert browser.post(url, data={"password": "wrong"}).status_code == 403
        opened = browser.post(url, data={"password": password})
        assert opened.status_code == 200
        assert all(patient in opened.text for patient in patient_ids)

    state, second = run(**parameters)

    assert state.is_completed(), second.problems
    assert second.counts == {"stored": 0, "already_stored": len(good), "rejected": 0, "not_dicom": 5, "failed": 0}
    assert second.folder_uuid == first.folder_uuid and not second.folder_created
    assert second.orders_added_to_folder == 0
    assert sorted(second.patient_order_uuids) == sorted(first.patient_order_uuids)
    assert [row.status for row in second.assignments] == ["unchanged"] * len(orders)
    with credentials.get_client() as client:
        assert len(orders_of(client, patient_ids)) == len(disk["specs"])
        same_name = [
            f for f in client.search_folder(folder_name=folder_name).raw["FolderList"] if f["FolderName"] == folder_name
        ]
        assert len(same_name) == 1
        for spec in disk["specs"]:
            uids = stored_sop_uids(client, spec.study_uid())
            assert sorted(uids) == sorted(sop_uid(p) for p in disk["studies"][spec.patient_id])


def test_artifacts_show_progress_files_not_stored_and_the_links(prefect_harness, sandbox, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    specs = unique_specs(2)
    for spec in specs:
        write_study(tmp_path, spec, suffix="")
    (tmp_path / "notes.txt").write_text("not an image")
    state, summary = run(
        credentials=sandbox.credentials(), directory=str(tmp_path), expire_date=EXPIRE, share_per="patient"
    )
    assert state.is_completed()
    assert len(summary.share_urls) == 2
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        for link in summary.shares:
            page = browser.get(link.share_url).text
            assert link.patient_id in page
            assert all(spec.patient_id not in page for spec in specs if spec.patient_id != link.patient_id)

    with get_client(sync_client=True) as prefect_client:
        artifacts = prefect_client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert by_key["upload-and-share-progress"].data == 100.0
    table = by_key["upload-and-share-files-not-stored"].data
    assert "notes.txt" in str(table) and "not_dicom" in str(table)
    markdown = by_key["upload-and-share-summary"].data
    assert all(url in markdown for url in summary.share_urls)
    patient_ids = [spec.patient_id for spec in specs]
    assert not [p for p in patient_ids if p in markdown], "the summary lists links, not patients, by default"
    assert sorted(link.patient_id for link in summary.shares) == sorted(patient_ids), "the result keeps them"
    stored = prefect_texts(state.state_details.flow_run_id)
    assert not [p for p in patient_ids if any(p in text for text in stored)], "no patient ID in names, logs, events"

    state, summary = run(
        credentials=sandbox.credentials(), directory=str(tmp_path), expire_date=EXPIRE, share_per="patient",
        list_patients_in_summary=True,
    )
    with get_client(sync_client=True) as prefect_client:
        artifacts = prefect_client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    markdown = next(a.data for a in artifacts if a.key == "upload-and-share-summary")
    assert all(f"patient {p}" in markdown for p in patient_ids), "listed when asked for"


def test_a_run_that_missed_no_file_shows_no_table_of_missed_files(prefect_harness, sandbox, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    write_study(tmp_path, unique_specs(1)[0])
    state, summary = run(credentials=sandbox.credentials(), directory=str(tmp_path), expire_date=EXPIRE)
    assert state.is_completed() and summary.files_not_stored == []
    with get_client(sync_client=True) as prefect_client:
        artifacts = prefect_client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert "upload-and-share-files-not-stored" not in by_key, "no placeholder row, no '1 Item' table"
    assert "Every file is on the server." in by_key["upload-and-share-summary"].data


def test_studies_not_listed_at_first_are_found_by_a_later_look_in_grouped_task_runs(
    prefect_harness, sandbox, tmp_path, monkeypatch
):
    """A study the order list does not show yet (a real account indexes late) is asked for again, alone; the others are not."""
    import threading
    from collections import Counter

    import flows.upload_orders
    from postdicom import PostDicomClient

    specs = unique_specs(5)
    for spec in specs:
        write_study(tmp_path, spec)
    late = {specs[0].study_uid(), specs[3].study_uid()}
    lists: Counter[str] = Counter()
    studies_asked: Counter[str] = Counter()
    lock = threading.Lock()
    real_order_list = PostDicomClient.get_patient_order_list
    real_qido_search = PostDicomClient.qido_search

    def indexed_late(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = real_order_list(self, *args, **kwargs)
        with lock:
            lists[kwargs["patient_id"]] += 1
            first = lists[kwargs["patient_id"]] == 1
        if not first:
            return answer
        shown = [order for order in answer.patient_order_list if order.study_instance_uid not in late]
        return answer.model_copy(update={"patient_order_list": shown})

    def counted_qido(self: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        uid = (kwargs.get("filters") or {}).get("StudyInstanceUID")
        if kwargs.get("level") == "study" and uid:
            with lock:
                studies_asked[uid] += 1
        return real_qido_search(self, *args, **kwargs)

    monkeypatch.setattr(PostDicomClient, "get_patient_order_list", indexed_late)
    monkeypatch.setattr(PostDicomClient, "qido_search", counted_qido)
    monkeypatch.setattr(flows.upload_orders, "ORDER_LOOKUP_PAUSE", 0.0)

    state, summary = run(credentials=sandbox.credentials(), directory=str(tmp_path), expire_date=EXPIRE, concurrency=2)

    assert state.is_completed(), summary.problems
    assert {study.study_instance_uid for study in summary.studies if study.patient_order_uuid} == {
        spec.study_uid() for spec in specs
    }
    assert lists == {spec.patient_id: 2 if spec.study_uid() in late else 1 for spec in specs}
    assert studies_asked == {uid: 1 for uid in late}, "only the studies not shown were looked up by QIDO, once"
    documented_task_names(state, {"share_patient_order_with_url"})
    lookups = [name for name in task_run_names(state) if name.startswith("find-upload-orders")]
    assert len(lookups) == 4, "5 studies in 2 groups (concurrency 2), then the 2 late ones in 2 groups of 1"


class LookupCounter(RequestCounter):
    """The benchmark's request counter, with the order lookups' study-level QIDO (``qido-studies``) apart from the pre-checks."""

    def kind(self, method: str, url: str) -> str:
        kind = super().kind(method, url)
        return "qido-studies" if kind == "qido" and url.split("?", 1)[0].rstrip("/").endswith("/studies") else kind


def counted_run(sandbox: ServerInfo, directory: Path, **parameters: Any) -> tuple[Any, dict[str, int]]:
    """Run the flow on ``directory``; its summary and the requests it sent to the sandbox, by kind."""
    with LookupCounter(sandbox.web_address, "/studies") as counter:
        state, summary = run(credentials=sandbox.credentials(), directory=str(directory), expire_date=EXPIRE,
                             **parameters)
    assert state.is_completed(), summary.problems
    return summary, counter.figures()["requests_by_kind"]


def test_orders_are_asked_by_the_files_patient_ids_with_no_lookup_per_study_and_a_rerun_finds_them_again(
    prefect_harness, sandbox, tmp_path
):
    """4 one-series studies of 3 patients: one order list per patient, no QIDO but the pre-checks, in the rerun too."""
    specs = unique_specs(3)
    specs.append(StudySpec("Test^Patient0", specs[0].patient_id, "MR", seed=f"{specs[0].seed}-second"))
    for number, spec in enumerate(specs):
        write_study(tmp_path / f"study-{number}", spec)

    first, requests = counted_run(sandbox, tmp_path, concurrency=4)

    assert first.counts["stored"] == 12
    assert {study.study_instance_uid for study in first.studies if study.patient_order_uuid} == {
        spec.study_uid() for spec in specs
    }
    assert requests.get("qido") == 4, "one pre-check per series"
    assert "qido-studies" not in requests, requests
    assert requests.get("getpatientorderlist") == 3, "one order list per patient, though concurrency 4 > 3 patients"

    second, rerun_requests = counted_run(sandbox, tmp_path, concurrency=4)

    assert second.counts["already_stored"] == 12 and "stow" not in rerun_requests
    assert sorted(second.patient_order_uuids) == sorted(first.patient_order_uuids)
    assert rerun_requests.get("qido") == 4 and "qido-studies" not in rerun_requests
    assert rerun_requests.get("getpatientorderlist") == 3


def test_a_study_the_server_holds_under_another_patient_id_is_found_through_qido(prefect_harness, sandbox, tmp_path):
    """The files say one PatientID, the server holds another: its order list shows nothing, QIDO gives the server's."""
    (spec,) = unique_specs(1, instances_per_series=2)
    write_study(tmp_path / "first", spec)
    first, _ = counted_run(sandbox, tmp_path / "first")
    corrected = StudySpec(spec.patient_name, f"R-{spec.patient_id}", spec.modality, seed=spec.seed,
                          accession_number=spec.accession_number, instances_per_series=2)
    write_study(tmp_path / "corrected", corrected)

    second, requests = counted_run(sandbox, tmp_path / "corrected")

    assert second.counts["already_stored"] == 2
    assert second.patient_order_uuids == first.patient_order_uuids and len(first.patient_order_uuids) == 1
    assert [study.patient_id for study in second.studies] == [spec.patient_id], "the server's PatientID"
    assert requests.get("qido-studies") == 1, requests
    assert requests.get("getpatientorderlist") == 2, "the files' patient (nothing), then the server's"


def test_batches_started_ahead_keep_the_request_limit_and_ask_each_series_once(
    prefect_harness, sandbox, tmp_path, monkeypatch
):
    """One series in 6 batches, concurrency 2: up to 3 batch task runs at once, never over 2 STOW requests, 1 pre-check."""
    import threading

    import postdicom.upload
    from postdicom.stow import Stow

    files = write_study(tmp_path, unique_specs(1, instances_per_series=12)[0])
    lock = threading.Lock()
    ahead = threading.Event()
    requests_now, batches_now = [0], [0]
    most_requests, most_batches = [0], [0]
    pre_checks: list[int] = []
    real_store_batch, real_already_stored = Stow._store_batch, postdicom.upload.already_stored
    real_upload_files = upload_flow.upload_files

    def counted_store_batch(stow: Stow, batch: Any) -> Any:
        with lock:
            requests_now[0] += 1
            most_requests[0] = max(most_requests[0], requests_now[0])
        try:
            ahead.wait(timeout=30)  # a slow first answer: the batches started ahead reach their slot wait
            return real_store_batch(stow, batch)
        finally:
            with lock:
                requests_now[0] -= 1

    def counted_already_stored(client: Any, headers: Any) -> set[str]:
        pre_checks.append(len(headers))
        return real_already_stored(client, headers)

    def counted_upload_files(client: Any, batch: Any, **kwargs: Any) -> Any:
        with lock:
            batches_now[0] += 1
            most_batches[0] = max(most_batches[0], batches_now[0])
            if batches_now[0] > 2:
                ahead.set()
        try:
            return real_upload_files(client, batch, **kwargs)
        finally:
            with lock:
                batches_now[0] -= 1

    monkeypatch.setattr(Stow, "_store_batch", counted_store_batch)
    monkeypatch.setattr(postdicom.upload, "already_stored", counted_already_stored)
    monkeypatch.setattr(upload_flow, "upload_files", counted_upload_files)

    state, summary = run(
        credentials=sandbox.credentials(), directory=str(tmp_path), expire_date=EXPIRE, batch_size=2, concurrency=2
    )

    assert state.is_completed(), summary.problems
    assert summary.counts["stored"] == len(files) == 12
    assert pre_checks == [1], "the series was looked up once for the run, not once per batch"
    assert most_requests[0] <= 2, "the batches together kept the run's 2 request slots"
    assert most_batches[0] == 3, "one batch more ran than request slots, so the next was ready; no more than that"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"expire_date": dt.date(2020, 1, 1)}, "expire_date 2020-01-01 is in the past"),
        ({"folder_name": "x", "parent_folder_uuid": "not-a-uuid"}, "parent_folder_uuid is not a UUID"),
        ({"parent_folder_uuid": str(uuid.uuid4())}, "parent_folder_uuid needs a folder_name"),
        ({"assign_to_user_uuid": "ana"}, "assign_to_user_uuid is not a UUID"),
        ({"share_password": SecretStr("")}, "share_password is empty"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_parameters_end_the_run_failed_with_a_clear_message(prefect_harness, tmp_path, parameters, message):
    from prefect.client.orchestration import get_client

    (tmp_path / "a.dcm").write_bytes(b"not sent")
    nowhere = PostDicomCredentials(username="u@example.org", password="p", web_address="http://127.0.0.1:9")
    state, _ = run(**{"credentials": nowhere, "directory": str(tmp_path), "expire_date": EXPIRE, **parameters})
    assert state.is_failed()
    assert message in str(state.result(raise_on_failure=False))
    with get_client(sync_client=True) as prefect_client:
        stored = prefect_client.read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None and stored.state.is_failed(), "never left Pending"


def test_faults_on_stow_still_store_every_good_file_exactly_once(prefect_harness, sandbox, tmp_path, monkeypatch):
    specs = unique_specs(3, series_count=2, instances_per_series=5)
    written = {spec.study_uid(): write_study(tmp_path, spec) for spec in specs}
    # About 40 % of STOW requests fail. With the default 4 attempts a batch of this run
    # exhausted its budget about one run in five (CI failed on it); 10 attempts with short
    # waits make that about 1 in 10,000 per batch, so a failure here means a real fault.
    monkeypatch.setenv("POSTDICOM_RETRY_BACKOFF", "0.05")
    monkeypatch.setenv("POSTDICOM_RETRY_MAX_BACKOFF", "0.2")
    credentials = sandbox.credentials(max_retries=9)

    with sandbox_faults(sandbox, "503:0.3@stow,drop:0.1@stow,503:0.1@qido"):
        state, summary = run(credentials=credentials, directory=str(tmp_path), expire_date=EXPIRE, batch_size=4)

    assert state.is_completed(), summary.problems
    assert summary.counts["failed"] == 0
    assert summary.counts["stored"] + summary.counts["already_stored"] == sum(map(len, written.values()))
    with credentials.get_client() as client:
        for study_uid, paths in written.items():
            assert sorted(stored_sop_uids(client, study_uid)) == sorted(sop_uid(p) for p in paths)
        assert len(orders_of(client, [spec.patient_id for spec in specs])) == len(specs)


def test_unsendable_files_fail_the_run_with_the_summary_written_and_the_rerun_sends_them(
    prefect_harness, sandbox, tmp_path
):
    (spec,) = unique_specs(1, instances_per_series=3)
    good = write_study(tmp_path, spec)
    broken = make_instance(
        spec, study_uid=generate_uid(), series_uid=generate_uid(), series_number=9, instance_number=1,
        sop_uid=generate_uid(),
    )
    del broken.SeriesInstanceUID  # the sandbox refuses an instance without one
    broken.save_as(tmp_path / "no-series.dcm", enforce_file_format=True)
    parameters = dict(credentials=sandbox.credentials(max_retries=0), directory=str(tmp_path), expire_date=EXPIRE)

    with sandbox_faults(sandbox, "503:1/1@stow"):
        with pytest.raises(FlowRunFailed) as raised:
            bulk_upload_and_share(**parameters)
    failed = raised.value.report
    assert failed.counts["failed"] == len(good) + 1
    assert "could not be sent" in failed.problems[0]
    assert {issue.status for issue in failed.files_not_stored} == {"failed"}

    state, retried = run(**parameters)
    assert state.is_completed(), retried.problems
    assert retried.counts["stored"] == len(good) and retried.counts["rejected"] == 1
    (rejected,) = retried.files_not_stored
    assert rejected.path == "no-series.dcm" and "A900" in rejected.reason

    state, again = run(**parameters)
    assert state.is_completed()
    assert again.counts["already_stored"] == len(good) and again.counts["rejected"] == 1


def test_a_web_address_that_is_not_the_dicomweb_base_fails_every_file_with_a_lasting_cause(
    prefect_harness, sandbox, tmp_path
):
    (spec,) = unique_specs(1, instances_per_series=2)
    paths = write_study(tmp_path, spec)
    beside = sandbox.credentials(web_address=sandbox.root_url)  # no /dicomweb: STOW is answered 405

    with pytest.raises(FlowRunFailed) as raised:
        bulk_upload_and_share(credentials=beside, directory=str(tmp_path), expire_date=EXPIRE)
    report = raised.value.report
    assert report.counts["failed"] == len(paths) and report.counts["rejected"] == 0
    assert "a rerun alone meets it again" in report.problems[0]
    assert all("405" in issue.reason and "web address" in issue.reason for issue in report.files_not_stored)


def test_a_missing_or_empty_directory_is_refused_before_any_request(prefect_harness, tmp_path):
    from blocks import PostDicomCredentials

    nowhere = PostDicomCredentials(username="u@example.org", password="p", web_address="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="does not exist"):
        bulk_upload_and_share(credentials=nowhere, directory=str(tmp_path / "absent"), expire_date=EXPIRE)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="no files"):
        bulk_upload_and_share(credentials=nowhere, directory=str(tmp_path / "empty"), expire_date=EXPIRE)


@pytest.fixture
def verbose_run_logs() -> Iterator[None]:
    """Run loggers at DEBUG for one test, so every line the flow and its tasks can log reaches Prefect."""
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs", "postdicom")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def test_the_share_password_is_nowhere_in_prefect(prefect_harness, sandbox, tmp_path, verbose_run_logs):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_HOME

    secret_password = "s3cret-" + uuid.uuid4().hex
    plain_password = "plain-" + uuid.uuid4().hex
    run_ids = []
    for password, directory in ((SecretStr(secret_password), tmp_path / "a"), (plain_password, tmp_path / "b")):
        write_study(directory, unique_specs(1)[0])
        state, summary = run(
            credentials=sandbox.credentials(), directory=str(directory), expire_date=EXPIRE, share_password=password
        )
        assert state.is_completed() and summary.shares[0].password_protected
        assert secret_password not in summary.model_dump_json() and plain_password not in summary.model_dump_json()
        run_ids.append(state.state_details.flow_run_id)

    APILogHandler().flush()
    with get_client(sync_client=True) as prefect_client:
        seen: list[str] = []
        for run_id in run_ids:
            flow_run = prefect_client.read_flow_run(run_id)
            assert flow_run.parameters["share_password"] == "**********"
            seen.append(flow_run.model_dump_json())
            run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
            seen += [t.model_dump_json() for t in prefect_client.read_task_runs(flow_run_filter=run_filter)]
            seen += [a.model_dump_json() for a in prefect_client.read_artifacts(flow_run_filter=run_filter)]
            logs = prefect_client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            assert logs
            seen += [log.message for log in logs]
    for text in seen:
        assert secret_password not in text and plain_password not in text

    # The password given as a SecretStr was never written anywhere Prefect keeps data.
    database = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    roots = {database.parent, Path(PREFECT_HOME.value())}
    files = [path for root in roots for path in root.rglob("*") if path.is_file()]
    database_files = [path for path in files if path.name.startswith(database.name)]
    assert any(b"bulk-upload-and-share" in path.read_bytes() for path in database_files)
    for path in files:
        assert secret_password.encode() not in path.read_bytes(), path


def test_the_upload_tally_keeps_the_walk_order_and_lets_go_of_stored_files(tmp_path):
    """Batches counted out of order: files not stored and studies come back in walk order; stored entries are freed."""
    import gc
    import weakref

    from postdicom.upload import FileEntry

    def entry(name: str, status: str, study: str | None) -> FileEntry:
        return FileEntry(tmp_path / name, status, "why" if status not in ("stored", "already_stored") else "", None, study)

    first = [entry("a", "stored", "1.1"), entry("b", "not_dicom", None), entry("c", "already_stored", "1.2")]
    second = [entry("d", "failed", "1.3"), entry("e", "stored", "1.3"), entry("f", "stored", "1.1")]
    stored = [weakref.ref(item) for item in first + second if item.status in ("stored", "already_stored")]
    tally = upload_flow.UploadTally()
    tally.add(1, upload_flow.BatchOutcome.of(second))
    tally.add(0, upload_flow.BatchOutcome.of(first))
    del first, second
    gc.collect()

    assert tally.files == 6
    assert dict(tally.counts) == {"stored": 3, "already_stored": 1, "not_dicom": 1, "failed": 1}
    assert [item.path.name for item in tally.not_stored()] == ["b", "d"]
    assert tally.studies() == ["1.1", "1.2", "1.3"]
    assert all(ref() is None for ref in stored), "an entry of a file on the server was kept after it was counted"
    summary = upload_flow.summarise_upload(tmp_path, tally)
    assert summary.total_files == 6
    assert summary.counts == {"stored": 3, "already_stored": 1, "rejected": 0, "not_dicom": 1, "failed": 1}
    assert [issue.path for issue in summary.files_not_stored] == ["b", "d"]


def test_prefect_links_each_upload_batch_to_its_task_run_not_each_file(prefect_harness, sandbox, tmp_path):
    """One batch of 2 files and one of 8: the flow run keeps as many result links for each (not one per file)."""
    from prefect import flow
    from prefect.context import FlowRunContext

    credentials = sandbox.credentials()

    @flow(name="upload-result-links")
    def result_links_after_upload(directory: str) -> tuple[int, int, int]:
        files = upload_flow.list_directory(directory)
        tally = upload_flow.upload_all(files, credentials, batch_size=len(files), concurrency=2)
        context = FlowRunContext.get()
        assert context is not None
        return len(context.run_results), tally.files, tally.counts["stored"]

    links = {}
    for count in (2, 8):
        folder = tmp_path / f"links-{count}"
        write_study(folder, unique_specs(1, instances_per_series=count)[0])
        links[count], files, stored = result_links_after_upload(str(folder))
        assert files == stored == count
    assert links[8] == links[2], "a file's entry was linked to its task run: the flow's memory grows with the files"


def test_on_a_standard_dicomweb_server_every_file_is_stored_then_the_run_says_why_nothing_was_shared(
    orthanc_server, prefect_harness, tmp_path
):
    """Orthanc has no order, folder or share calls: no request is made to them, and the run's problem names why."""
    folder = tmp_path / "orthanc-upload"
    write_study(folder, StudySpec("Standard^Server", f"STD-{uuid.uuid4().hex[:6]}", "CT", series_count=2,
                                  instances_per_series=3, seed=uuid.uuid4().hex))
    state, summary = run(credentials=orthanc_server.credentials(), directory=str(folder), expire_date=EXPIRE)
    assert state.is_failed()
    assert summary.counts["stored"] == 6
    [problem] = summary.problems
    assert problem.startswith("stopped after the upload: StandardServerError: orders, folders and share links are "
                              "PostDICOM's own calls"), problem
    assert summary.studies == [] and summary.shares == []
