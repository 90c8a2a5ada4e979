"""``postdicom-flows sandbox`` / ``python -m sandbox``: run the sandbox until interrupted.

At start it prints its WebAddress and the demo account: that is the point of
a sandbox (they are sandbox-only credentials from the seed, not secrets).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys

from sandbox.config import Settings, default_seed_text, load_seed
from sandbox.faults import FaultConfig, QuietDrops
from sandbox.guard import CONTROL_MODES, CONTROL_TOKEN_HEADER, is_loopback
from sandbox.shapes import DOCUMENTED, SHAPES

H11_MAX_HEADER_BLOCK = 64 * 1024
"""uvicorn's h11 refuses a header block over 16 KiB by default, which would hide the app's own 431
for an oversized parameter header; the block may be 64 KiB here, the parameter header 16 KiB."""


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="postdicom-flows sandbox",
                                     description="Run the local PostDICOM sandbox server.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1; anything else warns: the demo accounts' "
                             "passwords are public)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--data-dir", default="./sandbox-data",
                        help="where the index and DICOM files live (default ./sandbox-data); kept across restarts")
    parser.add_argument("--seed", metavar="FILE", help="seed JSON (accounts, institutions, users, groups, "
                                                       "equipment); default: the packaged seed")
    parser.add_argument("--print-seed", action="store_true", help="print the seed as JSON and exit")
    parser.add_argument("--allowed-host", action="append", metavar="NAME",
                        default=[n for n in (env("SANDBOX_ALLOWED_HOSTS") or "").split(",") if n.strip()],
                        help="a Host name the sandbox answers besides localhost, IP addresses and --host "
                             "(repeatable; env SANDBOX_ALLOWED_HOSTS, comma-separated)")
    parser.add_argument("--control", nargs="?", const="open", choices=CONTROL_MODES,
                        default=env("SANDBOX_CONTROL") or "token",
                        help="the /_sandbox control routes: 'token' (default: POSTs need the token printed at "
                             "start), 'open' (what --control alone means: no token), 'off' (env SANDBOX_CONTROL)")
    parser.add_argument("--answer-shapes", choices=SHAPES, default=env("SANDBOX_ANSWER_SHAPES") or DOCUMENTED,
                        help="how the custom endpoints answer: 'documented' (docs/api-answers.md, default) or "
                             "'alternative' (shapes a .NET service may send, see docs/sandbox.md; "
                             "env SANDBOX_ANSWER_SHAPES)")
    faults = parser.add_argument_group("fault injection (off by default; see docs/sandbox.md)")
    faults.add_argument("--fault", action="append", default=[], metavar="KIND:SHARE[@GROUPS]",
                        help="e.g. 503:0.2@stow, 429:1/3@qido+wado, hang:0.05, drop:1/10@custom "
                             "(repeatable; adds to SANDBOX_FAULTS)")
    faults.add_argument("--latency-ms", type=int, default=int(env("SANDBOX_LATENCY_MS") or 0),
                        help="fixed latency added to every API request (env SANDBOX_LATENCY_MS)")
    faults.add_argument("--fault-seed", type=int,
                        default=int(fault_seed) if (fault_seed := env("SANDBOX_FAULT_SEED")) else None,
                        help="seed for probabilistic faults, making them reproducible (env SANDBOX_FAULT_SEED)")
    faults.add_argument("--retry-after", type=int, default=int(env("SANDBOX_RETRY_AFTER") or 1),
                        help="Retry-After seconds sent with injected 429/503 (env SANDBOX_RETRY_AFTER)")
    faults.add_argument("--hang-seconds", type=float, default=float(env("SANDBOX_HANG_SECONDS") or 30),
                        help="how long an injected hang lasts before a 503 (env SANDBOX_HANG_SECONDS)")
    return parser


class _RedactAccessLog(logging.Filter):
    """Keep share tokens (bearer secrets) and query values (a QIDO search names a patient) out of the access log.

    The log still shows which path and which query keys were asked for.
    """

    share_token = re.compile(r"/share/[^/\s?]+")
    query_value = re.compile(r"=[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) if isinstance(a, str) else a for a in record.args)
        return True

    def _redact(self, text: str) -> str:
        path, mark, query = self.share_token.sub("/share/<token>", text).partition("?")
        return path + mark + self.query_value.sub("=...", query)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def banner(host: str, port: int, demo: dict, settings: Settings, faults: FaultConfig) -> str:
    """What the sandbox prints at start: where it listens, the demo account, how to reach the control routes."""
    wildcard = host in ("0.0.0.0", "::", "")
    listening = f"{_url_host(host)}:{port}" + (" (every network interface)" if wildcard
                                                 else "" if is_loopback(host) else " (reachable from the network)")
    web_host = ("127.0.0.1" if host != "::" else "::1") if wildcard else host
    control = {"token": f"POST /_sandbox/... with header {CONTROL_TOKEN_HEADER}: {settings.control_token}",
               "open": "open, no token (--control)", "off": "off"}[settings.control]
    return (f"PostDICOM sandbox\n"
            f"  Listening  : {listening}\n"
            f"  WebAddress : http://{_url_host(web_host)}:{port}/dicomweb\n"
            f"  Username   : {demo['Email']}\n"
            f"  Password   : {demo['Password']}\n"
            f"  Data dir   : {settings.data_dir.resolve()}\n"
            f"  Faults     : {json.dumps(faults.describe()) if faults.rules or faults.latency_ms else 'off'}\n"
            f"  Control    : {control}\n"
            f"  Answers    : {settings.answer_shapes} shapes")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        seed = load_seed(args.seed)
    except (OSError, ValueError) as exc:
        print(f"sandbox: cannot load seed: {exc}", file=sys.stderr)
        return 2
    if args.print_seed:
        print(default_seed_text().rstrip() if not args.seed else json.dumps(seed, indent=2, ensure_ascii=False))
        return 0
    spec = ",".join(part for part in [os.environ.get("SANDBOX_FAULTS", ""), *args.fault] if part.strip())
    try:
        faults = FaultConfig.from_spec(spec, latency_ms=args.latency_ms, seed=args.fault_seed,
                                       retry_after=args.retry_after, hang_seconds=args.hang_seconds)
        settings = Settings.from_env(args.data_dir, seed)
        if args.control not in CONTROL_MODES:
            raise ValueError(f"SANDBOX_CONTROL must be one of {', '.join(CONTROL_MODES)}")
        if args.answer_shapes not in SHAPES:
            raise ValueError(f"SANDBOX_ANSWER_SHAPES must be one of {', '.join(SHAPES)}")
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from sandbox.app import create_app

    settings.control = args.control
    settings.answer_shapes = args.answer_shapes
    settings.allowed_hosts = frozenset([args.host, *(n.strip() for n in args.allowed_host)])
    app = create_app(settings, faults)
    print(banner(args.host, args.port, seed["Accounts"][0], settings, faults), flush=True)
    if not is_loopback(args.host):
        print(f"WARNING: the sandbox listens on {args.host}, not on loopback: anyone who can reach this machine "
              f"on port {args.port} can sign in with the seeded demo accounts (their passwords are public) and "
              "read or change everything stored here. Use --host 127.0.0.1 unless that is what you want.",
              file=sys.stderr, flush=True)
    logging.getLogger("uvicorn.access").addFilter(_RedactAccessLog())
    logging.getLogger("uvicorn.error").addFilter(QuietDrops())
    config = uvicorn.Config(app, host=args.host, port=args.port, http="h11", lifespan="off",
                            h11_max_incomplete_event_size=H11_MAX_HEADER_BLOCK, log_level="info",
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    return 0
