"""``bulk_upload_and_share``: put a hospital's disk on PostDICOM and hand someone a link.

The steps are the ones a person would do by hand (upload, find the orders the
studies became, file them in a folder, assign them, share them), written so
that running the flow again is always safe: the upload first asks the server
which instances it already holds and sends only the rest, the orders are found
again by their StudyInstanceUID, the folder is searched by name before one is
created, and orders already in the folder or already assigned are left alone.
A crash half-way is fixed by running the same flow again.

The share password is treated as the one secret of the run: it travels as a
``SecretStr`` (which Prefect stores masked) or as the name of a Prefect
``Secret`` block, is unwrapped only inside the task that creates the links,
and never reaches a log line, an artifact, the summary or an error message.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.futures import PrefectFuture
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.artifacts import update_progress_artifact
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from pydantic import BaseModel, Field, SecretStr, computed_field
from pydantic.json_schema import SkipJsonSchema

from blocks import PostDicomCredentials
from postdicom.models import AddOrderToFolderAnswer, PatientOrderListAnswer, PatientOrderSummary
from postdicom.upload import STATUSES as FILE_STATUSES
from postdicom.upload import FileEntry, upload_files, walk_regular_files
from tasks import (
    add_order_to_folder,
    create_folder,
    get_patient_order_list,
    qido_search,
    search_folder,
    share_patient_order_with_url,
)
from tasks.policies import write_task_options

from .assets import materialize_account_studies
from .assignment import (
    ASSIGNMENT_STATUSES,
    AssignmentCandidate,
    RowResult,
    TargetKind,
    assign_orders_batch,
    plan_assignments,
)
from .orders import canonical_uuid, fresh, orders_by_uuid
from .forms import ACCOUNT, form
from .reporting import FlowRunFailed, count_by, md, run_name_or
from .window import bounded_task_runner, chunked, run_bounded

MASK = "**********"
"""How Prefect writes a ``SecretStr`` it stores (a password equal to this arrived masked)."""
STOW_FILES_PER_REQUEST = 20
ORDER_LOOKUP_ATTEMPTS = 3
"""Looks for the orders of just-stored studies: a real account may index a study a moment after STOW answered.

Not an error retry (the answer is a success that lacks the order, which no
retry layer sees): studies already found are not asked for again.
"""
ORDER_LOOKUP_PAUSE = 2.0
"""Seconds before the second look, growing linearly."""


class FileIssue(BaseModel):
    """A file that is not (yet) on the server, and why."""

    path: str = Field(description="Path relative to the uploaded directory.")
    status: str
    reason: str


class StudyOrder(BaseModel):
    """A study found in the directory and the patient order it became on the server."""

    study_instance_uid: str
    patient_id: str | None = None
    patient_order_uuid: str | None = None
    institution_uuid: str | None = None


class ShareLink(BaseModel):
    """One share link created by the run (never its password)."""

    share_url: str
    share_uuid: str | None = None
    patient_id: str | None = Field(default=None, description="Set when share_per='patient'.")
    patient_order_uuids: list[str]
    expire_date: dt.date | None = None
    password_protected: bool
    downloadable: bool


class UploadAndShareSummary(BaseModel):
    """What the run did; returned, and shown as the run's artifacts."""

    directory: str
    total_files: int
    counts: dict[str, int] = Field(description="Files per upload status.")
    files_not_stored: list[FileIssue]
    studies: list[StudyOrder]
    patient_order_uuids: list[str]
    folder_uuid: str | None = None
    folder_created: bool = False
    orders_added_to_folder: int = 0
    assignments: list[RowResult] = Field(default_factory=list)
    shares: list[ShareLink] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="Why the run ends Failed, if it does.")

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented pattern; mypy cannot see it
    @property
    def share_urls(self) -> list[str]:
        """The links alone, for whoever only needs to pass them on."""
        return [link.share_url for link in self.shares]


# --------------------------------------------------------------------- upload


def list_directory(directory: str | Path) -> list[Path]:
    """Every regular file under ``directory``; a clear error before any request if there is nothing to do."""
    root = Path(directory).expanduser()
    if not root.exists():
        raise ValueError(f"directory does not exist: {str(root)!r}")
    if not root.is_dir():
        raise ValueError(f"directory is not a folder: {str(root)!r}")
    files = list(walk_regular_files(root))
    if not files:
        raise ValueError(f"directory holds no files: {str(root)!r}")
    return files


@task(name="upload-files-batch", **write_task_options(idempotent=True))
def upload_files_batch(batch: list[Path], credentials: PostDicomCredentials) -> list[FileEntry]:
    """Classify, pre-check and STOW one batch of files; one entry per file, in order.

    The pre-check (one QIDO per series of the batch) is what makes a rerun
    cheap and honest: instances the server holds are reported
    ``already_stored`` and not sent again. Repeating the whole task is harmless
    for the same reason, so Prefect may retry it on a transient error.
    """
    with credentials.get_client() as client:
        report = upload_files(client, batch, batch_size=STOW_FILES_PER_REQUEST, concurrency=1)
    return report.files


def error_text(error: BaseException) -> str:
    """Class and message of an error, short (the client's messages hold no query values or patient data)."""
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    return text if len(text) <= 300 else text[:297] + "..."


def upload_all(
    files: Sequence[Path],
    credentials: PostDicomCredentials,
    *,
    batch_size: int,
    concurrency: int,
) -> list[FileEntry]:
    """Upload ``files`` in batched tasks, with a progress artifact that moves as batches finish.

    A file that could not be sent (after the client's and the task's retries)
    is reported ``failed``: running the flow again sends it (the pre-check
    skips everything stored), so no extra pass is made here.
    """
    # Called from a sync flow, Prefect's dispatcher returns the id itself, not a coroutine.
    progress_id = cast(UUID, create_progress_artifact(
        progress=0.0, key="upload-and-share-progress", description=f"Uploading {len(files)} files"
    ))
    done = 0

    def on_done(index: int, entries: list[FileEntry]) -> None:
        nonlocal done
        done += len(entries)
        update_progress_artifact(progress_id, progress=round(100.0 * done / len(files), 1))

    planned = chunked(list(files), batch_size)

    def not_confirmed(index: int, error: Exception) -> list[FileEntry]:
        reason = f"not confirmed stored: {error_text(error)}; run the flow again (files already stored are skipped)"
        return [FileEntry(path=path, status="failed", reason=reason) for path in planned[index]]

    batches = run_bounded(
        lambda batch: upload_files_batch.submit(batch, credentials),
        planned,
        concurrency=concurrency,
        on_done=on_done,
        on_error=not_confirmed,
    )
    update_progress_artifact(progress_id, progress=100.0, description=f"Uploaded {len(files)} files")
    return [entry for entries in batches for entry in entries]


# --------------------------------------------------------------------- orders


def patient_of_study(credentials: PostDicomCredentials, study_uid: str) -> PrefectFuture[list[dict[str, Any]]]:
    """Submit the QIDO search (the documented ``qido_search`` task) for the PatientID the server stored."""
    return fresh(qido_search).submit(
        credentials, filters={"StudyInstanceUID": study_uid}, level="study", fields=["PatientID"]
    )


def orders_of_patient(credentials: PostDicomCredentials, patient_id: str) -> PrefectFuture[PatientOrderListAnswer]:
    """Submit the order-list read (the documented ``get_patient_order_list`` task) filtered by one patient."""
    return fresh(get_patient_order_list).submit(credentials, institution_uuid_list=[], patient_id=patient_id or None)


def find_orders_of_studies(
    credentials: PostDicomCredentials, study_uids: Sequence[str], *, concurrency: int
) -> list[PatientOrderSummary]:
    """The patient orders holding ``study_uids``, in the order of ``study_uids`` (missing ones left out).

    QIDO gives each study's PatientID as the server stored it; the order list
    filtered by that patient is then matched on StudyInstanceUid exactly.
    Studies not found at once are looked for again (see
    :data:`ORDER_LOOKUP_ATTEMPTS`).
    """
    found: dict[str, PatientOrderSummary] = {}
    missing = list(dict.fromkeys(study_uids))
    for attempt in range(ORDER_LOOKUP_ATTEMPTS):
        if attempt:
            time.sleep(ORDER_LOOKUP_PAUSE * attempt)
        patients: dict[str, None] = {}
        for matches in run_bounded(lambda uid: patient_of_study(credentials, uid), missing, concurrency=concurrency):
            for match in matches:
                values = (match.get("00100020") or {}).get("Value") or [""]
                patients[str(values[0])] = None
        wanted = set(missing)
        for answer in run_bounded(
            lambda patient: orders_of_patient(credentials, patient), list(patients), concurrency=concurrency
        ):
            for order in answer.patient_order_list:
                if order.study_instance_uid in wanted:
                    found[order.study_instance_uid] = order
        missing = [uid for uid in missing if uid not in found]
        if not missing:
            break
    return [found[uid] for uid in study_uids if uid in found]


# --------------------------------------------------------------------- folder


@dataclass
class FolderInUse:
    """The folder the run files its orders in."""

    folder_uuid: str
    created: bool
    order_uuids: set[str]


_FOLDER_LOCKS: dict[tuple[str, str, str, str], threading.Lock] = {}
_FOLDER_LOCKS_GUARD = threading.Lock()


def folder_lock(credentials: PostDicomCredentials, folder_name: str, parent_folder_uuid: str | None) -> threading.Lock:
    """One lock per account, parent and folder name in this process (the key stays in memory only)."""
    key = (credentials.web_address, credentials.username, canonical_uuid(parent_folder_uuid) or "", folder_name.strip())
    with _FOLDER_LOCKS_GUARD:
        return _FOLDER_LOCKS.setdefault(key, threading.Lock())


def find_or_create_folder(
    credentials: PostDicomCredentials, folder_name: str, parent_folder_uuid: str | None
) -> FolderInUse:
    """The folder named ``folder_name`` under the parent, created (``create_folder``) only if missing.

    Folder names are not unique on the server and ``search_folder`` matches
    substrings, so its answer is filtered to the exact name and parent; when
    several folders match (made by hand, or by two runs racing), the first
    listed is used and the others are left alone. A lost answer of the create
    is the client's concern: it looks before sending it again.

    Runs in one process (threads, a served deployment's concurrent runs) find
    or create the same folder one at a time (:func:`folder_lock`), so they
    never make two. Across processes nothing can prevent it (the API has no
    unique names and no conditional create): two processes starting at once
    with a slow search can each create one; later runs use the first listed.
    """
    with folder_lock(credentials, folder_name, parent_folder_uuid):
        return _find_or_create_folder(credentials, folder_name, parent_folder_uuid)


def _find_or_create_folder(
    credentials: PostDicomCredentials, folder_name: str, parent_folder_uuid: str | None
) -> FolderInUse:
    answer = fresh(search_folder)(
        credentials, parent_folder_uuid=parent_folder_uuid, folder_name=folder_name, get_orders_in_folder=True
    )
    matches = [folder for folder in answer.folder_list if folder.is_named(folder_name, parent_folder_uuid)]
    if len(matches) > 1:
        get_run_logger().warning("%d folders share this name and parent; using the first", len(matches))
    if matches:
        inside = {canonical_uuid(uuid_) for uuid_ in matches[0].patient_order_uuid_list or []}
        return FolderInUse(str(matches[0].folder_uuid), False, {uuid_ for uuid_ in inside if uuid_})
    created = create_folder(credentials, folder_name=folder_name, parent_folder_uuid=parent_folder_uuid)
    return FolderInUse(str(created.folder_uuid), True, set())


def add_orders_to_folder(
    credentials: PostDicomCredentials, folder_uuid: str, order_uuids: Sequence[str], *, concurrency: int
) -> int:
    """Put each order in the folder (one ``add_order_to_folder`` run each); returns how many were newly added."""
    answers: list[AddOrderToFolderAnswer] = run_bounded(
        lambda order_uuid: add_order_to_folder.submit(
            credentials, patient_order_uuid=order_uuid, folder_uuid_list=[folder_uuid]
        ),
        list(order_uuids),
        concurrency=concurrency,
    )
    return sum(bool(answer.added_folder_uuid_list) for answer in answers)


# --------------------------------------------------------------------- shares


class ShareRequest(BaseModel):
    """Orders that go into one link."""

    patient_id: str | None = None
    patient_order_uuids: list[str]


def create_share_links(
    credentials: PostDicomCredentials,
    requests: list[ShareRequest],
    expire_date: dt.date,
    share_password: SecretStr | None,
    downloadable: bool,
) -> list[ShareLink]:
    """One ``share_patient_order_with_url`` run per request; the password travels as a ``SecretStr``.

    Order shares rather than a folder share: a reused folder may hold other
    patients' studies, and a folder link would show them too.
    """
    links: list[ShareLink] = []
    for request in requests:
        answer = share_patient_order_with_url(
            credentials,
            order_uuid_list=request.patient_order_uuids,
            expire_date=expire_date,
            share_password=share_password,
            user_can_download_studies=downloadable,
        )
        links.append(
            ShareLink(
                share_url=str(answer.share_url),
                share_uuid=answer.share_uuid,
                patient_id=request.patient_id,
                patient_order_uuids=request.patient_order_uuids,
                expire_date=answer.expire_date or expire_date,
                password_protected=(
                    answer.password_protected if answer.password_protected is not None else share_password is not None
                ),
                downloadable=answer.downloadable if answer.downloadable is not None else downloadable,
            )
        )
    return links


def share_requests(orders: Sequence[PatientOrderSummary], share_per: str) -> list[ShareRequest]:
    """Group the orders into links: everything in one, or one per patient."""
    if not orders:
        return []
    if share_per == "all":
        return [ShareRequest(patient_order_uuids=[str(order.patient_order_uuid) for order in orders])]
    by_patient: dict[str, list[str]] = {}
    for order in orders:
        by_patient.setdefault(order.patient_id or "", []).append(str(order.patient_order_uuid))
    return [ShareRequest(patient_id=patient, patient_order_uuids=uuids) for patient, uuids in by_patient.items()]


# --------------------------------------------------------------------- secret handling


def resolve_share_password(
    share_password: Secret | SecretStr | str | None, share_password_block: str | None
) -> SecretStr | None:
    """The share password from the parameter (a ``Secret`` block, or text) or a ``Secret`` block's name, never both."""
    if isinstance(share_password, Secret):
        share_password = SecretStr(str(share_password.get()))
    elif isinstance(share_password, str):
        share_password = SecretStr(share_password)
    if share_password is not None and share_password_block:
        raise ValueError("give share_password or share_password_block, not both")
    if share_password_block:
        value = cast(Secret, Secret.load(share_password_block)).get()  # sync call: the block, not a coroutine
        share_password = SecretStr(str(value))
    if share_password is None:
        return None
    text = share_password.get_secret_value()
    if text == MASK:
        raise ValueError(
            "share_password arrived masked (it was stored by Prefect, e.g. for a deployment run): "
            "save it in a Prefect Secret block and pass the block's name as share_password_block"
        )
    if not text:
        raise ValueError("share_password is empty; leave it unset for a link without password")
    return share_password


def mask_stored_password() -> None:
    """Make sure the flow run's stored parameters show the share password masked.

    Prefect stores call parameters as JSON and masks only values that are
    ``SecretStr`` objects at call time: a caller passing a plain string, or a
    run form, would leave the password readable in the run's parameters. The
    run rewrites its own stored copy with the mask before doing anything else.
    """
    run_id = flow_run.id
    if run_id is None:
        return
    with get_client(sync_client=True) as prefect_client:
        stored = dict(prefect_client.read_flow_run(UUID(str(run_id))).parameters or {})
        if stored.get("share_password") not in (None, MASK):
            stored["share_password"] = MASK
            prefect_client.update_flow_run(UUID(str(run_id)), parameters=stored)


# --------------------------------------------------------------------- flow


@run_name_or("upload")
def _run_name() -> str:
    """``upload-<folder or directory name>-until-<expire date>``: tells runs apart in the UI."""
    parameters = flow_run.parameters or {}
    label = parameters.get("folder_name") or Path(str(parameters.get("directory") or "")).name or "disk"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(label)).strip("-") or "disk"
    return f"upload-{slug}-until-{parameters.get('expire_date')}"


def _markdown(summary: UploadAndShareSummary, folder_name: str | None, list_patients: bool) -> str:
    """The summary artifact; patient IDs appear only when ``list_patients`` (a link number does otherwise)."""
    lines = ["# Upload and share", "", f"Directory: `{md(summary.directory)}` ({summary.total_files} files)", ""]
    if not summary.files_not_stored:
        lines += ["Every file is on the server.", ""]
    lines += ["| status | files |", "|---|---|"]
    lines += [f"| {status} | {count} |" for status, count in summary.counts.items()]
    lines += ["", f"Studies: {len(summary.studies)}; patient orders: {len(summary.patient_order_uuids)}"]
    if summary.folder_uuid:
        how = "created" if summary.folder_created else "reused"
        lines.append(
            f"Folder: {md(folder_name)} ({how}, `{summary.folder_uuid}`), "
            f"{summary.orders_added_to_folder} orders added"
        )
    if summary.assignments:
        counts = count_by((row.status for row in summary.assignments), ASSIGNMENT_STATUSES)
        lines.append("Assignments: " + ", ".join(f"{status} {n}" for status, n in counts.items()))
    lines += ["", "## Share links", ""]
    if not summary.shares:
        lines.append("No link was created (no patient order to share).")
    for number, link in enumerate(summary.shares, start=1):
        if link.patient_id is None:
            who = ""
        else:
            who = f"patient {md(link.patient_id)}: " if list_patients else f"link {number}, one patient: "
        protection = "password protected" if link.password_protected else "no password"
        lines.append(
            f"- {who}<{link.share_url}> ({len(link.patient_order_uuids)} orders, "
            f"expires {link.expire_date}, {protection}, downloadable: {'yes' if link.downloadable else 'no'})"
        )
    if summary.problems:
        lines += ["", "## Problems", ""] + [f"- {md(problem)}" for problem in summary.problems]
    return "\n".join(lines) + "\n"


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
        str | None, form("Folder", "File the orders in this folder (reused if it exists, else created); empty: none.")
    ] = None,
    parent_folder_uuid: Annotated[
        str | None, form("Parent folder UUID", "Parent of that folder; empty: top level.")
    ] = None,
    share_per: Annotated[
        Literal["all", "patient"], form("One link per", "'all': one link for everything; 'patient': one per patient.")
    ] = "all",
    assign_to_user_uuid: Annotated[
        str | None, form("Assign to user UUID", "Assign every uploaded order to this user; empty: no assignment.")
    ] = None,
    assign_to_user_group_uuid: Annotated[
        str | None, form("Assign to group UUID", "Assign every uploaded order to this user group; empty: none.")
    ] = None,
    batch_size: Annotated[int, form("Files per task", "Files one upload task sends.", ge=1, le=5000)] = 100,
    concurrency: Annotated[int, form("Concurrency", "Upload tasks (and lookups) running at once.", ge=1, le=16)] = 4,
    share_password_block: Annotated[
        str | None, form("Share password block", "Name of a Prefect Secret block holding the share password.")
    ] = None,
    list_patients_in_summary: Annotated[
        bool,
        form("Patient IDs in summary", "Name each per-patient link's patient ID in the summary artifact (stored)."),
    ] = False,
) -> UploadAndShareSummary:
    """Upload every DICOM file under ``directory``, file the orders, and create share link(s).

    Safe to run again: only what is missing is uploaded, the same orders are
    found, the folder (``folder_name`` under ``parent_folder_uuid``) is reused,
    orders already filed or assigned are left as they are. Each run creates
    new share links (the service offers no way to find earlier ones).
    ``share_password`` protects the links: a ``SecretStr`` (or text) in
    Python; for deployment runs only a Prefect ``Secret`` block, so the
    password is never stored in the run's parameters.
    Files go in tasks of ``batch_size`` files, ``concurrency`` at once. The
    run ends Failed, with the summary still written and in the raised error's
    ``report``, when a file could not be sent, a stored study has no order,
    or an assignment failed; rejected and non-DICOM files are only listed.
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

    entries = upload_all(files, credentials, batch_size=batch_size, concurrency=concurrency)
    summary = summarise_upload(Path(directory).expanduser(), entries)
    materialize_account_studies(credentials, summary.counts)
    logger.info("upload: %s", ", ".join(f"{n} {status}" for status, n in summary.counts.items() if n))
    try:
        orders = locate_orders(credentials, entries, summary, concurrency=concurrency)
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
        summary.shares = create_share_links(
            credentials, share_requests(orders, share_per), expire_date, password, downloadable
        )
    except Exception as error:
        summary.problems.append(f"stopped after the upload: {error_text(error)}")
        _publish(summary, folder_name, list_patients_in_summary)
        raise FlowRunFailed("; ".join(summary.problems), summary) from error
    _publish(summary, folder_name, list_patients_in_summary)
    logger.info("%d orders, %d share links", len(summary.patient_order_uuids), len(summary.shares))
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


def summarise_upload(root: Path, entries: Sequence[FileEntry]) -> UploadAndShareSummary:
    """The summary's upload part: counts, the files not stored, and a problem if any could not be sent."""
    counts = count_by((entry.status for entry in entries), FILE_STATUSES)
    summary = UploadAndShareSummary(
        directory=str(root),
        total_files=len(entries),
        counts=counts,
        files_not_stored=[
            FileIssue(path=str(entry.path.relative_to(root)), status=entry.status, reason=entry.reason)
            for entry in entries
            if entry.status not in ("stored", "already_stored")
        ],
        studies=[],
        patient_order_uuids=[],
    )
    if counts["failed"]:
        summary.problems.append(f"{counts['failed']} files could not be sent (run the flow again to retry them)")
    return summary


def locate_orders(
    credentials: PostDicomCredentials,
    entries: Sequence[FileEntry],
    summary: UploadAndShareSummary,
    *,
    concurrency: int,
) -> list[PatientOrderSummary]:
    """Find the order of every study with a file on the server; record them (and any missing) in ``summary``."""
    study_uids = list(
        dict.fromkeys(
            entry.study_instance_uid
            for entry in entries
            if entry.status in ("stored", "already_stored") and entry.study_instance_uid
        )
    )
    orders = find_orders_of_studies(credentials, study_uids, concurrency=concurrency) if study_uids else []
    by_study = {order.study_instance_uid: order for order in orders}
    for uid in study_uids:
        order = by_study.get(uid)
        summary.studies.append(
            StudyOrder(
                study_instance_uid=uid,
                patient_id=order.patient_id if order else None,
                patient_order_uuid=canonical_uuid(order.patient_order_uuid) if order else None,
                institution_uuid=canonical_uuid(order.institution_uuid) if order else None,
            )
        )
    summary.patient_order_uuids = [study.patient_order_uuid for study in summary.studies if study.patient_order_uuid]
    if len(by_study) < len(study_uids):
        summary.problems.append(f"{len(study_uids) - len(by_study)} stored studies have no patient order on the server")
    return orders


def assign_orders(
    credentials: PostDicomCredentials,
    orders: Sequence[PatientOrderSummary],
    targets: Sequence[tuple[TargetKind, str]],
) -> list[RowResult]:
    """Assign every order to each target, through the same compare-then-send path as batch_reassignment."""
    by_uuid = orders_by_uuid(list(orders))
    candidates = [
        AssignmentCandidate(row=number, patient_order_uuid=order_uuid, target=kind, target_uuid=target)
        for number, (order_uuid, kind, target) in enumerate(
            ((order_uuid, kind, target) for order_uuid in by_uuid for kind, target in targets), start=1
        )
    ]
    to_send, decided = plan_assignments(candidates, by_uuid, dry_run=False)
    sent = assign_orders_batch(to_send, credentials, None) if to_send else []
    return sorted(decided + sent, key=lambda row: row.row)


def _publish(summary: UploadAndShareSummary, folder_name: str | None, list_patients: bool) -> None:
    """The run's artifacts: the summary with the link(s), and the files not stored when there are any."""
    if summary.files_not_stored:
        create_table_artifact(
            table=[issue.model_dump() for issue in summary.files_not_stored],
            key="upload-and-share-files-not-stored",
            description=f"{len(summary.files_not_stored)} of {summary.total_files} files not stored",
        )
    create_markdown_artifact(
        markdown=_markdown(summary, folder_name, list_patients),
        key="upload-and-share-summary",
        description="Upload and share: counts, folder, share links",
    )
