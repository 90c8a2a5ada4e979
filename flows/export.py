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
  by a hash of their UUID into a power-of-two number of buckets, so an order
  arriving late changes one chunk, not every chunk after it.
* **Cache per chunk, for resume.** The chunk task is cached on its inputs: the
  block (hashed by Prefect with the password masked: user name and web
  address keep accounts apart), the orders' UUIDs, institutions and a digest
  of their order-list entries (an order that changed gets fetched again), the
  tag list and :data:`~flows.export_schema.SCHEMA_VERSION`. A rerun after a
  failure fetches only the chunks that failed or never ran. The cached value
  is the chunk's typed rows as Arrow tables (compact, no secret) pickled by
  Prefect under ``PREFECT_RESULTS_LOCAL_STORAGE_PATH`` (default
  ``~/.prefect/storage``): that is patient data at rest. Point that setting (or
  ``PREFECT_DEFAULT_RESULT_STORAGE_BLOCK``) at encrypted storage, shorten
  ``cache_hours``, or set ``cache_hours=0`` to cache nothing. Prefect does not
  delete expired files; purge that folder on your retention schedule.
* **Bounded everything.** At most ``concurrency`` chunks run (one request at a
  time each), at most ``concurrency`` finished chunks wait to be written, rows
  stream through :class:`~flows.parquet_writer.PartitionWriter` row groups:
  memory depends on the chunk size, not on the window (the day's order list,
  which the API does not page, is the one thing proportional to it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from blocks import PostDicomCredentials
from postdicom import PostDicomClient
from postdicom.errors import NotFoundError
from postdicom.models import PatientOrderProperties, PatientOrderSummary
from tasks import get_patient_order_list
from tasks.policies import transient_retry_options

from .export_schema import ORDERS, SCHEMA_VERSION, SERIES, STUDIES, TABLES, normalize_tag, order_row, series_rows, study_rows, tag_rows
from .parquet_writer import Destination, PartitionSet, new_run_id
from .forms import ACCOUNT, NONE_AS_EMPTY, TIME_ZONE, form
from .reporting import run_name_or
from .window import submit_bounded

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
# Planning chunks
# --------------------------------------------------------------------------


class OrderRef(NamedTuple):
    """What a chunk needs of an order-list entry: its ids and a digest of the entry (for the cache key).

    The day's order list is the one thing held for the whole day (the API
    does not page it), so each order is kept as this tuple of three strings
    (the institution shared between its orders), about 0.25 KB, instead of
    the answer's parsed entry (about 3.5 KB with its raw dict).
    """

    patient_order_uuid: str
    institution_uuid: str
    digest: str


def order_ref(entry: PatientOrderSummary | Mapping[str, Any]) -> OrderRef:
    """The entry's :class:`OrderRef`; the digest changes whenever anything in the entry does."""
    summary = entry if isinstance(entry, PatientOrderSummary) else PatientOrderSummary.model_validate(dict(entry))
    digest = hashlib.sha256(json.dumps(summary.raw, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:20]
    return OrderRef(
        str(summary.patient_order_uuid or "").lower(),
        sys.intern(str(summary.institution_uuid or "").lower()),
        digest,
    )


def plan_chunks(
    entries: Sequence[OrderRef | PatientOrderSummary | Mapping[str, Any]], orders_per_chunk: int, concurrency: int
) -> list[list[OrderRef]]:
    """Deal the orders (refs, or order-list entries) into stable chunks: bucket = hash(order UUID) mod a power of two.

    At least ``concurrency`` buckets (when there are that many orders) so a
    small day still runs in parallel; sorted inside a bucket so the same
    orders always make the same chunk (the same cache key).
    """
    refs = [e if isinstance(e, OrderRef) else order_ref(e) for e in entries]
    if not refs:
        return []
    wanted = max(math.ceil(len(refs) / max(1, orders_per_chunk)), min(concurrency, len(refs)))
    buckets = 1 << (wanted - 1).bit_length()
    chunks: list[list[OrderRef]] = [[] for _ in range(buckets)]
    for ref in refs:
        chunks[int(hashlib.sha1(ref.patient_order_uuid.encode()).hexdigest()[:8], 16) % buckets].append(ref)
    return [sorted(c) for c in chunks if c]


DAY_ORDER_LIST = get_patient_order_list.with_options(
    cache_policy=NO_CACHE, persist_result=False, cache_result_in_memory=False
)
"""The documented order-list task, as the export reads a day: never cached, never stored, not kept in memory.

Not cached: a rerun must see orders added or deleted since. Not stored or
kept: the parsed answer (models plus raw dicts, ~3.5 KB an order) is reduced
to :class:`OrderRef` as soon as it arrives (:func:`list_day_orders`).
"""


def list_day_orders(
    credentials: PostDicomCredentials, institution_uuid_list: list[str], modality_list: list[str] | None, day: dt.date
) -> list[OrderRef]:
    """GetPatientOrderList for one study date (a ``get_patient_order_list`` run), reduced to :class:`OrderRef`."""
    answer = DAY_ORDER_LIST(
        credentials,
        institution_uuid_list=institution_uuid_list,
        modality_list=modality_list,
        study_date_from=day,
        study_date_to=day,
    )
    return [order_ref(entry) for entry in answer.patient_order_list]


# --------------------------------------------------------------------------
# The chunk task
# --------------------------------------------------------------------------


@dataclass
class ChunkRows:
    """A chunk's typed rows per table (what is cached: compact Arrow tables, no secret).

    ``vanished``: orders deleted between the order list and their fetch (left out).
    """

    tables: dict[str, pa.Table]
    orders: int
    requests: int
    vanished: list[str] = field(default_factory=list)


def fetch_order(client: PostDicomClient, ref: OrderRef, tags: Sequence[str]) -> tuple[dict[str, list[dict[str, Any]]], int] | None:
    """One order's rows for the four tables and the number of requests made; None if it vanished."""
    try:
        answer: PatientOrderProperties = client.get_patient_order_properties(
            patient_order_institution_uuid=ref.institution_uuid, patient_order_uuid=ref.patient_order_uuid
        )
    except NotFoundError:
        return None
    requests = 1
    # The tables read the answer as sent (docs/export-schema.md: every key, whatever the model covers).
    properties = answer.raw
    rows: dict[str, list[dict[str, Any]]] = {"orders": [order_row(properties)], "studies": [], "series": [], "tags": []}
    study_uid = answer.study_instance_uid
    if study_uid:
        contents = client.get_dicom_tag_content(
            patient_order_institution_uuid=ref.institution_uuid,
            patient_order_uuid=ref.patient_order_uuid,
            dicom_tag_id_list=list(tags),
        )
        rows["tags"] = tag_rows(properties, [entry.raw for entry in contents.dicom_tag_content_list])
        studies = client.search_for_studies({"StudyInstanceUID": study_uid}, fields=STUDIES.dicom_keywords)
        rows["studies"] = study_rows(properties, studies)
        series = client.search_for_series(study_uid, fields=SERIES.dicom_keywords)
        rows["series"] = series_rows(properties, series)
        requests += 3
    return rows, requests


@task(
    name="export-order-chunk",
    **transient_retry_options(),
    cache_policy=INPUTS + TASK_SOURCE,
    cache_expiration=dt.timedelta(hours=24),
    cache_result_in_memory=False,
)
def fetch_order_chunk(
    credentials: PostDicomCredentials, orders: list[OrderRef], dicom_tag_id_list: list[str], schema_version: str
) -> ChunkRows:
    """Properties, tag contents, QIDO study and series for a chunk of orders → typed rows per table.

    ``schema_version`` is not read: it is an input so that cached rows of an
    older schema are never reused (see the module docstring on caching).
    ``cache_result_in_memory=False``: otherwise Prefect's result store keeps
    every chunk's tables in an in-process LRU of 1,000 entries until the flow
    ends (measured: ~6 KB of Arrow per order), although each is written and
    dropped as soon as it arrives; the persisted copy still serves resume.
    """
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    requests = 0
    vanished: list[str] = []
    with credentials.get_client() as client:
        for ref in orders:
            fetched = fetch_order(client, ref, dicom_tag_id_list)
            if fetched is None:
                vanished.append(ref.patient_order_uuid)
                requests += 1
                continue
            for name, table_rows in fetched[0].items():
                rows[name].extend(table_rows)
            requests += fetched[1]
    if vanished:
        get_run_logger().warning("%d order(s) were deleted while the export ran; left out", len(vanished))
    tables = {name: pa.Table.from_batches([TABLES[name].batch(rows[name])]) for name in TABLES}
    return ChunkRows(tables=tables, orders=len(orders) - len(vanished), requests=requests, vanished=vanished)


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
        dt.date | None,
        form("First study date", "First day to export; empty: the scheduled night and its lookback days."),
    ] = None,
    study_date_to: Annotated[
        dt.date | None, form("Last study date", "Last day to export; empty: the first date alone (or the night).")
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
    orders_per_chunk: Annotated[int, form("Orders per chunk", "Orders fetched by one task run.", ge=1)] = 50,
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
    progress = Progress(create_progress_artifact(progress=0.0, key="order-export-progress", description="Share of the window exported"), len(days))
    logger.info("Exporting %d day(s) %s..%s to %s", len(days), first, last, summary.destination)

    with ThreadPoolTaskRunner[Any](max_workers=concurrency) as runner:
        for number, day in enumerate(days, start=1):
            refs = list_day_orders(credentials, list(institution_uuid_list or [""]), modality_list or None, day)
            chunks = plan_chunks(refs, orders_per_chunk, concurrency)
            del refs
            parameters = {"credentials": credentials, "dicom_tag_id_list": tags, "schema_version": SCHEMA_VERSION}
            with PartitionSet(target, {name: t.schema for name, t in TABLES.items()}, day, run_id) as parts:
                if parts.repaired:
                    logger.warning("Finished the interrupted commit of %s (a crashed run's)", ", ".join(map(str, parts.repaired)))
                submit = lambda chunk: runner.submit(chunk_task, {**parameters, "orders": chunk})  # noqa: E731
                for done, (_, rows, future) in enumerate(submit_bounded(submit, chunks, concurrency), 1):
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
                committed = parts.commit(manifest)
            for partition in committed:
                summary.rows[partition.table] += partition.rows
                summary.partitions.append(
                    PartitionSummary(table=partition.table, export_date=day, rows=partition.rows, path=redact_url(partition.path))
                )
            progress.update(number, force=True)
            logger.info("%s: %d chunk(s) committed", day, len(chunks))

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
