"""Every session shares one TLS context per ``verify`` setting (building one reads the whole CA bundle)."""

from __future__ import annotations

import ssl

from postdicom import PostDicomClient
from postdicom.transport import ssl_context


def _pool_context(client: PostDicomClient) -> ssl.SSLContext:
    """The TLS context the client's connection pool opens connections with (httpcore's attribute)."""
    return client._http._client._transport._pool._ssl_context


def test_clients_share_one_verifying_context_and_verify_false_gets_its_own():
    with PostDicomClient("https://example.invalid/dicomweb", "u", "p") as first, \
            PostDicomClient("https://example.invalid/dicomweb", "u", "p") as second:
        assert _pool_context(first) is _pool_context(second) is ssl_context(True)
    assert ssl_context(True).verify_mode == ssl.CERT_REQUIRED and ssl_context(True).check_hostname
    assert ssl_context(False).verify_mode == ssl.CERT_NONE and not ssl_context(False).check_hostname
    with PostDicomClient("https://example.invalid/dicomweb", "u", "p", verify=False) as unverified:
        assert _pool_context(unverified) is ssl_context(False)
