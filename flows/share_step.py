"""The share step of ``bulk_upload_and_share``: the links, and what became of each one.

**Which links.** ``share_per="all"``: one link for every order; ``"patient"``:
one per patient. That choice holds whatever the number of studies.

**How a link is made.** A link whose order list fits one parameter header
(``POSTDICOM_MAX_HEADER_BYTES``, 8 KiB: about 190 orders) is an order share
(``share_patient_order_with_url``). A larger one (a hospital disk of
thousands of studies) cannot be one order share, and splitting it would hand
the user several links for what they asked as one. Its orders are filed in a
folder made for this link alone (``create_folder``, a new name on every run,
inside the run's folder when there is one, else at the top level), filed
in tasks of 100 orders (``add-orders-to-share-folder``, one AddOrderToFolder
call per order), and that folder is shared
(``share_folder_with_url``): still one link. A folder the user named, or any
folder found by name, is never shared: it may hold other patients' studies,
and a folder link shows everything in the folder when the page is opened.

**What became of it.** Every planned link ends with a status in the summary
and the summary artifact: ``made`` (its URL), ``not_made`` (certainly not on
the server: the call never left, was refused, or was turned away unread with
429 / 503 + ``Retry-After`` until the call's retry budget ran out; or the
folder could not be filled, so nothing was shared), or ``unknown`` (the
answer was lost after the call left, a 5xx: the server may have made it; a
share is never sent again blind, since a repeat makes a second link). Each
comes with what to do. A server or connection failure stops the step: the
links after it are ``not_made`` (not tried); a refused link does not stop the
others. The step never raises: the files' report stays whole, and the flow
ends Failed with it when a link is not made or unknown.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from prefect import task
from pydantic import BaseModel, SecretStr

from blocks import PostDicomCredentials
from postdicom import wire
from postdicom.endpoint_table import SHARE_PATIENT_ORDER_WITH_URL
from postdicom.errors import PostDicomError, is_transient, may_have_acted
from postdicom.models import PatientOrderSummary, ShareAnswer
from tasks import create_folder, share_folder_with_url, share_patient_order_with_url
from tasks.policies import write_task_options

from .reporting import error_text
from .upload_report import ShareLink, ShareStepStatus
from .window import chunked, run_bounded

NOT_MADE_ADVICE = (
    "nothing was made on the server; run the flow again to make it (stored files are skipped, "
    "and links already made are made again)"
)
UNKNOWN_ADVICE = (
    "the link may exist, but the run did not get its URL (the answer was lost or unreadable); look in the "
    "PostDICOM web UI for a share of these studies made at the time of this run before running again "
    "(a rerun makes a second link)"
)
NOT_TRIED = "not tried: the share step stopped after an earlier link failed on a server or connection error"
SHARE_FOLDER_DESCRIPTION = "Made for one share link, which shows all it holds: add nothing; delete once expired."


SHARE_FOLDER_ORDERS_PER_TASK = 100
"""Orders one ``add-orders-to-share-folder`` task files (a task run per order would cost more than the calls)."""


class ShareRequest(BaseModel):
    """Orders that go into one link."""

    patient_id: str | None = None
    patient_order_uuids: list[str]


@dataclass(frozen=True)
class LinkSettings:
    """What every link of the run shares (the password stays a ``SecretStr``)."""

    expire_date: dt.date
    share_password: SecretStr | None
    downloadable: bool


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


def fits_one_order_share(request: ShareRequest, settings: LinkSettings) -> bool:
    """Whether the request's orders fit one SharePatientOrderWithUrl header (encoded in memory, never sent)."""
    row = SHARE_PATIENT_ORDER_WITH_URL
    encoded = wire.encode_parameters(
        row.params,
        {
            "order_uuid_list": request.patient_order_uuids,
            "expire_date": settings.expire_date,
            "share_password": settings.share_password,
            "user_can_download_studies": settings.downloadable,
        },
    )
    return wire.header_size(row.header, wire.header_value(encoded)) <= wire.max_header_bytes()


def make_share_links(
    credentials: PostDicomCredentials,
    requests: Sequence[ShareRequest],
    settings: LinkSettings,
    *,
    run_folder_uuid: str | None,
    concurrency: int,
) -> list[ShareLink]:
    """One link per request, each with its outcome (see the module docstring); never raises."""
    links: list[ShareLink] = []
    stopped = False
    for request in requests:
        if stopped:
            links.append(_failed(request, settings, "not_made", NOT_TRIED))
            continue
        link, error = _make_link(credentials, request, settings, run_folder_uuid, concurrency)
        links.append(link)
        stopped = error is not None and (is_transient(error) or not isinstance(error, PostDicomError))
    return links


def share_step_status(links: Sequence[ShareLink]) -> ShareStepStatus:
    """The step as a whole: any unknown link makes it ``unknown`` (someone must look before a rerun)."""
    statuses = {link.status for link in links}
    if not statuses:
        return "nothing_to_share"
    if statuses == {"made"}:
        return "made"
    if "unknown" in statuses:
        return "unknown"
    return "partly_made" if "made" in statuses else "not_made"


def share_problems(links: Sequence[ShareLink]) -> list[str]:
    """The problems that end the run Failed: links not made, links unknown, with what to do."""
    problems = []
    for status, advice in (("not_made", NOT_MADE_ADVICE), ("unknown", UNKNOWN_ADVICE)):
        count = sum(link.status == status for link in links)
        if count:
            problems.append(f"{count} of {len(links)} share links {status.replace('_', ' ')}: {advice}")
    return problems


def _make_link(
    credentials: PostDicomCredentials,
    request: ShareRequest,
    settings: LinkSettings,
    run_folder_uuid: str | None,
    concurrency: int,
) -> tuple[ShareLink, Exception | None]:
    """Make one link; the link with its outcome, and the error that stopped it (``None`` when made)."""
    folder: tuple[str, str] | None = None
    try:
        if not fits_one_order_share(request, settings):
            folder = _new_share_folder(credentials, request, settings, run_folder_uuid)
            fill_share_folder(credentials, folder[0], request.patient_order_uuids, concurrency=concurrency)
    except Exception as error:  # noqa: BLE001 - nothing was shared: reported as not made, the run goes on to its report
        reason = f"the folder for this link could not be made and filled, so nothing was shared ({error_text(error)})"
        if folder is not None:
            reason += "; a rerun makes a new folder, and this one can be deleted"
        return _failed(request, settings, "not_made", reason, folder), error
    try:
        answer = _send_share(credentials, request, settings, folder)
    except Exception as error:  # noqa: BLE001 - the outcome is reported (made / not made / unknown), never lost
        status = "unknown" if may_have_acted(error) else "not_made"
        return _failed(request, settings, status, error_text(error), folder), error
    if not answer.share_url:
        # A success that names no link: the link was made, but only PostDICOM's web UI can show it.
        return _failed(request, settings, "unknown", "the server answered success without the link's URL", folder), None
    return _made(request, settings, answer, folder), None


def _new_share_folder(
    credentials: PostDicomCredentials, request: ShareRequest, settings: LinkSettings, run_folder_uuid: str | None
) -> tuple[str, str]:
    """A new, empty folder for one link: ``(uuid, name)``.

    The name is new on every run (date, expiry, a random token; no patient
    data), so the client's look-before-create can only find the folder an
    earlier attempt of this same call made, never someone else's.
    """
    name = (
        f"Share {dt.date.today().isoformat()} until {settings.expire_date.isoformat()} "
        f"({len(request.patient_order_uuids)} orders, {uuid.uuid4().hex[:8]})"
    )
    created = create_folder(
        credentials,
        folder_name=name,
        folder_description=SHARE_FOLDER_DESCRIPTION,
        parent_folder_uuid=run_folder_uuid,
    )
    return str(created.folder_uuid), name


@task(name="add-orders-to-share-folder", **write_task_options(idempotent=True))
def add_orders_to_share_folder(order_uuids: list[str], folder_uuid: str, credentials: PostDicomCredentials) -> int:
    """File a chunk of orders in a link's folder: one AddOrderToFolder call each; returns how many were new.

    Adding an order a folder already holds changes nothing, so Prefect may
    run the whole task again after a transient failure.
    """
    with credentials.get_client() as client:
        answers = [client.add_order_to_folder(order_uuid, [folder_uuid]) for order_uuid in order_uuids]
    return sum(bool(answer.added_folder_uuid_list) for answer in answers)


def fill_share_folder(
    credentials: PostDicomCredentials, folder_uuid: str, order_uuids: Sequence[str], *, concurrency: int
) -> int:
    """Every order in the link's folder, in tasks of :data:`SHARE_FOLDER_ORDERS_PER_TASK`; any failure raises."""
    added = run_bounded(
        lambda chunk: add_orders_to_share_folder.submit(chunk, folder_uuid, credentials),
        chunked(list(order_uuids), SHARE_FOLDER_ORDERS_PER_TASK),
        concurrency=concurrency,
    )
    return sum(added)


def _send_share(
    credentials: PostDicomCredentials, request: ShareRequest, settings: LinkSettings, folder: tuple[str, str] | None
) -> ShareAnswer:
    """The one create of the link: an order share, or the share of its folder."""
    if folder is None:
        return share_patient_order_with_url(
            credentials,
            order_uuid_list=request.patient_order_uuids,
            expire_date=settings.expire_date,
            share_password=settings.share_password,
            user_can_download_studies=settings.downloadable,
        )
    return share_folder_with_url(
        credentials,
        folder_uuid=folder[0],
        share_password=settings.share_password,
        share_title=f"{len(request.patient_order_uuids)} shared studies",
        expire_date=settings.expire_date,
        user_can_download_studies=settings.downloadable,
    )


def _made(
    request: ShareRequest, settings: LinkSettings, answer: ShareAnswer, folder: tuple[str, str] | None
) -> ShareLink:
    return ShareLink(
        status="made",
        share_url=str(answer.share_url),
        share_uuid=answer.share_uuid,
        patient_id=request.patient_id,
        patient_order_uuids=request.patient_order_uuids,
        folder_uuid=folder[0] if folder else None,
        folder_name=folder[1] if folder else None,
        expire_date=answer.expire_date or settings.expire_date,
        password_protected=(
            answer.password_protected
            if answer.password_protected is not None
            else settings.share_password is not None
        ),
        downloadable=answer.downloadable if answer.downloadable is not None else settings.downloadable,
    )


def _failed(
    request: ShareRequest,
    settings: LinkSettings,
    status: str,
    reason: str,
    folder: tuple[str, str] | None = None,
) -> ShareLink:
    return ShareLink(
        status="unknown" if status == "unknown" else "not_made",
        patient_id=request.patient_id,
        patient_order_uuids=request.patient_order_uuids,
        folder_uuid=folder[0] if folder else None,
        folder_name=folder[1] if folder else None,
        expire_date=settings.expire_date,
        password_protected=settings.share_password is not None,
        downloadable=settings.downloadable,
        reason=reason,
        what_to_do=_advice(status, folder),
    )


def _advice(status: str, folder: tuple[str, str] | None) -> str:
    """What to do about a link not made or unknown; a folder link is looked for by its folder's name."""
    if status != "unknown":
        return NOT_MADE_ADVICE
    if folder is None:
        return UNKNOWN_ADVICE
    return UNKNOWN_ADVICE.replace("a share of these studies", f"a share of the folder '{folder[1]}'")
