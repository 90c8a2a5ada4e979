"""The patient-order endpoints of PostDICOM as client methods, written out.

CreatePatientOrder, GetPatientOrderProperties, GetDicomTagContent,
GetPatientOrderList, DeletePatientOrder, AssignOrderToUser and
AssignOrderToUserGroup: the life of one order in an account.
GetPatientOrderList also as :meth:`OrderEndpoints.iter_patient_order_list`,
its orders handed on as they arrive (the API does not page it). What every
custom-endpoint method does and raises is said in :mod:`postdicom.endpoints`,
which joins these to the folder and share methods.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from . import endpoint_table as table
from .answer_stream import AnswerRows
from .endpoint_engine import EndpointEngine
from .models import (
    AssignOrderToUserAnswer,
    AssignOrderToUserGroupAnswer,
    CreatePatientOrderAnswer,
    DeleteOrderAnswer,
    DicomTagContentAnswer,
    PatientOrderListAnswer,
    PatientOrderProperties,
    PatientOrderSummary,
)
from .wire import DateLike, UuidLike


class OrderEndpoints(EndpointEngine):
    """The patient-order methods of :class:`postdicom.client.PostDicomClient`."""

    def assign_order_to_user(
        self,
        patient_order_uuid: UuidLike,
        assigned_user_uuid: UuidLike,
    ) -> AssignOrderToUserAnswer:
        """Assign a patient order to one user (replacing the previous assignee).

        Repeated on transient failures (assigning twice leaves the same state).

        Parameters
        ----------
        patient_order_uuid
            The order to assign.
        assigned_user_uuid
            User who becomes responsible for it.

        Returns
        -------
        AssignOrderToUserAnswer
            The new and the previous assignee.
        """
        return self.call_endpoint(
            table.ASSIGN_ORDER_TO_USER,
            dict(patient_order_uuid=patient_order_uuid, assigned_user_uuid=assigned_user_uuid),
        )

    def assign_order_to_user_group(
        self,
        patient_order_uuid: UuidLike,
        assigned_user_group_uuid: UuidLike,
    ) -> AssignOrderToUserGroupAnswer:
        """Assign a patient order to a user group (replacing the previous group).

        Repeated on transient failures (assigning twice leaves the same state).

        Parameters
        ----------
        patient_order_uuid
            The order to assign.
        assigned_user_group_uuid
            Group whose members may take it.

        Returns
        -------
        AssignOrderToUserGroupAnswer
            The new and the previous group.
        """
        return self.call_endpoint(
            table.ASSIGN_ORDER_TO_USER_GROUP,
            dict(patient_order_uuid=patient_order_uuid, assigned_user_group_uuid=assigned_user_group_uuid),
        )

    def create_patient_order(
        self,
        institution_uuid: UuidLike,
        patient_name: str,
        patient_id: str,
        patient_birthdate: DateLike,
        modality: str,
        other_patient_id: str | None = None,
        patient_sex: str | None = None,
        study_description: str | None = None,
        accession_number: str | None = None,
        patient_complaints: str | None = None,
        order_scheduled_datetime: dt.datetime | str | None = None,
        requested_procedure_id: str | None = None,
        requested_procedure_description: str | None = None,
        requesting_physician: str | None = None,
        referring_physicians_name: str | None = None,
        scheduled_equipment_uuid: UuidLike | None = None,
    ) -> CreatePatientOrderAnswer:
        """Create a (scheduled) patient order for an imaging study.

        With an accession number, a create that fails after it may have
        reached the server is followed by a GetPatientOrderList request for
        that accession number and patient id: the order an earlier attempt
        made is returned instead of creating a second. Without one, the
        server makes one up, so the call is never sent again once it may have
        reached the server.

        Parameters
        ----------
        institution_uuid
            Institution the order is created in.
        patient_name
            DICOM person name, e.g. ``Muñoz^José``.
        patient_id
            Patient identifier (MRN).
        patient_birthdate
            A date or ``YYYY-MM-DD``.
        modality
            A DICOM modality code such as ``CT``, ``MR``, ``US``.
        other_patient_id
            Another identifier of the patient.
        patient_sex
            ``M``, ``F`` or ``O``.
        study_description
            What the study is.
        accession_number
            Identifies the order; give one so a retry can find an order an earlier attempt made.
        patient_complaints
            Free text.
        order_scheduled_datetime
            When the procedure is scheduled: a datetime, ``YYYY-MM-DD HH:MM`` or ISO (sent to the minute).
        requested_procedure_id
            Identifier of the requested procedure.
        requested_procedure_description
            Description of the requested procedure.
        requesting_physician
            Physician who asked for the study.
        referring_physicians_name
            Referring physician.
        scheduled_equipment_uuid
            Equipment the procedure is scheduled on.

        Returns
        -------
        CreatePatientOrderAnswer
            The new order's UUID, accession number and status.
        """
        return self.call_endpoint(
            table.CREATE_PATIENT_ORDER,
            dict(
                institution_uuid=institution_uuid,
                patient_name=patient_name,
                patient_id=patient_id,
                patient_birthdate=patient_birthdate,
                modality=modality,
                other_patient_id=other_patient_id,
                patient_sex=patient_sex,
                study_description=study_description,
                accession_number=accession_number,
                patient_complaints=patient_complaints,
                order_scheduled_datetime=order_scheduled_datetime,
                requested_procedure_id=requested_procedure_id,
                requested_procedure_description=requested_procedure_description,
                requesting_physician=requesting_physician,
                referring_physicians_name=referring_physicians_name,
                scheduled_equipment_uuid=scheduled_equipment_uuid,
            ),
        )

    def get_patient_order_properties(
        self,
        patient_order_institution_uuid: UuidLike,
        patient_order_uuid: UuidLike,
    ) -> PatientOrderProperties:
        """Read every property of one patient order (patient, study, series, assignments, folders).

        Parameters
        ----------
        patient_order_institution_uuid
            Institution the order belongs to.
        patient_order_uuid
            The order.

        Returns
        -------
        PatientOrderProperties
            The order's properties.
        """
        return self.call_endpoint(
            table.GET_PATIENT_ORDER_PROPERTIES,
            dict(patient_order_institution_uuid=patient_order_institution_uuid, patient_order_uuid=patient_order_uuid),
        )

    def get_dicom_tag_content(
        self,
        patient_order_institution_uuid: UuidLike,
        patient_order_uuid: UuidLike,
        patient_series_uuid: UuidLike | None = None,
        dicom_tag_id_list: Sequence[str | int] | None = None,
    ) -> DicomTagContentAnswer:
        """Read the values of DICOM tags in the images of a patient order.

        Hundreds of tags are spread over several calls and the rows joined.

        Parameters
        ----------
        patient_order_institution_uuid
            Institution the order belongs to.
        patient_order_uuid
            The order.
        patient_series_uuid
            Read only this series.
        dicom_tag_id_list
            Tags to read (``00100010``, ``0010,0010``, ``(0010,0010)`` or a
            keyword); a default set when not given.

        Returns
        -------
        DicomTagContentAnswer
            One row per series and tag.
        """
        return self.call_endpoint(
            table.GET_DICOM_TAG_CONTENT,
            dict(
                patient_order_institution_uuid=patient_order_institution_uuid,
                patient_order_uuid=patient_order_uuid,
                patient_series_uuid=patient_series_uuid,
                dicom_tag_id_list=dicom_tag_id_list,
            ),
        )

    def get_patient_order_list(
        self,
        institution_uuid_list: Sequence[UuidLike],
        patient_name: str | None = None,
        patient_id: str | None = None,
        other_patient_id: str | None = None,
        accession_number: str | None = None,
        modality_list: Sequence[str] | None = None,
        study_date_from: DateLike | None = None,
        study_date_to: DateLike | None = None,
        patient_birthdate_from: DateLike | None = None,
        patient_birthdate_to: DateLike | None = None,
    ) -> PatientOrderListAnswer:
        """Search patient orders by patient, accession number, modality and date ranges.

        Hundreds of institutions are spread over several calls; the orders are
        joined (each once) and sorted by study date.

        Parameters
        ----------
        institution_uuid_list
            Institutions to search; an empty list searches all of the account's.
        patient_name
            Substring, case-insensitive; ``*`` is a wildcard.
        patient_id
            Substring, case-insensitive.
        other_patient_id
            Exact match.
        accession_number
            Exact match.
        modality_list
            Orders having any of these modality codes.
        study_date_from, study_date_to
            Study date range (dates or ``YYYY-MM-DD``).
        patient_birthdate_from, patient_birthdate_to
            Birth date range (dates or ``YYYY-MM-DD``).

        Returns
        -------
        PatientOrderListAnswer
            The orders found (``patient_order_list``).
        """
        return self.call_endpoint(
            table.GET_PATIENT_ORDER_LIST,
            dict(
                institution_uuid_list=institution_uuid_list,
                patient_name=patient_name,
                patient_id=patient_id,
                other_patient_id=other_patient_id,
                accession_number=accession_number,
                modality_list=modality_list,
                study_date_from=study_date_from,
                study_date_to=study_date_to,
                patient_birthdate_from=patient_birthdate_from,
                patient_birthdate_to=patient_birthdate_to,
            ),
        )

    def iter_patient_order_list(
        self,
        institution_uuid_list: Sequence[UuidLike],
        patient_name: str | None = None,
        patient_id: str | None = None,
        other_patient_id: str | None = None,
        accession_number: str | None = None,
        modality_list: Sequence[str] | None = None,
        study_date_from: DateLike | None = None,
        study_date_to: DateLike | None = None,
        patient_birthdate_from: DateLike | None = None,
        patient_birthdate_to: DateLike | None = None,
    ) -> AnswerRows[PatientOrderSummary]:
        """Search patient orders as :meth:`get_patient_order_list` does, each order handed on as it arrives.

        The API does not page this answer: a large account's day is tens of
        megabytes, about 5 KB an order at the peak when read whole. Read here,
        only the order being handed on is held (memory proportional to the
        largest order, not to the list): reduce each order to what you keep.
        Every answer shape :meth:`get_patient_order_list` reads is read (see
        ``docs/api-answers.md``), with its size cap and deadline; a lost
        connection is tried again until the first order is handed on, and
        raised after it. Hundreds of institutions are spread over several
        calls; the orders are handed on once each, in the order received
        (not sorted by study date across the calls). An error raised while
        iterating (a lost connection, an answer cut short, a failure the body
        states after its list) voids the orders already handed on.

        Parameters
        ----------
        institution_uuid_list, patient_name, patient_id, other_patient_id, accession_number, modality_list, \
study_date_from, study_date_to, patient_birthdate_from, patient_birthdate_to
            The filters of :meth:`get_patient_order_list`, sent the same way.

        Returns
        -------
        AnswerRows[PatientOrderSummary]
            The orders, an iterator to read once; use it in a ``with`` block
            (or :meth:`~postdicom.answer_stream.AnswerRows.close` it) when the
            loop may stop early, so the connection is let go at once.
            ``.reading`` says how the answer was read once all were handed on.

        Raises
        ------
        postdicom.errors.ValidationError
            A value is malformed; raised by this call, before anything is sent.

        Examples
        --------
        >>> with client.iter_patient_order_list([], study_date_from=day, study_date_to=day) as orders:  # doctest: +SKIP
        ...     uuids = [order.patient_order_uuid for order in orders]
        """
        # The parameters are the row's (a test compares them), so they are the call's values as they stand.
        values = {name: value for name, value in locals().items() if name != "self"}
        return self.stream_endpoint(table.GET_PATIENT_ORDER_LIST, values)

    def delete_patient_order(
        self,
        patient_order_institution_uuid: UuidLike,
        patient_order_uuid: UuidLike,
    ) -> DeleteOrderAnswer:
        """Delete a patient order permanently, with its series, images, folder memberships and assignments.

        Before repeating a delete that failed after it may have reached the
        server, the order is read (GetPatientOrderProperties): a 404 means the
        earlier attempt deleted it, and that success is returned
        (``deleted_instance_count`` unknown: ``None``).

        Parameters
        ----------
        patient_order_institution_uuid
            Institution the order belongs to.
        patient_order_uuid
            The order.

        Returns
        -------
        DeleteOrderAnswer
            Whether it was deleted, and how many instances went with it.
        """
        return self.call_endpoint(
            table.DELETE_PATIENT_ORDER,
            dict(patient_order_institution_uuid=patient_order_institution_uuid, patient_order_uuid=patient_order_uuid),
        )
