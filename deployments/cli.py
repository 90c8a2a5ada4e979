"""``postdicom-flows``: the project's command line.

``sandbox`` hands its arguments to the sandbox program untouched (the sandbox
is a separate program; this only saves users a second command name).
``demo`` and ``serve`` are the main job and the single-machine scheduler;
``setup`` prepares a Prefect server for ``prefect deploy`` and workers.
"""

from __future__ import annotations

import argparse
import os
import sys


def _sandbox(argv: list[str]) -> int:
    from sandbox.cli import main as sandbox_main

    return sandbox_main(argv)


def _demo(argv: list[str]) -> int:
    from .demo import main as demo_main

    return demo_main(argv)


def _serve(argv: list[str]) -> int:
    from .serve import main as serve_main

    return serve_main(argv)


def _setup(argv: list[str]) -> int:
    from .setup import main as setup_main

    return setup_main(argv)


def _check(argv: list[str]) -> int:
    from .check import main as check_main

    return check_main(argv)


COMMANDS = {
    "sandbox": (_sandbox, "run the local PostDICOM sandbox server"),
    "demo": (_demo, "run the main job end to end on the embedded sandbox"),
    "serve": (_serve, "serve the deployments from this process (one machine)"),
    "setup": (_setup, "prepare a Prefect server for prefect deploy and workers (pool, block type, zombie-run automation)"),
    "check": (_check, "a read-only tour of an account: how each kind of call answers"),
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="postdicom-flows",
        description="PostDICOM DICOMweb work as Prefect flows.",
        epilog="Run 'postdicom-flows COMMAND --help' for a command's options.",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args, rest = parser.parse_known_args(argv[:1])
    handler = COMMANDS[args.command][0]
    return int(handler(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
