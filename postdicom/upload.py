"""Upload a folder: walk it, decide what is DICOM, skip what is stored, report every file.

A disk handed over by a hospital holds DICOM files with and without a
``.dcm`` suffix, next to READMEs, thumbnails, empty and half-copied files. The
rules here:

* **Every regular file gets exactly one entry** in the :class:`UploadReport`,
  with a status among ``stored``, ``already_stored``, ``rejected`` (the server
  refused it; the reason carries its FailureReason), ``not_dicom`` (skipped
  before sending) and ``failed`` (could not be sent: transport or server
  errors that outlasted the retries).
* **DICOM is decided by content**, never by the file name, and **truncated
  files are not sent** (``not_dicom``): :func:`postdicom.part10.inspect_file`
  decides, and words the reason.
* **Already stored instances are not sent again**: before any of its files
  is sent, each series found in the folder is looked up with one QIDO
  instance query, and files whose SOP Instance UID is there are reported
  ``already_stored``. A rerun after an interruption therefore uploads only
  what is missing.
* **Reading overlaps sending**: files are classified (and their series
  looked up) as the upload goes, and each batch leaves as soon as it is
  full, so a large folder does not wait for every header to be read before
  the first byte goes out.
* **Slices of one upload share its limits** (:class:`SharedUpload`): a flow
  that sends a folder as several :func:`upload_files` calls at once (one per
  task run) keeps, like ``upload_folder``, at most ``concurrency`` requests
  in flight in all and one pre-check per series.

Special files (FIFOs, sockets, devices) are not regular files and are left
out: opening a FIFO would block the walk.

This module sends through STOW and looks up through QIDO
(:mod:`postdicom.stow`, :mod:`postdicom.qido`); neither knows of uploads.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from .dicom_json import TAG_SOP_UID
from .errors import NotFoundError, ValidationError
from .part10 import DicomHeader, NotDicom, inspect_file
from .qido import Qido, QidoPaging
from .stow import ProgressCallback, Stow, StowBatching
from .uids import check_uid

FileStatus = Literal["stored", "already_stored", "rejected", "not_dicom", "failed"]
STATUSES: tuple[str, ...] = ("stored", "already_stored", "rejected", "not_dicom", "failed")

_ALREADY_STORED_LOOKUP = QidoPaging(fields=("SOPInstanceUID",))


class DicomWebClient(Protocol):
    """What an upload needs of a client: its STOW and QIDO transactions (a :class:`~postdicom.PostDicomClient`)."""

    @property
    def stow(self) -> Stow: ...

    @property
    def qido(self) -> Qido: ...


@dataclass(frozen=True)
class FileEntry:
    """The outcome for one file of the folder."""

    path: Path
    status: FileStatus
    reason: str = ""
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None


@dataclass
class UploadReport:
    """One entry per regular file under ``directory``, in walk order.

    Examples
    --------
    >>> report = client.upload_folder("/media/cdrom")  # doctest: +SKIP
    >>> report.counts  # doctest: +SKIP
    {'stored': 40, 'already_stored': 0, 'rejected': 0, 'not_dicom': 3, 'failed': 0}
    """

    directory: Path | None = None
    files: list[FileEntry] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status (every status present, zero included)."""
        found: Counter[str] = Counter(entry.status for entry in self.files)
        return {status: found.get(status, 0) for status in STATUSES}

    def with_status(self, status: FileStatus) -> list[FileEntry]:
        """The entries that ended with ``status``."""
        return [entry for entry in self.files if entry.status == status]

    @property
    def stored(self) -> list[FileEntry]:
        return self.with_status("stored")

    @property
    def already_stored(self) -> list[FileEntry]:
        return self.with_status("already_stored")

    @property
    def rejected(self) -> list[FileEntry]:
        return self.with_status("rejected")

    @property
    def not_dicom(self) -> list[FileEntry]:
        return self.with_status("not_dicom")

    @property
    def failed(self) -> list[FileEntry]:
        return self.with_status("failed")

    @property
    def ok(self) -> bool:
        """True when every DICOM file is on the server (nothing rejected or failed)."""
        return not self.rejected and not self.failed

    def __len__(self) -> int:
        return len(self.files)

    def summary(self) -> str:
        """One line for logs: counts only, no paths or patient data."""
        return ", ".join(f"{n} {status}" for status, n in self.counts.items() if n) or "no files"


class SharedUpload:
    """What the slices of one upload share when they are sent by separate :func:`upload_files` calls.

    A flow hands a folder to task runs of ``batch_size`` files; each task run
    starts and ends with bookkeeping of its own (Prefect's), during which it
    sends nothing. Starting the next task runs ahead keeps the server busy
    meanwhile, and this object keeps what ``upload_folder`` promises for the
    whole folder: at most ``concurrency`` STOW requests in flight (a request
    waits for a free slot), and each series looked up once, by the first
    slice that meets it, the others reading the same answer. It also notes
    the PatientID each study's files carry (:meth:`study_patient_ids`), so a
    flow can find the studies' orders afterwards without asking the server
    for each study's patient first.

    Parameters
    ----------
    concurrency
        STOW requests in flight at once for every call sharing this object.

    Raises
    ------
    ValidationError
        ``concurrency`` below 1.
    """

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValidationError(f"concurrency must be at least 1, not {concurrency}")
        self.concurrency = concurrency
        self.slots = threading.BoundedSemaphore(concurrency)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="stow")
        """The threads every slice's requests run on: ``concurrency`` in all, not as many per slice."""
        self._lock = threading.Lock()
        self._present: dict[tuple[str, str], Future[set[str]]] = {}
        self._patients: dict[str, set[str | None]] = {}

    def close(self) -> None:
        """Stop the request threads once every slice has returned (they are started as requests need them)."""
        self.pool.shutdown(wait=True)

    def note_patient(self, header: DicomHeader) -> None:
        """Remember the PatientID ``header``'s file gives its study (see :meth:`study_patient_ids`)."""
        with self._lock:
            self._patients.setdefault(header.study_instance_uid, set()).add(header.patient_id)

    def study_patient_ids(self) -> dict[str, str]:
        """The PatientID of each study whose DICOM files all carry the same plain one, by StudyInstanceUID.

        Every DICOM file the slices read counts, stored or not. A study whose
        files disagree, or one of whose files has no (plain) PatientID, is
        left out: what the server made of it is only known by asking it.
        Patient data, in memory only: the upload neither logs nor returns it.
        """
        with self._lock:
            return {
                study: patient
                for study, patients in self._patients.items()
                if len(patients) == 1 and (patient := next(iter(patients))) is not None
            }

    def present(self, client: DicomWebClient, header: DicomHeader) -> set[str]:
        """SOP Instance UIDs of ``header``'s series the server held when this upload first asked (one QIDO).

        A lookup that failed is forgotten, so the next call (a retried task run) asks again.
        """
        series = (header.study_instance_uid, header.series_instance_uid)
        with self._lock:
            answer = self._present.get(series)
            asking = answer is None
            if answer is None:
                answer = self._present[series] = Future()
        if asking:
            try:
                answer.set_result(already_stored(client, [header]))
            except BaseException as error:
                with self._lock:
                    del self._present[series]
                answer.set_exception(error)
        return answer.result()


def walk_regular_files(directory: Path) -> Iterator[Path]:
    """Every regular file under ``directory``, recursively, in a stable (sorted) order."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            try:
                mode = os.stat(path).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode):
                yield path


def upload_folder(
    client: DicomWebClient,
    directory: str | os.PathLike,
    *,
    skip_existing: bool = True,
    batch_size: int = 20,
    max_batch_bytes: int = 32 * 1024 * 1024,
    concurrency: int = 4,
    on_progress: ProgressCallback | None = None,
) -> UploadReport:
    """Upload every DICOM file under ``directory`` and account for every file.

    Parameters
    ----------
    client
        The client (its STOW and QIDO methods are used).
    directory
        Folder walked recursively; file names and suffixes do not matter.
    skip_existing, batch_size, max_batch_bytes, concurrency, on_progress
        See :func:`upload_files`.

    Returns
    -------
    UploadReport
        One entry per regular file.

    Raises
    ------
    ValidationError
        ``directory`` does not exist or is not a folder (raised before any request).
    AuthenticationError
        The server refused the credentials (nothing could be uploaded).
    """
    root = Path(directory).expanduser()
    if not root.exists():
        raise ValidationError(f"directory does not exist: {str(root)!r}")
    if not root.is_dir():
        raise ValidationError(f"directory is not a folder: {str(root)!r}")
    report = upload_files(
        client,
        list(walk_regular_files(root)),
        skip_existing=skip_existing,
        batch_size=batch_size,
        max_batch_bytes=max_batch_bytes,
        concurrency=concurrency,
        on_progress=on_progress,
    )
    report.directory = root
    return report


def upload_files(
    client: DicomWebClient,
    paths: Sequence[Path],
    *,
    skip_existing: bool = True,
    batch_size: int = 20,
    max_batch_bytes: int = 32 * 1024 * 1024,
    concurrency: int = 4,
    on_progress: ProgressCallback | None = None,
    shared: SharedUpload | None = None,
) -> UploadReport:
    """Classify, pre-check and store a list of files; one report entry per path, in order.

    This is the unit a flow hands to one task: any slice of a folder.

    Parameters
    ----------
    client
        The client (its STOW and QIDO methods are used).
    paths
        Regular files; what is DICOM is decided by content, not by name.
    skip_existing
        Look each series up before sending any of its files
        (:func:`already_stored`) and do not send
        instances the server holds: they are reported ``already_stored``,
        which makes a rerun cheap and honest.
    batch_size, max_batch_bytes, concurrency, on_progress
        Passed to the STOW upload (see ``store_instances``).
    shared
        The limits and pre-check answers of a larger upload this call is a
        slice of (:class:`SharedUpload`): its requests then count against the
        shared ``concurrency``, and a series another slice looked up is not
        asked again. Without it, this call is the whole upload.
    """
    batching = StowBatching(batch_size, max_batch_bytes, concurrency)
    whole = shared if shared is not None else SharedUpload(concurrency)
    entries: dict[Path, FileEntry] = {}
    studies: dict[Path, str] = {}

    def to_send() -> Iterator[DicomHeader]:
        """Classify the files and pre-check each series when its first file is met.

        ``store_headers`` consumes this lazily, so earlier batches are
        already uploading while later files are read and looked up.
        """
        for path in paths:
            found = inspect_file(path)
            if isinstance(found, NotDicom):
                entries[path] = FileEntry(path, "not_dicom", found.reason)
                continue
            whole.note_patient(found)
            if skip_existing and found.sop_instance_uid in whole.present(client, found):
                entries[path] = FileEntry(
                    path,
                    "already_stored",
                    "the server already holds this SOP instance",
                    found.sop_instance_uid,
                    found.study_instance_uid,
                )
                continue
            studies[path] = found.study_instance_uid
            yield found

    result = client.stow.store_headers(
        to_send(), batching, on_progress, shared.slots if shared else None, shared.pool if shared else None
    )
    for outcome in result.outcomes:
        entries[outcome.path] = FileEntry(
            outcome.path,
            outcome.status,
            outcome.reason,
            outcome.sop_instance_uid,
            studies.get(outcome.path),
        )
    report = UploadReport(directory=None)
    report.files = [entries[path] for path in paths]
    return report


def already_stored(client: DicomWebClient, headers: Sequence[DicomHeader]) -> set[str]:
    """SOP Instance UIDs the server holds, one QIDO instance query per series of ``headers``.

    A series whose UIDs are malformed cannot be looked up; its files are
    left for the server to judge (it will reject them with a reason).
    """
    series = dict.fromkeys((h.study_instance_uid, h.series_instance_uid) for h in headers)
    present: set[str] = set()
    for study_uid, series_uid in series:
        try:
            check_uid(study_uid, "StudyInstanceUID")
            if series_uid:
                check_uid(series_uid, "SeriesInstanceUID")
        except ValidationError:
            continue
        try:
            matches = client.qido.search_for_instances(study_uid, series_uid or None, {}, _ALREADY_STORED_LOOKUP)
        except NotFoundError:
            continue
        for match in matches:
            values = match.get(TAG_SOP_UID, {}).get("Value") or []
            present.update(str(v) for v in values)
    return present
