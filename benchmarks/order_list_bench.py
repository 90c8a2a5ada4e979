"""GetPatientOrderList of N orders, read whole vs read as it arrives: client CPU per order and peak RSS growth.

``python benchmarks/order_list_bench.py --orders 20000 --rounds 5``

A separate process serves one answer of N sandbox-like orders (about 0.6 KB
each) over loopback; this process asks for it with ``get_patient_order_list``
(whole) and, where the client has it, ``iter_patient_order_list`` (streamed),
reducing each order to its UUID and institution as the export does. Each way
runs in a fresh child process, so its peak RSS (``ru_maxrss``) and CPU
seconds are its own: the server's CPU is not counted. Prints the median of
the rounds.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
body = open(sys.argv[1], "rb").read()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def do_GET(self):
        answer = b"[]" if "warm-up" in self.headers.get("GetPatientOrderListParameters", "") else body
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def order(n: int) -> dict:
    return {
        "PatientOrderUuid": f"6f1c0d7e-1111-4a6b-9c3d-{n:012x}", "InstitutionUuid": "bb1c0d7e-3333-4a6b-9c3d-0a1b2c3d4e5f",
        "OrderStatus": "Completed", "PatientName": f"Muñoz^José^{n}", "PatientId": f"PID-{n:08d}",
        "OtherPatientId": "", "PatientSex": "MF"[n % 2], "PatientBirthdate": "1961-03-14",
        "AccessionNumber": f"ACC-{n:08d}", "Modality": "CT", "ModalityList": ["CT", "SR"],
        "StudyInstanceUid": f"1.2.826.0.1.3680043.8.498.{n}", "StudyDate": "2026-11-27",
        "StudyDescription": "CT chest with contrast", "AssignedUserUuid": None, "AssignedUserGroupUuid": None,
        "NumberOfSeries": 2, "NumberOfInstances": 40,
    }


def measure(port: int, way: str) -> dict:
    """One read in this process: CPU seconds, wall seconds, orders, peak RSS growth (KiB)."""
    from postdicom import PostDicomClient

    with PostDicomClient(f"http://127.0.0.1:{port}/dicomweb", "u", "p") as client:
        client.get_patient_order_list([], accession_number="warm-up")  # imports, connection, first-call costs
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu, wall = time.process_time(), time.perf_counter()
        if way == "whole":
            refs = [(o.patient_order_uuid, o.institution_uuid) for o in client.get_patient_order_list([]).patient_order_list]
        else:
            with client.iter_patient_order_list([]) as orders:
                refs = [(o.patient_order_uuid, o.institution_uuid) for o in orders]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {"way": way, "orders": len(refs), "cpu_s": cpu, "wall_s": wall, "rss_growth_kib": grown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("PORT", "WAY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1])))
        return
    import tempfile

    from postdicom import PostDicomClient

    ways = ["whole"] + (["stream"] if hasattr(PostDicomClient, "iter_patient_order_list") else [])
    with tempfile.NamedTemporaryFile(suffix=".json") as body:
        body.write(json.dumps({"PatientOrderList": [order(n) for n in range(args.orders)]}).encode())
        body.flush()
        size = body.tell()
        with subprocess.Popen([sys.executable, "-c", SERVER, body.name], stdout=subprocess.PIPE, text=True) as server:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            try:
                runs: dict[str, list[dict]] = {way: [] for way in ways}
                for _ in range(args.rounds):
                    for way in ways:
                        out = subprocess.run([sys.executable, __file__, "--child", str(port), way],
                                             check=True, capture_output=True, text=True).stdout
                        runs[way].append(json.loads(out))
            finally:
                server.terminate()
    print(f"{args.orders} orders, body {size / 1e6:.1f} MB, median of {args.rounds} rounds")
    print(f"{'way':8} {'orders':>7} {'cpu s':>7} {'us/order':>9} {'wall s':>7} {'peak RSS growth MB':>19}")
    for way, found in runs.items():
        cpu = statistics.median(r["cpu_s"] for r in found)
        wall = statistics.median(r["wall_s"] for r in found)
        rss = statistics.median(r["rss_growth_kib"] for r in found) / 1024
        print(f"{way:8} {found[0]['orders']:>7} {cpu:>7.3f} {cpu / args.orders * 1e6:>9.1f} {wall:>7.3f} {rss:>19.1f}")


if __name__ == "__main__":
    main()
