# Generated from postdicom/endpoints.py by: python -c 'import postdicom.endpoints as e; print(e.signatures_stub(), end="")' > postdicom/_endpoint_signatures.pyi
# Do not edit by hand (a test checks it is up to date).
"""Signatures of the custom-endpoint methods, which are generated at run time from the table."""

import collections.abc
import datetime
import postdicom.models
import pydantic.types
import uuid


class EndpointSignatures:
    def create_share_link(
        self,
        patient_order_info_list: collections.abc.Sequence[str | uuid.UUID],
        expire_date: datetime.date | str,
        share_password: str | pydantic.types.SecretStr | None = None,
        downloadable: bool | None = None,
    ) -> postdicom.models.ShareAnswer:
        """Create a web link that shares one or more patient orders, optionally password protected.

        Parameters
        ----------
        patient_order_info_list : order info list
            Orders to share. Wire key ``PatientOrderInfoList``; a list of order UUIDs (wrapped as PatientOrderInfoList items on the wire).
        expire_date : date
            Last day the link works. Wire key ``ExpireDate``; a date or a 'YYYY-MM-DD' string.
        share_password : secret, optional
            Password asked by the link; empty for a public link. Wire key ``SharePassword``; text or SecretStr; never logged.
        downloadable : bool, optional
            Whether the recipient may download the studies. Wire key ``Downloadable``; True or False (sent as 'True'/'False').

        Returns
        -------
        ShareAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /createsharelink`` with the parameters in the ``ShareParameters`` header.
        Retries: create: no retry after send; never sent again once it may have reached the server (a repeat would make a second one).
        Header over the safe size: refused: a share is one link; share a folder of the orders instead (add_order_to_folder, share_folder_with_url).
        """

    def share_patient_order_with_url(
        self,
        order_uuid_list: collections.abc.Sequence[str | uuid.UUID],
        expire_date: datetime.date | str,
        share_password: str | pydantic.types.SecretStr | None = None,
        user_can_download_studies: bool | None = None,
    ) -> postdicom.models.ShareAnswer:
        """Create a shareable URL for selected patient orders, with download permission and password.

        Parameters
        ----------
        order_uuid_list : uuid list
            Orders to share. Wire key ``OrderUuidList``; a list of UUIDs.
        expire_date : date
            Last day the URL works. Wire key ``ExpireDate``; a date or a 'YYYY-MM-DD' string.
        share_password : secret, optional
            Password asked by the URL; empty for a public URL. Wire key ``SharePassword``; text or SecretStr; never logged.
        user_can_download_studies : bool, optional
            Whether the recipient may download the studies. Wire key ``UserCanDownloadStudies``; True or False (sent as 'True'/'False').

        Returns
        -------
        ShareAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /sharepatientorderwithurl`` with the parameters in the ``SharePatientOrderParameters`` header.
        Retries: create: no retry after send; never sent again once it may have reached the server (a repeat would make a second one).
        Header over the safe size: refused: a share is one link; share a folder of the orders instead (add_order_to_folder, share_folder_with_url).
        """

    def create_folder(
        self,
        folder_name: str,
        folder_description: str | None = None,
        parent_folder_uuid: str | uuid.UUID | None = None,
    ) -> postdicom.models.FolderAnswer:
        """Create a folder (a virtual container that organises patient orders).

        Parameters
        ----------
        folder_name : text
            Visible name (not unique on the server). Wire key ``FolderName``; text.
        folder_description : text, optional
            Wire key ``FolderDescription``; text.
        parent_folder_uuid : uuid, optional
            Create inside this folder; top level when not given. Wire key ``ParentFolderUuid``; a UUID (string or uuid.UUID).

        Returns
        -------
        FolderAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /createfolder`` with the parameters in the ``CreateFolderParameters`` header.
        Retries: create: look before create; looks (SearchFolder) for a folder of the same name and parent that was not there before the first attempt, and returns it instead of creating another.
        Header over the safe size: refused: no list to spread over several calls; shorten the text values.
        """

    def search_folder(
        self,
        parent_folder_uuid: str | uuid.UUID | None = None,
        folder_name: str | None = None,
        get_orders_in_folder: bool | None = None,
    ) -> postdicom.models.SearchFolderAnswer:
        """Find folders by name and parent, optionally with the orders each holds.

        Parameters
        ----------
        parent_folder_uuid : uuid, optional
            Search only the direct children of this folder. Wire key ``ParentFolderUuid``; a UUID (string or uuid.UUID).
        folder_name : text, optional
            Full or partial name, case-insensitive. Wire key ``FolderName``; text.
        get_orders_in_folder : bool, optional
            Also list the orders in each folder found. Wire key ``GetOrdersInFolder``; True or False (sent as 'True'/'False').

        Returns
        -------
        SearchFolderAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /searchfolder`` with the parameters in the ``SearchFolderParameters`` header.
        Retries: read; repeated on transient failures (connection, 408, 429, 5xx).
        Header over the safe size: refused: no list to spread over several calls; shorten the text values.
        """

    def share_folder_with_url(
        self,
        folder_uuid: str | uuid.UUID,
        share_password: str | pydantic.types.SecretStr | None = None,
        share_title: str | None = None,
        share_description: str | None = None,
        expire_date: datetime.date | str | None = None,
        user_can_download_studies: bool | None = None,
    ) -> postdicom.models.ShareAnswer:
        """Create a shareable URL for a whole folder and its contents.

        Parameters
        ----------
        folder_uuid : uuid
            Folder to share with everything in it. Wire key ``FolderUuid``; a UUID (string or uuid.UUID).
        share_password : secret, optional
            Password asked by the URL; empty for a public URL. Wire key ``SharePassword``; text or SecretStr; never logged.
        share_title : text, optional
            Title shown on the shared page. Wire key ``ShareTitle``; text.
        share_description : text, optional
            Description shown on the shared page. Wire key ``ShareDescription``; text.
        expire_date : date, optional
            Last day the URL works; never expires when not given. Wire key ``ExpireDate``; a date or a 'YYYY-MM-DD' string.
        user_can_download_studies : bool, optional
            Whether the recipient may download the studies. Wire key ``UserCanDownloadStudies``; True or False (sent as 'True'/'False').

        Returns
        -------
        ShareAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /sharefolderwithurl`` with the parameters in the ``ShareFolderParameters`` header.
        Retries: create: no retry after send; never sent again once it may have reached the server (a repeat would make a second one).
        Header over the safe size: refused: no list to spread over several calls; shorten the text values.
        """

    def add_order_to_folder(
        self,
        patient_order_uuid: str | uuid.UUID,
        folder_uuid_list: collections.abc.Sequence[str | uuid.UUID],
    ) -> postdicom.models.AddOrderToFolderAnswer:
        """Put an existing patient order into existing folders (an association: nothing is copied).

        Parameters
        ----------
        patient_order_uuid : uuid
            The order to file. Wire key ``PatientOrderUuid``; a UUID (string or uuid.UUID).
        folder_uuid_list : uuid list
            Folders to put it in. Wire key ``FolderUuidList``; a list of UUIDs.

        Returns
        -------
        AddOrderToFolderAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /addordertofolder`` with the parameters in the ``AddOrderToFolderParameters`` header.
        Retries: idempotent write; repeated on transient failures (a repeat leaves the same state).
        Header over the safe size: split: the folders are spread over several calls; each call adds the order to its folders, so together they add it to all (FolderUuidList from the last answer, AddedFolderUuidList joined).
        """

    def assign_order_to_user(
        self,
        patient_order_uuid: str | uuid.UUID,
        assigned_user_uuid: str | uuid.UUID,
    ) -> postdicom.models.AssignOrderToUserAnswer:
        """Assign a patient order to one user (replacing the previous assignee).

        Parameters
        ----------
        patient_order_uuid : uuid
            The order to assign. Wire key ``PatientOrderUuid``; a UUID (string or uuid.UUID).
        assigned_user_uuid : uuid
            User who becomes responsible for it. Wire key ``AssignedUserUuid``; a UUID (string or uuid.UUID).

        Returns
        -------
        AssignOrderToUserAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /assignordertouser`` with the parameters in the ``AssignOrderToUserParameters`` header.
        Retries: idempotent write; repeated on transient failures (a repeat leaves the same state).
        Header over the safe size: refused: no list to spread over several calls; shorten the text values.
        """

    def assign_order_to_user_group(
        self,
        patient_order_uuid: str | uuid.UUID,
        assigned_user_group_uuid: str | uuid.UUID,
    ) -> postdicom.models.AssignOrderToUserGroupAnswer:
        """Assign a patient order to a user group (replacing the previous group).

        Parameters
        ----------
        patient_order_uuid : uuid
            The order to assign. Wire key ``PatientOrderUuid``; a UUID (string or uuid.UUID).
        assigned_user_group_uuid : uuid
            Group whose members may take it. Wire key ``AssignedUserGroupUuid``; a UUID (string or uuid.UUID).

        Returns
        -------
        AssignOrderToUserGroupAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /assignordertousergroup`` with the parameters in the ``AssignOrderToUserGroupParameters`` header.
        Retries: idempotent write; repeated on transient failures (a repeat leaves the same state).
        Header over the safe size: refused: no list to spread over several calls; shorten the text values.
        """

    def create_patient_order(
        self,
        institution_uuid: str | uuid.UUID,
        patient_name: str,
        patient_id: str,
        patient_birthdate: datetime.date | str,
        modality: str,
        other_patient_id: str | None = None,
        patient_sex: str | None = None,
        study_description: str | None = None,
        accession_number: str | None = None,
        patient_complaints: str | None = None,
        order_scheduled_datetime: datetime.datetime | str | None = None,
        requested_procedure_id: str | None = None,
        requested_procedure_description: str | None = None,
        requesting_physician: str | None = None,
        referring_physicians_name: str | None = None,
        scheduled_equipment_uuid: str | uuid.UUID | None = None,
    ) -> postdicom.models.CreatePatientOrderAnswer:
        """Create a (scheduled) patient order for an imaging study.

        Parameters
        ----------
        institution_uuid : uuid
            Institution the order is created in. Wire key ``InstitutionUuid``; a UUID (string or uuid.UUID).
        patient_name : text
            DICOM person name, e.g. ``Muñoz^José``. Wire key ``PatientName``; text.
        patient_id : text
            Patient identifier (MRN). Wire key ``PatientId``; text.
        patient_birthdate : date
            Wire key ``PatientBirthdate``; a date or a 'YYYY-MM-DD' string.
        modality : modality
            Wire key ``Modality``; a DICOM modality code such as CT, MR, US.
        other_patient_id : text, optional
            Wire key ``OtherPatientId``; text.
        patient_sex : sex, optional
            Wire key ``PatientSex``; M, F or O.
        study_description : text, optional
            Wire key ``StudyDescription``; text.
        accession_number : text, optional
            Identifies the order; give one so that a retry can find an order an earlier attempt made. Wire key ``AccessionNumber``; text.
        patient_complaints : text, optional
            Wire key ``PatientComplaints``; text.
        order_scheduled_datetime : date-time, optional
            When the procedure is scheduled. Wire key ``OrderScheduledDatetime``; a datetime, 'YYYY-MM-DD HH:MM' or ISO string (sent to the minute).
        requested_procedure_id : text, optional
            Wire key ``RequestedProcedureId``; text.
        requested_procedure_description : text, optional
            Wire key ``RequestedProcedureDescription``; text.
        requesting_physician : text, optional
            Wire key ``RequestingPhysician``; text.
        referring_physicians_name : text, optional
            Wire key ``ReferringPhysiciansName``; text.
        scheduled_equipment_uuid : uuid, optional
            Equipment the procedure is scheduled on. Wire key ``ScheduledEquipmentUuid``; a UUID (string or uuid.UUID).

        Returns
        -------
        CreatePatientOrderAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /createpatientorder`` with the parameters in the ``CreatePatientOrderParameters`` header.
        Retries: create: look before create; with an accession number, looks (GetPatientOrderList) for the order with that accession number and patient id in the institution and returns it instead of creating another; without one the server makes one up, so the call is not repeated once it may have reached the server.
        Header over the safe size: refused: no list to spread over several calls; shorten the text values.
        """

    def get_patient_order_properties(
        self,
        patient_order_institution_uuid: str | uuid.UUID,
        patient_order_uuid: str | uuid.UUID,
    ) -> postdicom.models.PatientOrderProperties:
        """Read every property of one patient order (patient, study, series, assignments, folders).

        Parameters
        ----------
        patient_order_institution_uuid : uuid
            Institution the order belongs to. Wire key ``PatientOrderInstitutionUuid``; a UUID (string or uuid.UUID).
        patient_order_uuid : uuid
            The order. Wire key ``PatientOrderUuid``; a UUID (string or uuid.UUID).

        Returns
        -------
        PatientOrderProperties
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /getpatientorderproperties`` with the parameters in the ``GetPatientOrderPropertiesParameters`` header.
        Retries: read; repeated on transient failures (connection, 408, 429, 5xx).
        Header over the safe size: refused: no list to spread over several calls; shorten the text values.
        """

    def get_dicom_tag_content(
        self,
        patient_order_institution_uuid: str | uuid.UUID,
        patient_order_uuid: str | uuid.UUID,
        patient_series_uuid: str | uuid.UUID | None = None,
        dicom_tag_id_list: collections.abc.Sequence[str | int] | None = None,
    ) -> postdicom.models.DicomTagContentAnswer:
        """Read the values of DICOM tags in the images of a patient order.

        Parameters
        ----------
        patient_order_institution_uuid : uuid
            Institution the order belongs to. Wire key ``PatientOrderInstitutionUuid``; a UUID (string or uuid.UUID).
        patient_order_uuid : uuid
            The order. Wire key ``PatientOrderUuid``; a UUID (string or uuid.UUID).
        patient_series_uuid : uuid, optional
            Read only this series. Wire key ``PatientSeriesUuid``; a UUID (string or uuid.UUID).
        dicom_tag_id_list : tag list, optional
            Tags to read; a default set when not given. Wire key ``DicomTagIdList``; a list of tags: 00100010, 0010,0010, (0010,0010) or keywords (sent as 8 hex digits).

        Returns
        -------
        DicomTagContentAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /getdicomtagcontent`` with the parameters in the ``GetDicomTagContentParameters`` header.
        Retries: read; repeated on transient failures (connection, 408, 429, 5xx).
        Header over the safe size: split: the tags are spread over several calls and the rows joined (rows are per series and tag).
        """

    def get_patient_order_list(
        self,
        institution_uuid_list: collections.abc.Sequence[str | uuid.UUID],
        patient_name: str | None = None,
        patient_id: str | None = None,
        other_patient_id: str | None = None,
        accession_number: str | None = None,
        modality_list: collections.abc.Sequence[str] | None = None,
        study_date_from: datetime.date | str | None = None,
        study_date_to: datetime.date | str | None = None,
        patient_birthdate_from: datetime.date | str | None = None,
        patient_birthdate_to: datetime.date | str | None = None,
    ) -> postdicom.models.PatientOrderListAnswer:
        """Search patient orders by patient, accession number, modality and date ranges.

        Parameters
        ----------
        institution_uuid_list : uuid list
            Institutions to search; an empty list searches all of the account's. Wire key ``InstitutionUuidList``; a list of UUIDs. An empty list is sent as ``[""]``.
        patient_name : text, optional
            Substring, case-insensitive; ``*`` is a wildcard. Wire key ``PatientName``; text.
        patient_id : text, optional
            Substring, case-insensitive. Wire key ``PatientId``; text.
        other_patient_id : text, optional
            Exact match. Wire key ``OtherPatientId``; text.
        accession_number : text, optional
            Exact match. Wire key ``AccessionNumber``; text.
        modality_list : modality list, optional
            Orders having any of these modalities. Wire key ``ModalityList``; a list of modality codes.
        study_date_from : date, optional
            Wire key ``StudyDateFrom``; a date or a 'YYYY-MM-DD' string.
        study_date_to : date, optional
            Wire key ``StudyDateTo``; a date or a 'YYYY-MM-DD' string.
        patient_birthdate_from : date, optional
            Wire key ``PatientBirthdateFrom``; a date or a 'YYYY-MM-DD' string.
        patient_birthdate_to : date, optional
            Wire key ``PatientBirthdateTo``; a date or a 'YYYY-MM-DD' string.

        Returns
        -------
        PatientOrderListAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /getpatientorderlist`` with the parameters in the ``GetPatientOrderListParameters`` header.
        Retries: read; repeated on transient failures (connection, 408, 429, 5xx).
        Header over the safe size: split: the institutions are spread over several calls; the orders are joined (each once) and sorted by study date.
        """

    def delete_patient_order(
        self,
        patient_order_institution_uuid: str | uuid.UUID,
        patient_order_uuid: str | uuid.UUID,
    ) -> postdicom.models.DeleteOrderAnswer:
        """Delete a patient order permanently, with its series, images, folder memberships and assignments.

        Parameters
        ----------
        patient_order_institution_uuid : uuid
            Institution the order belongs to. Wire key ``PatientOrderInstitutionUuid``; a UUID (string or uuid.UUID).
        patient_order_uuid : uuid
            The order. Wire key ``PatientOrderUuid``; a UUID (string or uuid.UUID).

        Returns
        -------
        DeleteOrderAnswer
            The JSON answer parsed; ``.raw`` keeps it as received.

        Raises
        ------
        postdicom.errors.ValidationError
            A parameter is missing or malformed, or the header is too large; nothing was sent.
        postdicom.errors.PostDicomError
            The server refused the call or could not be reached (``X-Error-Reason`` included).

        Notes
        -----
        ``GET /deleteorder`` with the parameters in the ``DeleteOrderParameters`` header.
        Retries: idempotent write; before repeating, reads the order (GetPatientOrderProperties): a 404 means an earlier attempt deleted it, and that attempt's success is returned (DeletedInstanceCount unknown: null).
        Header over the safe size: refused: no list to spread over several calls; shorten the text values.
        """
