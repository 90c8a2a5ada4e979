"""Prefect server objects the flows create for themselves (today: the global concurrency limit)."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


def ensure_concurrency_limit(name: str, slots: int) -> None:
    """Create the global concurrency limit ``name`` with ``slots`` if it does not exist.

    An existing limit is left as its operator set it: it is shared by every run
    of the flow, which is the point (two runs together stay within it).
    """
    with get_client(sync_client=True) as prefect_client:
        try:
            prefect_client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                prefect_client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=max(1, slots))
                )
            except ObjectAlreadyExists:
                pass


def has_prefect_server() -> bool:
    """True when runs report to a Prefect server (``PREFECT_API_URL`` set), False with the ephemeral API.

    The ephemeral API runs no background services, so nothing ever expires a
    concurrency lease there: the slots of a killed run would stay taken forever.
    """
    return bool(get_current_settings().api.url)
