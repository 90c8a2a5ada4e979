"""Issue 18 acceptance: kill -9 of a process running a flow, at chosen points, then a rerun.

Each flow runs in a child process (``tests/fixtures/flow_child.py``) that
stops at a named point and prints a marker; the test then kills the child's
whole process group (SIGKILL: its ephemeral Prefect server dies with it) and
reruns. Two Prefect modes: *ephemeral* (no ``PREFECT_API_URL``: the child
starts its own API on a Prefect home shared by the module's children, as the
demo and plain scripts do) and *server* (a real ``prefect server start``,
shared by the session, as in production).

- mid-upload: after two of the batches were stored; the rerun (in this
  process) sends only the rest, and the account holds every file once, one
  order per study, one folder.
- at the export's commit step: inside the swap of a day's four tables; the
  next run of *another* day finishes the commit, and the day equals a clean
  export of it (extends test_reliability_export_commit.py, which kills the
  writer alone, to the whole flow process).
- mid-reassignment with the concurrency limit on (the default
  ``postdicom-assignments``): while the run's batches hold their slots. The
  rerun must finish: at once in ephemeral mode (no limit is used there,
  with a warning), and in server mode without waiting for the dead run's
  leases to expire (``POSTDICOM_ASSIGNMENT_LEASE_SECONDS`` at Prefect's
  least, 60 s): it finds them in this machine's lease records, releases
  them and says so in its log.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from flows import bulk_upload_and_share, nightly_order_export
from flows.export_schema import TABLES
from flows.parquet_writer import Destination, pending_commits
from flows.reassignment import DEFAULT_LIMIT_NAME
from postdicom.synthetic import StudySpec, write_study
from tests.fixtures.flow_child import FlowChild
from tests.test_flow_export import canonical
from tests.test_flow_reassignment import assignments_of, make_orders
from tests.test_flow_upload_and_share import EXPIRE, orders_of, sop_uid, stored_sop_uids, unique_specs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LEASE_SECONDS = 60
"""The slot lease the children use: Prefect's least (its server refuses shorter ones)."""
MODES = ["ephemeral", "server"]


@pytest.fixture(scope="module")
def ephemeral_home(tmp_path_factory) -> Path:
    """One Prefect home for the module's ephemeral children (a killed run and its rerun share it, as on a laptop)."""
    return tmp_path_factory.mktemp("ephemeral-prefect-home")


@pytest.fixture(params=MODES)
def prefect_mode(request, ephemeral_home) -> dict[str, str]:
    """The children's Prefect settings for the mode: its own home and no API URL, or the shared server."""
    common = {"POSTDICOM_ASSIGNMENT_LEASE_SECONDS": str(LEASE_SECONDS), "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": None}
    if request.param == "ephemeral":
        return {**common, "PREFECT_HOME": str(ephemeral_home), "PREFECT_API_URL": "", "MODE": "ephemeral"}
    api_url = request.getfixturevalue("prefect_server")
    home = request.getfixturevalue("tmp_path") / "client-home"
    return {**common, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url, "MODE": "server"}


def account(info: Any) -> dict[str, Any]:
    """The credentials block's fields, for the child's spec file (never its environment)."""
    return {"username": info.username, "password": info.password, "web_address": info.web_address,
            "dialect": info.dialect}


def child(tmp_path: Path, name: str, flow: str, info: Any, mode: dict[str, str], parameters: dict[str, Any],
          pause_at: dict[str, Any] | None = None) -> FlowChild:
    env = {key: value for key, value in mode.items() if key != "MODE"}
    return FlowChild(tmp_path / "children", name, flow, account(info), parameters, env, pause_at or {}).start()


# ------------------------------------------------------------------ mid-upload


def test_kill_mid_upload_then_rerun_stores_every_file_once(prefect_harness, sandbox_server, prefect_mode, tmp_path):
    disk = tmp_path / "disk"
    specs = unique_specs(4, instances_per_series=3)
    written = {spec.study_uid(): write_study(disk, spec) for spec in specs}
    total = sum(map(len, written.values()))
    folder = f"kill-upload-{uuid.uuid4().hex[:8]}"
    parameters = {"directory": str(disk), "expire_date": EXPIRE, "folder_name": folder, "batch_size": 2,
                  "concurrency": 2}

    killed = child(tmp_path, "upload-killed", "upload", sandbox_server, prefect_mode, parameters,
                   pause_at={"upload_batches": 2})
    # Both upload threads paused after a batch: no STOW is in flight when the group dies, so the count below is final.
    killed.wait_for(r"paused upload[\s\S]*paused upload")
    killed.kill()

    with sandbox_server.client() as client:
        stored_before = sum(len(stored_sop_uids(client, study)) for study in written)
    assert 4 <= stored_before < total, "killed mid-upload: some files stored, not all"

    # The rerun runs here (the session's Prefect): what the kill left behind is on the PostDICOM side.
    summary = bulk_upload_and_share(credentials=sandbox_server.credentials(), **parameters)

    assert summary.total_files == total
    assert summary.counts["failed"] == 0 and summary.files_not_stored == []
    assert summary.counts["already_stored"] == stored_before
    assert summary.counts["stored"] == total - stored_before
    assert len(summary.shares) == 1
    with sandbox_server.client() as client:
        for study_uid, paths in written.items():
            assert sorted(stored_sop_uids(client, study_uid)) == sorted(sop_uid(p) for p in paths)
        assert len(orders_of(client, [spec.patient_id for spec in specs])) == len(specs)
        (found,) = client.search_folder(folder_name=folder).folder_list
    assert found.folder_uuid == summary.folder_uuid
    assert summary.orders_added_to_folder == len(specs)


# ------------------------------------------------------------------ at the export's commit step

FIRST_DAY = dt.date(2033, 3, 14)
"""Study dates from here on are this module's alone (each mode takes its own two days)."""


def export_specs(tag: str, count: int, day: dt.date) -> list[StudySpec]:
    return [StudySpec(f"Kill^Export{n}", f"KE-{tag}-{n}", "CT", instances_per_series=1, study_date=day,
                      accession_number=f"KE-{tag}-{n}", seed=f"ke-{tag}-{n}") for n in range(count)]


def store(info: Any, root: Path, specs: list[StudySpec]) -> None:
    paths = [path for spec in specs for path in write_study(root, spec)]
    with info.client() as client:
        result = client.store_instances(paths)
    assert len(result.stored) + len(result.with_status("already_stored")) == len(paths)


def day_rows(root: Path, table: str, day: dt.date) -> pd.DataFrame:
    frame = canonical(root, table)
    return frame[frame["export_date"] == day.isoformat()].reset_index(drop=True)


@pytest.mark.parametrize("step", ["swapped:studies"])
def test_kill_at_the_export_commit_step_is_finished_by_the_next_night(
    prefect_harness, sandbox_server, prefect_mode, tmp_path, step
):
    day = FIRST_DAY + dt.timedelta(days=2 * MODES.index(prefect_mode["MODE"]))
    next_day = day + dt.timedelta(days=1)
    tag = uuid.uuid4().hex[:6]
    store(sandbox_server, tmp_path / "disk", export_specs(tag, 2, day) + export_specs(tag + "n", 1, next_day))
    dest = tmp_path / "export"
    window = {"study_date_from": day.isoformat(), "study_date_to": day.isoformat(), "cache_hours": 0}
    assert nightly_order_export(credentials=sandbox_server.credentials(), destination=str(dest), **window).rows
    store(sandbox_server, tmp_path / "disk", export_specs(tag + "late", 1, day))  # the new generation has 3 orders

    killed = child(tmp_path, "export-killed", "export", sandbox_server, prefect_mode,
                   {"destination": str(dest), **window}, pause_at={"commit_step": step})
    killed.kill_when_paused()

    destination = Destination(str(dest))
    assert pending_commits(destination) == [day]
    assert len(day_rows(dest, "orders", day)) == 3 and len(day_rows(dest, "series", day)) == 2, (
        "killed inside the swap: orders/studies new, series/tags still old"
    )

    reference = tmp_path / "reference"
    nightly_order_export(credentials=sandbox_server.credentials(), destination=str(reference), **window)
    next_night = {**window, "study_date_from": next_day.isoformat(), "study_date_to": next_day.isoformat()}
    nightly_order_export(credentials=sandbox_server.credentials(), destination=str(dest), **next_night)

    assert pending_commits(destination) == []
    for table in TABLES:
        pd.testing.assert_frame_equal(day_rows(dest, table, day), day_rows(reference, table, day))
    assert len(day_rows(dest, "orders", day)) == 3
    assert len(day_rows(dest, "orders", next_day)) == 1


# ------------------------------------------------------------------ mid-reassignment, limit on


def limit_slots(api_url: str, name: str) -> tuple[int, int]:
    """``(active slots, limit)`` of a global concurrency limit on the Prefect server."""
    answer = httpx.get(f"{api_url}/v2/concurrency_limits/{name}", timeout=30)
    answer.raise_for_status()
    body = answer.json()
    return body["active_slots"], body["limit"]


def test_kill_mid_reassignment_with_the_limit_on_does_not_block_the_rerun(
    sandbox_server, prefect_mode, tmp_path
):
    institution = sandbox_server.extra["account"]["Institutions"][0]
    reader = institution["Users"][1]["UserUuid"]
    orders = make_orders(sandbox_server, 12)
    rows = [{"patient_order_uuid": order, "assigned_user_uuid": reader} for order in orders]
    parameters = {"assignments": rows, "batch_size": 2, "concurrency": 2}  # the limit: default name
    server = prefect_mode["MODE"] == "server"

    killed = child(tmp_path, "reassign-killed", "reassign", sandbox_server, prefect_mode, parameters,
                   pause_at={"assigned_rows": 3})
    # Both batch threads paused inside their batches: both slots of the limit are held when the group dies.
    killed.wait_for(r"paused reassign[\s\S]*paused reassign")
    killed.kill()
    if server:
        assert limit_slots(prefect_mode["PREFECT_API_URL"], DEFAULT_LIMIT_NAME) == (2, 2), "the dead run holds both"
    else:
        assert f"global concurrency limit '{DEFAULT_LIMIT_NAME}' is not used" in killed.text()

    rerun = child(tmp_path, "reassign-rerun", "reassign", sandbox_server, prefect_mode, parameters)
    outcome = rerun.outcome(timeout=LEASE_SECONDS + 240)

    assert outcome["state"] == "COMPLETED", rerun.tail()
    report = outcome["result"]
    assert [row["row"] for row in report["rows"]] == list(range(1, 13))
    assert report["counts"]["failed"] == report["counts"]["skipped"] == 0
    assert report["counts"]["unchanged"] >= 3, "rows the killed run sent are not sent again"
    assert set(assignments_of(sandbox_server, orders).values()) == {(reader, None)}
    waited = re.search(rf"Waiting for a slot of the global concurrency limit '{DEFAULT_LIMIT_NAME}'", rerun.text())
    print(f"{prefect_mode['MODE']}: rerun after kill took {outcome['seconds']} s")
    if server:
        # Both batch threads may free records at once (then a lease may be counted twice): together, both slots.
        freed = re.findall(rf"Freed (\d+) slot\(s\) of the global concurrency limit '{DEFAULT_LIMIT_NAME}'",
                           rerun.text())
        assert sum(map(int, freed)) >= 2, "the rerun freed the dead run's slots and says so"
        assert not waited, "the dead run's slots were freed, not waited for (the notice comes after 5 s of waiting)"
        # Waiting for the leases would take most of a lease (renewed every quarter of it) on top of the run; the
        # margin is for a loaded machine, whose clean run of these 12 rows still takes a few seconds.
        assert outcome["seconds"] < LEASE_SECONDS / 2
        assert limit_slots(prefect_mode["PREFECT_API_URL"], DEFAULT_LIMIT_NAME) == (0, 2), "no slot left taken"
    else:
        assert not waited, "nothing of the dead run's holds the rerun up"
