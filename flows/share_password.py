"""The share password of ``bulk_upload_and_share``: where it comes from, and keeping it out of Prefect's records.

It travels as a ``SecretStr`` (which Prefect stores masked) or as a Prefect
``Secret`` block, is unwrapped only where a link is created, and never
reaches a log line, an artifact, the summary or an error message.
"""

from __future__ import annotations

from typing import cast
from uuid import UUID

from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from pydantic import SecretStr

MASK = "**********"
"""How Prefect writes a ``SecretStr`` it stores (a password equal to this arrived masked)."""


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
