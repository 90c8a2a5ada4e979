"""The one way the sandbox reports a failure, as the real service does.

PostDICOM puts a human-readable reason in the ``X-Error-Reason`` header of
every failed answer (custom endpoints and DICOMweb alike); clients surface it.
Raising :class:`ApiError` anywhere in a handler produces that answer.
"""

from __future__ import annotations

import json

from starlette.responses import Response


class ApiError(Exception):
    """A failure answered as ``status`` with ``reason`` in ``X-Error-Reason``."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def header_safe(text: str, limit: int = 500) -> str:
    """Make ``text`` a valid one-line HTTP header value.

    Reasons can quote user input (names, ids) that may hold non-ASCII or line
    breaks; header values must be Latin-1 and single-line, so escape them.
    """
    one_line = " ".join(text.split())
    return one_line.encode("ascii", "backslashreplace").decode("ascii")[:limit]


def error_response(error: ApiError) -> Response:
    """The JSON error answer of api-answers.md: ``{"Error": reason}`` plus the header."""
    reason = header_safe(error.reason)
    headers = {"X-Error-Reason": reason, **error.headers}
    body = json.dumps({"Error": error.reason}, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return Response(body, status_code=error.status, headers=headers,
                    media_type="application/json; charset=utf-8")
