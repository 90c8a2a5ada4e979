"""The written-out client methods and the endpoint table cannot drift apart.

Each of the 13 methods of ``PostDicomClient`` is written out by hand in
``postdicom/endpoints.py``; its row in ``postdicom/endpoint_table.py`` is what
the engine encodes. These tests fail when a parameter is added, renamed,
reordered, typed differently or made optional on one side only.
"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

from postdicom import PostDicomClient, endpoint_table, endpoints

ROWS = {row.python_name: row for row in endpoint_table.ENDPOINTS}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_method_has_its_rows_parameters(name):
    row = ROWS[name]
    method = getattr(PostDicomClient, name)
    assert method.__qualname__ == f"CustomEndpointsMixin.{name}"  # written out, not generated
    actual = list(inspect.signature(method).parameters.values())[1:]
    expected = row.signature_parameters()
    assert [(p.name, p.default) for p in actual] == [(p.name, p.default) for p in expected]
    hints = typing.get_type_hints(method)
    for p in expected:
        assert hints[p.name] == p.annotation, p.name
    assert hints["return"] is row.answer


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
    defined = {n for n, v in vars(endpoints.CustomEndpointsMixin).items() if inspect.isfunction(v)}
    assert defined == set(ROWS)


def test_a_method_that_looks_before_it_creates_says_so():
    for name, row in ROWS.items():
        if row.lookup is not None:
            doc = inspect.getdoc(getattr(PostDicomClient, name)) or ""
            assert "GetPatientOrderList" in doc or "SearchFolder" in doc or "GetPatientOrderProperties" in doc, name
    assert "SearchFolder request is sent *first*" in (inspect.getdoc(PostDicomClient.create_folder) or "")


def test_no_generated_stub_is_left():
    package = Path(endpoints.__file__).parent
    assert not list(package.glob("*.pyi"))
