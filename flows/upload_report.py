"""What ``bulk_upload_and_share`` reports: the summary model, its Markdown, and the run's artifacts.

The summary is returned, carried by ``FlowRunFailed.report`` when the run ends
Failed, and shown as artifacts. It always holds the per-file accounting,
whatever happened after the upload (finding orders, the folder, assignment,
the share step), so a run that stops late still says where every file is.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field, computed_field

from .assignment import ASSIGNMENT_STATUSES, RowResult
from .reporting import count_by, md

ShareStatus = Literal["made", "not_made", "unknown"]
"""One link: ``made`` (its URL is known), ``not_made`` (certainly not on the server), ``unknown`` (may exist)."""

ShareStepStatus = Literal["made", "partly_made", "not_made", "unknown", "nothing_to_share", "not_reached"]
"""The share step as a whole (see :attr:`UploadAndShareSummary.share_status`)."""


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
    """One share link the run set out to make, and what became of it (never its password)."""

    status: ShareStatus = Field(default="made", description="made, not_made, or unknown (the link may exist).")
    share_url: str | None = Field(default=None, description="Set when the link was made.")
    share_uuid: str | None = None
    patient_id: str | None = Field(default=None, description="Set when share_per='patient'.")
    patient_order_uuids: list[str]
    folder_uuid: str | None = Field(
        default=None, description="The folder made for this link alone when its orders did not fit one order share."
    )
    folder_name: str | None = None
    expire_date: dt.date | None = None
    password_protected: bool
    downloadable: bool
    reason: str | None = Field(default=None, description="Why the link is not made or unknown.")
    what_to_do: str | None = Field(default=None, description="What to do about a link not made or unknown.")


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
    shares: list[ShareLink] = Field(default_factory=list, description="Every link planned, whatever its status.")
    share_status: ShareStepStatus = Field(
        default="not_reached",
        description=(
            "made: every link made; partly_made: some made, the others certainly not; not_made: none made;"
            " unknown: some link may exist (its answer was lost); nothing_to_share: no order to share;"
            " not_reached: the run stopped before the share step."
        ),
    )
    problems: list[str] = Field(default_factory=list, description="Why the run ends Failed, if it does.")

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented pattern; mypy cannot see it
    @property
    def share_urls(self) -> list[str]:
        """The links made, alone, for whoever only needs to pass them on."""
        return [link.share_url for link in self.shares if link.status == "made" and link.share_url]


def _link_line(number: int, link: ShareLink, list_patients: bool) -> str:
    """One Markdown line per planned link: its URL when made, else its status, reason and what to do."""
    if link.patient_id is None:
        who = f"link {number}: "
    else:
        who = f"patient {md(link.patient_id)}: " if list_patients else f"link {number}, one patient: "
    count = len(link.patient_order_uuids)
    orders = f"{count} order" if count == 1 else f"{count} orders"
    if link.folder_uuid:
        orders += f" in folder {md(link.folder_name)} (`{link.folder_uuid}`, made for this link alone)"
    if link.status == "made":
        protection = "password protected" if link.password_protected else "no password"
        return (
            f"- {who}<{link.share_url}> ({orders}, expires {link.expire_date}, {protection}, "
            f"downloadable: {'yes' if link.downloadable else 'no'})"
        )
    state = "**not made**" if link.status == "not_made" else "**unknown** (the link may exist)"
    return f"- {who}{state} ({orders}): {md(link.reason)}. What to do: {md(link.what_to_do)}."


NO_LINK = {
    "nothing_to_share": "No link was made: there is no patient order to share.",
    "not_reached": "No link was made: the run stopped before the share step (see Problems).",
}


def summary_markdown(summary: UploadAndShareSummary, folder_name: str | None, list_patients: bool) -> str:
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
    lines += ["", "## Share links", "", f"Share step: **{summary.share_status.replace('_', ' ')}**", ""]
    if summary.share_status in NO_LINK:
        lines.append(NO_LINK[summary.share_status])
    lines += [_link_line(number, link, list_patients) for number, link in enumerate(summary.shares, start=1)]
    if summary.problems:
        lines += ["", "## Problems", ""] + [f"- {md(problem)}" for problem in summary.problems]
    return "\n".join(lines) + "\n"


def publish(summary: UploadAndShareSummary, folder_name: str | None, list_patients: bool) -> None:
    """The run's artifacts: the summary with the link(s), and the files not stored when there are any."""
    if summary.files_not_stored:
        create_table_artifact(
            table=[issue.model_dump() for issue in summary.files_not_stored],
            key="upload-and-share-files-not-stored",
            description=f"{len(summary.files_not_stored)} of {summary.total_files} files not stored",
        )
    create_markdown_artifact(
        markdown=summary_markdown(summary, folder_name, list_patients),
        key="upload-and-share-summary",
        description=f"Upload and share: counts, folder, share links ({summary.share_status.replace('_', ' ')})",
    )
