"""STOW throughput of the sandbox: store N small instances, print instances/s.

The sandbox issue's target: 1,000 small instances through STOW in under a
minute on a 2-core machine. This starts ``python -m sandbox`` on a free port
with a fresh data folder (so every instance is really stored, not a
duplicate), generates the instances with ``postdicom.synthetic``, and sends
them with raw httpx in batched ``multipart/related`` requests (the quoted
vendor boundary ``DICOM DATA BOUNDARY``), ``--concurrency`` requests at a time.
With ``--batch-size 1 --concurrency 1`` it is the vendor sample's way (one file
per request, sequentially). It then checks through QIDO that every instance is
there, so a fast but lossy run cannot pass.

Usage::

    python benchmarks/sandbox_stow.py                        # 1,000 instances, batches of 50, 2 at a time
    python benchmarks/sandbox_stow.py --batch-size 1 --concurrency 1
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import sys
import tempfile
import time
from pathlib import Path

import httpx

from deployments.processes import free_port, start_process, stop_process, wait_until_answering
from postdicom.synthetic import StudySpec, write_study

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = "DICOM DATA BOUNDARY"
USER, PASSWORD = "demo@sandbox.postdicom.local", "demo-sandbox-password"


def body_for(paths: list[Path]) -> bytes:
    chunks = []
    for path in paths:
        chunks += [f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode(), path.read_bytes(), b"\r\n"]
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(chunks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="rows = columns of each instance (64 = ~9 KB)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sandbox-stow-bench-"))
    series = math.ceil(args.instances / 100)
    spec = StudySpec("Bench^Mark", "BENCH-1", "CT", series_count=series,
                     instances_per_series=math.ceil(args.instances / series), rows=args.size, columns=args.size,
                     seed="sandbox-stow-bench")
    paths = write_study(work / "files", spec)[: args.instances]
    total_bytes = sum(p.stat().st_size for p in paths)
    port = free_port()
    log = work / "sandbox.log"
    server = start_process([sys.executable, "-m", "sandbox", "--port", str(port), "--data-dir", str(work / "data")],
                           log=log, cwd=ROOT)
    base = f"http://127.0.0.1:{port}/dicomweb"
    try:
        wait_until_answering(server, f"http://127.0.0.1:{port}/", what="the sandbox", log=log)

        batches = [paths[i:i + args.batch_size] for i in range(0, len(paths), args.batch_size)]
        headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"',
                   "Accept": "application/dicom+json"}
        with httpx.Client(base_url=base, auth=(USER, PASSWORD), timeout=120,
                          limits=httpx.Limits(max_connections=args.concurrency)) as client:
            def send(batch: list[Path]) -> int:
                answer = client.post("/", content=body_for(batch), headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"STOW answered {answer.status_code}: {answer.headers.get('x-error-reason')}")
                return len(answer.json()["00081199"]["Value"])

            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                stored = sum(pool.map(send, batches))
            seconds = time.perf_counter() - started
            found = client.get(f"/studies?0020000D={spec.study_uid()}").json()[0]["00201208"]["Value"][0]
        if stored != len(paths) or found != len(paths):
            raise SystemExit(f"expected {len(paths)} instances, STOW acknowledged {stored}, QIDO finds {found}")
        print(f"stored {len(paths)} instances ({total_bytes / len(paths) / 1024:.1f} KB each) "
              f"in {len(batches)} requests of up to {args.batch_size}, {args.concurrency} at a time")
        print(f"{seconds:.2f} s  ->  {len(paths) / seconds:.0f} instances/s, "
              f"{total_bytes / seconds / 1e6:.1f} MB/s")
    finally:
        stop_process(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
