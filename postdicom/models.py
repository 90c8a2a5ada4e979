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

How each value is read (and each fallback noted) is
:mod:`postdicom.answer_fields`'; this module holds the answers built from
those fields. Whatever the answer's shape, :attr:`Answer.raw` is the answer
*in the documented shape* (documented keys in their documented spelling,
values in the documented form, unknown keys as received, absent keys absent),
so code that reads ``raw`` works whatever the server sent;
:attr:`Answer.received` is the JSON exactly as received. Every departure from
the documented shape is noted in :attr:`Answer.reading` (which
``postdicom-flows check`` reports). Unwrapping whole answers (bare arrays,
envelopes) is :mod:`postdicom.answers`' job.

Field names are the PascalCase keys in snake_case; ``model_dump(by_alias=True)``
gives the server's spelling back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, ForwardRef, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator
from pydantic.alias_generators import to_pascal

from .answer_fields import (
    Bool,
    Date,
    DateTime,
    Int,
    NoneAsEmpty,
    OptionalUuidList,
    StrList,
    Time,
    Uuid,
    UuidList,
    ValueList,
    canonical_uuid,
    key_form,
    note,
    spelling,
)


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
        Whether at least one documented key (or the documented list) was found,
        and, in a list answer, in every row of the list.
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
    _nested_fields: ClassVar[tuple[str, ...]] = ()
    """The fields whose type can hold nested answers: the only ones :meth:`unknown_keys` walks."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._keys_by_form = {key_form(f.alias or name): f.alias or name for name, f in cls.model_fields.items()}
        cls._nested_fields = tuple(name for name, f in cls.model_fields.items() if _may_hold_answers(f.annotation))

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
                note(info, f"keys in {spelling(str(key), known)}")
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
        for name in type(self)._nested_fields:
            value = getattr(self, name)
            items = value if isinstance(value, list) else [value]
            path = f"{prefix}{to_pascal(name)}{'[].' if isinstance(value, list) else '.'}"
            seen: dict[str, None] = {}
            for item in items:
                if isinstance(item, Answer):
                    for key in item.unknown_keys(path):
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


def _may_hold_answers(annotation: Any) -> bool:
    """Whether a field of this type can hold an :class:`Answer` (a type not resolved counts as yes)."""
    if isinstance(annotation, (str, ForwardRef)):
        return True
    if isinstance(annotation, type) and get_origin(annotation) is None and issubclass(annotation, Answer):
        return True
    return any(_may_hold_answers(argument) for argument in get_args(annotation))


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
    patient_order_uuid_list: OptionalUuidList = None
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
