"""From an HTTP answer or failure to the exception of :mod:`postdicom.errors` that says it.

An error status becomes its :class:`~postdicom.errors.HTTPStatusError` with the
server's reason (``X-Error-Reason`` or a short excerpt of the body) and its
``Retry-After``, with the values of a custom endpoint's parameters masked; a
3xx becomes a :class:`~postdicom.errors.RedirectError` naming where it points
and the likely fix; :func:`never_sent` tells a connection failure that
certainly did not reach the server (which even a create may retry).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from email.utils import parsedate_to_datetime

import httpx

from .errors import (
    HTTPStatusError,
    PostDicomError,
    ProtocolError,
    RedirectError,
    TransportError,
    error_for_status,
    shown_url,
)
from .http_limits import ERROR_BODY_BYTES, JSON_BYTES_SETTING, Deadline, bounded_chunks, read_body
from .transport import request_deadline


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (as a number or an HTTP date); ``None`` without one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_reason(response: httpx.Response) -> str | None:
    """The server's explanation: ``X-Error-Reason``, else a short body excerpt."""
    reason = response.headers.get("X-Error-Reason")
    if reason:
        return reason
    try:
        text = response.text.strip()
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return None
    return text[:300] or None


def never_sent(exc: httpx.TransportError) -> bool:
    """True when the request certainly did not reach the server."""
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def status_error(
    response: httpx.Response, method: str, url: str, deadline: Deadline, request_headers: Mapping[str, str] | None
) -> HTTPStatusError:
    """The error for an error status, with the server's reason and ``Retry-After``.

    At most ``ERROR_BODY_BYTES`` of the body are read for the reason, within
    the request's ``deadline``; the values of the request's JSON headers (a
    custom endpoint's parameters) are masked wherever the reason repeats them.
    """
    try:
        with request_deadline(deadline.at):
            read_body(response, ERROR_BODY_BYTES, method, url, truncate=True)
    except (httpx.HTTPError, PostDicomError):
        pass
    finally:
        response.close()
    return error_for_status(
        response.status_code,
        reason=error_reason(response),
        method=method,
        url=url,
        retry_after=retry_after_seconds(response),
        private=header_values(request_headers),
    )


def header_values(headers: Mapping[str, str] | None) -> list[str]:
    """The text values inside JSON request headers (a custom endpoint's parameters: names, IDs)."""
    found: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for text in (headers or {}).values():
        if text.startswith(("{", "[")):
            try:
                collect(json.loads(text))
            except ValueError:
                continue
    return found


def redirect_error(response: httpx.Response, method: str, url: str) -> RedirectError:
    """The error for a 3xx answer: where it points, and the likely fix."""
    location = response.headers.get("Location")
    target: httpx.URL | None = None
    if location:
        try:
            target = response.request.url.join(location)
        except httpx.InvalidURL:
            target = None
    asked = response.request.url
    if target is None:
        message = "the server answered with a redirect but no usable Location; redirects are not followed"
    elif asked.scheme == "http" and target.scheme == "https":
        message = (
            f"the server redirects to {shown_url(str(target))}: web_address starts with http:// but the service"
            " answers at https://; use the https:// address in web_address"
        )
    else:
        message = (
            f"the server redirects to {shown_url(str(target))}; redirects are not followed (the credentials would"
            " go along): set web_address to where the service answers"
        )
    return RedirectError(
        message,
        location=str(target) if target is not None else location,
        status=response.status_code,
        method=method,
        url=url,
    )


def undecodable_error(response: httpx.Response, exc: httpx.DecodingError, method: str, url: str) -> ProtocolError:
    """The error for a body its ``Content-Encoding`` does not describe (often a proxy's doing): not retried."""
    encoding = response.headers.get("Content-Encoding", "none")
    return ProtocolError(
        f"the answer's body cannot be decoded as its Content-Encoding ({encoding}) says ({exc})",
        status=response.status_code,
        method=method,
        url=url,
    )


def bounded_body(
    response: httpx.Response,
    limit: int,
    method: str,
    url: str,
    *,
    chunks: Iterable[bytes] | None = None,
    setting: str = JSON_BYTES_SETTING,
) -> Iterator[bytes]:
    """``response``'s streamed body, at most ``limit`` bytes, with httpx's failures mid-body turned into ours.

    The one way a body is read piece by piece: a list answer as it arrives
    (:mod:`postdicom.answer_stream`, ``POSTDICOM_MAX_JSON_BYTES``) and a
    download (:mod:`postdicom.wado`, ``POSTDICOM_MAX_DOWNLOAD_BYTES``). The
    size cap (:func:`bounded_chunks`, ``setting`` names it in the error) holds
    whether or not the answer announced its length, so a body that never ends
    stops at the cap, not only at the deadline. A connection lost mid-body is
    a :class:`~postdicom.errors.TransportError` (transient: the caller decides
    whether it may start again, knowing what it already handed on); a body
    its ``Content-Encoding`` does not describe is :func:`undecodable_error`.
    """
    try:
        yield from bounded_chunks(response, limit, method, url, chunks=chunks, setting=setting)
    except httpx.TransportError as exc:
        raise TransportError(
            f"connection lost while reading the answer ({type(exc).__name__})", method=method, url=url
        ) from None
    except httpx.DecodingError as exc:
        raise undecodable_error(response, exc, method, url) from None
