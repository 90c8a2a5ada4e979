"""The three DICOMweb functions of the vendor document as Prefect tasks.

Each task takes the :class:`~blocks.PostDicomCredentials` block first and
builds its client inside the run (a client cannot be hashed for a cache key),
logs what it does with counts only (never paths of patients' data, never a
secret), and lets :mod:`postdicom.errors` propagate.

* ``qido_search`` is a read: retried on transient failures and cached for a
  short time (``POSTDICOM_CACHE_MINUTES``). The block is part of the cache key
  with its password masked, so the key holds the user name and address, never
  the password. Cached results are DICOM JSON (patient data) pickled under
  ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``: point that at secured storage, or set
  ``POSTDICOM_CACHE_MINUTES=0`` to turn caching off.
* ``upload_dicom_images_in_a_folder`` is not cached; retrying it is safe
  because storing an instance the server already holds changes nothing, and
  the rerun's pre-check skips what was stored.
* ``retrieve_images_using_wado_rs`` is not cached (its result is files on this
  machine); retrying rewrites the same files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from blocks import PostDicomCredentials
from postdicom.errors import ValidationError
from postdicom.qido import Level
from postdicom.upload import UploadReport

from .policies import read_task_options, write_task_options


@task(name="upload_dicom_images_in_a_folder", **write_task_options(idempotent=True))
def upload_dicom_images_in_a_folder(
    credentials: PostDicomCredentials,
    directory: str | os.PathLike,
    *,
    skip_existing: bool = True,
    batch_size: int = 20,
    max_batch_bytes: int = 32 * 1024 * 1024,
    concurrency: int = 4,
) -> UploadReport:
    """UploadDicomImagesInAFolder: send every DICOM file under ``directory`` (STOW-RS).

    Parameters
    ----------
    credentials
        The account.
    directory
        Folder walked recursively; DICOM is recognised by content, whatever
        the file names.
    skip_existing
        Check with QIDO which instances the server holds and do not send them
        again (they are reported ``already_stored``).
    batch_size, max_batch_bytes, concurrency
        Instances and bytes per request, requests in flight.

    Returns
    -------
    UploadReport
        ``files``: one entry (``path``, ``status``, ``reason``) per regular
        file; ``counts``: files per status.
    """
    logger = get_run_logger()
    logger.info("Uploading the DICOM files of a folder to %s", credentials.web_address)
    with credentials.get_client() as client:
        report = client.upload_folder(
            directory,
            skip_existing=skip_existing,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            concurrency=concurrency,
        )
    logger.info("Upload finished: %d files (%s)", len(report), report.summary())
    if not report.ok:
        logger.warning(
            "%d files rejected and %d failed; see the report's reasons (a rerun sends only what is missing)",
            len(report.rejected),
            len(report.failed),
        )
    return report


@task(name="qido_search", **read_task_options())
def qido_search(
    credentials: PostDicomCredentials,
    patient_id: str | None = None,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    *,
    filters: Mapping[str, Any] | None = None,
    level: Level | None = None,
    limit: int | None = None,
    offset: int = 0,
    fields: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """QidoSearch: studies of a patient, series of a study, or instances of a series.

    Parameters
    ----------
    credentials
        The account.
    patient_id, study_instance_uid, series_instance_uid
        The documented search keys; the most specific one decides the level
        (series UID → instances, study UID → series, patient ID → studies).
    filters
        Any other attributes to match (DICOM keywords or 8-hex tags),
        validated before the request; wildcards ``*``/``?`` allowed.
    level
        ``"study"``, ``"series"`` or ``"instance"`` to choose the level yourself.
    limit, offset
        Paging over the whole result (the server's own paging is followed).
    fields
        Extra attributes to return.

    Returns
    -------
    list of dict
        The matches as DICOM JSON objects.
    """
    logger = get_run_logger()
    with credentials.get_client() as client:
        matches = client.qido_search(
            patient_id,
            study_instance_uid,
            series_instance_uid,
            filters=filters,
            level=level,
            limit=limit,
            offset=offset,
            fields=fields,
        )
    logger.info("QIDO search returned %d matches", len(matches))
    return matches


@task(name="retrieve_images_using_wado_rs", **read_task_options(cached=False))
def retrieve_images_using_wado_rs(
    credentials: PostDicomCredentials,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    destination: str | os.PathLike = ".",
) -> list[Path]:
    """RetrieveImagesUsingWadoRs: download a study, a series or one instance.

    The most specific UID given decides what is retrieved; the others help a
    standard server find it without a lookup. Each instance is written to
    ``destination/<SOPInstanceUID>.dcm`` as it arrives (the folder is created).

    Returns
    -------
    list of Path
        The ``.dcm`` files written.
    """
    logger = get_run_logger()
    with credentials.get_client() as client:
        if sop_instance_uid:
            what = "instance"
            paths = client.retrieve_instance(
                sop_instance_uid,
                destination,
                study_instance_uid=study_instance_uid,
                series_instance_uid=series_instance_uid,
            )
        elif series_instance_uid:
            what = "series"
            paths = client.retrieve_series(series_instance_uid, destination, study_instance_uid=study_instance_uid)
        elif study_instance_uid:
            what = "study"
            paths = client.retrieve_study(study_instance_uid, destination)
        else:
            raise ValidationError(
                "give study_instance_uid, series_instance_uid or sop_instance_uid to retrieve"
            )
    logger.info("WADO-RS retrieved %d instances of one %s", len(paths), what)
    return paths
