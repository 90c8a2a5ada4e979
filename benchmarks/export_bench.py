"""Benchmark of ``nightly_order_export`` on the local sandbox: throughput and memory as the window grows.

Usage::

    python benchmarks/export_bench.py                  # K=5000: days of K and 2K orders
    python benchmarks/export_bench.py --orders 500 --latency-ms 20
    python benchmarks/export_bench.py --kind scheduled   # orders without images

Kinds: ``stored`` (default) stores one tiny single-instance study per order by
STOW, so each order costs 4 API calls (properties, tag contents, QIDO study,
QIDO series); ``scheduled`` creates orders with CreatePatientOrder (no
images: 1 call per order), which measures the flow's own overhead and memory
at sizes where the sandbox's QIDO, which reads every study of the account per
query, would dominate.

What it does: starts a sandbox (``python -m sandbox``) on a free port with a
fresh data folder (or uses ``--web-address``), stores one tiny single-instance
study per order by STOW (K on one study date, 2K on the next), then exports
each day in its own child process (so peak RSS is that run's alone) with a
fresh Prefect home (cold: every chunk fetched), then again on the same home
(warm: every chunk from the per-chunk cache, the files rewritten). Seconds are
the flow's own (``summary.seconds``), without the ephemeral Prefect server's
start. It prints orders/s, API requests/s and the
child's peak RSS for K and 2K: memory must stay flat as the window grows,
apart from the day's order list, which the API does not page.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deployments.processes import free_port, start_process, stop_process, wait_until_answering

ROOT = Path(__file__).resolve().parents[1]
FIRST_DAY = dt.date(2033, 1, 10)


def demo_account() -> dict:
    """The packaged seed's first account (sandbox-only credentials, printed by the sandbox itself)."""
    seed = json.loads(subprocess.run([sys.executable, "-m", "sandbox", "--print-seed"], check=True,
                                     capture_output=True, cwd=ROOT).stdout)
    return seed["Accounts"][0]


def start_sandbox(data_dir: Path, latency_ms: int) -> tuple[subprocess.Popen[bytes], str, str, str]:
    """A sandbox child process; returns it with its WebAddress and the demo account."""
    account = demo_account()
    port = free_port()
    log = data_dir.parent / "sandbox.log"
    process = start_process([sys.executable, "-m", "sandbox", "--port", str(port), "--data-dir", str(data_dir),
                             "--latency-ms", str(latency_ms)], log=log, cwd=ROOT)
    web_address = f"http://127.0.0.1:{port}/dicomweb"
    wait_until_answering(process, web_address + "/studies", what="the sandbox", log=log,
                         auth=(account["Email"], account["Password"]))
    return process, web_address, account["Email"], account["Password"]


def seed_orders(web_address: str, username: str, password: str, day: dt.date, count: int, work: Path) -> float:
    """Store ``count`` one-instance studies dated ``day``; returns seconds taken."""
    from postdicom import PostDicomClient
    from postdicom.synthetic import StudySpec, write_study

    folder = work / f"disk-{day}"
    modalities = ("CT", "MR", "US", "CR")
    names = ("Muñoz^José", "山田^太郎=やまだ^たろう", "Παπαδόπουλος^Νίκος", "Smith^Anna")
    started = time.monotonic()
    paths = [
        p
        for n in range(count)
        for p in write_study(folder, StudySpec(
            names[n % 4], f"B{day:%m%d}-{n:06d}", modalities[n % 4], series_count=1, instances_per_series=1,
            rows=8, columns=8, study_date=day, accession_number=f"BA{day:%m%d}{n:06d}", seed=f"bench-{day}-{n}",
        ))
    ]
    with PostDicomClient(web_address, username, password, max_connections=8) as client:
        result = client.store_instances(paths, batch_size=50, concurrency=4)
    shutil.rmtree(folder)
    if len(result.stored) + len(result.with_status("already_stored")) != count:
        raise RuntimeError(f"only {len(result.stored)} of {count} instances stored")
    return time.monotonic() - started


def seed_scheduled(web_address: str, username: str, password: str, day: dt.date, count: int) -> float:
    """Create ``count`` scheduled orders (no images) on ``day`` with CreatePatientOrder, 8 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from postdicom import PostDicomClient

    started = time.monotonic()
    with PostDicomClient(web_address, username, password, max_connections=8) as client:
        institution_uuid = demo_account()["Institutions"][0]["InstitutionUuid"]
        names = ("Muñoz^José", "山田^太郎=やまだ^たろう", "Παπαδόπουλος^Νίκος", "Smith^Anna")

        def create(n: int) -> None:
            client.create_patient_order(
                institution_uuid=institution_uuid, patient_name=names[n % 4], patient_id=f"S{day:%m%d}-{n:06d}",
                patient_birthdate=dt.date(1970, 1, 1), modality=("CT", "MR", "US", "CR")[n % 4],
                accession_number=f"SA{day:%m%d}{n:06d}", order_scheduled_datetime=f"{day} 09:00",
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(count)))
    return time.monotonic() - started


def trace_commits(path: str) -> None:
    """Diagnostic (``--tracemalloc PATH``): snapshot Python allocations when a day's partitions commit.

    That is when everything the day's export still holds (order list, chunk
    results, writer buffers) is alive, so diffing the snapshots of a K-order
    and a 2K-order day (``Snapshot.compare_to``) shows what grows with the
    day. Tracing slows the run down: its
    seconds are not comparable with untraced runs.
    """
    import tracemalloc

    import pyarrow as pa

    from flows import parquet_writer

    tracemalloc.start(12)
    commit = parquet_writer.PartitionSet.commit

    def traced(self, *args, **kwargs):
        tracemalloc.take_snapshot().dump(path)
        current, peak = tracemalloc.get_traced_memory()
        with open(path + ".json", "w") as handle:
            json.dump({"python_current_mb": current / 2**20, "python_peak_mb": peak / 2**20,
                       "arrow_allocated_mb": pa.total_allocated_bytes() / 2**20}, handle)
        return commit(self, *args, **kwargs)

    parquet_writer.PartitionSet.commit = traced


def export_child(args: argparse.Namespace) -> None:
    """Run inside the child: one export, then print its figures as JSON on the last line."""
    if args.tracemalloc:
        trace_commits(args.tracemalloc)
    from blocks import PostDicomCredentials
    from flows.export import nightly_order_export

    credentials = PostDicomCredentials(username=args.username, password=args.password, web_address=args.web_address)
    summary = nightly_order_export(
        credentials=credentials, destination=args.destination, study_date_from=args.day, study_date_to=args.day,
        concurrency=args.concurrency, orders_per_chunk=args.orders_per_chunk,
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "orders": summary.orders, "rows": summary.rows, "requests": summary.requests, "seconds": summary.seconds,
        "chunks": summary.chunks, "chunks_from_cache": summary.chunks_from_cache,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }))


def run_export(args: argparse.Namespace, web_address: str, username: str, password: str, day: dt.date,
               destination: Path, prefect_home: Path) -> dict:
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_API_URL": args.prefect_api or "",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(prefect_home / "storage"),
    }
    command = [
        sys.executable, __file__, "--child", "--web-address", web_address, "--username", username,
        "--password-env", "BENCH_PASSWORD", "--destination", str(destination), "--day", day.isoformat(),
        "--concurrency", str(args.concurrency), "--orders-per-chunk", str(args.orders_per_chunk),
    ]
    if args.tracemalloc:
        command += ["--tracemalloc", str(Path(args.tracemalloc).resolve() / f"{day}-{prefect_home.name}-{time.time_ns()}.snap")]
    done = subprocess.run(command, cwd=ROOT, env={**env, "BENCH_PASSWORD": password}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"export failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=5000, help="K: orders of the small day (the big day has 2K)")
    parser.add_argument("--kind", choices=("stored", "scheduled"), default="stored")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--prefect-api", metavar="URL",
                        help="run the exports against this Prefect API (e.g. http://127.0.0.1:4200/api) instead"
                             " of the ephemeral in-process one, whose own database memory otherwise counts in the"
                             " flow's peak RSS and grows with the run's events")
    parser.add_argument("--orders-per-chunk", type=int, default=50, help="the flow's orders_per_chunk")
    parser.add_argument("--latency-ms", type=int, default=0, help="latency the sandbox adds to every request")
    parser.add_argument("--web-address", help="use a running sandbox instead of starting one")
    parser.add_argument("--username")
    parser.add_argument("--password-env", default="BENCH_PASSWORD", help="environment variable holding the password")
    parser.add_argument("--tracemalloc", metavar="FOLDER",
                        help="diagnostic: each export dumps a tracemalloc snapshot into FOLDER as its day commits"
                             " (slower: seconds are then not comparable)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--destination", help=argparse.SUPPRESS)
    parser.add_argument("--day", type=dt.date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.password = os.environ.get(args.password_env, "")
    if args.child:
        export_child(args)
        return 0

    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    sandbox = None
    try:
        if args.web_address:
            web_address, username, password = args.web_address, args.username, args.password
        else:
            sandbox, web_address, username, password = start_sandbox(work / "sandbox-data", args.latency_ms)
        sizes = {FIRST_DAY: args.orders, FIRST_DAY + dt.timedelta(days=1): 2 * args.orders}
        for day, count in sizes.items():
            seconds = (
                seed_orders(web_address, username, password, day, count, work)
                if args.kind == "stored"
                else seed_scheduled(web_address, username, password, day, count)
            )
            print(f"seeded {count} orders on {day} in {seconds:.1f} s ({count / seconds:.0f}/s)", flush=True)
        print(f"\nexport of {args.kind} orders, concurrency={args.concurrency}, sandbox latency {args.latency_ms} ms")
        print(f"{'orders':>7} {'run':>5} {'seconds':>8} {'orders/s':>9} {'requests/s':>11} {'peak RSS MB':>12} "
              f"{'flow CPU s':>11} {'rows':>40}")
        for day, count in sizes.items():
            home = work / f"prefect-{day}"
            for label in ("cold", "warm"):
                figures = run_export(args, web_address, username, password, day, work / "export", home)
                rate = figures["orders"] / figures["seconds"]
                requests = figures["requests"] / figures["seconds"]
                assert figures["orders"] == count, figures
                print(f"{count:>7} {label:>5} {figures['seconds']:>8.1f} {rate:>9.0f} {requests:>11.0f} "
                      f"{figures['peak_rss_mb']:>12.0f} {figures.get('cpu_seconds', 0):>11.1f} "
                      f"{json.dumps(figures['rows']):>40}", flush=True)
    finally:
        if sandbox is not None:
            stop_process(sandbox)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
