"""The run forms Prefect draws from each flow's parameter schema: titles, help, selects, typed rows."""

from __future__ import annotations

import inspect

import pytest
from prefect.utilities.callables import parameter_schema

from flows import batch_reassignment, bulk_upload_and_share, nightly_order_export

FLOWS = [bulk_upload_and_share, nightly_order_export, batch_reassignment]

PROMISED = {
    bulk_upload_and_share: ["credentials", "directory", "expire_date", "share_password", "downloadable", "folder_name"],
    nightly_order_export: ["credentials", "destination", "study_date_from", "study_date_to"],
    batch_reassignment: ["credentials", "assignments", "dry_run"],
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
    assert properties["concurrency_limit_name"]["type"] == "string", "empty disables it: no string/None toggle"
