"""``postdicom-flows setup``: prepare a Prefect server for the workers' way of deploying.

Run it once per server (again after an upgrade: it only creates or updates):

- registers the ``PostDicomCredentials`` block type, so the UI can create one;
- creates the process work pool ``prefect.yaml`` deploys to;
- installs the automation that marks a flow run Crashed when its heartbeats
  stop (Prefect's documented remedy for "zombie" runs, docs.prefect.io →
  Advanced → Detect zombie flows). Without it a run whose machine died stays
  Running for ever: it cannot be cancelled (Cancelling never ends) nor retried;
- installs the freshness automation: after each materialization of an exported
  table (``prefect.asset.materialization.succeeded`` of an asset whose upstream
  is a ``postdicom://`` account, see ``flows/assets.py``), expect the next one
  within ``--fresh-within`` hours (default 26: a night plus two hours for the
  run); when none comes, the automation fires once per table: a
  ``prefect.automation.triggered`` event in the Event Feed, and a notification
  when ``--notify-block`` names a notification block.

Heartbeats come from the flow-run process every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``
seconds; ``prefect.yaml`` and ``postdicom-flows serve`` set it to
:data:`~deployments.definitions.HEARTBEAT_SECONDS` (``RUN_ENV`` there). The automation fires when none arrived for
``--crash-after`` seconds. Every flow run on the server that sends heartbeats
is watched, so that window must be longer than the slowest heartbeat of any of
them: Prefect's own default is 180 s, hence the default of 240 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .definitions import HEARTBEAT_SECONDS, POOL_NAME

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

CRASH_AFTER_ENV = "POSTDICOM_CRASH_AFTER_SECONDS"
DEFAULT_CRASH_AFTER_SECONDS = 240
MIN_CRASH_AFTER_SECONDS = HEARTBEAT_SECONDS + 10
ZOMBIE_AUTOMATION_NAME = "postdicom-flows: crash flow runs without heartbeats"
FRESHNESS_AUTOMATION_NAME = "postdicom-flows: exported table not refreshed"
FRESH_WITHIN_ENV = "POSTDICOM_FRESH_WITHIN_HOURS"
DEFAULT_FRESH_WITHIN_HOURS = 26.0
"""Hours from one export's materialization to the next before the alert: 24 h between nights, 2 h for the run."""
MIN_FRESH_WITHIN_SECONDS = 10
MAX_FRESH_WITHIN_HOURS = 24 * 31
MATERIALIZED = "prefect.asset.materialization.succeeded"
ZOMBIE_CRASH_MESSAGE = (
    "Flow run marked as crashed due to missing heartbeats: its worker or machine was probably lost. "
    "Retry it (it resumes safely) or start a new run."
)


def zombie_automation(crash_after_seconds: float = DEFAULT_CRASH_AFTER_SECONDS) -> AutomationCore:
    """Prefect's "Crash zombie flows" automation, with the window ``crash_after_seconds``.

    The shape is the one Prefect documents: after each ``prefect.flow-run.heartbeat``
    of a flow run, expect another heartbeat or a final state of the same run
    within the window; if none comes (proactive posture), set the run Crashed.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=ZOMBIE_AUTOMATION_NAME,
        description=(
            f"Marks a flow run Crashed when no heartbeat arrived for {crash_after_seconds:g} s "
            "(installed by 'postdicom-flows setup')."
        ),
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=crash_after_seconds),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=ZOMBIE_CRASH_MESSAGE)],
    )


def _number_option(value: str | float | None, env: str, default: float, must_be: str) -> float:
    """``value``, else ``$env``, else ``default``, as a number; ``must_be`` (what it must be) names it in the error."""
    raw = value if value is not None else os.environ.get(env, default)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{must_be}, got {raw!r}") from None


def crash_after_seconds(value: str | float | None = None) -> float:
    """The automation's window: ``value``, else ``$POSTDICOM_CRASH_AFTER_SECONDS``, else 240 s; checked."""
    seconds = _number_option(
        value, CRASH_AFTER_ENV, DEFAULT_CRASH_AFTER_SECONDS, "the crash-after window must be a number of seconds"
    )
    if seconds < MIN_CRASH_AFTER_SECONDS:
        raise ValueError(
            f"the crash-after window ({seconds:g} s) must be at least {MIN_CRASH_AFTER_SECONDS} s: "
            f"flow runs send a heartbeat every {HEARTBEAT_SECONDS} s, a shorter window would crash healthy runs"
        )
    return seconds


def freshness_automation(
    within: timedelta = timedelta(hours=DEFAULT_FRESH_WITHIN_HOURS),
    notification_block_id: UUID | None = None,
    name: str = FRESHNESS_AUTOMATION_NAME,
) -> AutomationCore:
    """The alert for a missing night: after a table's materialization, expect the next one ``within``.

    The same pattern as the zombie automation (one event both starts and
    satisfies the window), per asset key (``for_each``), so each table of each
    destination is watched on its own and a missing night fires once per
    table, then stays quiet until that table is exported again. Only the
    export's tables match: their events name a ``postdicom://`` account as an
    upstream asset (uploads materialize the account itself, with no upstream).
    Action: none but the automation's own ``prefect.automation.triggered``
    event (Event Feed; payload ``triggering_labels`` names the table's key),
    plus a notification through ``notification_block_id`` when given.
    """
    from prefect.events.actions import DoNothing, SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    window = _duration(within)
    actions: list[Any] = [DoNothing()]
    if notification_block_id is not None:
        actions = [
            SendNotification(
                block_document_id=notification_block_id,
                subject="postdicom-flows: an exported table was not refreshed",
                body=(
                    "No export materialized {{ event.resource.id }} within "
                    f"{window} of its previous export (last at {{{{ event.occurred }}}})."
                ),
            )
        ]
    return AutomationCore(
        name=name,
        description=(
            f"Fires when an exported table (orders, studies, series, tags) was not materialized again within "
            f"{window} of its previous export: a missing night. The alert is this automation's 'Automation "
            "triggered' event in the Event Feed, its payload naming the table (installed by 'postdicom-flows setup' or 'serve')."
        ),
        trigger=EventTrigger(
            after={MATERIALIZED},
            expect={MATERIALIZED},
            match_related=ResourceSpecification({"prefect.resource.role": "asset", "prefect.resource.id": "postdicom://*"}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=actions,
    )


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    return f"{seconds:g} s" if seconds < 3600 else f"{seconds / 3600:g} h"


def fresh_within_hours(value: str | float | None = None) -> float:
    """The freshness window: ``value``, else ``$POSTDICOM_FRESH_WITHIN_HOURS``, else 26 h; checked."""
    hours = _number_option(
        value, FRESH_WITHIN_ENV, DEFAULT_FRESH_WITHIN_HOURS, "the freshness window must be a number of hours"
    )
    if not MIN_FRESH_WITHIN_SECONDS <= hours * 3600 <= MAX_FRESH_WITHIN_HOURS * 3600:
        raise ValueError(
            f"the freshness window ({hours:g} h) must be between {MIN_FRESH_WITHIN_SECONDS} s "
            f"(Prefect's minimum for a proactive trigger) and {MAX_FRESH_WITHIN_HOURS} h (31 days)"
        )
    return hours


async def install_automation(automation: AutomationCore) -> str:
    """Create ``automation``, or update the one of the same name (deleting duplicates); "created" or "updated"."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        existing = await client.read_automations_by_name(automation.name)
        if existing:
            await client.update_automation(existing[0].id, automation)
            for duplicate in existing[1:]:
                await client.delete_automation(duplicate.id)
            return "updated"
        await client.create_automation(automation)
    return "created"


async def install_zombie_automation(crash_after: float) -> str:
    """Create the zombie-run automation, or update the one of the same name; returns what was done."""
    done = await install_automation(zombie_automation(crash_after))
    return f"{done} automation {ZOMBIE_AUTOMATION_NAME!r} (crash after {crash_after:g} s without heartbeat)"


async def notification_block_id(slug: str) -> UUID:
    """The id of the saved notification block ``TYPE/NAME`` (e.g. ``slack-webhook/on-call``); a clear error if none."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    block_type, _, block_name = slug.partition("/")
    if not block_type or not block_name:
        raise ValueError(f"--notify-block must be TYPE/NAME (e.g. slack-webhook/on-call), got {slug!r}")
    async with get_client() as client:
        try:
            document = await client.read_block_document_by_name(block_name, block_type)
        except ObjectNotFound:
            raise ValueError(f"no saved block {slug!r}: create it in the UI (Blocks) first") from None
    return document.id


async def install_freshness_automation(fresh_within: float, notify_block: str | None = None) -> str:
    """Create or update the freshness automation (``fresh_within`` hours); returns what was done."""
    block_id = await notification_block_id(notify_block) if notify_block else None
    done = await install_automation(freshness_automation(timedelta(hours=fresh_within), block_id))
    notify = f", notifying {notify_block!r}" if notify_block else ", an event in the Event Feed"
    return f"{done} automation {FRESHNESS_AUTOMATION_NAME!r} (a table not refreshed within {fresh_within:g} h{notify})"


async def ensure_process_pool(name: str) -> str:
    """Create the process work pool ``name`` with the process worker's default job template, unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="postdicom-flows: start workers with 'prefect worker start --pool " + name + "'",
                )
            )
            return f"created process work pool {name!r}"
    if pool.type != "process":
        raise ValueError(f"work pool {name!r} exists with type {pool.type!r}; prefect.yaml expects a 'process' pool")
    return f"work pool {name!r} already exists"


async def run_setup(
    pool: str = POOL_NAME,
    crash_after: float = DEFAULT_CRASH_AFTER_SECONDS,
    fresh_within: float = DEFAULT_FRESH_WITHIN_HOURS,
    notify_block: str | None = None,
) -> list[str]:
    """Register the block type, ensure the work pool and both automations; one line per thing done."""
    from blocks import PostDicomCredentials

    await PostDicomCredentials.aregister_type_and_schema()
    done = ["registered block type 'PostDICOM Credentials'"]
    done.append(await ensure_process_pool(pool))
    done.append(await install_zombie_automation(crash_after))
    done.append(await install_freshness_automation(fresh_within, notify_block))
    return done


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postdicom-flows setup",
        description=(
            "Prepare the Prefect server PREFECT_API_URL points at: register the credentials block type, "
            "create the process work pool, the automation that marks runs without heartbeats Crashed and the "
            "one that fires when an exported table was not refreshed. "
            "Safe to run again."
        ),
    )
    parser.add_argument("--pool", default=POOL_NAME, help="name of the process work pool (default %(default)s)")
    parser.add_argument(
        "--crash-after",
        default=None,
        help=(
            f"seconds without a heartbeat after which a running flow run is marked Crashed "
            f"(default ${CRASH_AFTER_ENV} or {DEFAULT_CRASH_AFTER_SECONDS}; at least {MIN_CRASH_AFTER_SECONDS}; "
            "must exceed the heartbeat interval of every flow run on the server)"
        ),
    )
    parser.add_argument(
        "--fresh-within",
        default=None,
        help=(
            f"hours from one export of a table to the next before the freshness automation fires "
            f"(default ${FRESH_WITHIN_ENV} or {DEFAULT_FRESH_WITHIN_HOURS:g}: a night plus two hours)"
        ),
    )
    parser.add_argument(
        "--notify-block",
        default=None,
        help="also notify through this saved notification block, TYPE/NAME (e.g. slack-webhook/on-call)",
    )
    return parser


def no_server(why: str) -> bool:
    """True, after saying how to point this shell at a server (``why`` first), when ``PREFECT_API_URL`` is unset."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return False
    print(
        f"{why}\nStart one in another terminal and point this shell at it:\n"
        "  prefect server start\n"
        "  prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api",
        file=sys.stderr,
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if no_server("postdicom-flows setup prepares a Prefect server (PREFECT_API_URL is not set)."):
        return 2
    try:
        window = crash_after_seconds(args.crash_after)
        done = asyncio.run(run_setup(args.pool, window, fresh_within_hours(args.fresh_within), args.notify_block))
    except ValueError as exc:
        print(f"postdicom-flows setup: {exc}", file=sys.stderr)
        return 2
    for line in done:
        print(f"  {line}")
    print(
        "Next, from the repository root:\n"
        "  prefect deploy --all --prefect-file deployments/prefect.yaml\n"
        f"  prefect worker start --pool {args.pool}"
    )
    return 0
