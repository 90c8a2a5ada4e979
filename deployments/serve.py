"""``postdicom-flows serve``: the deployments served from one process.

This is the single-machine way to schedule the work: no work pool, no worker,
just one long-lived process that both holds the nightly schedule and runs
whatever is started from the Prefect UI. For several machines use
``deployments/prefect.yaml`` with a process work pool and workers instead
(see the README); both describe the same deployments, listed once in
``deployments/definitions.py``. Like
``postdicom-flows setup``, it installs (or updates) the automation that fires
when an exported table was not refreshed within ``--fresh-within`` hours.

The credentials are referenced, never copied: the deployment's stored
parameters hold ``{"$ref": {"block_document_id": ...}}`` (which the run form's
block picker shows as the default) and the flow run loads the block (with its
password) only when it starts.

The two ways must not share deployments: ``prefect.serve`` would take over the
work-pool deployments of the same names (their worker runs then fail, and
stopping serve pauses them). ``serve`` therefore refuses to start when a
deployment of the same name exists on a work pool, and says how to resolve it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .definitions import CREDENTIALS_BLOCK, DEFINITION_OF_FLOW, NIGHTLY_CRON, NIGHTLY_TIMEZONE, RUN_ENV
from .prefect_dual import synchronous_result
from .setup import FRESH_WITHIN_ENV, fresh_within_hours, install_freshness_automation, no_server

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

DEFAULT_EXPORT_DESTINATION = "./demo-data/export"


def check_timezone(timezone: str) -> str:
    """Fail at start-up on a misspelt zone: Prefect would only notice when it computes the next run."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r} (use an IANA name such as 'Europe/Madrid')") from exc
    return timezone


def credentials_parameter(credentials: Any) -> dict[str, Any]:
    """The stored default for ``credentials``: a reference to the saved block by id, never its data."""
    from .steps import block_reference

    block_document_id = getattr(credentials, "_block_document_id", None)
    if block_document_id is None:
        raise ValueError("the default credentials must be a saved block (PostDicomCredentials.load(NAME))")
    return block_reference(block_document_id)


def deployments_owned_by_work_pools(deployments: Sequence[RunnerDeployment]) -> list[str]:
    """Those of ``deployments`` that already exist on the server on a work pool (made by ``prefect deploy``).

    ``prefect.serve`` would update them in place; one line per deployment says
    which pool it belongs to.
    """
    from .steps import existing_work_pools

    pools = existing_work_pools(f"{deployment.flow_name}/{deployment.name}" for deployment in deployments)
    return [f"'{full_name}' (work pool {pool!r})" for full_name, pool in pools.items() if pool]


def build_deployments(
    timezone: str = NIGHTLY_TIMEZONE,
    cron: str = NIGHTLY_CRON,
    *,
    credentials: Any = None,
    destination: str | None = None,
) -> list[RunnerDeployment]:
    """The three flows' deployments (the export on a cron in ``timezone``, the other two ad hoc) and ``check-account``.

    ``credentials`` (a saved ``PostDicomCredentials``, optional) becomes the
    default ``credentials`` parameter of all four, as a reference by block id,
    so the scheduled export can run unattended and the UI's run forms show the
    block pre-selected; without it the form asks for a block. ``destination`` is the export's default destination.
    The export's ``time_zone`` parameter is set to the schedule's zone, so
    "yesterday" is the day that just ended where the cron fires. Names,
    descriptions, tags and which one is scheduled come from
    ``deployments/definitions.py``, the table ``prefect.yaml`` is checked against.
    """
    from prefect.schedules import Cron

    from flows import batch_reassignment, bulk_upload_and_share, nightly_order_export
    from flows.check import check_account

    schedule = Cron(cron, timezone=check_timezone(timezone))
    common: dict[str, Any] = {} if credentials is None else {"credentials": credentials_parameter(credentials)}
    export_parameters: dict[str, Any] = {**common, "time_zone": timezone}
    if destination is not None:
        export_parameters["destination"] = destination
    deployments = []
    for flow in (nightly_order_export, bulk_upload_and_share, batch_reassignment, check_account):
        definition = DEFINITION_OF_FLOW[flow.name]
        deployments.append(
            synchronous_result(
                flow.to_deployment(
                    name=definition.name,
                    schedules=[schedule] if definition.nightly else None,
                    parameters=dict(export_parameters if flow is nightly_order_export else common),
                    description=definition.description,
                    tags=list(definition.tags),
                )
            )
        )
    return deployments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postdicom-flows serve",
        description=(
            "Serve the deployments from this process: the nightly export on a cron, "
            "upload-and-share, reassignment and check-account ad hoc from the Prefect UI. Runs until interrupted."
        ),
    )
    parser.add_argument("--timezone", default=NIGHTLY_TIMEZONE, help="IANA time zone of the cron (default %(default)s)")
    parser.add_argument("--cron", default=NIGHTLY_CRON, help="when the export runs (default '%(default)s')")
    parser.add_argument(
        "--credentials",
        default=CREDENTIALS_BLOCK,
        help="name of a saved PostDicomCredentials block used by default (default %(default)s; '' for none)",
    )
    parser.add_argument(
        "--destination",
        default=DEFAULT_EXPORT_DESTINATION,
        help="the export's destination: a folder or an fsspec URL such as s3://bucket/prefix (default %(default)s)",
    )
    parser.add_argument("--limit", type=int, default=4, help="flow runs executed at the same time (default %(default)s)")
    parser.add_argument(
        "--fresh-within",
        default=None,
        help=f"hours between two exports of a table before the freshness automation fires (default ${FRESH_WITHIN_ENV} or 26)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Build the deployments and serve them; the ephemeral API is refused because nobody could reach its UI."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from prefect import serve

    if no_server("postdicom-flows serve needs a Prefect server to register with and to show the UI."):
        return 2
    credentials = None
    if args.credentials:
        from blocks import PostDicomCredentials

        try:
            credentials = PostDicomCredentials.load(args.credentials)
        except ValueError as exc:
            print(
                f"No PostDicomCredentials block named {args.credentials!r}: create it in the UI "
                "(Blocks → PostDICOM Credentials) or run 'postdicom-flows demo' for the sandbox's.\n"
                f"({exc})",
                file=sys.stderr,
            )
            return 2
    try:
        deployments = build_deployments(
            timezone=args.timezone, cron=args.cron, credentials=credentials, destination=args.destination
        )
        fresh_within = fresh_within_hours(args.fresh_within)
    except ValueError as exc:
        print(f"postdicom-flows serve: {exc}", file=sys.stderr)
        return 2
    taken = deployments_owned_by_work_pools(deployments)
    if taken:
        print(
            "postdicom-flows serve: these deployments were created by 'prefect deploy' for workers:\n  "
            + "\n  ".join(taken)
            + "\nServing them from here would take them over (their worker runs would then fail, and stopping "
            "serve would pause them). Keep using the workers, or delete those deployments first "
            "(prefect deployment delete NAME) to serve from this machine instead.",
            file=sys.stderr,
        )
        return 2
    print(f"  {asyncio.run(install_freshness_automation(fresh_within))}")
    for name, value in RUN_ENV.items():  # the served flows run in this process
        os.environ.setdefault(name, value)
    serve(*deployments, limit=args.limit)
    return 0
