"""Build steps ``prefect deploy`` runs from ``deployments/prefect.yaml``.

``no_served_deployments`` stops ``prefect deploy`` from taking over the
deployments ``postdicom-flows serve`` registered (same names, no work pool):
it would rewrite them for the workers, and stopping ``serve`` would then
pause them, the nightly schedule included.

``credentials_reference`` turns the name of a saved ``PostDicomCredentials``
block into the ``{"$ref": {"block_document_id": ...}}`` reference the
deployments store as their default ``credentials``:

- a ``block_document_slug`` reference shows "None" in the UI's run form (the
  block picker only recognises ids), so users think they must pick a block;
- an id written literally in ``prefect.yaml`` is replaced by ``prefect deploy``
  with the block's data, password included (it resolves ``$ref`` ids before
  the build steps run), and would differ on every server anyway.

A step's output is templated into the deployment after that resolution, so
the stored parameter is the reference, and the flow run loads the block (with
its password) only when it starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect.exceptions import ObjectNotFound

from .definitions import DEPLOYMENT_NAMES

CREDENTIALS_BLOCK_TYPE = "postdicom-credentials"


def block_reference(block_document_id: Any) -> dict[str, Any]:
    """The parameter value that refers to a saved block by id (what the run form's picker shows)."""
    return {"$ref": {"block_document_id": str(block_document_id)}}


def credentials_reference(block: str) -> dict[str, Any]:
    """``prefect.yaml`` build step: ``{"reference": <$ref by id>}`` for the saved credentials ``block``.

    Parameters
    ----------
    block
        The block's name (``sandbox-demo``) or slug
        (``postdicom-credentials/sandbox-demo``).

    Raises
    ------
    ValueError
        No ``PostDicomCredentials`` block of that name exists on the server
        ``prefect deploy`` talks to.
    """
    from prefect.client.orchestration import get_client

    block_type, _, name = block.rpartition("/")
    if block_type not in ("", CREDENTIALS_BLOCK_TYPE) or not name:
        raise ValueError(f"{block!r} is not a PostDicomCredentials block name (use NAME or {CREDENTIALS_BLOCK_TYPE}/NAME)")
    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(
                name=name, block_type_slug=CREDENTIALS_BLOCK_TYPE, include_secrets=False
            )
        except ObjectNotFound:
            raise ValueError(
                f"No PostDicomCredentials block named {name!r} on this Prefect server: create it first "
                "(Blocks → PostDICOM Credentials in the UI, or 'postdicom-flows demo' for the sandbox's), "
                "or edit the credentials_reference step in deployments/prefect.yaml"
            ) from None
    return {"reference": block_reference(document.id)}


def existing_work_pools(full_names: Iterable[str]) -> dict[str, str | None]:
    """Those of ``full_names`` (``FLOW/DEPLOYMENT``) that exist on the server, with their work pool (None: served)."""
    from prefect.client.orchestration import get_client

    found: dict[str, str | None] = {}
    with get_client(sync_client=True) as client:
        for full_name in full_names:
            try:
                found[full_name] = client.read_deployment_by_name(full_name).work_pool_name
            except ObjectNotFound:
                continue
    return found


def no_served_deployments() -> dict[str, Any]:
    """``prefect.yaml`` build step: refuse to deploy while ``postdicom-flows serve``'s deployments exist.

    Raises
    ------
    ValueError
        Naming each deployment that has no work pool and saying how to go on.
    """
    served = [name for name, pool in existing_work_pools(DEPLOYMENT_NAMES).items() if pool is None]
    if served:
        raise ValueError(
            "these deployments were created by 'postdicom-flows serve' (no work pool): "
            + ", ".join(repr(name) for name in served)
            + ". Deploying them for workers would take them over, and stopping serve would then pause them. "
            "Keep serving from that machine, or stop serve and delete them first "
            "(prefect deployment delete NAME) to deploy for workers."
        )
    return {}
