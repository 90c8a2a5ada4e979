"""The four tables of the nightly export: schemas declared once, the rows built from them, and their documentation.

Analysts query these files for years with DuckDB, pandas and Polars, so the
schema is explicit and versioned instead of inferred from whatever the server
answered that night: an inferred schema changes type the day a column is all
null, and a `StudyDate` stored as text cannot be range-filtered.

Each column is declared once, as a :class:`Column`, together with where its
value comes from; the pyarrow schema, the row converters and the markdown
documentation (:func:`render_markdown`, committed as ``docs/export-schema.md``)
are all derived from these declarations. Columns read from DICOM take their
name (snake_case of the keyword), tag, VR and multiplicity from pydicom's data
dictionary, so the type rules live in one function
(:func:`flows.export_values.arrow_type_for_vr`); every value converter is in
:mod:`flows.export_values`.

Type rules: DA → ``date32``, TM → ``time64[us]``, DT → ``timestamp[us, UTC]``
(only when an offset is known), IS and the binary integers → ``int64``, DS and
the binary floats → ``float64``, PN → the full DICOM string form
(``Family^Given^Middle^Prefix^Suffix`` groups joined by ``=``), anything whose
multiplicity can exceed one → ``list<...>``. An absent or empty value is null,
never ``""`` or ``[]``. A value the converters cannot parse (a malformed date)
is null in the typed column; the ``tags`` table keeps the original text.

``export_date`` is not stored inside the files: it is the Hive partition
column (``<table>/export_date=YYYY-MM-DD/``). DuckDB and Polars type it as a
date from the path; pandas/pyarrow need :func:`hive_partitioning` for that
(storing it in the files as well makes pyarrow refuse to merge the two).

Bump :data:`SCHEMA_VERSION` whenever a column is added, removed, renamed,
retyped, or a converter changes what it produces (it is part of the cache key
of the fetch tasks, so cached rows of an older schema are never reused).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_for_tag, tag_for_keyword

from .export_values import (
    FLOAT_VRS,
    INTEGER_VRS,
    MULTI_VALUE_SEPARATOR,
    Converter,
    arrow_type_for_vr,
    clean_text,
    dicom_values,
    lower_keys,
    parse_api_datetime,
    parse_da,
    parse_for_vr,
    parse_is,
    parse_offset,
    parse_tm,
    pn_to_string,
    snake_case,
    text_list,
    uuid_text,
)

SCHEMA_VERSION = "1"
PARTITION_COLUMN = "export_date"


# --------------------------------------------------------------------------
# Column declarations
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column: its name, Parquet type, where its value comes from and what it means.

    ``read`` turns the source record (a DICOM JSON object, an API answer or
    the export's own context, see :meth:`Table.row`) into the typed value.
    """

    name: str
    type: pa.DataType
    source: str
    description: str
    read: Callable[[Mapping[str, Any]], Any] = field(repr=False, compare=False)
    dicom_keyword: str | None = None
    """Set for columns read from DICOM JSON: what a QIDO request must ask for (``includefield``)."""

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, self.type, metadata={"description": self.description, "source": self.source})


def dicom_column(keyword: str, description: str, *, name: str | None = None) -> Column:
    """A column read from a DICOM JSON object (PS3.18 Annex F) by keyword, typed from the dictionary."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"unknown DICOM keyword {keyword!r}")
    tag_hex = f"{tag:08X}"
    vr = dictionary_VR(tag)
    multi = dictionary_VM(tag) != "1"
    base = arrow_type_for_vr(vr)

    def read(dataset: Mapping[str, Any]) -> Any:
        element = dataset.get(tag_hex)
        element_vr = element.get("vr", vr) if isinstance(element, Mapping) else vr
        # The dataset's TimezoneOffsetFromUTC completes DT values only: not looked for in any other column.
        offset = parse_offset(next(iter(dicom_values(dataset.get("00080201"))), None)) if element_vr == "DT" else None
        parsed = [parse_for_vr(element_vr, v, offset) for v in dicom_values(element)]
        present = [v for v in parsed if v is not None]
        if not present:
            return None
        if multi:
            return parsed
        if base == pa.string():
            return MULTI_VALUE_SEPARATOR.join(present)
        return present[0]

    return Column(
        name or snake_case(keyword),
        pa.list_(base) if multi else base,
        f"DICOM ({tag_hex[:4]},{tag_hex[4:]}) {keyword} {vr}",
        description,
        read,
        keyword,
    )


API_TYPES: dict[str, tuple[pa.DataType, Converter]] = {
    "text": (pa.string(), clean_text),
    "pn": (pa.string(), pn_to_string),
    "uuid": (pa.string(), uuid_text),
    "date": (pa.date32(), parse_da),
    "time": (pa.time64("us"), parse_tm),
    "datetime": (pa.timestamp("us"), parse_api_datetime),
    "int": (pa.int64(), parse_is),
    "list": (pa.list_(pa.string()), text_list),
}


def api_column(key: str, kind: str, description: str, *, name: str | None = None, endpoint: str = "") -> Column:
    """A column read from a custom-endpoint answer by key (case-insensitive)."""
    arrow_type, convert = API_TYPES[kind]
    lowered = key.lower()

    def read(record: Mapping[str, Any]) -> Any:
        return convert(record.get(lowered))

    source = f"API {endpoint}.{key}" if endpoint else f"API {key}"
    return Column(name or snake_case(key), arrow_type, source, description, read)


def context_column(name: str, arrow_type: pa.DataType, source: str, description: str) -> Column:
    """A column the export supplies itself (the order a QIDO match was fetched for, ...)."""
    return Column(name, arrow_type, source, description, lambda record: record.get(name))


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One dataset of the export (one directory under the destination)."""

    name: str
    description: str
    grain: str
    columns: tuple[Column, ...]
    schema: pa.Schema = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or PARTITION_COLUMN in names:
            raise ValueError(f"table {self.name}: duplicate or reserved column names in {names}")
        metadata = {"postdicom_flows.table": self.name, "postdicom_flows.schema_version": SCHEMA_VERSION}
        object.__setattr__(self, "schema", pa.schema([c.arrow_field() for c in self.columns], metadata=metadata))

    def row(self, source: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Typed row from a source record; ``context`` supplies the export's own columns."""
        lowered = lower_keys(source)
        return self.row_from_merged({**source, **lowered, **(context or {})})

    def row_from_merged(self, merged: Mapping[str, Any]) -> dict[str, Any]:
        """Typed row from a record whose keys are already lower-case and that holds the context too.

        What :meth:`row` ends with; the ``tags`` table, a row per tag of each order, builds its
        records that way and spares a second copy of each (``benchmarks/RESULTS.md``, *Export CPU at
        loopback, fifth pass*).
        """
        return {c.name: c.read(merged) for c in self.columns}

    @property
    def dicom_keywords(self) -> list[str]:
        """The DICOM attributes this table reads from QIDO answers."""
        return [c.dicom_keyword for c in self.columns if c.dicom_keyword]

    def batch(self, rows: Sequence[Mapping[str, Any]], memory_pool: pa.MemoryPool | None = None) -> pa.RecordBatch:
        """Rows → a record batch with exactly this schema (raises if a value has the wrong type)."""
        gathered = ColumnBuffer(self, memory_pool, batch_rows=None)
        gathered.extend(rows)
        return gathered.batch()


BATCH_ROWS = 1024
"""Rows a :class:`ColumnBuffer` holds as Python values before it turns them into a record batch.

A chunk's ``tags`` rows (some 27 an order) held as Python values until the
chunk's last order took about 15 KB an order, besides the 6 KB of their Arrow
data: 1.6 MB at 100 orders in each of the eight chunk threads, and more for
the larger chunks of a larger day (``benchmarks/RESULTS.md``, *Export memory,
eighth pass*). Turned into Arrow every 1,024 rows (about 38 orders of tags),
a chunk thread holds at most that many rows as Python values, whatever the
chunk's size; a chunk's tables are then a few record batches, which the cache
and the Parquet writer take as they come.
"""


class ColumnBuffer:
    """A table's rows gathered a column at a time, and turned into record batches every ``batch_rows`` rows.

    Held as a dict per row (some 25 an order), a chunk's rows outlived the
    garbage collector's young generations, and so many promoted objects set
    off full collections, each walking the flow process's whole heap
    (Prefect's: twice the client's): two per 1,000 orders, 0.34 s of CPU.
    Copied into one list per column as they come, each row's dict dies young:
    one full collection, 0.15 s (``benchmarks/RESULTS.md``, *Export CPU at
    loopback, sixth pass*). The lists are emptied into a record batch (in
    ``memory_pool``; Arrow's default pool when None) each time they hold
    ``batch_rows`` rows (:data:`BATCH_ROWS`; None: never), so their size does
    not follow the chunk's.
    """

    def __init__(self, table: Table, memory_pool: pa.MemoryPool | None = None, batch_rows: int | None = BATCH_ROWS) -> None:
        if batch_rows is not None and batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1 (or None), not {batch_rows}")
        self.table = table
        self.memory_pool = memory_pool
        self.batch_rows = batch_rows
        self.columns: list[list[Any]] = [[] for _ in table.columns]
        self.held = 0
        self.batches: list[pa.RecordBatch] = []

    def extend(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for column, values in zip(self.table.columns, self.columns, strict=True):
            values.extend([row.get(column.name) for row in rows])
        self.held += len(rows)
        if self.batch_rows is not None and self.held >= self.batch_rows:
            self.batches.append(self.batch())
            self.columns, self.held = [[] for _ in self.table.columns], 0

    def batch(self) -> pa.RecordBatch:
        """The rows held as Python values (those not yet in :attr:`batches`) as one record batch of the table's schema.

        Built a column at a time, as ``RecordBatch.from_pylist`` does, but in
        the buffer's memory pool: the export chooses where its data lives.
        """
        arrays = [
            pa.array(values, type=column.type, memory_pool=self.memory_pool)
            for column, values in zip(self.table.columns, self.columns, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.table.schema)

    def to_table(self) -> pa.Table:
        """Every row gathered, in order: the batches made so far, then the rows still held."""
        rest = [self.batch()] if self.held or not self.batches else []
        return pa.Table.from_batches([*self.batches, *rest], schema=self.table.schema)


_ORDER_UUID = context_column(
    "patient_order_uuid", pa.string(), "API PatientOrderUuid", "The PostDICOM order this row was exported for."
)
_INSTITUTION_UUID = context_column(
    "institution_uuid", pa.string(), "API InstitutionUuid", "The institution the order belongs to."
)
_PROPS = "GetPatientOrderProperties"

ORDERS = Table(
    "orders",
    "One row per PostDICOM order (patient order) whose study date falls on the partition's date.",
    "one row per order",
    (
        api_column("PatientOrderUuid", "uuid", "Order identifier (lower-case UUID).", name="patient_order_uuid", endpoint=_PROPS),
        api_column("InstitutionUuid", "uuid", "Institution that owns the order.", name="institution_uuid", endpoint=_PROPS),
        api_column("OrderStatus", "text", "`Scheduled` (no images yet) or `Completed`.", endpoint=_PROPS),
        api_column("PatientName", "pn", "Patient name in DICOM PN form (`Family^Given`, `=` between alphabetic, ideographic, phonetic).", endpoint=_PROPS),
        api_column("PatientId", "text", "Patient ID (DICOM PatientID).", name="patient_id", endpoint=_PROPS),
        api_column("OtherPatientId", "text", "Other patient ID recorded with the order.", name="other_patient_id", endpoint=_PROPS),
        api_column("PatientSex", "text", "`M`, `F`, `O` or null.", endpoint=_PROPS),
        api_column("PatientBirthdate", "date", "Patient's birth date.", name="patient_birth_date", endpoint=_PROPS),
        api_column("Modality", "text", "Main modality of the order.", endpoint=_PROPS),
        api_column("ModalityList", "list", "Every modality in the study (DICOM ModalitiesInStudy).", name="modalities_in_study", endpoint=_PROPS),
        api_column("StudyInstanceUid", "text", "Study Instance UID; null for a scheduled order without images.", name="study_instance_uid", endpoint=_PROPS),
        api_column("StudyDate", "date", "Study date (a scheduled order: the date it is scheduled for).", endpoint=_PROPS),
        api_column("StudyTime", "time", "Study time.", endpoint=_PROPS),
        api_column("StudyDescription", "text", "Study description.", endpoint=_PROPS),
        api_column("AccessionNumber", "text", "Accession number (RIS order number).", endpoint=_PROPS),
        api_column("PatientComplaints", "text", "Complaints recorded with the order.", endpoint=_PROPS),
        api_column("OrderScheduledDatetime", "datetime", "When the order is scheduled, account wall-clock time (no zone in the API).", name="order_scheduled_datetime", endpoint=_PROPS),
        api_column("RequestedProcedureId", "text", "Requested procedure ID.", name="requested_procedure_id", endpoint=_PROPS),
        api_column("RequestedProcedureDescription", "text", "Requested procedure description.", endpoint=_PROPS),
        api_column("RequestingPhysician", "pn", "Requesting physician (PN form).", endpoint=_PROPS),
        api_column("ReferringPhysiciansName", "pn", "Referring physician (PN form; DICOM ReferringPhysicianName).", name="referring_physician_name", endpoint=_PROPS),
        api_column("ScheduledEquipmentUuid", "uuid", "Equipment the order is scheduled on.", name="scheduled_equipment_uuid", endpoint=_PROPS),
        api_column("AssignedUserUuid", "uuid", "User the order is assigned to.", name="assigned_user_uuid", endpoint=_PROPS),
        api_column("AssignedUserGroupUuid", "uuid", "User group the order is assigned to.", name="assigned_user_group_uuid", endpoint=_PROPS),
        api_column("FolderUuidList", "list", "Folders holding the order (null when in none).", name="folder_uuid_list", endpoint=_PROPS),
        api_column("NumberOfSeries", "int", "Series in the study (DICOM NumberOfStudyRelatedSeries).", name="number_of_study_related_series", endpoint=_PROPS),
        api_column("NumberOfInstances", "int", "Instances in the study (DICOM NumberOfStudyRelatedInstances).", name="number_of_study_related_instances", endpoint=_PROPS),
        api_column("CreatedDatetime", "datetime", "When the order was created in PostDICOM, account wall-clock time.", name="created_datetime", endpoint=_PROPS),
    ),
)

STUDIES = Table(
    "studies",
    "The QIDO-RS study match of each order's Study Instance UID (orders without images have none).",
    "one row per QIDO study match",
    (
        _ORDER_UUID,
        _INSTITUTION_UUID,
        dicom_column("StudyInstanceUID", "Study Instance UID."),
        dicom_column("StudyDate", "Date the study started."),
        dicom_column("StudyTime", "Time the study started."),
        dicom_column("TimezoneOffsetFromUTC", "Offset of the study's local times from UTC (`+HHMM`), when sent."),
        dicom_column("AccessionNumber", "Accession number."),
        dicom_column("StudyID", "Study ID given by the modality."),
        dicom_column("StudyDescription", "Study description."),
        dicom_column("ModalitiesInStudy", "Every modality in the study."),
        dicom_column("ReferringPhysicianName", "Referring physician (PN form)."),
        dicom_column("PatientName", "Patient name (PN form, every component group kept)."),
        dicom_column("PatientID", "Patient ID."),
        dicom_column("PatientBirthDate", "Patient's birth date."),
        dicom_column("PatientSex", "Patient's sex."),
        dicom_column("NumberOfStudyRelatedSeries", "Series in the study."),
        dicom_column("NumberOfStudyRelatedInstances", "Instances in the study."),
    ),
)

SERIES = Table(
    "series",
    "The QIDO-RS series matches of each order's study, with PostDICOM's series UUID where known.",
    "one row per QIDO series match",
    (
        _ORDER_UUID,
        _INSTITUTION_UUID,
        context_column(
            "patient_series_uuid", pa.string(), "API GetPatientOrderProperties.SeriesList[].PatientSeriesUuid",
            "PostDICOM's identifier of the series (matched on Series Instance UID).",
        ),
        dicom_column("StudyInstanceUID", "Study Instance UID."),
        dicom_column("SeriesInstanceUID", "Series Instance UID."),
        dicom_column("Modality", "Modality of the series."),
        dicom_column("SeriesNumber", "Series number."),
        dicom_column("SeriesDescription", "Series description."),
        dicom_column("SeriesDate", "Date the series started."),
        dicom_column("SeriesTime", "Time the series started."),
        dicom_column("BodyPartExamined", "Body part examined."),
        dicom_column("PerformedProcedureStepStartDate", "Start date of the performed procedure step."),
        dicom_column("NumberOfSeriesRelatedInstances", "Instances in the series."),
    ),
)


def _first_value(vr: str) -> Converter:
    """Typed value column of the tags table: the first value, when the VR has that type."""

    def read(record: Mapping[str, Any]) -> Any:
        values = record.get("values") or []
        return parse_for_vr(record["vr"], values[0]) if values and record.get("vr") in vrs else None

    vrs = {vr} if vr in {"DA", "TM", "DT"} else INTEGER_VRS | FLOAT_VRS
    return read


_TAGS = "GetDicomTagContent"

TAGS = Table(
    "tags",
    "Contents of the requested DICOM tags, long form: a row per series and tag when all instances "
    "agree, else a row per instance and tag (GetDicomTagContent).",
    "one row per order, series, SOP instance (when values differ) and tag",
    (
        _ORDER_UUID,
        _INSTITUTION_UUID,
        api_column("PatientSeriesUuid", "uuid", "PostDICOM's identifier of the series.", name="patient_series_uuid", endpoint=_TAGS),
        api_column("SeriesInstanceUid", "text", "Series Instance UID.", name="series_instance_uid", endpoint=_TAGS),
        api_column("SopInstanceUid", "text", "SOP Instance UID when the value differs between instances, else null (the series-wide value).", name="sop_instance_uid", endpoint=_TAGS),
        context_column("tag", pa.string(), "API GetDicomTagContent.TagId", "Tag as 8 upper-case hex digits (`00100010`)."),
        context_column("keyword", pa.string(), "API GetDicomTagContent.Keyword", "DICOM keyword (`PatientName`); null for private tags."),
        context_column("vr", pa.string(), "API GetDicomTagContent.Vr", "Value representation (`PN`, `DA`, ...)."),
        context_column("value", pa.string(), "API GetDicomTagContent.Values", "The whole value as DICOM text, several values joined by `\\`; null when empty."),
        context_column("values", pa.list_(pa.string()), "API GetDicomTagContent.Values", "Every value as its DICOM string; null when empty."),
        Column("value_number", pa.float64(), "derived from values[0]", "First value as a number for IS/DS/US/UL/SS/SL/FL/FD tags.", _first_value("DS")),
        Column("value_date", pa.date32(), "derived from values[0]", "First value as a date for DA tags.", _first_value("DA")),
        Column("value_time", pa.time64("us"), "derived from values[0]", "First value as a time for TM tags.", _first_value("TM")),
        Column("value_datetime", pa.timestamp("us", tz="UTC"), "derived from values[0]", "First value of a DT tag in UTC, when it carries an offset.", _first_value("DT")),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (ORDERS, STUDIES, SERIES, TAGS)}


# --------------------------------------------------------------------------
# Source records → rows
# --------------------------------------------------------------------------


def normalize_tag(tag_id: Any) -> str | None:
    """``00100010``, ``0010,0010``, ``(0010,0010)`` or a keyword → 8 upper-case hex digits."""
    text = clean_text(tag_id)
    if text is None:
        return None
    compact = re.sub(r"[(),\s]", "", text).upper()
    if re.fullmatch(r"[0-9A-F]{8}", compact):
        return compact
    tag = tag_for_keyword(text)
    return f"{tag:08X}" if tag is not None else None


def order_row(properties: Mapping[str, Any]) -> dict[str, Any]:
    """GetPatientOrderProperties (or an order-list entry) → an ``orders`` row."""
    return ORDERS.row(properties)


def _context(order: Mapping[str, Any]) -> dict[str, Any]:
    lowered = lower_keys(order)
    return {
        "patient_order_uuid": uuid_text(lowered.get("patientorderuuid")),
        "institution_uuid": uuid_text(lowered.get("institutionuuid")),
    }


def study_rows(order: Mapping[str, Any], matches: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """QIDO study matches (DICOM JSON) for one order → ``studies`` rows."""
    context = _context(order)
    return [STUDIES.row(m, context) for m in matches]


def series_rows(order: Mapping[str, Any], matches: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """QIDO series matches for one order → ``series`` rows, joined to the order's SeriesList by UID."""
    context = _context(order)
    uuids = {
        clean_text(s.get("seriesinstanceuid")): uuid_text(s.get("patientseriesuuid"))
        for s in map(lower_keys, lower_keys(order).get("serieslist") or [])
    }
    rows = []
    for match in matches:
        uid = next(iter(dicom_values(match.get("0020000E"))), None)
        rows.append(SERIES.row(match, {**context, "patient_series_uuid": uuids.get(clean_text(uid))}))
    return rows


def _tag_identity(tag_id: Any, keyword: Any) -> tuple[str | None, str | None, str | None]:
    """A tag row's tag (8 hex digits) and, for a tag in the dictionary, its keyword and VR there."""
    tag = normalize_tag(tag_id) or normalize_tag(keyword)
    if tag is None:
        return None, None, None
    number = int(tag, 16)
    dictionary_keyword = keyword_for_tag(number)
    if not dictionary_keyword:
        return tag, None, None
    return tag, dictionary_keyword, dictionary_VR(number)


_tag_identity_cached = functools.lru_cache(maxsize=4096, typed=True)(_tag_identity)
"""The same for hashable ids: an order's tags are the same few dozen every time, each looked up once."""


def tag_rows(order: Mapping[str, Any], contents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """GetDicomTagContent's DicomTagContentList for one order → ``tags`` rows."""
    context = _context(order)
    rows = []
    for item in map(lower_keys, contents):
        try:
            tag, dictionary_keyword, dictionary_vr = _tag_identity_cached(item.get("tagid"), item.get("keyword"))
        except TypeError:
            tag, dictionary_keyword, dictionary_vr = _tag_identity(item.get("tagid"), item.get("keyword"))
        raw_values = item.get("values") or []
        values = [str(v) for v in raw_values if v is not None and str(v) != ""] if isinstance(raw_values, list) else []
        record = {
            **item,
            "tag": tag,
            "keyword": clean_text(item.get("keyword")) or dictionary_keyword,
            "vr": clean_text(item.get("vr")) or dictionary_vr,
            "values": values or None,
            "value": MULTI_VALUE_SEPARATOR.join(values) or None,
            **context,
        }
        rows.append(TAGS.row_from_merged(record))
    return rows


def hive_partitioning() -> pads.Partitioning:
    """For pyarrow/pandas readers: ``export_date`` typed as a date instead of a dictionary string.

    ``pd.read_parquet(path, partitioning=hive_partitioning())``.
    """
    return pads.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive")


# --------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------


def _type_name(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type):
        return f"list<{_type_name(arrow_type.value_type)}>"
    return str(arrow_type)


def render_markdown() -> str:
    """``docs/export-schema.md``, from the declarations above (a test keeps the committed file current)."""
    lines = [
        "# Nightly order export: table schemas",
        "",
        f"Schema version **{SCHEMA_VERSION}**. Generated from `flows/export_schema.py` by",
        "`python -m flows.export_schema > docs/export-schema.md`; do not edit by hand.",
        "",
        "Layout: `<destination>/<table>/export_date=YYYY-MM-DD/part-NNNNN.parquet` (Hive style).",
        "`export_date` is the partition column (from the path, not stored in the files): the",
        "study date the rows belong to, one partition per day of the exported window.",
        "Each partition has a manifest at `<destination>/_manifests/<table>/export_date=YYYY-MM-DD.json`",
        "(row count, files, schema version, window, run id).",
        "",
        "A day's four partitions are committed together: a journal `<destination>/_commits/export_date=YYYY-MM-DD.json`",
        "is written first (the commit point), the partitions are swapped in by directory renames, the",
        "manifests written, the journal deleted. A run killed in between (kill -9, power cut) leaves the",
        "journal; the next export run of any day finishes that commit first. Each partition is always",
        "wholly old or wholly new; across the four tables a reader can see one table newer than another only",
        "while a journal exists. Readers that must be exact check that `_commits/` lists none of their days",
        "before and after reading (`flows.parquet_writer.pending_commits`), and read again if one does, or run",
        "`flows.parquet_writer.repair_interrupted_commits(Destination(dest))` (needs write access).",
        "",
        "Types: DA → `date32`, TM → `time64[us]`, DT → `timestamp[us, tz=UTC]` (only when an offset",
        "is known), IS → `int64`, DS → `double`, PN → UTF-8 string in DICOM form (`Family^Given`,",
        "`=` between alphabetic, ideographic and phonetic groups), multi-valued → `list<...>`.",
        "Empty or absent values are null. API date-times carry no zone: they are the account's wall clock.",
        "",
        "Row groups: a partition is written a row group at a time. A day's four tables buffer at most",
        "1 MiB of Arrow data together (`POSTDICOM_EXPORT_BUFFER_BYTES`); past it the table holding most",
        "writes a row group. On a large day that makes `tags` row groups of about 1,800 rows and the other",
        "tables' of about 1,200 (more with a larger setting, for more memory); a small day's partition",
        "is a few row groups. Smaller row groups repeat their dictionaries: a 5,000-order day's `tags`",
        "files are about a third larger than with 4 MiB, the other tables 2-10 %; reading them takes",
        "the same time (`benchmarks/RESULTS.md`, *Export row groups for readers*). A file holds at most",
        "64 row groups (the writer keeps each one's metadata in memory until the file is closed), about",
        "115,000 `tags` rows (some 4,000 orders of one series each): a larger day's `tags` partition is",
        "several `part-*.parquet` files, the other tables' one file up to about 75,000 orders",
        "(`benchmarks/RESULTS.md`, *Export memory, eighth pass*).",
        "",
        "Reading: DuckDB `read_parquet('<dest>/orders/*/*.parquet', hive_partitioning=true)`;",
        "Polars `pl.scan_parquet('<dest>/orders/*/*.parquet', hive_partitioning=True)`;",
        "pandas `pd.read_parquet('<dest>/orders', partitioning=flows.export_schema.hive_partitioning())`.",
        "",
    ]
    for table in TABLES.values():
        lines += [f"## `{table.name}`", "", f"{table.description} Grain: {table.grain}.", ""]
        lines += ["| column | type | source | description |", "|---|---|---|---|"]
        lines.append(f"| `{PARTITION_COLUMN}` | date32 (partition) | export window | Study date the row belongs to (Hive partition). |")
        for column in table.columns:
            description = column.description.replace("|", "\\|")
            lines.append(f"| `{column.name}` | {_type_name(column.type)} | {column.source} | {description} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
