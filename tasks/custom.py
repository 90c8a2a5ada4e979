"""Prefect tasks for PostDICOM's 13 custom endpoints, one written-out function each.

Each task takes the :class:`~blocks.PostDicomCredentials` block first and the
documented parameters after it (names as in the README's task table), and
makes one call of the client method of the same name
(:mod:`postdicom.endpoints`) through :func:`_call`, which builds the client
from the block inside the task (a client cannot be hashed for a cache key),
closes it, and logs what came back with counts, never a secret, a share URL or
a patient's name or identifiers. Task-run names (``create_folder: create
folder 'Night' in *``) come from the row's label in
:mod:`postdicom.endpoint_table`, which names no patient and no secret.

Options, by the row's retry safety (from :mod:`tasks.policies`):

- reads (order properties, order list, folder search, tag content) are retried
  on transient errors and cached for ``POSTDICOM_CACHE_MINUTES`` on their
  inputs and source (the block hashes with its password masked). A write sent
  by this process changes the cache key (:mod:`postdicom.writes`), so a read
  after it asks the server again; a change made by someone else is seen once
  the cache expires, or at once with ``task.with_options(refresh_cache=True)``.
  Cached answers are pickled under ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``: they
  hold patient data, so point that at secured storage or set
  ``POSTDICOM_CACHE_MINUTES=0``.
- idempotent writes (assignments, adding to folders, deleting) are retried on
  transient errors and never cached; a retried delete looks first.
- creates (orders, folders, shares) are never cached and not retried by
  Prefect: the client call already looked before repeating, or refused to
  repeat, knowing what may have reached the server; a Prefect retry would
  start blind. A share password (``str`` or ``SecretStr``) only ever reaches
  the request header.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError
from prefect.runtime import task_run
from pydantic import SecretStr

from blocks import PostDicomCredentials
from postdicom import PostDicomClient, models
from postdicom import endpoint_table as table
from postdicom.endpoint_row import Endpoint
from postdicom.wire import DateLike, UuidLike

from .policies import read_task_options, write_task_options

AnswerT = TypeVar("AnswerT", bound=models.Answer)

_READ = read_task_options()
_IDEMPOTENT_WRITE = write_task_options(idempotent=True)
_CREATE = write_task_options(idempotent=False)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside Prefect, a plain logger for ``task.fn(...)`` outside it."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _run_name(row: Endpoint[Any]) -> Callable[..., str]:
    """A task-run name such as ``delete_patient_order: delete order 6f1c…`` (the row's label)."""

    def name(parameters: Mapping[str, Any]) -> str:
        return f"{row.python_name}: {row.describe(parameters)}"

    return name


def _call(credentials: PostDicomCredentials, call: Callable[[PostDicomClient], AnswerT]) -> AnswerT:
    """Build the client from the block, make the task's one call, log what came back.

    A Prefect retry of the task (run count above 1) marks the client as
    repeating, so a call that can look for what an earlier attempt did
    (a delete, a create with a lookup) looks before sending again.
    """
    with credentials.get_client() as client:
        client.repeating = task_run.run_count > 1
        answer = call(client)
    _logger().info("%s", answer.summary())
    for warning in answer.reading.warnings:
        _logger().warning("%s", warning)
    return answer


@task(name="create_share_link", task_run_name=_run_name(table.CREATE_SHARE_LINK), **_CREATE)
def create_share_link(
    credentials: PostDicomCredentials,
    patient_order_info_list: Sequence[UuidLike],
    expire_date: DateLike,
    share_password: str | SecretStr | None = None,
    downloadable: bool | None = None,
) -> models.ShareAnswer:
    """Create a web link that shares one or more patient orders, optionally password protected.

    Not retried by Prefect: a repeat would make a second link.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    patient_order_info_list, expire_date, share_password, downloadable
        As for :meth:`postdicom.PostDicomClient.create_share_link`.
    """
    return _call(
        credentials,
        lambda client: client.create_share_link(patient_order_info_list, expire_date, share_password, downloadable),
    )


@task(name="share_patient_order_with_url", task_run_name=_run_name(table.SHARE_PATIENT_ORDER_WITH_URL), **_CREATE)
def share_patient_order_with_url(
    credentials: PostDicomCredentials,
    order_uuid_list: Sequence[UuidLike],
    expire_date: DateLike,
    share_password: str | SecretStr | None = None,
    user_can_download_studies: bool | None = None,
) -> models.ShareAnswer:
    """Create a shareable URL for selected patient orders, with download permission and password.

    Not retried by Prefect: a repeat would make a second URL.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    order_uuid_list, expire_date, share_password, user_can_download_studies
        As for :meth:`postdicom.PostDicomClient.share_patient_order_with_url`.
    """
    return _call(
        credentials,
        lambda client: client.share_patient_order_with_url(
            order_uuid_list, expire_date, share_password, user_can_download_studies
        ),
    )


@task(name="create_folder", task_run_name=_run_name(table.CREATE_FOLDER), **_CREATE)
def create_folder(
    credentials: PostDicomCredentials,
    folder_name: str,
    folder_description: str | None = None,
    parent_folder_uuid: UuidLike | None = None,
) -> models.FolderAnswer:
    """Create a folder (a virtual container that organises patient orders).

    Sends a SearchFolder request first, then CreateFolder: after a failure
    the client finds the folder an earlier attempt made instead of making a
    second. Not retried by Prefect.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    folder_name, folder_description, parent_folder_uuid
        As for :meth:`postdicom.PostDicomClient.create_folder`.
    """
    return _call(credentials, lambda client: client.create_folder(folder_name, folder_description, parent_folder_uuid))


@task(name="search_folder", task_run_name=_run_name(table.SEARCH_FOLDER), **_READ)
def search_folder(
    credentials: PostDicomCredentials,
    parent_folder_uuid: UuidLike | None = None,
    folder_name: str | None = None,
    get_orders_in_folder: bool | None = None,
) -> models.SearchFolderAnswer:
    """Find folders by name and parent, optionally with the orders each holds.

    A read: retried on transient errors, cached until this process sends a write.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    parent_folder_uuid, folder_name, get_orders_in_folder
        As for :meth:`postdicom.PostDicomClient.search_folder`.
    """
    return _call(
        credentials, lambda client: client.search_folder(parent_folder_uuid, folder_name, get_orders_in_folder)
    )


@task(name="share_folder_with_url", task_run_name=_run_name(table.SHARE_FOLDER_WITH_URL), **_CREATE)
def share_folder_with_url(
    credentials: PostDicomCredentials,
    folder_uuid: UuidLike,
    share_password: str | SecretStr | None = None,
    share_title: str | None = None,
    share_description: str | None = None,
    expire_date: DateLike | None = None,
    user_can_download_studies: bool | None = None,
) -> models.ShareAnswer:
    """Create a shareable URL for a whole folder and its contents.

    Not retried by Prefect: a repeat would make a second URL.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    folder_uuid, share_password, share_title, share_description, expire_date, user_can_download_studies
        As for :meth:`postdicom.PostDicomClient.share_folder_with_url`.
    """
    return _call(
        credentials,
        lambda client: client.share_folder_with_url(
            folder_uuid, share_password, share_title, share_description, expire_date, user_can_download_studies
        ),
    )


@task(name="add_order_to_folder", task_run_name=_run_name(table.ADD_ORDER_TO_FOLDER), **_IDEMPOTENT_WRITE)
def add_order_to_folder(
    credentials: PostDicomCredentials,
    patient_order_uuid: UuidLike,
    folder_uuid_list: Sequence[UuidLike],
) -> models.AddOrderToFolderAnswer:
    """Put an existing patient order into existing folders (an association: nothing is copied).

    An idempotent write: retried on transient errors, never cached.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    patient_order_uuid, folder_uuid_list
        As for :meth:`postdicom.PostDicomClient.add_order_to_folder`.
    """
    return _call(credentials, lambda client: client.add_order_to_folder(patient_order_uuid, folder_uuid_list))


@task(name="assign_order_to_user", task_run_name=_run_name(table.ASSIGN_ORDER_TO_USER), **_IDEMPOTENT_WRITE)
def assign_order_to_user(
    credentials: PostDicomCredentials,
    patient_order_uuid: UuidLike,
    assigned_user_uuid: UuidLike,
) -> models.AssignOrderToUserAnswer:
    """Assign a patient order to one user (replacing the previous assignee).

    An idempotent write: retried on transient errors, never cached.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    patient_order_uuid, assigned_user_uuid
        As for :meth:`postdicom.PostDicomClient.assign_order_to_user`.
    """
    return _call(credentials, lambda client: client.assign_order_to_user(patient_order_uuid, assigned_user_uuid))


@task(
    name="assign_order_to_user_group",
    task_run_name=_run_name(table.ASSIGN_ORDER_TO_USER_GROUP),
    **_IDEMPOTENT_WRITE,
)
def assign_order_to_user_group(
    credentials: PostDicomCredentials,
    patient_order_uuid: UuidLike,
    assigned_user_group_uuid: UuidLike,
) -> models.AssignOrderToUserGroupAnswer:
    """Assign a patient order to a user group (replacing the previous group).

    An idempotent write: retried on transient errors, never cached.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    patient_order_uuid, assigned_user_group_uuid
        As for :meth:`postdicom.PostDicomClient.assign_order_to_user_group`.
    """
    return _call(
        credentials, lambda client: client.assign_order_to_user_group(patient_order_uuid, assigned_user_group_uuid)
    )


@task(name="create_patient_order", task_run_name=_run_name(table.CREATE_PATIENT_ORDER), **_CREATE)
def create_patient_order(
    credentials: PostDicomCredentials,
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
) -> models.CreatePatientOrderAnswer:
    """Create a (scheduled) patient order for an imaging study.

    Not retried by Prefect; with an accession number the client looks for
    the order an earlier attempt made before creating again. The task-run
    name shows the modality and institution only, never the patient.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    institution_uuid, patient_name, patient_id, patient_birthdate, modality, other_patient_id, patient_sex, \
study_description, accession_number, patient_complaints, order_scheduled_datetime, requested_procedure_id, \
requested_procedure_description, requesting_physician, referring_physicians_name, scheduled_equipment_uuid
        As for :meth:`postdicom.PostDicomClient.create_patient_order`.
    """
    return _call(
        credentials,
        lambda client: client.create_patient_order(
            institution_uuid, patient_name, patient_id, patient_birthdate, modality,
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


@task(name="get_patient_order_properties", task_run_name=_run_name(table.GET_PATIENT_ORDER_PROPERTIES), **_READ)
def get_patient_order_properties(
    credentials: PostDicomCredentials,
    patient_order_institution_uuid: UuidLike,
    patient_order_uuid: UuidLike,
) -> models.PatientOrderProperties:
    """Read every property of one patient order (patient, study, series, assignments, folders).

    A read: retried on transient errors, cached until this process sends a write.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    patient_order_institution_uuid, patient_order_uuid
        As for :meth:`postdicom.PostDicomClient.get_patient_order_properties`.
    """
    return _call(
        credentials,
        lambda client: client.get_patient_order_properties(patient_order_institution_uuid, patient_order_uuid),
    )


@task(name="get_dicom_tag_content", task_run_name=_run_name(table.GET_DICOM_TAG_CONTENT), **_READ)
def get_dicom_tag_content(
    credentials: PostDicomCredentials,
    patient_order_institution_uuid: UuidLike,
    patient_order_uuid: UuidLike,
    patient_series_uuid: UuidLike | None = None,
    dicom_tag_id_list: Sequence[str | int] | None = None,
) -> models.DicomTagContentAnswer:
    """Read the values of DICOM tags in the images of a patient order.

    A read: retried on transient errors, cached until this process sends a write.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    patient_order_institution_uuid, patient_order_uuid, patient_series_uuid, dicom_tag_id_list
        As for :meth:`postdicom.PostDicomClient.get_dicom_tag_content`.
    """
    return _call(
        credentials,
        lambda client: client.get_dicom_tag_content(
            patient_order_institution_uuid, patient_order_uuid, patient_series_uuid, dicom_tag_id_list
        ),
    )


@task(name="get_patient_order_list", task_run_name=_run_name(table.GET_PATIENT_ORDER_LIST), **_READ)
def get_patient_order_list(
    credentials: PostDicomCredentials,
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
) -> models.PatientOrderListAnswer:
    """Search patient orders by patient, accession number, modality and date ranges.

    A read: retried on transient errors, cached until this process sends a write.
    The task-run name shows the number of institutions only, never a search value.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    institution_uuid_list, patient_name, patient_id, other_patient_id, accession_number, modality_list, \
study_date_from, study_date_to, patient_birthdate_from, patient_birthdate_to
        As for :meth:`postdicom.PostDicomClient.get_patient_order_list`.
    """
    return _call(
        credentials,
        lambda client: client.get_patient_order_list(
            institution_uuid_list,
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


@task(name="delete_patient_order", task_run_name=_run_name(table.DELETE_PATIENT_ORDER), **_IDEMPOTENT_WRITE)
def delete_patient_order(
    credentials: PostDicomCredentials,
    patient_order_institution_uuid: UuidLike,
    patient_order_uuid: UuidLike,
) -> models.DeleteOrderAnswer:
    """Delete a patient order permanently, with its series, images, folder memberships and assignments.

    An idempotent write: retried on transient errors, never cached; a retry
    first reads the order and returns success if an earlier attempt deleted it.

    Parameters
    ----------
    credentials
        The account to call; the client is built and closed inside the task.
    patient_order_institution_uuid, patient_order_uuid
        As for :meth:`postdicom.PostDicomClient.delete_patient_order`.
    """
    return _call(
        credentials, lambda client: client.delete_patient_order(patient_order_institution_uuid, patient_order_uuid)
    )


__all__ = [
    "add_order_to_folder",
    "assign_order_to_user",
    "assign_order_to_user_group",
    "create_folder",
    "create_patient_order",
    "create_share_link",
    "delete_patient_order",
    "get_dicom_tag_content",
    "get_patient_order_list",
    "get_patient_order_properties",
    "search_folder",
    "share_folder_with_url",
    "share_patient_order_with_url",
]
