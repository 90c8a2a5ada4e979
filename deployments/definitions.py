"""The deployments both ways describe: ``postdicom-flows serve`` and ``deployments/prefect.yaml``.

``serve`` builds its deployments from this table. ``prefect.yaml`` is a plain
file that ``prefect deploy`` reads and cannot import Python, so it repeats the
same values; ``tests/test_deployments.py`` checks every field of it against
this table, so a description, tag, schedule, work pool or job variable changed
in one place only fails the tests instead of showing two versions of a
deployment in the UI (or runs that behave differently either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

POOL_NAME = "postdicom-pool"
"""The process work pool ``prefect.yaml``'s deployments run on (``postdicom-flows setup`` creates it)."""
WORK_QUEUE = "default"
HEARTBEAT_SECONDS = 30
"""Seconds between a flow run's heartbeats, for the deployments of this project (Prefect's minimum)."""
RUN_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
"""The environment every flow run gets: ``prefect.yaml``'s job variables, and ``serve``'s own process
(which runs the flows in it). Heartbeats let ``postdicom-flows setup``'s automation mark a run whose
machine was lost Crashed."""


@dataclass(frozen=True)
class DeploymentDefinition:
    """One flow's deployment, as the UI lists it."""

    flow_name: str
    """The flow's Prefect name (``@flow(name=...)``)."""
    name: str
    """The deployment's name: the server knows it as ``flow_name/name``."""
    description: str
    tags: tuple[str, ...]
    nightly: bool
    """Runs on the nightly cron (:data:`NIGHTLY_CRON` in :data:`NIGHTLY_TIMEZONE` unless changed);
    the others have no schedule and are started from the UI."""

    @property
    def job_variables(self) -> dict[str, Any]:
        """The work pool's job variables of this deployment in ``prefect.yaml``: its runs' environment."""
        return {"env": dict(RUN_ENV)}


NIGHTLY_CRON = "0 2 * * *"
NIGHTLY_TIMEZONE = "Europe/Madrid"
CREDENTIALS_BLOCK = "sandbox-demo"
"""The saved ``PostDicomCredentials`` block every deployment defaults to (the one ``postdicom-flows demo`` saves)."""

DEPLOYMENTS = (
    DeploymentDefinition(
        flow_name="nightly-order-export",
        name="nightly-export",
        description="Orders, studies, series and tags of the previous day to Parquet, "
        "on its schedule (by default every night at 02:00).",
        tags=("postdicom", "export", "scheduled"),
        nightly=True,
    ),
    DeploymentDefinition(
        flow_name="bulk-upload-and-share",
        name="upload-and-share",
        description="Upload a folder of studies and share them with a link (run it from the UI's form).",
        tags=("postdicom", "upload", "ad-hoc"),
        nightly=False,
    ),
    DeploymentDefinition(
        flow_name="batch-reassignment",
        name="reassignment",
        description="Assign orders to users or user groups, from rows, a CSV/Parquet file or a selection.",
        tags=("postdicom", "reassignment", "ad-hoc"),
        nightly=False,
    ),
    DeploymentDefinition(
        flow_name="check-account",
        name="check-account",
        description="postdicom-flows check: a read-only tour of the account and how each answer was read.",
        tags=("postdicom", "check", "ad-hoc"),
        nightly=False,
    ),
)
DEFINITION_OF_FLOW = {definition.flow_name: definition for definition in DEPLOYMENTS}
DEPLOYMENT_NAMES = tuple(f"{definition.flow_name}/{definition.name}" for definition in DEPLOYMENTS)
"""The deployments as ``FLOW/DEPLOYMENT``, the full names the server knows them by (what the guards check)."""
