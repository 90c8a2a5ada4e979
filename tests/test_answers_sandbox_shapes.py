"""The tasks, the three flows and ``check`` against the sandbox's own alternative answer shapes.

``postdicom-flows sandbox --answer-shapes alternative`` (docs/sandbox.md,
*Answer shapes*) answers the custom endpoints in one fixed combination of the
shapes a .NET service might send (camelCase keys, booleans and numbers as
strings, ``null`` lists, ``YYYYMMDD`` dates, a bare array, ``data`` and
``result`` envelopes, empty write answers, ``X-Error-Reason`` on success).
The same checks as against the documented shapes must hold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.check import check_account
from tests.fixtures.sandbox_server import launch
from tests.fixtures.servers import ServerInfo
from tests.test_answers_flows import run_flows
from tests.test_answers_tasks import life_of_an_order
from tests.test_check import upload_two_studies


@pytest.fixture(scope="module")
def alternative_sandbox(tmp_path_factory) -> Iterator[ServerInfo]:
    process = launch(tmp_path_factory.mktemp("alternative-shapes"), args=("--answer-shapes", "alternative"))
    yield process.info(0)
    process.stop()


def fallbacks_of(answers) -> set[str]:
    return {f for answer in answers for f in answer.reading.fallbacks}


def test_the_tasks_read_the_sandbox_alternative_shapes(alternative_sandbox, prefect_harness, tmp_path):
    out = life_of_an_order(alternative_sandbox, tmp_path)
    seen = fallbacks_of(v for k, v in out.items() if k != "upload")
    assert "X-Error-Reason header on a success answer (read as a success)" in seen
    assert any("keys in camelCase" in f for f in seen)
    assert any("boolean sent as a string" in f for f in seen)
    assert any("date as YYYYMMDD" in f for f in seen)
    assert out["found"].reading.shape == "bare array"
    assert any(answer.reading.empty for answer in out.values() if hasattr(answer, "reading"))


def test_the_three_flows_complete_on_the_sandbox_alternative_shapes(alternative_sandbox, prefect_harness, tmp_path):
    run_flows(alternative_sandbox, alternative_sandbox, tmp_path, day=dt.date(2020, 1, 5))


def test_check_understands_the_sandbox_alternative_shapes(alternative_sandbox, prefect_harness, tmp_path):
    upload_two_studies(alternative_sandbox, tmp_path, "alt-sbx")
    institution = alternative_sandbox.extra["account"]["Institutions"][0]
    report = check_account(alternative_sandbox.credentials(), write_test=True,
                           institution_uuid=institution["InstitutionUuid"],
                           assigned_user_uuid=institution["Users"][1]["UserUuid"],
                           assigned_user_group_uuid=institution["UserGroups"][1]["UserGroupUuid"])
    assert report.ok, report.table()
    # this account also holds the other tests' one-series studies: a level may have nothing to page
    assert all(step.result == "ok" or step.detail.startswith("fewer than 2") for step in report.steps), report.table()
    assert any(step.fallbacks for step in report.steps)
    steps = {step.name: step for step in report.steps}
    filed = steps["file the order"]  # AddOrderToFolder answers an empty body here: no count is made up
    assert filed.detail == "empty answer: done as asked, nothing more known"
    assert filed.fallbacks == ["empty answer on success: read as what the request asked for"]
    assert steps["the order is gone"].status == 404


@pytest.mark.slow
def test_the_demo_runs_on_the_sandbox_alternative_shapes(prefect_harness, tmp_path, monkeypatch, capsys):
    """``SANDBOX_ANSWER_SHAPES=alternative make demo``: the demo's three flows end as they do on the documented shapes."""
    import re

    import duckdb

    from deployments import demo

    monkeypatch.setenv("SANDBOX_ANSWER_SHAPES", "alternative")
    monkeypatch.setenv("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    data = tmp_path / "demo-data"
    port = demo.free_port()
    assert demo.main(["--data-dir", str(data), "--port", str(port)]) == 0
    printed = capsys.readouterr().out
    assert "Answers    : alternative shapes" in (data / "sandbox.log").read_text()
    assert re.search(rf"http://127\.0\.0\.1:{port}/share/\S{{30,}}", printed), printed
    assert "26 stored, 5 not dicom" in printed and "2 assigned" in printed
    orders = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{data}/export/orders/*/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert orders == [(5,)]
