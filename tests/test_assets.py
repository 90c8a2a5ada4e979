"""The exported tables and the account as Prefect assets, read back from Prefect's event API after real runs.

One upload and one export of this module's own study date on the shared
sandbox; their materialization events are read back through the API (keys,
upstream, metadata), checked for secrets and patient data, and fed to the
freshness automation, which must fire when the next export does not come.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows import bulk_upload_and_share, nightly_order_export
from flows.assets import account_asset_key, table_asset_key, valid_asset_key, without_credentials
from flows.export_schema import SCHEMA_VERSION, TABLES
from flows.export_destination import Destination
from postdicom.synthetic import StudySpec, write_study

STUDY_DATE = dt.date(2033, 2, 3)
"""A date no other test module exports: the window holds this module's study alone."""
SPEC = StudySpec(
    "Assetson^Petra", "ASSET-PID-7731", "MR", series_count=1, instances_per_series=2, study_date=STUDY_DATE,
    accession_number="ASSET-ACC-7731",
)
PATIENT_DATA = ("Assetson", "Petra", "ASSET-PID-7731", "ASSET-ACC-7731")
MATERIALIZED = "prefect.asset.materialization.succeeded"


def events_of_run(flow_run_id: Any, names: list[str], ready: Callable[[list[Any]], bool], timeout: float = 90.0) -> list[Any]:
    """The events named ``names`` about the flow run (its own or related), read through the API until ``ready``."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter

    deadline = time.monotonic() + timeout
    while True:
        event_filter = EventFilter(  # made anew each time: its default `until` is the moment it is made
            event=EventNameFilter(name=names),
            any_resource=EventAnyResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
        )
        with get_client(sync_client=True) as client:
            found = list(client.read_events(filter=event_filter, limit=50).events)
        if ready(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def related_assets(event: Any) -> set[str]:
    return {r.id for r in event.related if r.role == "asset"}


@pytest.fixture(scope="module")
def upload(prefect_harness, sandbox_server, tmp_path_factory) -> tuple[Any, Any]:
    """The study uploaded by ``bulk_upload_and_share``: its final state and the credentials."""
    directory = tmp_path_factory.mktemp("asset-upload")
    write_study(directory, SPEC)
    credentials = sandbox_server.credentials()
    state = bulk_upload_and_share(
        credentials=credentials, directory=str(directory), expire_date=dt.date.today() + dt.timedelta(days=7),
        return_state=True,
    )
    assert state.is_completed(), state.message
    return state, credentials


@pytest.fixture(scope="module")
def export(upload, tmp_path_factory) -> tuple[Any, Path]:
    """The uploaded study's day exported by ``nightly_order_export``: its final state and destination."""
    _, credentials = upload
    destination = tmp_path_factory.mktemp("asset-export") / "tables"
    state = nightly_order_export(
        credentials=credentials, destination=str(destination), study_date_from=STUDY_DATE, return_state=True
    )
    assert state.is_completed(), state.message
    return state, destination


def test_the_upload_materializes_the_account_named_by_its_host(upload, sandbox_server) -> None:
    state, _ = upload
    (event,) = events_of_run(state.state_details.flow_run_id, [MATERIALIZED], lambda found: len(found) >= 1)
    host_and_port = sandbox_server.web_address.split("://")[1].split("/")[0]
    assert event.resource.id == f"postdicom://{host_and_port}" == account_asset_key(sandbox_server.web_address)
    assert event.resource.get("prefect.resource.name") == f"PostDICOM account {host_and_port}"
    assert related_assets(event) == set(), "the upload reads a folder: no upstream asset (its path may name a patient)"
    assert event.payload["files"]["stored"] == 2
    assert event.payload["flow_run_id"] == str(state.state_details.flow_run_id)


def test_the_export_materializes_four_tables_keyed_by_location_from_the_account(export, upload) -> None:
    state, destination = export
    run_id = str(state.state_details.flow_run_id)
    found = events_of_run(run_id, [MATERIALIZED, "prefect.asset.referenced"], lambda found: len(found) >= 5)
    materialized = {e.resource.id: e for e in found if e.event == MATERIALIZED}
    account = account_asset_key(upload[1].web_address)

    assert set(materialized) == {f"file://{destination}/{table}" for table in TABLES}
    assert [e.resource.id for e in found if e.event == "prefect.asset.referenced"] == [account]
    for table in TABLES:
        event = materialized[f"file://{destination}/{table}"]
        assert related_assets(event) == {account}, "upstream: the account the export read"
        assert event.resource.get("prefect.resource.name") == f"{table} (postdicom-flows export)"
        payload = event.payload
        assert payload["export_dates"] == [STUDY_DATE.isoformat()]
        expected_rows = {"orders": 1, "studies": 1, "series": 1}.get(table)
        if expected_rows is not None:
            assert payload["rows_per_date"] == {STUDY_DATE.isoformat(): expected_rows}, table
        else:
            assert payload["rows_per_date"][STUDY_DATE.isoformat()] > 0
        assert payload["rows"] == sum(payload["rows_per_date"].values())
        assert payload["schema_version"] == SCHEMA_VERSION
        assert payload["flow_run_id"] == run_id
        manifest = payload["manifests"][STUDY_DATE.isoformat()]
        assert manifest == f"file://{destination}/_manifests/{table}/export_date={STUDY_DATE}.json"
        written = json.loads(Path(manifest.removeprefix("file://")).read_text(encoding="utf-8"))
        assert written["run_id"] == run_id and written["rows"] == payload["rows"]


def test_asset_events_hold_no_password_username_or_patient_data(export, upload, sandbox_server, tmp_path) -> None:
    """Both runs' asset events, and an export to a URL with credentials in it: nothing secret or personal."""
    secret_url = f"memory://asset-user:asset-url-secret@bucket-{uuid.uuid4().hex[:8]}/exp?token=asset-token"
    state = nightly_order_export(
        credentials=upload[1], destination=secret_url, study_date_from=STUDY_DATE, return_state=True
    )
    assert state.is_completed(), state.message
    names = [MATERIALIZED, "prefect.asset.referenced"]
    events = [
        event
        for run_state, count in ((upload[0], 1), (export[0], 5), (state, 5))
        for event in events_of_run(run_state.state_details.flow_run_id, names, lambda found, n=count: len(found) >= n)
    ]
    assert len(events) == 11
    text = json.dumps([e.model_dump(mode="json") for e in events])
    for forbidden in (sandbox_server.password, sandbox_server.username, "asset-url-secret", "asset-user", "asset-token",
                      *PATIENT_DATA):
        assert forbidden not in text, forbidden
    keys = {e.resource.id for e in events if e.event == MATERIALIZED and e.resource.id.startswith("memory://")}
    bucket = secret_url.split("@")[1].split("/")[0]
    assert keys == {f"memory://{bucket}/exp/{table}" for table in TABLES}


def test_the_freshness_automation_matches_the_tables_and_not_the_upload(export, upload) -> None:
    """The deployed trigger, evaluated as the server does on the real events read back."""
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.events.schemas.events import ReceivedEvent

    from deployments.setup import freshness_automation

    trigger = EventTrigger.model_validate(freshness_automation().trigger.model_dump())
    table_events = events_of_run(export[0].state_details.flow_run_id, [MATERIALIZED], lambda found: len(found) >= 4)
    (upload_event,) = events_of_run(upload[0].state_details.flow_run_id, [MATERIALIZED], lambda found: len(found) >= 1)
    received = [ReceivedEvent.model_validate(e.model_dump()) for e in [*table_events, upload_event]]
    assert [trigger.covers(e) for e in received] == [True, True, True, True, False]


def test_the_freshness_alert_fires_when_the_next_export_is_skipped(upload, tmp_path) -> None:
    """Install the automation with a 10 s window, export once, skip the next: it fires once per table, late."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    from deployments.setup import freshness_automation, install_automation

    within = dt.timedelta(seconds=10)
    automation = freshness_automation(within, name=f"freshness-test-{uuid.uuid4().hex[:8]}")
    assert asyncio.run(install_automation(automation)) == "created"
    assert asyncio.run(install_automation(automation)) == "updated", "installing again updates in place"
    with get_client(sync_client=True) as client:
        (installed,) = client.read_automations_by_name(automation.name)
    try:
        destination = tmp_path / "fresh"
        state = nightly_order_export(
            credentials=upload[1], destination=str(destination), study_date_from=STUDY_DATE, return_state=True
        )
        assert state.is_completed(), state.message
        keys = {table_asset_key(Destination(str(destination)), table) for table in TABLES}
        materialized = events_of_run(state.state_details.flow_run_id, [MATERIALIZED], lambda found: len(found) >= 4)

        def alerts() -> list[Any]:
            alert_filter = EventFilter(
                event=EventNameFilter(name=["prefect.automation.triggered"]),
                resource=EventResourceFilter(id=[f"prefect.automation.{installed.id}"]),
            )
            with get_client(sync_client=True) as client:
                return list(client.read_events(filter=alert_filter, limit=50).events)

        deadline = time.monotonic() + 120
        found = alerts()
        while {a.payload["triggering_labels"].get("prefect.resource.id") for a in found} < keys:
            assert time.monotonic() < deadline, f"no alert for every table; got {found}"
            time.sleep(1)
            found = alerts()
        mine = [a for a in found if a.payload["triggering_labels"]["prefect.resource.id"] in keys]
        assert len(mine) == 4, "one alert per table, not repeated"
        exported_at = {e.resource.id: e.occurred for e in materialized}
        for alert in mine:
            key = alert.payload["triggering_labels"]["prefect.resource.id"]
            assert alert.resource.get("prefect.resource.name") == automation.name
            assert alert.payload["triggering_event"]["event"] == MATERIALIZED
            assert alert.payload["triggering_event"]["resource"]["prefect.resource.id"] == key
            assert alert.occurred - exported_at[key] >= within, "fired because the window passed, not at once"
    finally:
        with get_client(sync_client=True) as client:
            client.delete_automation(installed.id)


@pytest.mark.parametrize(
    ("location", "key"),
    [
        ("file:///data/exports/orders", "file:///data/exports/orders"),
        ("file:///data/my exports/50%/orders", "file:///data/my_exports/50_/orders"),
        ("S3://bucket/a#b/orders", "s3://bucket/a_b/orders"),
        ("oci-object://bucket@tenancy/orders", "ociobject://bucket@tenancy/orders"),
    ],
)
def test_locations_become_keys_prefect_accepts(location: str, key: str) -> None:
    from prefect.assets import Asset

    assert valid_asset_key(location) == key
    assert Asset(key=key).key == key


def test_long_locations_are_cut_with_a_digest_and_stay_distinct() -> None:
    from prefect.assets import Asset

    first, second = (valid_asset_key("file:///" + "d/" * 400 + name) for name in ("orders", "tags"))
    assert len(first) == len(second) == 512 and first != second
    assert Asset(key=first).key == first


def test_credentials_and_paths_never_reach_the_keys() -> None:
    assert without_credentials("s3://KEY:SECRET@bucket/prefix?sig=abc#x") == "s3://bucket/prefix"
    assert account_asset_key("https://someone:pw@Hospital.PostDicom.com:8443/dicomweb/ASSET-PID") == (
        "postdicom://hospital.postdicom.com:8443"
    )
    assert account_asset_key("https://cloud.postdicom.com/api/x") == "postdicom://cloud.postdicom.com"
    with pytest.raises(ValueError, match="no host"):
        account_asset_key("not a url")


def test_the_freshness_window_comes_from_the_option_the_environment_or_the_default(monkeypatch) -> None:
    from deployments import setup

    monkeypatch.delenv(setup.FRESH_WITHIN_ENV, raising=False)
    assert setup.fresh_within_hours() == setup.DEFAULT_FRESH_WITHIN_HOURS == 26
    monkeypatch.setenv(setup.FRESH_WITHIN_ENV, "50")
    assert setup.fresh_within_hours() == 50
    assert setup.fresh_within_hours("30") == 30
    with pytest.raises(ValueError, match="between 10 s"):
        setup.fresh_within_hours("0.001")
    with pytest.raises(ValueError, match="744 h"):
        setup.fresh_within_hours("745")
    with pytest.raises(ValueError, match="number of hours, got 'nightly'"):
        setup.fresh_within_hours("nightly")


def test_setup_installs_one_freshness_automation_updates_it_and_notifies_through_a_named_block(
    prefect_harness, capsys
) -> None:
    from prefect.blocks.notifications import SlackWebhook
    from prefect.client.orchestration import get_client
    from prefect.events.actions import DoNothing, SendNotification

    from deployments import setup

    def installed() -> list[Any]:
        with get_client(sync_client=True) as client:
            return client.read_automations_by_name(setup.FRESHNESS_AUTOMATION_NAME)

    assert setup.main(["--pool", "assets-test-pool", "--fresh-within", "30"]) == 0
    assert "exported table not refreshed" in capsys.readouterr().out
    assert setup.main(["--pool", "assets-test-pool", "--fresh-within", "48"]) == 0
    (automation,) = installed()
    assert automation.trigger.within == dt.timedelta(hours=48)
    assert [type(action) for action in automation.actions] == [DoNothing]

    assert setup.main(["--pool", "assets-test-pool", "--notify-block", "slack-webhook/assets-missing"]) == 2
    assert "no saved block 'slack-webhook/assets-missing'" in capsys.readouterr().err
    block_id = SlackWebhook(url="https://hooks.slack.invalid/services/T0/B0/x").save("assets-on-call", overwrite=True)
    assert setup.main(["--pool", "assets-test-pool", "--notify-block", "slack-webhook/assets-on-call"]) == 0
    (automation,) = installed()
    (action,) = automation.actions
    assert isinstance(action, SendNotification) and action.block_document_id == block_id
    assert "{{ event.resource.id }}" in action.body
    assert automation.trigger.within == dt.timedelta(hours=26), "back to the default when not given"


def test_a_failed_export_records_no_materialization(upload, tmp_path, monkeypatch) -> None:
    """A night that did not complete must look missing to the freshness automation."""
    from flows import export as export_module

    def outage(*args: Any, **kwargs: Any) -> list[Any]:
        raise RuntimeError("the account stopped answering")

    monkeypatch.setattr(export_module, "list_day_orders", outage)
    state = nightly_order_export(
        credentials=upload[1], destination=str(tmp_path / "failed"), study_date_from=STUDY_DATE, return_state=True
    )
    assert state.is_failed()
    names = ["prefect.flow-run.Failed", MATERIALIZED, "prefect.asset.referenced"]
    found = events_of_run(state.state_details.flow_run_id, names, lambda found: bool(found))
    assert [e.event for e in found] == ["prefect.flow-run.Failed"], "the run's end arrived, and no asset event"
