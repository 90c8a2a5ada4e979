"""Atomic, idempotent partition writing: on local folders and on an fsspec object store (memory://)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from flows import parquet_writer
from flows.export_schema import ORDERS, hive_partitioning
from flows.export_destination import Destination
from flows.parquet_writer import PartitionSet
from flows.staged_partition import (
    BUFFER_BYTES_ENV, DEFAULT_BUFFER_BYTES, DEFAULT_FILE_ROW_GROUPS, MIN_BUFFER_BYTES, PartitionWriter, buffer_bytes,
    export_memory_pool,
)
from postdicom.errors import ValidationError

DAY = dt.date(2026, 3, 14)
SCHEMAS = {
    "alpha": pa.schema([("id", pa.int64()), ("name", pa.string())]),
    "beta": pa.schema([("id", pa.int64()), ("when", pa.date32())]),
}


def rows_alpha(n: int, start: int = 0) -> list[dict]:
    return [{"id": i, "name": f"Muñoz^José {i}"} for i in range(start, start + n)]


def rows_beta(n: int) -> list[dict]:
    return [{"id": i, "when": DAY} for i in range(n)]


@pytest.fixture(params=["local", "memory"])
def destination(request, tmp_path) -> Destination:
    if request.param == "local":
        return Destination(str(tmp_path / "export"))
    return Destination(f"memory://pw-{uuid.uuid4().hex}")


def export(destination: Destination, run_id: str, alpha: int, beta: int, day: dt.date = DAY) -> None:
    with PartitionSet(destination, SCHEMAS, day, run_id) as parts:
        parts.write("alpha", rows_alpha(alpha))
        parts.write("beta", rows_beta(beta))
        parts.commit({"window": {"from": str(day), "to": str(day)}})


def read(destination: Destination, table: str) -> pa.Table:
    dataset = pads.dataset(destination.path(table), filesystem=destination.fs, partitioning=hive_partitioning())
    return dataset.to_table()


def visible_files(destination: Destination, table: str) -> list[str]:
    """Everything a glob reader could pick up under the table folder."""
    root = destination.path(table)
    if not destination.exists(root):
        return []
    return sorted(p for p in destination.fs.find(root))


def test_commit_then_rerun_replaces_instead_of_appending(destination):
    export(destination, "run-one", alpha=3, beta=2)
    assert read(destination, "alpha").num_rows == 3
    export(destination, "run-two", alpha=5, beta=1)

    alpha = read(destination, "alpha")
    assert alpha.num_rows == 5
    assert read(destination, "beta").num_rows == 1
    assert alpha.column("export_date").to_pylist() == [DAY] * 5
    assert sorted(alpha.column("name").to_pylist())[0] == "Muñoz^José 0"
    manifest = destination.read_manifest("alpha", DAY)
    assert manifest["rows"] == 5 and manifest["run_id"] == "run-two" and manifest["schema_version"]
    assert manifest["window"] == {"from": str(DAY), "to": str(DAY)}
    assert all(os.path.basename(f).startswith("part-run-two") for f in visible_files(destination, "alpha"))
    assert not destination.exists(destination.path("_staging", "run-two"))
    assert not destination.exists(destination.path("_trash", "run-two"))


def test_failure_mid_write_leaves_previous_partition_and_no_stray_files(destination):
    export(destination, "good", alpha=4, beta=4)
    before = visible_files(destination, "alpha") + visible_files(destination, "beta")

    with pytest.raises(RuntimeError, match="fetch failed"):
        with PartitionSet(destination, SCHEMAS, DAY, "broken", row_group_rows=2) as parts:
            parts.write("alpha", rows_alpha(7))
            raise RuntimeError("fetch failed after some orders")

    assert visible_files(destination, "alpha") + visible_files(destination, "beta") == before
    assert read(destination, "alpha").num_rows == 4
    assert destination.read_manifest("alpha", DAY)["run_id"] == "good"
    assert not destination.exists(destination.path("_staging", "broken"))


def test_a_second_table_failing_to_swap_rolls_the_first_back(tmp_path, monkeypatch):
    destination = Destination(str(tmp_path / "export"))
    export(destination, "good", alpha=2, beta=2)
    real_rename = os.rename

    def rename(src, dst):
        if "/_staging/" in str(src) and "/beta/" in str(src):
            raise OSError("disk full")
        return real_rename(src, dst)

    monkeypatch.setattr(parquet_writer.os, "rename", rename)
    with pytest.raises(OSError, match="disk full"):
        export(destination, "bad", alpha=9, beta=9)
    monkeypatch.setattr(parquet_writer.os, "rename", real_rename)

    assert read(destination, "alpha").num_rows == 2
    assert read(destination, "beta").num_rows == 2
    assert destination.read_manifest("alpha", DAY)["run_id"] == "good"
    assert not list((tmp_path / "export" / "_staging").glob("bad/*/*"))


def test_crash_between_the_two_renames_is_recovered_by_the_next_writer(tmp_path):
    destination = Destination(str(tmp_path / "export"))
    export(destination, "good", alpha=3, beta=1)
    final = Path(destination.partition_dir("alpha", DAY))
    trash = Path(destination.trash_dir("crashed", "alpha", DAY))
    trash.parent.mkdir(parents=True)
    os.rename(final, trash)
    assert not final.exists()

    writer = PartitionWriter(destination, "alpha", SCHEMAS["alpha"], DAY, "next")
    writer.discard()

    assert final.exists() and not trash.exists()
    assert read(destination, "alpha").num_rows == 3


def test_object_store_failed_move_leaves_only_the_committed_generation(monkeypatch):
    destination = Destination(f"memory://pw-{uuid.uuid4().hex}")
    export(destination, "good", alpha=2, beta=2)
    good_files = visible_files(destination, "alpha")
    real_mv = destination.fs.mv

    def mv(source, target, **kwargs):
        if "/beta/" in source:
            raise OSError("PUT failed")
        return real_mv(source, target, **kwargs)

    monkeypatch.setattr(destination.fs, "mv", mv)
    with pytest.raises(OSError, match="PUT failed"):
        export(destination, "bad", alpha=6, beta=6)

    assert visible_files(destination, "alpha") == good_files
    assert read(destination, "alpha").num_rows == 2
    assert parquet_writer.pending_commits(destination) == []


def test_object_store_failure_past_the_commit_point_is_rolled_forward_by_the_next_run(monkeypatch):
    """Once the journal is written the day is committed: a failed manifest PUT is finished by the next run."""
    destination = Destination(f"memory://pw-{uuid.uuid4().hex}")
    export(destination, "good", alpha=2, beta=2)
    real_write = destination.write_manifest

    def no_manifest(*args, **kwargs):
        raise OSError("PUT failed")

    monkeypatch.setattr(destination, "write_manifest", no_manifest)
    with pytest.raises(OSError, match="PUT failed"):
        export(destination, "bad", alpha=6, beta=6)
    assert parquet_writer.pending_commits(destination) == [DAY]
    monkeypatch.setattr(destination, "write_manifest", real_write)

    export(destination, "next", alpha=1, beta=1, day=DAY + dt.timedelta(days=1))

    assert parquet_writer.pending_commits(destination) == []
    assert [p.rsplit("/", 1)[-1] for p in visible_files(destination, "alpha") if f"={DAY}/" in p] == ["part-bad-00000.parquet"]
    assert destination.read_manifest("beta", DAY)["run_id"] == "bad"
    assert read(destination, "alpha").num_rows == 7


def test_object_store_files_no_manifest_lists_are_removed_before_the_next_write():
    destination = Destination(f"memory://pw-{uuid.uuid4().hex}")
    export(destination, "good", alpha=2, beta=2)
    stray = destination.path("alpha", f"export_date={DAY}", "part-crashed-00000.parquet")
    with destination.fs.open(stray, "wb") as handle:
        pq.write_table(pa.Table.from_pylist(rows_alpha(3), schema=SCHEMAS["alpha"]), handle)
    assert read(destination, "alpha").num_rows == 5

    PartitionWriter(destination, "alpha", SCHEMAS["alpha"], DAY, "next").discard()

    assert not destination.exists(stray)
    assert read(destination, "alpha").num_rows == 2


def test_rows_stream_in_bounded_row_groups_and_files(tmp_path):
    destination = Destination(str(tmp_path / "export"))
    with PartitionSet(destination, {"alpha": SCHEMAS["alpha"]}, DAY, "stream", row_group_rows=250) as parts:
        writer = parts.writers["alpha"]
        writer.file_rows = 1000
        for start in range(0, 2300, 100):
            parts.write("alpha", pa.RecordBatch.from_pylist(rows_alpha(100, start), schema=SCHEMAS["alpha"]))
            assert writer._buffered < 250
        parts.commit()

    files = sorted(Path(destination.partition_dir("alpha", DAY)).glob("*.parquet"))
    assert len(files) == 3
    assert [pq.ParquetFile(f).metadata.num_rows for f in files] == [1000, 1000, 300]
    assert pq.ParquetFile(files[0]).metadata.num_row_groups == 4
    assert sorted(read(destination, "alpha").column("id").to_pylist()) == list(range(2300))


def test_a_file_holds_at_most_64_row_groups_so_the_open_footer_stays_small(tmp_path):
    """An open ParquetWriter keeps each row group's metadata until the file closes (RESULTS.md, *Export memory, eighth pass*)."""
    destination = Destination(str(tmp_path / "export"))
    assert DEFAULT_FILE_ROW_GROUPS == 64
    with PartitionSet(destination, {"alpha": SCHEMAS["alpha"]}, DAY, "groups", row_group_rows=10) as parts:
        for start in range(0, 1500, 10):
            parts.write("alpha", pa.RecordBatch.from_pylist(rows_alpha(10, start), schema=SCHEMAS["alpha"]))
        parts.commit()

    files = sorted(Path(destination.partition_dir("alpha", DAY)).glob("*.parquet"))
    assert [pq.ParquetFile(f).metadata.num_row_groups for f in files] == [64, 64, 22]
    assert sorted(read(destination, "alpha").column("id").to_pylist()) == list(range(1500))
    with pytest.raises(ValueError, match="file_row_groups"):
        PartitionWriter(destination, "alpha", SCHEMAS["alpha"], DAY, "groups", file_row_groups=0)


def test_a_row_group_is_cut_by_bytes_before_rows_so_narrow_tables_do_not_buffer_a_whole_day(tmp_path):
    destination = Destination(str(tmp_path / "export"))
    batch = pa.RecordBatch.from_pylist(rows_alpha(100), schema=SCHEMAS["alpha"])
    limit = 3 * batch.nbytes
    with PartitionSet(destination, {"alpha": SCHEMAS["alpha"]}, DAY, "bytes", row_group_bytes=limit) as parts:
        writer = parts.writers["alpha"]
        for start in range(0, 1000, 100):
            parts.write("alpha", pa.RecordBatch.from_pylist(rows_alpha(100, start), schema=SCHEMAS["alpha"]))
            assert writer._buffered_bytes < limit and writer._buffered < 300
        parts.commit()

    (file,) = Path(destination.partition_dir("alpha", DAY)).glob("*.parquet")
    metadata = pq.ParquetFile(file).metadata
    assert metadata.num_rows == 1000 and metadata.num_row_groups == 4
    assert sorted(read(destination, "alpha").column("id").to_pylist()) == list(range(1000))


def test_the_tables_of_a_day_buffer_at_most_buffer_bytes_together(tmp_path):
    """Each table alone stays under its row group's bytes; together they stay under the set's shared bound."""
    destination = Destination(str(tmp_path / "export"))
    alpha = pa.RecordBatch.from_pylist(rows_alpha(100), schema=SCHEMAS["alpha"])
    beta = pa.RecordBatch.from_pylist(rows_beta(100), schema=SCHEMAS["beta"])
    budget = 3 * alpha.nbytes
    most = 0
    with PartitionSet(destination, SCHEMAS, DAY, "shared", buffer_bytes=budget) as parts:
        for start in range(0, 2000, 100):
            parts.write("alpha", pa.RecordBatch.from_pylist(rows_alpha(100, start), schema=SCHEMAS["alpha"]))
            parts.write("beta", beta)
            assert parts.buffered_bytes <= budget
            most = max(most, parts.buffered_bytes)
        assert all(writer.buffered_bytes < writer.row_group_bytes for writer in parts.writers.values())
        parts.commit()

    assert most > budget - alpha.nbytes - beta.nbytes, "row groups are cut at the bound, not far below it"
    for table, rows in (("alpha", 2000), ("beta", 2000)):
        (file,) = Path(destination.partition_dir(table, DAY)).glob("*.parquet")
        metadata = pq.ParquetFile(file).metadata
        assert metadata.num_rows == rows and metadata.num_row_groups > 1, table
    assert sorted(read(destination, "alpha").column("id").to_pylist()) == list(range(2000))


def test_row_groups_are_put_together_in_the_pool_given(tmp_path):
    destination = Destination(str(tmp_path / "export"))
    pool = pa.proxy_memory_pool(pa.system_memory_pool())
    with PartitionSet(destination, SCHEMAS, DAY, "pool", row_group_rows=150, memory_pool=pool) as parts:
        parts.write("alpha", rows_alpha(200))
        assert pool.max_memory() > 0, "the remainder of the cut row group is copied in the pool"
        before = pool.max_memory()
        parts.write("beta", rows_beta(1000))
        parts.commit()
    assert pool.max_memory() > before, "the later row groups are put together in the pool too"
    del parts
    assert pool.bytes_allocated() == 0, "nothing of the pool is kept once the day is committed"
    assert read(destination, "alpha").num_rows == 200 and read(destination, "beta").num_rows == 1000
    assert parquet_writer.PartitionSet.memory_pool is None
    assert export_memory_pool().backend_name == "system"


def test_the_shared_buffer_bound_is_a_setting(monkeypatch):
    monkeypatch.delenv(BUFFER_BYTES_ENV, raising=False)
    assert buffer_bytes() == DEFAULT_BUFFER_BYTES == PartitionSet.buffer_bytes == 2**20
    monkeypatch.setenv(BUFFER_BYTES_ENV, str(4 * 2**20))
    assert buffer_bytes() == 4 * 2**20
    for wrong in (str(MIN_BUFFER_BYTES - 1), "4MB", "1.5"):
        monkeypatch.setenv(BUFFER_BYTES_ENV, wrong)
        with pytest.raises(ValidationError, match=BUFFER_BYTES_ENV):
            buffer_bytes()


def test_an_empty_partition_still_has_its_schema(destination):
    export(destination, "empty", alpha=0, beta=0)
    table = read(destination, "alpha")
    assert table.num_rows == 0
    assert table.schema.field("name").type == pa.string()
    assert destination.read_manifest("alpha", DAY)["rows"] == 0


def test_a_batch_with_another_schema_is_refused(tmp_path):
    destination = Destination(str(tmp_path / "export"))
    writer = PartitionWriter(destination, "alpha", SCHEMAS["alpha"], DAY, "r")
    with pytest.raises(ValueError, match="schema differs"):
        writer.write(pa.table({"id": ["not an int"], "name": ["x"]}))
    writer.discard()


def test_readers_ignore_staging_trash_and_manifests(tmp_path):
    """DuckDB, Polars (glob and folder) and pandas read only committed partitions."""
    root = tmp_path / "export"
    destination = Destination(str(root))
    export(destination, "good", alpha=3, beta=1)
    export(destination, "good2", alpha=2, beta=1, day=DAY + dt.timedelta(days=1))
    crashed = PartitionWriter(destination, "alpha", SCHEMAS["alpha"], DAY, "crashed-run")
    crashed.write(rows_alpha(50))
    crashed.finish()
    trash = Path(destination.trash_dir("old-run", "alpha", DAY))
    trash.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows_alpha(9), schema=SCHEMAS["alpha"]), trash / "part-old.parquet")
    assert list((root / "_staging").rglob("*.parquet")) and (root / "_manifests").exists()

    glob = f"{root}/alpha/*/*.parquet"
    duck = duckdb.sql(f"SELECT count(*), min(export_date) FROM read_parquet('{glob}', hive_partitioning=true)").fetchall()[0]
    assert duck == (5, DAY)
    polars_glob = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert polars_glob.height == 5 and polars_glob.schema["export_date"] == pl.Date
    assert pl.scan_parquet(str(root / "alpha"), hive_partitioning=True).collect().height == 5
    frame = pd.read_parquet(root / "alpha", partitioning=hive_partitioning())
    assert len(frame) == 5 and set(frame["export_date"]) == {DAY, DAY + dt.timedelta(days=1)}


def test_orders_schema_round_trips_through_the_writer(tmp_path):
    destination = Destination(str(tmp_path / "export"))
    row = ORDERS.row({"PatientOrderUuid": "A-B", "PatientName": "山田^太郎=やまだ^たろう", "StudyDate": "2026-03-14",
                      "ModalityList": ["CT", "SR"], "NumberOfInstances": 40})
    with PartitionSet(destination, {"orders": ORDERS.schema}, DAY, "orders") as parts:
        parts.write("orders", [row])
        parts.commit()
    table = read(destination, "orders")
    assert table.schema.field("study_date").type == pa.date32()
    assert table.column("patient_name").to_pylist() == ["山田^太郎=やまだ^たろう"]
    assert table.column("modalities_in_study").to_pylist() == [["CT", "SR"]]
    assert table.column("patient_order_uuid").to_pylist() == ["a-b"]
