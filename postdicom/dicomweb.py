"""STOW-RS, QIDO-RS and WADO-RS in PostDICOM's path dialect and in the standard one.

PostDICOM puts its DICOMweb routes on non-standard paths (``POST {base}/``,
``/studies/series?0020000D=...``, ``/studies/series/{SeriesInstanceUID}``, see
``docs/wire-protocol.md``); PS3.18 servers such as Orthanc use
``/studies/{study}/series/{series}/...`` and need the parent UIDs, which the
``standard`` dialect looks up with QIDO when the caller gave only a series or
SOP Instance UID. Everything else is shared:

* STOW bodies stream from the files (flat memory), several instances per
  request (a count and a byte budget) and several requests in flight. The
  answer is read whatever its status, because real servers store some parts
  of a request they answer 400 to, and every part sent is reconciled with the
  ReferencedSOPSequence and FailedSOPSequence: a part listed in neither is not
  stored.
* QIDO follows ``limit``/``offset`` paging until the server has no more
  (Orthanc: ``200 []``; others: ``204`` or fewer results without
  ``Warning: 299``).
* WADO answers are split as they arrive; each part is written to a temporary
  file in ``destination`` and renamed to ``<SOPInstanceUID>.dcm``.

Method names follow dicomweb-client (``store_instances``,
``search_for_studies``, ``retrieve_study``, ...), so code written for it reads
the same here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import pydicom

from .errors import (
    AuthenticationError,
    NotFoundError,
    PostDicomError,
    ProtocolError,
    TransportError,
    ValidationError,
)
from .http import error_reason
from .multipart import MultipartWriter, ReceivedPart, parse_content_type, split_to_files
from .query import FilterValue, attribute_tag, build_query
from .uids import check_uid, is_uid
from .upload import (
    IMPLICIT_VR_LITTLE_ENDIAN,
    UNREADABLE_SYNTAXES,
    DicomHeader,
    NotDicom,
    UploadReport,
    element_header,
    inspect_file,
    ui_text,
    upload_folder,
)
from .writes import note_write

if TYPE_CHECKING:
    from .http import HttpSession

MiB = 1024 * 1024
DEFAULT_PAGE_SIZE = 500
DICOM_JSON = "application/dicom+json"
WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
"""Ask for the instances as stored (``transfer-syntax=*``): what was uploaded comes back byte for byte."""

TAG_STUDY_UID = "0020000D"
TAG_SERIES_UID = "0020000E"
TAG_SOP_UID = "00080018"
TAG_PATIENT_ID = "00100020"
TAG_REFERENCED_SOP_SEQUENCE = "00081199"
TAG_FAILED_SOP_SEQUENCE = "00081198"
TAG_REFERENCED_SOP_UID = "00081155"
TAG_FAILURE_REASON = "00081197"
TAG_WARNING_REASON = "00081196"


# PS3.18 / PS3.4 FailureReason codes, by exact value then by range.
_FAILURE_CODES = {
    0x0110: "processing failure",
    0x0111: "duplicate SOP instance",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xC122: "transfer syntax not supported",
    0xA770: "out of resources",
    0xA771: "data set does not match SOP class",
}
_FAILURE_RANGES = (
    (0xFF00, 0xA700, "out of resources"),
    (0xFF00, 0xA900, "data set does not match SOP class"),
    (0xF000, 0xC000, "cannot understand"),
)
_WARNING_CODES = {
    0xB000: "coercion of data elements",
    0xB006: "elements discarded",
    0xB007: "data set does not match SOP class",
}

OutcomeStatus = Literal["stored", "rejected", "failed"]
Level = Literal["study", "series", "instance"]


def failure_text(code: int) -> str:
    """FailureReason ``code`` as ``"C122H transfer syntax not supported"``."""
    meaning = _FAILURE_CODES.get(code)
    if meaning is None:
        meaning = next((m for mask, base, m in _FAILURE_RANGES if code & mask == base), "failure")
    return f"FailureReason {code:04X}H ({code}): {meaning}"


@dataclass(frozen=True)
class InstanceOutcome:
    """What became of one file sent (or meant to be sent) with STOW-RS.

    ``status`` is ``stored``, ``rejected`` (the server refused it; ``reason``
    says why, ``failure_code`` holds its FailureReason if it gave one) or
    ``failed`` (it could not be sent: transport or server error after the
    retries, or not a readable DICOM file).
    """

    path: Path
    status: OutcomeStatus
    sop_instance_uid: str | None = None
    reason: str = ""
    failure_code: int | None = None


@dataclass
class StowResult:
    """Outcomes of a ``store_instances`` call, one per file, in the order given."""

    outcomes: list[InstanceOutcome] = field(default_factory=list)

    def with_status(self, status: OutcomeStatus) -> list[InstanceOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def stored(self) -> list[InstanceOutcome]:
        return self.with_status("stored")

    @property
    def rejected(self) -> list[InstanceOutcome]:
        return self.with_status("rejected")

    @property
    def failed(self) -> list[InstanceOutcome]:
        return self.with_status("failed")

    @property
    def counts(self) -> dict[str, int]:
        return {s: len(self.with_status(s)) for s in ("stored", "rejected", "failed")}

    def __len__(self) -> int:
        return len(self.outcomes)

    def __iter__(self) -> Iterator[InstanceOutcome]:
        return iter(self.outcomes)


def _stow_reads_body(status: int) -> bool:
    """Statuses whose STOW body is read rather than raised: 4xx answers say which parts failed.

    Auth, not-found, timeout and throttling answers stay errors (the last two
    are retried by the session).
    """
    return status < 500 and status not in (401, 403, 404, 407, 408, 429)


def batches(
    headers: Iterable[DicomHeader], batch_size: int, max_batch_bytes: int
) -> list[list[DicomHeader]]:
    """Group files in order into requests of at most ``batch_size`` files and ``max_batch_bytes``.

    A file larger than the budget travels alone (it cannot be split).
    """
    _check_batch_limits(batch_size, max_batch_bytes)
    return list(iter_batches(headers, batch_size, max_batch_bytes))


def iter_batches(
    headers: Iterable[DicomHeader], batch_size: int, max_batch_bytes: int
) -> Iterator[list[DicomHeader]]:
    """:func:`batches`, each group yielded as soon as it is complete (``headers`` may still be being read)."""
    current: list[DicomHeader] = []
    current_bytes = 0
    for header in headers:
        if current and (len(current) >= batch_size or current_bytes + header.size > max_batch_bytes):
            yield current
            current, current_bytes = [], 0
        current.append(header)
        current_bytes += header.size
    if current:
        yield current


def _check_batch_limits(batch_size: int, max_batch_bytes: int) -> None:
    if batch_size < 1:
        raise ValidationError(f"batch_size must be at least 1, not {batch_size}")
    if max_batch_bytes < 1:
        raise ValidationError(f"max_batch_bytes must be positive, not {max_batch_bytes}")


def _first_value(item: Mapping[str, Any], tag: str) -> Any:
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _as_code(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    for base in (10, 16):
        try:
            return int(text, base)
        except ValueError:
            continue
    return None


def reconcile(batch: Sequence[DicomHeader], response: httpx.Response) -> list[InstanceOutcome]:
    """Decide the fate of each part of a STOW request from the server's answer.

    The body is read whatever the status (Orthanc answers 400 to a request it
    partly stored). A part is ``stored`` when its SOP Instance UID is in the
    ReferencedSOPSequence, ``rejected`` with its FailureReason when in the
    FailedSOPSequence, and ``rejected`` as "not acknowledged" when in neither:
    a server that does not list an instance has not promised to keep it.
    """
    status = response.status_code
    document: Any = None
    if response.content:
        try:
            document = json.loads(response.content)
        except ValueError:
            document = None
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    referenced: dict[str, Mapping[str, Any]] = {}
    failed: dict[str, int | None] = {}
    if isinstance(document, Mapping):
        for item in (document.get(TAG_REFERENCED_SOP_SEQUENCE) or {}).get("Value") or []:
            uid = _first_value(item, TAG_REFERENCED_SOP_UID)
            if uid:
                referenced[str(uid)] = item
        for item in (document.get(TAG_FAILED_SOP_SEQUENCE) or {}).get("Value") or []:
            uid = _first_value(item, TAG_REFERENCED_SOP_UID)
            if uid:
                failed[str(uid)] = _as_code(_first_value(item, TAG_FAILURE_REASON))
    server_reason = error_reason(response) if status >= 400 else None
    outcomes = []
    for header in batch:
        uid = header.sop_instance_uid
        if uid in failed:
            code = failed[uid]
            reason = failure_text(code) if code is not None else "listed as failed (no FailureReason given)"
            if server_reason:
                reason += f"; server says: {server_reason}"
            outcomes.append(InstanceOutcome(header.path, "rejected", uid, reason, code))
        elif uid in referenced:
            warning = _as_code(_first_value(referenced[uid], TAG_WARNING_REASON))
            note = f"stored with warning {warning:04X}H: {_WARNING_CODES.get(warning, 'warning')}" if warning else ""
            outcomes.append(InstanceOutcome(header.path, "stored", uid, note))
        else:
            reason = f"not acknowledged by the server (HTTP {status}, in neither ReferencedSOPSequence nor FailedSOPSequence)"
            if document is None:
                reason = f"no readable STOW answer (HTTP {status})"
            if server_reason:
                reason += f"; server says: {server_reason}"
            outcomes.append(InstanceOutcome(header.path, "rejected", uid, reason))
    return outcomes


class DicomWebMixin:
    """DICOMweb transactions of :class:`postdicom.client.PostDicomClient`.

    Needs ``self._http`` (an :class:`~postdicom.http.HttpSession`) and
    ``self.dialect`` (``"postdicom"`` or ``"standard"``).
    """

    _http: HttpSession
    dialect: str

    # ------------------------------------------------------------------ STOW

    def store_instances(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        batch_size: int = 20,
        max_batch_bytes: int = 32 * MiB,
        concurrency: int = 4,
        on_progress: Callable[[int, int], None] | None = None,
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
            One :class:`InstanceOutcome` per path, in the order given.

        Raises
        ------
        AuthenticationError, NotFoundError
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
        headers: list[DicomHeader] = []
        unreadable: dict[Path, InstanceOutcome] = {}
        order: list[Path] = []
        for raw in paths:
            path = Path(raw)
            order.append(path)
            found = inspect_file(path)
            if isinstance(found, NotDicom):
                unreadable[path] = InstanceOutcome(path, "failed", None, f"not sent: {found.reason}")
            else:
                headers.append(found)
        sent = self._store_headers(
            headers,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            concurrency=concurrency,
            on_progress=on_progress,
        )
        by_path = {o.path: o for o in sent.outcomes}
        by_path.update(unreadable)
        return StowResult([by_path[p] for p in order])

    def _store_headers(
        self,
        headers: Iterable[DicomHeader],
        *,
        batch_size: int,
        max_batch_bytes: int,
        concurrency: int,
        on_progress: Callable[[int, int], None] | None,
    ) -> StowResult:
        """STOW files whose headers are read (shared by ``store_instances`` and uploads).

        ``headers`` may be a generator still reading files: each batch is sent
        as soon as it is full, so reading the next headers (and an upload's
        QIDO pre-checks) overlaps the requests instead of delaying the first
        one. At most ``2 * concurrency`` batches wait their turn, so memory
        stays small whatever the number of files. ``on_progress`` receives
        ``(files done, files queued so far)``; the second number is final once
        ``headers`` is exhausted.
        """
        if concurrency < 1:
            raise ValidationError(f"concurrency must be at least 1, not {concurrency}")
        _check_batch_limits(batch_size, max_batch_bytes)
        order: list[Path] = []
        outcomes: dict[Path, InstanceOutcome] = {}
        pending: set[Future] = set()
        done = 0

        def settle(block: bool) -> None:
            """Take in the finished requests (waiting for one if ``block``); a batch's error is raised here."""
            nonlocal pending, done
            finished, pending = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in finished:
                sent = future.result()
                for outcome in sent:
                    outcomes[outcome.path] = outcome
                done += len(sent)
                if on_progress is not None:
                    on_progress(done, len(order))

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="stow") as pool:
            try:
                for group in iter_batches(headers, batch_size, max_batch_bytes):
                    order.extend(h.path for h in group)
                    pending.add(pool.submit(self._store_batch, group))
                    settle(block=len(pending) >= 2 * concurrency)
                while pending:
                    settle(block=True)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return StowResult([outcomes[path] for path in order])

    def _store_batch(self, batch: Sequence[DicomHeader]) -> list[InstanceOutcome]:
        """One STOW request; transport and server errors become ``failed`` outcomes."""
        writer = MultipartWriter([h.path for h in batch])
        note_write()
        try:
            response = self._http.request(
                "POST",
                "/studies" if self.dialect == "standard" else "/",
                headers={**writer.headers, "Accept": DICOM_JSON},
                body=writer,
                idempotent=True,
                accept_status=_stow_reads_body,
            )
        except (AuthenticationError, NotFoundError):
            raise
        except PostDicomError as exc:
            return [InstanceOutcome(h.path, "failed", h.sop_instance_uid, str(exc)) for h in batch]
        except OSError as exc:
            return [
                InstanceOutcome(h.path, "failed", h.sop_instance_uid, f"could not read the files: {exc}")
                for h in batch
            ]
        return reconcile(batch, response)

    def upload_folder(
        self,
        directory: str | os.PathLike,
        *,
        skip_existing: bool = True,
        batch_size: int = 20,
        max_batch_bytes: int = 32 * MiB,
        concurrency: int = 4,
        on_progress: Callable[[int, int], None] | None = None,
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

        Returns
        -------
        list of dict
            DICOM JSON objects (PS3.18 Annex F), keys are 8-hex tags.

        Raises
        ------
        ValidationError
            An attribute name not in the DICOM dictionary (before any request).
        """
        return self._qido(
            "/studies",
            self._filters(filters, attributes),
            limit=limit,
            offset=offset,
            fields=fields,
            page_size=page_size,
            fuzzymatching=fuzzymatching,
        )

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
        **attributes: FilterValue,
    ) -> list[dict[str, Any]]:
        """Search series, of one study or of all (QIDO-RS); see :meth:`search_for_studies`."""
        query = self._filters(filters, attributes)
        if study_instance_uid:
            check_uid(study_instance_uid, "study_instance_uid")
        if self.dialect == "standard":
            path = f"/studies/{study_instance_uid}/series" if study_instance_uid else "/series"
        else:
            path = "/studies/series"
            if study_instance_uid:
                query[TAG_STUDY_UID] = study_instance_uid
        return self._qido(
            path, query, limit=limit, offset=offset, fields=fields, page_size=page_size, fuzzymatching=fuzzymatching
        )

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
        **attributes: FilterValue,
    ) -> list[dict[str, Any]]:
        """Search instances of a series, a study or all (QIDO-RS); see :meth:`search_for_studies`.

        In the ``postdicom`` dialect a series UID is enough (PostDICOM's
        ``/studies/series/instances?0020000E=``); the study UID is sent as a
        filter only when no series is given.
        """
        query = self._filters(filters, attributes)
        if study_instance_uid:
            check_uid(study_instance_uid, "study_instance_uid")
        if series_instance_uid:
            check_uid(series_instance_uid, "series_instance_uid")
        if self.dialect == "standard":
            if study_instance_uid and series_instance_uid:
                path = f"/studies/{study_instance_uid}/series/{series_instance_uid}/instances"
            elif study_instance_uid:
                path = f"/studies/{study_instance_uid}/instances"
            else:
                path = "/instances"
                if series_instance_uid:
                    query[TAG_SERIES_UID] = series_instance_uid
        else:
            path = "/studies/series/instances"
            if series_instance_uid:
                query[TAG_SERIES_UID] = series_instance_uid
            elif study_instance_uid:
                query[TAG_STUDY_UID] = study_instance_uid
        return self._qido(
            path, query, limit=limit, offset=offset, fields=fields, page_size=page_size, fuzzymatching=fuzzymatching
        )

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
        query = self._filters(filters, {})
        if patient_id:
            query[TAG_PATIENT_ID] = patient_id
        paging = dict(limit=limit, offset=offset, fields=fields)
        if level == "study":
            for tag, uid in ((TAG_STUDY_UID, study_instance_uid), (TAG_SERIES_UID, series_instance_uid)):
                if uid:
                    query[tag] = uid
            return self.search_for_studies(query, **paging)
        if level == "series":
            if series_instance_uid:
                query[TAG_SERIES_UID] = series_instance_uid
            return self.search_for_series(study_instance_uid, query, **paging)
        return self.search_for_instances(study_instance_uid, series_instance_uid, query, **paging)

    @staticmethod
    def _filters(filters: Mapping[str, FilterValue] | None, attributes: Mapping[str, FilterValue]) -> dict[str, FilterValue]:
        """Merge both ways of giving filters, keyed by 8-hex tag (names validated here, before any request)."""
        merged: dict[str, FilterValue] = {}
        for source in (filters or {}, attributes):
            for name, value in source.items():
                merged[attribute_tag(name)] = value
        return merged

    def _qido(
        self,
        path: str,
        filters: Mapping[str, FilterValue],
        *,
        limit: int | None,
        offset: int,
        fields: Iterable[str],
        page_size: int,
        fuzzymatching: bool,
    ) -> list[dict[str, Any]]:
        """Run one QIDO search page by page until the server has nothing more (or ``limit`` is met)."""
        if page_size < 1:
            raise ValidationError(f"page_size must be at least 1, not {page_size}")
        fields = tuple(fields)
        build_query(filters, fields=fields, limit=limit, offset=offset)  # validate before any request
        results: list[dict[str, Any]] = []
        position = offset
        previous_first: Any = None
        while limit is None or len(results) < limit:
            wanted = page_size if limit is None else min(page_size, limit - len(results))
            query = build_query(filters, fields=fields, limit=wanted, offset=position, fuzzymatching=fuzzymatching)
            response = self._http.request("GET", path, query=query, headers={"Accept": DICOM_JSON})
            page = _json_list(response)
            if not page:
                break
            if len(page) > wanted:  # the server ignored limit: this is everything from position on
                results.extend(page)
                break
            if previous_first is not None and page[0] == previous_first:
                raise ProtocolError(
                    "the server ignores QIDO offset (the same page came back twice)",
                    method="GET",
                    url=str(response.request.url),
                )
            results.extend(page)
            position += len(page)
            previous_first = page[0]
            more_flagged = "299" in response.headers.get("Warning", "")
            if len(page) < wanted and not more_flagged:
                break
        return results if limit is None else results[:limit]

    # ------------------------------------------------------------------ WADO

    def retrieve_study(self, study_instance_uid: str, destination: str | os.PathLike) -> list[Path]:
        """Download every instance of a study to ``destination/<SOPInstanceUID>.dcm``.

        The answer is split as it arrives; no file is held in memory. Returns
        the paths written, in the order the server sent them.
        """
        check_uid(study_instance_uid, "study_instance_uid")
        return self._retrieve(f"/studies/{study_instance_uid}", destination)

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
        check_uid(series_instance_uid, "series_instance_uid")
        if self.dialect != "standard":
            return self._retrieve(f"/studies/series/{series_instance_uid}", destination)
        if study_instance_uid:
            check_uid(study_instance_uid, "study_instance_uid")
        else:
            study_instance_uid = self._parents("/series", TAG_SERIES_UID, series_instance_uid)[0]
        return self._retrieve(f"/studies/{study_instance_uid}/series/{series_instance_uid}", destination)

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
        check_uid(sop_instance_uid, "sop_instance_uid")
        if self.dialect != "standard":
            return self._retrieve(f"/studies/series/instances/{sop_instance_uid}", destination)
        if study_instance_uid and series_instance_uid:
            check_uid(study_instance_uid, "study_instance_uid")
            check_uid(series_instance_uid, "series_instance_uid")
        else:
            study_instance_uid, series_instance_uid = self._parents("/instances", TAG_SOP_UID, sop_instance_uid)
        return self._retrieve(
            f"/studies/{study_instance_uid}/series/{series_instance_uid}/instances/{sop_instance_uid}",
            destination,
        )

    def _parents(self, path: str, tag: str, uid: str) -> tuple[str, str]:
        """Study and series UIDs of a series or instance, found with a top-level QIDO query."""
        matches = self._qido(
            path,
            {tag: uid},
            limit=1,
            offset=0,
            fields=(TAG_STUDY_UID, TAG_SERIES_UID),
            page_size=1,
            fuzzymatching=False,
        )
        if not matches:
            raise NotFoundError(f"no {path.strip('/')} with UID {uid} on the server", status=None)
        study = str(_first_value(matches[0], TAG_STUDY_UID) or "")
        series = str(_first_value(matches[0], TAG_SERIES_UID) or "")
        if not study or (tag == TAG_SOP_UID and not series):
            raise ProtocolError(f"the QIDO answer for {uid} lacks its parent UIDs")
        return check_uid(study, "StudyInstanceUID"), series and check_uid(series, "SeriesInstanceUID")

    def _retrieve(self, path: str, destination: str | os.PathLike) -> list[Path]:
        """GET a WADO-RS resource and write its parts as ``<SOPInstanceUID>.dcm`` files.

        The whole download is tried again on a transport error met while
        reading the body (the session only retries before the body starts);
        files already written are simply overwritten with the same content.
        """
        target = Path(destination)
        target.mkdir(parents=True, exist_ok=True)
        policy = self._http.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._download(path, target)
            except TransportError:
                if attempt >= policy.attempts:
                    raise
                time.sleep(policy.delay(attempt))

    def _download(self, path: str, target: Path) -> list[Path]:
        written: dict[Path, None] = {}
        headers = {"Accept": WADO_ACCEPT, "Accept-Encoding": "identity"}
        with self._http.stream("GET", path, headers=headers) as response:
            content_type = response.headers.get("Content-Type", "")
            media, _ = parse_content_type(content_type)
            if not media.startswith("multipart/"):
                response.read()
                raise ProtocolError(
                    f"expected a multipart WADO answer, got {media or 'no Content-Type'}",
                    status=response.status_code,
                    reason=error_reason(response),
                    method="GET",
                    url=str(response.request.url),
                )
            try:
                for part in split_to_files(_body_chunks(response), content_type, target):
                    written[_place(part, target)] = None
            except httpx.TransportError as exc:
                raise TransportError(
                    f"connection lost while reading the answer ({type(exc).__name__})",
                    method="GET",
                    url=str(response.request.url),
                ) from None
        return list(written)


def _body_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The answer's bytes as the transport hands them over.

    WADO is asked for without content coding (DICOM pixel data hardly
    compresses), so the raw chunks are the body and httpx's decoding and
    re-chunking layer, a tenth of the download's CPU, is skipped. A server
    that encodes anyway is decoded, and a body httpx has already read (test
    transports) is taken from memory.
    """
    identity = response.headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")
    if identity and not response.is_stream_consumed:
        return response.iter_raw()
    return response.iter_bytes()


def _json_list(response: httpx.Response) -> list[dict[str, Any]]:
    """A QIDO answer's matches: ``204`` and empty bodies mean none."""
    if response.status_code == 204 or not response.content.strip():
        return []
    try:
        document = response.json()
    except ValueError:
        raise ProtocolError(
            "QIDO answer is not JSON",
            status=response.status_code,
            method="GET",
            url=str(response.request.url),
        ) from None
    if not isinstance(document, list):
        raise ProtocolError("QIDO answer is not a JSON array", status=response.status_code)
    return document


def _place(part: ReceivedPart, target: Path) -> Path:
    """Rename a received part to ``<SOPInstanceUID>.dcm``, the UID read from the part itself."""
    uid = _sop_uid_of(part)
    if uid is None:
        if part.path is not None:
            part.path.unlink(missing_ok=True)
        raise ProtocolError(
            f"a WADO part ({part.content_type or 'no Content-Type'}, {part.size} bytes) is not a DICOM instance"
        )
    final = target / f"{uid}.dcm"
    os.replace(part.path, final)
    return final


def _sop_uid_of(part: ReceivedPart) -> str | None:
    """The part's SOP Instance UID: from its DICOM header, else from its Content-Location.

    The header is read from the bytes the reader kept in memory
    (``part.head``) when it is a plain Part 10 header; pydicom reads it from
    the file only when that quick reading cannot tell (no preamble, deflated
    or big-endian data, a sequence before the UID, a header longer than the
    head). Same answer either way, about 50 times cheaper per part.
    """
    found = _uids_from_head(bytes(part.head))
    if found is not None:
        uid = found[0] or found[1]
    else:
        try:
            dataset = pydicom.dcmread(part.path, stop_before_pixels=True, force=True, specific_tags=["SOPInstanceUID"])
            uid = str(dataset.get("SOPInstanceUID", "") or "")
            meta = getattr(dataset, "file_meta", None)
            if not uid and meta is not None:
                uid = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
        except Exception:  # noqa: BLE001 - fall back to the part header
            uid = ""
    if not uid and "/instances/" in part.content_location:
        uid = part.content_location.rsplit("/instances/", 1)[1].split("/")[0].split("?")[0]
    if is_uid(uid):
        return uid
    return None


_SOP_INSTANCE_UID_TAG = 0x00080018


def _uids_from_head(head: bytes) -> tuple[str, str] | None:
    """``(SOPInstanceUID, MediaStorageSOPInstanceUID)`` read from the first bytes of a Part 10 file.

    Either may be ``""`` when absent. ``None`` when these bytes cannot tell
    for sure, and the caller must ask pydicom.
    """
    if len(head) < 132 or head[128:132] != b"DICM":
        return None
    meta: dict[int, bytes] = {}
    position = 132
    while head[position : position + 2] == b"\x02\x00":  # file meta: group 0002, explicit VR little endian
        element = _element_in(head, position, implicit=False)
        if element is None:
            return None
        tag, value_start, length = element
        meta[tag & 0xFFFF] = head[value_start : value_start + length]
        position = value_start + length
    syntax = ui_text(meta.get(0x0010, b""))
    if not syntax or syntax in UNREADABLE_SYNTAXES:
        return None
    media_uid = ui_text(meta.get(0x0003, b""))
    implicit = syntax == IMPLICIT_VR_LITTLE_ENDIAN
    while True:
        element = _element_in(head, position, implicit=implicit)
        if element is None:
            return None
        tag, value_start, length = element
        if tag > _SOP_INSTANCE_UID_TAG:
            return "", media_uid
        if tag == _SOP_INSTANCE_UID_TAG:
            return ui_text(head[value_start : value_start + length]), media_uid
        position = value_start + length


def _element_in(head: bytes, position: int, *, implicit: bool) -> tuple[int, int, int] | None:
    """:func:`~postdicom.upload.element_header`, also ``None`` when the value is not wholly in ``head``."""
    element = element_header(head, position, implicit=implicit)
    if element is None or element[1] + element[2] > len(head):
        return None
    return element
