"""``nightly_order_export``: orders, QIDO results and DICOM tag contents of a study-date window → Parquet.

Decisions (and why):

* **export_date = study date.** The window is exported one day at a time and
  each day becomes its own partition ``<table>/export_date=<day>/``. Partitions
  of different runs never overlap, so a nightly run, a rerun and a month's
  backfill compose without duplicate rows; rerunning a window replaces exactly
  its days (an empty day is written as an empty partition, so orders deleted
  since the last run disappear). A day's four partitions are committed
  together after all its orders were fetched; a failure leaves that day's
  previous partitions untouched (days already committed stay committed).
  A partition holds what the run's filters selected (institutions,
  modalities, tags; recorded in its manifest): keep a schedule's filters fixed.
* **Chunks, not one task run per order.** 5,000 orders as 5,000 task runs
  cost ~20 s of engine overhead and flood the API with events; the orders of
  a day are dealt into chunks of about ``orders_per_chunk`` (tens of task
  runs). A chunk task calls the client directly for its orders (properties,
  tag contents, QIDO study, QIDO series): the client is the layer below the
  tasks, and nested task runs would bring the overhead back. Orders are dealt
  by a hash of their UUID into buckets, so an order arriving late changes one
  chunk, not every chunk after it; the bucket count moves in steps of at most
  a quarter, so a chunk averages 80 to 100 % of ``orders_per_chunk`` whatever
  the day's size (the chunks in flight are the export's memory). Buckets differ in
  size, so a day gets at least two per ``concurrency`` slot, submitted
  largest first: a slot that finishes early takes the next, and the slots end
  together instead of waiting for the largest bucket.
* **Cache per chunk, for resume.** The chunk task is cached on its inputs: the
  block (hashed by Prefect with the password masked: user name and web
  address keep accounts apart), the orders' UUIDs, institutions and a digest
  of their order-list entries (an order that changed gets fetched again), the
  tag list and :data:`~flows.export_schema.SCHEMA_VERSION`. A rerun after a
  failure fetches only the chunks that failed or never ran. The cached value
  is the chunk's typed rows as Arrow tables (no secret), pickled and
  compressed with zlib by :class:`~flows.export_chunks.ChunkRowsSerializer`
  (about a tenth of Prefect's base64 pickle), under
  ``PREFECT_RESULTS_LOCAL_STORAGE_PATH`` (default
  ``~/.prefect/storage``): that is patient data at rest. Point that setting (or
  ``PREFECT_DEFAULT_RESULT_STORAGE_BLOCK``) at encrypted storage, shorten
  ``cache_hours``, or set ``cache_hours=0`` to cache nothing. Prefect does not
  delete expired files; purge that folder on your retention schedule.
* **Bounded everything.** At most ``concurrency`` chunks run (one request at a
  time each) and one more waits to start, at most that many finished chunks
  wait to be written, rows
  stream through :class:`~flows.parquet_writer.PartitionWriter` row groups,
  the day's four tables buffering at most ``POSTDICOM_EXPORT_BUFFER_BYTES``
  (1 MiB) together: memory depends on the chunk size, not on the window. The one thing
  proportional to a day is its orders as :class:`~flows.export_chunks.OrderRef`,
  packed (:class:`~flows.export_chunks.PackedOrderRefs`, about 70 bytes an
  order) until their chunk is submitted: the day's order list, which the API does not
  page, is read as it arrives
  (:meth:`~postdicom.PostDicomClient.iter_patient_order_list`, in one
  ``export-day-orders`` task run per day) and each entry reduced to its ref
  at once, never held whole. The chunks' Arrow data lives in the C library's
  allocator (:func:`~flows.staged_partition.export_memory_pool`): Arrow's
  default pool kept its freed pages per thread. The process's peak RSS still
  grows a little with the day (about 0.5 KB an order, 1,000 → 20,000 orders;
  3.1 KB in the third pass, 1.9 in the fourth, 1.2 in the fifth, 0.85 in the
  ninth), most of it free memory the worker threads' heaps keep while the
  chunks are fetched (``benchmarks/RESULTS.md``, *Export memory, fourth pass*
  to *tenth pass*).
  Each Parquet file is closed after 64 row groups, since an open writer keeps
  every row group's metadata. Prefect's links from results to
  task runs, which it never frees, are kept to one per day: the day's refs
  come back as one :class:`~flows.export_chunks.DayOrders`, and each chunk's
  rows are unlinked once written (:func:`~flows.window.unlink_result`) and
  their tables let go (:meth:`~flows.export_chunks.ChunkRows.release`: Prefect's
  futures hold them in reference cycles until a full garbage collection).
* **The tables are Prefect assets.** Once every day of the window is
  committed, one task run materializes the four tables (keyed by their
  location, upstream the account's host, metadata per date): see
  :mod:`flows.assets`. A failed run materializes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from blocks import PostDicomCredentials

from .export_chunks import DEFAULT_ORDERS_PER_CHUNK, fetch_order_chunk, list_day_orders, plan_chunks
from .export_schema import ORDERS, SCHEMA_VERSION, TABLES, normalize_tag
from .assets import materialize_export_tables
from .parquet_writer import CommittedPartition, Destination, PartitionSet, new_run_id
from .staged_partition import buffer_bytes, export_memory_pool
from .forms import ACCOUNT, NONE_AS_EMPTY, TIME_ZONE, OptionalDate, form
from .reporting import run_name_or
from .window import submit_bounded, unlink_result

DEFAULT_DICOM_TAGS: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight", "PatientSize",
    "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber", "ReferringPhysicianName",
    "InstitutionName", "StationName", "Manufacturer", "ManufacturerModelName",
    "Modality", "SeriesDescription", "SeriesNumber", "BodyPartExamined", "ProtocolName",
    "SliceThickness", "PixelSpacing", "Rows", "Columns", "KVP", "ContrastBolusAgent",
)
"""Tags exported by default: who, when, where, which device, what was imaged and at what resolution.

Series-constant attributes, so ``tags`` stays one row per series and tag;
per-instance ones (ImagePositionPatient, InstanceNumber) would multiply it
by the instance count.
"""

MAX_CONCURRENCY = 32
"""Ceiling of the ``concurrency`` parameter: each worker holds one open request to the account."""


DEFAULT_LOOKBACK_DAYS = 3
"""Days before the night that a default-window run exports again (late arrivals)."""
MAX_LOOKBACK_DAYS = 31


def time_zone_named(time_zone: str) -> ZoneInfo:
    """The IANA time zone ``time_zone``; a clear error naming the parameter when there is none."""
    try:
        return ZoneInfo(str(time_zone))
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"time_zone {time_zone!r} is not an IANA time zone name (e.g. 'Europe/Paris')") from None


def scheduled_start() -> dt.datetime:
    """When the flow run was scheduled to start (Prefect's ``expected_start_time``; now outside a run).

    The default night hangs on this, not on the wall clock: a run that starts
    a little early or late, or a retry the next day, exports the night it was
    scheduled for.
    """
    return flow_run.scheduled_start_time


def _date_parameter(name: str, value: dt.date | str | None) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def resolve_window(
    study_date_from: dt.date | str | None,
    study_date_to: dt.date | str | None,
    time_zone: str,
    lookback_days: int = 0,
) -> tuple[dt.date, dt.date]:
    """The inclusive study-date window.

    None given: the night before the run's scheduled start in ``time_zone``,
    and the ``lookback_days`` days before it (late arrivals). One given: that
    day. Both: that window (``lookback_days`` does not apply).
    """
    zone = time_zone_named(time_zone)
    first = _date_parameter("study_date_from", study_date_from)
    last = _date_parameter("study_date_to", study_date_to)
    if first is None and last is None:
        if not 0 <= int(lookback_days) <= MAX_LOOKBACK_DAYS:
            raise ValueError(f"lookback_days must be between 0 and {MAX_LOOKBACK_DAYS}, not {lookback_days}")
        night = scheduled_start().astimezone(zone).date() - dt.timedelta(days=1)
        return night - dt.timedelta(days=int(lookback_days)), night
    first, last = first or last, last or first
    assert first is not None and last is not None
    if first > last:
        raise ValueError(f"study_date_from {first} is after study_date_to {last}")
    return first, last


@run_name_or("order-export")
def _run_name() -> str:
    """``order-export-2026-03-14`` or ``order-export-2026-03-01..2026-03-31`` (the window, resolved)."""
    parameters = flow_run.parameters
    first, last = resolve_window(
        parameters.get("study_date_from"),
        parameters.get("study_date_to"),
        parameters.get("time_zone") or "UTC",
        parameters.get("lookback_days", DEFAULT_LOOKBACK_DAYS),
    )
    return f"order-export-{first}" if first == last else f"order-export-{first}..{last}"


def tag_ids(dicom_tag_id_list: Sequence[str] | None) -> list[str]:
    """Tags as 8-hex ids, in order, without duplicates; an unknown one fails before any request."""
    result: list[str] = []
    for item in dicom_tag_id_list or DEFAULT_DICOM_TAGS:
        tag = normalize_tag(item)
        if tag is None:
            raise ValueError(f"unknown DICOM tag {item!r}")
        if tag not in result:
            result.append(tag)
    return result


def redact_url(url: str) -> str:
    """A destination fit for logs and artifacts: user info (``s3://key:secret@bucket``) removed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


# --------------------------------------------------------------------------
# The flow
# --------------------------------------------------------------------------


class PartitionSummary(BaseModel):
    table: str
    export_date: dt.date
    rows: int
    path: str


class ExportSummary(BaseModel):
    """What ``nightly_order_export`` returns (also shown in its artifacts)."""

    destination: str
    study_date_from: dt.date
    study_date_to: dt.date
    run_id: str
    schema_version: str = SCHEMA_VERSION
    orders: int = 0
    rows: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    partitions: list[PartitionSummary] = Field(default_factory=list)
    orders_per_modality: dict[str, int] = Field(default_factory=dict)
    orders_per_institution: dict[str, int] = Field(default_factory=dict)
    chunks: int = 0
    chunks_from_cache: int = 0
    requests: int = Field(0, description="API calls made by chunks fetched in this run (cached chunks make none).")
    vanished_orders: int = 0
    seconds: float = 0.0


def _publish(summary: ExportSummary) -> None:
    """Artifacts: the destination and totals, rows per partition, orders per modality and institution."""
    create_markdown_artifact(
        key="order-export-summary",
        markdown=(
            f"# Order export {summary.study_date_from} → {summary.study_date_to}\n\n"
            f"- destination: `{summary.destination}`\n- orders: {summary.orders}\n"
            + "".join(f"- {table} rows: {count}\n" for table, count in summary.rows.items())
            + f"- chunks: {summary.chunks} ({summary.chunks_from_cache} from cache)\n"
            f"- requests: {summary.requests}\n- schema version: {summary.schema_version}\n"
            f"- seconds: {summary.seconds:.1f}\n"
        ),
        description="Where the export was written and how much",
    )
    create_table_artifact(
        key="order-export-partitions",
        table=[p.model_dump(mode="json") for p in summary.partitions],
        description="Rows per table and partition",
    )
    create_table_artifact(
        key="order-export-orders-by-modality",
        table=[{"modality": m, "orders": n} for m, n in sorted(summary.orders_per_modality.items())],
        description="Orders per modality",
    )
    create_table_artifact(
        key="order-export-orders-by-institution",
        table=[{"institution_uuid": i, "orders": n} for i, n in sorted(summary.orders_per_institution.items())],
        description="Orders per institution",
    )


@dataclass
class Progress:
    """The run's progress artifact, updated at most every ``interval`` seconds (each update is an API call)."""

    artifact_id: Any
    days: int
    interval: float = 2.0
    last: float = 0.0

    def update(self, days_done: float, *, force: bool = False) -> None:
        if force or time.monotonic() - self.last >= self.interval:
            update_progress_artifact(self.artifact_id, progress=round(100.0 * days_done / self.days, 1))
            self.last = time.monotonic()


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


@flow(name="nightly-order-export", flow_run_name=_run_name, validate_parameters=True)
def nightly_order_export(
    credentials: Annotated[PostDicomCredentials, ACCOUNT],
    destination: Annotated[
        str, form("Destination", "Folder or fsspec URL (e.g. s3://bucket/prefix) the four tables are written under.")
    ],
    study_date_from: Annotated[
        OptionalDate,
        form("First study date", "First day (YYYY-MM-DD); empty: the scheduled night and its lookback days.", blank=True),
    ] = None,
    study_date_to: Annotated[
        OptionalDate,
        form("Last study date", "Last day (YYYY-MM-DD); empty: the first date alone (or the night).", blank=True),
    ] = None,
    institution_uuid_list: Annotated[
        list[str], NONE_AS_EMPTY, form("Institutions", "Institution UUIDs to export; empty: all of the account's.")
    ] = [],  # noqa: B006 - never mutated; a list keeps the form free of a list/None toggle
    modality_list: Annotated[
        list[str], NONE_AS_EMPTY, form("Modalities", "Modalities to export (CT, MR, ...); empty: every modality.")
    ] = [],  # noqa: B006
    dicom_tag_id_list: Annotated[
        list[str],
        NONE_AS_EMPTY,
        form("DICOM tags", "Tags of the tags table, as keywords or 8-hex ids; empty: the default list."),
    ] = [],  # noqa: B006
    time_zone: Annotated[str, TIME_ZONE] = "UTC",
    lookback_days: Annotated[
        int,
        form(
            "Lookback days",
            "Nights before the scheduled one exported again, for late images (default window only).",
            ge=0,
            le=MAX_LOOKBACK_DAYS,
        ),
    ] = DEFAULT_LOOKBACK_DAYS,
    concurrency: Annotated[
        int, form("Concurrency", "Chunks fetched at once (each holds one open request).", ge=1, le=MAX_CONCURRENCY)
    ] = 8,
    orders_per_chunk: Annotated[
        int, form("Orders per chunk", "Orders fetched by one task run (on average at most this many).", ge=1)
    ] = DEFAULT_ORDERS_PER_CHUNK,
    cache_hours: Annotated[
        float, form("Cache hours", "How long a rerun reuses fetched chunks (patient data at rest); 0: no cache.", ge=0)
    ] = 24.0,
    refresh_cache: Annotated[bool, form("Refresh cache", "Fetch every chunk anew, ignoring cached ones.")] = False,
) -> ExportSummary:
    """Export the window's orders, QIDO study/series matches and DICOM tag contents to Parquet.

    Writes ``destination/<table>/export_date=YYYY-MM-DD/part-*.parquet`` for
    ``orders``, ``studies``, ``series`` and ``tags`` (schemas in
    ``docs/export-schema.md``), one partition per study date of the window,
    each replaced whole. ``destination`` is a folder or an fsspec URL.
    With no dates (schedules), the window is the night before the run's
    scheduled start in ``time_zone`` plus the ``lookback_days`` days before it,
    so studies whose images arrive late reach the tables on a later night.
    ``institution_uuid_list`` defaults to all of the account's institutions;
    ``dicom_tag_id_list`` to :data:`DEFAULT_DICOM_TAGS`. ``cache_hours=0``
    turns the per-chunk cache off; ``refresh_cache`` fetches everything anew.
    """
    started = time.monotonic()
    logger = get_run_logger()
    if not 1 <= concurrency <= MAX_CONCURRENCY or orders_per_chunk < 1 or cache_hours < 0:
        raise ValueError(f"need 1 <= concurrency <= {MAX_CONCURRENCY}, orders_per_chunk >= 1, cache_hours >= 0")
    first, last = resolve_window(study_date_from, study_date_to, time_zone, lookback_days)
    tags = tag_ids(dicom_tag_id_list)
    shared_buffer = buffer_bytes()
    target = Destination(destination)
    run_id = str(flow_run.id or "") or new_run_id()
    summary = ExportSummary(destination=redact_url(destination), study_date_from=first, study_date_to=last, run_id=run_id)
    modality_counts: Counter[str] = Counter()
    institution_counts: Counter[str] = Counter()
    chunk_task = (
        fetch_order_chunk.with_options(cache_policy=NO_CACHE, persist_result=False)
        if cache_hours == 0
        else fetch_order_chunk.with_options(cache_expiration=dt.timedelta(hours=cache_hours), refresh_cache=refresh_cache)
    )
    manifest = {
        "window": {"from": first.isoformat(), "to": last.isoformat()},
        "filters": {
            "institution_uuid_list": institution_uuid_list or "all",
            "modality_list": modality_list or "all",
            "dicom_tag_id_list": tags,
        },
        "flow_run_id": run_id,
    }
    days = _days(first, last)
    written: list[CommittedPartition] = []
    progress = Progress(create_progress_artifact(progress=0.0, key="order-export-progress", description="Share of the window exported"), len(days))
    logger.info("Exporting %d day(s) %s..%s to %s", len(days), first, last, summary.destination)

    with ThreadPoolTaskRunner[Any](max_workers=concurrency) as runner:
        for number, day in enumerate(days, start=1):
            day_orders = list_day_orders(credentials, list(institution_uuid_list or [""]), modality_list or None, day)
            chunks = plan_chunks(day_orders.refs, orders_per_chunk, concurrency)
            upstream = day_orders.upstream()
            del day_orders
            parameters = {"credentials": credentials, "dicom_tag_id_list": tags, "schema_version": SCHEMA_VERSION}
            schemas = {name: t.schema for name, t in TABLES.items()}
            with PartitionSet(
                target, schemas, day, run_id, buffer_bytes=shared_buffer, memory_pool=export_memory_pool()
            ) as parts:
                if parts.repaired:
                    logger.warning("Finished the interrupted commit of %s (a crashed run's)", ", ".join(map(str, parts.repaired)))
                submit = lambda chunk: runner.submit(  # noqa: E731
                    chunk_task, {**parameters, "orders": list(chunk)}, dependencies=upstream
                )
                # One chunk more than the pool's threads is submitted: it waits in the pool and starts as soon
                # as a thread frees, while this thread writes the finished chunk (no slot idles meanwhile).
                for done, (_, rows, future) in enumerate(submit_bounded(submit, chunks, concurrency + 1), 1):
                    cached = future.state.name == "Cached"
                    for name, table in rows.tables.items():
                        parts.write(name, table)
                    orders = rows.tables[ORDERS.name]
                    modality_counts.update(m or "(none)" for m in orders.column("modality").to_pylist())
                    institution_counts.update(i or "(none)" for i in orders.column("institution_uuid").to_pylist())
                    summary.orders += rows.orders
                    summary.chunks += 1
                    summary.chunks_from_cache += cached
                    summary.requests += 0 if cached else rows.requests
                    summary.vanished_orders += len(rows.vanished)
                    progress.update(number - 1 + done / len(chunks))
                    unlink_result(rows)
                    rows.release()
                committed = parts.commit(manifest)
            written.extend(committed)
            for partition in committed:
                summary.rows[partition.table] += partition.rows
                summary.partitions.append(
                    PartitionSummary(table=partition.table, export_date=day, rows=partition.rows, path=redact_url(partition.path))
                )
            progress.update(number, force=True)
            logger.info("%s: %d chunk(s) committed", day, len(chunks))

    materialize_export_tables(credentials, target, TABLES, written, run_id)
    summary.orders_per_modality = dict(modality_counts)
    summary.orders_per_institution = dict(institution_counts)
    summary.seconds = round(time.monotonic() - started, 3)
    _publish(summary)
    logger.info(
        "Exported %d orders (%s) in %.1f s", summary.orders,
        ", ".join(f"{k}={v}" for k, v in summary.rows.items()), summary.seconds,
    )
    return summary


__all__ = ["DEFAULT_DICOM_TAGS", "ExportSummary", "nightly_order_export", "resolve_window"]
