"""``python -m benchmarks NAME [options]``: run one benchmark; each prints a table and writes JSON to benchmarks/out/.

The benchmarks owned by other parts of the project (``export``, ``sandbox-stow``,
``memory``) are scripts of their own; they are run as they are, with the
options given after their name.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

MODULES = {
    "stow": ("stow_bench", "bulk STOW: vendor way vs dicomweb-client vs postdicom vs curl, loopback and 50 ms"),
    "wado": ("wado_bench", "WADO retrieve of a ~100 MB study: postdicom vs dicomweb-client vs curl"),
    "overhead": ("overhead_bench", "Prefect overhead: upload direct vs in a flow, per-task cost, flow RSS"),
}
SCRIPTS = {
    "export": ("export_bench.py", "nightly_order_export on the sandbox: orders/s, requests/s, RSS at K and 2K"),
    "sandbox-stow": ("sandbox_stow.py", "sandbox STOW throughput for small instances"),
    "memory": ("memory_upload_retrieve.py", "peak RSS of upload + retrieve, direct and in a flow"),
}


def usage() -> str:
    lines = ["usage: python -m benchmarks NAME [options]   (NAME --help for its options)", "", "benchmarks:"]
    for name, (_, text) in {**MODULES, **SCRIPTS}.items():
        lines.append(f"  {name:13} {text}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name in MODULES:
        return importlib.import_module(f"benchmarks.{MODULES[name][0]}").main(rest)
    if name in SCRIPTS:
        script = HERE / SCRIPTS[name][0]
        if not script.exists():
            print(f"{script.name} is not in this checkout yet", file=sys.stderr)
            return 2
        return subprocess.call([sys.executable, str(script), *rest], cwd=HERE.parent)
    print(f"unknown benchmark {name!r}\n\n{usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
