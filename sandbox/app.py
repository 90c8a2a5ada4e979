"""The sandbox ASGI application: routes, Basic auth, errors and the sandbox-only control routes.

Layout of one sandbox::

    /dicomweb/...        the API (Basic auth, account-scoped): DICOMweb + the 13 custom endpoints
    /share/<token>       share pages for recipients (no account; token + optional password)
    /_sandbox/faults     GET/POST fault injection settings (tests switch faults at run time)
    /_sandbox/clock      GET/POST a clock offset (tests make shares expire without waiting)
    /_sandbox/answers    GET/POST the custom endpoints' answer shapes (documented or alternative)

Every request must name the sandbox in its ``Host`` header, and the control
routes refuse what a web page could send (``sandbox.guard``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import html
import json
import logging
import secrets

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sandbox import custom, dicomweb, shares
from sandbox.config import Settings
from sandbox.errors import ApiError, error_response
from sandbox.faults import FaultConfig, FaultMiddleware
from sandbox.guard import HostGuardMiddleware, check_control
from sandbox.shapes import SHAPES
from sandbox.model import Account
from sandbox.store import Store
from sandbox.workers import Workers

REALM = 'Basic realm="PostDICOM sandbox", charset="UTF-8"'
MAX_CLOCK_OFFSET_DAYS = 36_500
"""``POST /_sandbox/clock`` moves "today" by at most a hundred years either way (dates stay representable)."""
logger = logging.getLogger("sandbox")


class BasicAuthMiddleware:
    """Every ``/dicomweb`` request must carry an account's Basic credentials (UTF-8).

    Authentication and account scoping live here, in one place: routes read
    the caller's account from ``request.state.account`` and never see a
    request without one.
    """

    def __init__(self, app, store: Store):
        self.app = app
        self.store = store

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == dicomweb.PREFIX or path.startswith(dicomweb.PREFIX + "/")):
            return await self.app(scope, receive, send)
        account = self._account(dict(scope["headers"]).get(b"authorization", b""))
        if account is None:
            response = error_response(ApiError(401, "missing or wrong Basic credentials",
                                               {"WWW-Authenticate": REALM}))
            return await response(scope, receive, send)
        scope.setdefault("state", {})["account"] = account
        return await self.app(scope, receive, send)

    def _account(self, header: bytes) -> Account | None:
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        email, sep, password = decoded.partition(":")
        if not sep:
            return None
        uuid = self.store.authenticate(email, password)
        return Account(uuid, email) if uuid else None


async def _error_answer(request: Request, exc: Exception) -> Response:
    """Every failure as the API's error answer (one handler: Starlette types each for any exception).

    An ``ApiError`` as raised; Starlette's ``HTTPException`` (no such route,
    method not allowed) in the API's words; anything else is a bug: answer
    500 with a reference to the log, never the exception (it may quote data
    or internals). Starlette re-raises such an exception after this answer,
    so the traceback follows the reference line in the sandbox's log.
    """
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, HTTPException):
        reason = {404: f"no such endpoint {request.method} {request.url.path}",
                  405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code,
                                                                                          str(exc.detail))
        return error_response(ApiError(exc.status_code, reason, dict(exc.headers or {})))
    reference = secrets.token_hex(4)
    logger.error("internal error %s on %s %s", reference, request.method, request.url.path)
    return error_response(ApiError(500, f"internal error (reference {reference} in the sandbox log)"))


async def _json_object(request: Request) -> dict:
    """A control route's body: one JSON object (an empty body is ``{}``)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise ApiError(400, "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _guard_control(request: Request) -> None:
    settings: Settings = request.app.state.settings
    check_control(request, settings.control, settings.control_token)


async def faults_control(request: Request) -> Response:
    """GET the current fault settings and counters; POST JSON to replace them (``{}`` turns them off)."""
    _guard_control(request)
    if request.method == "POST":
        body = await _json_object(request)
        try:
            request.app.state.faults = FaultConfig.from_json(body)
        except ValueError as exc:  # FaultConfig's own messages, naming the setting
            raise ApiError(400, f"bad fault settings: {exc}") from exc
    return JSONResponse(request.app.state.faults.describe())


async def clock_control(request: Request) -> Response:
    """GET/POST ``{"offset_days": N}``: the sandbox's idea of today, for share-expiry tests."""
    settings: Settings = request.app.state.settings
    _guard_control(request)
    if request.method == "POST":
        body = await _json_object(request)
        days = body.get("offset_days", 0)
        if set(body) - {"offset_days"}:
            raise ApiError(400, "the clock takes only offset_days")
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not abs(days) <= MAX_CLOCK_OFFSET_DAYS:
            raise ApiError(400, f"offset_days must be a number from -{MAX_CLOCK_OFFSET_DAYS} to "
                                f"{MAX_CLOCK_OFFSET_DAYS}")
        settings.clock_offset = dt.timedelta(days=days)
    return JSONResponse({"offset_days": settings.clock_offset.total_seconds() / 86400,
                         "today": settings.today().isoformat()})


async def answers_control(request: Request) -> Response:
    """GET/POST ``{"shapes": "documented" | "alternative"}``: the custom endpoints' answer shapes (``sandbox.shapes``)."""
    settings: Settings = request.app.state.settings
    _guard_control(request)
    if request.method == "POST":
        body = await _json_object(request)
        if set(body) != {"shapes"} or body["shapes"] not in SHAPES:
            raise ApiError(400, f"the body must be {{\"shapes\": ...}} with one of {', '.join(SHAPES)}")
        settings.answer_shapes = body["shapes"]
    return JSONResponse({"shapes": settings.answer_shapes})


async def home(request: Request) -> Response:
    base = html.escape(dicomweb.api_base(request))
    return HTMLResponse(f"<!doctype html><title>PostDICOM sandbox</title><h1>PostDICOM sandbox</h1>"
                        f"<p>WebAddress: <code>{base}</code> (HTTP Basic auth with a seeded account).</p>")


def create_app(settings: Settings, faults: FaultConfig | None = None) -> Starlette:
    """Build the application on ``settings.data_dir``, loading ``settings.seed`` into it."""
    store = Store(settings.data_dir)
    store.load_seed(settings.seed)
    routes = [
        Route("/", home, methods=["GET"]),
        *dicomweb.routes(),
        *(custom.route(endpoint, dicomweb.PREFIX) for endpoint in custom.ENDPOINTS),
        Route("/share/{token}", shares.share_page, methods=["GET"]),
        Route("/share/{token}", shares.share_unlock, methods=["POST"]),
        Route("/share/{token}/download", shares.share_download, methods=["GET"]),
        Route("/_sandbox/faults", faults_control, methods=["GET", "POST"]),
        Route("/_sandbox/clock", clock_control, methods=["GET", "POST"]),
        Route("/_sandbox/answers", answers_control, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BasicAuthMiddleware, store=store)],
        exception_handlers={ApiError: _error_answer, HTTPException: _error_answer, Exception: _error_answer},
    )
    app.state.store = store
    app.state.settings = settings
    app.state.faults = faults or FaultConfig()
    app.state.workers = Workers(settings.account_workers)
    app.add_middleware(FaultMiddleware, state=app.state)
    app.add_middleware(HostGuardMiddleware, allowed_names=settings.allowed_hosts)
    return app
