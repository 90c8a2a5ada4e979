"""PostDicomCredentials: Prefect's block conventions, and the password kept secret."""

import json

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import ValidationError

from blocks import PostDicomCredentials
from postdicom import PostDicomClient

SECRET = "correct horse battery staple"


def _credentials(**overrides) -> PostDicomCredentials:
    values = dict(
        username="radiology@example.org",
        password=SECRET,
        web_address="https://pacs.example.org/dicomweb/",
    )
    values.update(overrides)
    return PostDicomCredentials(**values)


class TestPostDicomCredentialsStandards(BlockStandardTestSuite):
    @pytest.fixture
    def block(self):
        return PostDicomCredentials

    def test_has_a_valid_image(self, block):
        """No logo on purpose: Prefect takes only http(s) logo URLs, and a remote one is broken offline."""
        assert block._logo_url is None

    def test_has_a_documentation_url(self, block):
        """The project's own README where it is published ([project.urls] Documentation), else none: never the vendor's."""
        from blocks._docs import project_documentation_url

        assert block._documentation_url == project_documentation_url("credentials-block")


def test_password_is_never_shown():
    credentials = _credentials()
    assert SECRET not in repr(credentials)
    assert SECRET not in str(credentials)
    assert SECRET not in credentials.model_dump_json()
    assert SECRET not in json.dumps(credentials.model_dump(mode="json"))


def test_get_client_builds_a_client_for_the_account():
    credentials = _credentials(dialect="standard", max_retries=5, timeout=30)
    with credentials.get_client() as client:
        assert isinstance(client, PostDicomClient)
        assert client.web_address == "https://pacs.example.org/dicomweb"
        assert client.dialect == "standard"
        assert client._http.retry.attempts == 6
        assert SECRET not in repr(client)


@pytest.mark.parametrize("address", ["pacs.example.org", "ftp://pacs.example.org", ""])
def test_web_address_must_be_http(address):
    with pytest.raises(ValidationError, match="web_address"):
        _credentials(web_address=address)


def test_unknown_dialect_is_refused():
    with pytest.raises(ValidationError, match="dialect"):
        _credentials(dialect="dcm4chee")


def test_saved_block_loads_back_with_its_secret(prefect_harness):
    _credentials().save("test-hospital-a", overwrite=True)
    loaded = PostDicomCredentials.load("test-hospital-a")
    assert loaded.username == "radiology@example.org"
    assert loaded.password.get_secret_value() == SECRET
    assert loaded.web_address == "https://pacs.example.org/dicomweb"


def test_with_transport_sends_the_clients_requests_through_it_and_is_never_saved():
    import httpx

    seen: list[httpx.Request] = []
    original = _credentials()
    credentials = original.with_transport(httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200)))
    with credentials.get_client() as client:
        client._http.request("GET", "/studies")
    assert [str(r.url) for r in seen] == ["https://pacs.example.org/dicomweb/studies"]
    assert seen[0].headers["Authorization"].startswith("Basic ")  # the block's own password, unwrapped by get_client
    assert original._transport is None  # a copy; the original block still talks to the network
    assert credentials.model_dump() == original.model_dump()  # nothing of the transport is saved
