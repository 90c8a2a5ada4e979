"""Values of the nightly export: one DICOM or API value → one typed Python value, and each VR's Parquet type.

The converters the column declarations of :mod:`flows.export_schema` are
built from. Every converter returns ``None`` for an absent, empty or
malformed value (a malformed date is null in its typed column, never an
error); :func:`arrow_type_for_vr` is the one place a VR is mapped to a
Parquet type. The custom endpoints' key case is not guaranteed, so records
are compared through :func:`lower_keys`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

MULTI_VALUE_SEPARATOR = "\\"
"""DICOM's own separator, used where several values must fit one string column."""

INTEGER_VRS = frozenset({"IS", "SS", "US", "SL", "UL", "SV", "UV"})
FLOAT_VRS = frozenset({"DS", "FL", "FD"})

Converter = Callable[[Any], Any]


def clean_text(value: Any) -> str | None:
    """Strip the padding DICOM allows; empty means absent."""
    if value is None:
        return None
    text = str(value).strip().strip("\x00")
    return text or None


def parse_da(value: Any) -> dt.date | None:
    """DA (``YYYYMMDD``), the legacy ``YYYY.MM.DD`` and the API's ``YYYY-MM-DD``."""
    text = clean_text(value)
    if text is None:
        return None
    digits = text.replace("-", "").replace(".", "") if len(text) == 10 else text
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")


def parse_tm(value: Any) -> dt.time | None:
    """TM (``HH[MM[SS[.FFFFFF]]]``) and the colon form the API and old ACR-NEMA files use.

    A leap second (``60``) is clamped to 59.999999 so the value stays
    representable instead of becoming null.
    """
    text = clean_text(value)
    if text is None:
        return None
    match = _TM.match(text)
    if not match:
        return None
    hour, minute, second, fraction = match.groups()
    seconds = int(second or 0)
    micro = int((fraction or "0").ljust(6, "0"))
    if seconds == 60:
        seconds, micro = 59, 999_999
    try:
        return dt.time(int(hour), int(minute or 0), seconds, micro)
    except ValueError:
        return None


_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")


def parse_offset(value: Any) -> dt.timezone | None:
    """``&ZZXX`` (as in DT, or TimezoneOffsetFromUTC) → a fixed offset."""
    text = clean_text(value)
    if text is None or not re.fullmatch(r"[+-]\d{4}", text):
        return None
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[3:5])
    if hours > 14 or minutes > 59:
        return None
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def parse_dt(value: Any, default_offset: dt.timezone | None = None) -> dt.datetime | None:
    """DT (``YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]``); aware when its own or ``default_offset`` is known.

    Without any offset the result is naive: the caller decides (the export
    stores only aware values in UTC columns, see the module docstring).
    """
    text = clean_text(value)
    if text is None:
        return None
    match = _DT.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        result = dt.datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            min(int(second or 0), 59), int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None
    zone = parse_offset(offset) if offset else default_offset
    return result.replace(tzinfo=zone) if zone else result


def parse_api_datetime(value: Any) -> dt.datetime | None:
    """The API's ``YYYY-MM-DD HH:MM[:SS]`` (no zone: the account's wall clock) → naive datetime."""
    text = clean_text(value)
    if text is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None
    return parsed.replace(tzinfo=None) if parsed.tzinfo is None else parsed.astimezone(dt.UTC).replace(tzinfo=None)


def parse_is(value: Any) -> int | None:
    """IS: a JSON number or a string such as ``" 12"``; an integral ``"12.0"`` is accepted too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = parse_ds(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def parse_ds(value: Any) -> float | None:
    """DS (and the binary floats): a JSON number or a decimal string; NaN/inf are not DICOM values."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = clean_text(value)
        if text is None:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def pn_to_string(value: Any) -> str | None:
    """PN as the DICOM string form: ``Alphabetic=Ideographic=Phonetic``, trailing empty groups dropped.

    DICOM JSON gives an object with up to three groups; the custom endpoints
    and files give the string already. Components (``^``) are kept as they are,
    so ``Muñoz^José`` and ``山田^太郎=やまだ^たろう`` survive unchanged.
    """
    if isinstance(value, Mapping):
        groups = [str(value.get(k) or "") for k in ("Alphabetic", "Ideographic", "Phonetic")]
        return "=".join(groups).rstrip("=") or None
    return clean_text(value)


def parse_for_vr(vr: str, value: Any, default_offset: dt.timezone | None = None) -> Any:
    """One value of an element with this VR → its typed Python value."""
    if vr == "DA":
        return parse_da(value)
    if vr == "TM":
        return parse_tm(value)
    if vr == "DT":
        parsed = parse_dt(value, default_offset)
        return parsed if parsed is not None and parsed.tzinfo is not None else None
    if vr in INTEGER_VRS:
        return parse_is(value)
    if vr in FLOAT_VRS:
        return parse_ds(value)
    if vr == "PN":
        return pn_to_string(value)
    return clean_text(value)


def arrow_type_for_vr(vr: str) -> pa.DataType:
    """The one place a VR is mapped to a Parquet type."""
    if vr == "DA":
        return pa.date32()
    if vr == "TM":
        return pa.time64("us")
    if vr == "DT":
        return pa.timestamp("us", tz="UTC")
    if vr in INTEGER_VRS:
        return pa.int64()
    if vr in FLOAT_VRS:
        return pa.float64()
    if vr in {"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"}:
        raise ValueError(f"VR {vr} has no column type in the export (sequences and binary are not exported)")
    return pa.string()


def snake_case(keyword: str) -> str:
    """DICOM keyword → column name: ``StudyInstanceUID`` → ``study_instance_uid``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", keyword)
    return spaced.lower()


def dicom_values(element: Any) -> list[Any]:
    """The ``Value`` array of a DICOM JSON element (``[]`` when omitted, as Annex F allows)."""
    if not isinstance(element, Mapping):
        return []
    values = element.get("Value")
    return list(values) if isinstance(values, list) else []


def lower_keys(record: Mapping[str, Any]) -> dict[str, Any]:
    """The custom endpoints' key case is not guaranteed (api-answers.md): compare case-insensitively."""
    return {str(k).lower(): v for k, v in record.items()}


def text_list(value: Any) -> list[str] | None:
    """A JSON array of strings; empty strings dropped, an empty list is null like any empty value."""
    if not isinstance(value, list):
        return None
    return [s for s in map(clean_text, value) if s is not None] or None


def uuid_text(value: Any) -> str | None:
    """UUIDs compare as lower-case (api-answers.md promises it; do not depend on it)."""
    text = clean_text(value)
    return text.lower() if text else None
