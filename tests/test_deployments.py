"""The deployments load: prefect.yaml, ``postdicom-flows serve``'s objects, and the block type.

A deployment that does not load is only discovered at 02:00 by a worker; these
tests find the broken entrypoint, the unparsable schedule or the parameter the
flow does not accept while the change is still on the developer's screen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.server.schemas.schedules import CronSchedule
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate

import flows
from deployments import serve
from deployments.definitions import HEARTBEAT_SECONDS
from deployments.definitions import CREDENTIALS_BLOCK, DEFINITION_OF_FLOW, NIGHTLY_CRON, NIGHTLY_TIMEZONE
from flows.check import check_account

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"
PREFECT = str(Path(sys.executable).with_name("prefect"))

FLOW_OF_DEPLOYMENT = {
    DEFINITION_OF_FLOW[flow.name].name: flow
    for flow in (flows.nightly_order_export, flows.bulk_upload_and_share, flows.batch_reassignment, check_account)
}


@pytest.fixture
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Entrypoints are relative to the repository root, as for ``prefect deploy``."""
    monkeypatch.chdir(REPO)
    yield REPO


def _yaml() -> dict[str, Any]:
    return yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))


def _next_runs(cron: str, timezone: str, n: int = 3, start: dt.date = dt.date(2026, 6, 1)) -> list[dt.datetime]:
    """The next run times from noon of ``start`` on, as the Prefect server computes them."""
    schedule = CronSchedule(cron=cron, timezone=timezone)
    begin = dt.datetime.combine(start, dt.time(12, 0), tzinfo=ZoneInfo(timezone))
    return asyncio.run(schedule.get_dates(n=n, start=begin))


def _api_env() -> dict[str, str]:
    """Environment for a ``prefect`` CLI subprocess talking to the test harness's server."""
    from prefect.settings import PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PWD"] = str(REPO)
    return env


# --- prefect.yaml -------------------------------------------------------------------


def test_prefect_yaml_declares_the_three_deployments_on_one_process_pool() -> None:
    config = _yaml()
    names = [d["name"] for d in config["deployments"]]
    assert sorted(names) == sorted(FLOW_OF_DEPLOYMENT)
    pools = {d["work_pool"]["name"] for d in config["deployments"]}
    assert pools == {"postdicom-pool"}


@pytest.mark.parametrize("name", sorted(FLOW_OF_DEPLOYMENT))
def test_prefect_yaml_entrypoint_imports_the_flow(name: str, at_repo_root: Path) -> None:
    deployment = next(d for d in _yaml()["deployments"] if d["name"] == name)
    path, _, function = deployment["entrypoint"].partition(":")
    assert (at_repo_root / path).is_file(), f"{deployment['entrypoint']} does not exist"
    loaded = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    assert isinstance(loaded, Flow)
    assert loaded.name == FLOW_OF_DEPLOYMENT[name].name
    schema = parameter_schema(loaded).model_dump_for_openapi()
    assert "credentials" in schema["properties"]
    assert "credentials" in schema.get("required", []), "a run without an account cannot do anything"


@pytest.mark.parametrize("name", sorted(FLOW_OF_DEPLOYMENT))
def test_prefect_yaml_parameters_fit_the_flow_schema(name: str, at_repo_root: Path) -> None:
    deployment = next(d for d in _yaml()["deployments"] if d["name"] == name)
    loaded = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    schema = parameter_schema(loaded).model_dump_for_openapi()
    parameters = dict(deployment.get("parameters") or {})
    assert set(parameters) <= set(schema["properties"]), "a parameter the flow does not take"
    assert parameters.pop("credentials") == "{{ credentials.reference }}", "the build step's block reference"
    errors = validate(parameters, schema, raise_on_error=False, ignore_required=True)
    assert errors == [], [e.message for e in errors]


def test_prefect_yaml_resolves_the_credentials_block_id_in_a_build_step_and_sets_heartbeats() -> None:
    """A slug reference shows "None" in the run form; an id written in the file would be inlined by deploy."""
    from deployments.definitions import POOL_NAME

    config = _yaml()
    guard, step = config["build"]
    assert guard == {"deployments.steps.no_served_deployments": {}}, "first: refuse to take over serve's deployments"
    assert step == {"deployments.steps.credentials_reference": {"id": "credentials", "block": CREDENTIALS_BLOCK}}
    for deployment in config["deployments"]:
        assert deployment["work_pool"]["name"] == POOL_NAME, "the pool postdicom-flows setup creates"
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_SECONDS), deployment["name"]


def test_prefect_yaml_export_runs_at_two_in_its_time_zone_and_the_others_are_ad_hoc() -> None:
    by_name = {d["name"]: d for d in _yaml()["deployments"]}
    (schedule,) = by_name["nightly-export"]["schedules"]
    assert schedule["cron"] == "0 2 * * *"
    ZoneInfo(schedule["timezone"])
    runs = _next_runs(schedule["cron"], schedule["timezone"])
    assert [r.astimezone(ZoneInfo(schedule["timezone"])).time() for r in runs] == [dt.time(2, 0)] * 3
    assert by_name["nightly-export"]["parameters"]["time_zone"] == schedule["timezone"], "yesterday must be the cron's"
    # null, not []: a redeploy with [] warns (FutureWarning) that it keeps the schedules anyway.
    assert by_name["upload-and-share"]["schedules"] is None
    assert by_name["reassignment"]["schedules"] is None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("around", [dt.date(2026, 3, 26), dt.date(2026, 10, 22)])
def test_nightly_cron_runs_once_per_local_day_across_daylight_saving_changes(around: dt.date) -> None:
    """02:00 does not exist in Madrid on the last Sunday of March and happens twice in October.

    The export must still run exactly once each night (at 03:00 on the
    spring-forward night), or a day would be missing or exported twice.
    """
    runs = _next_runs("0 2 * * *", "Europe/Madrid", n=7, start=around)
    local = [run.astimezone(ZoneInfo("Europe/Madrid")) for run in runs]
    days = [moment.date() for moment in local]
    assert days == [around + dt.timedelta(days=k) for k in range(1, 8)]
    assert all(moment.hour in (2, 3) for moment in local)


def test_prefect_yaml_never_inlines_a_block_placeholder() -> None:
    """``{{ prefect.blocks.… }}`` would copy the block's password into the deployment."""
    config = _yaml()
    assert not [s for s in _strings(config["deployments"]) if "prefect.blocks." in s]


# --- postdicom-flows serve ----------------------------------------------------------


def test_build_deployments_returns_the_three_with_the_export_scheduled() -> None:
    built = serve.build_deployments(timezone="America/New_York", cron="0 2 * * *")
    by_name = {d.name: d for d in built}
    assert sorted(by_name) == sorted(FLOW_OF_DEPLOYMENT)
    for name, deployment in by_name.items():
        assert deployment.flow_name == FLOW_OF_DEPLOYMENT[name].name
        assert "credentials" in deployment._parameter_openapi_schema.properties
    (export_schedule,) = by_name["nightly-export"].schedules
    assert export_schedule.schedule.cron == "0 2 * * *"
    assert export_schedule.schedule.timezone == "America/New_York"
    runs = _next_runs(export_schedule.schedule.cron, export_schedule.schedule.timezone)
    assert [r.astimezone(ZoneInfo("America/New_York")).hour for r in runs] == [2, 2, 2]
    assert by_name["nightly-export"].parameters["time_zone"] == "America/New_York"
    assert not by_name["upload-and-share"].schedules
    assert not by_name["reassignment"].schedules


def test_build_deployments_takes_another_cron_and_the_export_destination() -> None:
    built = serve.build_deployments(timezone="Asia/Tokyo", cron="30 5 * * 1-5", destination="s3://bucket/exports")
    export = next(d for d in built if d.name == "nightly-export")
    (schedule,) = export.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("30 5 * * 1-5", "Asia/Tokyo")
    assert export.parameters["destination"] == "s3://bucket/exports"
    runs = _next_runs(schedule.schedule.cron, schedule.schedule.timezone, n=5)
    assert all(r.astimezone(ZoneInfo("Asia/Tokyo")).weekday() < 5 for r in runs)


@pytest.mark.parametrize(
    ("timezone", "cron", "message"),
    [("Europe/Madird", "0 2 * * *", "time zone"), ("Europe/Madrid", "0 2 * *", "cron")],
)
def test_build_deployments_refuses_a_bad_zone_or_cron(timezone: str, cron: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        serve.build_deployments(timezone=timezone, cron=cron)


def test_serve_refuses_to_run_without_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    """The ephemeral API dies with the process and has no UI: serving on it would show nothing."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert serve.main(["--credentials", ""]) == 2
    assert "prefect server start" in capsys.readouterr().err


# --- against a real Prefect server ---------------------------------------------------


def test_block_register_cli_registers_the_credentials_type(prefect_harness: None) -> None:
    from prefect import get_client

    from blocks import PostDicomCredentials

    result = subprocess.run(
        [PREFECT, "--no-prompt", "block", "register", "-m", "blocks"],
        env=_api_env(),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully registered 1 block" in result.stdout

    async def read() -> tuple[Any, Any]:
        async with get_client() as client:
            block_type = await client.read_block_type_by_slug("postdicom-credentials")
            schema = await client.read_block_schema_by_checksum(
                PostDicomCredentials._calculate_schema_checksum()
            )
            return block_type, schema

    block_type, schema = asyncio.run(read())
    assert block_type.name == "PostDICOM Credentials"
    assert schema.block_type_id == block_type.id
    fields = schema.fields["properties"]
    assert {"username", "password", "web_address", "dialect"} <= set(fields)
    assert fields["password"]["format"] == "password"
    assert schema.fields["secret_fields"] == ["password"]


def test_prefect_deploy_all_registers_three_deployments_without_the_password(
    prefect_harness: None, at_repo_root: Path
) -> None:
    """The real ``prefect deploy --all``; the stored parameters keep only a reference to the block."""
    from prefect import get_client
    from prefect.blocks.core import Block
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from blocks import PostDicomCredentials

    secret = "deploy-test-s3cret-password"
    PostDicomCredentials(
        username="deploy@example.org", password=secret, web_address="http://127.0.0.1:9/dicomweb"
    ).save("sandbox-demo", overwrite=True)

    async def create_pool() -> None:
        async with get_client() as client:
            try:
                await client.create_work_pool(WorkPoolCreate(name="postdicom-pool", type="process"))
            except ObjectAlreadyExists:
                pass

    asyncio.run(create_pool())
    result = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML)],
        env=_api_env(),
        cwd=at_repo_root,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            found = {}
            for name, flow_object in FLOW_OF_DEPLOYMENT.items():
                found[name] = await client.read_deployment_by_name(f"{flow_object.name}/{name}")
            return found

    deployments = asyncio.run(read())
    export = deployments["nightly-export"]
    (schedule,) = export.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", "Europe/Madrid")
    assert export.work_pool_name == "postdicom-pool"
    assert not deployments["upload-and-share"].schedules
    assert not deployments["reassignment"].schedules
    for name, deployment in deployments.items():
        assert secret not in deployment.model_dump_json(), f"{name} stored the password"
        assert deployment.parameter_openapi_schema["properties"]["credentials"]
        credentials = Block.load_from_ref(deployment.parameters["credentials"]["$ref"])
        assert isinstance(credentials, PostDicomCredentials)
        assert credentials.password.get_secret_value() == secret


# --- postdicom-flows setup: work pool, block type, zombie-run automation ---------------


def test_zombie_automation_has_the_shape_prefect_documents() -> None:
    """docs.prefect.io, "Detect zombie flows": after a heartbeat, expect another or a final state in time."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import Posture

    from deployments.setup import ZOMBIE_AUTOMATION_NAME, zombie_automation

    automation = zombie_automation(300)
    trigger = automation.trigger
    assert automation.name == ZOMBIE_AUTOMATION_NAME and automation.enabled
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.expect == {
        "prefect.flow-run.heartbeat",
        "prefect.flow-run.Completed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.Cancelled",
        "prefect.flow-run.Crashed",
    }
    assert trigger.match.model_dump() == {"prefect.resource.id": ["prefect.flow-run.*"]}
    assert trigger.for_each == {"prefect.resource.id"}
    assert (trigger.posture, trigger.threshold) == (Posture.Proactive, 1)
    assert trigger.within == dt.timedelta(seconds=300)
    (action,) = automation.actions
    assert isinstance(action, ChangeFlowRunState) and action.state == StateType.CRASHED
    assert "missing heartbeats" in action.message


def test_crash_after_window_comes_from_the_option_the_environment_or_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from deployments import setup

    monkeypatch.delenv(setup.CRASH_AFTER_ENV, raising=False)
    assert setup.crash_after_seconds() == setup.DEFAULT_CRASH_AFTER_SECONDS == 240
    monkeypatch.setenv(setup.CRASH_AFTER_ENV, "600")
    assert setup.crash_after_seconds() == 600
    assert setup.crash_after_seconds("90") == 90
    with pytest.raises(ValueError, match="at least 40 s"):
        setup.crash_after_seconds("30")
    with pytest.raises(ValueError, match="number of seconds, got 'soon'"):
        setup.crash_after_seconds("soon")
    assert setup.main(["--crash-after", "10"]) == 2


def test_setup_refuses_to_run_without_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments import setup

    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert setup.main([]) == 2
    assert "PREFECT_API_URL" in capsys.readouterr().err


def test_setup_creates_the_pool_and_one_automation_and_updates_it_when_run_again(
    prefect_harness: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect import get_client

    from deployments import setup

    assert setup.main(["--pool", "setup-test-pool", "--crash-after", "300"]) == 0
    first = capsys.readouterr().out
    assert "created process work pool 'setup-test-pool'" in first
    assert setup.main(["--pool", "setup-test-pool", "--crash-after", "120"]) == 0
    assert "already exists" in capsys.readouterr().out

    async def read() -> tuple[Any, list[Any], Any]:
        async with get_client() as client:
            pool = await client.read_work_pool("setup-test-pool")
            automations = await client.read_automations_by_name(setup.ZOMBIE_AUTOMATION_NAME)
            block_type = await client.read_block_type_by_slug("postdicom-credentials")
            return pool, automations, block_type

    pool, automations, block_type = asyncio.run(read())
    assert pool.type == "process"
    assert "env" in pool.base_job_template["variables"]["properties"], "the process worker's job template"
    assert len(automations) == 1, "a second setup must not add a second automation"
    assert automations[0].trigger.within == dt.timedelta(seconds=120)
    assert block_type.name == "PostDICOM Credentials"


# --- the credentials reference: by block id, for the run form's block picker ------------


def test_credentials_reference_step_returns_the_saved_block_by_id(prefect_harness: None) -> None:
    from blocks import PostDicomCredentials
    from deployments.steps import credentials_reference

    PostDicomCredentials(
        username="ref@example.org", password="ref-step-secret", web_address="http://127.0.0.1:9/dicomweb"
    ).save("ref-step-test", overwrite=True)
    block_id = PostDicomCredentials.load("ref-step-test")._block_document_id
    expected = {"reference": {"$ref": {"block_document_id": str(block_id)}}}
    assert credentials_reference("ref-step-test") == expected
    assert credentials_reference("postdicom-credentials/ref-step-test") == expected
    assert "ref-step-secret" not in repr(expected)
    with pytest.raises(ValueError, match="No PostDicomCredentials block named 'no-such-block'"):
        credentials_reference("no-such-block")
    with pytest.raises(ValueError, match="not a PostDicomCredentials block name"):
        credentials_reference("secret/ref-step-test")


def test_serve_stores_the_credentials_as_a_reference_by_id(prefect_harness: None) -> None:
    from blocks import PostDicomCredentials

    unsaved = PostDicomCredentials(username="u@example.org", password="x", web_address="http://127.0.0.1:9/dicomweb")
    with pytest.raises(ValueError, match="saved block"):
        serve.build_deployments(credentials=unsaved)
    unsaved.save("serve-ref-test", overwrite=True)
    saved = PostDicomCredentials.load("serve-ref-test")
    for deployment in serve.build_deployments(credentials=saved):
        assert deployment.parameters["credentials"] == {"$ref": {"block_document_id": str(saved._block_document_id)}}


def test_serve_refuses_to_take_over_deployments_made_by_prefect_deploy(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Serving a work-pool deployment rewrites it in place: its worker runs then crash, stopping serve pauses it."""
    import prefect
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from blocks import PostDicomCredentials
    from deployments.setup import ensure_process_pool

    PostDicomCredentials(
        username="serve@example.org", password="serve-test-pw", web_address="http://127.0.0.1:9/dicomweb"
    ).save("serve-collision-test", overwrite=True)
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "")  # restored to unset afterwards
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY")
    served: list[Any] = []
    monkeypatch.setattr(prefect, "serve", lambda *deployments, **kwargs: served.extend(deployments))

    async def reset(with_pool_deployment: bool) -> None:
        async with get_client() as client:
            for name, flow_object in FLOW_OF_DEPLOYMENT.items():
                try:
                    existing = await client.read_deployment_by_name(f"{flow_object.name}/{name}")
                except ObjectNotFound:
                    continue
                await client.delete_deployment(existing.id)
            if with_pool_deployment:
                await ensure_process_pool("postdicom-pool")
                flow_id = await client.create_flow_from_name(flows.nightly_order_export.name)
                await client.create_deployment(
                    flow_id=flow_id, name="nightly-export", work_pool_name="postdicom-pool",
                    entrypoint="flows/export.py:nightly_order_export",
                )

    asyncio.run(reset(with_pool_deployment=True))
    assert serve.main(["--credentials", "serve-collision-test"]) == 2
    err = capsys.readouterr().err
    assert "'nightly-order-export/nightly-export' (work pool 'postdicom-pool')" in err
    assert "prefect deployment delete" in err
    assert served == [], "serve started anyway"

    asyncio.run(reset(with_pool_deployment=False))
    assert serve.main(["--credentials", "serve-collision-test"]) == 0
    assert sorted(d.name for d in served) == sorted(FLOW_OF_DEPLOYMENT)
    assert os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_SECONDS), "served runs send heartbeats"


def test_the_deployment_names_both_ways_share_are_the_ones_the_guards_check() -> None:
    """``deployments/definitions.py`` is the source; ``prefect.yaml``, which cannot import it, must say the same."""
    from deployments.definitions import DEPLOYMENT_NAMES

    assert {d["name"] for d in _yaml()["deployments"]} == {d.name for d in DEFINITION_OF_FLOW.values()}
    from_yaml = {f"{FLOW_OF_DEPLOYMENT[d['name']].name}/{d['name']}" for d in _yaml()["deployments"]}
    from_serve = {f"{d.flow_name}/{d.name}" for d in serve.build_deployments()}
    assert set(DEPLOYMENT_NAMES) == from_yaml == from_serve


def test_prefect_yaml_and_serve_describe_each_deployment_as_the_definitions_table() -> None:
    """Descriptions, tags, schedule, parameter names, work pool and job variables: one table.

    So the UI shows one version either way, and runs get the same environment from a worker (the job
    variables) as from ``serve`` (its own process's environment, where the served flows run).
    """
    from deployments.definitions import POOL_NAME, RUN_ENV, WORK_QUEUE

    by_name = {definition.name: definition for definition in DEFINITION_OF_FLOW.values()}
    served = {d.name: d for d in serve.build_deployments(destination="./anywhere")}
    for deployment in _yaml()["deployments"]:
        definition = by_name[deployment["name"]]
        built = served[deployment["name"]]
        assert deployment["work_pool"] == {
            "name": POOL_NAME, "work_queue_name": WORK_QUEUE, "job_variables": definition.job_variables,
        }, definition.name
        assert definition.job_variables == {"env": RUN_ENV}
        assert deployment["description"] == built.description == definition.description, definition.name
        assert deployment["tags"] == built.tags == list(definition.tags), definition.name
        assert set(deployment["parameters"]) - {"credentials"} == set(built.parameters), definition.name
        if definition.nightly:
            assert deployment["schedules"] == [{"cron": NIGHTLY_CRON, "timezone": NIGHTLY_TIMEZONE, "active": True}]
            assert deployment["parameters"]["time_zone"] == NIGHTLY_TIMEZONE
            (schedule,) = built.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone) == (NIGHTLY_CRON, NIGHTLY_TIMEZONE)
            assert built.parameters["time_zone"] == NIGHTLY_TIMEZONE
        else:
            assert deployment["schedules"] is None and not built.schedules, definition.name


def test_prefect_deploy_refuses_to_take_over_deployments_served_by_serve(prefect_harness: None) -> None:
    """``prefect deploy`` over served deployments rewrites them for workers; stopping serve then pauses them."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from deployments.setup import ensure_process_pool
    from deployments.steps import no_served_deployments

    async def deployment(name: str, work_pool: str | None) -> None:
        async with get_client() as client:
            flow_name, _, deployment_name = name.partition("/")
            try:
                await client.delete_deployment((await client.read_deployment_by_name(name)).id)
            except ObjectNotFound:
                pass
            if work_pool:
                await ensure_process_pool(work_pool)
            if work_pool != "":  # "": only delete
                flow_id = await client.create_flow_from_name(flow_name)
                await client.create_deployment(flow_id=flow_id, name=deployment_name, work_pool_name=work_pool)

    served = "batch-reassignment/reassignment"
    asyncio.run(deployment(served, None))
    try:
        with pytest.raises(ValueError, match=r"created by 'postdicom-flows serve'.*'batch-reassignment/reassignment'"):
            no_served_deployments()
        asyncio.run(deployment(served, "postdicom-pool"))
        assert no_served_deployments() == {}, "a redeploy over the workers' own deployments goes on"
    finally:
        asyncio.run(deployment(served, ""))
    assert no_served_deployments() == {}


# --- the share password: only a Secret block reaches a deployment run --------------------


def test_deployments_accept_the_share_password_only_as_a_secret_block() -> None:
    """A typed password would be stored in the run's parameters (until it starts) and echoed by the CLI."""
    schema = parameter_schema(flows.bulk_upload_and_share).model_dump_for_openapi()
    field = schema["properties"]["share_password"]
    assert field["anyOf"] == [{"$ref": "#/definitions/Secret"}, {"type": "null"}], "no text box in the form"
    assert schema["definitions"]["Secret"]["block_type_slug"] == "secret"
    assert "Secret block" in field["description"] and "Never type the password" in field["description"]
    typed = validate({"share_password": "typed-in-clear"}, schema, raise_on_error=False, preprocess=True,
                     ignore_required=True)
    assert typed, "the server would accept a typed password"
    reference = {"share_password": {"$ref": {"block_document_id": "6a0c3d5e-0d8e-4f1e-9d55-2b8d1c7b9f10"}}}
    assert validate(reference, schema, raise_on_error=False, preprocess=True, ignore_required=True) == []


def test_the_flow_reads_the_share_password_from_a_secret_block_or_text() -> None:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    from flows.upload_and_share import resolve_share_password

    assert resolve_share_password(Secret(value="from-block"), None).get_secret_value() == "from-block"
    assert resolve_share_password("plain-text", None).get_secret_value() == "plain-text"
    assert resolve_share_password(SecretStr("secret-str"), None).get_secret_value() == "secret-str"
    assert resolve_share_password(None, None) is None
    with pytest.raises(ValueError, match="not both"):
        resolve_share_password(Secret(value="x"), "a-block")


# --- postdicom-flows demo -------------------------------------------------------------


@pytest.mark.slow
def test_demo_ends_with_parquet_files_and_a_share_link_and_runs_again_without_change(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's first command, twice: files and links on screen, then nothing uploaded or reassigned again."""
    import re

    import duckdb

    from deployments import demo

    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv(demo.SHARE_PASSWORD_ENV, "demo-test-share-pw")
    monkeypatch.chdir(REPO)
    data = tmp_path / "demo-data"
    port = demo.free_port()
    argv = ["--data-dir", str(data), "--port", str(port), "--share-password"]

    assert demo.main(argv) == 0
    first = capsys.readouterr().out
    assert re.search(rf"http://127\.0\.0\.1:{port}/share/\S{{30,}}", first), first
    assert "(password protected)" in first
    assert "26 stored, 5 not dicom" in first
    orders = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{data}/export/orders/*/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert orders == [(5,)]
    assert "2 assigned" in first
    assert demo.port_is_free(port), "the sandbox was left running"

    assert demo.main(argv) == 0
    second = capsys.readouterr().out
    assert "26 already stored, 5 not dicom" in second
    assert "2 unchanged" in second
    assert "5 orders" in second
    assert "demo-test-share-pw" not in first + second
    assert demo.port_is_free(port)


def test_a_prefect_dual_method_gives_its_value_outside_an_event_loop_and_an_error_inside_one():
    """``build_deployments`` and the demo call Prefect's sync/async methods from plain code (``prefect_dual``)."""
    from deployments.prefect_dual import synchronous_result
    from flows.check import check_account

    assert synchronous_result(check_account.to_deployment(name="x")).name == "x"

    async def inside_a_loop():
        return check_account.to_deployment(name="x")

    returned = asyncio.run(inside_a_loop())
    with pytest.raises(RuntimeError, match="inside an event loop: await its async form"):
        synchronous_result(returned)
    assert returned.cr_frame is None, "the coroutine is closed (no 'never awaited' warning)"
