"""What the Prefect UI shows of the credentials block: its page and its create form."""

from __future__ import annotations

import ast
import re
from importlib import metadata

import pytest

from blocks import PostDicomCredentials
from blocks._docs import project_documentation_url


def test_code_example_is_one_fenced_python_block_that_parses() -> None:
    """The UI renders the example as code only inside a ```python fence (without it: one line of plain text)."""
    example = PostDicomCredentials.get_code_example() or ""
    match = re.fullmatch(r"\s*```python\n(.*)```\s*", example, re.DOTALL)
    assert match, example
    ast.parse(match.group(1))
    assert 'PostDicomCredentials.load("BLOCK_NAME")' in match.group(1)


def test_block_type_has_no_remote_logo_and_no_foreign_documentation_link() -> None:
    block_type = PostDicomCredentials._to_block_type()
    assert block_type.logo_url is None
    assert "dicomWeb-client" not in str(block_type.documentation_url)
    assert "README" in (block_type.description or "")


def test_password_is_a_write_only_password_field_in_the_form_schema() -> None:
    """The V2 UI renders ``format: password`` as a masked input; the secret field is listed as such."""
    schema = PostDicomCredentials.model_json_schema()
    assert schema["properties"]["password"]["format"] == "password"
    assert schema["properties"]["password"]["writeOnly"] is True
    assert schema["secret_fields"] == ["password"]


def test_documentation_link_follows_the_published_readme(monkeypatch: pytest.MonkeyPatch) -> None:
    class Published(dict):
        def get_all(self, name: str) -> list[str]:
            return ["Source, https://example.org/src", "Documentation, https://example.org/postdicom-flows/README.md"]

    monkeypatch.setattr(metadata, "metadata", lambda name: Published())
    assert str(project_documentation_url("credentials-block")) == (
        "https://example.org/postdicom-flows/README.md#credentials-block"
    )


def test_no_documentation_link_while_the_project_is_not_published(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unpublished(dict):
        def get_all(self, name: str) -> None:
            return None

    monkeypatch.setattr(metadata, "metadata", lambda name: Unpublished())
    assert project_documentation_url("credentials-block") is None
