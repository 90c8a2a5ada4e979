"""Reading stored instances and speaking DICOM JSON (PS3.18 Annex F) and QIDO matching.

Kept apart from the HTTP layer so the rules (what an instance must carry, how
a QIDO key matches, how a value prints in GetDicomTagContent) read in one place.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_keyword, dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import AMBIGUOUS_VR

from sandbox.wildcard import wildcard_match

BULK_PLACEHOLDER = "{bulk}"
"""Stored JSON keeps BulkDataURIs relative; the request's base replaces this at answer time."""

BULK_THRESHOLD = 1024
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")

# STOW FailureReason codes (PS3.18 / PS3.4 Annex GG).
FAILURE_PROCESSING = 0x0110
FAILURE_SOP_CLASS_NOT_SUPPORTED = 0x0122
FAILURE_DATASET_DOES_NOT_MATCH = 0xA900
FAILURE_CANNOT_UNDERSTAND = 0xC000

STUDY_FIELDS = ("00080005", "00080020", "00080030", "00080050", "00080056", "00080061", "00080090",
                "00081030", "00081190", "00100010", "00100020", "00100030", "00100040", "0020000D",
                "00200010", "00201206", "00201208")
SERIES_FIELDS = ("00080005", "00080060", "0008103E", "00081190", "0020000D", "0020000E", "00200011",
                 "00201209", "00400244", "00400245")
INSTANCE_FIELDS = ("00080005", "00080016", "00080018", "00080056", "00081190", "0020000D", "0020000E",
                   "00200013", "00280008", "00280010", "00280011", "00280100")


class StowReject(Exception):
    """An instance the server refuses, with its STOW FailureReason code."""

    def __init__(self, code: int, reason: str, sop_class_uid: str = "", sop_instance_uid: str = ""):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid


@dataclass
class ParsedInstance:
    """What the index needs from one received instance."""

    dataset: Dataset
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    attrs: dict[str, Any]


def tag_key(tag: int) -> str:
    return f"{tag:08X}"


def read_instance(path: Path, memo: dict[tuple, dict[str, Any]] | None = None) -> ParsedInstance:
    """Parse a received part; raise :class:`StowReject` when it cannot be stored.

    Pixel data is not read (``stop_before_pixels``): a 100 MB instance costs
    only its header here. Whether pixel data follows is known from the file
    position, and it is then announced as a BulkDataURI in the metadata.
    ``memo`` is shared by the instances of one request (see :func:`dataset_json`).
    """
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            ds = pydicom.dcmread(handle, stop_before_pixels=True)
            stopped_at = handle.tell()
    except Exception as exc:  # pydicom raises many types on corrupt input; all mean "cannot parse"
        raise StowReject(FAILURE_CANNOT_UNDERSTAND, "not a readable DICOM file") from exc
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    sop_uid = str(ds.get("SOPInstanceUID", "") or (meta.get("MediaStorageSOPInstanceUID", "") if meta else ""))
    study_uid = str(ds.get("StudyInstanceUID", ""))
    series_uid = str(ds.get("SeriesInstanceUID", ""))
    missing = [name for name, value in (("SOPInstanceUID", sop_uid), ("StudyInstanceUID", study_uid),
                                        ("SeriesInstanceUID", series_uid), ("SOPClassUID", sop_class))
               if not value]
    if missing:
        raise StowReject(FAILURE_DATASET_DOES_NOT_MATCH, "missing " + ", ".join(missing), sop_class, sop_uid)
    for name, value in (("SOPInstanceUID", sop_uid), ("StudyInstanceUID", study_uid),
                        ("SeriesInstanceUID", series_uid)):
        if not UID_RE.match(value) or len(value) > 64:
            raise StowReject(FAILURE_DATASET_DOES_NOT_MATCH, f"malformed {name} {value!r}", sop_class, sop_uid)
    if not UID_RE.match(sop_class) or len(sop_class) > 64:
        raise StowReject(FAILURE_SOP_CLASS_NOT_SUPPORTED, f"SOP class {sop_class!r} is not supported",
                         sop_class, sop_uid)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "")) if meta else ""
    try:
        attrs = dataset_json(ds, memo)
    except Exception as exc:  # a value pydicom cannot convert: the data set is not understood
        raise StowReject(FAILURE_CANNOT_UNDERSTAND, "a value cannot be converted to DICOM JSON",
                         sop_class, sop_uid) from exc
    if stopped_at < size:
        if not _trailing_element_complete(path, stopped_at, size, ds.original_encoding):
            raise StowReject(FAILURE_CANNOT_UNDERSTAND, "file is truncated: pixel data is incomplete",
                             sop_class, sop_uid)
        bits = int(ds.get("BitsAllocated", 16) or 16)
        encapsulated = bool(transfer_syntax) and pydicom.uid.UID(transfer_syntax).is_compressed
        vr = "OB" if encapsulated or bits <= 8 else "OW"
        attrs["7FE00010"] = {"vr": vr, "BulkDataURI": f"{BULK_PLACEHOLDER}/7FE00010"}
    return ParsedInstance(ds, sop_class, sop_uid, study_uid, series_uid,
                          transfer_syntax or "1.2.840.10008.1.2", attrs)


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _trailing_element_complete(path: Path, at: int, size: int, encoding: tuple[bool | None, bool | None]) -> bool:
    """Whether the element where parsing stopped (pixel data) fits in the file.

    The header-only parse cannot notice a file cut off inside its pixel data;
    the element's declared length (or, for encapsulated data, the closing
    sequence delimiter) tells without reading the pixels.
    """
    implicit, little = encoding
    endian = "<" if little is not False else ">"
    with path.open("rb") as handle:
        handle.seek(at)
        head = handle.read(12)
        if len(head) < 8:
            return False
        if implicit:
            header, length = 8, struct.unpack(endian + "I", head[4:8])[0]
        elif head[4:6] in _LONG_VRS:
            if len(head) < 12:
                return False
            header, length = 12, struct.unpack(endian + "I", head[8:12])[0]
        else:
            header, length = 8, struct.unpack(endian + "H", head[6:8])[0]
        if length == 0xFFFFFFFF:
            handle.seek(max(at, size - 8))
            return handle.read(8) == _SEQUENCE_DELIMITER
    return at + header + length <= size


def _bulk_uri(elem: DataElement) -> str:
    return f"{BULK_PLACEHOLDER}/{tag_key(elem.tag)}"


MEMO_MAX_VALUE = 256
"""Longest raw value (bytes) whose JSON form is remembered; longer ones are rare and not worth hashing."""

_NOT_MEMOISED_VRS = frozenset({"SQ", "UN", *(vr.value for vr in AMBIGUOUS_VR)})


def dataset_json(ds: Dataset, memo: dict[tuple, dict[str, Any]] | None = None) -> dict[str, Any]:
    """DICOM JSON of a data set, bulk values replaced by relative BulkDataURIs.

    Converting an element (decode, validate, build the JSON value) was the
    largest part of the sandbox's STOW CPU, and the instances of one series
    repeat most of their header byte for byte. With a ``memo`` (one per STOW
    request), an element whose tag, explicit VR, encoding, character set and
    raw bytes were already converted reuses that JSON element: the same
    inputs give pydicom the same output. Elements whose conversion depends on
    other elements (implicit or ambiguous VR, private tags, UN, sequences) are
    always converted. The memoised dicts are shared between instances, so
    callers must not change an element in place.
    """
    if memo is None or not ds.original_character_set:
        return ds.to_json_dict(bulk_data_threshold=BULK_THRESHOLD, bulk_data_element_handler=_bulk_uri)
    declared = ds.original_character_set
    charset = declared if isinstance(declared, str) else tuple(declared)
    out: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset itself converts every element
        raw = ds.get_item(tag, keep_deferred=True)
        key = None
        if (isinstance(raw, RawDataElement) and raw.VR is not None and raw.VR not in _NOT_MEMOISED_VRS
                and not tag.is_private and raw.value is not None and len(raw.value) <= MEMO_MAX_VALUE):
            key = (int(tag), raw.VR, raw.is_little_endian, charset, bytes(raw.value))
            element = memo.get(key)
            if element is not None:
                out[tag_key(tag)] = element
                continue
        element = ds[tag].to_json_dict(bulk_data_element_handler=_bulk_uri, bulk_data_threshold=BULK_THRESHOLD)
        if key is not None:
            memo[key] = element
        out[tag_key(tag)] = element
    return out


def with_bulk_base(attrs: dict[str, Any], base: str) -> dict[str, Any]:
    """Fill in the real BulkDataURI base (instance URL + ``/bulkdata``) for one answer."""
    out = {}
    for key, element in attrs.items():
        uri = element.get("BulkDataURI")
        if uri is not None and uri.startswith(BULK_PLACEHOLDER):
            element = {**element, "BulkDataURI": base + "/bulkdata" + uri[len(BULK_PLACEHOLDER):]}
        out[key] = element
    return out


def first_value(attrs: Mapping[str, Any], key: str, default: Any = None) -> Any:
    values = attrs.get(key, {}).get("Value")
    if not values:
        return default
    value = values[0]
    if isinstance(value, dict):
        return value.get("Alphabetic", "")
    return value


def pn_text(attrs: Mapping[str, Any], key: str) -> str:
    """A PN element of DICOM JSON back to its DICOM string form (``Family^Given=Ideographic``)."""
    values = attrs.get(key, {}).get("Value")
    if not values:
        return ""
    groups = [values[0].get(name, "") for name in ("Alphabetic", "Ideographic", "Phonetic")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


# ---------------------------------------------------------------- tag ids

_TAG_HEX = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")


def resolve_tag(text: str) -> int | None:
    """A tag from ``00100010``, ``0010,0010``, ``(0010,0010)`` or a keyword; ``None`` if unknown."""
    text = text.strip()
    match = _TAG_HEX.match(text)
    if match:
        return int(match.group(1) + match.group(2), 16)
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", text):
        return tag_for_keyword(text)
    return None


def vr_of(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def keyword_of(tag: int) -> str | None:
    try:
        return dictionary_keyword(tag) or None
    except KeyError:
        return None


def element_strings(ds: Dataset, tag: int) -> list[str] | None:
    """GetDicomTagContent's ``Values``: each value's DICOM string form; ``None`` if absent."""
    if tag not in ds:
        return None
    elem = ds[tag]
    if elem.VR == "SQ":
        return [str(item.to_json_dict(BULK_THRESHOLD, lambda e: "")) for item in elem.value]
    if elem.is_empty:
        return []
    value = elem.value
    if isinstance(value, (bytes, bytearray)):
        return [base64.b64encode(bytes(value)).decode("ascii")]
    values = list(value) if elem.VM > 1 else [value]
    return [str(v) for v in values]


# ---------------------------------------------------------------- QIDO

class QueryError(ValueError):
    """A QIDO query the server cannot answer (400 with the reason)."""


@dataclass
class QidoQuery:
    filters: list[tuple[str, str, str]] = field(default_factory=list)
    """``(8-hex key, VR, value)`` per matching key."""
    limit: int | None = None
    offset: int = 0
    include_all: bool = False
    include: set[str] = field(default_factory=set)


def _decode_component(text: str) -> str:
    """Decode percent-escapes and ``+`` (form encoding, as requests sends); raw text passes unchanged."""
    from urllib.parse import unquote_plus

    return unquote_plus(text, encoding="utf-8", errors="strict")


def parse_qido(raw_query: str, *, ignore: Iterable[str] = ()) -> QidoQuery:
    """Parse a raw query string (percent-encoded or not) into a :class:`QidoQuery`."""
    query = QidoQuery()
    skip = {k.lower() for k in ignore}
    for pair in raw_query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        try:
            key, value = _decode_component(raw_key), _decode_component(raw_value)
        except UnicodeDecodeError as exc:
            raise QueryError(f"query parameter {raw_key!r} is not UTF-8") from exc
        lowered = key.lower()
        if lowered in skip:
            continue
        if lowered == "limit":
            query.limit = _non_negative(key, value)
        elif lowered == "offset":
            query.offset = _non_negative(key, value)
        elif lowered == "includefield":
            for item in value.split(","):
                item = item.strip()
                if item.lower() == "all":
                    query.include_all = True
                elif item:
                    tag = resolve_tag(item)
                    if tag is None:
                        raise QueryError(f"unknown includefield attribute {item!r}")
                    query.include.add(tag_key(tag))
        elif lowered == "fuzzymatching":
            if value.lower() not in ("true", "false"):
                raise QueryError(f"fuzzymatching must be true or false, not {value!r}")
        else:
            tag = resolve_tag(key)
            if tag is None:
                raise QueryError(f"unknown query attribute {key!r}")
            query.filters.append((tag_key(tag), vr_of(tag), value))
    return query


def _non_negative(name: str, value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise QueryError(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


def _strings(element: Mapping[str, Any] | None) -> list[str]:
    """Every value of a JSON element as text; PN gives each of its component groups."""
    if not element:
        return []
    out: list[str] = []
    for value in element.get("Value", []):
        if isinstance(value, dict):
            out.extend(v for v in value.values() if isinstance(v, str))
        else:
            out.append(str(value))
    return out


def _in_range(value: str, low: str, high: str) -> bool:
    value = value.split(".")[0] if value else value
    if low and value < low:
        return False
    if high and value[: len(high)] > high:
        return False
    return True


def element_matches(element: Mapping[str, Any] | None, vr: str, wanted: str) -> bool:
    """PS3.4 C.2.2.2 matching of one attribute: universal, UID list, range, wildcard, single value."""
    if wanted == "":
        return True
    values = _strings(element)
    if not values:
        return False
    if vr == "UI":
        accepted = {v.strip() for v in re.split(r"[,\\]", wanted) if v.strip()}
        return any(v in accepted for v in values)
    if vr in ("DA", "TM", "DT") and "-" in wanted:
        low, _, high = wanted.partition("-")
        return any(_in_range(v, low, high) for v in values)
    ignore_case = vr == "PN"
    if "*" in wanted or "?" in wanted:
        return any(wildcard_match(wanted, v, ignore_case=ignore_case) for v in values)
    if vr in ("IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV"):
        try:
            return any(float(v) == float(wanted) for v in values)
        except ValueError:
            return False
    if ignore_case:
        return any(v.casefold() == wanted.casefold() for v in values)
    return wanted in values


def matches(attrs: Mapping[str, Any], query: QidoQuery) -> bool:
    return all(element_matches(attrs.get(key), vr, value) for key, vr, value in query.filters)


def project(attrs: Mapping[str, Any], defaults: Iterable[str], query: QidoQuery) -> dict[str, Any]:
    """The attributes a QIDO answer carries: defaults, matching keys and includefields."""
    if query.include_all:
        keys = set(attrs)
    else:
        keys = set(defaults) | {key for key, _, _ in query.filters} | query.include
    out: dict[str, Any] = {}
    for key in sorted(keys):
        element = attrs.get(key)
        if element is None:
            continue
        if "BulkDataURI" in element or "InlineBinary" in element:
            continue
        out[key] = element
    return out


def json_element(vr: str, values: list[Any]) -> dict[str, Any]:
    """An Annex F element; ``Value`` omitted when there is none."""
    element: dict[str, Any] = {"vr": vr}
    if values:
        element["Value"] = values
    return element
