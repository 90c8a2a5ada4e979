"""A Prefect-free client for PostDICOM's DICOMweb API (and standard DICOMweb servers)."""

from .answer_stream import AnswerRows
from .client import DIALECTS, PostDicomClient
from .errors import (
    AnswerTooLargeError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeadlineExceededError,
    HeaderTooLargeError,
    HTTPStatusError,
    NotFoundError,
    PostDicomError,
    ProtocolError,
    RedirectError,
    ServerError,
    ThrottledError,
    TransportError,
    ValidationError,
    is_transient,
)
from .stow import InstanceOutcome, StowResult
from . import models
from .http_limits import HttpLimits
from .retry import NO_RETRY, RetryPolicy
from .upload import FileEntry, UploadReport

__all__ = [
    "DIALECTS",
    "AnswerRows",
    "NO_RETRY",
    "AnswerTooLargeError",
    "DeadlineExceededError",
    "HttpLimits",
    "RedirectError",
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
