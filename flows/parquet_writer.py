"""Atomic, idempotent writing of Hive partitions (``<table>/export_date=YYYY-MM-DD/``).

Analysts point DuckDB, Polars and pandas at ``<dest>/<table>/*/*.parquet``
every morning; the export must never show them half a night, two nights at
once, or a crashed run's leftovers. So a partition is written aside and
swapped in whole:

1. Rows stream into ``<dest>/_staging/<run>/<table>/export_date=D/`` (memory
   stays bounded: record batches are buffered up to ``row_group_rows`` and
   written as one row group with ``pyarrow.parquet.ParquetWriter``; see
   :class:`flows.staged_partition.PartitionWriter`; the tables of a day share
   one bound on what they buffer, ``buffer_bytes``).
2. Commit point: once every table of the day is staged, a commit journal
   ``<dest>/_commits/export_date=D.json`` (run, tables, files, manifests) is
   written in one step (``os.replace`` of a temp file; one PUT on object
   stores). From then on the day *is* committed: whatever happens, it is
   rolled forward, never half-kept.
3. Roll forward, one table after another: locally ``rename(final →
   _trash/<run>/...)`` and ``rename(staging → final)``; each table's manifest
   ``<dest>/_manifests/<table>/export_date=D.json`` is written; the journal is
   deleted last, then the trash. Every step is idempotent.
4. Repair: every writer (:class:`PartitionSet`, i.e. every export run, whatever
   days it writes) first replays every journal it finds under ``_commits/``,
   so a commit cut short by kill -9 or a power cut is finished by the next run
   of *any* day. :func:`repair_interrupted_commits` does the same on demand.
   Commits and repairs of one local destination take an exclusive ``flock`` on
   ``_commits/.lock`` (released by the kernel if the process dies), so a
   repair never races a live commit.

What readers see. A plain Hive reader (DuckDB, Polars, pandas globbing
``<table>/*/*.parquet``) sees each partition old or new, never a mixture of
files. Across the four tables, the swap of step 3 takes a few renames
(milliseconds); a reader that reads the tables one after another exactly then,
or after a crash inside that window and before the next run repaired it, may
see one table newer than another. A reader that must be exact checks that no
journal for its days exists before and after reading (:func:`pending_commits`;
``ls <dest>/_commits``) and reads again, or calls
:func:`repair_interrupted_commits` (needs write access), when one does.

Why the staging, trash, journals and manifests live *outside* ``<table>/``:
measured with DuckDB 1.x and Polars 1.x, a glob such as ``orders/*/*.parquet``
also matches ``orders/.tmp-x/part.parquet`` and ``orders/_tmp/part.parquet``
(then fails on the mismatched Hive key), and Polars refuses a directory that
holds a ``.json`` beside the ``.parquet`` files. Only pyarrow (hence pandas)
skips ``.``/``_`` prefixes. Nothing but partitions and part files therefore
lives under a table directory.

Object stores (``s3://``, ``gs://``, ``memory://``, any non-local fsspec
filesystem) have no atomic directory rename. There the roll forward moves the
new part files (with the run in their names) next to the old ones, writes the
table's manifest listing only the new files (one object PUT, atomic), then
deletes the files it does not list. Between the move and the delete a glob
reader may briefly see both generations; a crash in that window is repaired by
the journal replay. Manifest-aware readers never see a mixture of files. Object
stores have no lock: two runs exporting the same day to the same bucket at the
same instant are not supported.

A crash before the journal is written leaves only staging, which readers never
see and which is deleted once stale
(:data:`flows.staged_partition.STALE_STAGING_SECONDS`).

Where the code is: this module commits a day (:class:`PartitionSet`, the
journal, roll forward and repair); :mod:`flows.staged_partition` writes one
table's staged files (step 1); :mod:`flows.export_destination` knows the
layout, writes JSON objects in one step, holds the lock and lists a
partition's committed files for manifest-aware readers.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .export_destination import JOURNAL_DIR, STAGING_DIR, TRASH_DIR, Destination, children
from .export_schema import PARTITION_COLUMN, SCHEMA_VERSION
from .staged_partition import DEFAULT_BUFFER_BYTES, DEFAULT_ROW_GROUP_BYTES, DEFAULT_ROW_GROUP_ROWS, PartitionWriter


def _no_hook(step: str) -> None:
    return None


COMMIT_STEP_HOOK: Callable[[str], None] = _no_hook
"""Called at each step of a commit (``journal-written``, ``trashed:<table>``, ``swapped:<table>``,
``manifest:<table>``, ``journal-removed``). Tests set it in a child process to kill it exactly there."""


def _step(step: str) -> None:
    COMMIT_STEP_HOOK(step)


def _swap_in(destination: Destination, run_id: str, table: str, export_date: dt.date, files: Sequence[str]) -> None:
    """Put one table's staged partition in place. Idempotent: a replay after a crash at any point finishes it."""
    final = destination.partition_dir(table, export_date)
    staging = destination.staging_dir(run_id, table, export_date)
    if not destination.is_local:
        destination.fs.makedirs(final, exist_ok=True)
        for name in files:
            source = posixpath.join(staging, name)
            if destination.exists(source):
                destination.fs.mv(source, posixpath.join(final, name))
        _step(f"swapped:{table}")
        return
    if not os.path.exists(staging):
        return
    trash = destination.trash_dir(run_id, table, export_date)
    moved_old = os.path.exists(final)
    if moved_old:
        destination.remove_tree(trash)
        os.makedirs(posixpath.dirname(trash), exist_ok=True)
        os.rename(final, trash)
        _step(f"trashed:{table}")
    os.makedirs(posixpath.dirname(final), exist_ok=True)
    try:
        os.rename(staging, final)
    except BaseException:
        if moved_old:
            os.rename(trash, final)
        raise
    _step(f"swapped:{table}")


def _write_manifest(destination: Destination, table: str, export_date: dt.date, body: Mapping[str, Any]) -> None:
    """The table's manifest, then (object stores) the deletion of every file it does not list."""
    destination.write_manifest(table, export_date, body)
    _step(f"manifest:{table}")
    if not destination.is_local:
        keep = set(body["files"])
        for path in children(destination, destination.partition_dir(table, export_date)):
            if posixpath.basename(path) not in keep:
                destination.fs.rm(path)


def _remove_empty(destination: Destination, path: str) -> None:
    """Remove a run's staging/trash folder once nothing is left in it (other runs may share the parent)."""
    if not destination.exists(path):
        return
    for child in children(destination, path):
        _remove_empty(destination, child)
    if destination.fs.isdir(path) and not children(destination, path):
        destination.remove_tree(path)


def _roll_forward(destination: Destination, journal: Mapping[str, Any]) -> None:
    """Finish a journalled commit from whatever state it reached: swap every table, write every manifest,
    delete the journal, then the superseded generation. Caller holds :meth:`Destination.commit_lock`."""
    run_id = journal["run_id"]
    export_date = dt.date.fromisoformat(journal[PARTITION_COLUMN])
    tables: Mapping[str, Mapping[str, Any]] = journal["tables"]
    for table, entry in tables.items():
        _swap_in(destination, run_id, table, export_date, entry["manifest"]["files"])
    for table, entry in tables.items():
        _write_manifest(destination, table, export_date, entry["manifest"])
    for table in tables:
        destination.remove_tree(destination.staging_dir(run_id, table, export_date))
    _remove_empty(destination, destination.path(STAGING_DIR, run_id))
    destination.fs.rm(destination.journal_path(export_date))
    _step("journal-removed")
    for table in tables:
        destination.remove_tree(destination.trash_dir(run_id, table, export_date))
    _remove_empty(destination, destination.path(TRASH_DIR, run_id))


def pending_commits(destination: Destination) -> list[dt.date]:
    """Days whose commit is under way or was cut short (a journal exists): their tables may differ until repaired."""
    days = []
    for path in children(destination, destination.path(JOURNAL_DIR)):
        name = posixpath.basename(path)
        prefix = f"{PARTITION_COLUMN}="
        if name.startswith(prefix) and name.endswith(".json"):
            days.append(dt.date.fromisoformat(name[len(prefix):-len(".json")]))
    return sorted(days)


def _sweep_trash(destination: Destination) -> None:
    """After the journals are replayed, what is left in ``_trash`` is superseded (the partition is in place:
    delete it) or the only copy of a partition (a crash of a version without journals: put it back)."""
    for run_dir in children(destination, destination.path(TRASH_DIR)):
        for table_dir in children(destination, run_dir):
            for trashed in children(destination, table_dir):
                final = destination.path(posixpath.basename(table_dir), posixpath.basename(trashed))
                if destination.is_local and not destination.exists(final):
                    os.rename(trashed, final)
                else:
                    destination.remove_tree(trashed)
        _remove_empty(destination, run_dir)


def _repair_locked(destination: Destination) -> list[dt.date]:
    repaired = []
    for export_date in pending_commits(destination):
        journal = destination.read_json(destination.journal_path(export_date))
        if journal is not None:
            _roll_forward(destination, journal)
            repaired.append(export_date)
    _sweep_trash(destination)
    return repaired


def repair_interrupted_commits(destination: Destination) -> list[dt.date]:
    """Finish every commit a crashed run left half done (any day); returns the days repaired.

    Every :class:`PartitionSet` calls this first, so any export run repairs
    the destination; call it directly (e.g. from a reader with write access)
    to repair without exporting.
    """
    with destination.commit_lock():
        return _repair_locked(destination)


@dataclass
class CommittedPartition:
    """What one committed partition holds (also what its manifest says)."""

    table: str
    export_date: dt.date
    rows: int
    files: list[str]
    path: str


@dataclass
class PartitionSet:
    """The partitions of several tables for one date, committed together.

    Used as a context manager: entering it first finishes any commit a crashed
    run left half done (any day); leaving it with an exception before the
    commit point discards every staged file (the committed partitions stay as
    they were); :meth:`commit` writes the day's journal, swaps every table in,
    writes their manifests and deletes the journal. Killed after the journal
    was written, the staged files stay for the next run to roll forward.
    """

    destination: Destination
    schemas: Mapping[str, pa.Schema]
    export_date: dt.date
    run_id: str
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS
    row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    """Arrow data the tables buffer together: past it, the table buffering most writes a row group."""
    memory_pool: pa.MemoryPool | None = None
    """Where the writers put row groups together (Arrow's default pool when None)."""
    writers: dict[str, PartitionWriter] = field(init=False, default_factory=dict)
    committed: list[CommittedPartition] = field(init=False, default_factory=list)
    repaired: list[dt.date] = field(init=False, default_factory=list)
    """Days whose interrupted commit (another run's crash) this set finished before writing."""
    _journal_open: bool = field(init=False, default=False)

    def __enter__(self) -> PartitionSet:
        with self.destination.commit_lock():
            self.repaired = _repair_locked(self.destination)
            for name, schema in self.schemas.items():
                self.writers[name] = PartitionWriter(
                    self.destination, name, schema, self.export_date, self.run_id,
                    row_group_rows=self.row_group_rows, row_group_bytes=self.row_group_bytes,
                    memory_pool=self.memory_pool,
                )
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self._journal_open:
            return
        if exc_type is not None or not self.committed:
            for writer in self.writers.values():
                writer.discard()
                if not self.destination.is_local:
                    self._unmove_object_store(writer)
        self._cleanup()

    def write(self, table: str, data: pa.RecordBatch | pa.Table | Sequence[Mapping[str, Any]]) -> None:
        """Append rows to ``table``; then, while the tables buffer more than ``buffer_bytes`` together, the
        largest buffer is written as a row group (each table alone stays under ``row_group_bytes``)."""
        self.writers[table].write(data)
        while self.buffered_bytes > self.buffer_bytes:
            max(self.writers.values(), key=lambda writer: writer.buffered_bytes).flush()

    @property
    def buffered_bytes(self) -> int:
        """Arrow data the tables hold, not yet written: at most ``buffer_bytes`` between calls."""
        return sum(writer.buffered_bytes for writer in self.writers.values())

    def commit(self, manifest: Mapping[str, Any] | None = None) -> list[CommittedPartition]:
        """Write the day's journal (the commit point), then swap every table in and write their manifests."""
        for writer in self.writers.values():
            writer.finish()
        written_at = dt.datetime.now(dt.UTC).isoformat()
        bodies = {
            writer.table: {
                **(manifest or {}),
                "table": writer.table,
                PARTITION_COLUMN: self.export_date.isoformat(),
                "rows": writer.rows,
                "files": list(writer.files),
                "schema_version": SCHEMA_VERSION,
                "run_id": self.run_id,
                "written_at": written_at,
            }
            for writer in self.writers.values()
        }
        journal = {
            "run_id": self.run_id,
            PARTITION_COLUMN: self.export_date.isoformat(),
            "tables": {table: {"manifest": body} for table, body in bodies.items()},
        }
        with self.destination.commit_lock():
            _repair_locked(self.destination)
            self.destination.write_json(self.destination.journal_path(self.export_date), journal)
            self._journal_open = True
            _step("journal-written")
            self._swap_all_or_none()
            _roll_forward(self.destination, journal)
            self._journal_open = False
        for writer in self.writers.values():
            self.committed.append(CommittedPartition(
                writer.table, self.export_date, writer.rows, list(writer.files),
                self.destination.partition_dir(writer.table, self.export_date),
            ))
        return self.committed

    def _swap_all_or_none(self) -> None:
        """Swap every table in; if one fails in this process, put the swapped ones back and drop the journal."""
        done: list[PartitionWriter] = []
        try:
            for writer in self.writers.values():
                _swap_in(self.destination, self.run_id, writer.table, self.export_date, writer.files)
                done.append(writer)
        except BaseException:
            if self.destination.is_local:
                for writer in reversed(done):
                    self._undo_local(writer)
            self.destination.fs.rm(self.destination.journal_path(self.export_date))
            self._journal_open = False
            raise

    def _undo_local(self, writer: PartitionWriter) -> None:
        """Put the previous partition back after a later table's swap failed."""
        final = self.destination.partition_dir(writer.table, self.export_date)
        trash = self.destination.trash_dir(self.run_id, writer.table, self.export_date)
        os.rename(final, writer.staging)
        if os.path.exists(trash):
            os.rename(trash, final)

    def _unmove_object_store(self, writer: PartitionWriter) -> None:
        """A failed commit: delete the files this run moved in unless a manifest already lists them."""
        manifest = self.destination.read_manifest(writer.table, self.export_date)
        listed = set(manifest["files"]) if manifest else set()
        final = self.destination.partition_dir(writer.table, self.export_date)
        for name in writer.files:
            path = posixpath.join(final, name)
            if name not in listed and self.destination.exists(path):
                self.destination.fs.rm(path)

    def _cleanup(self) -> None:
        """Delete the superseded generation (trash) and this run's empty staging."""
        for writer in self.writers.values():
            self.destination.remove_tree(self.destination.trash_dir(self.run_id, writer.table, self.export_date))
            self.destination.remove_tree(writer.staging)
        for top in (STAGING_DIR, TRASH_DIR):
            _remove_empty(self.destination, self.destination.path(top, self.run_id))


def new_run_id() -> str:
    """A run id for files and manifests when no Prefect flow run id is available."""
    return uuid.uuid4().hex

