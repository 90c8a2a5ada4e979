"""Typed answers of the 13 custom endpoints (the shapes of ``docs/api-answers.md``).

The real service does not document its answers, so parsing is tolerant:

- key case is ignored (``patientorderuuid`` fills ``patient_order_uuid``);
- unknown keys are kept (``model.model_extra``) and never refused;
- missing keys become ``None`` (or an empty list), never an error;
- a date, date-time or time that cannot be read becomes ``None``;
- ``raw`` holds the JSON object exactly as received, for whatever the model
  does not cover.

Field names are the PascalCase keys in snake_case; ``model_dump(by_alias=True)``
gives the server's spelling back.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator
from pydantic.alias_generators import to_pascal


def _lenient(parse: Any) -> Any:
    """A before-validator that turns ``""`` and unreadable values into ``None``."""

    def validate(value: Any) -> Any:
        if value is None or isinstance(value, (dt.date, dt.time)):
            return value
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            return parse(value.strip())
        except ValueError:
            return None

    return BeforeValidator(validate)


def _parse_date(text: str) -> dt.date:
    if len(text) == 8 and text.isdigit():
        return dt.datetime.strptime(text, "%Y%m%d").date()
    return dt.date.fromisoformat(text[:10])


def _parse_datetime(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _parse_time(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


Date = Annotated[dt.date | None, _lenient(_parse_date)]
DateTime = Annotated[dt.datetime | None, _lenient(_parse_datetime)]
Time = Annotated[dt.time | None, _lenient(_parse_time)]
NoneAsEmpty = BeforeValidator(lambda v: [] if v is None else v)
"""A list the server sent as ``null`` reads as empty."""
StrList = Annotated[list[str], NoneAsEmpty]


class Answer(BaseModel):
    """Base of every answer: tolerant parsing and the original JSON in :attr:`raw`."""

    model_config = ConfigDict(
        alias_generator=to_pascal,
        populate_by_name=True,
        extra="allow",
        coerce_numbers_to_str=True,
    )

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _keys_by_lower: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._keys_by_lower = {(f.alias or name).lower(): f.alias or name for name, f in cls.model_fields.items()}

    @model_validator(mode="wrap")
    @classmethod
    def _tolerant(cls, data: Any, handler: Any) -> Any:
        """Match keys whatever their case, then remember the original object."""
        if not isinstance(data, dict):
            return handler(data)
        normalised = {cls._keys_by_lower.get(str(k).lower(), k): v for k, v in data.items()}
        model = handler(normalised)
        model._raw = data
        return model

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object as the server sent it (keys in its own case)."""
        return self._raw

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Answer:
        """Parse one answer object."""
        return cls.model_validate(data)

    def summary(self) -> str:
        """One line for logs: what the answer says, with counts, never a secret or a name."""
        return type(self).__name__


class ShareAnswer(Answer):
    """Answer of CreateShareLink, SharePatientOrderWithUrl and ShareFolderWithUrl.

    ``share_url`` opens the shared studies for anyone holding it (and the
    password, if any): treat it like a password. It is left out of ``repr``
    and of :meth:`summary` so it does not end up in logs by accident.
    """

    share_uuid: str | None = None
    share_url: str | None = Field(default=None, repr=False)
    expire_date: Date = None
    password_protected: bool | None = None
    downloadable: bool | None = None
    patient_order_uuid_list: StrList = Field(default_factory=list)
    folder_uuid: str | None = None
    share_title: str | None = None
    share_description: str | None = None

    def summary(self) -> str:
        what = f"folder {self.folder_uuid}" if self.folder_uuid else f"{len(self.patient_order_uuid_list)} order(s)"
        expiry = self.expire_date.isoformat() if self.expire_date else "never"
        protection = "password protected" if self.password_protected else "no password"
        return f"share {self.share_uuid} of {what}, expires {expiry}, {protection}"


class FolderAnswer(Answer):
    """Answer of CreateFolder (and one folder in a SearchFolder answer)."""

    folder_uuid: str | None = None
    folder_name: str | None = None
    folder_description: str | None = None
    parent_folder_uuid: str | None = None
    patient_order_uuid_list: list[str] | None = None
    """Orders in the folder; only filled by SearchFolder with ``GetOrdersInFolder``."""

    def summary(self) -> str:
        return f"folder {self.folder_uuid}"


class SearchFolderAnswer(Answer):
    """Answer of SearchFolder."""

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

    patient_order_uuid: str | None = None
    folder_uuid_list: StrList = Field(default_factory=list)
    added_folder_uuid_list: StrList = Field(default_factory=list)

    def summary(self) -> str:
        return (
            f"order {self.patient_order_uuid} now in {len(self.folder_uuid_list)} folder(s),"
            f" {len(self.added_folder_uuid_list)} added"
        )


class AssignOrderToUserAnswer(Answer):
    """Answer of AssignOrderToUser (``changed`` is false when it was already so)."""

    patient_order_uuid: str | None = None
    assigned_user_uuid: str | None = None
    previous_assigned_user_uuid: str | None = None
    changed: bool | None = None

    def summary(self) -> str:
        return f"order {self.patient_order_uuid} assigned to user {self.assigned_user_uuid} (changed: {self.changed})"


class AssignOrderToUserGroupAnswer(Answer):
    """Answer of AssignOrderToUserGroup (``changed`` is false when it was already so)."""

    patient_order_uuid: str | None = None
    assigned_user_group_uuid: str | None = None
    previous_assigned_user_group_uuid: str | None = None
    changed: bool | None = None

    def summary(self) -> str:
        return (
            f"order {self.patient_order_uuid} assigned to group {self.assigned_user_group_uuid}"
            f" (changed: {self.changed})"
        )


class CreatePatientOrderAnswer(Answer):
    """Answer of CreatePatientOrder (the server makes up an accession number if none was given)."""

    patient_order_uuid: str | None = None
    institution_uuid: str | None = None
    accession_number: str | None = None
    order_status: str | None = None

    def summary(self) -> str:
        # No accession number: it identifies a patient's order, and this line goes to the logs.
        return f"order {self.patient_order_uuid} ({self.order_status})"


class SeriesInfo(Answer):
    """One series of an order in GetPatientOrderProperties."""

    patient_series_uuid: str | None = None
    series_instance_uid: str | None = None
    modality: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    number_of_instances: int | None = None


class PatientOrderSummary(Answer):
    """One order in a GetPatientOrderList answer."""

    patient_order_uuid: str | None = None
    institution_uuid: str | None = None
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
    assigned_user_uuid: str | None = None
    assigned_user_group_uuid: str | None = None
    number_of_series: int | None = None
    number_of_instances: int | None = None


class PatientOrderProperties(PatientOrderSummary):
    """Answer of GetPatientOrderProperties: everything known about one order."""

    study_time: Time = None
    patient_complaints: str | None = None
    order_scheduled_datetime: DateTime = None
    requested_procedure_id: str | None = None
    requested_procedure_description: str | None = None
    requesting_physician: str | None = None
    referring_physicians_name: str | None = None
    scheduled_equipment_uuid: str | None = None
    folder_uuid_list: StrList = Field(default_factory=list)
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

    patient_order_uuid: str | None = None
    deleted: bool | None = None
    deleted_instance_count: int | None = None

    def summary(self) -> str:
        return f"order {self.patient_order_uuid} deleted: {self.deleted} ({self.deleted_instance_count} instance(s))"


class DicomTagContent(Answer):
    """One row of GetDicomTagContent: a tag's values in a series (or one instance)."""

    patient_series_uuid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    tag_id: str | None = None
    keyword: str | None = None
    vr: str | None = None
    values: StrList = Field(default_factory=list)


class DicomTagContentAnswer(Answer):
    """Answer of GetDicomTagContent."""

    patient_order_uuid: str | None = None
    dicom_tag_content_list: Annotated[list[DicomTagContent], NoneAsEmpty] = (
        Field(default_factory=list)
    )

    def summary(self) -> str:
        tags = {row.tag_id for row in self.dicom_tag_content_list}
        return f"{len(self.dicom_tag_content_list)} row(s) for {len(tags)} tag(s)"
