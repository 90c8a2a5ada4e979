"""A throw-away PostgreSQL cluster for a Prefect server, for the end-to-end test and the benchmarks.

Production runs ``prefect server`` on PostgreSQL; SQLite (Prefect's default)
locks the whole database for every write, which changes what the flows'
Prefect calls cost. Each start is a private cluster of Debian's
``postgresql`` in a folder of its own, on a free port, with trust
authentication on loopback only and ``fsync`` off (nothing in it outlives the
run). The test fixture is in ``tests/test_production_e2e.py``; the benchmarks
(``python -m benchmarks flows --prefect-server --prefect-database postgresql``)
call :func:`private_postgres` themselves.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deployments.processes import HOST, free_port, log_tail

COMMAND_TIMEOUT = 180
"""Seconds initdb, pg_ctl and createdb may take (a loaded machine)."""


def postgres_bin() -> Path:
    """Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``), the newest version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
        "apt-get install postgresql, as .ci/run does"
    )


def _as_cluster_owner(command: list[str]) -> list[str]:
    """initdb refuses root: as root, run the cluster as Debian's ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    if done.returncode != 0:
        tail = f"\n{log_tail(log)}" if log else ""
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}{tail}")


@contextlib.contextmanager
def private_postgres(prefix: str = "pdf-pg-") -> Iterator[str]:
    """A private PostgreSQL cluster on a free port with an empty ``prefect`` database; yields its Prefect URL.

    The URL (``postgresql+asyncpg://postgres@127.0.0.1:PORT/prefect``) is
    what ``PREFECT_API_DATABASE_CONNECTION_URL`` takes. The cluster is stopped
    and its folder removed afterwards.

    Raises
    ------
    RuntimeError
        PostgreSQL is not installed, or the cluster could not be created or started (with its log).
    """
    bin_dir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix=prefix))
    data = root / "data"
    log = root / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    try:
        _run(_as_cluster_owner([str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                                "-E", "UTF8", "--locale=C", "--no-sync"]), "initdb")
        options = f"-p {port} -k {root} -c listen_addresses={HOST} -c fsync=off -c max_connections=200"
        _run(_as_cluster_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
                                "-t", "120", "start"]), "pg_ctl start", log)
        try:
            _run([str(bin_dir / "createdb"), "-h", HOST, "-p", str(port), "-U", "postgres", "prefect"], "createdb")
            yield f"postgresql+asyncpg://postgres@{HOST}:{port}/prefect"
        finally:
            subprocess.run(_as_cluster_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
