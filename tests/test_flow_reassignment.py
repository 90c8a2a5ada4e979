"""batch_reassignment: input reading and validation offline, then the flow on the sandbox."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from flows._common import AssignmentCandidate, plan_assignments
from flows.reassignment import read_assignment_rows, validate_rows

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
        ORDER_A: {"PatientOrderUuid": ORDER_A, "AssignedUserUuid": USER_1},
        ORDER_B: {"patientorderuuid": ORDER_B, "assigneduseruuid": USER_2},
    }
    to_send, decided = plan_assignments(candidates, orders, dry_run=False)
    assert [(item.row, item.current_uuid) for item in to_send] == [(2, USER_2)]
    assert {(r.row, r.status) for r in decided} == {(1, "unchanged"), (3, "skipped")}
    assert "unknown order" in next(r.reason for r in decided if r.row == 3)

    to_send, decided = plan_assignments(candidates, orders, dry_run=True)
    assert to_send == []
    dry = next(r for r in decided if r.row == 2)
    assert dry.status == "skipped" and dry.reason.startswith("dry run: would assign") and dry.previous_uuid == USER_2
