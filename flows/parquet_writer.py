"""Atomic, idempotent writing of Hive partitions (``<table>/export_date=YYYY-MM-DD/``).

Analysts point DuckDB, Polars and pandas at ``<dest>/<table>/*/*.parquet``
every morning; the export must never show them half a night, two nights at
once, or a crashed run's leftovers. So a partition is written aside and
swapped in whole:

1. Rows stream into ``<dest>/_staging/<run>/<table>/export_date=D/`` (memory
   stays bounded: record batches are buffered up to ``row_group_rows`` and
   written as one row group with ``pyarrow.parquet.ParquetWriter``).
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
see and which is deleted once stale (:data:`STALE_STAGING_SECONDS`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from .export_schema import PARTITION_COLUMN, SCHEMA_VERSION

STAGING_DIR = "_staging"
TRASH_DIR = "_trash"
MANIFEST_DIR = "_manifests"
JOURNAL_DIR = "_commits"
LOCK_NAME = ".lock"
STALE_STAGING_SECONDS = 6 * 3600
"""Another run's staging older than this is a crash's leftover and is removed; younger ones may be live."""
DEFAULT_ROW_GROUP_ROWS = 64_000
DEFAULT_ROW_GROUP_BYTES = 4 * 2**20
"""A row group is also cut once this much Arrow data is buffered: narrow tables (one row per order) would
otherwise stay buffered up to ``row_group_rows``, i.e. grow with the day until 64,000 orders."""
DEFAULT_FILE_ROWS = 2_000_000


class Destination:
    """Where the export lives: a local folder or any fsspec URL (``s3://bucket/prefix``, ``memory://x``)."""

    def __init__(self, url: str | os.PathLike[str], **storage_options: Any) -> None:
        self.url = str(url)
        self.fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def partition_dir(self, table: str, export_date: dt.date) -> str:
        return self.path(table, f"{PARTITION_COLUMN}={export_date.isoformat()}")

    def manifest_path(self, table: str, export_date: dt.date) -> str:
        return self.path(MANIFEST_DIR, table, f"{PARTITION_COLUMN}={export_date.isoformat()}.json")

    def staging_dir(self, run_id: str, table: str, export_date: dt.date) -> str:
        return self.path(STAGING_DIR, run_id, table, f"{PARTITION_COLUMN}={export_date.isoformat()}")

    def trash_dir(self, run_id: str, table: str, export_date: dt.date) -> str:
        return self.path(TRASH_DIR, run_id, table, f"{PARTITION_COLUMN}={export_date.isoformat()}")

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def remove_tree(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def journal_path(self, export_date: dt.date) -> str:
        return self.path(JOURNAL_DIR, f"{PARTITION_COLUMN}={export_date.isoformat()}.json")

    def read_json(self, path: str) -> dict[str, Any] | None:
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))

    def write_json(self, path: str, body: Mapping[str, Any]) -> None:
        """One whole object: os.replace of a sibling temp file locally, a single PUT elsewhere."""
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        data = json.dumps(body, indent=2, sort_keys=True, default=str).encode("utf-8")
        if self.is_local:
            temporary = posixpath.join(posixpath.dirname(path), f".{uuid.uuid4().hex}.tmp")
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        else:
            self.fs.pipe_file(path, data)

    def read_manifest(self, table: str, export_date: dt.date) -> dict[str, Any] | None:
        return self.read_json(self.manifest_path(table, export_date))

    def write_manifest(self, table: str, export_date: dt.date, manifest: Mapping[str, Any]) -> None:
        self.write_json(self.manifest_path(table, export_date), manifest)

    @contextlib.contextmanager
    def commit_lock(self) -> Iterator[None]:
        """Exclusive across processes on a local destination (``flock``, freed by the kernel on kill -9)."""
        if not self.is_local:
            yield
            return
        folder = self.path(JOURNAL_DIR)
        os.makedirs(folder, exist_ok=True)
        with open(posixpath.join(folder, LOCK_NAME), "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def __repr__(self) -> str:
        return f"Destination({self.url!r})"


def _children(destination: Destination, path: str) -> list[str]:
    if not destination.fs.exists(path):
        return []
    return [p.rstrip("/") for p in destination.fs.ls(path, detail=False)]


def _mtime(destination: Destination, path: str) -> float | None:
    try:
        modified = destination.fs.modified(path)
    except (NotImplementedError, OSError, FileNotFoundError):
        return None
    return modified.timestamp() if isinstance(modified, dt.datetime) else None


def recover_partition(destination: Destination, table: str, export_date: dt.date, *, current_run: str) -> None:
    """Repair what a crashed run left behind for one partition, before writing it again.

    Local: a partition missing while its previous version sits in ``_trash``
    is put back; trash of a finished swap and stale staging are deleted.
    Object stores: part files the manifest does not list are uncommitted
    (or superseded) and are deleted.
    """
    final = destination.partition_dir(table, export_date)
    suffix = posixpath.join(table, f"{PARTITION_COLUMN}={export_date.isoformat()}")
    trashed = [p for p in (posixpath.join(r, suffix) for r in _children(destination, destination.path(TRASH_DIR))) if destination.exists(p)]
    if destination.is_local and trashed and not destination.exists(final):
        newest = max(trashed, key=lambda p: _mtime(destination, p) or 0.0)
        destination.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        os.rename(newest, final)
        trashed.remove(newest)
    for path in trashed:
        destination.remove_tree(path)
    now = time.time()
    for run_dir in _children(destination, destination.path(STAGING_DIR)):
        if posixpath.basename(run_dir) == current_run:
            continue
        staged = posixpath.join(run_dir, suffix)
        modified = _mtime(destination, staged) if destination.exists(staged) else None
        if modified is not None and now - modified > STALE_STAGING_SECONDS:
            destination.remove_tree(staged)
    if not destination.is_local and destination.exists(final):
        manifest = destination.read_manifest(table, export_date)
        listed = set(manifest["files"]) if manifest else set()
        for path in _children(destination, final):
            if posixpath.basename(path) not in listed:
                destination.fs.rm(path)


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
        for path in _children(destination, destination.partition_dir(table, export_date)):
            if posixpath.basename(path) not in keep:
                destination.fs.rm(path)


def _remove_empty(destination: Destination, path: str) -> None:
    """Remove a run's staging/trash folder once nothing is left in it (other runs may share the parent)."""
    if not destination.exists(path):
        return
    for child in _children(destination, path):
        _remove_empty(destination, child)
    if destination.fs.isdir(path) and not _children(destination, path):
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
    for path in _children(destination, destination.path(JOURNAL_DIR)):
        name = posixpath.basename(path)
        prefix = f"{PARTITION_COLUMN}="
        if name.startswith(prefix) and name.endswith(".json"):
            days.append(dt.date.fromisoformat(name[len(prefix):-len(".json")]))
    return sorted(days)


def _sweep_trash(destination: Destination) -> None:
    """After the journals are replayed, what is left in ``_trash`` is superseded (the partition is in place:
    delete it) or the only copy of a partition (a crash of a version without journals: put it back)."""
    for run_dir in _children(destination, destination.path(TRASH_DIR)):
        for table_dir in _children(destination, run_dir):
            for trashed in _children(destination, table_dir):
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


class PartitionWriter:
    """Streams record batches of one table's partition into staging; :class:`PartitionSet` commits it.

    Batches are buffered until ``row_group_rows`` rows or ``row_group_bytes``
    bytes of Arrow data, then written as one row group, so memory holds at
    most one row group whatever the partition size. A new file starts every
    ``file_rows`` rows.
    """

    def __init__(
        self,
        destination: Destination,
        table: str,
        schema: pa.Schema,
        export_date: dt.date,
        run_id: str,
        *,
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
        row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
        file_rows: int = DEFAULT_FILE_ROWS,
        compression: str = "zstd",
    ) -> None:
        if row_group_rows < 1 or file_rows < row_group_rows or row_group_bytes < 1:
            raise ValueError("need 1 <= row_group_rows <= file_rows and row_group_bytes >= 1")
        self.destination = destination
        self.table = table
        self.schema = schema
        self.export_date = export_date
        self.run_id = run_id
        self.row_group_rows = row_group_rows
        self.row_group_bytes = row_group_bytes
        self.file_rows = file_rows
        self.compression = compression
        self.rows = 0
        self.files: list[str] = []
        self.staging = destination.staging_dir(run_id, table, export_date)
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._buffered_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._handle: IO[bytes] | None = None
        self._file_rows = 0
        self._finished = False
        recover_partition(destination, table, export_date, current_run=run_id)
        destination.remove_tree(self.staging)
        destination.fs.makedirs(self.staging, exist_ok=True)

    def write(self, data: pa.RecordBatch | pa.Table | Sequence[Mapping[str, Any]]) -> None:
        """Append rows (a batch, a table, or dicts); the schema must match exactly."""
        if self._finished:
            raise RuntimeError(f"{self.table} {self.export_date}: writer already finished")
        if isinstance(data, pa.Table):
            batches = data.to_batches()
        elif isinstance(data, pa.RecordBatch):
            batches = [data]
        else:
            batches = [pa.RecordBatch.from_pylist(list(data), schema=self.schema)]
        for batch in batches:
            if not batch.schema.equals(self.schema, check_metadata=False):
                raise ValueError(f"{self.table}: batch schema differs from the table schema:\n{batch.schema}")
            if batch.num_rows:
                self._buffer.append(batch)
                self._buffered += batch.num_rows
                self._buffered_bytes += batch.nbytes
        while self._buffered >= self.row_group_rows or (self._buffered and self._buffered_bytes >= self.row_group_bytes):
            self._flush(self.row_group_rows)

    def _flush(self, limit: int) -> None:
        """Write up to ``limit`` buffered rows as one row group (respecting the file size cap)."""
        take = min(limit, self._buffered, self.file_rows - self._file_rows)
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        group, rest = table.slice(0, take), table.slice(take)
        self._open_file().write_table(group, row_group_size=max(take, 1))
        self._file_rows += take
        self.rows += take
        self._buffer = rest.combine_chunks().to_batches() if rest.num_rows else []
        self._buffered = rest.num_rows
        self._buffered_bytes = rest.nbytes if rest.num_rows else 0
        if self._file_rows >= self.file_rows:
            self._close_file()

    def _open_file(self) -> pq.ParquetWriter:
        if self._writer is None:
            name = f"part-{self.run_id[:12]}-{len(self.files):05d}.parquet"
            self._handle = self.destination.fs.open(posixpath.join(self.staging, name), "wb")
            self._writer = pq.ParquetWriter(self._handle, self.schema, compression=self.compression)
            self.files.append(name)
            self._file_rows = 0
        return self._writer

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def finish(self) -> None:
        """Flush and close; an empty partition still gets one zero-row file, so its schema is readable."""
        if self._finished:
            return
        while self._buffered:
            self._flush(self.row_group_rows)
        if not self.files:
            self._open_file()
        self._close_file()
        self._finished = True

    def discard(self) -> None:
        """Drop everything staged (the run failed): the committed partition is untouched."""
        try:
            self._close_file()
        finally:
            self._buffer, self._buffered, self._buffered_bytes = [], 0, 0
            self._finished = True
            self.destination.remove_tree(self.staging)


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
        self.writers[table].write(data)

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


def committed_files(destination: Destination, table: str, export_date: dt.date) -> list[str]:
    """The part files a manifest-aware reader should read for a partition (its manifest's list)."""
    manifest = destination.read_manifest(table, export_date)
    if manifest is None:
        return []
    final = destination.partition_dir(table, export_date)
    return [posixpath.join(final, name) for name in manifest["files"]]


def new_run_id() -> str:
    """A run id for files and manifests when no Prefect flow run id is available."""
    return uuid.uuid4().hex

