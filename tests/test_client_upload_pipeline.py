"""Uploads read and send at the same time: batches leave while later files are still being read.

A folder of 10,000 files used to wait for every header to be read (and every
series looked up) before the first byte went out.
"""

from __future__ import annotations

import io
import threading
from collections import Counter

import httpx
import pydicom
import pytest

import postdicom.upload
from postdicom.multipart import read_parts
from postdicom.synthetic import StudySpec, write_study
from postdicom.errors import AuthenticationError, ServerError
from postdicom.upload import SharedUpload, inspect_file, upload_files
from tests.fixtures.mock_server import make_client, qido_match, stow_answer


def _study(tmp_path, series: int, per_series: int, seed: str):
    spec = StudySpec("Pipe^Line", "PIPE-1", series_count=series, instances_per_series=per_series, seed=seed)
    return write_study(tmp_path / "src", spec)


def test_the_first_batch_leaves_before_the_last_file_is_read(tmp_path, monkeypatch):
    files = _study(tmp_path, 1, 6, "pipeline-first")
    uids = [inspect_file(p).sop_instance_uid for p in files]
    first_request = threading.Event()
    request_seen_before_last_read: list[bool] = []
    real_inspect = postdicom.upload.inspect_file

    def inspect_last_after_a_request(path):
        if path == files[-1]:  # without overlap no request can have left yet: this wait times out
            request_seen_before_last_read.append(first_request.wait(timeout=10))
        return real_inspect(path)

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            first_request.set()
            return httpx.Response(200, json=stow_answer(stored=uids))
        return httpx.Response(200, json=[])

    monkeypatch.setattr(postdicom.upload, "inspect_file", inspect_last_after_a_request)
    client, _ = make_client(respond)
    report = upload_files(client, files, batch_size=2, concurrency=2)
    assert request_seen_before_last_read == [True]
    assert report.counts["stored"] == 6


def test_each_series_is_looked_up_once_before_any_of_its_files_is_sent(tmp_path):
    files = _study(tmp_path, 2, 3, "pipeline-series")
    headers = [inspect_file(p) for p in files]
    series_of = {h.sop_instance_uid: h.series_instance_uid for h in headers}
    held = headers[0]  # the server already holds the first instance of the first series
    events: list[tuple[str, frozenset[str]]] = []
    lock = threading.Lock()

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            series = request.url.params["0020000E"]
            with lock:
                events.append(("qido", frozenset({series})))
            if series == held.series_instance_uid:
                return httpx.Response(200, json=[qido_match(held.study_instance_uid, series, held.sop_instance_uid)])
            return httpx.Response(200, json=[])
        parts = read_parts(request.read(), request.headers["Content-Type"])
        sent = [pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID for _, data in parts]
        with lock:
            events.append(("stow", frozenset(series_of[uid] for uid in sent)))
        return httpx.Response(200, json=stow_answer(stored=sent))

    client, _ = make_client(respond)
    report = upload_files(client, files, batch_size=2, concurrency=1)

    looked_up: set[str] = set()
    for kind, series in events:
        if kind == "qido":
            assert not series & looked_up, "a series was looked up twice"
            looked_up |= series
        else:
            assert series <= looked_up, "files were sent before their series was looked up"
    assert looked_up == {h.series_instance_uid for h in headers}
    assert [e.status for e in report.files] == ["already_stored"] + ["stored"] * 5
    assert report.files[1].study_instance_uid == headers[1].study_instance_uid



def test_slices_sharing_an_upload_keep_its_request_limit_and_ask_each_series_once(tmp_path):
    """Four slices of one series sent at once by four calls: at most 2 requests in flight, on 2 threads, one pre-check."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    files = _study(tmp_path, 1, 16, "pipeline-shared")
    held = inspect_file(files[0])  # the server already holds the first instance
    lock = threading.Lock()
    in_flight = [0]
    most = [0]
    lookups: list[str] = []
    request_threads: set[threading.Thread] = set()

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            with lock:
                lookups.append(request.url.params["0020000E"])
            time.sleep(0.05)  # the other slices meet the series while it is being asked
            return httpx.Response(
                200, json=[qido_match(held.study_instance_uid, held.series_instance_uid, held.sop_instance_uid)]
            )
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            request_threads.add(threading.current_thread())
        time.sleep(0.05)
        parts = read_parts(request.read(), request.headers["Content-Type"])
        sent = [pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID for _, data in parts]
        with lock:
            in_flight[0] -= 1
        return httpx.Response(200, json=stow_answer(stored=sent))

    client, recorder = make_client(respond)
    shared = SharedUpload(2)
    slices = [files[start : start + 4] for start in range(0, 16, 4)]
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(
            lambda paths: upload_files(client, paths, batch_size=1, concurrency=shared.concurrency, shared=shared),
            slices,
        ))
    shared.close()

    assert lookups == [held.series_instance_uid], "the series was asked once for all four slices"
    assert most[0] == 2, "the four slices together kept the shared limit of 2 requests, and used it"
    assert len(request_threads) == 2, "the slices' requests ran on the upload's 2 request threads, not 2 per slice"
    assert not any(thread.is_alive() for thread in request_threads), "close() ended them"
    statuses = [entry.status for report in reports for entry in report.files]
    assert statuses == ["already_stored"] + ["stored"] * 15
    assert len([r for r in recorder.requests if r.method == "POST"]) == 15


@pytest.mark.parametrize(("failing", "status", "error"), [("GET", 500, ServerError), ("POST", 401, AuthenticationError)])
def test_a_slice_stopped_by_an_error_leaves_the_shared_upload_usable(tmp_path, failing, status, error):
    """A failed pre-check is asked again by the next slice (a kept one is not); a refused request frees its slot."""
    files = _study(tmp_path, 1, 2, f"pipeline-{failing}")
    uids = [inspect_file(p).sop_instance_uid for p in files]
    seen: Counter[str] = Counter()

    def respond(request: httpx.Request) -> httpx.Response:
        seen[request.method] += 1
        code = status if request.method == failing and seen[failing] == 1 else 200
        return httpx.Response(code, json=[] if request.method == "GET" else stow_answer(stored=uids))

    client, _ = make_client(respond)
    shared = SharedUpload(1)
    with pytest.raises(error):
        upload_files(client, files, batch_size=2, concurrency=1, shared=shared)
    assert shared.slots.acquire(blocking=False), "no request slot stays taken"
    shared.slots.release()
    report = upload_files(client, files, batch_size=2, concurrency=1, shared=shared)
    shared.close()
    assert report.counts["stored"] == 2
    assert seen == ({"GET": 2, "POST": 1} if failing == "GET" else {"GET": 1, "POST": 2})


def test_the_shared_upload_knows_each_studys_patient_id_only_when_all_its_files_agree(tmp_path):
    """Files already stored count too; a study with one file of another (or no) PatientID is left to the server."""
    plain = write_study(tmp_path / "plain", StudySpec("A^A", "PID-PLAIN", instances_per_series=3, seed="pid-plain"))
    mixed_spec = StudySpec("B^B", "PID-MIXED", instances_per_series=3, seed="pid-mixed")
    mixed = write_study(tmp_path / "mixed", mixed_spec)
    renamed = pydicom.dcmread(mixed[1])
    renamed.PatientID = "PID-OTHER"
    renamed.save_as(mixed[1])
    missing = write_study(tmp_path / "missing", StudySpec("C^C", "PID-GONE", instances_per_series=2, seed="pid-gone"))
    unnamed = pydicom.dcmread(missing[0])
    del unnamed.PatientID
    unnamed.save_as(missing[0])
    held = inspect_file(plain[0])

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            held_here = request.url.params["0020000E"] == held.series_instance_uid
            return httpx.Response(200, json=[
                qido_match(held.study_instance_uid, held.series_instance_uid, uid)
                for uid in ([inspect_file(path).sop_instance_uid for path in plain] if held_here else [])
            ])
        parts = read_parts(request.read(), request.headers["Content-Type"])
        sent = [pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID for _, data in parts]
        return httpx.Response(200, json=stow_answer(stored=sent))

    client, _ = make_client(respond)
    shared = SharedUpload(2)
    reports = [upload_files(client, paths, shared=shared) for paths in (plain, mixed, missing)]
    shared.close()

    assert [entry.status for entry in reports[0].files] == ["already_stored"] * 3
    assert shared.study_patient_ids() == {held.study_instance_uid: "PID-PLAIN"}
