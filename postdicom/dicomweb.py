"""The DICOMweb methods of :class:`~postdicom.client.PostDicomClient`: STOW-RS, QIDO-RS, WADO-RS, uploads.

Each method checks its arguments and hands over to the module that does the
work, in the client's dialect (:mod:`postdicom.urls` decides the paths):

* :mod:`postdicom.stow`: files sent in batches, several requests in flight,
  every file reconciled with the server's answer;
* :mod:`postdicom.qido`: searches that follow the server's paging;
* :mod:`postdicom.wado`: downloads split into ``<SOPInstanceUID>.dcm`` files as
  they stream;
* :mod:`postdicom.upload`: a folder classified, pre-checked with QIDO and
  stored with STOW.

Method names follow dicomweb-client (``store_instances``,
``search_for_studies``, ``retrieve_study``, ...), so code written for it reads
the same here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dicom_json import TAG_PATIENT_ID, TAG_SERIES_UID, TAG_STUDY_UID
from .errors import ValidationError
from .qido import DEFAULT_PAGE_SIZE, Level, Qido, QidoPaging
from .query import FilterValue, merge_filters
from .stow import MiB, ProgressCallback, Stow, StowBatching, StowResult
from .upload import UploadReport, upload_folder
from .urls import paths_for
from .wado import Wado

if TYPE_CHECKING:
    from .http import HttpSession


class DicomWebMixin:
    """DICOMweb transactions of :class:`postdicom.client.PostDicomClient`.

    Needs ``self._http`` (an :class:`~postdicom.http.HttpSession`) and
    ``self.dialect`` (``"postdicom"`` or ``"standard"``).
    """

    _http: HttpSession
    dialect: str

    @cached_property
    def stow(self) -> Stow:
        """The STOW-RS transaction (what :meth:`store_instances` and uploads send through)."""
        return Stow(self._http, paths_for(self.dialect))

    @cached_property
    def qido(self) -> Qido:
        """The QIDO-RS searches (what the ``search_for_*`` methods and upload pre-checks use)."""
        return Qido(self._http, paths_for(self.dialect))

    @cached_property
    def wado(self) -> Wado:
        """The WADO-RS downloads (what the ``retrieve_*`` methods use)."""
        return Wado(self._http, paths_for(self.dialect), self.qido)

    # ------------------------------------------------------------------ STOW

    def store_instances(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        batch_size: int = 20,
        max_batch_bytes: int = 32 * MiB,
        concurrency: int = 4,
        on_progress: ProgressCallback | None = None,
    ) -> StowResult:
        """Upload DICOM files with STOW-RS and report what became of each one.

        Parameters
        ----------
        paths
            DICOM files (Part 10, any name). Each is sent as it is on disk,
            byte for byte; its SOP Instance UID is read from its header first
            so the answer can be reconciled.
        batch_size
            Most instances per request.
        max_batch_bytes
            Most bytes of files per request (a larger file travels alone).
        concurrency
            Requests in flight at once (threads sharing the client's pool).
        on_progress
            Called as ``on_progress(files_done, files_total)`` after each request.

        Returns
        -------
        StowResult
            One :class:`~postdicom.stow.InstanceOutcome` per path, in the order given.

        Raises
        ------
        AuthenticationError, NotFoundError, RedirectError
            The account or address is wrong: no request can succeed, so the
            upload stops instead of reporting every file as failed.

        Notes
        -----
        Retrying a STOW request is safe: storing a SOP instance the server
        already holds replaces or keeps the same instance (same SOP Instance
        UID), it never creates a second one. So a request that failed with a
        transient error (connection lost, 408, 429, 5xx) is sent again, and
        the retry rebuilds the body from the files; a spent stream is never
        re-sent (that is how a body goes out empty and files are lost).
        Memory stays flat: files are read in chunks as the body is written.
        """
        batching = StowBatching(batch_size, max_batch_bytes, concurrency)
        return self.stow.store_files(paths, batching, on_progress)

    def upload_folder(
        self,
        directory: str | os.PathLike,
        *,
        skip_existing: bool = True,
        batch_size: int = 20,
        max_batch_bytes: int = 32 * MiB,
        concurrency: int = 4,
        on_progress: ProgressCallback | None = None,
    ) -> UploadReport:
        """Upload every DICOM file under ``directory`` (recursively, any file name).

        Every regular file gets one entry in the report: ``stored``,
        ``already_stored`` (found by a QIDO pre-check, not sent again),
        ``rejected``, ``not_dicom`` or ``failed``. See :mod:`postdicom.upload`
        for the rules; a missing folder raises
        :class:`~postdicom.errors.ValidationError` before any request.
        """
        return upload_folder(
            self,
            directory,
            skip_existing=skip_existing,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            concurrency=concurrency,
            on_progress=on_progress,
        )

    # ------------------------------------------------------------------ QIDO

    def search_for_studies(
        self,
        filters: Mapping[str, FilterValue] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        fields: Iterable[str] = (),
        page_size: int = DEFAULT_PAGE_SIZE,
        fuzzymatching: bool = False,
        max_pages: int | None = None,
        **attributes: FilterValue,
    ) -> list[dict[str, Any]]:
        """Search studies (QIDO-RS), following the server's paging to the end.

        Parameters
        ----------
        filters
            Attribute (DICOM keyword or 8-hex tag) to value; wildcards ``*``
            and ``?``, date ranges ``a-b`` and lists ``a,b`` as in PS3.18.
            Keywords may also be given as keyword arguments:
            ``search_for_studies(PatientID="P-1")``.
        limit
            Most results wanted in total (``None``: all).
        offset
            Results to skip first.
        fields
            Extra attributes to return (``includefield``), or ``["all"]``.
        page_size
            Results asked for per request.
        fuzzymatching
            Ask for fuzzy person-name matching.
        max_pages
            Most page requests (``None``: the ``POSTDICOM_QIDO_MAX_PAGES``
            setting, default 1000); a server still saying "more" after them is
            an error, as is one that sends a page it sent before.

        Returns
        -------
        list of dict
            DICOM JSON objects (PS3.18 Annex F), keys are 8-hex tags.

        Raises
        ------
        ValidationError
            An attribute name not in the DICOM dictionary (before any request).
        ProtocolError
            The server pages forever (the page cap) or sends a page again.
        AnswerTooLargeError
            The pages together are over ``POSTDICOM_QIDO_MAX_BYTES``.
        """
        query = merge_filters(filters, attributes)
        paging = QidoPaging(limit, offset, tuple(fields), page_size, fuzzymatching, max_pages)
        return self.qido.search_for_studies(query, paging)

    def search_for_series(
        self,
        study_instance_uid: str | None = None,
        filters: Mapping[str, FilterValue] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        fields: Iterable[str] = (),
        page_size: int = DEFAULT_PAGE_SIZE,
        fuzzymatching: bool = False,
        max_pages: int | None = None,
        **attributes: FilterValue,
    ) -> list[dict[str, Any]]:
        """Search series, of one study or of all (QIDO-RS); see :meth:`search_for_studies`."""
        query = merge_filters(filters, attributes)
        paging = QidoPaging(limit, offset, tuple(fields), page_size, fuzzymatching, max_pages)
        return self.qido.search_for_series(study_instance_uid, query, paging)

    def search_for_instances(
        self,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
        filters: Mapping[str, FilterValue] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        fields: Iterable[str] = (),
        page_size: int = DEFAULT_PAGE_SIZE,
        fuzzymatching: bool = False,
        max_pages: int | None = None,
        **attributes: FilterValue,
    ) -> list[dict[str, Any]]:
        """Search instances of a series, a study or all (QIDO-RS); see :meth:`search_for_studies`.

        In the ``postdicom`` dialect a series UID is enough (PostDICOM's
        ``/studies/series/instances?0020000E=``); the study UID is sent as a
        filter only when no series is given.
        """
        query = merge_filters(filters, attributes)
        paging = QidoPaging(limit, offset, tuple(fields), page_size, fuzzymatching, max_pages)
        return self.qido.search_for_instances(study_instance_uid, series_instance_uid, query, paging)

    def qido_search(
        self,
        patient_id: str | None = None,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
        *,
        filters: Mapping[str, FilterValue] | None = None,
        level: Level | None = None,
        limit: int | None = None,
        offset: int = 0,
        fields: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """PostDICOM's QidoSearch: the three documented searches, plus any filter.

        Without ``level``, the most specific UID decides what is searched,
        as in the vendor's sample: a series UID lists that series' instances,
        a study UID lists that study's series, a patient ID lists that
        patient's studies, and nothing lists studies matching ``filters``.
        With ``level`` (``"study"``, ``"series"`` or ``"instance"``) every
        given identifier becomes a filter at that level.

        Returns
        -------
        list of dict
            DICOM JSON matches.
        """
        if level is None:
            level = "instance" if series_instance_uid else "series" if study_instance_uid else "study"
        if level not in ("study", "series", "instance"):
            raise ValidationError(f"level must be 'study', 'series' or 'instance', not {level!r}")
        query = merge_filters(filters, {})
        if patient_id:
            query[TAG_PATIENT_ID] = patient_id
        paging = QidoPaging(limit, offset, tuple(fields))
        if level == "study":
            for tag, uid in ((TAG_STUDY_UID, study_instance_uid), (TAG_SERIES_UID, series_instance_uid)):
                if uid:
                    query[tag] = uid
            return self.qido.search_for_studies(query, paging)
        if level == "series":
            if series_instance_uid:
                query[TAG_SERIES_UID] = series_instance_uid
            return self.qido.search_for_series(study_instance_uid, query, paging)
        return self.qido.search_for_instances(study_instance_uid, series_instance_uid, query, paging)

    # ------------------------------------------------------------------ WADO

    def retrieve_study(self, study_instance_uid: str, destination: str | os.PathLike) -> list[Path]:
        """Download every instance of a study to ``destination/<SOPInstanceUID>.dcm``.

        The answer is split as it arrives; no file is held in memory. Returns
        the paths written, in the order the server sent them.
        """
        return self.wado.retrieve_study(study_instance_uid, destination)

    def retrieve_series(
        self,
        series_instance_uid: str,
        destination: str | os.PathLike,
        *,
        study_instance_uid: str | None = None,
    ) -> list[Path]:
        """Download every instance of a series; see :meth:`retrieve_study`.

        In the ``standard`` dialect the study UID is looked up with QIDO when
        not given (one extra request).
        """
        return self.wado.retrieve_series(series_instance_uid, destination, study_instance_uid)

    def retrieve_instance(
        self,
        sop_instance_uid: str,
        destination: str | os.PathLike,
        *,
        study_instance_uid: str | None = None,
        series_instance_uid: str | None = None,
    ) -> list[Path]:
        """Download one instance; see :meth:`retrieve_study`.

        In the ``standard`` dialect missing parent UIDs are looked up with QIDO.
        """
        return self.wado.retrieve_instance(sop_instance_uid, destination, study_instance_uid, series_instance_uid)
