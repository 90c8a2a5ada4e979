"""``postdicom-flows demo``: the main job, end to end, on the embedded sandbox.

What a new user runs first, so it must work on a fresh machine, offline, with
no Prefect server and no PostDICOM account: it starts the sandbox (a separate
program, as a real PostDICOM would be), saves a ``PostDicomCredentials`` block
for it, writes a disk of synthetic studies, then runs the three flows exactly
as a user would (upload-and-share, the nightly export, a reassignment) and
prints what came out of them.

Runs are recorded in Prefect's database under ``PREFECT_HOME`` (by default
``~/.prefect``, the one ``prefect server start`` opens), so the demo's runs,
task runs, logs and artifacts can be browsed afterwards in the Prefect UI.
Without ``PREFECT_API_URL`` the flows use Prefect's ephemeral API on that
database; ``--ui`` starts a real server first and prints its address.

Running it twice is safe: the studies are generated once (deterministic UIDs)
and uploaded only where missing, the folder and the share are reused by the
flow, the export partition is replaced, the reassignment finds nothing to
change, and the credentials block is overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import importlib.util
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import SecretStr
    from rich.console import Console

BLOCK_NAME = "sandbox-demo"
DEFAULT_PORT = 8765
UI_PORT = 4200
HOST = "127.0.0.1"
FOLDER_NAME = "Demo upload"
SHARE_DAYS = 30
SANDBOX_START_TIMEOUT = 60.0
SERVER_START_TIMEOUT = 120.0
SHARE_PASSWORD_ENV = "POSTDICOM_SHARE_PASSWORD"
RUN_TAGS = ("postdicom", "demo")
"""Tags on the demo's flow and task runs, so the UI's tag filter tells them from real work."""


def _quiet_prefect_console(verbose: bool) -> None:
    """Keep Prefect's console lines out of the progress display; the API still receives every log.

    Must run before Prefect configures logging (its first import): the console
    handler's level is read from the environment at that moment.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")


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


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port nobody listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    except OSError:
        return False
    return True


def sandbox_answers(web_address: str, account: SandboxAccount, timeout: float = 2.0) -> bool:
    """True when the sandbox at ``web_address`` accepts the demo account (a QIDO search answers 200)."""
    import httpx

    try:
        response = httpx.get(
            f"{web_address}/studies", params={"limit": "1"}, auth=(account.email, account.password), timeout=timeout
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _wait_until(check: Callable[[], bool], process: subprocess.Popen[bytes] | None, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see {log}")
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s; see {log}")


def start_sandbox(paths: DemoPaths, account: SandboxAccount, port: int | None) -> RunningProcess:
    """Start the sandbox on ``port`` (or reuse the one a ``--keep-running`` demo left), and wait until it answers.

    The default port stays the same from run to run so that the saved block
    and the share links keep pointing at the right place; a busy port that is
    not our sandbox makes the demo pick a free one (or fail, when the user
    asked for that port).
    """
    if paths.sandbox_state.exists():
        with contextlib.suppress(ValueError, KeyError, OSError):
            state = json.loads(paths.sandbox_state.read_text(encoding="utf-8"))
            url = f"http://{HOST}:{int(state['port'])}/dicomweb"
            if (port in (None, int(state["port"]))) and _pid_alive(int(state["pid"])) and sandbox_answers(url, account):
                return RunningProcess(url=url, process=None, pid=int(state["pid"]))
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()
    elif not port_is_free(port):
        raise RuntimeError(f"port {port} is in use; choose another with --port")
    paths.sandbox_data.mkdir(parents=True, exist_ok=True)
    log = paths.sandbox_log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", HOST, "--port", str(port), "--data-dir", str(paths.sandbox_data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    url = f"http://{HOST}:{port}/dicomweb"
    try:
        _wait_until(lambda: sandbox_answers(url, account), process, SANDBOX_START_TIMEOUT, "the sandbox", paths.sandbox_log)
    except BaseException:
        stop_process(process)
        raise
    paths.sandbox_state.write_text(json.dumps({"pid": process.pid, "port": port}), encoding="utf-8")
    return RunningProcess(url=url, process=process, pid=process.pid)


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Ask a child to stop, then insist.

    SIGTERM rather than SIGINT: uvicorn shuts down just as gracefully on
    either (finishes requests, closes the store), but re-raises the signal it
    caught, and a re-raised SIGINT ends in a KeyboardInterrupt traceback in
    the child's log.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def start_prefect_server(paths: DemoPaths) -> RunningProcess:
    """``prefect server start`` on this PREFECT_HOME (or the one already answering on the UI port)."""
    import httpx

    url = f"http://{HOST}:{UI_PORT}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    if healthy():
        return RunningProcess(url=url, process=None)
    if not port_is_free(UI_PORT):
        raise RuntimeError(f"port {UI_PORT} is in use by something that is not a Prefect server")
    paths.root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)
    log = paths.server_log.open("ab")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", HOST, "--port", str(UI_PORT)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    log.close()
    try:
        _wait_until(healthy, process, SERVER_START_TIMEOUT, "the Prefect server", paths.server_log)
    except BaseException:
        stop_process(process)
        raise
    return RunningProcess(url=url, process=process, pid=process.pid)


def ensure_disk(paths: DemoPaths) -> tuple[list[Path], dt.date]:
    """The synthetic disk, written once; the study date is fixed on the first run and reused after.

    The generator's UIDs are deterministic, but its default study date is
    "yesterday": a disk rewritten on another day would carry a date that the
    sandbox's copies (stored on the first day) do not have, and the export
    window would miss them. Remembering the first date keeps every run alike.
    The record lives beside the disk, not in it: the upload takes every file
    of the folder, and a marker file would be reported as not DICOM.
    """
    from postdicom.synthetic import DEMO_PATIENTS, write_demo_disk

    state: dict[str, Any] = {}
    if paths.state.exists():
        with contextlib.suppress(ValueError, OSError):
            state = json.loads(paths.state.read_text(encoding="utf-8"))
    try:
        study_date = dt.date.fromisoformat(str(state["study_date"]))
    except (KeyError, ValueError):
        study_date = dt.date.today() - dt.timedelta(days=1)
    if not (state.get("disk_written") and paths.disk.is_dir()):
        specs = [dataclasses.replace(spec, study_date=study_date) for spec in DEMO_PATIENTS]
        write_demo_disk(paths.disk, specs)
    paths.state.write_text(json.dumps({"study_date": study_date.isoformat(), "disk_written": True}), encoding="utf-8")
    files = sorted(p for p in paths.disk.rglob("*") if p.is_file())
    return files, study_date


def study_dates(files: Sequence[Path]) -> list[dt.date]:
    """The StudyDate of every readable DICOM file (the export window is built from these)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    dates: set[dt.date] = set()
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyDate"])
        except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError):
            continue
        value = str(getattr(ds, "StudyDate", "") or "")
        with contextlib.suppress(ValueError):
            dates.add(dt.datetime.strptime(value, "%Y%m%d").date())
    return sorted(dates)


def _field(value: Any, *names: str, default: Any = None) -> Any:
    """``value.name`` or ``value[name]`` for the first name present: the flows return models or dicts."""
    for name in names:
        if isinstance(value, dict) and name in value:
            return value[name]
        if hasattr(value, name):
            return getattr(value, name)
    return default


def run_flow(flow_fn: Any, **parameters: Any) -> tuple[Any, Any]:
    """Run a flow to its end and return ``(state, result)``; a Failed run still hands back its report.

    The flows end Failed when some item failed but still carry their full
    report in the raised error's ``report``; the demo shows it either way.
    """
    state = flow_fn(return_state=True, **parameters)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        result = getattr(result, "report", result)
    return state, result


def flow_run_name(state: Any) -> tuple[str, str]:
    """The run's id and name as the UI shows them."""
    from prefect import get_client

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    return str(run_id), run.name


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="postdicom-flows demo",
        description=(
            "Start the local sandbox, then run upload-and-share, the nightly export and a reassignment on "
            "synthetic studies, and print where everything is. Runs are kept in PREFECT_HOME "
            "(default ~/.prefect) for the Prefect UI."
        ),
    )
    parser.add_argument("--data-dir", type=Path, default=Path("demo-data"), help="where the demo writes (default %(default)s)")
    parser.add_argument("--port", type=int, default=None, help=f"sandbox port (default {DEFAULT_PORT}, or a free one)")
    parser.add_argument(
        "--share-password",
        action="store_true",
        help=f"protect the share link with a password, read from ${SHARE_PASSWORD_ENV} or asked for (never an argument: ps shows those)",
    )
    parser.add_argument("--keep-running", action="store_true", help="leave the sandbox running at the end (share links keep working)")
    parser.add_argument("--ui", action="store_true", help=f"start the Prefect server and UI on port {UI_PORT} and wait for Ctrl-C at the end")
    parser.add_argument("--verbose", action="store_true", help="show Prefect's own log lines too")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``postdicom-flows demo``."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    _quiet_prefect_console(args.verbose)
    from rich.console import Console

    console = Console()
    paths = DemoPaths(args.data_dir.resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    previous_sigterm = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return _run(args, paths, console, started)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/yellow]")
        return 130
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        console.print(f"[red]Demo stopped:[/red] {exc}")
        return 1
    finally:
        for process in reversed(started):
            stop_process(process)
        signal.signal(signal.SIGTERM, previous_sigterm)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """Treat ``kill`` like Ctrl-C: the children run in their own sessions and would otherwise outlive the demo."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def _step(console: Console, title: str) -> Iterator[dict[str, str]]:
    """One line of progress: a spinner while the step runs, then a tick, its time and a short result."""
    outcome: dict[str, str] = {"detail": "", "style": "green", "mark": "✓"}
    began = time.monotonic()
    with console.status(f"[bold]{title}[/bold] …", spinner="dots"):
        yield outcome
    seconds = time.monotonic() - began
    detail = f" — {outcome['detail']}" if outcome["detail"] else ""
    console.print(f"[{outcome['style']}]{outcome['mark']}[/{outcome['style']}] {title}{detail} [dim]({seconds:.1f} s)[/dim]")


def _share_password(wanted: bool) -> SecretStr | None:
    """The share password, from the environment or a prompt; kept a ``SecretStr`` from the first moment."""
    from pydantic import SecretStr

    if not wanted:
        return None
    value = os.environ.get(SHARE_PASSWORD_ENV) or getpass.getpass("Share password: ")
    if not value:
        raise RuntimeError(f"--share-password needs a password (set {SHARE_PASSWORD_ENV} or type one)")
    return SecretStr(value)


def _run(args: argparse.Namespace, paths: DemoPaths, console: Console, started: list[subprocess.Popen[bytes]]) -> int:
    """The demo's steps in order; ``started`` collects the children ``main`` must stop at the end."""
    share_password = _share_password(args.share_password)
    console.rule("[bold]postdicom-flows demo[/bold]")
    with _step(console, "Reading the sandbox's demo account") as step:
        account = sandbox_account()
        step["detail"] = account.email

    with _step(console, "Starting the PostDICOM sandbox") as step:
        sandbox = start_sandbox(paths, account, args.port)
        if sandbox.owned and not args.keep_running:
            assert sandbox.process is not None
            started.append(sandbox.process)
        step["detail"] = f"{sandbox.url} ({'started' if sandbox.owned else 'already running'}, data in {paths.sandbox_data})"

    ui: RunningProcess | None = None
    settings_stack = contextlib.ExitStack()
    with settings_stack:
        if args.ui:
            with _step(console, "Starting the Prefect server and UI") as step:
                ui = start_prefect_server(paths)
                step["detail"] = ui.url if ui.owned else f"{ui.url} (already running)"
                if ui.owned:
                    assert ui.process is not None
                    started.append(ui.process)
                from prefect.settings import PREFECT_API_URL, temporary_settings

                settings_stack.enter_context(temporary_settings(updates={PREFECT_API_URL: f"{ui.url}/api"}))

        with _step(console, "Connecting to Prefect (the first time it creates its database) and saving the block") as step:
            from blocks import PostDicomCredentials

            credentials = PostDicomCredentials(username=account.email, password=account.password, web_address=sandbox.url)
            credentials.save(BLOCK_NAME, overwrite=True)
            credentials = PostDicomCredentials.load(BLOCK_NAME)
            step["detail"] = f"block postdicom-credentials/{BLOCK_NAME}"

        with _step(console, "Writing synthetic studies") as step:
            files, _ = ensure_disk(paths)
            dates = study_dates(files)
            step["detail"] = f"{len(files)} files in {paths.disk}"
        window = (min(dates), max(dates)) if dates else (dt.date.today() - dt.timedelta(days=1),) * 2

        from prefect import tags

        from flows import batch_reassignment, bulk_upload_and_share, nightly_order_export

        settings_stack.enter_context(tags(*RUN_TAGS))
        runs: list[tuple[str, str, str, str]] = []
        with _step(console, "Uploading and sharing (flow bulk-upload-and-share)") as step:
            state, upload = run_flow(
                bulk_upload_and_share,
                credentials=credentials,
                directory=str(paths.disk),
                expire_date=dt.date.today() + dt.timedelta(days=SHARE_DAYS),
                share_password=share_password,
                folder_name=FOLDER_NAME,
            )
            runs.append((bulk_upload_and_share.name, *flow_run_name(state), state.name))
            step["detail"] = _upload_line(upload)
            _mark(step, state)

        with _step(console, "Exporting to Parquet (flow nightly-order-export)") as step:
            state, export = run_flow(
                nightly_order_export,
                credentials=credentials,
                destination=str(paths.export),
                study_date_from=window[0],
                study_date_to=window[1],
            )
            runs.append((nightly_order_export.name, *flow_run_name(state), state.name))
            step["detail"] = _export_line(export)
            _mark(step, state)

        with _step(console, f"Assigning the CT orders to {account.radiologist_name} (flow batch-reassignment)") as step:
            state, reassignment = run_flow(
                batch_reassignment,
                credentials=credentials,
                modality_list=["CT"],
                study_date_from=window[0],
                study_date_to=window[1],
                assigned_user_uuid=account.radiologist_uuid,
            )
            runs.append((batch_reassignment.name, *flow_run_name(state), state.name))
            step["detail"] = _counts_line(_field(reassignment, "counts", default={}))
            _mark(step, state)

        _summary(console, args, paths, sandbox, ui, upload, export, reassignment, runs)
        if ui is not None:
            console.print(f"\n[bold]The Prefect UI is at {ui.url}[/bold] — press Ctrl-C to stop.")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    return 0


def _mark(step: dict[str, str], state: Any) -> None:
    if not state.is_completed():
        step.update(style="yellow", mark="!")
        step["detail"] += f" [yellow](run {state.name})[/yellow]"


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in counts.items() if value) or "nothing to do"


def _upload_counts(upload: Any) -> dict[str, int]:
    return dict(_field(upload, "counts", default={}) or {})


def _upload_line(upload: Any) -> str:
    return _counts_line(_upload_counts(upload))


def _export_line(export: Any) -> str:
    rows = _field(export, "rows", default={}) or {}
    return ", ".join(f"{n} {table}" for table, n in dict(rows).items()) or "no rows"


def _command(name: str) -> str:
    """How to call a program of the demo's environment from this shell.

    ``make demo`` installs into ``.venv`` without activating it, so ``python``
    or ``prefect`` typed at the prompt may be other programs, or none: give
    the environment's own path (short when under the working directory)
    unless the plain name already finds it.
    """
    executable = Path(sys.executable).with_name(name) if name != "python" else Path(sys.executable)
    found = shutil.which(name)
    if found and Path(found).resolve() == executable.resolve():
        return name
    with contextlib.suppress(ValueError):
        return str(executable.relative_to(Path.cwd()))
    return str(executable)


def _summary(
    console: Console,
    args: argparse.Namespace,
    paths: DemoPaths,
    sandbox: RunningProcess,
    ui: RunningProcess | None,
    upload: Any,
    export: Any,
    reassignment: Any,
    runs: list[tuple[str, str, str, str]],
) -> None:
    """What came out, where it is, and how to look at it.

    Commands are printed without hard line breaks (``soft_wrap``) so they can
    be copied from a narrow terminal and pasted as they are.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME
    from rich.table import Table

    def line(text: str = "") -> None:
        console.print(text, soft_wrap=True, highlight=False)

    console.rule("[bold]What the demo did[/bold]")
    uploaded = Table(title="Upload", title_justify="left", show_edge=False)
    uploaded.add_column("status")
    uploaded.add_column("files", justify="right")
    for status, number in _upload_counts(upload).items():
        uploaded.add_row(status.replace("_", " "), str(number))
    console.print(uploaded)

    line()
    links = [str(_field(share, "share_url", default="")) for share in (_field(upload, "shares", default=[]) or [])]
    protected = " (password protected)" if args.share_password else ""
    line(f"[bold]Share link{'s' if len(links) != 1 else ''}{protected}:[/bold]")
    for link in links or ["(none was created: see the upload run's artifacts)"]:
        line(f"  {link}")
    if sandbox.owned and not args.keep_running:
        port = sandbox.url.rsplit(":", 1)[1].split("/", 1)[0]
        line("[dim]  They open while the sandbox runs: rerun with --keep-running, or start it with[/dim]")
        line(f"[dim]  postdicom-flows sandbox --port {port} --data-dir {paths.sandbox_data}[/dim]")
    else:
        line(f"[dim]  The sandbox keeps running for them (pid {sandbox.pid}); stop it with: kill {sandbox.pid}[/dim]")

    line()
    line(f"[bold]Parquet export[/bold] ({_export_line(export)}):")
    line(f"  {paths.export}/<table>/export_date=YYYY-MM-DD/*.parquet   tables: orders, studies, series, tags")
    orders_glob = f"{paths.export}/orders/*/*.parquet"
    python = _command("python")
    duckdb_missing = "" if importlib.util.find_spec("duckdb") else "  (pip install duckdb)"
    line(f"  DuckDB:{duckdb_missing}")
    line(
        f"    {python} -c \"import duckdb; duckdb.sql(\\\"SELECT patient_name, modality, study_date "
        f"FROM read_parquet('{orders_glob}', hive_partitioning=true)\\\").show()\""
    )
    line("  pandas:")
    line(f"    {python} -c \"import pandas as pd; print(pd.read_parquet('{paths.export}/orders'))\"")

    line()
    line(f"[bold]Reassignment of the CT orders:[/bold] {_counts_line(_field(reassignment, 'counts', default={}))}")

    line()
    run_table = Table(title="Flow runs", title_justify="left", show_edge=False)
    for column in ("flow", "run name", "state"):
        run_table.add_column(column)
    for flow_name, _run_id, name, state_name in runs:
        run_table.add_row(flow_name, name, state_name)
    console.print(run_table)

    line()
    api_url = PREFECT_API_URL.value()
    if ui is not None:
        line(f"[bold]See them in the Prefect UI:[/bold] {ui.url}/runs")
    elif api_url:
        line(f"[bold]See them in the Prefect UI[/bold] of the server at {api_url}")
    else:
        home = PREFECT_HOME.value()
        prefix = f"PREFECT_HOME={home} " if "PREFECT_HOME" in os.environ else ""
        line(f"[bold]See them in the Prefect UI[/bold] (they are kept in {home}/prefect.db):")
        line(f"  {prefix}{_command('prefect')} server start")
        line(f"  then open http://127.0.0.1:{UI_PORT}/runs   (or run the demo with --ui)")
