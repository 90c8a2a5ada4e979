"""What the demo prints: one progress line per step, then what came out and where it is.

Rendering only; the steps are in ``deployments/demo.py``. The flows return
typed reports or plain dicts (a Failed run's report comes from its error), so
values are read with :func:`field`, which accepts both.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployments.demo_servers import UI_PORT, DemoPaths, RunningProcess

if TYPE_CHECKING:
    from rich.console import Console


def field(value: Any, *names: str, default: Any = None) -> Any:
    """``value.name`` or ``value[name]`` for the first name present: the flows return models or dicts."""
    for name in names:
        if isinstance(value, dict) and name in value:
            return value[name]
        if hasattr(value, name):
            return getattr(value, name)
    return default


@contextlib.contextmanager
def step(console: Console, title: str) -> Iterator[dict[str, str]]:
    """One line of progress: a spinner while the step runs, then a tick, its time and a short result."""
    outcome: dict[str, str] = {"detail": "", "style": "green", "mark": "✓"}
    began = time.monotonic()
    with console.status(f"[bold]{title}[/bold] …", spinner="dots"):
        yield outcome
    seconds = time.monotonic() - began
    detail = f" — {outcome['detail']}" if outcome["detail"] else ""
    console.print(f"[{outcome['style']}]{outcome['mark']}[/{outcome['style']}] {title}{detail} [dim]({seconds:.1f} s)[/dim]")


def mark(outcome: dict[str, str], state: Any) -> None:
    """Show a run that did not complete as a warning on its step's line."""
    if not state.is_completed():
        outcome.update(style="yellow", mark="!")
        outcome["detail"] += f" [yellow](run {state.name})[/yellow]"


def counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in counts.items() if value) or "nothing to do"


def _upload_counts(upload: Any) -> dict[str, int]:
    return dict(field(upload, "counts", default={}) or {})


def upload_line(upload: Any) -> str:
    return counts_line(_upload_counts(upload))


def export_line(export: Any) -> str:
    rows = field(export, "rows", default={}) or {}
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


def server_runs_page() -> str:
    """The runs page of the Prefect server ``PREFECT_API_URL`` names, for a person to open.

    Its UI's address (``PREFECT_UI_URL``, which Prefect derives from the API's by
    dropping ``/api``, or sets for Prefect Cloud), not the API's, which a
    browser shows as JSON; the API's address only when no UI address is known.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    ui_url = PREFECT_UI_URL.value()
    return f"{ui_url.rstrip('/')}/runs" if ui_url else str(PREFECT_API_URL.value())


def summary(
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
    links = [str(link) for link in (field(upload, "share_urls", default=[]) or [])]  # the links made
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
    line(f"[bold]Parquet export[/bold] ({export_line(export)}):")
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
    line(f"[bold]Reassignment of the CT orders:[/bold] {counts_line(field(reassignment, 'counts', default={}))}")

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
        line(f"[bold]See them in the Prefect UI:[/bold] {server_runs_page()}")
    else:
        home = PREFECT_HOME.value()
        prefix = f"PREFECT_HOME={home} " if "PREFECT_HOME" in os.environ else ""
        line(f"[bold]See them in the Prefect UI[/bold] (they are kept in {home}/prefect.db):")
        line(f"  {prefix}{_command('prefect')} server start")
        line(f"  then open http://127.0.0.1:{UI_PORT}/runs   (or run the demo with --ui)")
