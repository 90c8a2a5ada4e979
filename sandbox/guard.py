"""Keep web pages the developer visits away from the sandbox: Host names, and the control routes.

A page on any site can make the developer's browser send requests to
``127.0.0.1:8765``. Two ways in are closed here:

- **DNS rebinding**: a name the attacker controls is made to resolve to
  127.0.0.1, so the page's own origin now reaches the sandbox and may read
  the answers. Such a request carries the attacker's name in ``Host``, so
  every request whose ``Host`` is not one of the sandbox's own names is
  refused (:class:`HostGuardMiddleware`). Own names: ``localhost``, any IP
  address (a rebinding needs a name), the ``--host`` given at start and the
  ``--allowed-host`` names.
- **Cross-site posts to the control routes** (``/_sandbox/clock``,
  ``/_sandbox/faults``), which need no account: :func:`check_control` refuses
  a request whose ``Origin`` is not the sandbox's own, a ``POST`` that is not
  ``application/json`` (a page cannot send that cross-origin without a
  preflight the sandbox never grants), and a ``POST`` without the per-start
  control token printed in the banner (unless started with ``--control``,
  which opens them without a token, or ``--control off``, which removes them).
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request

from sandbox.errors import ApiError, error_response

CONTROL_TOKEN_HEADER = "X-Sandbox-Control-Token"
CONTROL_MODES = ("token", "open", "off")


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` value: no port, no IPv6 brackets, lower case, no trailing dot."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(name: str) -> bool:
    """``localhost`` or a loopback address (what ``--host`` should normally be)."""
    name = host_name(name)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostGuardMiddleware:
    """Answer 400 to any request whose ``Host`` is not one of the sandbox's names (see the module docstring)."""

    def __init__(self, app, allowed_names: frozenset[str]):
        self.app = app
        self.allowed_names = frozenset({"localhost", *(host_name(n) for n in allowed_names)})

    def allows(self, host_header: str) -> bool:
        name = host_name(host_header)
        return name in self.allowed_names or is_ip_address(name)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host")
            if host is not None and not self.allows(host.decode("latin-1")):
                response = error_response(ApiError(
                    400, "the Host header names neither this sandbox's address nor localhost; "
                         "start the sandbox with --allowed-host NAME to serve another name"))
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def check_control(request: Request, mode: str, token: str) -> None:
    """Raise the refusal for a control request that may come from a web page (see the module docstring)."""
    if mode == "off":
        raise ApiError(404, "the control routes are off (--control off)")
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin.lower() != f"{request.url.scheme}://{host}".lower():
        raise ApiError(403, "control routes refuse requests from another origin")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise ApiError(403, "control routes refuse cross-site requests")
    if request.method != "POST":
        return
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "control routes take a JSON body (Content-Type: application/json)")
    if mode == "token" and not hmac.compare_digest(request.headers.get(CONTROL_TOKEN_HEADER, "").encode(),
                                                   token.encode()):
        raise ApiError(403, f"control routes need the {CONTROL_TOKEN_HEADER} header with the token printed "
                            "at start (or start the sandbox with --control)")
