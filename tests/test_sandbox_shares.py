"""Share links as a recipient's browser uses them: password form, cookie session, expiry, zip download."""

from __future__ import annotations

import datetime as dt
import io
import sqlite3
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pydicom
import pytest

from postdicom.synthetic import StudySpec, write_study
from tests.fixtures.sandbox_server import api_client, control_post, vendor_get, vendor_stow

def in_two_days() -> str:
    """Computed at each use: a module-level date went stale when a run crossed midnight."""
    return (dt.date.today() + dt.timedelta(days=2)).isoformat()


def store_order(info, tmp_path: Path) -> tuple[str, StudySpec, list[Path]]:
    pid = f"SH-{uuid.uuid4().hex[:10]}"
    spec = StudySpec("Papadopoulos^Nikos", pid, "CT", series_count=1, instances_per_series=3, seed=pid,
                     study_description="CT Abdomen share")
    paths = write_study(tmp_path, spec)
    with api_client(info) as client:
        assert {r.status_code for r in vendor_stow(client, paths)} == {200}
        listed = vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                            InstitutionUuidList=[], PatientId=pid).json()["PatientOrderList"]
    return listed[0]["PatientOrderUuid"], spec, paths


def share(info, order: str, password: str = "", downloadable: bool = True, expire: str | None = None) -> str:
    with api_client(info) as client:
        answer = vendor_get(client, "/sharepatientorderwithurl", "SharePatientOrderParameters",
                            OrderUuidList=[order], ExpireDate=expire or in_two_days(), SharePassword=password,
                            UserCanDownloadStudies=downloadable)
    assert answer.status_code == 200, answer.headers.get("x-error-reason")
    return answer.json()["ShareUrl"]


@contextmanager
def clock_moved(info, days: float):
    control_post(info, "/_sandbox/clock", {"offset_days": days}).raise_for_status()
    try:
        yield
    finally:
        control_post(info, "/_sandbox/clock", {"offset_days": 0}).raise_for_status()


def test_password_protected_share_in_a_browser_session(sandbox_server, tmp_path):
    order, spec, paths = store_order(sandbox_server, tmp_path)
    url = share(sandbox_server, order, password="correct horse ñ", downloadable=True)
    with httpx.Client(follow_redirects=False) as browser:
        form = browser.get(url)
        assert form.status_code == 200 and '<form method="post"' in form.text
        assert spec.patient_id not in form.text
        assert form.headers["cache-control"] == "no-store" and form.headers["referrer-policy"] == "no-referrer"
        assert browser.get(url + "/download").status_code == 303

        wrong = browser.post(url, data={"password": "wrong"})
        assert wrong.status_code == 403 and "Wrong password" in wrong.text and spec.patient_id not in wrong.text

        unlocked = browser.post(url, data={"password": "correct horse ñ"})
        assert unlocked.status_code == 303 and unlocked.headers["location"] == httpx.URL(url).path
        cookie = unlocked.headers["set-cookie"]
        assert "HttpOnly" in cookie and f"Path={httpx.URL(url).path}" in cookie

        page = browser.get(url)
        assert page.status_code == 200
        assert spec.patient_id in page.text and "Papadopoulos Nikos" in page.text
        assert "CT Abdomen share" in page.text and "CT" in page.text
        assert 'href="' + httpx.URL(url).path + '/download"' in page.text

        download = browser.get(url + "/download")
        assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(download.content))
        names = archive.namelist()
        assert len(names) == 3
        sent = {pydicom.dcmread(p).SOPInstanceUID: p.read_bytes() for p in paths}
        assert {Path(n).stem: archive.read(n) for n in names} == sent

    with httpx.Client() as other_browser:
        assert spec.patient_id not in other_browser.get(url).text


def test_share_without_download_shows_no_link_and_refuses_the_zip(sandbox_server, tmp_path):
    order, spec, _ = store_order(sandbox_server, tmp_path)
    url = share(sandbox_server, order, downloadable=False)
    page = httpx.get(url)
    assert page.status_code == 200 and spec.patient_id in page.text
    assert "/download" not in page.text
    refused = httpx.get(url + "/download")
    assert refused.status_code == 403


def test_expired_share_answers_410(sandbox_server, tmp_path):
    order, spec, _ = store_order(sandbox_server, tmp_path)
    url = share(sandbox_server, order, expire=in_two_days())
    assert httpx.get(url).status_code == 200
    with clock_moved(sandbox_server, 2):
        assert httpx.get(url).status_code == 200
    with clock_moved(sandbox_server, 3):
        expired = httpx.get(url)
        assert expired.status_code == 410 and spec.patient_id not in expired.text
        assert httpx.get(url + "/download").status_code == 410
        assert httpx.post(url, data={"password": "x"}).status_code == 410
    assert httpx.get(url).status_code == 200


def test_unknown_token_and_deleted_order(sandbox_server, tmp_path):
    assert httpx.get(sandbox_server.root_url + "/share/" + "A" * 43).status_code == 404
    order, spec, _ = store_order(sandbox_server, tmp_path)
    url = share(sandbox_server, order)
    assert spec.patient_id in httpx.get(url).text
    with api_client(sandbox_server) as client:
        deleted = vendor_get(client, "/deleteorder", "DeleteOrderParameters",
                             PatientOrderInstitutionUuid=sandbox_server.extra["institution_uuid"],
                             PatientOrderUuid=order)
        assert deleted.status_code == 200
    page = httpx.get(url)
    assert page.status_code == 200 and spec.patient_id not in page.text and "No studies" in page.text


def test_only_hashes_of_tokens_and_passwords_are_stored(sandbox_server, tmp_path):
    order, _, _ = store_order(sandbox_server, tmp_path)
    password = f"pw-{uuid.uuid4().hex}"
    url = share(sandbox_server, order, password=password)
    token = url.rsplit("/", 1)[1]
    db = Path(sandbox_server.extra["data_dir"]) / "index.sqlite3"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT token_sha256, password_hash FROM shares").fetchall()
    dump = repr(rows)
    assert token not in dump and password not in dump
    assert any(r[1] and r[1].startswith("pbkdf2_sha256$600000$") for r in rows)
    log = Path(sandbox_server.extra["log_path"]).read_text()
    assert token not in log and password not in log


def test_password_attempts_are_limited_per_link(fresh_sandbox, tmp_path):
    sandbox = fresh_sandbox(env={"SANDBOX_SHARE_MAX_ATTEMPTS": "3", "SANDBOX_PBKDF2_ROUNDS": "1000"})
    info = sandbox.info()
    order, _, _ = store_order(info, tmp_path)
    url = share(info, order, password="right")
    other_url = share(info, order, password="right")
    with httpx.Client() as browser:
        assert [browser.post(url, data={"password": "bad"}).status_code for _ in range(3)] == [403, 403, 429]
        locked = browser.post(url, data={"password": "right"})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert browser.post(other_url, data={"password": "right"}).status_code == 303


def test_concurrent_wrong_passwords_all_count_towards_the_lock_out(fresh_sandbox, tmp_path):
    """24 wrong guesses, 12 at a time: only the first 5 are checked, then the right password is refused too."""
    sandbox = fresh_sandbox(env={"SANDBOX_SHARE_MAX_ATTEMPTS": "5", "SANDBOX_PBKDF2_ROUNDS": "100000"})
    info = sandbox.info()
    order, _, _ = store_order(info, tmp_path)
    url = share(info, order, password="right")

    def guess(number: int) -> int:
        with httpx.Client(timeout=120) as browser:
            return browser.post(url, data={"password": f"wrong-{number}"}).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = [*pool.map(guess, range(12)), *pool.map(guess, range(12, 24))]
    assert statuses.count(403) == 4 and statuses.count(429) == 20, statuses
    with httpx.Client() as browser:
        assert browser.post(url, data={"password": "right"}).status_code == 429


@pytest.mark.parametrize("password", ["", "secret"])
def test_folder_share_lists_orders_of_subfolders_at_opening_time(sandbox_server, tmp_path, password):
    first, spec_a, _ = store_order(sandbox_server, tmp_path / "a")
    second, spec_b, _ = store_order(sandbox_server, tmp_path / "b")
    with api_client(sandbox_server) as client:
        def call(path, header, **params):
            response = vendor_get(client, path, header, **params)
            assert response.status_code == 200, response.headers.get("x-error-reason")
            return response.json()

        top = call("/createfolder", "CreateFolderParameters", FolderName="Board", FolderDescription="",
                   ParentFolderUuid="")["FolderUuid"]
        sub = call("/createfolder", "CreateFolderParameters", FolderName="Board/sub", FolderDescription="",
                   ParentFolderUuid=top)["FolderUuid"]
        call("/addordertofolder", "AddOrderToFolderParameters", PatientOrderUuid=first, FolderUuidList=[top])
        url = call("/sharefolderwithurl", "ShareFolderParameters", FolderUuid=top, SharePassword=password,
                   ShareTitle="", ShareDescription="", ExpireDate="", UserCanDownloadStudies=False)["ShareUrl"]
        call("/addordertofolder", "AddOrderToFolderParameters", PatientOrderUuid=second, FolderUuidList=[sub])
    with httpx.Client(follow_redirects=True) as browser:
        if password:
            assert spec_a.patient_id not in browser.get(url).text
            browser.post(url, data={"password": password})
        page = browser.get(url).text
    assert spec_a.patient_id in page and spec_b.patient_id in page
