"""``python -m benchmarks NAME [options]``: run one benchmark; each prints a table and writes JSON to benchmarks/out/.

The benchmarks owned by other parts of the project (``export``, ``sandbox-stow``,
``memory``) are scripts of their own; they are run as they are, with the
options given after their name. ``export`` is run against a sandbox started
here, so that the sandbox's raw request rate (the export's own four requests
per order, sent by curl at the export's concurrency, on the same data) can be
measured in the same run: the ceiling the export's requests/s compares with.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

MODULES = {
    "stow": ("stow_bench", "bulk STOW: vendor way vs dicomweb-client vs postdicom vs curl, loopback and 50 ms"),
    "wado": ("wado_bench", "WADO retrieve of a ~100 MB study: postdicom vs dicomweb-client vs curl"),
    "overhead": ("overhead_bench", "Prefect overhead: upload direct vs in a flow, per-task cost, flow RSS"),
    "flows": ("flows_bench", "the three flows vs the client calls they wrap; cost growth with the work (issue 17)"),
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


EXPORT_ROW = re.compile(r"^\s*(\d+)\s+(cold|warm)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(\d+)")


def export_with_raw_rate(script: Path, rest: list[str]) -> int:
    """Run the export benchmark on a sandbox started here, then measure that sandbox's raw request rate."""
    from benchmarks import _common

    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--concurrency", type=int, default=8)
    options.add_argument("--latency-ms", type=int, default=0)
    options.add_argument("--raw-orders", type=int, default=500)
    known, forwarded = options.parse_known_args(rest)
    with _common.sandbox(latency_ms=known.latency_ms) as server:
        command = [sys.executable, str(script), "--web-address", server.web_address, "--username", server.username,
                   "--concurrency", str(known.concurrency), *forwarded]
        lines = []
        with subprocess.Popen(command, cwd=HERE.parent, env=dict(os.environ, BENCH_PASSWORD=server.password),
                              stdout=subprocess.PIPE, text=True) as child:
            for line in child.stdout or ():
                print(line, end="", flush=True)
                lines.append(line.rstrip("\n"))
        if child.returncode != 0:
            return child.returncode
        orders = [o for o in _common.sandbox_orders(server) if o.get("StudyInstanceUid")][: known.raw_orders]
        requests = [request for order in orders for request in _common.export_requests(server, order)]
        raw = _common.raw_request_rate(server, requests, known.concurrency)
    rows = []
    for match in filter(None, map(EXPORT_ROW.match, lines)):
        count, run, seconds, orders_per_s, requests_per_s, peak = match.groups()
        rows.append({"orders": int(count), "run": run, "seconds": float(seconds), "orders_per_s": int(orders_per_s),
                     "requests_per_s": int(requests_per_s), "peak_rss_mb": int(peak),
                     "vs_raw_rate": round(int(requests_per_s) / raw["requests_per_s"], 2)})
    print(f"\nraw request rate of the same sandbox: {raw['requests_per_s']} requests/s "
          f"({raw['requests']} requests: the export's 4 per order for {len(orders)} orders, curl --parallel-max "
          f"{known.concurrency})")
    _common.print_table(rows, [("orders", "orders"), ("run", "run"), ("orders_per_s", "orders/s"),
                               ("requests_per_s", "requests/s"), ("vs_raw_rate", "x raw rate"),
                               ("peak_rss_mb", "peak RSS MB")])
    _common.write_json("export", {"machine": _common.machine(), "arguments": rest, "raw_rate": raw, "results": rows,
                                  "output": lines})
    return 0


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
        if name == "export" and not {"-h", "--help", "--web-address"} & set(rest):
            return export_with_raw_rate(script, rest)
        return subprocess.call([sys.executable, str(script), *rest], cwd=HERE.parent)
    print(f"unknown benchmark {name!r}\n\n{usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
