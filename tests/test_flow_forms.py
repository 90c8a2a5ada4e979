"""The run forms Prefect draws from each flow's parameter schema: titles, help, selects, typed rows."""

from __future__ import annotations

import datetime as dt
import inspect

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate

from blocks import PostDicomCredentials
from flows import batch_reassignment, bulk_upload_and_share, nightly_order_export
from flows.check import check_account

FLOWS = [bulk_upload_and_share, nightly_order_export, batch_reassignment, check_account]

PROMISED = {
    bulk_upload_and_share: ["credentials", "directory", "expire_date", "share_password", "downloadable", "folder_name"],
    nightly_order_export: ["credentials", "destination", "study_date_from", "study_date_to"],
    batch_reassignment: ["credentials", "assignments", "dry_run"],
    check_account: ["credentials", "write_test"],
}


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_every_parameter_has_a_human_title_and_a_one_line_description(flow):
    schema = parameter_schema(flow.fn).model_dump()
    properties = schema["properties"]
    assert list(properties) == list(inspect.signature(flow.fn).parameters)
    for name, field in properties.items():
        assert field.get("title") and field["title"] != name, f"{flow.name}.{name} has no title of its own"
        description = field.get("description") or ""
        assert description and "\n" not in description and len(description) <= 120, f"{flow.name}.{name}: {description!r}"


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_a_bounded_number_says_its_bounds_in_its_help_text(flow):
    """The run form drops ``minimum``/``maximum`` (seen in Prefect 3.9's UI): only the help text can show them."""
    bounded = 0
    for name, field in parameter_schema(flow.fn).model_dump()["properties"].items():
        low, high = field.get("minimum"), field.get("maximum")
        if low is None and high is None:
            continue
        bounded += 1
        last_sentence = field["description"].rsplit(". ", 1)[-1]
        for bound in (low, high):
            assert bound is None or f"{bound:g}" in last_sentence, f"{flow.name}.{name}: {field['description']!r}"
    assert bounded, f"{flow.name} has no bounded number"


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_the_promised_keyword_parameters_are_kept(flow):
    parameters = inspect.signature(flow.fn).parameters
    assert set(PROMISED[flow]) <= set(parameters)
    assert list(parameters)[: len(PROMISED[flow])] == PROMISED[flow], "positional order kept"


def test_choices_are_selects_and_lists_have_no_none_toggle():
    export = parameter_schema(nightly_order_export.fn).model_dump()["properties"]
    assert {"UTC", "Europe/Madrid", "Asia/Tokyo"} <= set(export["time_zone"]["enum"])
    assert export["time_zone"]["default"] == "UTC"
    for name in ("institution_uuid_list", "modality_list", "dicom_tag_id_list"):
        assert export[name]["type"] == "array" and "anyOf" not in export[name], name
    assert (export["lookback_days"]["default"], export["lookback_days"]["minimum"]) == (3, 0)
    upload = parameter_schema(bulk_upload_and_share.fn).model_dump()["properties"]
    assert upload["share_per"]["enum"] == ["all", "patient"]


def test_reassignment_form_has_a_file_field_apart_from_typed_rows_with_key_hints():
    schema = parameter_schema(batch_reassignment.fn).model_dump()
    properties = schema["properties"]
    assert properties["assignments_file"]["title"] == "Rows file"
    (rows,) = [choice for choice in properties["assignments"]["anyOf"] if choice.get("type") == "array"]
    assert [choice.get("type") for choice in properties["assignments"]["anyOf"]] == ["array", "null"], "no free text"
    row = schema["definitions"][rows["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(row["properties"]) == {"patient_order_uuid", "assigned_user_uuid", "assigned_user_group_uuid"}
    assert all(field.get("description") for field in row["properties"].values())
    assert all(field["type"] == "string" for field in row["properties"].values()), "no str/None toggle in a row"
    assert validate({"assignments": [{"patient_order_uuid": "o", "assigned_user_uuid": None}]}, schema,
                    raise_on_error=False, ignore_required=True) == [], "API callers may still send None"
    assert properties["concurrency_limit_name"]["type"] == "string", "empty disables it: no string/None toggle"


TOGGLES_KEPT = {
    ("bulk-upload-and-share", "share_password"),  # a Secret block picker: "None" is how a link gets no password
    ("batch-reassignment", "assignments"),  # rows, a file path (Python callers) or nothing: the flow tells them apart
}


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_optional_fields_are_plain_inputs_without_a_none_toggle(flow):
    """A ``X | None`` parameter renders a type toggle ("Property is type 'None'"); empty fields mean None instead."""
    properties = parameter_schema(flow.fn).model_dump_for_openapi()["properties"]
    toggles = {
        name
        for name, field in properties.items()
        if any(choice.get("type") == "null" for choice in field.get("anyOf", []))
    }
    assert {(flow.name, name) for name in toggles} <= TOGGLES_KEPT
    for name, field in properties.items():
        assert field.get("type") != "null" and not isinstance(field.get("type"), list), name


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_the_form_submitted_untouched_passes_the_servers_parameter_check(flow):
    """The run form loads every schema default as the field's value and sends it: each must validate.

    A ``"default": null`` on a text or date field is what the UI then refuses on
    Submit ("None is not of type 'string'"), and a date picker cannot hold "".
    """
    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    loaded = {name: field["default"] for name, field in schema["properties"].items() if "default" in field}
    assert validate(loaded, schema, raise_on_error=False, ignore_required=True) == []
    for name, field in schema["properties"].items():
        if field.get("default") == "":
            assert field["type"] == "string" and "format" not in field, f"{flow.name}.{name}: '' must be a valid value"


def test_emptied_text_and_date_fields_reach_the_flow_as_none():
    account = PostDicomCredentials(username="u@example.org", password="pw", web_address="http://127.0.0.1:9/dicomweb")
    export = nightly_order_export.validate_parameters(
        {"credentials": account, "destination": "x", "study_date_from": "", "study_date_to": "2026-03-04"}
    )
    assert export["study_date_from"] is None and export["study_date_to"] == dt.date(2026, 3, 4)
    upload = bulk_upload_and_share.validate_parameters(
        {"credentials": account, "directory": "d", "expire_date": "2026-03-04", "folder_name": "", "assign_to_user_uuid": ""}
    )
    assert upload["folder_name"] is None and upload["assign_to_user_uuid"] is None
    reassign = batch_reassignment.validate_parameters(
        {"credentials": account, "assignments_file": "", "study_date_from": "", "assigned_user_uuid": None}
    )
    assert reassign["assignments_file"] is None and reassign["study_date_from"] is None
    assert reassign["assigned_user_uuid"] is None, "Python callers may still pass None"
    with pytest.raises(Exception, match="study_date_to"):
        nightly_order_export.validate_parameters({"credentials": account, "destination": "x", "study_date_to": "4 March"})
