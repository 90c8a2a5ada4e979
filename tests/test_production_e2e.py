"""The production path end to end, as the README tells a data engineer to run it.

A real ``prefect server`` on PostgreSQL (a private cluster of Debian's
``postgresql`` in a temporary directory, on a free port), then exactly the
documented commands: ``postdicom-flows setup``, ``prefect deploy --all
--prefect-file deployments/prefect.yaml`` (twice: a redeploy must be quiet), a
process worker. Runs are created from the deployments as the UI creates them
(Quick run = the deployment's defaults; Custom run = a form's worth of
parameters, blank fields sent as ``""`` as both UIs send them), a scheduled
export fires, a late one exports the night it was scheduled for (not the
wall clock's), and a worker killed with its flow
process (SIGKILL: a lost machine) ends Crashed through the shipped automation,
after which ``prefect flow-run retry`` completes the run. The PostDICOM server
is the sandbox.

The automation window is shortened (``--crash-after``) so the test takes a few
minutes; heartbeats stay at the deployments' 30 s (Prefect's minimum).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import psutil
import pyarrow.parquet as pq
import pytest

from deployments.setup import HEARTBEAT_SECONDS, ZOMBIE_AUTOMATION_NAME, ZOMBIE_CRASH_MESSAGE
from deployments.postgres import private_postgres
from deployments.processes import free_port, log_tail, stop_process
from tests.fixtures.sandbox_server import sandbox_faults

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"
CRASH_AFTER_SECONDS = 45
EXPORT = "nightly-order-export/nightly-export"
UPLOAD = "bulk-upload-and-share/upload-and-share"
REASSIGNMENT = "batch-reassignment/reassignment"
MADRID = ZoneInfo("Europe/Madrid")


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A private PostgreSQL cluster on a free port (``deployments.postgres``); yields the Prefect database URL."""
    with private_postgres(prefix="pdf-e2e-pg-") as url:
        yield url


# --- Prefect server, CLI and worker ------------------------------------------------------


class Production:
    """The running server plus the helpers the test drives it with."""

    def __init__(self, root: Path, api_url: str, env: dict[str, str]) -> None:
        self.root = root
        self.api_url = api_url
        self.env = env
        self.workdir = root / "checkout"
        self.workers: list[tuple[subprocess.Popen, Path]] = []

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """One documented command, run from the checkout (the pull step's directory)."""
        command = [str(BIN / args[0]), *args[1:]]
        return subprocess.run(command, cwd=self.workdir, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def start_worker(self) -> subprocess.Popen:
        log = self.root / f"worker{len(self.workers)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(BIN / "prefect"), "worker", "start", "--pool", "postdicom-pool", "--type", "process"],
                cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.workers.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log_tail(log, 40)}" for _, log in self.workers)

    def stop_workers(self) -> None:
        for process, _ in self.workers:
            if process.poll() is None:
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
            stop_process(process, sig=signal.SIGINT, timeout=20)

    def api(self, coroutine_function: Callable[[Any], Any]) -> Any:
        """Run ``coroutine_function(client)`` against this server."""
        from prefect.client.orchestration import PrefectClient

        async def call() -> Any:
            async with PrefectClient(self.api_url) as client:
                return await coroutine_function(client)

        return asyncio.run(call())

    def deployment(self, name: str) -> Any:
        return self.api(lambda client: client.read_deployment_by_name(name))

    def create_run(self, name: str, parameters: dict[str, Any] | None = None, state: Any = None) -> UUID:
        deployment = self.deployment(name)
        run = self.api(lambda client: client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, state=state))
        return run.id

    def read_run(self, run_id: UUID) -> Any:
        return self.api(lambda client: client.read_flow_run(run_id))

    def wait_for(self, run_id: UUID, state_types: set[str], timeout: float, what: str) -> Any:
        """Poll until the run's state type is one of ``state_types``; fail with its state and the worker log."""
        deadline = time.monotonic() + timeout
        run = self.read_run(run_id)
        while time.monotonic() < deadline:
            run = self.read_run(run_id)
            if run.state is not None and run.state.type.value in state_types:
                return run
            if run.state is not None and run.state.is_final():
                break
            time.sleep(1)
        state = run.state
        raise AssertionError(
            f"{what}: expected {sorted(state_types)}, run {run.name} is "
            f"{state.type.value if state else None} ({state.name if state else ''}: "
            f"{state.message if state else ''}) after up to {timeout:g} s\n{self.logs()}"
        )


@pytest.fixture(scope="module")
def production(postgres: str) -> Iterator[Production]:
    """``prefect server start`` on the PostgreSQL cluster; the checkout the worker runs from; torn down after."""
    root = Path(tempfile.mkdtemp(prefix="pdf-e2e-prefect-"))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(root / "results"),
        "PYTHONUNBUFFERED": "1",
    }
    server_env = {**env, "PREFECT_API_DATABASE_CONNECTION_URL": postgres, "PREFECT_UI_ENABLED": "false"}
    server_env.pop("PREFECT_API_URL")
    server_log = root / "server.log"
    with server_log.open("ab") as out:
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=root, env=server_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    production = Production(root, api_url, env)
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited with {server.returncode}:\n{log_tail(server_log)}")
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not answer within 180 s:\n{log_tail(server_log)}")
            time.sleep(0.5)
        # The checkout the worker runs from: the repository's code, with a
        # working directory of its own so the export's ./export lands here.
        production.workdir.mkdir()
        for name in ("flows", "deployments"):
            (production.workdir / name).symlink_to(REPO / name)
        env["PWD"] = str(production.workdir)
        yield production
    finally:
        production.stop_workers()
        stop_process(server, sig=signal.SIGINT, timeout=30)
        shutil.rmtree(root, ignore_errors=True)


# --- the test ---------------------------------------------------------------------------


def _night_before(moment: dt.datetime) -> dt.date:
    """The day before ``moment`` in Madrid (the deployment's time zone): what a run at ``moment`` exports."""
    return (dt.datetime.fromtimestamp(moment.timestamp(), MADRID) - dt.timedelta(days=1)).date()


def _partition(workdir: Path, day: dt.date) -> Path:
    return workdir / "export" / "orders" / f"export_date={day.isoformat()}"


def test_production_path_on_postgres(production: Production, fresh_sandbox: Any, tmp_path: Path) -> None:
    from prefect.blocks.system import Secret
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Scheduled

    from blocks import PostDicomCredentials
    from postdicom.synthetic import StudySpec, write_study

    sandbox = fresh_sandbox()
    info = sandbox.info(0)
    institution = info.extra["institution_uuid"]
    reader = info.extra["account"]["Institutions"][0]["Users"][1]["UserUuid"]

    # 1. setup: block type, work pool, zombie-run automation (short window for the test).
    setup = production.cli("postdicom-flows", "setup", "--crash-after", str(CRASH_AFTER_SECONDS))
    assert setup.returncode == 0, setup.stdout + setup.stderr
    automations = production.api(lambda client: client.read_automations_by_name(ZOMBIE_AUTOMATION_NAME))
    assert len(automations) == 1 and automations[0].enabled
    assert automations[0].trigger.within == dt.timedelta(seconds=CRASH_AFTER_SECONDS)

    # The credentials block the deployments default to, pointing at the sandbox.
    with temporary_settings(updates={PREFECT_API_URL: production.api_url}):
        PostDicomCredentials(username=info.username, password=info.password,
                             web_address=info.web_address).save("sandbox-demo", overwrite=True)
        block_id = PostDicomCredentials.load("sandbox-demo")._block_document_id

    # 2. prefect deploy --all, then again: the redeploy must not warn (schedules: null).
    for attempt in ("deploy", "redeploy"):
        deployed = production.cli("prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML))
        output = deployed.stdout + deployed.stderr
        assert deployed.returncode == 0, f"{attempt}:\n{output[-4000:]}"
        assert "Warning" not in output and "deprecated" not in output, f"{attempt} warned:\n{output[-4000:]}"
    for name in (EXPORT, UPLOAD, REASSIGNMENT):
        deployment = production.deployment(name)
        assert deployment.parameters["credentials"] == {"$ref": {"block_document_id": str(block_id)}}, name
        assert info.password not in deployment.model_dump_json(), f"{name} stored the password"
        assert deployment.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_SECONDS)

    production.start_worker()

    # 3a. Quick run of the export: the deployment's defaults only (yesterday in Madrid).
    quick = production.create_run(EXPORT)
    done = production.wait_for(quick, {"COMPLETED"}, 240, "export with the deployment's defaults")
    night = _night_before(done.expected_start_time)
    assert _partition(production.workdir, night).is_dir(), f"no partition for {night}"

    # 3b. Custom run of upload-and-share: a form's worth of parameters, credentials left at the default,
    # the share password picked as a Secret block. Typed in plain, the server refuses the run.
    share_password = "e2e-share-" + os.urandom(8).hex()
    with temporary_settings(updates={PREFECT_API_URL: production.api_url}):
        Secret(value=share_password).save("e2e-share-password", overwrite=True)
        secret_id = Secret.load("e2e-share-password")._block_document_id
    disk = tmp_path / "disk"
    write_study(disk, StudySpec("E2E^Patient", "E2E-001", "CT", series_count=1, instances_per_series=2,
                                study_date=night, seed="e2e"))
    form = {
        "directory": str(disk),
        "expire_date": (dt.date.today() + dt.timedelta(days=7)).isoformat(),
        "downloadable": True,
        "folder_name": "E2E folder",
        "parent_folder_uuid": "",
        "share_per": "patient",
        "assign_to_user_uuid": "",
        "assign_to_user_group_uuid": "",
        "batch_size": 50,
        "concurrency": 2,
        "share_password_block": "",
        "list_patients_in_summary": False,
    }
    # Quick run of upload-and-share: nothing to upload without a directory; the server says so up front.
    with pytest.raises(PrefectHTTPStatusError, match="directory"):
        production.create_run(UPLOAD)
    with pytest.raises(PrefectHTTPStatusError, match="share_password"):
        production.create_run(UPLOAD, parameters={**form, "share_password": "typed-in-clear"})
    upload = production.create_run(UPLOAD, parameters={
        **form, "share_password": {"$ref": {"block_document_id": str(secret_id)}}})
    production.wait_for(upload, {"COMPLETED"}, 240, "upload-and-share from the form")
    stored = production.read_run(upload)
    assert stored.parameters["share_password"] == {"$ref": {"block_document_id": str(secret_id)}}
    assert share_password not in stored.model_dump_json()
    artifacts = production.api(lambda client: client.read_artifacts(flow_run_filter=FlowRunFilter(
        id=FlowRunFilterId(any_=[upload]))))
    summary = next(a for a in artifacts if a.key == "upload-and-share-summary")
    assert "password protected" in str(summary.data) and "no password" not in str(summary.data)
    assert share_password not in str(summary.data)

    # 3c. Custom run of the reassignment: a selection and a user, as the form sends them.
    reassignment = production.create_run(REASSIGNMENT, parameters={
        "assignments": None,
        "dry_run": False,
        "assignments_file": "",
        "institution_uuid_list": [institution],
        "modality_list": ["CT"],
        "study_date_from": night.isoformat(),
        "study_date_to": night.isoformat(),
        "assigned_user_uuid": reader,
        "assigned_user_group_uuid": "",
        "batch_size": 10,
    })
    production.wait_for(reassignment, {"COMPLETED"}, 240, "reassignment from the form")
    # Quick run of the reassignment: no rows, no file, an empty selection; the run fails, changing nothing.
    empty = production.create_run(REASSIGNMENT)
    failed = production.wait_for(empty, {"FAILED"}, 240, "reassignment with the deployment's defaults")
    assert "a selection needs at least one filter" in (failed.state.message or ""), failed.state.message

    # 3d. Custom run of the export: the uploaded night, CT only, blank fields as the form sends them.
    chosen = production.create_run(EXPORT, parameters={
        "destination": "./export-form",
        "study_date_from": night.isoformat(),
        "study_date_to": "",
        "institution_uuid_list": [institution],
        "modality_list": ["CT"],
        "dicom_tag_id_list": [],
        "time_zone": "Europe/Madrid",
        "lookback_days": 3,
        "concurrency": 2,
        "orders_per_chunk": 10,
        "cache_hours": 0,
        "refresh_cache": False,
    })
    production.wait_for(chosen, {"COMPLETED"}, 240, "export from the form")
    exported = production.workdir / "export-form" / "orders"
    assert sorted(p.name for p in exported.iterdir()) == [f"export_date={night}"], "the chosen day alone"
    orders = pq.read_table(exported / f"export_date={night}")
    assert orders.num_rows >= 1 and set(orders.column("modality").to_pylist()) == {"CT"}

    # 4. A scheduled export fires at its time and exports the night before it (in Madrid).
    shutil.rmtree(production.workdir / "export")
    scheduled_time = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=20)
    scheduled = production.create_run(EXPORT, state=Scheduled(scheduled_time=scheduled_time))
    fired = production.wait_for(scheduled, {"COMPLETED"}, 240, "scheduled export")
    assert fired.start_time >= scheduled_time - dt.timedelta(seconds=10), "the run started long before its time"
    scheduled_night = _night_before(scheduled_time)
    assert _partition(production.workdir, scheduled_night).is_dir(), f"no partition for {scheduled_night}"

    # A run that starts two days late (worker down, Late run) exports the night before its scheduled
    # time and the lookback days before it, not the night before the wall clock.
    shutil.rmtree(production.workdir / "export")
    late_time = scheduled_time - dt.timedelta(days=2)
    late = production.create_run(EXPORT, state=Scheduled(scheduled_time=late_time))
    production.wait_for(late, {"COMPLETED"}, 240, "the late scheduled export")
    late_night = _night_before(late_time)
    days = sorted(p.name for p in (production.workdir / "export" / "orders").iterdir())
    assert days == [f"export_date={late_night - dt.timedelta(days=n)}" for n in (3, 2, 1, 0)], days

    # 5. Worker and flow process killed (a lost machine): the automation marks the run Crashed.
    # Every API request hangs, so the run is surely still working when it is killed.
    with sandbox_faults(info, "hang:1/1@all", hang_seconds=600):
        victim = production.create_run(EXPORT)
        production.wait_for(victim, {"RUNNING"}, 180, "the run to be killed")
        time.sleep(3)
        worker, _ = production.workers[-1]
        flow_processes = psutil.Process(worker.pid).children(recursive=True)
        assert flow_processes, "the worker runs no flow process"
        for process in [*flow_processes, psutil.Process(worker.pid)]:
            process.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert production.read_run(victim).state.type == StateType.RUNNING, "the run ended before it was killed"
        crashed = production.wait_for(victim, {"CRASHED"}, CRASH_AFTER_SECONDS + 2 * HEARTBEAT_SECONDS + 90,
                                      "the killed run to be marked Crashed by the automation")
    assert crashed.state.message == ZOMBIE_CRASH_MESSAGE

    # 6. A new worker, and `prefect flow-run retry` completes the run.
    production.start_worker()
    retried = production.cli("prefect", "flow-run", "retry", str(victim))
    assert retried.returncode == 0, retried.stdout + retried.stderr
    production.wait_for(victim, {"COMPLETED"}, 240, "the retried run")
    assert production.read_run(victim).run_count >= 2
    assert StateType.COMPLETED == production.read_run(quick).state.type
