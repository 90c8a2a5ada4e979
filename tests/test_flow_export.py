"""``nightly_order_export`` on the sandbox: typed tables every reader agrees on, idempotent reruns, resume."""

from __future__ import annotations

import datetime as dt
import math
import os
import pickle
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from prefect import get_client
from prefect._internal.result_records import ResultRecord
from prefect.serializers import PickleSerializer

from flows import export as export_module
from flows import export_chunks
from flows.export import nightly_order_export, plan_chunks, resolve_window
from flows.export_chunks import CHUNKS_PER_SLOT, DEFAULT_ORDERS_PER_CHUNK
from flows.export_schema import TABLES, hive_partitioning
from flows.staged_partition import BUFFER_BYTES_ENV
from postdicom import PostDicomClient
from postdicom.models import PatientOrderSummary
from postdicom.synthetic import StudySpec, write_study
from tests.test_flow_upload_and_share import task_run_names

DAY1 = dt.date(2031, 5, 6)
DAY2 = DAY1 + dt.timedelta(days=1)
"""Dates no other test module uploads studies for: the window isolates this module's orders."""

SPECS = (
    StudySpec("Muñoz^José", "EXP-001", "CT", series_count=2, instances_per_series=2, study_date=DAY1,
              accession_number="EXP-A1", seed="exp-munoz"),
    StudySpec("山田^太郎=やまだ^たろう", "EXP-002", "MR", series_count=1, instances_per_series=2, study_date=DAY1,
              accession_number="EXP-A2", seed="exp-yamada"),
    StudySpec("Παπαδόπουλος^Νίκος", "EXP-003", "CT", series_count=1, instances_per_series=3, study_date=DAY1,
              accession_number="EXP-A3", seed="exp-papadopoulos"),
    StudySpec("Smith^Anna", "EXP-004", "US", series_count=1, instances_per_series=1, study_date=DAY2,
              accession_number="EXP-A4", seed="exp-smith"),
)
NAMES = {"Muñoz^José", "山田^太郎=やまだ^たろう", "Παπαδόπουλος^Νίκος", "Smith^Anna"}


@pytest.fixture(scope="module")
def account(sandbox_server, tmp_path_factory):
    """The sandbox account with this module's four studies stored (three on DAY1, one on DAY2)."""
    root = tmp_path_factory.mktemp("export-disk")
    paths = [p for spec in SPECS for p in write_study(root, spec, suffix=".dcm")]
    with sandbox_server.client() as client:
        result = client.store_instances(paths)
    assert len(result.stored) + len(result.with_status("already_stored")) == len(paths)
    return sandbox_server


def run(account, destination: str | Path, **parameters):
    """Run the flow; returns (state, summary or None)."""
    state = nightly_order_export(
        credentials=account.credentials(), destination=str(destination), return_state=True, **parameters
    )
    result = state.result(raise_on_failure=False)
    return state, (None if isinstance(result, BaseException) else result)


WINDOW = {"study_date_from": DAY1, "study_date_to": DAY2}


def one_order_per_chunk(monkeypatch) -> None:
    """Make the export plan one chunk per order, sorted: four chunks for this module's window, every run.

    The flow's own plan buckets orders by a hash of their UUIDs, which the sandbox draws at random:
    even with ``orders_per_chunk=1`` DAY1's three orders go into four buckets, and about one run in 16
    puts all three into one (seen in CI twice). The plan's own behaviour has its own tests; the tests
    using this are about what happens to the chunks.
    """
    monkeypatch.setattr(export_module, "plan_chunks", lambda refs, orders_per_chunk, concurrency: [[r] for r in sorted(refs)])


def day_list_runs(state, timeout: float = 60.0) -> set[str]:
    """The names of the run's day-listing task runs (they reach Prefect's database a moment after the flow ends)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {name for name in task_run_names(state) if name.startswith("export-day-orders")}
        if len(found) >= 2 or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def read_pandas(root: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(root / table, partitioning=hive_partitioning())


def canonical(root: Path, table: str) -> pd.DataFrame:
    """A table's rows in a fixed order, for comparing two exports."""
    frame = read_pandas(root, table)
    keys = [c for c in ("export_date", "patient_order_uuid", "series_instance_uid", "sop_instance_uid", "tag") if c in frame]
    return frame.sort_values(keys).reset_index(drop=True).astype(str)


def visible_parquet(root: Path) -> list[str]:
    """Files any reader of ``<table>/*/*.parquet`` would pick up."""
    return sorted(str(p.relative_to(root)) for t in TABLES for p in (root / t).glob("*/*"))


def test_export_reads_back_the_same_in_pandas_duckdb_and_polars(prefect_harness, account, tmp_path):
    dest = tmp_path / "export"
    state, summary = run(account, dest, **WINDOW)
    assert state.is_completed(), state.message
    # Each day is listed by one read task run that streams the order list (issue 17): named by its date only.
    assert {f"export-day-orders: {DAY1}", f"export-day-orders: {DAY2}"} <= day_list_runs(state)

    assert summary.orders == 4 and summary.rows["orders"] == 4
    assert summary.rows["studies"] == 4
    assert summary.rows["series"] == 5
    assert summary.rows["tags"] > 0
    assert summary.orders_per_modality == {"CT": 2, "MR": 1, "US": 1}
    assert sorted({(p.table, p.export_date) for p in summary.partitions}) == sorted(
        (t, d) for t in TABLES for d in (DAY1, DAY2)
    )
    for table in TABLES:
        glob = f"{dest}/{table}/*/*.parquet"
        duck = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true)").fetchall()[0][0]
        polars = pl.scan_parquet(glob, hive_partitioning=True).collect()
        frame = read_pandas(dest, table)
        assert duck == polars.height == len(frame) == summary.rows[table], table
        assert polars.schema["export_date"] == pl.Date

    orders = duckdb.sql(
        f"SELECT * FROM read_parquet('{dest}/orders/*/*.parquet', hive_partitioning=true)"
    ).arrow().read_all()
    assert orders.schema.field("study_date").type == pa.date32()
    assert orders.schema.field("number_of_study_related_instances").type == pa.int64()
    assert orders.schema.field("modalities_in_study").type == pa.list_(pa.string())
    assert set(orders.column("patient_name").to_pylist()) == NAMES
    by_name = {r["patient_name"]: r for r in orders.to_pylist()}
    assert by_name["Muñoz^José"]["export_date"] == DAY1 and by_name["Smith^Anna"]["export_date"] == DAY2
    assert by_name["Muñoz^José"]["number_of_study_related_instances"] == 4

    studies = pl.scan_parquet(f"{dest}/studies/*/*.parquet", hive_partitioning=True).collect()
    assert studies.schema["study_date"] == pl.Date and studies.schema["study_time"] == pl.Time
    assert studies.schema["number_of_study_related_series"] == pl.Int64
    assert set(studies["patient_name"].to_list()) == NAMES
    assert studies.filter(pl.col("patient_id") == "EXP-001")["study_time"].to_list() == [dt.time(9, 30)]

    tags = read_pandas(dest, "tags")
    names = set(tags.loc[tags["keyword"] == "PatientName", "value"])
    assert names == NAMES
    spacing = tags.loc[tags["keyword"] == "PixelSpacing"].iloc[0]
    assert list(spacing["values"]) == ["0.7", "0.7"] and spacing["value_number"] == pytest.approx(0.7)
    assert set(tags.loc[tags["keyword"] == "StudyDate", "value_date"]) == {DAY1, DAY2}

    series = read_pandas(dest, "series")
    assert series["patient_series_uuid"].notna().all()
    assert str(series["series_number"].dtype) == "int64"

    manifest = (dest / "_manifests" / "orders" / f"export_date={DAY1}.json").read_text(encoding="utf-8")
    assert '"rows": 3' in manifest and summary.run_id in manifest
    assert account.password not in manifest


def test_rerunning_the_window_replaces_instead_of_adding(prefect_harness, account, tmp_path):
    dest = tmp_path / "export"
    _, first = run(account, dest, **WINDOW)
    files_before = visible_parquet(dest)
    state, second = run(account, dest, **WINDOW)
    assert state.is_completed()

    assert second.rows == first.rows
    assert second.chunks_from_cache == second.chunks > 0, "per-chunk fetches come from the cache"
    assert second.requests == 0
    for table in TABLES:
        assert len(read_pandas(dest, table)) == first.rows[table]
    assert len(visible_parquet(dest)) == len(files_before)
    assert visible_parquet(dest) != files_before, "the files of the first run were replaced, not kept"


def test_chunks_cached_with_prefects_pickle_serializer_are_still_read(prefect_harness, account, tmp_path):
    """Chunk records name their serializer: ones written by Prefect's pickle (before ChunkRowsSerializer) read cleanly."""
    own_tags = {"dicom_tag_id_list": ["PatientName", "StudyDate", "SeriesDescription", "BodyPartExamined"]}
    dest = tmp_path / "export"
    started = time.time()
    _, first = run(account, dest, **WINDOW, **own_tags)
    storage = Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"])
    ours = [p for p in storage.rglob("*") if p.is_file() and p.stat().st_mtime >= started
            and b'"postdicom-export-chunk"' in p.read_bytes()]
    assert len(ours) == first.chunks > 0, "every chunk was cached with the export's serializer"
    for path in ours:
        record = ResultRecord.deserialize(path.read_bytes())
        metadata = record.metadata.model_copy(update={"serializer": PickleSerializer()})
        path.write_bytes(ResultRecord(metadata=metadata, result=record.result).serialize())
        assert b'"pickle"' in path.read_bytes()
    expected = {table: canonical(dest, table) for table in TABLES}

    state, second = run(account, dest, **WINDOW, **own_tags)
    assert state.is_completed(), state.message
    assert second.chunks_from_cache == second.chunks == first.chunks
    assert second.requests == 0 and second.rows == first.rows
    for table in TABLES:
        pd.testing.assert_frame_equal(canonical(dest, table), expected[table])


def test_a_run_killed_mid_export_then_rerun_gives_the_uninterrupted_tables(prefect_harness, account, tmp_path, monkeypatch):
    one_order_per_chunk(monkeypatch)  # else nothing might be left to resume from cache
    # Its own tag list gives chunk cache keys that no other test of the session has filled.
    own_tags = {"dicom_tag_id_list": ["PatientName", "StudyDate", "Modality", "PixelSpacing", "SeriesNumber"]}
    reference = tmp_path / "reference"
    _, expected = run(account, reference, cache_hours=0, **WINDOW, **own_tags)
    dest = tmp_path / "export"
    _, good = run(account, dest, cache_hours=0, study_date_from=DAY1, **own_tags)
    previous = {t: canonical(dest, t) for t in TABLES}

    real = PostDicomClient.get_dicom_tag_content
    victim = {}

    def dies_on_one_order(self, **kwargs):
        victim.setdefault("uuid", kwargs["patient_order_uuid"])
        if kwargs["patient_order_uuid"] == victim["uuid"]:
            raise RuntimeError("worker killed")
        return real(self, **kwargs)

    monkeypatch.setattr(PostDicomClient, "get_dicom_tag_content", dies_on_one_order)
    state, _ = run(account, dest, **WINDOW, **own_tags)
    assert state.is_failed()
    for table in TABLES:
        pd.testing.assert_frame_equal(canonical(dest, table), previous[table])
    assert not (dest / "orders" / f"export_date={DAY2}").exists()
    assert all("export_date=" in f and f.endswith(".parquet") for f in visible_parquet(dest))

    monkeypatch.setattr(PostDicomClient, "get_dicom_tag_content", real)
    state, resumed = run(account, dest, **WINDOW, **own_tags)
    assert state.is_completed()
    for table in TABLES:
        pd.testing.assert_frame_equal(canonical(dest, table), canonical(reference, table))
    assert resumed.rows == expected.rows
    assert resumed.chunks == 4
    assert resumed.chunks_from_cache == resumed.chunks - 2, "only the failed chunk and DAY2's (never reached) are fetched"
    assert resumed.requests < expected.requests
    assert good.rows["orders"] == 3


LATE_NIGHT = dt.date(2001, 2, 4)
"""A study date no other test uses: the scheduled-night tests export around it."""


@pytest.fixture(scope="module")
def late_study(account, tmp_path_factory):
    """One study dated :data:`LATE_NIGHT`."""
    spec = StudySpec("Late^Arrival", "EXP-LATE", "CT", series_count=1, instances_per_series=1, study_date=LATE_NIGHT,
                     accession_number="EXP-L1", seed="exp-late")
    paths = write_study(tmp_path_factory.mktemp("late-disk"), spec, suffix=".dcm")
    with account.client() as client:
        client.store_instances(paths)
    return spec


def run_scheduled(account, destination: Path, scheduled: dt.datetime, **parameters):
    """Create a run Scheduled for ``scheduled`` through the API (as a schedule does), then execute it here."""
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(nightly_order_export, state=Scheduled(scheduled_time=scheduled))
    parameters = dict(credentials=account.credentials(), destination=str(destination), **parameters)
    state = run_flow(nightly_order_export, flow_run=flow_run, parameters=parameters, return_type="state")
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(flow_run.id).name
    return state, state.result(raise_on_failure=False), name


@pytest.mark.parametrize(
    ("scheduled", "night"),
    [
        (dt.datetime(2001, 2, 5, 23, 59, 59, 600000), LATE_NIGHT),  # started late: still the 4th's night
        (dt.datetime(2001, 2, 5, 0, 0, 0, 400000), LATE_NIGHT),  # on time
        (dt.datetime(2001, 2, 4, 23, 59, 59, 600000), LATE_NIGHT - dt.timedelta(days=1)),  # the night before
    ],
)
def test_default_night_is_the_one_before_the_scheduled_start_in_the_time_zone(
    prefect_harness, account, late_study, tmp_path, scheduled, night
):
    tokyo = ZoneInfo("Asia/Tokyo")
    state, summary, name = run_scheduled(
        account, tmp_path / "export", scheduled.replace(tzinfo=tokyo), time_zone="Asia/Tokyo", lookback_days=0
    )
    assert state.is_completed(), state.message
    assert (summary.study_date_from, summary.study_date_to) == (night, night), "the wall clock is years later"
    assert name == f"order-export-{night}"
    assert summary.orders == (1 if night == LATE_NIGHT else 0)
    assert sorted(p.name for p in (tmp_path / "export" / "orders").iterdir()) == [f"export_date={night}"]


def test_the_nightly_window_looks_back_for_late_arrivals(prefect_harness, account, late_study, tmp_path):
    scheduled = dt.datetime(2001, 2, 7, 0, 0, 0, 400000, tzinfo=ZoneInfo("Asia/Tokyo"))
    state, summary, name = run_scheduled(account, tmp_path / "export", scheduled, time_zone="Asia/Tokyo")
    assert state.is_completed(), state.message
    first = dt.date(2001, 2, 3)
    assert (summary.study_date_from, summary.study_date_to) == (first, dt.date(2001, 2, 6)), "default lookback: 3 days"
    assert name == f"order-export-{first}..2001-02-06"
    assert summary.orders == 1, "the study dated three nights ago is exported again"
    days = sorted(p.name for p in (tmp_path / "export" / "orders").iterdir())
    assert days == [f"export_date={first + dt.timedelta(days=n)}" for n in range(4)]


def test_resolve_window_rules(monkeypatch):
    instant = dt.datetime(2031, 5, 7, 20, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(export_module, "scheduled_start", lambda: instant)
    assert resolve_window(None, None, "UTC") == (DAY1, DAY1)
    assert resolve_window(None, None, "Asia/Tokyo") == (DAY2, DAY2)
    assert resolve_window(None, None, "UTC", 3) == (DAY1 - dt.timedelta(days=3), DAY1)
    assert resolve_window(DAY1, None, "UTC", 3) == (DAY1, DAY1), "lookback applies to the default window only"
    assert resolve_window(None, "2031-05-07", "UTC") == (DAY2, DAY2)
    with pytest.raises(ValueError, match="after"):
        resolve_window(DAY2, DAY1, "UTC")
    with pytest.raises(ValueError, match="time_zone 'Mars/Olympus'"):
        resolve_window(None, None, "Mars/Olympus")
    with pytest.raises(ValueError, match="study_date_to '7 May'"):
        resolve_window(DAY1, "7 May", "UTC")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"study_date_from": DAY2, "study_date_to": DAY1}, "study_date_from 2031-05-07 is after study_date_to"),
        ({"time_zone": "Mars/Olympus"}, "time_zone 'Mars/Olympus' is not an IANA time zone"),
        ({"lookback_days": -1}, "lookback_days"),
        ({"dicom_tag_id_list": ["NoSuchKeyword"]}, "unknown DICOM tag"),
    ],
)
def test_bad_parameters_end_the_run_failed_with_a_clear_message(prefect_harness, account, tmp_path, parameters, message):
    state, _ = run(account, tmp_path / "export", **parameters)
    assert state.is_failed()
    assert message in str(state.result(raise_on_failure=False))
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None and stored.state.is_failed(), "never left Pending"
    assert not (tmp_path / "export").exists(), "nothing written"


def test_a_wrong_buffer_setting_ends_the_run_failed_naming_it(prefect_harness, account, tmp_path, monkeypatch):
    monkeypatch.setenv(BUFFER_BYTES_ENV, "4MB")
    state, _ = run(account, tmp_path / "export", **WINDOW)
    assert state.is_failed()
    assert BUFFER_BYTES_ENV in str(state.result(raise_on_failure=False))
    assert not (tmp_path / "export").exists(), "nothing written"


def test_cached_results_and_artifacts_hold_no_secret(prefect_harness, account, tmp_path):
    dest = tmp_path / "export"
    state, summary = run(account, dest, study_date_from=DAY2)
    assert state.is_completed() and summary.orders == 1
    storage = Path(os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"])
    stored = [p for p in storage.rglob("*") if p.is_file()]
    assert stored, "chunk results are persisted for resume"
    secret = account.password.encode("utf-8")
    assert not [p for p in stored if secret in p.read_bytes()]
    chunks = [ResultRecord.deserialize(p.read_bytes()).result for p in stored if b'"postdicom-export-chunk"' in p.read_bytes()]
    assert chunks, "the chunks are stored compressed: look inside them too"
    assert not [c for c in chunks if secret in pickle.dumps(c)]
    assert account.password not in summary.model_dump_json()


def test_the_day_order_list_is_not_kept_in_memory_after_the_run(prefect_harness, account, tmp_path):
    """Prefect keeps the first read task run's context (and its state) alive with its tag-slot service.

    The service is started afresh here, so this run's first order list is the one it keeps; none of the
    orders this run read may still be in memory after it (RESULTS.md "Export flow, second pass"). Other
    tests in the same process may keep orders of their own: only objects made during this run count.
    """
    import gc

    from prefect.concurrency.services import ConcurrencySlotAcquisitionWithLeaseService

    ConcurrencySlotAcquisitionWithLeaseService.drain_all(timeout=30)
    gc.collect()
    alive_before = {id(obj) for obj in gc.get_objects() if isinstance(obj, PatientOrderSummary)}
    state, summary = run(account, tmp_path / "export", **WINDOW)
    assert state.is_completed(), state.message
    assert summary.orders == 4
    gc.collect()
    kept = [obj for obj in gc.get_objects() if isinstance(obj, PatientOrderSummary) and id(obj) not in alive_before]
    assert kept == [], "orders another test keeps alive do not count; this run's must all be gone"


def test_chunks_are_stable_when_an_order_arrives_late():
    orders = [{"PatientOrderUuid": str(uuid.UUID(int=n * 7919)), "InstitutionUuid": "i"} for n in range(1, 5001)]
    before = plan_chunks(orders, orders_per_chunk=50, concurrency=8)
    assert 64 <= len(before) <= 128 and sum(map(len, before)) == 5000
    after = plan_chunks([*orders, {"PatientOrderUuid": str(uuid.uuid4()), "InstitutionUuid": "i"}], 50, 8)
    changed = [c for c in after if c not in before]
    assert len(changed) == 1
    small = plan_chunks(orders[:10], orders_per_chunk=50, concurrency=8)
    assert len(small) > 1, "a small day still runs in parallel"


def test_packed_refs_give_back_the_refs_appended_in_order_for_a_third_of_their_memory():
    """The day's refs wait packed for their chunk (RESULTS.md, *Export memory, eighth pass*)."""
    import sys

    from flows.export_chunks import OrderRef, PackedOrderRefs

    refs = [
        OrderRef(str(uuid.UUID(int=n * 7919)), sys.intern(f"inst-{n % 3}"), f"{n:020x}") for n in range(1, 2001)
    ]
    odd = [OrderRef("ÓRDEN-ü-\ud800", "", ""), OrderRef("x" * 70_000, "inst-0", "d")]
    packed = PackedOrderRefs(refs + odd)
    assert len(packed) == 2002 and list(packed) == refs + odd
    assert list(packed) == list(packed), "iterating again gives the same refs"
    assert all(ref.institution_uuid is refs[n].institution_uuid for n, ref in zip(range(3), packed))
    as_tuples = sys.getsizeof(refs) + sum(sys.getsizeof(r) + sum(sys.getsizeof(f) for f in r[::2]) for r in refs)
    alone = PackedOrderRefs(refs)
    assert sys.getsizeof(alone._data) * 3 < as_tuples, (sys.getsizeof(alone._data), as_tuples)
    assert PackedOrderRefs(refs) == alone and PackedOrderRefs(refs[:-1]) != alone
    assert len(PackedOrderRefs()) == 0 and list(PackedOrderRefs()) == []


def test_the_planned_chunks_unpack_to_sorted_refs_and_cover_the_day_once():
    orders = [{"PatientOrderUuid": str(uuid.UUID(int=n * 7919)), "InstitutionUuid": f"i{n % 2}"} for n in range(1, 1001)]
    refs = [export_chunks.order_ref(order) for order in orders]
    chunks = plan_chunks(export_chunks.PackedOrderRefs(refs), DEFAULT_ORDERS_PER_CHUNK, 8)
    assert plan_chunks(refs, DEFAULT_ORDERS_PER_CHUNK, 8) == chunks == plan_chunks(orders, DEFAULT_ORDERS_PER_CHUNK, 8)
    unpacked = [list(chunk) for chunk in chunks]
    assert all(chunk == sorted(chunk) for chunk in unpacked)
    assert sorted(ref for chunk in unpacked for ref in chunk) == sorted(refs)


def test_a_small_day_gets_several_chunks_per_slot_largest_first():
    """Hash buckets differ in size: dealt into few of them, the largest sets the day's time (RESULTS.md)."""
    orders = [{"PatientOrderUuid": str(uuid.UUID(int=n * 7919)), "InstitutionUuid": "i"} for n in range(1, 301)]
    chunks = plan_chunks(orders, orders_per_chunk=50, concurrency=8)
    assert len(chunks) >= CHUNKS_PER_SLOT * 8 and sum(map(len, chunks)) == 300
    sizes = [len(chunk) for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True), "submitted largest first, the small ones fill the end"
    slots = [0] * 8
    for size in sizes:
        slots[slots.index(min(slots))] += size
    assert max(slots) <= 1.15 * 300 / 8, f"the slots end together: {slots}"
    assert plan_chunks(list(reversed(orders)), 50, 8) == chunks, "the same orders make the same chunks"


def test_a_thousand_order_day_at_the_defaults_makes_two_chunks_per_slot():
    """Each chunk is a task run (flow and Prefect API CPU): no more than balance needs (RESULTS.md, sixth pass)."""
    import inspect

    defaults = inspect.signature(nightly_order_export.fn).parameters
    assert defaults["orders_per_chunk"].default == DEFAULT_ORDERS_PER_CHUNK
    concurrency = defaults["concurrency"].default
    orders = [{"PatientOrderUuid": str(uuid.UUID(int=n * 7919)), "InstitutionUuid": "i"} for n in range(1, 1001)]
    chunks = plan_chunks(orders, DEFAULT_ORDERS_PER_CHUNK, concurrency)
    assert len(chunks) == CHUNKS_PER_SLOT * concurrency and sum(map(len, chunks)) == 1000


def test_chunks_average_80_to_100_percent_of_orders_per_chunk_whatever_the_days_size():
    """The chunks in flight are the export's memory: their size must not drift with the day (RESULTS.md, ninth pass)."""
    from flows.export_chunks import bucket_count

    for orders_per_chunk in (DEFAULT_ORDERS_PER_CHUNK, 50, 100, 250):
        for day in (1_000, 1_500, 3_000, 5_000, 12_000, 20_000, 75_000):
            buckets = bucket_count(day, orders_per_chunk, 8)
            if math.ceil(day / orders_per_chunk) > CHUNKS_PER_SLOT * 8:
                assert 0.8 * orders_per_chunk < day / buckets <= orders_per_chunk, (orders_per_chunk, day, buckets)
            else:
                assert buckets == CHUNKS_PER_SLOT * 8, "a small day: two chunks per slot, no more"
    counts = sorted({bucket_count(day, DEFAULT_ORDERS_PER_CHUNK, 8) for day in range(1, 200_000, 7)})
    steps = [later / earlier for earlier, later in zip(counts, counts[1:]) if earlier >= CHUNKS_PER_SLOT * 8]
    assert max(steps) <= 1.25, "the count, so every chunk, changes only when the day moves by a step"
    assert len(counts) < 40, "and those steps are few"


def test_the_day_order_list_is_read_as_it_arrives_and_let_go_once_reduced(monkeypatch):
    """Each entry becomes its OrderRef as it arrives (the same digest as read whole); the run's state keeps none."""
    import httpx

    from tests.fixtures.mock_server import Recorder, credentials_for

    entries = [{"PatientOrderUuid": str(uuid.UUID(int=n)), "InstitutionUuid": "I", "Modality": "CT"} for n in range(1, 4)]
    recorder = Recorder(lambda request: httpx.Response(200, json={"PatientOrderList": entries}))
    credentials = credentials_for(recorder)
    states = []
    real_let_go = export_chunks.let_go

    def let_go(state):
        states.append(state)
        return real_let_go(state)

    monkeypatch.setattr(export_chunks, "let_go", let_go)
    refs = list(export_chunks.list_day_orders(credentials, [""], None, DAY1).refs)
    assert [ref.patient_order_uuid for ref in refs] == [entry["PatientOrderUuid"] for entry in entries]
    assert refs == [export_chunks.order_ref(entry) for entry in entries], "the digest is the entry's, as received"
    with credentials.get_client() as client:
        whole = client.get_patient_order_list([""], study_date_from=DAY1, study_date_to=DAY1)
    assert refs == [export_chunks.order_ref(entry) for entry in whole.patient_order_list], "the cache keys of runs that read whole"
    assert len(states) == 1 and states[0].data is None
    assert recorder.paths() == ["/getpatientorderlist"] * 2

def test_the_day_listing_links_as_many_results_to_the_flow_run_for_8_orders_as_for_2(prefect_harness):
    """Prefect links each item one level inside a task's result to its run, for the rest of the flow run.

    The refs came back as a bare list, so each order's ref was linked (about 0.2 KB an order that was never
    freed, RESULTS.md "Export memory, sixth pass"); as one ``DayOrders`` they are not.
    """
    import httpx
    from prefect import flow
    from prefect.context import FlowRunContext

    from tests.fixtures.mock_server import Recorder, credentials_for

    @flow(name="day-listing-result-links")
    def result_links_after_listing(credentials) -> tuple[int, int]:
        orders = export_chunks.list_day_orders(credentials, [""], None, DAY1)
        context = FlowRunContext.get()
        assert context is not None
        return len(context.run_results), len(orders.refs)

    links = {}
    for count in (2, 8):
        entries = [{"PatientOrderUuid": str(uuid.UUID(int=n)), "InstitutionUuid": "I"} for n in range(1, count + 1)]
        recorder = Recorder(lambda request, entries=entries: httpx.Response(200, json={"PatientOrderList": entries}))
        links[count], listed = result_links_after_listing(credentials_for(recorder))
        assert listed == count
    assert links[8] == links[2], "an order's ref was linked to the listing run: the flow's memory grows with the day"


def test_each_chunk_run_takes_its_orders_from_the_day_listing_run(prefect_harness, account, tmp_path):
    """Prefect's run graph keeps its edge from the day's listing run to each chunk run (the ``orders`` input)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state, summary = run(account, tmp_path / "export", **WINDOW)
    assert state.is_completed(), state.message
    run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    deadline = time.monotonic() + 60
    while True:
        with get_client(sync_client=True) as prefect_client:
            runs = prefect_client.read_task_runs(flow_run_filter=run_filter)
        listings = {r.id for r in runs if r.name.startswith("export-day-orders")}
        chunks = [r for r in runs if r.name.startswith("export-order-chunk")]
        if (len(listings) == 2 and len(chunks) == summary.chunks) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(listings) == 2 and len(chunks) == summary.chunks >= 2
    upstream = [{i.id for i in chunk.task_inputs["orders"]} for chunk in chunks]
    assert all(len(ids) == 1 and ids <= listings for ids in upstream), upstream
    assert {next(iter(ids)) for ids in upstream} == listings, "each day's chunks come from that day's listing"


def test_at_each_commit_the_flow_run_links_no_chunk_result(prefect_harness, account, tmp_path, monkeypatch):
    """Each chunk's result is unlinked once written: what Prefect links to the flow run does not grow with the chunks.

    Only the days' listing runs stay linked (one state each), RESULTS.md "Export memory, sixth pass".
    """
    from prefect.context import FlowRunContext

    from flows.parquet_writer import PartitionSet

    linked_states: list[int] = []
    real_commit = PartitionSet.commit

    def commit(self, *args, **kwargs):
        context = FlowRunContext.get()
        assert context is not None
        linked_states.append(len({id(state) for state, _, _ in context.run_results.values()}))
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(PartitionSet, "commit", commit)
    one_order_per_chunk(monkeypatch)  # DAY1 has three chunk runs that could stay linked
    state, summary = run(account, tmp_path / "export", **WINDOW)
    assert state.is_completed(), state.message
    assert summary.chunks == 4
    assert linked_states == [1, 2], "one listing run per day so far, and no chunk run"


def test_at_each_commit_no_written_chunk_still_holds_its_tables(prefect_harness, account, tmp_path, monkeypatch):
    """A written chunk's Arrow tables go at once, not when a full garbage collection breaks Prefect's future cycles.

    The garbage collector is off for the run, so whatever only it would free stays: without
    ``ChunkRows.release`` DAY1's three written chunks still hold their tables at its commit
    (RESULTS.md, "Export memory, tenth pass").
    """
    import gc

    from flows.parquet_writer import PartitionSet

    def chunks_holding_tables() -> list[export_chunks.ChunkRows]:
        return [o for o in gc.get_objects() if isinstance(o, export_chunks.ChunkRows) and o.tables]

    holding: list[int] = []
    real_commit = PartitionSet.commit

    def commit(self, *args, **kwargs):
        holding.append(sum(1 for o in chunks_holding_tables() if all(o is not e for e in earlier)))
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(PartitionSet, "commit", commit)
    one_order_per_chunk(monkeypatch)
    gc.collect()
    earlier = chunks_holding_tables()  # other tests' chunks still in use: not this run's
    collecting = gc.isenabled()
    gc.disable()
    try:
        state, summary = run(account, tmp_path / "export", **WINDOW)
    finally:
        if collecting:
            gc.enable()
    assert state.is_completed(), state.message
    assert summary.chunks == 4 and summary.rows["tags"] > 0
    assert holding == [0, 0], "written chunks still holding their tables at each day's commit"
