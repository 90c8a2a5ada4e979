"""The export's unit of work: a day's orders dealt into stable chunks, and the cached task that fetches one.

Why chunks (not one task run per order) and why they are cached per chunk:
see :mod:`flows.export`'s docstring. This module holds what a chunk is
(:class:`OrderRef`, :func:`plan_chunks`), how a day's orders are listed
(:func:`list_day_orders`: one :func:`read_day_orders` task run that reads
the order list as it arrives, so memory holds the day's refs, never its
answer) and the task that turns a chunk into typed rows
(:func:`fetch_order_chunk`); :mod:`flows.export` runs them and writes the rows.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import pickle
import struct
import sys
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE
from prefect.client.schemas.objects import RunInput, TaskRunResult
from prefect.serializers import Serializer
from pydantic import Field

from blocks import PostDicomCredentials
from postdicom import PostDicomClient
from postdicom.errors import NotFoundError
from postdicom.models import PatientOrderProperties, PatientOrderSummary
from tasks.policies import READ_TAGS, transient_retry_options

from .export_schema import SERIES, STUDIES, TABLES, ColumnBuffer, order_row, series_rows, study_rows, tag_rows
from .orders import let_go
from .staged_partition import export_memory_pool


class OrderRef(NamedTuple):
    """What a chunk needs of an order-list entry: its ids and a digest of the entry (for the cache key).

    Reduced from its order-list entry as soon as the entry has arrived
    (:func:`read_day_orders`); a chunk task's ``orders`` input (its cache
    key) is a list of them. While they wait for their chunk, the day's refs
    are kept packed (:class:`PackedOrderRefs`).
    """

    patient_order_uuid: str
    institution_uuid: str
    digest: str


def order_ref(entry: PatientOrderSummary | Mapping[str, Any]) -> OrderRef:
    """The entry's :class:`OrderRef`; the digest changes whenever anything in the entry does."""
    summary = entry if isinstance(entry, PatientOrderSummary) else PatientOrderSummary.model_validate(dict(entry))
    # The entry as received (streamed or read whole: the same dict, so the same digest and cache key), not
    # ``summary.raw``: that is built anew and kept on the model.
    received = summary.received if summary.received is not None else summary.raw
    digest = hashlib.sha256(json.dumps(received, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:20]
    return OrderRef(
        str(summary.patient_order_uuid or "").lower(),
        sys.intern(str(summary.institution_uuid or "").lower()),
        digest,
    )


_PACKED_HEAD = struct.Struct("<III")
"""A packed ref's head: the order UUID's length in bytes, the institution's number, the digest's length."""


class PackedOrderRefs:
    """Order refs (:class:`OrderRef`) packed into one buffer, in the order appended: about 70 bytes an order, not 230.

    The day's orders are the one thing held for the whole day (the API does
    not page the list). As tuples of three strings a ref took about 0.23 KB
    (the institution shared): 4.5 MB for a 20,000-order day, from its listing
    to its last chunk (``benchmarks/RESULTS.md``, *Export memory, eighth
    pass*). Packed, each is its two strings' UTF-8 bytes (lone surrogates
    kept) and its institution's number in the pack's own list of
    institutions; iterating unpacks them one at a time, equal to the refs
    appended. The chunks are planned in packs (:func:`plan_chunks`) and a
    chunk's refs unpacked into a list only when it is submitted.
    """

    __slots__ = ("_data", "_count", "_institutions", "_numbers")

    def __init__(self, refs: Iterable[OrderRef] = ()) -> None:
        self._data = bytearray()
        self._count = 0
        self._institutions: list[str] = []
        self._numbers: dict[str, int] = {}
        for ref in refs:
            self.append(ref)

    def append(self, ref: OrderRef) -> None:
        number = self._numbers.get(ref.institution_uuid)
        if number is None:
            number = self._numbers[ref.institution_uuid] = len(self._institutions)
            self._institutions.append(ref.institution_uuid)
        order = ref.patient_order_uuid.encode("utf-8", "surrogatepass")
        digest = ref.digest.encode("utf-8", "surrogatepass")
        self._data += _PACKED_HEAD.pack(len(order), number, len(digest))
        self._data += order
        self._data += digest
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[OrderRef]:
        data, at, end = self._data, 0, len(self._data)
        while at < end:
            order_bytes, number, digest_bytes = _PACKED_HEAD.unpack_from(data, at)
            at += _PACKED_HEAD.size
            order = data[at:at + order_bytes].decode("utf-8", "surrogatepass")
            at += order_bytes
            digest = data[at:at + digest_bytes].decode("utf-8", "surrogatepass")
            at += digest_bytes
            yield OrderRef(order, self._institutions[number], digest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackedOrderRefs):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<PackedOrderRefs: {self._count} order(s)>"


@dataclass
class DayOrders:
    """A day's :class:`OrderRef` list, as one object, and the task run that listed them.

    Prefect links a task's result, and each item one level inside it, to the
    task run for the rest of the flow run (``FlowRunContext.run_results``,
    which lives on with the context Prefect keeps for the process's first
    tagged task run): returned as a bare list, each ref was such an item,
    about 0.2 KB an order never freed (``benchmarks/RESULTS.md``, *Export
    memory, sixth pass*). Inside this object the refs are two levels down and
    are not linked. What the link gave, the chunk runs' edge to the listing
    run in Prefect's graph, is kept by :meth:`upstream`.
    """

    refs: PackedOrderRefs
    listed_by: uuid.UUID | None = None

    def upstream(self) -> dict[str, set[RunInput]]:
        """The chunk task's ``orders`` input as coming from the listing run (``dependencies`` of a submission)."""
        return {"orders": {TaskRunResult(id=self.listed_by)}} if self.listed_by else {}


DEFAULT_ORDERS_PER_CHUNK = 64
"""The flow's default ``orders_per_chunk``: a 1,000-order day in two chunks per slot of 8, larger days in chunks of 52 to 64.

Each task run costs ~5 ms of the flow's CPU and ~7 ms of the Prefect API's
(``benchmarks/RESULTS.md``, *Fixed cost at loopback, fourth pass*), plus the
cache record it writes, so a chunk should not be small: a 1,000-order day
makes 16 chunks at 64, and two chunks per slot still end together
(:data:`CHUNKS_PER_SLOT`); the 32 it made at 50 (when the count was rounded
up to a power of two) cost 0.2 s more of the flow's CPU and 0.35 s more of
the API's on loopback, where the two cores are the limit (*Export CPU at
loopback, sixth pass*). Nor large: the chunks in flight, eight
at the default ``concurrency``, are most of what the export's peak memory
grows by with the day. 100 made the same 16 chunks of a 1,000-order day,
but chunks of 78 orders on average at 5,000 and 20,000 a day and of 94 at
3,000 (*Export memory, ninth pass*).
"""

CHUNKS_PER_SLOT = 2
"""At least this many chunks per ``concurrency`` slot (when the day has that many orders).

Hash buckets differ in size (buckets of 40 orders on average typically
hold 28 to 52), and a chunk is fetched in one task run, one request at a time. With
one chunk per slot the largest bucket set the day's time while the other
slots sat idle (RESULTS.md, "Flows against the client"); with several per
slot, handed out largest first (:func:`plan_chunks`), a slot that finishes
early takes the next one and the slots end together, as the client's own
thread pool does.
"""


def bucket_count(orders: int, orders_per_chunk: int, concurrency: int) -> int:
    """How many chunks :func:`plan_chunks` deals a day of ``orders`` into: a chunk of at most ``orders_per_chunk`` on average, and no fewer than it needs.

    At least :data:`CHUNKS_PER_SLOT` per ``concurrency`` slot (when there
    are that many orders) so the slots stay busy to the end. The count is
    rounded up to a multiple of an eighth of the power of two at or above it
    (1 to 8, then 10, 12, 14, 16, 20, 24, 28, 32, 40, ...): a step is
    at most a quarter, so chunks average between 80 and 100 % of
    ``orders_per_chunk`` whatever the day's size, and the count, so the
    chunks, changes only when the day grows or shrinks by a step. Rounded
    up to a power of two, the average moved between 50 and 100 % with the
    day (``benchmarks/RESULTS.md``, *Export memory, ninth pass*), and the
    memory of the chunks in flight with it.
    """
    wanted = max(math.ceil(orders / max(1, orders_per_chunk)), min(CHUNKS_PER_SLOT * concurrency, orders))
    step = 1 << max(0, (wanted - 1).bit_length() - 3)
    return -(-wanted // step) * step


def plan_chunks(
    entries: PackedOrderRefs | Sequence[OrderRef | PatientOrderSummary | Mapping[str, Any]],
    orders_per_chunk: int,
    concurrency: int,
) -> list[PackedOrderRefs]:
    """Deal the orders (refs, or order-list entries) into stable chunks: bucket = hash(order UUID) mod :func:`bucket_count`.

    The same orders always make the same chunks (the same cache keys):
    sorted inside a bucket, and an order arriving late changes one chunk
    while the day keeps its bucket count. The chunks come largest first:
    submitted in that order, the small ones fill the gaps at the end
    (longest-processing-time-first). Each chunk is packed
    (:class:`PackedOrderRefs`) until it is submitted.
    """
    count = len(entries)
    if not count:
        return []
    buckets = bucket_count(count, orders_per_chunk, concurrency)
    dealt = [PackedOrderRefs() for _ in range(buckets)]
    for entry in entries:
        ref = entry if isinstance(entry, OrderRef) else order_ref(entry)
        dealt[int(hashlib.sha1(ref.patient_order_uuid.encode()).hexdigest()[:8], 16) % buckets].append(ref)
    chunks = []
    while dealt:  # each bucket let go once sorted: the day is held twice at most, not three times
        bucket = dealt.pop()
        if len(bucket):
            chunks.append(PackedOrderRefs(sorted(bucket)))
    return sorted(chunks, key=lambda chunk: (-len(chunk), next(iter(chunk))))


@task(
    name="export-day-orders",
    task_run_name="export-day-orders: {day}",
    tags=READ_TAGS,
    cache_policy=NO_CACHE,
    persist_result=False,
    cache_result_in_memory=False,
    **transient_retry_options(),
)
def read_day_orders(
    credentials: PostDicomCredentials, institution_uuid_list: list[str], modality_list: list[str] | None, day: dt.date
) -> DayOrders:
    """GetPatientOrderList for one study date, each order reduced to its :class:`OrderRef` as it arrives.

    The API does not page the list: read whole, a 20,000-order day held about
    5 KB an order at its peak (body, text, JSON, models). Read with
    :meth:`~postdicom.PostDicomClient.iter_patient_order_list`, only the
    order being read is held besides the packed refs (about 70 bytes an
    order, :class:`PackedOrderRefs`). A read
    (``postdicom-read`` tags, so tag concurrency limits apply), retried whole
    on transient failures (a list cut short is void); never cached (a rerun
    must see orders added or deleted since) and never stored (patient data).
    The run's name shows the date only.
    """
    with credentials.get_client() as client:
        with client.iter_patient_order_list(
            institution_uuid_list, modality_list=modality_list, study_date_from=day, study_date_to=day
        ) as orders:
            refs = PackedOrderRefs(order_ref(order) for order in orders)
        reading = orders.reading
    logger = get_run_logger()
    logger.info("%d order(s)", len(refs))
    for warning in reading.warnings:
        logger.warning("%s", warning)
    return DayOrders(refs)


def list_day_orders(
    credentials: PostDicomCredentials, institution_uuid_list: list[str], modality_list: list[str] | None, day: dt.date
) -> DayOrders:
    """The day's orders as :class:`OrderRef` (a :func:`read_day_orders` run), and that run's id.

    The run's state lets go of the refs once returned (:func:`flows.orders.let_go`):
    otherwise Prefect may keep the first tagged run's result for the life of
    the process.
    """
    state = read_day_orders(credentials, institution_uuid_list, modality_list, day, return_state=True)
    orders: DayOrders = let_go(state)
    orders.listed_by = state.state_details.task_run_id
    return orders


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

    def release(self) -> None:
        """Let go of the tables once they are written (the chunk's cache record, if any, is already stored).

        Prefect's future of the chunk run holds its final state, and through
        it this object, in a reference cycle (a method of the future is a done
        callback of the future it wraps) that only the garbage collector's full
        collections free: 12 to 26 chunks' tables were alive at any time of a 20,000-order
        day where ten at most are in use, all 16 of a 1,000-order day to its
        end, and freed late and in bulk they left holes in the worker threads'
        heaps: 11 MB of that day's peak (``benchmarks/RESULTS.md``, *Export
        memory, tenth pass*).
        """
        self.tables.clear()


CACHE_COMPRESSION_LEVEL = 1
"""zlib level of the cached chunks: a 57-order chunk's pickle of 382 KB becomes 42 KB in 3 ms (level 6: 39 KB, 5 ms)."""


class _CompressingSink:
    """A write-only file for :class:`pickle.Pickler` that keeps only the compressed pieces."""

    def __init__(self, level: int) -> None:
        self.compressor = zlib.compressobj(level)
        self.pieces: list[bytes] = []

    def write(self, data: bytes | pickle.PickleBuffer) -> int:
        # Protocol 5 hands a large Arrow buffer over as a PickleBuffer (no len(), but the buffer protocol).
        view = memoryview(data)
        self.pieces.append(self.compressor.compress(view))
        return view.nbytes

    def compressed(self) -> bytes:
        self.pieces.append(self.compressor.flush())
        return b"".join(self.pieces)


class ChunkRowsSerializer(Serializer):
    """How a chunk's rows are cached: pickled, compressed with zlib as they are pickled, then base64 in one line.

    Prefect's default (cloudpickle, then base64 with a newline every 76
    characters, escaped again inside the JSON record) made about 0.4 MB per
    chunk, held in four copies at once on the worker thread that fetched it;
    glibc kept those blocks in the eight worker threads' arenas, more the
    larger the day (``benchmarks/RESULTS.md``, *Export memory, fifth pass*).
    Pickled into a compressor, the chunk is never whole and uncompressed in
    memory, and its record is about a tenth of that, each copy well under
    glibc's 128 KiB mmap threshold. Not Arrow IPC: its writer allocates in
    Arrow's default pool on each worker thread whatever pool the tables use
    (measured: more memory kept, not less). Prefect stores a serializer's
    output as a string inside its JSON record, so the output is ASCII (base64,
    no newline). A record is read back with the serializer it names: chunks
    cached with Prefect's pickle serializer before this one still read cleanly.
    """

    type: str = Field(default="postdicom-export-chunk", frozen=True)

    def dumps(self, obj: ChunkRows) -> bytes:
        sink = _CompressingSink(CACHE_COMPRESSION_LEVEL)
        pickle.Pickler(sink, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return base64.b64encode(sink.compressed())

    def loads(self, blob: bytes) -> ChunkRows:
        rows: ChunkRows = pickle.loads(zlib.decompress(base64.b64decode(blob)))
        return rows


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
        # The list dumped with its answer in one call, not entry by entry (the same dicts, less CPU).
        rows["tags"] = tag_rows(properties, contents.raw.get(contents.list_key or "", []))
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
    result_serializer=ChunkRowsSerializer(),
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
    gathered = {name: ColumnBuffer(table, export_memory_pool()) for name, table in TABLES.items()}
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
                gathered[name].extend(table_rows)
            requests += fetched[1]
    if vanished:
        get_run_logger().warning("%d order(s) were deleted while the export ran; left out", len(vanished))
    tables = {name: columns.to_table() for name, columns in gathered.items()}
    return ChunkRows(tables=tables, orders=len(orders) - len(vanished), requests=requests, vanished=vanished)


__all__ = [
    "CHUNKS_PER_SLOT", "ChunkRows", "ChunkRowsSerializer", "DayOrders", "DEFAULT_ORDERS_PER_CHUNK", "OrderRef", "PackedOrderRefs", "bucket_count", "fetch_order_chunk", "list_day_orders", "order_ref", "plan_chunks",
    "read_day_orders",
]
