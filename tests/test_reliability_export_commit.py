"""Issue 18.3: kill -9 at every step of a day's commit; the next run of any day finishes it.

A child process exports a new generation of one day over an old one and
kills itself (SIGKILL) at a chosen commit step (``parquet_writer.COMMIT_STEP_HOOK``).
Then: every partition is wholly old or wholly new (never a mixture of files),
an interrupted commit is listed by ``pending_commits``, and the next export of
*another* day rolls it forward, so all four tables show the new generation.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from flows import parquet_writer
from flows.parquet_writer import Destination, PartitionSet

REPO = Path(__file__).resolve().parents[1]

DAY = dt.date(2026, 3, 14)
NEXT_DAY = DAY + dt.timedelta(days=1)
TABLES = ("orders", "studies", "series", "tags")
OLD_ROWS, NEW_ROWS = 12, 13

CHILD = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys, types
    import pyarrow as pa
    # The writer alone, without flows/__init__ (which imports Prefect: seconds per child on a busy machine).
    package = types.ModuleType("flows")
    package.__path__ = [os.path.join(os.getcwd(), "flows")]
    sys.modules["flows"] = package
    from flows import parquet_writer
    from flows.parquet_writer import Destination, PartitionSet

    root, run_id, day, rows, kill_at = sys.argv[1:6]
    schema = pa.schema([("id", pa.int64()), ("generation", pa.string())])
    tables = ("orders", "studies", "series", "tags")

    def hook(step):
        print(step, flush=True)
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    parquet_writer.COMMIT_STEP_HOOK = hook
    with PartitionSet(Destination(root), {t: schema for t in tables}, dt.date.fromisoformat(day), run_id) as parts:
        for table in tables:
            parts.write(table, [{"id": i, "generation": run_id} for i in range(int(rows))])
        parts.commit({"window": day})
    """
)


SCHEMA = pa.schema([("id", pa.int64()), ("generation", pa.string())])


def run_child(root: Path, run_id: str, day: dt.date, rows: int, kill_at: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(root), run_id, day.isoformat(), str(rows), kill_at],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )


def export_here(root: Path, run_id: str, day: dt.date, rows: int) -> None:
    """An export run in this process (the old generation, or the next night's run)."""
    with PartitionSet(Destination(str(root)), {t: SCHEMA for t in TABLES}, day, run_id) as parts:
        for table in TABLES:
            parts.write(table, [{"id": i, "generation": run_id} for i in range(rows)])
        parts.commit({"window": day.isoformat()})


def generations(root: Path, day: dt.date) -> dict[str, set[str]]:
    """Per table, the generations (run ids) a plain Hive reader sees in the day's partition."""
    seen: dict[str, set[str]] = {}
    for table in TABLES:
        if not list(root.glob(f"{table}/*/*.parquet")):
            seen[table] = set()
            continue
        rows = duckdb.sql(
            f"SELECT DISTINCT generation FROM read_parquet('{root}/{table}/*/*.parquet', hive_partitioning=true) "
            f"WHERE export_date = DATE '{day.isoformat()}'"
        ).fetchall()
        seen[table] = {r[0] for r in rows}
    return seen


STEPS = [
    "journal-written",  # nothing swapped yet
    "trashed:studies",  # orders new, studies partition missing (old one in the trash), series/tags old
    "swapped:series",  # orders..series new, tags old
    "manifest:orders",  # all swapped, manifests half written
    "journal-removed",  # committed, trash not yet deleted
]


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", STEPS)
def test_kill_at_the_commit_step_is_repaired_by_the_next_run_of_another_day(tmp_path, kill_at):
    root = tmp_path / "export"
    export_here(root, "old", DAY, OLD_ROWS)

    killed = run_child(root, "new", DAY, NEW_ROWS, kill_at)

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout.splitlines()[-1] == kill_at
    destination = Destination(str(root))
    seen = generations(root, DAY)
    for table, runs in seen.items():
        # Inside the swap window one partition may be briefly absent (its old one in the trash), never mixed.
        allowed = ({"old"}, {"new"}, set()) if kill_at == f"trashed:{table}" else ({"old"}, {"new"})
        assert runs in allowed, f"{table} partition shows generations {runs}"
    if kill_at == "journal-removed":
        assert parquet_writer.pending_commits(destination) == []
    else:
        assert parquet_writer.pending_commits(destination) == [DAY]

    export_here(root, "later", NEXT_DAY, 1)

    assert parquet_writer.pending_commits(destination) == []
    assert generations(root, DAY) == {table: {"new"} for table in TABLES}
    for table in TABLES:
        manifest = destination.read_manifest(table, DAY)
        assert manifest["run_id"] == "new" and manifest["rows"] == NEW_ROWS
        assert sorted(p.name for p in (root / table / f"export_date={DAY}").iterdir()) == manifest["files"]
        count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{root}/{table}/*/*.parquet', hive_partitioning=true) "
                           f"WHERE export_date = DATE '{DAY}'").fetchall()[0][0]
        assert count == NEW_ROWS
    assert not any((root / "_staging").iterdir()) if (root / "_staging").exists() else True
    assert not any((root / "_trash").iterdir()) if (root / "_trash").exists() else True


def test_repair_on_demand_finishes_an_interrupted_commit(tmp_path):
    root = tmp_path / "export"
    export_here(root, "old", DAY, OLD_ROWS)
    assert run_child(root, "new", DAY, NEW_ROWS, "swapped:studies").returncode == -signal.SIGKILL
    destination = Destination(str(root))
    assert generations(root, DAY)["series"] == {"old"}

    assert parquet_writer.repair_interrupted_commits(destination) == [DAY]

    assert generations(root, DAY) == {table: {"new"} for table in TABLES}
    assert parquet_writer.repair_interrupted_commits(destination) == []


def test_kill_before_the_commit_point_keeps_the_old_day_whole(tmp_path):
    """Killed while staging: no journal, the committed day is untouched, the staging is not visible."""
    root = tmp_path / "export"
    export_here(root, "old", DAY, OLD_ROWS)
    staged_only = CHILD.replace("parts.commit(", "os.kill(os.getpid(), signal.SIGKILL); parts.commit(")
    killed = subprocess.run([sys.executable, "-c", staged_only, str(root), "new", DAY.isoformat(), "5", ""],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL
    assert parquet_writer.pending_commits(Destination(str(root))) == []
    assert generations(root, DAY) == {table: {"old"} for table in TABLES}
