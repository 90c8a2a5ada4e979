"""batch_reassignment: input reading and validation offline, then the flow on the sandbox."""

from __future__ import annotations

import datetime as dt
import uuid

import pandas as pd
import pytest
from prefect.client.orchestration import get_client

from flows import batch_reassignment
from postdicom.models import PatientOrderSummary
from flows.assignment import AssignmentCandidate, plan_assignments
from flows.reassignment import read_assignment_rows, validate_rows
from flows.window import take_chunks
from tests.fixtures.sandbox_server import sandbox_faults
from tests.test_flow_upload_and_share import task_run_names

ORDER_A = str(uuid.uuid4())
ORDER_B = str(uuid.uuid4())
USER_1 = str(uuid.uuid4())
USER_2 = str(uuid.uuid4())
GROUP_1 = str(uuid.uuid4())


# ----------------------------------------------------------------- offline: reading and validating


def test_csv_and_parquet_read_the_same_rows_with_vendor_or_snake_headers(tmp_path):
    frame = pd.DataFrame(
        {
            "PatientOrderUuid": [ORDER_A, ORDER_B],
            "AssignedUserUuid": [USER_1, ""],
            "AssignedUserGroupUuid": ["", GROUP_1],
        }
    )
    frame.to_csv(tmp_path / "rows.csv", index=False)
    frame.replace("", None).to_parquet(tmp_path / "rows.parquet")

    from_csv = validate_rows(read_assignment_rows(str(tmp_path / "rows.csv")))
    from_parquet = validate_rows(read_assignment_rows(tmp_path / "rows.parquet"))

    for candidates, skipped in (from_csv, from_parquet):
        assert skipped == []
        assert [(c.patient_order_uuid, c.target, c.target_uuid) for c in candidates] == [
            (ORDER_A, "user", USER_1),
            (ORDER_B, "group", GROUP_1),
        ]


def test_a_csv_read_in_pieces_gives_the_rows_and_errors_of_one_read(tmp_path, monkeypatch):
    """The CSV is read ``FILE_ROWS_PER_READ`` rows at a time; nothing changes at the pieces' edges.

    A byte-order mark, quoted commas and line breaks, empty cells, blank lines, compression, and
    pandas' own error for a row with a field too many (its line counted over the whole file).
    """
    import gzip

    import flows.reassignment as reassignment

    monkeypatch.setattr(reassignment, "FILE_ROWS_PER_READ", 2)
    text = (
        "\ufeffPatientOrderUuid,Assigned User Uuid,AssignedUserGroupUuid\n"
        f'"{ORDER_A}",{USER_1},\n'
        f'"{ORDER_B}",,{GROUP_1}\n'
        "\n"
        '"not, a uuid","two\nlines",\n'
        ",,\n"
        f"{ORDER_A},{USER_2},\n"
    )
    (tmp_path / "rows.csv.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    columns = ("patient_order_uuid", "assigned_user_uuid", "assigned_user_group_uuid")
    assert read_assignment_rows(str(tmp_path / "rows.csv.gz")) == [
        dict(zip(columns, values))
        for values in [
            (ORDER_A, USER_1, ""), (ORDER_B, "", GROUP_1), ("not, a uuid", "two\nlines", ""), ("", "", ""),
            (ORDER_A, USER_2, ""),
        ]
    ]
    (tmp_path / "ragged.csv").write_text("patient_order_uuid,assigned_user_uuid\n1,2\n3,4\n5,6\n7,8,9\n")
    with pytest.raises(pd.errors.ParserError, match="Expected 2 fields in line 5, saw 3"):
        read_assignment_rows(str(tmp_path / "ragged.csv"))


def test_a_csv_with_a_comma_at_the_end_of_every_row_reads_as_meant(tmp_path, monkeypatch):
    """Spreadsheet exports end each row with a comma: one field more than the header names.

    pandas alone reads the first field as the index and shifts the columns (the order got the user's
    UUID); the empty fields past the header are dropped instead, across pieces, also two of them.
    """
    import flows.reassignment as reassignment

    monkeypatch.setattr(reassignment, "FILE_ROWS_PER_READ", 2)
    header = "patient_order_uuid,assigned_user_uuid,assigned_user_group_uuid\n"
    rows = [(ORDER_A, USER_1, ""), (ORDER_B, "", GROUP_1), (ORDER_B, USER_2, "")]
    columns = header.strip().split(",")
    for ending in (",", ",,"):
        path = tmp_path / f"export{len(ending)}.csv"
        path.write_text(header + "".join(",".join(row) + ending + "\n" for row in rows))
        assert read_assignment_rows(str(path)) == [dict(zip(columns, row)) for row in rows]
    candidates, skipped = validate_rows(read_assignment_rows(str(tmp_path / "export1.csv")))
    assert skipped == []
    assert [(c.row, c.patient_order_uuid, c.target_uuid) for c in candidates] == [
        (1, ORDER_A, USER_1), (2, ORDER_B, GROUP_1), (3, ORDER_B, USER_2),
    ]


def test_a_csv_row_with_a_value_past_the_header_is_an_error_naming_the_row(tmp_path, monkeypatch):
    """A filled field past the header is not dropped (pandas' ``index_col=False`` would drop it silently)."""
    import flows.reassignment as reassignment

    monkeypatch.setattr(reassignment, "FILE_ROWS_PER_READ", 2)
    path = tmp_path / "rows.csv"
    path.write_text(
        "patient_order_uuid,assigned_user_uuid\n"
        f"{ORDER_A},{USER_1},\n{ORDER_B},{USER_1},\n\n{ORDER_A},{USER_2},{GROUP_1}\n"
    )
    with pytest.raises(ValueError, match=r"CSV row 3 \(counted from the first row after the header\) has a value in "
                       r"field 3, past the 2 columns the header names") as raised:
        read_assignment_rows(str(path))
    assert GROUP_1 not in str(raised.value), "the cell's value is not repeated (it may be patient data)"


def test_more_rows_than_the_setting_are_refused_naming_it_the_count_and_the_source(tmp_path, monkeypatch):
    """``POSTDICOM_REASSIGNMENT_MAX_ROWS`` bounds inline rows, Parquet (by its footer) and CSV (read no further)."""
    import flows.reassignment as reassignment
    from flows.reassignment import MAX_ROWS_ENV

    monkeypatch.setattr(reassignment, "FILE_ROWS_PER_READ", 2)
    monkeypatch.setenv(MAX_ROWS_ENV, "3")
    rows = [{"patient_order_uuid": str(uuid.uuid4()), "assigned_user_uuid": USER_1} for _ in range(4)]
    assert read_assignment_rows(rows[:3]) == rows[:3], "as many rows as the setting are taken"
    with pytest.raises(ValueError, match=rf"the inline assignments has 4 rows, and {MAX_ROWS_ENV} \(.*\) is 3;"):
        read_assignment_rows(rows)

    pd.DataFrame(rows).to_parquet(tmp_path / "four.parquet", row_group_size=1)
    assert read_assignment_rows(str(tmp_path / "four.parquet"), most_rows=4) == rows, "read in batches, in order"
    with pytest.raises(ValueError, match=rf"assignments file 'four.parquet' has 4 rows, and {MAX_ROWS_ENV}"):
        read_assignment_rows(str(tmp_path / "four.parquet"))

    # rows 5 and 6 are a piece the read never reaches: the ragged row 6 would otherwise be pandas' error
    text = pd.DataFrame(rows).to_csv(index=False) + f"{ORDER_A},{USER_1}\n{ORDER_B},{USER_1},{GROUP_1},x\n"
    (tmp_path / "six.csv").write_text(text)
    with pytest.raises(ValueError, match=rf"assignments file 'six.csv' has more than 3 rows, and {MAX_ROWS_ENV}"):
        read_assignment_rows(str(tmp_path / "six.csv"))
    with pytest.raises(pd.errors.ParserError, match="line 7"):
        read_assignment_rows(str(tmp_path / "six.csv"), most_rows=10)


def open_paths() -> set[str]:
    """The files this process has open (what keeps a file from being removed on Windows)."""
    import psutil

    return {handle.path for handle in psutil.Process().open_files()}


@pytest.mark.parametrize("name", ["rows.csv", "rows.csv.gz"])
def test_a_csv_over_the_row_limit_is_closed_while_its_error_is_kept(tmp_path, monkeypatch, name):
    """The error's traceback holds the reading frame; the file it read must be closed all the same.

    Otherwise a worklist refused for its size stays open (on Windows: cannot be moved or removed) for as long
    as the error is kept: in a flow run's failed state, to the end of the process.
    """
    import flows.reassignment as reassignment
    from flows.reassignment import MAX_ROWS_ENV

    monkeypatch.setattr(reassignment, "FILE_ROWS_PER_READ", 2)
    monkeypatch.setenv(MAX_ROWS_ENV, "3")
    path = tmp_path / name
    pd.DataFrame([{"patient_order_uuid": str(uuid.uuid4()), "assigned_user_uuid": USER_1}] * 6).to_csv(
        path, index=False
    )
    with pytest.raises(ValueError, match=MAX_ROWS_ENV) as raised:
        read_assignment_rows(str(path))
    assert raised.traceback, "the error and its frames are still held here"
    assert str(path) not in open_paths()
    path.unlink()


@pytest.mark.parametrize("value", ["0", "-5", "2.5", "many"])
def test_a_bad_max_rows_setting_is_refused_naming_it(monkeypatch, value):
    from flows.reassignment import DEFAULT_MAX_ROWS, MAX_ROWS_ENV, max_rows

    monkeypatch.delenv(MAX_ROWS_ENV, raising=False)
    assert max_rows() == DEFAULT_MAX_ROWS == 100_000
    monkeypatch.setenv(MAX_ROWS_ENV, value)
    with pytest.raises(ValueError, match=MAX_ROWS_ENV):
        max_rows()


@pytest.fixture
def files_over_http(tmp_path):
    """``tmp_path`` served over HTTP on loopback (a thread); yields the base URL."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_parquet_file_is_read_from_a_path_a_file_url_an_http_url_or_an_fsspec_url(
    tmp_path, monkeypatch, files_over_http
):
    """The paths and URLs ``pd.read_parquet`` accepts, through pyarrow, urllib or fsspec (no pandas internals)."""
    import fsspec

    rows = [{"patient_order_uuid": ORDER_A, "assigned_user_uuid": USER_1}]
    path = tmp_path / "rows.parquet"
    pd.DataFrame(rows).to_parquet(path)
    in_memory = f"memory://{uuid.uuid4().hex}/rows.parquet"
    with fsspec.open(in_memory, "wb") as memory:
        memory.write(path.read_bytes())
    monkeypatch.chdir(tmp_path)
    for location in (str(path), "rows.parquet", path.as_uri(), f"{files_over_http}/rows.parquet",
                     f"{files_over_http}/rows.parquet?version=2", in_memory):
        assert read_assignment_rows(location) == rows, location


def test_an_unreadable_parquet_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "notes.parquet").write_text("patient_order_uuid,assigned_user_uuid\n")
    with pytest.raises(ValueError, match=r"assignments file 'notes.parquet' could not be read as Parquet from a local "
                       "path: .*magic bytes"):
        read_assignment_rows(str(tmp_path / "notes.parquet"))
    with pytest.raises(ValueError, match=r"assignments file 'rows.parquet' could not be read as Parquet from "
                       "a nosuch:// URL: Protocol not known: nosuch"):
        read_assignment_rows("nosuch://bucket/rows.parquet")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        read_assignment_rows(str(tmp_path / "missing.parquet"))


def test_a_file_of_unknown_format_is_refused_before_anything_else(tmp_path):
    path = tmp_path / "rows.xlsx"
    path.write_bytes(b"not read")
    with pytest.raises(ValueError, match="csv or \\*.parquet"):
        read_assignment_rows(str(path))


def test_validation_reports_every_bad_row_with_its_reason():
    rows = [
        {"patient_order_uuid": ORDER_A, "assigned_user_uuid": USER_1},  # 1 good
        {"patient_order_uuid": "not-a-uuid", "assigned_user_uuid": USER_1},  # 2
        {"patient_order_uuid": ORDER_B},  # 3 no target
        {"patient_order_uuid": ORDER_B, "assigned_user_uuid": USER_1, "assigned_user_group_uuid": GROUP_1},  # 4
        {"patient_order_uuid": ORDER_B, "assigned_user_uuid": "12345"},  # 5 bad target
        {"assigned_user_uuid": USER_1},  # 6 no order
        "just a string",  # 7
        {"patient_order_uuid": ORDER_A.upper(), "assigned_user_uuid": USER_1},  # 8 duplicate of 1
        {"patient_order_uuid": ORDER_A, "assigned_user_group_uuid": GROUP_1},  # 9 group: no conflict with 1
    ]
    candidates, skipped = validate_rows(read_assignment_rows(rows))

    assert [(c.row, c.target) for c in candidates] == [(1, "user"), (9, "group")]
    reasons = {result.row: result.reason for result in skipped}
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 8}
    assert all(result.status == "skipped" for result in skipped)
    assert "not a UUID" in reasons[2]
    assert "no assigned_user_uuid" in reasons[3]
    assert "both" in reasons[4]
    assert "assigned_user_uuid is not a UUID" in reasons[5]
    assert "missing" in reasons[6]
    assert "not a row" in reasons[7]
    assert reasons[8] == "duplicate of row 1"


def test_conflicting_rows_are_all_skipped_rather_than_guessed():
    rows = [
        {"patient_order_uuid": ORDER_A, "assigned_user_uuid": USER_1},
        {"patient_order_uuid": ORDER_A, "assigned_user_uuid": USER_2},
        {"patient_order_uuid": ORDER_A, "assigned_user_uuid": USER_1},
    ]
    candidates, skipped = validate_rows(rows)
    assert candidates == []
    assert sorted(result.row for result in skipped) == [1, 2, 3]
    assert all(result.reason.startswith("conflict: rows 1, 2, 3") for result in skipped)


def test_plan_compares_with_the_current_assignment_and_a_dry_run_sends_nothing():
    candidates = [
        AssignmentCandidate(row=1, patient_order_uuid=ORDER_A, target="user", target_uuid=USER_1),
        AssignmentCandidate(row=2, patient_order_uuid=ORDER_B, target="user", target_uuid=USER_1),
        AssignmentCandidate(row=3, patient_order_uuid=str(uuid.uuid4()), target="group", target_uuid=GROUP_1),
    ]
    orders = {
        ORDER_A: PatientOrderSummary.model_validate({"PatientOrderUuid": ORDER_A, "AssignedUserUuid": USER_1}),
        ORDER_B: PatientOrderSummary.model_validate({"patientorderuuid": ORDER_B, "assigneduseruuid": USER_2}),
    }
    to_send, decided = plan_assignments(candidates, orders, dry_run=False)
    assert [(item.row, item.current_uuid) for item in to_send] == [(2, USER_2)]
    assert {(r.row, r.status) for r in decided} == {(1, "unchanged"), (3, "skipped")}
    assert "unknown order" in next(r.reason for r in decided if r.row == 3)

    to_send, decided = plan_assignments(candidates, orders, dry_run=True)
    assert to_send == []
    dry = next(r for r in decided if r.row == 2)
    assert dry.status == "skipped" and dry.reason.startswith("dry run: would assign") and dry.previous_uuid == USER_2


# ----------------------------------------------------------------- on the sandbox


def make_orders(
    info, count: int, *, modality: str = "CT", study_date: dt.date | None = None, institution_uuid: str | None = None
) -> list[str]:
    """``count`` new scheduled orders with unique patient ids and accession numbers (shared sandbox).

    In ``institution_uuid``, by default the account's first institution.
    """
    tag = uuid.uuid4().hex[:8]
    scheduled = dt.datetime.combine(study_date or dt.date(2026, 1, 5), dt.time(9, 0))
    with info.client() as client:
        return [
            client.create_patient_order(
                institution_uuid=institution_uuid or info.extra["institution_uuid"],
                patient_name=f"Reassign^Patient{n}",
                patient_id=f"RA-{tag}-{n}",
                patient_birthdate=dt.date(1980, 1, 1),
                modality=modality,
                accession_number=f"RA-{tag}-{n}",
                order_scheduled_datetime=scheduled,
            ).raw["PatientOrderUuid"]
            for n in range(count)
        ]


def assignments_of(info, order_uuids: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """``{order: (assigned user, assigned group)}`` read back from the order properties."""
    out = {}
    with info.client() as client:
        for order in order_uuids:
            raw = client.get_patient_order_properties(
                patient_order_institution_uuid=info.extra["institution_uuid"], patient_order_uuid=order
            ).raw
            out[order] = (raw["AssignedUserUuid"], raw["AssignedUserGroupUuid"])
    return out


def run(**parameters):
    """Run the flow; return ``(state, report)`` whether it ended Completed or Failed."""
    state = batch_reassignment(return_state=True, **parameters)
    result = state.result(raise_on_failure=False)
    return state, getattr(result, "report", result)


@pytest.mark.parametrize(
    ("rows", "size", "slots", "sizes"),
    [
        (1000, 100, 4, [84] * 4 + [83] * 8),  # 12 batches, three full waves: not 10 of 100, the last wave half idle
        (1000, 25, 4, [25] * 40),  # already a multiple of the slots: unchanged
        (200, 100, 4, [50] * 4),  # fewer rows than slots x size: every slot still gets a batch
        (3, 100, 4, [1] * 3),  # never an empty batch
        (7, 3, 1, [3, 2, 2]),
        (0, 25, 4, []),
    ],
)
def test_batches_are_evened_out_to_a_multiple_of_the_slots(rows, size, slots, sizes):
    items = list(range(rows))
    batches = list(take_chunks(items, size, waves_of=slots))
    assert [len(batch) for batch in batches] == sizes
    assert [row for batch in batches for row in batch] == list(range(rows)), "every row once, in order"
    assert items == [], "the rows are taken out as the batches go"


def batch_run_names(state, expected: int, timeout: float = 60.0) -> list[str]:
    """The task-run names of the run, once ``expected`` ``assign-orders-batch`` runs are recorded (or ``timeout``).

    Task runs reach Prefect's database through its event stream, a moment after the flow returns.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        names = task_run_names(state)
        if sum(name.startswith("assign-orders-batch") for name in names) >= expected or time.monotonic() > deadline:
            return sorted(names)
        time.sleep(0.5)


def per_row_runs(names: list[str]) -> list[str]:
    """Task runs of the documented assign tasks: rows are sent by their batch's client, never one task run each."""
    return [name for name in names if name.startswith("assign_order_to_user")]


@pytest.fixture(scope="module")
def people(sandbox_server):
    institution = sandbox_server.extra["account"]["Institutions"][0]
    return {
        "ana": institution["Users"][0]["UserUuid"],
        "ben": institution["Users"][1]["UserUuid"],
        "neuro": institution["UserGroups"][0]["UserGroupUuid"],
        "other_institution_user": sandbox_server.extra["account"]["Institutions"][1]["Users"][0]["UserUuid"],
    }


def test_a_csv_of_200_rows_assigns_every_good_row_and_reports_the_bad_ones(
    prefect_harness, sandbox_server, people, tmp_path
):
    orders = make_orders(sandbox_server, 197)
    def row(order: str, user: str = "", group: str = "") -> dict[str, str]:
        return {"patient_order_uuid": order, "assigned_user_uuid": user, "assigned_user_group_uuid": group}

    rows = [
        row(order, user=people["ana"]) if n % 2 else row(order, group=people["neuro"])
        for n, order in enumerate(orders[:196])
    ]
    rows += [
        row("definitely-not-a-uuid", user=people["ana"]),  # 197
        row(str(uuid.uuid4()), user=people["ana"]),  # 198: no such order
        row(orders[0], group=people["neuro"]),  # 199: same as row 1
        row(orders[196], user=people["other_institution_user"]),  # 200: the server refuses (404)
    ]
    path = tmp_path / "handover.csv"
    pd.DataFrame(rows).to_csv(path, index=False)

    dry_state, dry = run(credentials=sandbox_server.credentials(), assignments_file=str(path), dry_run=True)
    assert dry_state.is_completed()
    with get_client(sync_client=True) as prefect_client:
        name = prefect_client.read_flow_run(dry_state.state_details.flow_run_id).name
    assert name == "reassign-handover.csv-dry-run", "named after the file, given as assignments_file"
    assert set(assignments_of(sandbox_server, orders[:10]).values()) == {(None, None)}
    assert dry.counts["skipped"] == 200 and dry.counts["assigned"] == 0
    assert sum(r.reason.startswith("dry run: would assign") for r in dry.rows) == 197

    state, report = run(credentials=sandbox_server.credentials(), assignments=str(path), concurrency=3, batch_size=40)

    assert state.is_failed()  # row 200 names a user of another institution; 197 and 198 were not applied either
    assert "partly applied: 3 of 200 rows not applied" in str(state.result(raise_on_failure=False))
    (table,) = rows_artifacts(state)
    assert list(table[0])[:3] == ["row", "status", "reason"], "the reason is on screen before the UUID columns"
    assert [r.row for r in report.rows] == list(range(1, 201))
    by_row = {r.row: r for r in report.rows}
    assert by_row[197].status == "skipped" and "not a UUID" in by_row[197].reason
    assert by_row[198].status == "skipped" and "unknown order" in by_row[198].reason
    assert by_row[199].status == "skipped" and by_row[199].reason == "duplicate of row 1"
    assert by_row[200].status == "failed" and "404" in by_row[200].reason
    assert report.counts == {"assigned": 196, "unchanged": 0, "failed": 1, "skipped": 3}
    names = batch_run_names(state, 6)
    # 197 rows to send in batches of at most 40 for 3 slots: 6 batches (two full waves) of 32-33, not 5 of 40
    assert [name for name in names if name.startswith("assign-orders-batch")] == [
        "assign-orders-batch: 32 rows of 166-200",  # rows 197-199 were decided before sending
        "assign-orders-batch: rows 1-33",
        "assign-orders-batch: rows 100-132",
        "assign-orders-batch: rows 133-165",
        "assign-orders-batch: rows 34-66",
        "assign-orders-batch: rows 67-99",
    ]
    assert per_row_runs(names) == []
    current = assignments_of(sandbox_server, orders)
    assert current[orders[196]] == (None, None)
    for n, order in enumerate(orders[:196]):
        expected = (people["ana"], None) if n % 2 else (None, people["neuro"])
        assert current[order] == expected

    state, rerun = run(credentials=sandbox_server.credentials(), assignments=str(path))
    assert rerun.counts["unchanged"] == 196 and rerun.counts["assigned"] == 0


def rows_artifacts(state) -> list[list[dict]]:
    """The table artifact(s) ``batch-reassignment-rows`` of the run, as lists of rows."""
    import json

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as prefect_client:
        artifacts = prefect_client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["batch-reassignment-rows"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
        )
    return [json.loads(a.data) if isinstance(a.data, str) else a.data for a in artifacts]


def test_a_run_with_an_unknown_order_is_not_green_even_when_every_send_worked(
    prefect_harness, sandbox_server, people
):
    (order,) = make_orders(sandbox_server, 1)
    rows = [
        {"patient_order_uuid": order, "assigned_user_uuid": people["ana"]},
        {"patient_order_uuid": str(uuid.uuid4()), "assigned_user_uuid": people["ana"]},
        {"patient_order_uuid": order, "assigned_user_uuid": people["ana"]},  # a duplicate is carried by row 1
    ]
    state, report = run(credentials=sandbox_server.credentials(), assignments=rows)
    assert state.is_failed(), "a row was not applied"
    assert "1 of 3 rows not applied" in str(state.result(raise_on_failure=False))
    assert report.counts == {"assigned": 1, "unchanged": 0, "failed": 0, "skipped": 2}
    assert assignments_of(sandbox_server, [order])[order] == (people["ana"], None)

    dry_state, _ = run(credentials=sandbox_server.credentials(), assignments=rows, dry_run=True)
    assert dry_state.is_completed(), "a dry run applies nothing by request"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"assignments": [], "modality_list": ["CT"]}, "either assignments or a selection"),
        ({"assignments": "worklist.xlsx"}, "*.csv or *.parquet"),
        ({"assigned_user_uuid": USER_1}, "at least one filter"),
        ({"modality_list": ["CT"], "assigned_user_uuid": "ana"}, "must be a UUID"),
        ({"assignments": [], "batch_size": 0}, "batch_size"),
        ({"assignments": [], "assignments_file": "rows.csv"}, "assignments (rows) or assignments_file, not both"),
    ],
)
def test_bad_parameters_end_the_run_failed_with_a_clear_message(prefect_harness, sandbox_server, parameters, message):
    state, _ = run(credentials=sandbox_server.credentials(), **parameters)
    assert state.is_failed()
    assert message in str(state.result(raise_on_failure=False))
    with get_client(sync_client=True) as prefect_client:
        stored = prefect_client.read_flow_run(state.state_details.flow_run_id)
    assert stored.state is not None and stored.state.is_failed(), "never left Pending"


def test_a_selection_by_modality_and_date_reassigns_exactly_the_matching_orders(
    prefect_harness, sandbox_server, people
):
    day = dt.date(2025, 3, 1) + dt.timedelta(days=uuid.uuid4().int % 300)
    matching = make_orders(sandbox_server, 4, modality="MR", study_date=day)
    other_modality = make_orders(sandbox_server, 2, modality="CT", study_date=day)
    other_day = make_orders(sandbox_server, 2, modality="MR", study_date=day + dt.timedelta(days=1))

    state, report = run(
        credentials=sandbox_server.credentials(),
        modality_list=["MR"],
        study_date_from=day,
        study_date_to=day,
        assigned_user_uuid=people["ben"],
    )

    assert state.is_completed()
    names = batch_run_names(state, 4)
    assert names.count("read-order-index: all institutions") == 1, "the order list is read once, by one task run"
    assert [name for name in names if name.startswith("assign-orders-batch")] == [
        f"assign-orders-batch: row {row}" for row in range(1, 5)
    ], "4 rows for the 4 slots of the default concurrency: a batch each"
    assert per_row_runs(names) == []
    assert sorted(r.patient_order_uuid for r in report.rows if r.status == "assigned") == sorted(matching)
    current = assignments_of(sandbox_server, matching + other_modality + other_day)
    assert all(current[o] == (people["ben"], None) for o in matching)
    assert all(current[o] == (None, None) for o in other_modality + other_day)


def test_a_selection_over_the_max_rows_setting_fails_before_any_write(prefect_harness, sandbox_server, people,
                                                                      monkeypatch):
    from flows.reassignment import MAX_ROWS_ENV

    day = dt.date(2018, 1, 1) + dt.timedelta(days=uuid.uuid4().int % 300)
    orders = make_orders(sandbox_server, 3, modality="MR", study_date=day)
    selection = dict(
        credentials=sandbox_server.credentials(), modality_list=["MR"], study_date_from=day, study_date_to=day,
        assigned_user_uuid=people["ben"],
    )
    monkeypatch.setenv(MAX_ROWS_ENV, "2")
    state, _ = run(**selection)
    assert state.is_failed()
    assert f"the selection has 3 rows, and {MAX_ROWS_ENV} (the most rows one run takes) is 2" in str(
        state.result(raise_on_failure=False)
    )
    monkeypatch.setenv(MAX_ROWS_ENV, "two")
    state, _ = run(**selection)
    assert state.is_failed() and MAX_ROWS_ENV in str(state.result(raise_on_failure=False))
    assert set(assignments_of(sandbox_server, orders).values()) == {(None, None)}, "nothing was written"
    monkeypatch.setenv(MAX_ROWS_ENV, "3")
    state, report = run(**selection)
    assert state.is_completed() and report.counts["assigned"] == 3


def test_an_order_list_over_the_json_cap_fails_naming_the_setting_and_what_was_read(
    prefect_harness, sandbox_server, people, monkeypatch
):
    """GetPatientOrderList is one answer under ``POSTDICOM_MAX_JSON_BYTES``, 0.6-0.7 KB an order.

    64 MiB holds about 100,000 orders: a selection can pass it before ``POSTDICOM_REASSIGNMENT_MAX_ROWS``,
    and rows (a file, inline) are looked up in every order of the account, however few they are. Here the
    cap is under six orders' size. The error says which list it was, about how many orders the cap holds,
    the setting(s) to raise, and that nothing was changed; it carries no order or patient value.
    """
    from flows.reassignment import MAX_ROWS_ENV
    from postdicom.errors import AnswerTooLargeError

    day = dt.date(2017, 1, 1) + dt.timedelta(days=uuid.uuid4().int % 300)
    orders = make_orders(sandbox_server, 6, modality="MR", study_date=day)
    monkeypatch.setenv("POSTDICOM_MAX_JSON_BYTES", "3000")
    monkeypatch.setenv(MAX_ROWS_ENV, "50")

    state, _ = run(
        credentials=sandbox_server.credentials(),
        assignments=[{"patient_order_uuid": order, "assigned_user_uuid": people["ana"]} for order in orders[:2]],
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, AnswerTooLargeError)
    assert str(error).startswith(
        "the account's order list (every order of every institution, read to look up the 2 orders the rows name: "
        "a row does not say its order's institution) is larger than POSTDICOM_MAX_JSON_BYTES allows (3,000 bytes, "
        "about 4-5 orders); nothing was changed: raise POSTDICOM_MAX_JSON_BYTES above the size of that list"
    ), str(error)

    state, _ = run(
        credentials=sandbox_server.credentials(), modality_list=["MR"], study_date_from=day, study_date_to=day,
        assigned_user_uuid=people["ben"],
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, AnswerTooLargeError)
    assert str(error).startswith(
        "the selection's order list (the orders of its institutions, modalities and study dates) is larger than "
        "POSTDICOM_MAX_JSON_BYTES allows (3,000 bytes, about 4-5 orders); nothing was changed: split the selection "
        f"over several runs (fewer study dates or institutions), or raise POSTDICOM_MAX_JSON_BYTES (and {MAX_ROWS_ENV}, "
        "50 now, if the selection has more orders than that)"
    ), str(error)
    assert not any(order.lower() in str(error).lower() for order in orders)
    assert set(assignments_of(sandbox_server, orders).values()) == {(None, None)}, "nothing was written"


def test_a_selection_split_over_several_calls_numbers_its_rows_as_one_call_would(
    prefect_harness, sandbox_server, people, monkeypatch, caplog
):
    """Rows by study date, as the server sorts one call (docs/api-answers.md), however many calls it took.

    The two institutions' orders alternate by date; with a parameter header that fits one institution,
    the search is sent as two calls, and the rows must still be numbered d1, d2, d3, d4, not the first
    call's orders and then the second's.
    """
    from postdicom.wire import MAX_HEADER_ENV

    first = dt.date(2019, 1, 1) + dt.timedelta(days=uuid.uuid4().int % 300)
    days = [first + dt.timedelta(days=n) for n in range(4)]
    institutions = [institution["InstitutionUuid"] for institution in sandbox_server.extra["account"]["Institutions"]]
    order_of_day = {}
    for n, institution in ((1, institutions[1]), (3, institutions[1]), (0, institutions[0]), (2, institutions[0])):
        (order_of_day[days[n]],) = make_orders(
            sandbox_server, 1, modality="MR", study_date=days[n], institution_uuid=institution
        )
    selection = dict(
        credentials=sandbox_server.credentials(),
        institution_uuid_list=institutions,
        modality_list=["MR"],
        study_date_from=days[0],
        study_date_to=days[-1],
        assigned_user_uuid=people["ben"],
        dry_run=True,
    )

    def numbered(report) -> list[str]:
        return [row.patient_order_uuid.lower() for row in sorted(report.rows, key=lambda row: row.row)]

    expected = [order_of_day[day].lower() for day in days]
    state, one_call = run(**selection)
    assert state.is_completed() and numbered(one_call) == expected
    monkeypatch.setenv(MAX_HEADER_ENV, "320")  # one institution's UUID fits, two do not
    with caplog.at_level("INFO", logger="postdicom"):
        state, split = run(**selection)
    assert "GetPatientOrderList: header over the safe size, sent as 2 calls" in caplog.text
    assert state.is_completed() and numbered(split) == expected


def test_neither_the_order_list_nor_a_finished_batch_is_kept_while_the_batches_run(
    prefect_harness, sandbox_server, people, monkeypatch
):
    """Once planned, the run holds no per-order object of the order list, and a finished batch's rows are let go.

    Prefect keeps the first read task run's context (and its state) alive with its tag-slot service; the
    service is started afresh here, so this run's order-list read is the one it keeps. While the batches run
    (looked at from inside each), no order-list entry (``PatientOrderSummary``) of the run's orders and no
    compact index entry (``OrderAssignment``) may be alive, and the planned rows of a batch finished before the
    previous one must be gone; after the run, none of it is left (RESULTS.md "Reassignment memory" and its
    second pass: ~3 KB per order, ~1 KB per planned row).
    """
    import gc

    from prefect.concurrency.services import ConcurrencySlotAcquisitionWithLeaseService

    import flows.assignment as assignment
    from flows.orders import OrderAssignment, OrderIndex

    def alive() -> dict[str, list]:
        gc.collect()
        found: dict[str, list] = {"entries": [], "index": [], "planned": []}
        for obj in gc.get_objects():
            if isinstance(obj, PatientOrderSummary) and str(obj.patient_order_uuid).lower() in wanted:
                found["entries"].append(obj)
            elif isinstance(obj, (OrderAssignment, OrderIndex)):
                found["index"].append(obj)
            elif isinstance(obj, assignment.PlannedAssignment) and obj.patient_order_uuid in wanted:
                found["planned"].append(obj.row)
        return found

    seen: dict[int, dict[str, list]] = {}
    real_assign_one = assignment.assign_one

    def looking_assign_one(client, item):
        if item.row % 2 == 1:  # the first row of each batch of 2
            found = alive()
            seen[item.row] = {"entries": len(found["entries"]), "index": len(found["index"]),
                              "planned": sorted(found["planned"])}
        return real_assign_one(client, item)

    monkeypatch.setattr(assignment, "assign_one", looking_assign_one)
    ConcurrencySlotAcquisitionWithLeaseService.drain_all(timeout=30)
    orders = make_orders(sandbox_server, 8)
    wanted = {order.lower() for order in orders}

    state, report = run(
        credentials=sandbox_server.credentials(),
        assignments=[{"patient_order_uuid": order, "assigned_user_uuid": people["ana"]} for order in orders],
        batch_size=2,
        concurrency=1,
    )

    assert state.is_completed()
    assert [row.status for row in report.rows] == ["assigned"] * 8
    assert sorted(seen) == [1, 3, 5, 7]
    assert all(found["entries"] == 0 and found["index"] == 0 for found in seen.values()), seen
    # rows 3-4 (the second batch) were done two batches before the last one: nothing may hold them then
    # (the first batch may stay with Prefect's tag-slot service, as the order-list read does)
    assert not {3, 4} & set(seen[7]["planned"]), seen
    after = alive()
    assert after["entries"] == [] and after["index"] == []
    assert set(after["planned"]) <= {1, 2}, after["planned"]


def test_faults_neither_lose_nor_duplicate_an_assignment(prefect_harness, sandbox_server, people):
    """Every row is accounted for under faults; the client's retries carry most rows, a rerun the rest."""
    orders = make_orders(sandbox_server, 40)
    rows = [{"patient_order_uuid": o, "assigned_user_uuid": people["ana"]} for o in orders]

    with sandbox_faults(sandbox_server, "503:0.3@custom,drop:0.15@custom"):
        state, report = run(credentials=sandbox_server.credentials(), assignments=rows, batch_size=10)

    assert [r.row for r in report.rows] == list(range(1, 41))
    failed = [r for r in report.rows if r.status == "failed"]
    assert report.counts["assigned"] + len(failed) == 40
    # a request fails 4 in 10 times here: without the client's retries about 16 rows would fail, with its
    # 4 tries per row about 1 (more than 8: a chance of about two in a million)
    assert len(failed) <= 8, [r.reason for r in failed]
    assert all(r.reason for r in failed)
    assert state.is_completed() == (not failed)
    current = assignments_of(sandbox_server, orders)
    assert all(current[r.patient_order_uuid] == (people["ana"], None) for r in report.rows if r.status == "assigned")

    state, rerun = run(credentials=sandbox_server.credentials(), assignments=rows, batch_size=10)
    assert state.is_completed()
    assert rerun.counts["assigned"] + rerun.counts["unchanged"] == 40
    assert {r.row for r in rerun.rows if r.status == "assigned"} <= {r.row for r in failed}
    assert set(assignments_of(sandbox_server, orders).values()) == {(people["ana"], None)}
