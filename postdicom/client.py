"""``PostDicomClient``: one object per account, everything the API offers.

The client is assembled from two halves that share one :class:`HttpSession`:
the DICOMweb transactions (STOW-RS, QIDO-RS, WADO-RS, in the ``postdicom`` or
the ``standard`` path dialect) and the 13 custom endpoints (methods written
out in :mod:`postdicom.endpoints`, each sending one row of
:mod:`postdicom.endpoint_table` through :mod:`postdicom.endpoint_engine`).
No Prefect import here: the client is usable from any Python program.
"""

from __future__ import annotations

import httpx

from .dicomweb import DicomWebMixin
from .endpoints import CustomEndpointsMixin
from .http import HttpSession
from .retry import RetryPolicy
from .urls import DIALECTS, Dialect


class PostDicomClient(DicomWebMixin, CustomEndpointsMixin):
    """A connection to one PostDICOM account (or any DICOMweb server).

    Parameters
    ----------
    web_address:
        The account's DICOMweb base URL (``WebAddress`` in the vendor document).
    username, password:
        Account e-mail and password, sent with HTTP Basic authentication.
    dialect:
        ``"postdicom"`` for PostDICOM's paths, ``"standard"`` for PS3.18
        servers (Orthanc, dcm4chee, ...).
    timeout:
        Seconds per request read/write (the vendor sample uses 120).
    retry:
        Retry policy for transient failures.
    max_connections:
        Connection pool size; bounds useful upload/download concurrency.
    requests_per_second:
        Optional throttle shared by all threads using this client.
    transport:
        Replace the network (tests).
    """

    def __init__(
        self,
        web_address: str,
        username: str,
        password: str,
        *,
        dialect: Dialect = "postdicom",
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 16,
        requests_per_second: float | None = None,
        verify: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {DIALECTS}, not {dialect!r}")
        self.dialect: Dialect = dialect
        self.web_address = web_address.rstrip("/")
        self.username = username
        self._http = HttpSession(
            web_address,
            username,
            password,
            timeout=timeout,
            retry=retry,
            max_connections=max_connections,
            requests_per_second=requests_per_second,
            verify=verify,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> PostDicomClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostDicomClient({self.web_address!r}, user={self.username!r}, dialect={self.dialect!r})"
