"""Issue 18.1, the settings side: the reassignment's concurrency limit as documented (fast; the kill -9 runs are in
test_reliability_kill.py).

- ``concurrency_limit_name`` defaults to ``postdicom-assignments``; empty or ``None`` turns the limit off (docs/flows.md);
- ``POSTDICOM_ASSIGNMENT_LEASE_SECONDS``: 60 s by default, refused outside Prefect's 60..86400 s with a message naming it;
- with the ephemeral API the limit is not used, and the run's log says so.
"""

from __future__ import annotations

import logging

import pytest

from flows import batch_reassignment
from flows.assignment import DEFAULT_LEASE_SECONDS, LEASE_SECONDS_ENV, lease_seconds, limit_slot
from flows.reassignment import DEFAULT_LIMIT_NAME
from tests.test_flow_reassignment import make_orders, run


def parameters(**overrides):
    from blocks import PostDicomCredentials

    credentials = PostDicomCredentials(username="u@example.org", password="p", web_address="http://127.0.0.1:9")
    return batch_reassignment.validate_parameters({"credentials": credentials, **overrides})


def test_the_limit_is_on_by_default_and_empty_or_none_turns_it_off():
    assert DEFAULT_LIMIT_NAME == "postdicom-assignments"
    assert parameters()["concurrency_limit_name"] == "postdicom-assignments"
    assert parameters(concurrency_limit_name=None)["concurrency_limit_name"] == ""
    assert parameters(concurrency_limit_name="")["concurrency_limit_name"] == ""
    with limit_slot(None), limit_slot(""):
        pass  # no limit: nothing to acquire, no Prefect call


@pytest.mark.parametrize("raw, expected", [("", DEFAULT_LEASE_SECONDS), ("60", 60.0), ("900", 900.0)])
def test_lease_seconds_setting(monkeypatch, raw, expected):
    monkeypatch.setenv(LEASE_SECONDS_ENV, raw)
    assert lease_seconds() == expected
    assert DEFAULT_LEASE_SECONDS == 60


@pytest.mark.parametrize("raw, message", [("30", "between 60 and 86400"), ("100000", "between 60 and 86400"),
                                          ("soon", "must be a number of seconds")])
def test_a_lease_outside_prefects_bounds_is_refused_naming_the_setting(monkeypatch, raw, message):
    monkeypatch.setenv(LEASE_SECONDS_ENV, raw)
    with pytest.raises(ValueError, match=message) as raised:
        lease_seconds()
    assert LEASE_SECONDS_ENV in str(raised.value)


def test_with_the_ephemeral_api_the_limit_is_not_used_and_the_log_says_so(
    prefect_harness, sandbox_server, monkeypatch, caplog
):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    monkeypatch.setattr("flows.reassignment.has_prefect_server", lambda: False)
    name = "reliability-ephemeral-limit"
    reader = sandbox_server.extra["account"]["Institutions"][0]["Users"][0]["UserUuid"]
    (order,) = make_orders(sandbox_server, 1)
    with caplog.at_level(logging.WARNING, logger="prefect"):
        state, report = run(credentials=sandbox_server.credentials(), concurrency_limit_name=name,
                            assignments=[{"patient_order_uuid": order, "assigned_user_uuid": reader}])
    assert state.is_completed() and report.counts["assigned"] == 1
    assert f"the global concurrency limit '{name}' is not used" in caplog.text
    with get_client(sync_client=True) as prefect_client, pytest.raises(ObjectNotFound):
        prefect_client.read_global_concurrency_limit_by_name(name)
