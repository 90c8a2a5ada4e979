"""The folder of ``bulk_upload_and_share``: found by its exact name or created, then filled with the run's orders.

A folder the user names may be reused by later runs and may hold other
patients' studies; the share step never shares it (see :mod:`flows.share_step`,
which makes a folder of its own when it needs one).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from prefect import get_run_logger

from blocks import PostDicomCredentials
from postdicom.models import AddOrderToFolderAnswer
from tasks import add_order_to_folder, create_folder, search_folder

from .orders import canonical_uuid, fresh
from .window import run_bounded


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
