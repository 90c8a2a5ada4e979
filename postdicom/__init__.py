"""A Prefect-free client for PostDICOM's DICOMweb API (and standard DICOMweb servers)."""

from .client import DIALECTS, PostDicomClient
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    HTTPStatusError,
    NotFoundError,
    PostDicomError,
    ProtocolError,
    ServerError,
    ThrottledError,
    TransportError,
    ValidationError,
    is_transient,
)
from .http import RetryPolicy

__all__ = [
    "DIALECTS",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "HTTPStatusError",
    "NotFoundError",
    "PostDicomClient",
    "PostDicomError",
    "ProtocolError",
    "RetryPolicy",
    "ServerError",
    "ThrottledError",
    "TransportError",
    "ValidationError",
    "is_transient",
]
