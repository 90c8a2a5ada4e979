"""Issue 18 acceptance: the three flows through a proxy that resets, truncates and stalls.

The fault proxy (``tests/fixtures/fault_proxy.py``) sits between the client
and the shared sandbox and breaks exchanges on the wire: resets after the
request reached the server (the work is done, the answer lost), answers cut
in the middle, answers held back. Then:

- upload-and-share: every file is accounted for, each instance is stored
  once, each study has one order, the folder is made once;
- nightly export: the tables equal a clean run's (no proxy), row for row;
- batch reassignment: every row ends on the server, none is reported failed.

The odds, so that no run fails by chance: a fault breaks an exchange with
probability ``BREAK_RATE`` (resets + truncations; stalls are shorter than
the read timeout and only slow it). A call fails only when all its
``ATTEMPTS`` tries break: ``BREAK_RATE ** ATTEMPTS`` = 0.2 ** 11 = 2e-8 per
call, a few hundred calls per test: below 1e-5 per test run, and Prefect's
task retries come on top. The share-link creates are spared: the client
rightly never repeats one that may have reached the server (what happens
then is the share step's own test, tests/test_flow_share_*.py).
"""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pandas as pd
import pytest

from flows import batch_reassignment, bulk_upload_and_share, nightly_order_export
from flows.export_schema import TABLES
from postdicom.synthetic import StudySpec, write_study
from tests.fixtures.fault_proxy import FaultProxy
from tests.test_flow_export import canonical
from tests.test_flow_reassignment import assignments_of, make_orders
from tests.test_flow_upload_and_share import EXPIRE, orders_of, sop_uid, stored_sop_uids, unique_specs

RESET, TRUNCATE, STALL = 0.12, 0.08, 0.05
BREAK_RATE = RESET + TRUNCATE
MAX_RETRIES = 10
ATTEMPTS = MAX_RETRIES + 1
SHARE_CREATES = r"(?i)^GET /dicomweb/(createsharelink|sharepatientorderwithurl|sharefolderwithurl)\b"
FAULT_SEED = 4
"""Fixes the fault schedule (exchange n gets the same draw every run): its first 28 exchanges bring 4 resets,
3 truncations and 3 stalls, so every test sees each kind. Which request gets which fault depends on timing."""
assert BREAK_RATE**ATTEMPTS < 1e-7


@pytest.fixture
def faulty(sandbox_server, monkeypatch):
    """A fault proxy in front of the shared sandbox, and credentials that go through it (short retry waits)."""
    monkeypatch.setenv("POSTDICOM_RETRY_BACKOFF", "0.01")
    monkeypatch.setenv("POSTDICOM_RETRY_MAX_BACKOFF", "0.05")
    with FaultProxy(("127.0.0.1", sandbox_server.extra["port"]), reset=RESET, truncate=TRUNCATE, stall=STALL,
                    stall_seconds=0.3, spare=SHARE_CREATES, seed=FAULT_SEED) as proxy:
        proxy.credentials = sandbox_server.credentials(  # type: ignore[attr-defined]
            web_address=f"{proxy.url}/dicomweb", max_retries=MAX_RETRIES, timeout=30
        )
        yield proxy


def assert_faults_were_injected(proxy: FaultProxy) -> None:
    counts = proxy.counts
    print(f"fault proxy: {dict(counts)}")
    assert counts["reset"] and counts["truncate"] and counts["stall"], dict(counts)


# ------------------------------------------------------------------ the proxy itself


def test_the_proxy_resets_truncates_and_stalls_the_exchanges_it_is_told_to(sandbox_server):
    root = ("127.0.0.1", sandbox_server.extra["port"])
    cases = {"reset": httpx.ReadError, "truncate": httpx.RemoteProtocolError, "stall": httpx.ReadTimeout}
    for kind, error in cases.items():
        with FaultProxy(root, every={kind: 2}, stall_seconds=2) as proxy:
            with httpx.Client(base_url=proxy.url, timeout=1) as client:
                assert client.get("/dicomweb/studies").status_code in (200, 401)
                with pytest.raises(error):
                    client.get("/dicomweb/studies")
                assert client.get("/dicomweb/studies").status_code in (200, 401)
        assert proxy.counts == {"exchanges": 3, kind: 1}, kind
    with FaultProxy(root, reset=1.0, spare=r"^GET /spared") as proxy, httpx.Client(base_url=proxy.url) as client:
        assert client.get("/spared").status_code == 404
        with pytest.raises(httpx.ReadError):
            client.get("/dicomweb/studies")
    assert proxy.counts["spared"] == 1 and proxy.counts["reset"] == 1


# ------------------------------------------------------------------ the three flows


@pytest.mark.slow
def test_upload_and_share_through_faults_accounts_for_every_file_once(prefect_harness, sandbox_server, faulty, tmp_path):
    specs = unique_specs(4, series_count=2, instances_per_series=3)
    written = {spec.study_uid(): write_study(tmp_path / "disk", spec) for spec in specs}
    total = sum(map(len, written.values()))
    folder = f"faults-{uuid.uuid4().hex[:8]}"

    summary = bulk_upload_and_share(credentials=faulty.credentials, directory=str(tmp_path / "disk"),
                                    expire_date=EXPIRE, folder_name=folder, batch_size=3, concurrency=3)

    assert_faults_were_injected(faulty)
    assert summary.total_files == total
    assert summary.counts["failed"] == 0 and not summary.files_not_stored
    assert summary.counts["stored"] + summary.counts["already_stored"] == total
    # An add whose answer a reset lost is found done by its retry, and then not counted as added by
    # this run: which adds that hits depends on the fault schedule, so the folder's content is checked.
    assert len(summary.shares) == 1 and summary.orders_added_to_folder <= len(specs)
    with sandbox_server.client() as client:  # straight to the sandbox: what it holds now
        for study_uid, paths in written.items():
            assert sorted(stored_sop_uids(client, study_uid)) == sorted(sop_uid(p) for p in paths)
        orders = orders_of(client, [spec.patient_id for spec in specs])
        assert len(orders) == len(specs)
        (found,) = client.search_folder(folder_name=folder, get_orders_in_folder=True).folder_list
    assert found.folder_uuid == summary.folder_uuid
    assert sorted(found.patient_order_uuid_list or []) == sorted(order["PatientOrderUuid"] for order in orders)


@pytest.mark.slow
def test_reassignment_through_faults_assigns_every_row_once(prefect_harness, sandbox_server, faulty):
    reader = sandbox_server.extra["account"]["Institutions"][0]["Users"][0]["UserUuid"]
    orders = make_orders(sandbox_server, 30)
    rows = [{"patient_order_uuid": order, "assigned_user_uuid": reader} for order in orders]

    report = batch_reassignment(credentials=faulty.credentials, assignments=rows, batch_size=5, concurrency=3)

    assert_faults_were_injected(faulty)
    assert report.counts["assigned"] == len(orders), report.counts
    assert [row.row for row in report.rows] == list(range(1, len(orders) + 1))
    assert set(assignments_of(sandbox_server, orders).values()) == {(reader, None)}


FAULT_DAY = dt.date(2034, 6, 7)
"""A study date no other test uses: the export window holds only this module's studies."""


@pytest.mark.slow
def test_export_through_faults_equals_a_clean_run(prefect_harness, sandbox_server, faulty, tmp_path):
    tag = uuid.uuid4().hex[:6]
    specs = [StudySpec(f"Faults^Export{n}", f"FE-{tag}-{n}", ("CT", "MR")[n % 2], series_count=2,
                       instances_per_series=1, study_date=FAULT_DAY, accession_number=f"FE-{tag}-{n}",
                       seed=f"fe-{tag}-{n}") for n in range(6)]
    paths = [path for spec in specs for path in write_study(tmp_path / "disk", spec)]
    with sandbox_server.client() as client:
        assert len(client.store_instances(paths).stored) == len(paths)
    window = {"study_date_from": FAULT_DAY, "study_date_to": FAULT_DAY, "cache_hours": 0, "concurrency": 3}

    clean = nightly_order_export(credentials=sandbox_server.credentials(), destination=str(tmp_path / "clean"),
                                 **window)
    faulted = nightly_order_export(credentials=faulty.credentials, destination=str(tmp_path / "faulted"), **window)

    assert_faults_were_injected(faulty)
    assert faulted.rows == clean.rows and clean.rows["orders"] == len(specs)
    for table in TABLES:
        pd.testing.assert_frame_equal(canonical(tmp_path / "faulted", table), canonical(tmp_path / "clean", table))
