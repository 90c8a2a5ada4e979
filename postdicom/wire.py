"""Parameter values of the custom endpoints, written the way PostDICOM reads them.

PostDICOM's 13 custom endpoints take their parameters in ONE request header
whose value is a JSON object in which every value is a string, the way the
vendor's .NET sample prints them (see the wire-protocol reference):

==========================  ===============================================================
python value                sent as
==========================  ===============================================================
``None`` (not given)        ``""`` (the key is still sent)
``True`` / ``False``        ``"True"`` / ``"False"``
a list                      a JSON *string* holding the JSON array: ``"[\\"a\\",\\"b\\"]"``
``PatientOrderInfoList``    a JSON string of an array of JSON strings of
                            ``{"PatientOrderUuid": ...}`` objects (three levels)
a date                      ``YYYY-MM-DD``
``OrderScheduledDatetime``  ``YYYY-MM-DD HH:MM``
==========================  ===============================================================

The header value is pure ASCII: non-ASCII text travels as ``\\uXXXX`` escapes
inside the JSON, so ``Muñoz^José`` arrives intact whatever the HTTP stack
does with header bytes.

Everything here validates before anything is sent: a wrong value raises
:class:`~postdicom.errors.ValidationError` (a ``ValueError``) naming the
parameter, so a typo never becomes a half-done request. Values of secret
parameters (share passwords) never appear in an error message.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from pydantic.alias_generators import to_pascal
from pydicom.datadict import tag_for_keyword

from .errors import ValidationError
from .settings import env_number

DEFAULT_MAX_HEADER_BYTES = 8192
"""Safe size of one parameter header line, name included (many HTTP servers stop at 8 KiB)."""

MAX_HEADER_ENV = "POSTDICOM_MAX_HEADER_BYTES"
"""Environment variable that overrides :data:`DEFAULT_MAX_HEADER_BYTES` (tasks have no other knob)."""

KNOWN_MODALITIES: frozenset[str] = frozenset(
    # DICOM PS3.3 C.7.3.1.1.1 defined terms for Modality (0008,0060), current and retired.
    """
    ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DG DMS DOC DX ECG EEG EMG EOG EPS ES
    FID GM HC HD IO IOL IVOCT IVUS KER KO LEN LS M3D MG MR NM OAM OCT OP OPM OPT OPTBSV
    OPTENF OPV OSS OT PA PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN
    RTRAD RTRECORD RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA
    XAPROTOCOL XC
    AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF
    """.split()
)
"""Modality codes accepted; anything else is refused as implausible (a typo such as ``"TC"``)."""

SEXES = ("M", "F", "O")

EMPTY_LIST = '[""]'
"""How the vendor's sample sends a list left empty (a list of one blank string)."""

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MINUTE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")
_TAG_RE = re.compile(r"^\(?\s*([0-9a-f]{4})\s*,?\s*([0-9a-f]{4})\s*\)?$", re.IGNORECASE)


def max_header_bytes() -> int:
    """The safe size of a parameter header: ``POSTDICOM_MAX_HEADER_BYTES`` or 8 KiB.

    Read at call time so a deployment can change it without code.
    """
    return int(env_number(MAX_HEADER_ENV, DEFAULT_MAX_HEADER_BYTES, minimum=256, whole=True, unit="bytes"))


def _json(value: Any) -> str:
    """Compact, ASCII-only JSON, as the .NET sample writes it."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


# --- one encoder per kind of value -------------------------------------------------------
# Each takes the (given, non-empty) value and the parameter's label for messages,
# and returns the wire string or raises ValidationError.


def _text(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{label} must be text, not {type(value).__name__}")
    return value


def _secret(value: Any, label: str) -> str:
    # Duck-typed so that pydantic v1 and v2 SecretStr (and Prefect's Secret values) work alike.
    reveal = getattr(value, "get_secret_value", None)
    if callable(reveal):
        value = reveal()
    if not isinstance(value, str):
        raise ValidationError(f"{label} must be text or a SecretStr (value not shown)")
    return value


def _bool(value: Any, label: str) -> str:
    # Strict on purpose: the string "False" is truthy and would silently mean True.
    if not isinstance(value, bool):
        raise ValidationError(f"{label} must be True or False, not {type(value).__name__} {value!r}")
    return "True" if value else "False"


def _date(value: Any, label: str) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        if _DATE_RE.match(text):
            try:
                return dt.date.fromisoformat(text).isoformat()
            except ValueError:
                raise ValidationError(f"{label} is not a real date: {value!r}") from None
    raise ValidationError(f"{label} must be a date or a YYYY-MM-DD string, not {value!r}")


def _minute(value: Any, label: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        try:
            if _MINUTE_RE.match(text):
                value = dt.datetime.strptime(text, "%Y-%m-%d %H:%M")
            elif "T" in text:
                value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(f"{label} is not a real date and time: {value!r}") from None
    if isinstance(value, dt.datetime):
        # Wall-clock time as given (the API has no time zone); seconds do not travel.
        return value.strftime("%Y-%m-%d %H:%M")
    raise ValidationError(f"{label} must be a datetime or a 'YYYY-MM-DD HH:MM' string, not {value!r}")


def _uuid(value: Any, label: str) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and _UUID_RE.match(value.strip()):
        return value.strip().lower()
    raise ValidationError(f"{label} is not a UUID (8-4-4-4-12 hexadecimal): {value!r}")


def _modality(value: Any, label: str) -> str:
    if isinstance(value, str) and value.strip().upper() in KNOWN_MODALITIES:
        return value.strip().upper()
    raise ValidationError(f"{label} is not a DICOM modality code (such as CT, MR, US, CR, DX): {value!r}")


def _sex(value: Any, label: str) -> str:
    if isinstance(value, str) and value.strip().upper() in SEXES:
        return value.strip().upper()
    raise ValidationError(f"{label} must be one of M, F, O, not {value!r}")


def _tag(value: Any, label: str) -> str:
    """A DICOM tag as 8 upper-case hex digits, from any of the forms a person types."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFFFF:
        return f"{value:08X}"
    if isinstance(value, str):
        text = value.strip()
        match = _TAG_RE.match(text)
        if match:
            return (match.group(1) + match.group(2)).upper()
        tag = tag_for_keyword(text)
        if tag is not None:
            return f"{tag:08X}"
    raise ValidationError(f"{label} is not a DICOM tag (00100010, 0010,0010, (0010,0010) or a keyword): {value!r}")


def _items(value: Any, label: str) -> list[Any]:
    # A str is iterable too: "abc" must not become ["a", "b", "c"].
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValidationError(f"{label} must be a list, not {type(value).__name__}")
    return list(value)


def _list_of(item: Callable[[Any, str], str]) -> Callable[[Any, str], str]:
    def encode(value: Any, label: str) -> str:
        return _json([item(v, f"{label}[{i}]") for i, v in enumerate(_items(value, label))])

    return encode


def _order_info_list(value: Any, label: str) -> str:
    uuids = [_uuid(v, f"{label}[{i}]") for i, v in enumerate(_items(value, label))]
    return _json([_json({"PatientOrderUuid": u}) for u in uuids])


@dataclass(frozen=True)
class WireType:
    """One kind of parameter value: what Python accepts, how it is checked and written.

    Attributes
    ----------
    name:
        Short name shown in the generated endpoint table.
    annotation:
        The Python type accepted, used for the generated signatures.
    encode:
        ``encode(value, label) -> str`` for a given (not ``None``) value;
        raises :class:`ValidationError` mentioning ``label``.
    accepts:
        One phrase for docstrings: what a caller may pass.
    is_list:
        Whether the value is a list (an empty optional list counts as not given).
    secret:
        Whether the value must never appear in messages or labels.
    """

    name: str
    annotation: Any
    encode: Callable[[Any, str], str]
    accepts: str
    is_list: bool = False
    secret: bool = False


UuidLike = str | uuid.UUID
DateLike = dt.date | str

TEXT = WireType("text", str, _text, "text")
SECRET = WireType("secret", str | SecretStr, _secret, "text or SecretStr; never logged", secret=True)
BOOL = WireType("bool", bool, _bool, "True or False (sent as 'True'/'False')")
DATE = WireType("date", DateLike, _date, "a date or a 'YYYY-MM-DD' string")
DATETIME_MINUTES = WireType(
    "date-time", dt.datetime | str, _minute, "a datetime, 'YYYY-MM-DD HH:MM' or ISO string (sent to the minute)"
)
UUID = WireType("uuid", UuidLike, _uuid, "a UUID (string or uuid.UUID)")
MODALITY = WireType("modality", str, _modality, "a DICOM modality code such as CT, MR, US")
SEX = WireType("sex", str, _sex, "M, F or O")
UUID_LIST = WireType("uuid list", Sequence[UuidLike], _list_of(_uuid), "a list of UUIDs", is_list=True)
ORDER_INFO_LIST = WireType(
    "order info list",
    Sequence[UuidLike],
    _order_info_list,
    "a list of order UUIDs (wrapped as PatientOrderInfoList items on the wire)",
    is_list=True,
)
MODALITY_LIST = WireType("modality list", Sequence[str], _list_of(_modality), "a list of modality codes", is_list=True)
TAG_LIST = WireType(
    "tag list",
    Sequence[str | int],
    _list_of(_tag),
    "a list of tags: 00100010, 0010,0010, (0010,0010) or keywords (sent as 8 hex digits)",
    is_list=True,
)


@dataclass(frozen=True)
class Param:
    """One documented parameter of a custom endpoint.

    Attributes
    ----------
    name:
        The Python (snake_case) name, as in the public interface.
    wire:
        Its :class:`WireType`.
    required:
        ``True`` when the vendor document marks it required: ``None``, ``""``
        and (unless ``empty_ok``) an empty list are refused.
    doc:
        What the parameter means, for docstrings (optional).
    key:
        The key in the header object; derived from ``name`` (``expire_date``
        → ``ExpireDate``) unless given.
    empty_ok:
        For a required list whose empty value means "all": an empty list (or
        one of blank strings) is sent as :data:`EMPTY_LIST`, as the vendor's
        sample sends it, instead of being refused.
    """

    name: str
    wire: WireType
    required: bool = False
    doc: str = ""
    key: str = ""
    empty_ok: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", to_pascal(self.name))

    @property
    def label(self) -> str:
        """How messages name this parameter: the Python name and the wire key."""
        return f"{self.name} ({self.key})"

    def encode(self, value: Any) -> str:
        """The wire string for ``value``, after checking it."""
        if self.empty_ok and value is not None:
            items = [v for v in _items(value, self.label) if not (isinstance(v, str) and not v.strip())]
            return self.wire.encode(items, self.label) if items else EMPTY_LIST
        if not _is_empty(value):
            return self.wire.encode(value, self.label)
        if self.required:
            raise ValidationError(f"{self.label} is required")
        return ""


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value == ""
    if isinstance(value, (list, tuple, set, frozenset)):
        return len(value) == 0
    return False


def encode_parameters(params: Sequence[Param], values: Mapping[str, Any]) -> dict[str, str]:
    """Check every value and write the header object (every documented key, all strings).

    Parameters
    ----------
    params:
        The endpoint's parameters, in wire order.
    values:
        Python values by Python name; a missing name means "not given".

    Returns
    -------
    dict
        ``{wire key: wire string}`` for every parameter, in ``params`` order.

    Raises
    ------
    ValidationError
        A value is missing, malformed or unknown; the message names the parameter.
    """
    known = {p.name for p in params}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValidationError(f"unknown parameter(s): {', '.join(unknown)}")
    return {p.key: p.encode(values.get(p.name)) for p in params}


def header_value(encoded: Mapping[str, str]) -> str:
    """The parameter header's value: the encoded object as compact ASCII JSON."""
    return _json(dict(encoded))


def header_size(name: str, value: str) -> int:
    """Bytes the header line takes on the wire (``Name: value``), the unit of the size limit."""
    return len(name) + 2 + len(value.encode("ascii"))
