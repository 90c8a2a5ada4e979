"""Build steps ``prefect deploy`` runs from ``deployments/prefect.yaml``.

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

from typing import Any

from prefect.exceptions import ObjectNotFound

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
