"""One table's partition streamed into staged Parquet files, before :mod:`flows.parquet_writer` commits it.

:class:`PartitionWriter` buffers record batches up to a row group's rows or
bytes and writes each row group with ``pyarrow.parquet.ParquetWriter`` into
``<dest>/_staging/<run>/<table>/export_date=D/``, so memory holds at most one
row group whatever the partition's size. Before it writes, it clears what a
crashed run left for the same partition (:func:`recover_partition`).
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from postdicom.settings import env_number

from .export_destination import STAGING_DIR, TRASH_DIR, Destination, children, mtime
from .export_schema import PARTITION_COLUMN

STALE_STAGING_SECONDS = 6 * 3600
"""Another run's staging older than this is a crash's leftover and is removed; younger ones may be live."""
DEFAULT_ROW_GROUP_ROWS = 64_000
DEFAULT_ROW_GROUP_BYTES = 4 * 2**20
"""A row group is also cut once this much Arrow data is buffered: narrow tables (one row per order) would
otherwise stay buffered up to ``row_group_rows``, i.e. grow with the day until 64,000 orders."""
DEFAULT_FILE_ROWS = 2_000_000
DEFAULT_FILE_ROW_GROUPS = 64
"""A new file starts after this many row groups: an open ``ParquetWriter`` keeps every row group's metadata.

About 10 KB a row group for the ``tags`` table (14 columns), freed only when the file is closed: a
20,000-order day wrote some 200 ``tags`` row groups into one file and held 2 MB of footer until the day's
commit, more the larger the day (``benchmarks/RESULTS.md``, *Export memory, eighth pass*). At 64 a file
holds about 115,000 ``tags`` rows at the 1 MiB buffer (some 4,000 orders of one series each), so a day of
a few thousand orders still makes one file per table; a larger day makes one file per 64 row groups.
"""
BUFFER_BYTES_ENV = "POSTDICOM_EXPORT_BUFFER_BYTES"
DEFAULT_BUFFER_BYTES = 2**20
"""Arrow data a day's tables buffer together before the largest one's buffer is written as a row group.

Without a shared bound each of the four tables buffered up to ``row_group_bytes`` (16 MiB together, and the
process kept the memory after it was freed), an amount a large day reaches and a small one does not: the
export's peak memory grew with the day (benchmarks/RESULTS.md, *Export memory, fourth pass*). The bound
also sets how much each row group's Parquet encoding takes, in Arrow's default pool, which keeps it: from 4 to
1 MiB the peak's growth from 1,000 to 5,000 orders fell from about 23 to 13 MB (*Export memory, fifth
pass*). At 1 MiB the ``tags`` table's row groups hold about 1,800 rows and the narrow tables' about 1,200:
still whole units of work for DuckDB, Polars and pandas, which read a row group at a time; a larger value
makes larger row groups for more memory."""
MIN_BUFFER_BYTES = 2**16


def export_memory_pool() -> pa.MemoryPool:
    """Where the export's Arrow data lives: the C library's allocator, not Arrow's default pool (mimalloc).

    The chunks' tables are built on the task runner's worker threads and freed on the flow's thread
    once written; mimalloc kept the freed pages resident: 30 MB for at most 5 MB of live Arrow data at
    1,000 orders, 46 MB for 10 MB at 5,000 (benchmarks/RESULTS.md, *Export memory, fourth pass*).
    ``pyarrow.parquet.ParquetWriter`` still encodes in the default pool whatever pool it is given.
    """
    return pa.system_memory_pool()


def buffer_bytes() -> int:
    """The shared buffer bound, from ``POSTDICOM_EXPORT_BUFFER_BYTES`` (default 1 MiB, at least 64 KiB)."""
    return int(env_number(BUFFER_BYTES_ENV, DEFAULT_BUFFER_BYTES, minimum=MIN_BUFFER_BYTES, whole=True, unit="bytes"))


def recover_partition(destination: Destination, table: str, export_date: dt.date, *, current_run: str) -> None:
    """Repair what a crashed run left behind for one partition, before writing it again.

    Local: a partition missing while its previous version sits in ``_trash``
    is put back; trash of a finished swap and stale staging are deleted.
    Object stores: part files the manifest does not list are uncommitted
    (or superseded) and are deleted.
    """
    final = destination.partition_dir(table, export_date)
    suffix = posixpath.join(table, f"{PARTITION_COLUMN}={export_date.isoformat()}")
    trashed = [p for p in (posixpath.join(r, suffix) for r in children(destination, destination.path(TRASH_DIR))) if destination.exists(p)]
    if destination.is_local and trashed and not destination.exists(final):
        newest = max(trashed, key=lambda p: mtime(destination, p) or 0.0)
        destination.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        os.rename(newest, final)
        trashed.remove(newest)
    for path in trashed:
        destination.remove_tree(path)
    now = time.time()
    for run_dir in children(destination, destination.path(STAGING_DIR)):
        if posixpath.basename(run_dir) == current_run:
            continue
        staged = posixpath.join(run_dir, suffix)
        modified = mtime(destination, staged) if destination.exists(staged) else None
        if modified is not None and now - modified > STALE_STAGING_SECONDS:
            destination.remove_tree(staged)
    if not destination.is_local and destination.exists(final):
        manifest = destination.read_manifest(table, export_date)
        listed = set(manifest["files"]) if manifest else set()
        for path in children(destination, final):
            if posixpath.basename(path) not in listed:
                destination.fs.rm(path)


class PartitionWriter:
    """Streams record batches of one table's partition into staging; :class:`PartitionSet` commits it.

    Batches are buffered until ``row_group_rows`` rows or ``row_group_bytes``
    bytes of Arrow data, then written as one row group, so memory holds at
    most one row group whatever the partition size. A new file starts every
    ``file_rows`` rows or ``file_row_groups`` row groups, whichever comes
    first (:data:`DEFAULT_FILE_ROW_GROUPS`: the open file's footer grows with
    its row groups).
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
        file_row_groups: int = DEFAULT_FILE_ROW_GROUPS,
        compression: str = "zstd",
        memory_pool: pa.MemoryPool | None = None,
    ) -> None:
        if row_group_rows < 1 or file_rows < row_group_rows or row_group_bytes < 1 or file_row_groups < 1:
            raise ValueError("need 1 <= row_group_rows <= file_rows, row_group_bytes >= 1 and file_row_groups >= 1")
        self.destination = destination
        self.table = table
        self.schema = schema
        self.export_date = export_date
        self.run_id = run_id
        self.row_group_rows = row_group_rows
        self.row_group_bytes = row_group_bytes
        self.file_rows = file_rows
        self.file_row_groups = file_row_groups
        self.compression = compression
        self.memory_pool = memory_pool
        """Where the row groups are put together (Arrow's default pool when None); ``ParquetWriter`` is given
        it too but encodes mostly in the default pool."""
        self.rows = 0
        self.files: list[str] = []
        self.staging = destination.staging_dir(run_id, table, export_date)
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._buffered_bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._handle: IO[bytes] | None = None
        self._file_rows = 0
        self._file_row_groups = 0
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

    @property
    def buffered_bytes(self) -> int:
        """Arrow data waiting to be written (less than ``row_group_bytes`` between calls)."""
        return self._buffered_bytes

    def flush(self) -> None:
        """Write everything buffered now, as row groups of at most ``row_group_rows``."""
        while self._buffered:
            self._flush(self.row_group_rows)

    def _flush(self, limit: int) -> None:
        """Write up to ``limit`` buffered rows as one row group (respecting the file size cap)."""
        take = min(limit, self._buffered, self.file_rows - self._file_rows)
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        group, rest = table.slice(0, take), table.slice(take)
        self._open_file().write_table(group, row_group_size=max(take, 1))
        self._file_rows += take
        self._file_row_groups += 1
        self.rows += take
        self._buffer = rest.combine_chunks(self.memory_pool).to_batches() if rest.num_rows else []
        self._buffered = rest.num_rows
        self._buffered_bytes = rest.nbytes if rest.num_rows else 0
        if self._file_rows >= self.file_rows or self._file_row_groups >= self.file_row_groups:
            self._close_file()

    def _open_file(self) -> pq.ParquetWriter:
        if self._writer is None:
            name = f"part-{self.run_id[:12]}-{len(self.files):05d}.parquet"
            self._handle = self.destination.fs.open(posixpath.join(self.staging, name), "wb")
            self._writer = pq.ParquetWriter(
                self._handle, self.schema, compression=self.compression, memory_pool=self.memory_pool
            )
            self.files.append(name)
            self._file_rows = self._file_row_groups = 0
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
        self.flush()
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
