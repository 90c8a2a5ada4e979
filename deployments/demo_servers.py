"""The demo's children: the sandbox it runs the flows against and, with ``--ui``, a Prefect server.

Process control only; the steps are in ``deployments/demo.py`` and what is
printed in ``deployments/demo_report.py``. Both children get an environment
without the demo's secrets (``deployments.processes.child_environment``): the
sandbox needs none, the Prefect server only its own ``PREFECT_`` settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from deployments.processes import (
    HOST,
    answers_ok,
    free_port,
    pid_alive,
    port_is_free,
    start_process,
    stop_process,
    wait_until,
)

DEFAULT_PORT = 8765
UI_PORT = 4200
SANDBOX_START_TIMEOUT = 60.0
SERVER_START_TIMEOUT = 120.0


@dataclasses.dataclass
class DemoPaths:
    """Everything the demo writes, under one folder the user named (or ``./demo-data``)."""

    root: Path

    @property
    def sandbox_data(self) -> Path:
        return self.root / "sandbox"

    @property
    def sandbox_log(self) -> Path:
        return self.root / "sandbox.log"

    @property
    def sandbox_state(self) -> Path:
        return self.root / "sandbox.json"

    @property
    def disk(self) -> Path:
        return self.root / "disk"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def state(self) -> Path:
        return self.root / "demo.json"

    @property
    def server_log(self) -> Path:
        return self.root / "prefect-server.log"


@dataclasses.dataclass
class SandboxAccount:
    """The seeded demo account, as ``--print-seed`` describes it."""

    email: str
    password: str
    institution_uuid: str
    radiologist_uuid: str
    radiologist_name: str


@dataclasses.dataclass
class RunningProcess:
    """A child program the demo started (or found running), and whether the demo owns it."""

    url: str
    process: subprocess.Popen[bytes] | None
    pid: int | None = None

    @property
    def owned(self) -> bool:
        return self.process is not None


def sandbox_account() -> SandboxAccount:
    """Read the demo account from the sandbox program's default seed (asked, not imported: it is a separate program)."""
    out = subprocess.run(
        [sys.executable, "-m", "sandbox", "--print-seed"],
        check=True,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    ).stdout
    seed = json.loads(out)
    account = seed["Accounts"][0]
    institution = account["Institutions"][0]
    users = institution.get("Users") or []
    if not users:
        raise RuntimeError("the sandbox seed has no user to assign orders to")
    return SandboxAccount(
        email=account["Email"],
        password=account["Password"],
        institution_uuid=institution["InstitutionUuid"],
        radiologist_uuid=users[0]["UserUuid"],
        radiologist_name=users[0].get("Name", users[0]["UserUuid"]),
    )


def sandbox_answers(web_address: str, account: SandboxAccount) -> bool:
    """True when the sandbox at ``web_address`` accepts the demo account (a QIDO search answers 200)."""
    return answers_ok(f"{web_address}/studies?limit=1", auth=(account.email, account.password))


def _left_running(paths: DemoPaths, account: SandboxAccount, port: int | None) -> RunningProcess | None:
    """The sandbox a ``--keep-running`` demo left on this data folder, when it still answers."""
    if not paths.sandbox_state.exists():
        return None
    with contextlib.suppress(ValueError, KeyError, OSError):
        state = json.loads(paths.sandbox_state.read_text(encoding="utf-8"))
        url = f"http://{HOST}:{int(state['port'])}/dicomweb"
        if port in (None, int(state["port"])) and pid_alive(int(state["pid"])) and sandbox_answers(url, account):
            return RunningProcess(url=url, process=None, pid=int(state["pid"]))
    return None


def start_sandbox(paths: DemoPaths, account: SandboxAccount, port: int | None) -> RunningProcess:
    """Start the sandbox on ``port`` (or reuse the one a ``--keep-running`` demo left), and wait until it answers.

    The default port stays the same from run to run so that the saved block
    and the share links keep pointing at the right place; a busy port that is
    not our sandbox makes the demo pick a free one (or fail, when the user
    asked for that port).
    """
    running = _left_running(paths, account, port)
    if running is not None:
        return running
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    elif not port_is_free(port):
        raise RuntimeError(f"port {port} is in use; choose another with --port")
    paths.sandbox_data.mkdir(parents=True, exist_ok=True)
    process = start_process(
        [sys.executable, "-m", "sandbox", "--host", HOST, "--port", str(port), "--data-dir", str(paths.sandbox_data)],
        log=paths.sandbox_log,
        new_session=True,
    )
    url = f"http://{HOST}:{port}/dicomweb"
    try:
        wait_until(lambda: sandbox_answers(url, account), process, what="the sandbox", log=paths.sandbox_log,
                   timeout=SANDBOX_START_TIMEOUT)
    except BaseException:
        stop_process(process)
        raise
    paths.sandbox_state.write_text(json.dumps({"pid": process.pid, "port": port}), encoding="utf-8")
    return RunningProcess(url=url, process=process, pid=process.pid)


def start_prefect_server(paths: DemoPaths) -> RunningProcess:
    """``prefect server start`` on this PREFECT_HOME (or the one already answering on the UI port).

    The server keeps every ``PREFECT_`` setting (its database URL, its
    ``PREFECT_SERVER_ENCRYPTION_KEY``) but not the demo's own secrets, nor the
    demo's quiet console level (its log file should say everything).
    """
    url = f"http://{HOST}:{UI_PORT}"
    if answers_ok(f"{url}/api/health"):
        return RunningProcess(url=url, process=None)
    if not port_is_free(UI_PORT):
        raise RuntimeError(f"port {UI_PORT} is in use by something that is not a Prefect server")
    paths.root.mkdir(parents=True, exist_ok=True)
    process = start_process(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", HOST, "--port", str(UI_PORT)],
        log=paths.server_log,
        env={"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": None},
        keep_prefixes=("PREFECT_",),
        new_session=True,
    )
    try:
        wait_until(lambda: answers_ok(f"{url}/api/health"), process, what="the Prefect server", log=paths.server_log,
                   timeout=SERVER_START_TIMEOUT)
    except BaseException:
        stop_process(process)
        raise
    return RunningProcess(url=url, process=process, pid=process.pid)
