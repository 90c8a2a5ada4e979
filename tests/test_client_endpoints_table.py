"""The written-out client methods and the endpoint table cannot drift apart.

Each of the 13 methods of ``PostDicomClient`` is written out by hand in
``postdicom/endpoints_folders.py`` or ``postdicom/endpoints_orders.py``; its
row in ``postdicom/endpoint_table.py`` is what the engine encodes. These tests fail when a parameter is added, renamed,
reordered, typed differently or made optional on one side only. The table's
own choices (splits, labels) and the engine sending a new row are here too.
"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import httpx
import pytest

from postdicom import PostDicomClient, endpoint_table, endpoints, endpoints_folders, endpoints_orders, models, wire
from postdicom.endpoint_row import Endpoint, Safety
from tests.fixtures.endpoint_cases import WIRE_CASES
from tests.fixtures.mock_server import F1, F2, O1, params_of

ROWS = {row.python_name: row for row in endpoint_table.ENDPOINTS}
STREAMED = {"iter_patient_order_list": endpoint_table.GET_PATIENT_ORDER_LIST}
"""Methods that send a list row's call and hand its rows on as they arrive (``stream_endpoint``)."""


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_method_has_its_rows_parameters(name):
    row = ROWS[name]
    method = getattr(PostDicomClient, name)
    written_in = {endpoints_folders.FolderAndShareEndpoints, endpoints_orders.OrderEndpoints}
    assert method.__qualname__ in {f"{mixin.__name__}.{name}" for mixin in written_in}  # written out, not generated
    assert_rows_parameters(method, row)
    assert typing.get_type_hints(method)["return"] is row.answer


def assert_rows_parameters(method, row: Endpoint) -> None:
    actual = list(inspect.signature(method).parameters.values())[1:]
    expected = row.signature_parameters()
    assert [(p.name, p.default) for p in actual] == [(p.name, p.default) for p in expected]
    hints = typing.get_type_hints(method)
    for p in expected:
        assert hints[p.name] == p.annotation, p.name


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_method_documents_every_parameter_and_sends_its_own_row(name):
    method = getattr(PostDicomClient, name)
    doc = inspect.getdoc(method) or ""
    assert doc.startswith(ROWS[name].summary)
    for p in ROWS[name].params:
        assert p.name in doc, p.name
    source = inspect.getsource(method)
    rows_named = {node.attr for node in ast.walk(ast.parse(source.strip())) if isinstance(node, ast.Attribute)
                  and isinstance(node.value, ast.Name) and node.value.id == "table"}
    assert rows_named == {name.upper()}


def test_every_row_has_a_method_and_the_client_no_other_custom_method():
    halves = [endpoints_folders.FolderAndShareEndpoints, endpoints_orders.OrderEndpoints]
    defined = [n for mixin in halves for n, v in vars(mixin).items() if inspect.isfunction(v)]
    assert sorted(defined) == sorted([*ROWS, *STREAMED])
    assert endpoints.CustomEndpointsMixin.__bases__ == tuple(halves)
    assert not [n for n, v in vars(endpoints.CustomEndpointsMixin).items() if inspect.isfunction(v)]


@pytest.mark.parametrize("name", sorted(STREAMED))
def test_a_streamed_method_has_its_rows_parameters_and_sends_its_row(name):
    row = STREAMED[name]
    method = getattr(PostDicomClient, name)
    assert_rows_parameters(method, row)
    doc = inspect.getdoc(method) or ""
    for p in row.params:
        assert p.name in doc, p.name
    source = inspect.getsource(method)
    assert "self.stream_endpoint(" in source and f"table.{row.python_name.upper()}" in source


def test_a_method_that_looks_before_it_creates_says_so():
    for name, row in ROWS.items():
        if row.lookup is not None:
            doc = inspect.getdoc(getattr(PostDicomClient, name)) or ""
            assert "GetPatientOrderList" in doc or "SearchFolder" in doc or "GetPatientOrderProperties" in doc, name
    assert "SearchFolder request is sent *first*" in (inspect.getdoc(PostDicomClient.create_folder) or "")


def test_no_generated_stub_is_left():
    package = Path(endpoints.__file__).parent
    assert not list(package.glob("*.pyi"))


def test_the_split_and_refuse_choices_are_in_the_table():
    splittable = {row.python_name for row in endpoint_table.ENDPOINTS if row.split}
    assert splittable == {"get_patient_order_list", "add_order_to_folder", "get_dicom_tag_content"}
    for row in endpoint_table.ENDPOINTS:
        assert row.split or row.too_large, row.vendor_name


def test_labels_show_counts_and_hide_secrets():
    row = endpoint_table.endpoint("share_folder_with_url")
    assert row.describe({"folder_uuid": F1, "share_password": "hunter2"}) == f"share folder {F1} until *"
    row = endpoint_table.endpoint("add_order_to_folder")
    assert row.describe({"patient_order_uuid": O1, "folder_uuid_list": [F1, F2]}) == f"add order {O1} to 2 folder(s)"


@pytest.mark.parametrize(("name", "kwargs"), [(c[0], c[1]) for c in WIRE_CASES])
def test_no_label_names_a_patient_or_a_secret(name, kwargs):
    row = endpoint_table.endpoint(name)
    shown = row.describe(kwargs)
    for param in ("patient_name", "patient_id", "other_patient_id", "accession_number", "patient_birthdate",
                  "patient_complaints", "share_password"):
        value = kwargs.get(param)
        if value:
            assert str(getattr(value, "get_secret_value", lambda: value)()) not in shown, (name, param)


def test_a_fourteenth_endpoint_is_a_row_the_engine_sends(fake_server, fake_client):
    row = Endpoint(
        "GetFolderShares", "/getfoldershares", "GetFolderSharesParameters",
        (wire.Param("folder_uuid", wire.UUID, required=True), wire.Param("include_expired", wire.BOOL)),
        models.SearchFolderAnswer, Safety.READ, "List the shares of a folder.", "shares of folder {folder_uuid}",
        too_large="no list",
    )
    fake_server.script["/getfoldershares"] = [httpx.Response(200, json={"FolderList": []})]
    answer = fake_client.call_endpoint(row, {"folder_uuid": F1, "include_expired": True})
    assert isinstance(answer, models.SearchFolderAnswer) and answer.folder_list == []
    assert fake_server.requests[0].url.path == "/dicomweb/getfoldershares"
    assert params_of(fake_server.requests[0]) == {"FolderUuid": F1, "IncludeExpired": "True"}
