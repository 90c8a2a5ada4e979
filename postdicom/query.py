"""QIDO-RS query strings, built by hand and checked before they are sent.

Two facts about real servers shape this module (observed on Orthanc 1.10.1):

* Orthanc 1.10 does not percent-decode query strings, while httpx's
  ``params=`` percent-encodes ``*``, ``^`` and ``,``. A wildcard
  (``PatientName=Mu*``), person-name (``Doe^John``) or list search would then
  silently match nothing. So the characters QIDO gives a meaning to, plus
  ``- .`` and alphanumerics, travel raw; everything else is percent-encoded
  (UTF-8), which standard servers decode and which never changes a match.
* Orthanc ignores attributes it does not know and answers every study. A
  misspelt keyword would look like an empty filter, so attribute names are
  validated against pydicom's data dictionary and refused with a
  :class:`~postdicom.errors.ValidationError` that names them.

Attribute names are sent as 8-hex tags (``00100020``): that is the form
PostDICOM's own sample client uses, and PS3.18 servers accept it too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

from pydicom.datadict import dictionary_description, keyword_for_tag, tag_for_keyword

from .errors import ValidationError

FilterValue = Union[str, int, float, dt.date, dt.datetime, Sequence[str], None]
"""What a filter value may be: text, a number, a date, or a list (sent comma-separated)."""

_RAW_BYTES = frozenset(b"*?^,-." b"0123456789" b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" b"abcdefghijklmnopqrstuvwxyz")
_HEX_TAG = re.compile(r"^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$")
_RESERVED = frozenset({"limit", "offset", "fuzzymatching", "includefield"})


def quote_value(value: str) -> str:
    """Percent-encode ``value`` as UTF-8, leaving ``* ? ^ , - .`` and alphanumerics raw.

    Examples
    --------
    >>> quote_value("Muñoz^José*")
    'Mu%C3%B1oz^Jos%C3%A9*'
    >>> quote_value("20240101-20240131")
    '20240101-20240131'
    """
    return "".join(chr(b) if b in _RAW_BYTES else f"%{b:02X}" for b in value.encode("utf-8"))


def attribute_tag(name: str) -> str:
    """The 8-hex tag of a DICOM attribute given by keyword or tag, or raise.

    Accepts ``PatientID``, ``00100020``, ``0010,0020`` and ``(0010,0020)``;
    a dotted path (``ReferencedSeriesSequence.SeriesInstanceUID``) is checked
    element by element. Private and unknown tags are refused because servers
    silently ignore attributes they cannot match.

    Raises
    ------
    ValidationError
        When ``name`` is no attribute of the DICOM dictionary.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"empty or non-text DICOM attribute name: {name!r}")
    return ".".join(_one_tag(part.strip(), name) for part in name.split("."))


def _one_tag(part: str, whole: str) -> str:
    match = _HEX_TAG.match(part)
    if match:
        tag = int(match.group(1) + match.group(2), 16)
        if keyword_for_tag(tag):
            return f"{tag:08X}"
        try:
            dictionary_description(tag)
        except KeyError:
            pass
        else:
            return f"{tag:08X}"
    else:
        keyword_tag = tag_for_keyword(part)
        if keyword_tag is not None:
            return f"{keyword_tag:08X}"
    raise ValidationError(
        f"unknown DICOM attribute {whole!r}: use a keyword such as 'PatientID' or an 8-hex tag such as '00100020'"
    )


def format_value(value: FilterValue) -> str:
    """A filter value as QIDO text: dates as ``YYYYMMDD``, lists comma-joined, ``None`` empty."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y%m%d%H%M%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return ",".join(format_value(v) for v in value)
    raise ValidationError(f"cannot use {type(value).__name__} as a QIDO filter value")


def build_query(
    filters: Mapping[str, FilterValue] | None = None,
    *,
    fields: Iterable[str] = (),
    limit: int | None = None,
    offset: int = 0,
    fuzzymatching: bool = False,
) -> str:
    """The query string of a QIDO-RS search, every name validated, every value encoded.

    Parameters
    ----------
    filters
        Attribute (keyword or tag) to match value; ``*`` and ``?`` are
        wildcards, ``a-b`` a date range, ``a,b`` a list.
    fields
        Extra attributes to return (``includefield``); ``"all"`` asks for all.
    limit, offset
        Paging parameters, sent only when set.
    fuzzymatching
        Ask for fuzzy person-name matching (many servers ignore it).

    Returns
    -------
    str
        The query string without its leading ``?`` (possibly empty).

    Raises
    ------
    ValidationError
        Unknown attribute names, negative paging values.
    """
    pairs: list[str] = []
    for name, value in (filters or {}).items():
        if isinstance(name, str) and name.lower() in _RESERVED:
            raise ValidationError(f"{name!r} is a paging/return parameter: pass it as a keyword argument")
        pairs.append(f"{attribute_tag(name)}={quote_value(format_value(value))}")
    for field in fields:
        key = "all" if isinstance(field, str) and field.lower() == "all" else attribute_tag(field)
        pairs.append(f"includefield={key}")
    if fuzzymatching:
        pairs.append("fuzzymatching=true")
    if limit is not None:
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, not {limit}")
        pairs.append(f"limit={int(limit)}")
    if offset:
        if offset < 0:
            raise ValidationError(f"offset must not be negative, not {offset}")
        pairs.append(f"offset={int(offset)}")
    return "&".join(pairs)


def merge_filters(
    filters: Mapping[str, FilterValue] | None, attributes: Mapping[str, FilterValue]
) -> dict[str, FilterValue]:
    """Both ways of giving filters (a mapping, keyword arguments) merged and keyed by 8-hex tag.

    Names are validated here, before any request.
    """
    merged: dict[str, FilterValue] = {}
    for source in (filters or {}, attributes):
        for name, value in source.items():
            merged[attribute_tag(name)] = value
    return merged
