"""Fault injection (off by default): latency, 503, 429 + Retry-After, bare 500s, hangs, dropped connections.

Reliability code (retries, backoff, ``Retry-After``, timeouts, re-sent STOW
bodies) can only be tested against a server that misbehaves on demand and
predictably. Faults apply to the API (``/dicomweb``) by endpoint group:
``stow``, ``qido``, ``wado``, ``custom`` or ``all``; share pages and the
``/_sandbox`` control routes are never faulted.

Rule grammar (``--fault`` flags, ``SANDBOX_FAULTS``, or ``{"spec": ...}`` on
``POST /_sandbox/faults``), rules separated by commas::

    KIND:SHARE[@GROUP[+GROUP...]]
    KIND  = 503 | 429 | 500 | hang | drop
    SHARE = 0.25      a probability (seeded RNG: reproducible when a seed is set)
          | 1/3       every 3rd matching request (always deterministic)

e.g. ``503:1/2@stow,429:0.1@qido+wado``. A request consults the rules in
order; every matching rule counts it, the first that fires decides.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.custom import ENDPOINTS
from sandbox.dicomweb import PREFIX

KINDS = ("503", "429", "500", "hang", "drop")
GROUPS = ("stow", "qido", "wado", "custom", "all")
_CUSTOM_PATHS = {PREFIX + e.path for e in ENDPOINTS}
_QIDO = re.compile(r"^/(studies|series|instances|studies/series|studies/series/instances"
                   r"|studies/[^/]+/(series|instances)|studies/[^/]+/series/[^/]+/instances)/?$")


class DroppedConnection(Exception):
    """Raised after the response head is sent so the server closes the connection mid-answer."""


def group_of(method: str, path: str) -> str | None:
    """The endpoint group of an API request, or ``None`` for routes that are never faulted."""
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        return None
    if path in _CUSTOM_PATHS:
        return "custom"
    if method == "POST":
        return "stow"
    return "qido" if _QIDO.match(path[len(PREFIX):]) else "wado"


@dataclass
class FaultRule:
    kind: str
    probability: float = 0.0
    every: int = 0
    groups: tuple[str, ...] = ("all",)
    seen: int = 0
    fired: int = 0

    def applies_to(self, group: str) -> bool:
        return "all" in self.groups or group in self.groups

    def describe(self) -> dict[str, Any]:
        share = f"1/{self.every}" if self.every else self.probability
        return {"kind": self.kind, "share": share, "groups": list(self.groups), "seen": self.seen,
                "fired": self.fired}


def parse_rule(text: str) -> FaultRule:
    """One ``KIND:SHARE[@GROUPS]`` rule (see the module docstring)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9]+)\s*:\s*([0-9./]+)\s*(?:@\s*([a-z+ ]+))?\s*", text)
    if not match:
        raise ValueError(f"fault rule {text!r} is not KIND:SHARE[@GROUP+GROUP]")
    kind, share, groups = match.group(1).lower(), match.group(2), match.group(3)
    return make_rule(kind, share, groups.split("+") if groups else ["all"])


MAX_LATENCY_MS = 60_000
MAX_RETRY_AFTER = 86_400
MAX_HANG_SECONDS = 3_600


def _bounded(body: dict[str, Any], key: str, default: float, high: float, *, integer: bool = False) -> float:
    """``body[key]`` as a number from 0 to ``high`` (a whole one when ``integer``), or a ``ValueError`` naming it."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high or (
            integer and value != int(value)):
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{key} must be {kind} from 0 to {high}")
    return value


def make_rule(kind: str, share: Any, groups: list[str]) -> FaultRule:
    kind = str(kind).lower()
    if kind not in KINDS:
        raise ValueError(f"fault kind {kind!r} is not one of {', '.join(KINDS)}")
    groups = [g.strip() for g in groups if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ValueError(f"fault groups {unknown or groups} are not among {', '.join(GROUPS)}")
    rule = FaultRule(kind, groups=tuple(groups))
    if isinstance(share, str) and "/" in share:
        top, _, every = share.partition("/")
        if top != "1" or not (every.isascii() and every.isdigit()) or int(every) < 1:
            raise ValueError(f"fault share {share!r} must be 1/N")
        rule.every = int(every)
    else:
        if isinstance(share, str) and re.fullmatch(r"[0-9]*\.?[0-9]+", share.strip()):
            share = float(share)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ValueError(f"fault share {share!r} must be a probability from 0 to 1 or 1/N")
        rule.probability = float(share)
    return rule


@dataclass
class FaultConfig:
    latency_ms: int = 0
    seed: int | None = None
    retry_after: int = 1
    hang_seconds: float = 30.0
    rules: list[FaultRule] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        self._rng = random.Random(self.seed)

    @classmethod
    def from_spec(cls, spec: str = "", **options: Any) -> FaultConfig:
        rules = [parse_rule(part) for part in spec.split(",") if part.strip()]
        return cls(rules=rules, **{k: v for k, v in options.items() if v is not None})

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultConfig:
        """The body of ``POST /_sandbox/faults``; unknown keys are an error so typos do not pass silently.

        Every value is checked here, so a wrong one is a ``ValueError`` naming its key (a 400), never a
        Python error from deeper down.
        """
        allowed = {"latency_ms", "seed", "retry_after", "hang_seconds", "rules", "spec"}
        extra = set(body) - allowed
        if extra:
            raise ValueError(f"unknown fault settings {sorted(extra)}")
        spec = body.get("spec", "")
        if not isinstance(spec, str):
            raise ValueError("spec must be a string of KIND:SHARE[@GROUPS] rules")
        rules = [parse_rule(part) for part in spec.split(",") if part.strip()]
        items = body.get("rules", [])
        if not isinstance(items, list):
            raise ValueError("rules must be a list of objects")
        for item in items:
            if not isinstance(item, dict) or not {"kind", "share"} <= set(item) or set(item) - {"kind", "share",
                                                                                                "groups"}:
                raise ValueError("each of rules must be an object with kind, share and optional groups")
            groups = item.get("groups", ["all"])
            groups = [groups] if isinstance(groups, str) else groups
            if not isinstance(item["kind"], str) or not isinstance(groups, list) or not all(
                    isinstance(g, str) for g in groups):
                raise ValueError("a rule's kind must be a string and its groups a list of strings")
            rules.append(make_rule(item["kind"], item["share"], groups))
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer or null")
        return cls(latency_ms=int(_bounded(body, "latency_ms", 0, MAX_LATENCY_MS, integer=True)), seed=seed,
                   retry_after=int(_bounded(body, "retry_after", 1, MAX_RETRY_AFTER, integer=True)),
                   hang_seconds=_bounded(body, "hang_seconds", 30, MAX_HANG_SECONDS), rules=rules)

    def describe(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "seed": self.seed, "retry_after": self.retry_after,
                "hang_seconds": self.hang_seconds, "rules": [r.describe() for r in self.rules]}

    def decide(self, group: str) -> str | None:
        """The fault for this request (or ``None``); counters and RNG advance under a lock."""
        with self._lock:
            chosen = None
            for rule in self.rules:
                if not rule.applies_to(group):
                    continue
                rule.seen += 1
                fires = (rule.seen % rule.every == 0) if rule.every else self._rng.random() < rule.probability
                if fires and chosen is None:
                    rule.fired += 1
                    chosen = rule.kind
            return chosen


class FaultMiddleware:
    """Pure ASGI middleware reading the current config from ``app.state.faults`` on every request."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        group = group_of(scope["method"], scope["path"])
        config: FaultConfig = self.state.faults
        if group is None:
            return await self.app(scope, receive, send)
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        fault = config.decide(group) if config.rules else None
        if fault is None:
            return await self.app(scope, receive, send)
        if fault == "hang":
            await asyncio.sleep(config.hang_seconds)
            return await _answer(send, 503, "injected fault: hung, then unavailable")
        if fault == "drop":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")]})
            raise DroppedConnection("injected fault: connection dropped")
        if fault == "500":
            return await _answer(send, 500, "injected fault: internal error")
        if fault == "429":
            return await _answer(send, 429, "injected fault: too many requests",
                                 [(b"retry-after", str(config.retry_after).encode())])
        return await _answer(send, 503, "injected fault: service unavailable",
                             [(b"retry-after", str(config.retry_after).encode())])


async def _answer(send: Send, status: int, reason: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"Error": reason}).encode()
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"x-error-reason", reason.encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class QuietDrops(logging.Filter):
    """Keep uvicorn's error log free of the tracebacks of deliberately dropped connections."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))
