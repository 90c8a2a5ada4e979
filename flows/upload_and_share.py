"""``bulk_upload_and_share``: put a hospital's disk on PostDICOM and hand someone a link.

The steps are the ones a person would do by hand (upload, find the orders the
studies became, file them in a folder, assign them, share them), written so
that running the flow again is always safe: the upload first asks the server
which instances it already holds and sends only the rest, the orders are found
again by their StudyInstanceUID, the folder is searched by name before one is
created, and orders already in the folder or already assigned are left alone.
A crash half-way is fixed by running the same flow again.

This module holds the flow and its upload; the other steps have their own
modules: :mod:`flows.upload_orders` (orders, assignment), :mod:`flows.folders`,
:mod:`flows.share_step` (the links and their outcome), :mod:`flows.share_password`
and :mod:`flows.upload_report` (the summary and the artifacts).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.blocks.system import Secret
from prefect.context import FlowRunContext, TaskRunContext
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import SecretStr
from pydantic.json_schema import SkipJsonSchema

from blocks import PostDicomCredentials
from postdicom.errors import is_transient
from postdicom.upload import STATUSES as FILE_STATUSES
from postdicom.upload import FileEntry, SharedUpload, upload_files, walk_regular_files
from tasks.policies import write_task_options

from .assets import materialize_account_studies
from .assignment import TargetKind
from .folders import add_orders_to_folder, find_or_create_folder
from .forms import ACCOUNT, OptionalText, form
from .orders import canonical_uuid, let_go
from .reporting import FlowRunFailed, count_by, error_text, run_name_or
from .share_password import mask_stored_password, resolve_share_password
from .share_step import LinkSettings, make_share_links, share_problems, share_requests, share_step_status
from .upload_orders import assign_orders, locate_orders
from .upload_report import FileIssue, UploadAndShareSummary, publish
from .window import MAX_WORKERS, bounded_task_runner, chunked, submit_bounded

__all__ = ["bulk_upload_and_share", "resolve_share_password", "upload_files_batch"]

STOW_FILES_PER_REQUEST = 20
NOT_TRANSIENT = "fix the cause first (a rerun alone meets it again)"
"""The remedy in a file's reason when its batch failed for a lasting cause (wrong address or account)."""
ON_SERVER = ("stored", "already_stored")
"""The statuses of a file the server holds once the upload is done."""
PROGRESS_SECONDS = 1.0
"""The progress artifact moves at most this often: each move is an API call, made while the next batch waits to start."""


class StandardServerError(RuntimeError):
    """The account is a standard DICOMweb server: the upload works, the PostDICOM steps after it cannot."""


# --------------------------------------------------------------------- upload


def list_directory(directory: str | Path) -> list[str]:
    """Every regular file under ``directory``, as text; a clear error before any request if there is nothing to do.

    Text, not :class:`~pathlib.Path`: the list lives through the whole run, and
    a ``Path`` costs about 0.3 KB more per file (5 MB at 16,000 files). Each
    batch makes its own paths when it is sent.
    """
    root = Path(directory).expanduser()
    if not root.exists():
        raise ValueError(f"directory does not exist: {str(root)!r}")
    if not root.is_dir():
        raise ValueError(f"directory is not a folder: {str(root)!r}")
    files = [str(path) for path in walk_regular_files(root)]
    if not files:
        raise ValueError(f"directory holds no files: {str(root)!r}")
    return files


_SHARED_UPLOADS: dict[UUID, SharedUpload] = {}
"""The request slots and pre-check answers of each upload running in this process, by flow run id."""
_SHARED_UPLOADS_LOCK = threading.Lock()


def _shared_upload() -> SharedUpload | None:
    """The :class:`SharedUpload` of the flow run this task run belongs to, if it runs in the flow's process."""
    context = TaskRunContext.get()
    if context is None or context.task_run.flow_run_id is None:
        return None
    with _SHARED_UPLOADS_LOCK:
        return _SHARED_UPLOADS.get(context.task_run.flow_run_id)


@dataclass
class BatchOutcome:
    """What one upload batch hands back: its per-status counts, the files not stored, the studies stored.

    One object rather than one entry per file: Prefect links every item of a
    task's returned list to its task run for the rest of the flow run
    (``FlowRunContext.run_results``, ~200 B a file that was never freed), and
    the flow only ever needs the counts, the entries of files the server does
    not hold (with their reasons) and the studies on the server.
    """

    files: int
    counts: dict[str, int]
    not_stored: list[FileEntry]
    studies: list[str]

    @classmethod
    def of(cls, entries: Sequence[FileEntry]) -> BatchOutcome:
        """Count ``entries`` (one per file, in walk order); keep only those not on the server, and the studies that are."""
        return cls(
            files=len(entries),
            counts=dict(Counter(entry.status for entry in entries)),
            not_stored=[entry for entry in entries if entry.status not in ON_SERVER],
            studies=list(dict.fromkeys(
                entry.study_instance_uid for entry in entries if entry.status in ON_SERVER and entry.study_instance_uid
            )),
        )


@task(name="upload-files-batch", **write_task_options(idempotent=True))
def upload_files_batch(batch: list[Path], credentials: PostDicomCredentials) -> BatchOutcome:
    """Classify, pre-check and STOW one batch of files; how many got each status, and every file not stored.

    The pre-check (one QIDO per series) is what makes a rerun cheap and
    honest: instances the server holds are reported ``already_stored`` and
    not sent again. Repeating the whole task is harmless for the same reason,
    so Prefect may retry it on a transient error. Run by the flow on its
    thread pool, the batch shares the run's request slots and pre-check
    answers (:func:`upload_all`); elsewhere (another task runner, or called
    alone) it sends one request at a time and looks its series up itself.
    """
    shared = _shared_upload()
    with credentials.get_client() as client:
        report = upload_files(
            client,
            batch,
            batch_size=STOW_FILES_PER_REQUEST,
            concurrency=shared.concurrency if shared else 1,
            shared=shared,
        )
    return BatchOutcome.of(report.files)


@dataclass
class UploadTally:
    """What the flow keeps of the upload: per-status counts, the files not stored, the studies on the server.

    Each batch's outcome is counted here as the batch finishes, so the
    flow's memory does not grow with the number of files stored. What is
    kept is in the order of the batches (the walk's), whichever finished first.
    """

    files: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    _not_stored: dict[int, list[FileEntry]] = field(default_factory=dict)
    _studies: dict[int, list[str]] = field(default_factory=dict)
    patient_ids: dict[str, str] = field(default_factory=dict, repr=False)
    """Each study's PatientID as its files carry it (:meth:`~postdicom.upload.SharedUpload.study_patient_ids`).

    Handed to the order lookups so they can skip asking the server for each
    study's patient. Empty when the batches ran on another task runner. In
    the flow's memory only: no task returns it, nothing logs or stores it.
    """

    def add(self, index: int, outcome: BatchOutcome) -> None:
        """Count batch ``index``; keep its files not on the server, and its studies that are."""
        self.files += outcome.files
        self.counts.update(outcome.counts)
        self._not_stored[index] = outcome.not_stored
        self._studies[index] = outcome.studies

    def not_stored(self) -> list[FileEntry]:
        """The entries of files not on the server, in walk order."""
        return [entry for index in sorted(self._not_stored) for entry in self._not_stored[index]]

    def studies(self) -> list[str]:
        """StudyInstanceUIDs with a file on the server (stored or already stored), once each, in walk order."""
        return list(dict.fromkeys(uid for index in sorted(self._studies) for uid in self._studies[index]))


def upload_all(
    files: Sequence[str],
    credentials: PostDicomCredentials,
    *,
    batch_size: int,
    concurrency: int,
) -> UploadTally:
    """Upload ``files`` in batched tasks, with a progress artifact that moves as batches finish.

    ``concurrency`` STOW requests are in flight at once, as with the client's
    ``upload_folder``. Each task run spends some time on Prefect's bookkeeping
    (its start, a tag-concurrency request to the API, its end) without
    sending: on the flow's own thread pool, one task run more than request
    slots is started (:class:`~postdicom.upload.SharedUpload`), so the next
    batch is ready to send when one ends. One is enough: a single batch keeps
    every slot busy (its requests are queued ahead of its reading), and each
    task run in flight holds its whole batch (paths, headers, outcomes: 1 to
    1.5 MB of peak RSS for 400 files), so more of them only cost memory
    (benchmarks/RESULTS.md, *Upload flow, fourth pass*). On another task
    runner (its tasks may run in other processes) ``concurrency`` task runs
    send one request at a time each.

    A file that could not be sent (after the client's and the task's retries)
    is reported ``failed``: running the flow again sends it (the pre-check
    skips everything stored), so no extra pass is made here.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or not isinstance(context.task_runner, ThreadPoolTaskRunner):
        return _upload_batches(files, credentials, batch_size=batch_size, task_runs=concurrency)
    run_id = context.flow_run.id
    shared = SharedUpload(concurrency)
    with _SHARED_UPLOADS_LOCK:
        _SHARED_UPLOADS[run_id] = shared
    try:
        tally = _upload_batches(
            files, credentials, batch_size=batch_size, task_runs=min(concurrency + 1, MAX_WORKERS)
        )
        tally.patient_ids = shared.study_patient_ids()
        return tally
    finally:
        with _SHARED_UPLOADS_LOCK:
            del _SHARED_UPLOADS[run_id]
        shared.close()


def _upload_batches(
    files: Sequence[str], credentials: PostDicomCredentials, *, batch_size: int, task_runs: int
) -> UploadTally:
    """The batch task runs, ``task_runs`` at once, counted as each finishes, and the progress artifact."""
    # Called from a sync flow, Prefect's dispatcher returns the id itself, not a coroutine.
    progress_id = cast(UUID, create_progress_artifact(
        progress=0.0, key="upload-and-share-progress", description=f"Uploading {len(files)} files"
    ))
    planned = chunked(list(files), batch_size)

    def not_confirmed(index: int, error: Exception) -> BatchOutcome:
        remedy = (
            "run the flow again (files already stored are skipped)"
            if is_transient(error)
            else NOT_TRANSIENT
        )
        reason = f"not confirmed stored: {error_text(error)}; {remedy}"
        return BatchOutcome.of([FileEntry(path=Path(path), status="failed", reason=reason) for path in planned[index]])

    tally = UploadTally()
    moved = time.monotonic()
    for index, outcome, future in submit_bounded(
        lambda batch: upload_files_batch.submit([Path(path) for path in batch], credentials),
        planned,
        min(task_runs, MAX_WORKERS),
        on_error=not_confirmed,
    ):
        tally.add(index, outcome)
        if future.state.is_completed():
            # The run's state would hold the outcome until Python's cycle collector frees it.
            let_go(future.state)
        if time.monotonic() - moved >= PROGRESS_SECONDS:
            update_progress_artifact(progress_id, progress=round(100.0 * tally.files / len(files), 1))
            moved = time.monotonic()
    update_progress_artifact(progress_id, progress=100.0, description=f"Uploaded {len(files)} files")
    return tally

# --------------------------------------------------------------------- flow


@run_name_or("upload")
def _run_name() -> str:
    """``upload-<folder or directory name>-until-<expire date>``: tells runs apart in the UI."""
    parameters = flow_run.parameters or {}
    label = parameters.get("folder_name") or Path(str(parameters.get("directory") or "")).name or "disk"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(label)).strip("-") or "disk"
    return f"upload-{slug}-until-{parameters.get('expire_date')}"


@flow(name="bulk-upload-and-share", flow_run_name=_run_name, task_runner=bounded_task_runner())
def bulk_upload_and_share(
    credentials: Annotated[PostDicomCredentials, ACCOUNT],
    directory: Annotated[
        str, form("Directory", "Folder on the machine running the flow; every file under it is read (DICOM by content).")
    ],
    expire_date: Annotated[dt.date, form("Links expire", "Last day the share link(s) work; a past date is refused.")],
    share_password: Annotated[
        Secret | SkipJsonSchema[SecretStr | str] | None,
        form(
            "Share password (Secret block)",
            "Secret block holding the links' password; empty: none. Never type the password itself: runs keep parameters.",
        ),
    ] = None,
    downloadable: Annotated[bool, form("Downloadable", "Whether recipients may download the studies.")] = False,
    folder_name: Annotated[
        OptionalText,
        form("Folder", "File the orders in this folder (reused if it exists, else created); empty: none.", blank=True),
    ] = None,
    parent_folder_uuid: Annotated[
        OptionalText, form("Parent folder UUID", "Parent of that folder; empty: top level.", blank=True)
    ] = None,
    share_per: Annotated[
        Literal["all", "patient"], form("One link per", "'all': one link for everything; 'patient': one per patient.")
    ] = "all",
    assign_to_user_uuid: Annotated[
        OptionalText,
        form("Assign to user UUID", "Assign every uploaded order to this user; empty: no assignment.", blank=True),
    ] = None,
    assign_to_user_group_uuid: Annotated[
        OptionalText,
        form("Assign to group UUID", "Assign every uploaded order to this user group; empty: none.", blank=True),
    ] = None,
    batch_size: Annotated[int, form("Files per task", "Files one upload task sends.", ge=1, le=5000)] = 400,
    concurrency: Annotated[int, form("Concurrency", "STOW requests (and lookups) at once; upload tasks start ahead.", ge=1, le=16)] = 4,
    share_password_block: Annotated[
        OptionalText,
        form("Share password block", "Name of a Prefect Secret block holding the share password.", blank=True),
    ] = None,
    list_patients_in_summary: Annotated[
        bool,
        form("Patient IDs in summary", "Name each per-patient link's patient ID in the summary artifact (stored)."),
    ] = False,
) -> UploadAndShareSummary:
    """Upload every DICOM file under ``directory``, file the orders, and create share link(s).

    On a standard DICOMweb server (a block of dialect ``standard``) every file
    is uploaded and accounted for, then the run ends Failed with
    :class:`StandardServerError`: orders, folders and links are PostDICOM's own
    calls. (Only storing files there: the ``upload_dicom_images_in_a_folder``
    task or ``PostDicomClient.upload_folder``.)

    Safe to run again: only what is missing is uploaded, the same orders are
    found, the folder (``folder_name`` under ``parent_folder_uuid``) is reused,
    orders already filed or assigned are left as they are. Each run creates
    new share links (the service offers no way to find earlier ones).
    ``share_password`` protects the links: a ``SecretStr`` (or text) in
    Python; for deployment runs only a Prefect ``Secret`` block, so the
    password is never stored in the run's parameters.
    Files go in tasks of ``batch_size`` files, ``concurrency`` STOW requests
    in flight at once (one task more runs, so the next is ready). The
    run ends Failed, with the summary still written and in the raised error's
    ``report``, when a file could not be sent, a stored study has no order,
    an assignment failed, or a link is not made or unknown (each planned
    link's outcome is in ``shares``, the step's in ``share_status``);
    rejected and non-DICOM files are only listed. A link too large for one
    order share becomes the share of a folder made for it alone.
    With ``share_per="patient"`` the summary artifact names each link's
    patient ID only when ``list_patients_in_summary`` (artifacts are kept in
    Prefect's database); the returned summary always has them.
    """
    logger = get_run_logger()
    files = list_directory(directory)
    folder_name = folder_name.strip() if folder_name else None
    targets = _check_parameters(
        expire_date, folder_name, parent_folder_uuid, assign_to_user_uuid, assign_to_user_group_uuid
    )
    if share_password is not None and not isinstance(share_password, Secret):
        mask_stored_password()
    password = resolve_share_password(share_password, share_password_block)

    tally = upload_all(files, credentials, batch_size=batch_size, concurrency=concurrency)
    summary = summarise_upload(Path(directory).expanduser(), tally)
    materialize_account_studies(credentials, summary.counts)
    logger.info("upload: %s", ", ".join(f"{n} {status}" for status, n in summary.counts.items() if n))
    try:
        if credentials.dialect == "standard":
            raise StandardServerError(
                "orders, folders and share links are PostDICOM's own calls, which a standard DICOMweb server "
                "(the account's dialect is 'standard') does not have: the files are uploaded, nothing was shared"
            )
        orders = locate_orders(
            credentials, tally.studies(), summary, concurrency=concurrency, patient_ids=tally.patient_ids
        )
        if folder_name and orders:
            folder = find_or_create_folder(credentials, folder_name, parent_folder_uuid)
            summary.folder_uuid, summary.folder_created = folder.folder_uuid, folder.created
            missing = [uuid_ for uuid_ in summary.patient_order_uuids if uuid_ not in folder.order_uuids]
            summary.orders_added_to_folder = add_orders_to_folder(
                credentials, folder.folder_uuid, missing, concurrency=concurrency
            )
        if targets and orders:
            summary.assignments = assign_orders(credentials, orders, targets)
            failed = sum(row.status == "failed" for row in summary.assignments)
            if failed:
                summary.problems.append(f"{failed} assignments failed")
        summary.shares = make_share_links(
            credentials,
            share_requests(orders, share_per),
            LinkSettings(expire_date, password, downloadable),
            run_folder_uuid=summary.folder_uuid,
            concurrency=concurrency,
        )
        summary.share_status = share_step_status(summary.shares)
        summary.problems += share_problems(summary.shares)
    except Exception as error:
        summary.problems.append(f"stopped after the upload: {error_text(error)}")
        publish(summary, folder_name, list_patients_in_summary)
        raise FlowRunFailed("; ".join(summary.problems), summary) from error
    publish(summary, folder_name, list_patients_in_summary)
    logger.info(
        "%d orders, %d of %d share links made (share step: %s)",
        len(summary.patient_order_uuids),
        len(summary.share_urls),
        len(summary.shares),
        summary.share_status,
    )
    if summary.problems:
        raise FlowRunFailed("; ".join(summary.problems), summary)
    return summary


def _check_parameters(
    expire_date: dt.date,
    folder_name: str | None,
    parent_folder_uuid: str | None,
    assign_to_user_uuid: str | None,
    assign_to_user_group_uuid: str | None,
) -> list[tuple[TargetKind, str]]:
    """Refuse impossible parameters before any request; return the assignment targets given."""
    for name, value in (
        ("parent_folder_uuid", parent_folder_uuid),
        ("assign_to_user_uuid", assign_to_user_uuid),
        ("assign_to_user_group_uuid", assign_to_user_group_uuid),
    ):
        if value is not None and canonical_uuid(value) is None:
            raise ValueError(f"{name} is not a UUID")
    if parent_folder_uuid and not folder_name:
        raise ValueError("parent_folder_uuid needs a folder_name")
    if expire_date < dt.date.today():
        raise ValueError(f"expire_date {expire_date} is in the past")
    given: list[tuple[TargetKind, str | None]] = [("user", assign_to_user_uuid), ("group", assign_to_user_group_uuid)]
    return [(kind, str(canonical_uuid(value))) for kind, value in given if value]


def summarise_upload(root: Path, tally: UploadTally) -> UploadAndShareSummary:
    """The summary's upload part: counts, the files not stored, and a problem if any could not be sent."""
    counts = count_by(tally.counts.elements(), FILE_STATUSES)
    not_stored = tally.not_stored()
    summary = UploadAndShareSummary(
        directory=str(root),
        total_files=tally.files,
        counts=counts,
        files_not_stored=[
            FileIssue(path=str(entry.path.relative_to(root)), status=entry.status, reason=entry.reason)
            for entry in not_stored
        ],
        studies=[],
        patient_order_uuids=[],
    )
    if counts["failed"]:
        lasting = any(NOT_TRANSIENT in (entry.reason or "") for entry in not_stored if entry.status == "failed")
        remedy = "the files-not-stored table says why; a rerun alone meets it again" if lasting else (
            "run the flow again to retry them")
        summary.problems.append(f"{counts['failed']} files could not be sent ({remedy})")
    return summary
