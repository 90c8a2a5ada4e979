"""Uploads read and send at the same time: batches leave while later files are still being read.

A folder of 10,000 files used to wait for every header to be read (and every
series looked up) before the first byte went out.
"""

from __future__ import annotations

import io
import threading

import httpx
import pydicom

import postdicom.upload
from postdicom.multipart import read_parts
from postdicom.synthetic import StudySpec, write_study
from postdicom.upload import inspect_file, upload_files
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

