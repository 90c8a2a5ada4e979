"""``postdicom-flows check`` / ``check_account``: a tour of an account that reports how it answers.

Run against the sandbox (read-only, then with the write test), Orthanc
(standard dialect: DICOMweb calls only), the sandbox behind a proxy answering
the alternative shapes, and that proxy answering one endpoint with an HTML
page. The JSON report must hold no patient data and no identifiers.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest

from deployments.cli import main as cli_main
from flows.check import CheckReport, check_account, outline, redact
from postdicom.errors import NotFoundError
from postdicom.synthetic import StudySpec, write_study
from tests.fixtures.alt_shapes import BROKEN_PAGE

PATIENT = "Revisión^Ana"
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
DICOM_UID = re.compile(r"\b\d+(\.\d+){4,}\b")


def upload_two_studies(server, tmp_path, tag: str) -> list[str]:
    """Two studies of two series of one synthetic patient (QIDO paging needs two); returns the patient id."""
    patient_id = f"CHK-{tag}-{uuid.uuid4().hex[:6]}"
    for n in range(2):
        write_study(tmp_path / tag / str(n), StudySpec(PATIENT, patient_id, "CT", series_count=2, instances_per_series=2,
                                              accession_number=f"A{n}-{patient_id[-6:]}", seed=f"{patient_id}-{n}"))
    with server.client() as client:
        report = client.upload_folder(tmp_path / tag)
    assert report.counts["stored"] + report.counts.get("already_stored", 0) == 8
    return [patient_id]


def assert_no_patient_data(text: str, *secrets: str) -> None:
    for secret in (PATIENT, "Revisi", *secrets):
        assert secret not in text
    assert not UUID_TEXT.search(text), UUID_TEXT.search(text)
    assert not DICOM_UID.search(text), DICOM_UID.search(text)


def steps_by_name(report: CheckReport) -> dict:
    return {step.name: step for step in report.steps}


def account_state(server) -> tuple[int, int]:
    with server.client() as client:
        return len(client.search_folder().folder_list), len(client.get_patient_order_list([]).patient_order_list)


def test_check_reads_a_sandbox_account_writes_nothing_and_saves_a_redacted_report(
        sandbox_server, prefect_harness, tmp_path, capsys):
    [patient_id] = upload_two_studies(sandbox_server, tmp_path, "sbx")
    before = account_state(sandbox_server)
    sandbox_server.credentials().save("check-sandbox", overwrite=True)
    out_file = tmp_path / "report.json"
    code = cli_main(["check", "--credentials", "check-sandbox", "--json", str(out_file)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert account_state(sandbox_server) == before  # read-only: no folder, no order made

    report = CheckReport.model_validate_json(out_file.read_text())
    steps = steps_by_name(report)
    expected = ["authenticate", "QIDO studies, page 1", "QIDO studies, page 2", "QIDO series", "QIDO series, page 2",
                "QIDO instances", "QIDO instances, page 2", "WADO one instance", "orders of the last 30 days",
                "one order's properties", "one order's tags", "folders"]
    assert [s.name for s in report.steps] == expected
    # the shared sandbox holds other tests' studies too: a level below the studies may have nothing to page
    # (paging at all three levels is asserted on a private account below)
    assert all(s.result == "ok" and s.seconds is not None or s.detail.startswith("fewer than 2")
               for s in report.steps), report.table()
    assert steps["QIDO studies, page 2"].detail.endswith("study(ies); paging consistent")
    assert re.fullmatch(r"1 file\(s\), \d+ bytes", steps["WADO one instance"].detail)
    assert steps["WADO one instance"].understood is True
    for name in expected[8:]:
        assert steps[name].status == 200 and steps[name].understood is True
        assert steps[name].fallbacks == [] and steps[name].unknown_keys == []  # the sandbox answers as documented
    assert steps["folders"].outline["FolderList"] == [] or "FolderUuid" in steps["folders"].outline["FolderList"][0]
    assert report.left_behind == [] and not report.write_test

    for line in ("step", "authenticate", "WADO one instance", "understood, as documented", "ok, 0 failed"):
        assert line in printed
    assert_no_patient_data(out_file.read_text(), patient_id, sandbox_server.password)
    assert sandbox_server.password not in printed


def test_check_with_the_write_test_creates_assigns_shares_and_deletes(sandbox_server, prefect_harness):
    institution = sandbox_server.extra["seed"]["Accounts"][0]["Institutions"][0]
    report = check_account(
        sandbox_server.credentials(), write_test=True, institution_uuid=institution["InstitutionUuid"],
        assigned_user_uuid=institution["Users"][1]["UserUuid"],
        assigned_user_group_uuid=institution["UserGroups"][1]["UserGroupUuid"],
    )
    steps = steps_by_name(report)
    written = ["create a folder", "create an order", "file the order", "read the new order", "assign to a user",
               "assign to a group", "share link", "share by URL", "share the folder", "delete the order"]
    for name in written:
        assert steps[name].result == "ok", report.table()
    assert steps["read the new order"].detail == "status Scheduled, in 1 folder(s)"
    assert steps["assign to a user"].detail == "changed: True"
    assert all(steps[n].detail == "link received" for n in ("share link", "share by URL", "share the folder"))
    assert steps["delete the order"].detail == "deleted: True"
    gone = steps["the order is gone"]  # the cleanup is confirmed by reading the order back
    assert (gone.result, gone.status, gone.detail) == ("ok", 404, "not found: the delete worked")
    # no answer to have understood: the row's answer cell stays empty
    assert re.search(r"^the order is gone +GetPatientOrderProperties \(expects 404\) +ok 404 +\d+\.\d\ds$",
                     report.table(), re.M), report.table()
    assert report.ok
    assert report.left_behind[0].startswith("the folder 'postdicom-flows check ")
    assert report.left_behind[1].startswith("3 share link(s) expiring")
    run_id = report.left_behind[0].split("check ")[1].split("'")[0]
    with sandbox_server.client() as client:
        assert client.get_patient_order_list([], accession_number=f"PDFCHK{run_id}").patient_order_list == []
        [folder] = client.search_folder(folder_name=f"postdicom-flows check {run_id}",
                                        get_orders_in_folder=True).folder_list
        assert folder.patient_order_uuid_list == []


def test_check_on_orthanc_runs_the_dicomweb_calls_only(orthanc_server, prefect_harness, tmp_path):
    upload_two_studies(orthanc_server, tmp_path, "orthanc")
    report = check_account(orthanc_server.credentials())
    steps = steps_by_name(report)
    assert all(s.result == "ok" or s.detail.startswith("fewer than 2") for s in report.steps[:8]), report.table()
    assert "paging consistent" in steps["QIDO studies, page 2"].detail
    assert steps["WADO one instance"].detail.startswith("1 file(s)")
    assert steps["custom endpoints"].result == "skipped"
    assert len(report.steps) == 9 and report.ok
    assert "dialect standard" in report.table()


def test_check_reads_the_alternative_shapes_and_reports_their_fallbacks(
        alt_shapes_server, sandbox_server, prefect_harness, tmp_path):
    upload_two_studies(sandbox_server, tmp_path, "alt")
    server = alt_shapes_server("everything")
    institution = server.extra["seed"]["Accounts"][0]["Institutions"][0]
    report = check_account(server.credentials(), write_test=True, institution_uuid=institution["InstitutionUuid"],
                           assigned_user_uuid=institution["Users"][1]["UserUuid"])
    assert all(s.result in ("ok", "skipped") for s in report.steps), report.table()
    assert report.ok  # every call worked and every answer was understood
    steps = steps_by_name(report)
    listing = steps["orders of the last 30 days"]
    assert listing.shape == "bare array" and "answer inside a 'data' envelope" in listing.fallbacks
    assert "(envelope).isSuccess" in listing.unknown_keys
    assert any("number sent as a string" in f for f in listing.fallbacks)
    assert listing.outline["data"][0]["patientOrderUuid"] == "string"  # the outline shows what was sent
    assert "X-Error-Reason header on a success answer (read as a success)" in steps["create an order"].fallbacks
    assert steps["assign to a group"].result == "skipped"  # no group given or found
    table = report.table()
    assert "fallback: answer inside a 'data' envelope" in table and "unknown key: (envelope).isSuccess" in table
    assert_no_patient_data(report.model_dump_json())


def test_check_reports_an_unreadable_answer_and_goes_on(alt_shapes_server, sandbox_server, prefect_harness,
                                                        tmp_path, capsys):
    upload_two_studies(sandbox_server, tmp_path, "broken")
    server = alt_shapes_server("bare-array", broken=["/getpatientorderlist"])
    report = check_account(server.credentials())
    steps = steps_by_name(report)
    failed = steps["orders of the last 30 days"]
    assert failed.result == "failed" and failed.status == 200
    assert "GetPatientOrderList answered something that cannot be read (HTML)" in failed.error
    assert 'expected {"PatientOrderList": [...]} or a bare array' in failed.error
    assert "884422" not in failed.error and "status.example.org" not in failed.error
    assert BROKEN_PAGE.decode()[:20] in failed.error  # the first bytes, masked
    printed = report.table()  # the whole error is printed, wrapped under its step
    notes = " ".join(line.strip() for line in printed.splitlines() if line.startswith(" "))
    assert 'expected {"PatientOrderList": [...]} or a bare array of objects; the answer began with: <html>' in notes
    assert all(len(line) <= 120 for line in printed.splitlines() if line.startswith(" "))
    assert steps["one order's properties"].result == "skipped"
    assert steps["folders"].result == "ok" and steps["folders"].shape == "bare array"
    assert not report.ok and "1 failed" in report.summary()


def test_check_on_an_empty_account_skips_what_it_cannot_reach_and_says_why(fresh_sandbox, prefect_harness, tmp_path):
    """A new account (no study, no order, no folder): every call that can run works, the rest is skipped, named."""
    server = fresh_sandbox().info(0)
    report = check_account(server.credentials(), write_test=True)
    steps = steps_by_name(report)
    assert [s.name for s in report.steps if s.result == "ok"] == [
        "authenticate", "QIDO studies, page 1", "orders of the last 30 days", "folders", "leftover test orders",
    ], report.table()
    assert steps["leftover test orders"].detail == "0 from an interrupted write test"
    assert (steps["QIDO series"].call, steps["WADO one instance"].call) == (
        "QidoSearch (series of one study)", "RetrieveImagesUsingWadoRs")
    assert steps["WADO one instance"].detail == "no study on the account"
    assert steps["one order's properties"].detail == "no order in the window"
    assert steps["write test"].detail == "no institution known: give institution_uuid (--institution)"
    assert report.ok and "5 ok, 0 failed, 7 skipped" in report.summary()

    # the same account with two studies of two series of two instances: QIDO pages at each level
    upload_two_studies(server, tmp_path, "paging")
    report = check_account(server.credentials())
    steps = steps_by_name(report)
    assert steps["QIDO studies, page 2"].detail == "1 study(ies); paging consistent", report.table()
    assert steps["QIDO series, page 2"].detail == "1 series; paging consistent", report.table()
    assert steps["QIDO instances, page 2"].detail == "1 instance(s); paging consistent", report.table()
    assert report.ok and all(s.result == "ok" for s in report.steps), report.table()


def test_check_stops_when_authentication_is_refused(sandbox_server, prefect_harness, monkeypatch, capsys):
    monkeypatch.setenv("POSTDICOM_PASSWORD", "not-the-password")
    code = cli_main(["check", "--web-address", sandbox_server.web_address, "--username", sandbox_server.username])
    printed = capsys.readouterr().out
    assert code == 1
    assert re.search(r"authenticate\s+QidoSearch \(studies, limit 1\)\s+failed 401", printed), printed
    assert "not run: authentication was refused" in printed
    assert "not-the-password" not in printed


def test_check_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as raised:
        cli_main(["check"])
    assert raised.value.code == 2
    assert "give --credentials NAME, or --web-address and --username" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["check", "--credentials", "a", "--web-address", "http://x"])


def test_the_write_test_removes_the_orders_an_interrupted_one_left_and_only_those(sandbox_server, prefect_harness):
    """A write test stopped before its delete leaves its synthetic order: the next one deletes it.

    An order with the same patient name but another birth date or patient ID is someone's: untouched.
    """
    from flows.check import TEST_BIRTH_DATE, TEST_PATIENT_ID_PREFIX, TEST_PATIENT_NAME

    institution = sandbox_server.extra["seed"]["Accounts"][0]["Institutions"][0]["InstitutionUuid"]
    tag = uuid.uuid4().hex[:8]
    with sandbox_server.client() as client:
        leftover = client.create_patient_order(institution, TEST_PATIENT_NAME, f"{TEST_PATIENT_ID_PREFIX}{tag}",
                                               TEST_BIRTH_DATE, "OT").patient_order_uuid
        kept = [
            client.create_patient_order(institution, TEST_PATIENT_NAME, f"REAL-{tag}", TEST_BIRTH_DATE, "OT"),
            client.create_patient_order(institution, TEST_PATIENT_NAME, f"{TEST_PATIENT_ID_PREFIX}{tag}x",
                                        dt.date(1950, 3, 4), "OT"),
        ]
    report = check_account(sandbox_server.credentials(), write_test=True, institution_uuid=institution)
    steps = steps_by_name(report)
    assert steps["leftover test orders"].detail == "1 from an interrupted write test", report.table()
    assert (steps["delete a leftover test order"].result, steps["delete a leftover test order"].detail) == (
        "ok", "deleted: True")
    assert_no_patient_data(report.model_dump_json())
    with sandbox_server.client() as client:
        with pytest.raises(NotFoundError):
            client.get_patient_order_properties(institution, leftover)
        for order in kept:
            assert client.get_patient_order_properties(institution, order.patient_order_uuid).patient_order_uuid
        for order in kept:
            client.delete_patient_order(institution, order.patient_order_uuid)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--days", "0"], "--days must be between 1 and 366, not 0"),
        (["--days", "367"], "--days must be between 1 and 366, not 367"),
        (["--page-size", "0"], "--page-size must be between 1 and 1000, not 0"),
        (["--page-size", "1001"], "--page-size must be between 1 and 1000, not 1001"),
    ],
)
def test_check_refuses_days_and_page_sizes_out_of_bounds_before_any_request(arguments, message, capsys):
    with pytest.raises(SystemExit) as raised:
        cli_main(["check", "--web-address", "http://127.0.0.1:9", "--username", "u", *arguments])
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("parameters", "name"), [({"days": 0}, "days"), ({"days": 367}, "days"),
                                                  ({"page_size": 0}, "page_size"), ({"page_size": 1001}, "page_size")])
def test_check_account_run_with_a_bound_broken_fails_naming_the_parameter(parameters, name, prefect_harness):
    """The flow checks its bounds itself (a run from the UI or the API never reaches the account)."""
    from prefect.exceptions import ParameterTypeError

    from blocks import PostDicomCredentials

    credentials = PostDicomCredentials(username="u", password="p", web_address="http://127.0.0.1:9")
    with pytest.raises(ParameterTypeError) as raised:
        check_account(credentials, **parameters)
    assert name in str(raised.value)


class FakeState:
    """What ``_Tour.run`` reads of a task's final state."""

    def __init__(self, value):
        self.value, self.message = value, None

    def result(self, raise_on_failure=False):
        return self.value

    def is_completed(self):
        return not isinstance(self.value, BaseException)


def test_identifiers_used_as_keys_are_redacted_in_the_report():
    """A .NET dictionary answers an object keyed by identifiers: the report names keys, so they are masked."""
    from flows.check import _Tour
    from postdicom.answers import decode_answer
    from postdicom.models import SearchFolderAnswer

    folder, patient_id = "5b1d2c3e-4f50-4a61-8b72-9c83d4e5f601", "20231118042"
    body = {"FolderList": {folder: {"FolderName": "x", patient_id: 1}}}
    answer = decode_answer("SearchFolder", SearchFolderAnswer, json.dumps(body).encode())
    assert folder in str(answer.reading.unknown_keys)  # the client keeps what was sent
    tour = _Tour(CheckReport(server="http://h", dialect="postdicom", started="now", write_test=False))
    tour.run("folders", "SearchFolder", lambda return_state: FakeState(answer))
    [step] = tour.report.steps
    assert step.understood is False  # its one row has no documented key
    assert step.unknown_keys and all("<uuid>" in key for key in step.unknown_keys)
    text = tour.report.model_dump_json() + tour.report.table()
    assert folder not in text and patient_id not in text
    assert "<uuid>" in json.dumps(step.outline) and "<digits>" in json.dumps(step.outline)


def test_an_order_still_there_after_its_delete_is_a_failed_step_and_left_behind():
    import httpx

    from flows.check import _confirm_gone, _Tour
    from tests.fixtures.mock_server import Recorder, credentials_for

    order = "0c6e1f8a-3b7d-4c2e-9a51-7d2f0e6b1a01"
    credentials = credentials_for(Recorder(lambda request: httpx.Response(200, json={"PatientOrderUuid": order})))
    tour = _Tour(CheckReport(server="http://h", dialect="postdicom", started="now", write_test=True))
    _confirm_gone(tour, credentials, "4f33177f-8441-4143-bb35-184dd57f47d8", order)
    [step] = tour.report.steps
    assert step.result == "failed" and "STILL THERE" in step.detail and not tour.report.ok
    assert tour.report.left_behind == ["the synthetic order (DeletePatientOrder did not remove it)"]


def test_leftover_test_orders_are_picked_out_of_the_listing_once(prefect_harness, monkeypatch):
    """The listing is filtered once: the count shown and the orders deleted are the same list."""
    import httpx

    import flows.check as check
    from tests.fixtures.mock_server import O2, ORDER_SUMMARY, Recorder, credentials_for, documented_answer

    synthetic = {**ORDER_SUMMARY, "PatientName": check.TEST_PATIENT_NAME, "PatientOrderUuid": O2,
                 "PatientBirthdate": check.TEST_BIRTH_DATE.isoformat(), "PatientId": f"{check.TEST_PATIENT_ID_PREFIX}x"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/getpatientorderlist"):
            return httpx.Response(200, json={"PatientOrderList": [ORDER_SUMMARY, synthetic]})
        return documented_answer(request)

    filtered: list[int] = []
    leftovers = check._leftovers
    monkeypatch.setattr(check, "_leftovers", lambda orders: filtered.append(len(orders)) or leftovers(orders))
    server = Recorder(answer)
    tour = check._Tour(CheckReport(server="http://h", dialect="postdicom", started="now", write_test=True))
    check._remove_leftovers(tour, credentials_for(server))
    assert filtered == [2]
    listed, deleted = tour.report.steps
    assert listed.detail == "1 from an interrupted write test" and deleted.name == "delete a leftover test order"
    assert [p for p in server.paths() if p == "/deleteorder"] == ["/deleteorder"]


def test_redaction_and_outline_keep_no_value():
    text = redact("GET http://h/dicomweb/studies/1.2.840.113619.2.5/series | user ana@example.org | "
                  "order 6f1c0d7e-1111-4a6b-9c3d-0a1b2c3d4e5f | http://h/share/AbC-123_x | PID 12345678")
    assert text == ("GET http://h/dicomweb/studies/<uid>/series | user <e-mail> | order <uuid> | "
                    "http://h/share/<token> | PID <digits>")
    assert outline({"A": [{"b": "x", "c": 1, "d": None, "e": True}, {}], "F": []}) == {
        "A": [{"b": "string", "c": "number", "d": "null", "e": "boolean"}, "(2 item(s))"], "F": []}
    assert json.dumps(outline({"PatientName": "Muñoz"})) == '{"PatientName": "string"}'
