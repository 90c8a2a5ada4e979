"""Typed answers of the 13 custom endpoints (the shapes of ``docs/api-answers.md``).

The vendor documents its parameters, not its answers, so every answer shape is
a guess and parsing accepts what a .NET service plausibly sends:

- key case and underscores are ignored (``patientOrderUuid``,
  ``PATIENTORDERUUID`` and ``patient_order_uuid`` fill ``patient_order_uuid``;
  ``...Guid`` reads as ``...Uuid``);
- booleans and numbers may come as strings (``"True"``, ``"12"``), booleans
  as ``0``/``1``;
- dates as ``YYYY-MM-DD``, ``YYYYMMDD``, ISO date-times or .NET's
  ``/Date(ms)/``; times with .NET's seven decimals or as DICOM ``HHMMSS``;
- ``null`` for an empty list; a list sent as a JSON string, as a single value
  or as DICOM ``A\\B``; upper-case or braced UUIDs (read lower-case);
- unknown keys are kept (``model.model_extra``) and never refused;
- missing keys become ``None`` (or an empty list); a value that cannot be read
  becomes ``None`` too, and is noted.

Whatever the answer's shape, :attr:`Answer.raw` is the answer *in the
documented shape* (documented keys in their documented spelling, values in the
documented form, unknown keys as received, absent keys absent), so code that
reads ``raw`` works whatever the server sent; :attr:`Answer.received` is the
JSON exactly as received. Every departure from the documented shape is noted
in :attr:`Answer.reading` (which ``postdicom-flows check`` reports). Unwrapping
whole answers (bare arrays, envelopes) is :mod:`postdicom.answers`' job.

Field names are the PascalCase keys in snake_case; ``model_dump(by_alias=True)``
gives the server's spelling back.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_pascal

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


def _spelling(key: str, documented: str) -> str:
    """How ``key`` differs from its ``documented`` PascalCase spelling, in words."""
    if key == documented[:1].lower() + documented[1:]:
        return "camelCase"
    if key == key.lower():
        return "snake_case" if "_" in key else "lower case"
    if key == key.upper():
        return "upper case"
    return "another spelling"


def key_form(key: str) -> str:
    """A key reduced to what identifies it: no case, no ``_``/``-``/blanks, ``Guid`` read as ``Uuid``."""
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
                items = json.loads(text)
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
            value = json.loads(value) if value.strip() else []
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
"""A list of UUIDs, read like :data:`StrList`, each in canonical form."""
NoneAsEmpty = _reader(_read_object_list)
"""A list of objects; ``null``, a JSON string of the list or a single object accepted."""


@dataclass
class AnswerReading:
    """How an answer was read: for logs and for ``postdicom-flows check``.

    Attributes
    ----------
    endpoint:
        The vendor name of the endpoint that answered.
    shape:
        The shape of the answer as a whole (``documented object``, ``bare array``,
        ``'Data' envelope``, ``empty body`` ...).
    fallbacks:
        Every departure from the documented shape that had to be read around.
    unknown_keys:
        Keys outside the documented shape (kept in ``raw`` and ``received``),
        as paths such as ``FolderList[].Color``.
    understood:
        Whether at least one documented key (or the documented list) was found.
    empty:
        Whether the server sent no answer at all (an empty body).
    status:
        The HTTP status of the answer (``None`` when not read from one).
    warnings:
        What the caller should know about this call (a lookup that protects
        against duplicates could not be made ...); tasks log them as warnings.
    """

    endpoint: str = ""
    shape: str = "documented object"
    fallbacks: list[str] = field(default_factory=list)
    unknown_keys: list[str] = field(default_factory=list)
    understood: bool = True
    empty: bool = False
    status: int | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def documented(self) -> bool:
        """Whether the answer was exactly as documented (no fallback, no unknown key)."""
        return self.understood and not self.fallbacks and not self.unknown_keys


class Answer(BaseModel):
    """Base of every answer: tolerant parsing, :attr:`raw`, :attr:`received` and :attr:`reading`."""

    model_config = ConfigDict(
        alias_generator=to_pascal,
        populate_by_name=True,
        extra="allow",
        coerce_numbers_to_str=True,
    )

    list_key: ClassVar[str | None] = None
    """For list answers: the documented key of the list (``FolderList``)."""

    _received: Any = PrivateAttr(default=None)
    _raw: dict[str, Any] | None = PrivateAttr(default=None)
    _reading: AnswerReading | None = PrivateAttr(default=None)
    _keys_by_form: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._keys_by_form = {key_form(f.alias or name): f.alias or name for name, f in cls.model_fields.items()}

    @classmethod
    def documented_keys(cls) -> list[str]:
        """The documented keys of this answer, in their documented spelling."""
        return list(cls._keys_by_form.values())

    @classmethod
    def known_key(cls, key: Any) -> str | None:
        """The documented spelling of ``key`` (whatever its case), or ``None`` for an unknown key."""
        return cls._keys_by_form.get(key_form(key))

    @model_validator(mode="wrap")
    @classmethod
    def _tolerant(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        """Match keys whatever their case, then remember the object as received."""
        if not isinstance(data, Mapping):
            return handler(data)
        normalised: dict[str, Any] = {}
        for key, value in data.items():
            known = cls._keys_by_form.get(key_form(key))
            if known is not None and known != key:
                note(info, f"keys in {_spelling(str(key), known)}")
            normalised[known or key] = value
        model = handler(normalised)
        model._received = data
        return model

    def __eq__(self, other: object) -> bool:
        """Equal when the values are: how they were sent (``received``, ``reading``) does not count."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.__dict__ == other.__dict__
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def raw(self) -> dict[str, Any]:
        """The answer in the documented shape: documented keys as documented, unknown keys as received.

        Values are in their documented form (``"True"`` is ``true``, ``"20261127"``
        is ``"2026-11-27"``); keys the server did not send stay absent.
        """
        if self._raw is None:
            self._raw = self.model_dump(by_alias=True, mode="json", exclude_unset=True)
        return self._raw

    @property
    def received(self) -> Any:
        """The JSON exactly as the server sent it (keys in its own case, envelope included)."""
        return self._received

    @property
    def reading(self) -> AnswerReading:
        """How this answer was read (shape, fallbacks, unknown keys); see :mod:`postdicom.answers`."""
        if self._reading is None:
            self._reading = AnswerReading()
        return self._reading

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Answer:
        """Parse one answer object (already unwrapped; see :func:`postdicom.answers.read_answer`)."""
        return cls.model_validate(data)

    def unknown_keys(self, prefix: str = "") -> list[str]:
        """Paths of the keys outside the documented shape, here and in nested answers."""
        found = [f"{prefix}{key}" for key in (self.model_extra or {})]
        for name in type(self).model_fields:
            value = getattr(self, name)
            items = value if isinstance(value, list) else [value]
            seen: dict[str, None] = {}
            for item in items:
                if isinstance(item, Answer):
                    suffix = "[]." if isinstance(value, list) else "."
                    for key in item.unknown_keys(f"{prefix}{to_pascal(name)}{suffix}"):
                        seen.setdefault(key, None)
            found += list(seen)
        return found

    @classmethod
    def from_request(cls, request: Mapping[str, str]) -> dict[str, Any]:
        """What an empty success answer means, from the request's parameter header.

        A write that answers nothing but a success status did what was asked:
        the documented keys the request names (``PatientOrderUuid``,
        ``FolderUuidList`` ...) stand for the answer; everything else is unknown.
        """
        return {key: value for key, value in request.items() if cls.known_key(key) and value != ""}

    def summary(self) -> str:
        """One line for logs: what the answer says, with counts, never a secret or a name."""
        return type(self).__name__


class ShareAnswer(Answer):
    """Answer of CreateShareLink, SharePatientOrderWithUrl and ShareFolderWithUrl.

    ``share_url`` opens the shared studies for anyone holding it (and the
    password, if any): treat it like a password. It is left out of ``repr``
    and of :meth:`summary` so it does not end up in logs by accident.
    """

    share_uuid: Uuid = None
    share_url: str | None = Field(default=None, repr=False)
    expire_date: Date = None
    password_protected: Bool = None
    downloadable: Bool = None
    patient_order_uuid_list: UuidList = Field(default_factory=list)
    folder_uuid: Uuid = None
    share_title: str | None = None
    share_description: str | None = None

    def summary(self) -> str:
        what = f"folder {self.folder_uuid}" if self.folder_uuid else f"{len(self.patient_order_uuid_list)} order(s)"
        expiry = self.expire_date.isoformat() if self.expire_date else "never"
        protection = "password protected" if self.password_protected else "no password"
        return f"share {self.share_uuid} of {what}, expires {expiry}, {protection}"


class FolderAnswer(Answer):
    """Answer of CreateFolder (and one folder in a SearchFolder answer)."""

    folder_uuid: Uuid = None
    folder_name: str | None = None
    folder_description: str | None = None
    parent_folder_uuid: Uuid = None
    patient_order_uuid_list: Annotated[list[Uuid] | None, _reader(_read_optional_list)] = None
    """Orders in the folder; only filled by SearchFolder with ``GetOrdersInFolder``."""

    def is_named(self, folder_name: str, parent_folder_uuid: str | None) -> bool:
        """Whether this is the folder ``folder_name`` under that parent (``None``: top level).

        Names are compared without outer blanks, since a server may trim what it
        stores; UUIDs in canonical form. The client's look-before-create and the
        upload flow's find-or-create both ask this, so they agree on what "the
        same folder" is.
        """
        return (self.folder_name or "").strip() == folder_name.strip() and canonical_uuid(
            self.parent_folder_uuid
        ) == canonical_uuid(parent_folder_uuid)

    def summary(self) -> str:
        return f"folder {self.folder_uuid}"


class SearchFolderAnswer(Answer):
    """Answer of SearchFolder."""

    list_key: ClassVar[str | None] = "FolderList"

    folder_list: Annotated[list[FolderAnswer], NoneAsEmpty] = Field(
        default_factory=list
    )

    def summary(self) -> str:
        return f"{len(self.folder_list)} folder(s)"


class AddOrderToFolderAnswer(Answer):
    """Answer of AddOrderToFolder.

    ``folder_uuid_list`` is every folder holding the order after the call;
    ``added_folder_uuid_list`` those this call added.
    """

    patient_order_uuid: Uuid = None
    folder_uuid_list: UuidList = Field(default_factory=list)
    added_folder_uuid_list: UuidList = Field(default_factory=list)

    def summary(self) -> str:
        return (
            f"order {self.patient_order_uuid} now in {len(self.folder_uuid_list)} folder(s),"
            f" {len(self.added_folder_uuid_list)} added"
        )


class AssignOrderToUserAnswer(Answer):
    """Answer of AssignOrderToUser (``changed`` is false when it was already so)."""

    patient_order_uuid: Uuid = None
    assigned_user_uuid: Uuid = None
    previous_assigned_user_uuid: Uuid = None
    changed: Bool = None

    def summary(self) -> str:
        return f"order {self.patient_order_uuid} assigned to user {self.assigned_user_uuid} (changed: {self.changed})"


class AssignOrderToUserGroupAnswer(Answer):
    """Answer of AssignOrderToUserGroup (``changed`` is false when it was already so)."""

    patient_order_uuid: Uuid = None
    assigned_user_group_uuid: Uuid = None
    previous_assigned_user_group_uuid: Uuid = None
    changed: Bool = None

    def summary(self) -> str:
        return (
            f"order {self.patient_order_uuid} assigned to group {self.assigned_user_group_uuid}"
            f" (changed: {self.changed})"
        )


class CreatePatientOrderAnswer(Answer):
    """Answer of CreatePatientOrder (the server makes up an accession number if none was given)."""

    patient_order_uuid: Uuid = None
    institution_uuid: Uuid = None
    accession_number: str | None = None
    order_status: str | None = None

    def summary(self) -> str:
        # No accession number: it identifies a patient's order, and this line goes to the logs.
        return f"order {self.patient_order_uuid} ({self.order_status})"


class SeriesInfo(Answer):
    """One series of an order in GetPatientOrderProperties."""

    patient_series_uuid: Uuid = None
    series_instance_uid: str | None = None
    modality: str | None = None
    series_number: Int = None
    series_description: str | None = None
    number_of_instances: Int = None


class PatientOrderSummary(Answer):
    """One order in a GetPatientOrderList answer."""

    patient_order_uuid: Uuid = None
    institution_uuid: Uuid = None
    order_status: str | None = None
    patient_name: str | None = None
    patient_id: str | None = None
    other_patient_id: str | None = None
    patient_sex: str | None = None
    patient_birthdate: Date = None
    accession_number: str | None = None
    modality: str | None = None
    modality_list: StrList = Field(default_factory=list)
    study_instance_uid: str | None = None
    study_date: Date = None
    study_description: str | None = None
    assigned_user_uuid: Uuid = None
    assigned_user_group_uuid: Uuid = None
    number_of_series: Int = None
    number_of_instances: Int = None


class PatientOrderProperties(PatientOrderSummary):
    """Answer of GetPatientOrderProperties: everything known about one order."""

    study_time: Time = None
    patient_complaints: str | None = None
    order_scheduled_datetime: DateTime = None
    requested_procedure_id: str | None = None
    requested_procedure_description: str | None = None
    requesting_physician: str | None = None
    referring_physicians_name: str | None = None
    scheduled_equipment_uuid: Uuid = None
    folder_uuid_list: UuidList = Field(default_factory=list)
    series_list: Annotated[list[SeriesInfo], NoneAsEmpty] = Field(
        default_factory=list
    )
    created_datetime: DateTime = None

    def summary(self) -> str:
        return (
            f"order {self.patient_order_uuid} ({self.order_status}): {self.number_of_series} series,"
            f" {self.number_of_instances} instance(s), {len(self.folder_uuid_list)} folder(s)"
        )


class PatientOrderListAnswer(Answer):
    """Answer of GetPatientOrderList (no paging: the whole match)."""

    list_key: ClassVar[str | None] = "PatientOrderList"

    patient_order_list: Annotated[list[PatientOrderSummary], NoneAsEmpty] = (
        Field(default_factory=list)
    )

    def summary(self) -> str:
        return f"{len(self.patient_order_list)} order(s)"


class DeleteOrderAnswer(Answer):
    """Answer of DeletePatientOrder.

    ``deleted_instance_count`` is ``None`` when an earlier attempt of the same
    call did the deletion and a retry only found the order gone.
    """

    patient_order_uuid: Uuid = None
    deleted: Bool = None
    deleted_instance_count: Int = None

    @classmethod
    def from_request(cls, request: Mapping[str, str]) -> dict[str, Any]:
        return {**super().from_request(request), "Deleted": True}

    def summary(self) -> str:
        return f"order {self.patient_order_uuid} deleted: {self.deleted} ({self.deleted_instance_count} instance(s))"


class DicomTagContent(Answer):
    """One row of GetDicomTagContent: a tag's values in a series (or one instance)."""

    patient_series_uuid: Uuid = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    tag_id: str | None = None
    keyword: str | None = None
    vr: str | None = None
    values: ValueList = Field(default_factory=list)


class DicomTagContentAnswer(Answer):
    """Answer of GetDicomTagContent."""

    list_key: ClassVar[str | None] = "DicomTagContentList"

    patient_order_uuid: Uuid = None
    dicom_tag_content_list: Annotated[list[DicomTagContent], NoneAsEmpty] = (
        Field(default_factory=list)
    )

    def summary(self) -> str:
        tags = {row.tag_id for row in self.dicom_tag_content_list}
        return f"{len(self.dicom_tag_content_list)} row(s) for {len(tags)} tag(s)"
