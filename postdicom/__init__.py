"""A Prefect-free client for PostDICOM's DICOMweb API (and standard DICOMweb servers)."""

from .client import DIALECTS, PostDicomClient
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    HeaderTooLargeError,
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
from .stow import InstanceOutcome, StowResult
from . import models
from .http import RetryPolicy
from .upload import FileEntry, UploadReport

__all__ = [
    "DIALECTS",
    "FileEntry",
    "InstanceOutcome",
    "StowResult",
    "UploadReport",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "HTTPStatusError",
    "HeaderTooLargeError",
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
    "models",
]
