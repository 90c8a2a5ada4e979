"""What every benchmark shares: servers, synthetic data, measured subprocesses, output.

* **Servers.** :func:`orthanc` and :func:`sandbox` start a fresh server in a
  temporary folder and stop it afterwards, so a benchmark run always stores
  into an empty server (no duplicate short-circuits, no index grown by the
  previous run). Both are started by ``deployments.processes`` and
  ``deployments.orthanc``, as the tests' servers and the demo's are:
  benchmarks do not import ``tests``.
* **Wide-area link.** ``benchmarks/delay_proxy.py``.
* **Measured workers.** :func:`run_worker` runs one method of one benchmark in
  a fresh Python process (``python -m benchmarks._common MODULE
  JSON``), so its peak RSS (``ru_maxrss``) is that method's alone. The worker
  calls ``ready()`` once its imports and set-up are done; the clock and the
  RSS baseline start there.
* **Output.** :func:`print_table` and :func:`write_json` (to
  ``benchmarks/out/``, which git ignores), with :func:`machine` describing
  where the figures were taken.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import httpx

from deployments.processes import free_port, start_process, stop_process, wait_until_answering

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "benchmarks" / "out"
MiB = 1024 * 1024
MB = 1_000_000

VENDOR_BOUNDARY = "DICOM DATA BOUNDARY"
"""The boundary the vendor's sample sends (quoted, because it holds spaces)."""


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    """A running DICOMweb server as the benchmarks see it (picklable to JSON for workers)."""

    name: str
    web_address: str
    username: str
    password: str
    dialect: str
    """``standard`` (Orthanc) or ``postdicom`` (the sandbox)."""
    stow_path: str
    """Where STOW bodies go, relative to the web address (PostDICOM: ``/``; PS3.18: ``/studies``)."""
    root_url: str = ""
    extra: dict = field(default_factory=dict)

    def via(self, web_address: str) -> Server:
        """The same server reached at another address (through the delaying proxy)."""
        return replace(self, web_address=web_address)

    @property
    def stow_url(self) -> str:
        return self.web_address + self.stow_path

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def orthanc() -> Iterator[Server]:
    """A fresh Orthanc + DICOMweb plugin (empty storage), removed afterwards.

    Started by the same launcher as the tests' Orthanc fixture, so the
    benchmarks measure exactly the server the tests check.
    """
    from deployments.orthanc import start_orthanc

    work = Path(tempfile.mkdtemp(prefix="bench-orthanc-"))
    process, info = start_orthanc(work, user="bench", password="bench-password")
    try:
        yield Server("orthanc", info.web_address, info.username, info.password, "standard", "/studies",
                     root_url=info.root_url, extra={"pid": process.pid})
    finally:
        stop_process(process)
        shutil.rmtree(work, ignore_errors=True)


def sandbox_account() -> tuple[str, str]:
    """The demo account of the packaged seed (sandbox-only credentials the sandbox prints itself)."""
    account = json.loads((ROOT / "sandbox" / "seed.json").read_text(encoding="utf-8"))["Accounts"][0]
    return account["Email"], account["Password"]


@contextlib.contextmanager
def sandbox(latency_ms: int = 0) -> Iterator[Server]:
    """A fresh sandbox (``python -m sandbox``, empty data folder), removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    port = free_port()
    user, password = sandbox_account()
    log = work / "sandbox.log"
    process = start_process([sys.executable, "-m", "sandbox", "--port", str(port), "--data-dir", str(work / "data"),
                             "--latency-ms", str(latency_ms)], log=log, cwd=ROOT)
    address = f"http://127.0.0.1:{port}/dicomweb"
    try:
        wait_until_answering(process, f"{address}/studies", what="the sandbox", log=log, auth=(user, password))
        yield Server("sandbox", address, user, password, "postdicom", "/", root_url=f"http://127.0.0.1:{port}",
                     extra={"pid": process.pid})
    finally:
        stop_process(process)
        shutil.rmtree(work, ignore_errors=True)


SERVERS: dict[str, Callable[[], contextlib.AbstractContextManager[Server]]] = {"orthanc": orthanc, "sandbox": sandbox}


def stored_instances(server: Server, study_uids: Sequence[str]) -> int:
    """Instances the server holds in these studies (QIDO ``NumberOfStudyRelatedInstances``)."""
    total = 0
    with httpx.Client(auth=(server.username, server.password), timeout=60) as client:
        for uid in study_uids:
            answer = client.get(f"{server.web_address}/studies?0020000D={uid}&includefield=00201208")
            answer.raise_for_status()
            for study in answer.json() if answer.content else []:
                total += int((study.get("00201208", {}).get("Value") or [0])[0])
    return total


def server_versions(servers: Sequence[Server]) -> dict[str, str]:
    """What each server says it is (Orthanc: core and DICOMweb plugin versions)."""
    versions = {}
    for server in servers:
        if server.name == "orthanc":
            auth = (server.username, server.password)
            core = httpx.get(f"{server.root_url}/system", auth=auth, timeout=5).json().get("Version", "?")
            plugin = httpx.get(f"{server.root_url}/plugins/dicom-web", auth=auth, timeout=5).json().get("Version", "?")
            versions["orthanc"] = f"Orthanc {core} + DICOMweb plugin {plugin}"
        else:
            versions[server.name] = "sandbox (python -m sandbox, this repository; Starlette + uvicorn, SQLite)"
    return versions


# ---------------------------------------------------------------- data


def generate_studies(directory: Path, count: int, size_bytes: int, tag: str, per_study: int = 100) -> list[str]:
    """Write ``count`` synthetic instances of about ``size_bytes`` in studies of ``per_study``; their study UIDs.

    Seeded by ``tag``: the same tag gives the same UIDs, another tag other UIDs.
    """
    from postdicom.synthetic import StudySpec, size_for_bytes, write_study

    rows, columns = size_for_bytes(size_bytes)
    uids = []
    for number, start in enumerate(range(0, count, per_study)):
        spec = StudySpec(f"Bench^{tag}{number}", f"BENCH-{tag}-{number}", "CT", series_count=1,
                         instances_per_series=min(per_study, count - start), rows=rows, columns=columns,
                         seed=f"bench-{tag}-{number}")
        write_study(directory, spec)
        uids.append(spec.study_uid())
    return uids


def dicom_files(directory: Path) -> list[Path]:
    """The ``.dcm`` files under ``directory`` in a stable order (what the vendor sample walks)."""
    return sorted(directory.rglob("*.dcm"))


def multipart_body(paths: Sequence[Path], boundary: str = VENDOR_BOUNDARY) -> bytes:
    """A STOW body holding ``paths`` as ``application/dicom`` parts, as the vendor sample builds it."""
    chunks = []
    for path in paths:
        chunks += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(), path.read_bytes(), b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def vendor_content_type(boundary: str = VENDOR_BOUNDARY) -> str:
    return f'multipart/related; type="application/dicom"; boundary="{boundary}"'


# ---------------------------------------------------------------- measured workers


class PeakSampler(threading.Thread):
    """Samples this process's RSS every ``interval`` s; shows when the peak happened, not only its height."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._done = threading.Event()
        self.peak = self._process.memory_info().rss

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self._interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def _high_water_mark() -> int:
    """This process's peak RSS in bytes (``VmHWM``).

    Not ``ru_maxrss``: Linux carries that across ``fork``/``exec``, so a worker
    would report its parent's peak when the parent was bigger.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(times: os.times_result) -> float:
    """CPU time of this process and its waited-for children (curl), user and system."""
    return times.user + times.system + times.children_user + times.children_system


AFTER_CLOCK = "after_clock"
"""A measured method's figures may hold, under this key, a function returning more figures: it is called
after the clock, the CPU and the peak are taken (e.g. reading back from the Prefect API what the run
recorded), so what it does is not measured."""


def _worker_main(module_name: str, spec: dict) -> dict:
    """Run ``spec['method']`` of ``benchmarks.<module_name>`` and add time and memory to its figures."""
    import psutil

    module = importlib.import_module(f"benchmarks.{module_name}")
    method = module.WORKERS[spec["method"]]
    server_pid = ((spec.get("server") or {}).get("extra") or {}).get("pid")
    server = psutil.Process(server_pid) if server_pid else None
    marks: dict[str, float] = {}
    sampler: list[PeakSampler] = []

    def ready() -> None:
        marks["baseline"] = psutil.Process().memory_info().rss
        sampler.append(PeakSampler())
        sampler[0].start()
        marks["cpu"] = _cpu_seconds(os.times())
        marks["server_cpu"] = sum(server.cpu_times()[:2]) if server else 0.0
        marks["start"] = time.perf_counter()

    figures = method(spec, ready) or {}
    seconds = time.perf_counter() - marks["start"]
    client_cpu = _cpu_seconds(os.times()) - marks["cpu"]
    server_cpu = sum(server.cpu_times()[:2]) - marks["server_cpu"] if server else None
    sampled = sampler[0].stop()
    peak = _high_water_mark()
    after_clock = figures.pop(AFTER_CLOCK, None)
    if after_clock is not None:
        figures.update(after_clock())
    figures.update(
        seconds=round(seconds, 3),
        client_cpu_s=round(client_cpu, 3),
        server_cpu_s=None if server_cpu is None else round(server_cpu, 3),
        baseline_rss_mb=round(marks["baseline"] / MiB, 1),
        peak_rss_mb=round(max(peak, sampled) / MiB, 1),
    )
    figures["rss_growth_mb"] = round(figures["peak_rss_mb"] - figures["baseline_rss_mb"], 1)
    return figures


def run_worker(module: str, spec: dict, *, env: dict | None = None, timeout: float = 1800) -> dict:
    """Run one measured method in a fresh process and return its figures (raises with its stderr)."""
    environment = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", **(env or {}))
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks._common", module, json.dumps(spec)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout, check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {spec.get('method')} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(lines[-1])


class RequestCounter:
    """Counts the HTTP requests this process sends while it is active, by what they ask for.

    It wraps httpx's sync and async transports (the client's and Prefect's
    API client both go through them), so a benchmark can say how many
    requests each file or order cost, which load does not change.
    Requests under ``web_address`` (the DICOMweb server) are counted by
    :meth:`kind`; every other request is ``prefect`` (the flows' only other
    peer is the Prefect API). Prefect's event websocket is not an httpx
    request and is not counted.
    """

    def __init__(self, web_address: str, stow_path: str) -> None:
        self.web_address = web_address.rstrip("/")
        self.stow_path = stow_path.rstrip("/")
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._saved: list[tuple[type, str, Callable]] = []

    def kind(self, method: str, url: str) -> str:
        """``stow``, ``qido``, ``wado``, a custom endpoint's name (``getpatientorderlist``) or ``prefect``."""
        if not url.startswith(self.web_address + "/") and url != self.web_address:
            return "prefect"
        path = url[len(self.web_address):].split("?", 1)[0].rstrip("/")
        if method == "POST" and path == self.stow_path:
            return "stow"
        segments = [segment for segment in path.split("/") if segment]
        if segments and segments[0] == "studies":
            return "qido" if segments[-1] in ("studies", "series", "instances") else "wado"
        return segments[0].lower() if segments else "other"

    def count(self, method: str, url: str) -> None:
        kind = self.kind(method, url)
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def figures(self) -> dict:
        """``server_requests`` (total to the DICOMweb server), ``requests_by_kind`` and ``prefect_requests``."""
        with self._lock:
            by_kind = {kind: n for kind, n in sorted(self.counts.items()) if kind != "prefect"}
            return {"server_requests": sum(by_kind.values()), "requests_by_kind": by_kind,
                    "prefect_requests": self.counts.get("prefect", 0)}

    def __enter__(self) -> RequestCounter:
        counter = self
        sync_send = httpx.HTTPTransport.handle_request
        async_send = httpx.AsyncHTTPTransport.handle_async_request

        def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            counter.count(request.method, str(request.url))
            return sync_send(transport, request)

        async def handle_async_request(transport: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
            counter.count(request.method, str(request.url))
            return await async_send(transport, request)

        self._saved = [(httpx.HTTPTransport, "handle_request", sync_send),
                       (httpx.AsyncHTTPTransport, "handle_async_request", async_send)]
        setattr(httpx.HTTPTransport, "handle_request", handle_request)
        setattr(httpx.AsyncHTTPTransport, "handle_async_request", handle_async_request)
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in self._saved:
            setattr(owner, name, original)
        self._saved = []


def interleaved(repeats: int, labels: Sequence[str], measure: Callable[[str], dict], key: str = "seconds",
                progress: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Measure every label ``repeats`` times, round-robin; per label, its fastest run's figures.

    Round-robin, so that a burst of other work on this shared machine slows
    one run of each method rather than every run of one. The fastest run is
    the least disturbed; ``runs`` keeps every ``key`` value and
    ``spread_pct`` how far apart they were (the noise); ``peak_rss_mb`` is
    the highest of all runs.
    """
    runs: dict[str, list[dict]] = {label: [] for label in labels}
    for _ in range(repeats):
        for label in labels:
            figures = measure(label)
            runs[label].append(figures)
            if progress is not None:
                progress(label, figures)
    best = {}
    for label, results in runs.items():
        values = [r[key] for r in results]
        chosen = dict(min(results, key=lambda r: r[key]))
        chosen.update(
            runs=values,
            median=statistics.median(values),
            spread_pct=round(100 * (max(values) - min(values)) / min(values), 1) if min(values) else 0.0,
            peak_rss_mb=max(r["peak_rss_mb"] for r in results),
        )
        best[label] = chosen
    return best


# ---------------------------------------------------------------- raw request rate


def sandbox_orders(server: Server) -> list[dict]:
    """Every patient order of the account (GetPatientOrderList over all its institutions)."""
    parameters = json.dumps({"InstitutionUuidList": ""})
    answer = httpx.get(f"{server.web_address}/getpatientorderlist", auth=(server.username, server.password),
                       headers={"GetPatientOrderListParameters": parameters}, timeout=300)
    answer.raise_for_status()
    return answer.json()["PatientOrderList"]


def export_requests(server: Server, order: dict) -> list[tuple[str, dict[str, str]]]:
    """The four requests the order export makes per order: properties, tag contents, QIDO study and series."""
    ids = json.dumps({"PatientOrderInstitutionUuid": order["InstitutionUuid"],
                      "PatientOrderUuid": order["PatientOrderUuid"]})
    study = order.get("StudyInstanceUid") or ""
    return [
        (f"{server.web_address}/getpatientorderproperties", {"GetPatientOrderPropertiesParameters": ids}),
        (f"{server.web_address}/getdicomtagcontent", {"GetDicomTagContentParameters": ids}),
        (f"{server.web_address}/studies?0020000D={study}", {"Accept": "application/dicom+json"}),
        (f"{server.web_address}/studies/series?0020000D={study}", {"Accept": "application/dicom+json"}),
    ]


def raw_request_rate(server: Server, requests: Sequence[tuple[str, dict[str, str]]], concurrency: int) -> dict:
    """Requests/s the server answers when the client costs nothing: ``curl --parallel`` on these GETs.

    Every answer must be a 200, so an error page cannot pass for speed.
    """
    work = Path(tempfile.mkdtemp(prefix="bench-raw-"))
    try:
        lines = []
        for url, headers in requests:
            lines += [f'url = "{url}"', f'user = "{server.username}:{server.password}"', 'output = "/dev/null"',
                      'write-out = "%{http_code}\\n"']
            lines += [f'header = "{name}: {curl_quote(value)}"' for name, value in headers.items()]
            lines.append("next")
        config = work / "curl.config"
        config.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
        started = time.perf_counter()
        done = subprocess.run(["curl", "--silent", "--show-error", "--parallel", "--parallel-max", str(concurrency),
                               "--config", str(config)], capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    statuses = done.stdout.split()
    if len(statuses) != len(requests) or set(statuses) != {"200"}:
        raise RuntimeError(f"raw requests answered {sorted(set(statuses))} ({len(statuses)} of {len(requests)})")
    return {"requests": len(requests), "concurrency": concurrency, "seconds": round(seconds, 3),
            "requests_per_s": round(len(requests) / seconds, 1)}


def curl_quote(value: str) -> str:
    """A value inside double quotes of a curl config file."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


# ---------------------------------------------------------------- output


def machine() -> dict:
    """Where the figures come from."""
    import dicomweb_client
    import httpcore
    import pydicom

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(memory / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "httpx": httpx.__version__,
        "httpcore": httpcore.__version__,
        "pydicom": pydicom.__version__,
        "dicomweb_client": getattr(dicomweb_client, "__version__", "?"),
        "curl": subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout.split()[1],
    }


def ratios_to_postdicom(rows: Sequence[dict], group_by: Sequence[str], rate: str,
                        others: Sequence[tuple[str, str]]) -> list[dict]:
    """postdicom's ``rate`` over each other method's, one entry per group of rows.

    ``others`` pairs a column label with the method it divides by; a group
    without a postdicom row, or without one of the others, leaves it out.
    """
    table = []
    for group in dict.fromkeys(tuple(r[key] for key in group_by) for r in rows):
        rates = {r["method"]: r[rate] for r in rows if tuple(r[key] for key in group_by) == group}
        if "postdicom" not in rates:
            continue
        entry = dict(zip(group_by, group))
        for label, other in others:
            if other in rates:
                entry[label] = round(rates["postdicom"] / rates[other], 2)
        table.append(entry)
    return table


def print_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> None:
    """Print ``rows`` as an aligned table; ``columns`` are ``(key, heading)``."""
    cells = [[heading for _, heading in columns]]
    for row in rows:
        cells.append([_cell(row.get(key)) for key, _ in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for n, line in enumerate(cells):
        print("  ".join(text.rjust(width) if n and i else text.ljust(width)
                        for i, (text, width) in enumerate(zip(line, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def write_json(name: str, payload: dict) -> Path:
    """Write ``payload`` to ``benchmarks/out/<name>-<UTC time>.json`` and return the path."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = OUT_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Internal entry point of the benchmarks: one measured worker.")
    parser.add_argument("module")
    parser.add_argument("spec")
    args = parser.parse_args(argv)
    print(json.dumps(_worker_main(args.module, json.loads(args.spec))))


if __name__ == "__main__":
    _main()
