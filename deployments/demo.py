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

The steps are here; the children it starts are ``deployments/demo_servers.py``
and what it prints is ``deployments/demo_report.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import getpass
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployments.demo_report import counts_line, export_line, field, mark, step, summary, upload_line
from deployments.demo_servers import (
    DEFAULT_PORT,
    UI_PORT,
    DemoPaths,
    RunningProcess,
    sandbox_account,
    start_prefect_server,
    start_sandbox,
)
from deployments.prefect_dual import synchronous_result
from deployments.processes import free_port, port_is_free, secrets_withheld, stop_process

if TYPE_CHECKING:
    from pydantic import SecretStr
    from rich.console import Console

__all__ = ["SHARE_PASSWORD_ENV", "free_port", "main", "port_is_free"]

BLOCK_NAME = "sandbox-demo"
FOLDER_NAME = "Demo upload"
SHARE_DAYS = 30
SHARE_PASSWORD_ENV = "POSTDICOM_SHARE_PASSWORD"
RUN_TAGS = ("postdicom", "demo")
"""Tags on the demo's flow and task runs, so the UI's tag filter tells them from real work."""
EPHEMERAL_STARTUP_SECONDS = 180
"""How long the demo waits for Prefect's ephemeral API server to answer (see :func:`_quiet_prefect_console`)."""


def _quiet_prefect_console(verbose: bool) -> None:
    """Keep Prefect's console lines out of the progress display; the API still receives every log.

    Must run before Prefect configures logging (its first import): the console
    handler's level is read from the environment at that moment. Also gives
    Prefect's ephemeral API server :data:`EPHEMERAL_STARTUP_SECONDS` to start
    instead of Prefect's 20 (``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``
    set by the user wins): on a busy two-core machine its first start, which
    creates the database, took 20 to 60 s and the demo stopped with a timeout.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_SECONDS))
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")


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
        share_password = _share_password(args.share_password)
        with secrets_withheld():
            return _run(args, paths, console, share_password, started)
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


def _share_password(wanted: bool) -> SecretStr | None:
    """The share password, from the environment or a prompt; kept a ``SecretStr`` from the first moment."""
    from pydantic import SecretStr

    if not wanted:
        return None
    value = os.environ.get(SHARE_PASSWORD_ENV) or getpass.getpass("Share password: ")
    if not value:
        raise RuntimeError(f"--share-password needs a password (set {SHARE_PASSWORD_ENV} or type one)")
    return SecretStr(value)


def _run(
    args: argparse.Namespace,
    paths: DemoPaths,
    console: Console,
    share_password: SecretStr | None,
    started: list[subprocess.Popen[bytes]],
) -> int:
    """The demo's steps in order; ``started`` collects the children ``main`` must stop at the end.

    Runs with secrets out of ``os.environ`` (``main`` withholds them), so
    that no child, not even Prefect's ephemeral API server, inherits them.
    """
    console.rule("[bold]postdicom-flows demo[/bold]")
    with step(console, "Reading the sandbox's demo account") as outcome:
        account = sandbox_account()
        outcome["detail"] = account.email

    with step(console, "Starting the PostDICOM sandbox") as outcome:
        sandbox = start_sandbox(paths, account, args.port)
        if sandbox.owned and not args.keep_running:
            assert sandbox.process is not None
            started.append(sandbox.process)
        outcome["detail"] = f"{sandbox.url} ({'started' if sandbox.owned else 'already running'}, data in {paths.sandbox_data})"

    ui: RunningProcess | None = None
    settings_stack = contextlib.ExitStack()
    with settings_stack:
        if args.ui:
            with step(console, "Starting the Prefect server and UI") as outcome:
                ui = start_prefect_server(paths)
                outcome["detail"] = ui.url if ui.owned else f"{ui.url} (already running)"
                if ui.owned:
                    assert ui.process is not None
                    started.append(ui.process)
                from prefect.settings import PREFECT_API_URL, temporary_settings

                settings_stack.enter_context(temporary_settings(updates={PREFECT_API_URL: f"{ui.url}/api"}))

        with step(console, "Connecting to Prefect (the first time it creates its database) and saving the block") as outcome:
            from blocks import PostDicomCredentials

            credentials = PostDicomCredentials(username=account.email, password=account.password, web_address=sandbox.url)
            credentials.save(BLOCK_NAME, overwrite=True)
            credentials = synchronous_result(PostDicomCredentials.load(BLOCK_NAME))
            outcome["detail"] = f"block postdicom-credentials/{BLOCK_NAME}"

        with step(console, "Writing synthetic studies") as outcome:
            files, _ = ensure_disk(paths)
            dates = study_dates(files)
            outcome["detail"] = f"{len(files)} files in {paths.disk}"
        window = (min(dates), max(dates)) if dates else (dt.date.today() - dt.timedelta(days=1),) * 2

        from prefect import tags

        from flows import batch_reassignment, bulk_upload_and_share, nightly_order_export

        settings_stack.enter_context(tags(*RUN_TAGS))
        runs: list[tuple[str, str, str, str]] = []
        with step(console, "Uploading and sharing (flow bulk-upload-and-share)") as outcome:
            state, upload = run_flow(
                bulk_upload_and_share,
                credentials=credentials,
                directory=str(paths.disk),
                expire_date=dt.date.today() + dt.timedelta(days=SHARE_DAYS),
                share_password=share_password,
                folder_name=FOLDER_NAME,
            )
            runs.append((bulk_upload_and_share.name, *flow_run_name(state), state.name))
            outcome["detail"] = upload_line(upload)
            mark(outcome, state)

        with step(console, "Exporting to Parquet (flow nightly-order-export)") as outcome:
            state, export = run_flow(
                nightly_order_export,
                credentials=credentials,
                destination=str(paths.export),
                study_date_from=window[0],
                study_date_to=window[1],
            )
            runs.append((nightly_order_export.name, *flow_run_name(state), state.name))
            outcome["detail"] = export_line(export)
            mark(outcome, state)

        with step(console, f"Assigning the CT orders to {account.radiologist_name} (flow batch-reassignment)") as outcome:
            state, reassignment = run_flow(
                batch_reassignment,
                credentials=credentials,
                modality_list=["CT"],
                study_date_from=window[0],
                study_date_to=window[1],
                assigned_user_uuid=account.radiologist_uuid,
            )
            runs.append((batch_reassignment.name, *flow_run_name(state), state.name))
            outcome["detail"] = counts_line(field(reassignment, "counts", default={}))
            mark(outcome, state)

        summary(console, args, paths, sandbox, ui, upload, export, reassignment, runs)
        if ui is not None:
            console.print(f"\n[bold]The Prefect UI is at {ui.url}[/bold] — press Ctrl-C to stop.")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    return 0
