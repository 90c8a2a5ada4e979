"""``PostDicomCredentials``: the account a task or flow talks to."""

from __future__ import annotations

from typing import Literal

import httpx
from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, PrivateAttr, SecretStr, field_validator

from blocks._docs import project_documentation_url
from postdicom import PostDicomClient, RetryPolicy


class PostDicomCredentials(CredentialsBlock):
    """Credentials and address of one PostDICOM account (or a standard DICOMweb server).

    ``get_client()`` is the only place the password is unwrapped. The user
    name and web address stay plain fields on purpose: Prefect masks the
    password when it hashes a block for a cache key, so these are what keep
    two accounts' cached results apart.

    Examples
    --------
    >>> creds = PostDicomCredentials(
    ...     username="radiology@example.org",
    ...     password="...",
    ...     web_address="https://example.postdicom.com/dicomweb",
    ... )
    >>> with creds.get_client() as client:
    ...     studies = client.search_for_studies(PatientID="12345")
    """

    _block_type_name = "PostDICOM Credentials"
    _block_type_slug = "postdicom-credentials"
    _logo_url = None
    """No logo: a remote image is a broken picture on an offline server, and Prefect accepts only http(s) URLs."""
    _documentation_url = project_documentation_url("credentials-block")
    _description = (
        "Account e-mail, password and WebAddress of a PostDICOM DICOMweb account (or a standard PS3.18 server). "
        "The password is a secret field: masked in the UI and in logs; see the README's Security section for "
        "what protects it in Prefect's database."
    )
    _code_example = """
    ```python
    from blocks import PostDicomCredentials

    credentials = PostDicomCredentials.load("BLOCK_NAME")
    with credentials.get_client() as client:
        studies = client.search_for_studies(PatientID="12345")
    ```
    """

    username: str = Field(
        ...,
        description="Account e-mail, used as the Basic-auth user name.",
        examples=["radiology@example.org"],
    )
    password: SecretStr = Field(..., description=(
        "Account password (a secret: masked when shown; encrypted in Prefect's database with the server's key, "
        "which by default is kept in that same database: see the README's Security section)."
    ))
    web_address: str = Field(
        ...,
        description="The account's DICOMweb base URL (WebAddress), without a trailing slash.",
        examples=["https://example.postdicom.com/dicomweb", "http://127.0.0.1:8765/dicomweb"],
    )
    dialect: Literal["postdicom", "standard"] = Field(
        default="postdicom",
        description="'postdicom' for PostDICOM's paths; 'standard' for PS3.18 servers such as Orthanc.",
    )
    timeout: float = Field(default=120.0, gt=0, description="Seconds allowed per request read or write.")
    max_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description=(
            "Times one call retries a transient failure (connection, 408, 429, 5xx);"
            " the other retry limits are the POSTDICOM_RETRY_* settings."
        ),
    )
    requests_per_second: float | None = Field(
        default=None, gt=0, description="Optional cap on request starts per second for this account."
    )
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")

    _transport: httpx.BaseTransport | None = PrivateAttr(default=None)
    """Set by :meth:`with_transport`; never saved with the block."""

    @field_validator("web_address")
    @classmethod
    def _check_web_address(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("web_address must start with http:// or https://")
        return value

    def with_transport(self, transport: httpx.BaseTransport) -> PostDicomCredentials:
        """A copy of this block whose clients send every request through ``transport``.

        The documented way to run tasks and flows against a server in the same
        process (tests pass an ``httpx.MockTransport``): everything else about
        the client is as :meth:`get_client` builds it, and the password is
        still unwrapped only there. The transport is not saved with the block.
        """
        copy = self.model_copy()
        copy._transport = transport
        return copy

    def get_client(self) -> PostDicomClient:
        """Build a client for this account (close it, or use it as a context manager)."""
        return PostDicomClient(
            self.web_address,
            self.username,
            self.password.get_secret_value(),
            dialect=self.dialect,
            timeout=self.timeout,
            retry=RetryPolicy.from_env(attempts=self.max_retries + 1),
            requests_per_second=self.requests_per_second,
            verify=self.verify_tls,
            transport=self._transport,
        )
