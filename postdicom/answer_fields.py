"""How one value of a custom endpoint's answer is read, whatever form the server sent it in.

The field types of :mod:`postdicom.models` (:data:`Date`, :data:`Bool`,
:data:`UuidList` ...) are ``Annotated`` types whose validators accept every
plausible form of a value (``"True"``, ``YYYYMMDD``, ``/Date(ms)/``, a list as
one ``A\\B`` string ...) and *note* each departure from the documented form
in the validation context under :data:`NOTES`, for
:class:`postdicom.models.AnswerReading`. A value that cannot be read becomes
``None`` and is noted, never refused. :func:`key_form` is the one rule for
"the same key" (case, ``_``/``-`` and ``Guid``/``Uuid`` ignored), used here,
by the models and by :mod:`postdicom.answers`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo
from pydantic.alias_generators import to_pascal

from . import json_text

NOTES = "fallbacks"
"""Key of the validation context where the validators note each fallback they needed."""


def note(info: ValidationInfo | None, what: str) -> None:
    """Remember that a value needed ``what`` to be read (only when the caller collects notes)."""
    if info is None:
        return
    context = info.context
    if isinstance(context, dict) and NOTES in context:
        model = info.config.get("title", "") if info.config else ""
        where = f"{model}.{to_pascal(info.field_name)}" if info.field_name else model
        context[NOTES].setdefault(f"{where}: {what}", None)


def spelling(key: str, documented: str) -> str:
    """How ``key`` differs from its ``documented`` PascalCase spelling, in words."""
    if key == documented[:1].lower() + documented[1:]:
        return "camelCase"
    if key == key.lower():
        return "snake_case" if "_" in key else "lower case"
    if key == key.upper():
        return "upper case"
    return "another spelling"


@functools.lru_cache(maxsize=4096, typed=True)
def key_form(key: str) -> str:
    """A key reduced to what identifies it: no case, no ``_``/``-``/blanks, ``Guid`` read as ``Uuid``.

    Every key of every answer object goes through here (a day's export reads
    tens of thousands), and the same few dozen keys repeat: remembered, up to
    4096 keys, so a server sending ever new keys cannot grow it.
    """
    reduced = re.sub(r"[\s_\-]", "", str(key)).lower()
    return reduced.replace("guid", "uuid")


# --- scalar readers -----------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """``value`` as stripped text; ``None`` for ``None`` and blanks."""
    if value is None:
        return None
    return str(value).strip() or None

_TRUE = {"true", "1", "yes", "y", "t", "on"}
_FALSE = {"false", "0", "no", "n", "f", "off"}
_NET_DATE = re.compile(r"^/?Date\((-?\d+)([+-]\d{4})?\)/?$")


def _read_bool(value: Any, info: ValidationInfo) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        note(info, "boolean sent as a number")
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        if text in _TRUE | _FALSE:
            note(info, "boolean sent as a string")
            return text in _TRUE
    note(info, "boolean that cannot be read (kept in received)")
    return None


def _read_int(value: Any, info: ValidationInfo) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and number.is_integer():
            note(info, "number sent as a string")
            return int(number)
    note(info, "number that cannot be read (kept in received)")
    return None


def _net_date(text: str) -> dt.datetime:
    """.NET's ``/Date(1700000000000)/`` (milliseconds since 1970, UTC) as a naive UTC date-time."""
    match = _NET_DATE.match(text)
    assert match is not None
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(match.group(1)))


def _iso_datetime(text: str) -> dt.datetime:
    """``fromisoformat`` after trimming .NET's seven decimals and a ``Z`` (the zone is dropped)."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return dt.datetime.fromisoformat(text).replace(tzinfo=None)


def _dicom_time(text: str) -> dt.time:
    digits, _, fraction = text.partition(".")
    digits = digits.ljust(6, "0")
    return dt.time(int(digits[:2]), int(digits[2:4]), int(digits[4:6]), int(fraction[:6].ljust(6, "0")))


Form = tuple[str, str | None, Callable[[str], Any]]
"""``(pattern, note, parse)``: text matching ``pattern`` is read by ``parse``; ``note`` says it was not documented."""

_NET_FORM = _NET_DATE.pattern.strip("^$")
_DATE_FORMS: tuple[Form, ...] = (
    (r"\d{4}-\d{2}-\d{2}", None, dt.date.fromisoformat),
    (r"\d{8}", "date as YYYYMMDD", lambda t: dt.datetime.strptime(t, "%Y%m%d").date()),
    (_NET_FORM, "date in .NET /Date()/ form", lambda t: _net_date(t).date()),
    (r".+", "date sent as a date-time", lambda t: _iso_datetime(t).date()),
)
_DATETIME_FORMS: tuple[Form, ...] = (
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", None, lambda t: dt.datetime.strptime(t, "%Y-%m-%d %H:%M")),
    (r"\d{8}(\d{4}(\d{2})?)?", "date-time in DICOM form (YYYYMMDDHHMMSS)",
     lambda t: dt.datetime.strptime(t.ljust(14, "0"), "%Y%m%d%H%M%S")),
    (_NET_FORM, "date-time in .NET /Date()/ form (UTC)", _net_date),
    (r".+", "date-time in ISO form", _iso_datetime),
)
_TIME_FORMS: tuple[Form, ...] = (
    (r"\d{2}:\d{2}(:\d{2})?", None, dt.time.fromisoformat),
    (r"\d{4}(\d{2}(\.\d+)?)?", "time in DICOM form (HHMMSS)", _dicom_time),
    (r"\d{4}-.*|.*T.*", "time sent as a date-time", lambda t: _iso_datetime(t).time()),
    (r".+", "time with fractions of a second", lambda t: dt.time.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", t))),
)


def _read_forms(value: Any, info: ValidationInfo, forms: tuple[Form, ...], what: str) -> Any:
    """``value`` read by the first form whose pattern it matches; ``None`` (noted) when that fails."""
    text = _text(value)
    if text is None:
        return None
    for pattern, form_note, parse in forms:
        if re.fullmatch(pattern, text):
            try:
                parsed = parse(text)
            except ValueError:
                break
            if form_note:
                note(info, form_note)
            return parsed
    note(info, f"{what} that cannot be read (kept in received)")
    return None


def _read_date(value: Any, info: ValidationInfo) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return _read_forms(value, info, _DATE_FORMS, "date")


def _read_datetime(value: Any, info: ValidationInfo) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return _read_forms(value, info, _DATETIME_FORMS, "date-time")


def _read_time(value: Any, info: ValidationInfo) -> dt.time | None:
    if isinstance(value, dt.time):
        return value
    return _read_forms(value, info, _TIME_FORMS, "time")


def canonical_uuid(value: Any) -> str | None:
    """The lower-case canonical form of a UUID (braces, upper case accepted), or ``None`` when it is not one."""
    text = _text(value)
    if text is None:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _read_uuid(value: Any, info: ValidationInfo) -> str | None:
    text = _text(value)
    canonical = canonical_uuid(text)
    if canonical is None:
        return text  # not a UUID at all: kept as sent
    if canonical != text:
        note(info, "UUID in upper case or braces")
    return canonical


def _read_str_list(value: Any, info: ValidationInfo, separators: tuple[str, ...] = ("\\", ",")) -> list[Any]:
    if value is None:
        note(info, "null for an empty list")
        return []
    if isinstance(value, (list, tuple)):
        return [item for item in value if item is not None]
    if isinstance(value, str):
        text = value.strip()
        if not text:
            note(info, "empty string for an empty list")
            return []
        if text.startswith("["):
            try:
                items = json_text.loads(text)
            except ValueError:
                items = None
            if isinstance(items, list):
                note(info, "list sent as a JSON string")
                return [item for item in items if item not in (None, "")]
        for separator in separators:
            if separator in text:
                note(info, f"list sent as one string separated by {separator!r}")
                return [part.strip() for part in text.split(separator) if part.strip()]
    note(info, "single value instead of a list")
    return [value]


def _read_optional_list(value: Any, info: ValidationInfo) -> list[Any] | None:
    """Like :func:`_read_str_list`, but ``null`` stays ``None`` (where it means "not asked for")."""
    return None if value is None else _read_str_list(value, info)


def _read_object_list(value: Any, info: ValidationInfo) -> Any:
    if value is None:
        note(info, "null for an empty list")
        return []
    if isinstance(value, str):
        try:
            value = json_text.loads(value) if value.strip() else []
        except ValueError:
            return value  # pydantic then says what is wrong
        note(info, "list sent as a JSON string")
    if isinstance(value, Mapping):
        note(info, "single object instead of a list")
        return [value]
    return value


def _date_text(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _datetime_text(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%d %H:%M" if not (value.second or value.microsecond) else "%Y-%m-%d %H:%M:%S")


def _reader(read: Any) -> BeforeValidator:
    return BeforeValidator(read)


Date = Annotated[dt.date | None, _reader(_read_date), PlainSerializer(_date_text, when_used="json")]
"""``YYYY-MM-DD`` (documented), ``YYYYMMDD``, an ISO date-time or ``/Date(ms)/``."""
DateTime = Annotated[dt.datetime | None, _reader(_read_datetime), PlainSerializer(_datetime_text, when_used="json")]
"""``YYYY-MM-DD HH:MM`` (documented), ISO, DICOM ``YYYYMMDDHHMMSS`` or ``/Date(ms)/``."""
Time = Annotated[dt.time | None, _reader(_read_time)]
"""``HH:MM:SS`` (documented), with fractions, or DICOM ``HHMMSS``."""
Bool = Annotated[bool | None, _reader(_read_bool)]
"""``true``/``false`` (documented), ``"True"``, ``"false"``, ``0``/``1``."""
Int = Annotated[int | None, _reader(_read_int)]
"""A JSON number (documented) or a number in a string."""
Uuid = Annotated[str | None, _reader(_read_uuid)]
"""A UUID, read in lower-case canonical form (braces and upper case accepted)."""
StrList = Annotated[list[str], _reader(_read_str_list)]
"""A list of strings; ``null``, a JSON string of a list, ``A\\B`` or a single value accepted."""
UuidList = Annotated[list[Uuid], _reader(_read_str_list)]
"""A list of UUIDs, read like :data:`StrList`, each in canonical form."""
ValueList = Annotated[list[str], _reader(lambda value, info: _read_str_list(value, info, separators=("\\",)))]
"""DICOM values: like :data:`StrList`, but only ``\\`` separates values (a name may hold a comma)."""
NoneAsEmpty = _reader(_read_object_list)
"""A list of objects; ``null``, a JSON string of the list or a single object accepted."""
OptionalUuidList = Annotated[list[Uuid] | None, _reader(_read_optional_list)]
"""Like :data:`UuidList`, but ``null`` stays ``None`` (where it means "not asked for")."""
