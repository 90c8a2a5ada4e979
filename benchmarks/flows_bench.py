"""The three flows against the client they wrap, and how their cost grows with the work (issue 17).

Parts (``--parts``, all by default):

``upload``
    ``bulk_upload_and_share`` (defaults) against ``PostDicomClient.upload_folder``
    (defaults) on the same files, each run into a fresh sandbox, interleaved
    A/B/A/B; 4,000 × 16 KB and 500 × 512 KB (``--quick``: 1,000 × 16 KB and
    200 × 512 KB).
``export``
    ``nightly_order_export`` of one study date (``refresh_cache``: every
    chunk fetched and stored, as a first run does) against the client's own
    calls for the same orders at the same concurrency (the day's order list,
    then properties, tag contents, QIDO study and series per order, on a
    thread pool of the flow's ``concurrency``); 1,000 orders, or each size of
    ``--export-orders`` (``--parts export --export-orders 20000``).
``reassign``
    ``batch_reassignment`` of N rows against the order list plus N
    ``assign_order_to_user`` calls on a thread pool of the flow's
    ``concurrency``; each run assigns the other of two users, so every row is
    really sent.
``growth``
    Peak RSS and seconds of each flow at three sizes (upload 1k/4k/16k files
    of 16 KB, export 1k/5k/20k orders, reassignment 1k/5k rows; ``--quick``:
    a quarter), each in a fresh child process; ``--growth-flows`` picks the
    flows (``--parts growth --growth-flows reassign``: the reassignment only);
    ``--upload-files`` the upload's sizes (``--upload-files 1000,16000``).
``export-growth``
    Only the export's rows of ``growth``, at the sizes of ``--export-orders``
    (e.g. ``--export-orders 1000,5000``).
``floor``
    Prefect's own cost, with nothing of ours in it: wall and CPU (flow
    process, Prefect API) of an empty flow run (and of one without Prefect's
    flow-run heartbeat thread, to show its share), a flow run of one trivial
    task run, of 40 trivial task runs on a ``ThreadPoolTaskRunner`` of 4, and
    of the same 40 each holding a slot of a global concurrency limit of 4 as
    the reassignment's batches do (:func:`flows.assignment.limit_slot`), each
    case in a fresh process after the same warm-up flow as the other parts.

Servers (``--servers``, ``--prefect-server``): the upload part runs on the
sandbox, on Orthanc or on both (``--servers sandbox,orthanc``, a fresh server
per run); export and reassignment use PostDICOM's own calls and run on the
sandbox only. On Orthanc (PS3.18 only, a ``standard`` block) the flow stores
every file, then ends Failed without a PostDICOM call (``StandardServerError``:
no orders or share links there); the worker accepts that on a ``standard``
server only and reports it
(``flow run ended``). ``--prefect-server`` runs every flow against one separate
``prefect server start`` (SQLite in its own home, or PostgreSQL with
``--prefect-database postgresql``: :func:`prefect_server`) instead of the
ephemeral API. Every worker counts the HTTP requests it sent by
kind (STOW, QIDO, WADO, each custom endpoint, Prefect API:
:class:`_common.RequestCounter`); a flow worker also gives when its upload part
ended (``upload part s``: flow-run start, listing, batch task runs, progress
artifact: what ``upload_folder`` does on the client's side).

Every measured run is a fresh Python process (``_common.run_worker``); a flow
worker first runs an empty flow (which starts the ephemeral API, or connects
to ``--prefect-server``) and starts the clock after it, so the figures are the
flow's own, as for a user whose Prefect is already up. The ratio column is
client seconds / flow seconds (1.0: the flow is as fast as the client). The
machine's load average is printed with every row: on a shared machine, only
ratios measured in the same minute compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import _common
from benchmarks._common import MB, Server
from benchmarks.delay_proxy import delay_proxy

SANDBOX_USERS = ("9d02eb73-8dd5-4798-9962-621dcebf7caf", "aa608466-d46c-4eba-a901-433c9c222e33")
"""Two users of the sandbox seed's first institution (the reassignment alternates between them)."""
EXPORT_DAY = dt.date(2033, 1, 10)
RECORDER_SETTINGS = {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
                     "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1"}
"""Prefect's task-run recorder writing up to 200 events per transaction, at least once a second, as
docs/flows.md advises for thousands of task runs (Prefect's default, one transaction per event, falls
behind: RESULTS.md "Reassignment growth"); ``--recorder-default`` measures without."""


def load() -> str:
    """The load averages now, as ``uptime`` prints them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# ---------------------------------------------------------------- workers (run in a fresh process each)


def _credentials(spec: dict):
    from blocks import PostDicomCredentials

    server = Server(**spec["server"])
    return PostDicomCredentials(username=server.username, password=server.password, web_address=server.web_address,
                                dialect=server.dialect)


def _client(spec: dict, **options):
    from postdicom import PostDicomClient

    server = Server(**spec["server"])
    return PostDicomClient(server.web_address, server.username, server.password, dialect=server.dialect, **options)


class PrefectUp:
    """Run an empty flow: starts the ephemeral API (or reaches the server), so the clock starts after it.

    :meth:`cpu_seconds` is the CPU the Prefect API process used since then:
    the ephemeral server is this worker's child; a separate server's process
    id comes in the spec. On two cores that CPU is taken from the sandbox and
    the client, so it is part of what the flow costs.
    """

    def __init__(self, spec: dict) -> None:
        import psutil
        from prefect import flow

        @flow(name="bench-warm-up")
        def warm_up() -> None:
            return None

        warm_up()
        pid = spec.get("prefect_pid")
        if pid:
            server = psutil.Process(pid)
            self.processes = [server, *server.children(recursive=True)]
        else:
            self.processes = psutil.Process().children(recursive=True)
        self.start = self._total()

    def _total(self) -> float:
        return sum(sum(process.cpu_times()[:2]) for process in self.processes if process.is_running())

    def cpu_seconds(self) -> float:
        return round(self._total() - self.start, 3)

    @staticmethod
    def run_end_clock(flow_name: str) -> dict:
        """Call right after ``ready()``: figures that give, after the clock, when Prefect ended the run.

        ``run_end_s`` is from now to the ``end_time`` the Prefect API recorded
        for the newest run of ``flow_name`` (its final state: what the UI shows
        and what automations and a deployment's caller wait for). The wall
        clock goes on past it: a sync flow run then joins Prefect's heartbeat
        thread, which sleeps in whole seconds (RESULTS.md, *Fixed cost at
        loopback, fourth pass*), before the call returns.
        """
        started = time.time()

        def run_end() -> dict:
            from prefect import get_client
            from prefect.client.schemas.filters import FlowFilter, FlowFilterName
            from prefect.client.schemas.sorting import FlowRunSort

            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                             sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
            ended = runs[0].end_time if runs else None
            return {"run_end_s": round(ended.timestamp() - started, 3) if ended else None}

        return {_common.AFTER_CLOCK: run_end}


def _upload_client(spec: dict, ready: Callable[[], None]) -> dict:
    with _client(spec) as client:
        ready()
        report = client.upload_folder(spec["data"])
    return {"stored": report.counts["stored"], "files": len(report)}


def _upload_flow(spec: dict, ready: Callable[[], None]) -> dict:
    from flows.upload_and_share import bulk_upload_and_share

    credentials = _credentials(spec)
    prefect = PrefectUp(spec)
    upload_done = _upload_part_clock()
    ready()
    run_end = prefect.run_end_clock("bulk-upload-and-share")
    started = time.perf_counter()
    try:
        summary = bulk_upload_and_share(credentials, spec["data"], expire_date=dt.date.today() + dt.timedelta(days=2))
        ended = "Completed"
    except Exception as error:
        summary, ended = _failed_after_upload(spec, error)
    return {"stored": summary.counts["stored"], "files": summary.total_files, "orders": len(summary.patient_order_uuids),
            "prefect_cpu_s": prefect.cpu_seconds(), "ended": ended,
            "upload_part_s": round(upload_done[0] - started, 3) if upload_done else None, **run_end}


def _upload_part_clock() -> list[float]:
    """Where the flow's upload part ends: a list that gets the time ``summarise_upload`` is called.

    The flow calls it once, right after the last upload task run; the time
    from the flow call to it is the flow's upload part (flow-run start,
    listing the files, the batch task runs, the progress artifact), what
    ``upload_folder`` does on the client's side.
    """
    import flows.upload_and_share as module

    marks: list[float] = []
    summarise = getattr(module, "summarise_upload", None)
    if summarise is None:  # renamed: no upload-part figure (None) rather than a failed benchmark
        return marks

    def timed(*args, **kwargs):
        marks.append(time.perf_counter())
        return summarise(*args, **kwargs)

    module.summarise_upload = timed
    return marks


def _failed_after_upload(spec: dict, error: Exception):
    """On a standard DICOMweb server (Orthanc) the flow ends Failed after the upload: its summary and why.

    The order lookups and links that follow the upload are PostDICOM calls a
    PS3.18 server does not have, so the flow stops there: the benchmark keeps the upload's figures
    and says how the run ended; on the sandbox any failure is an error.
    """
    from flows.reporting import FlowRunFailed

    if spec["server"]["dialect"] != "standard" or not isinstance(error, FlowRunFailed):
        raise error
    return error.report, "Failed after the upload: " + "; ".join(error.report.problems).split(" | server says")[0]


def _export_client(spec: dict, ready: Callable[[], None]) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from flows.export import tag_ids
    from flows.export_schema import SERIES, STUDIES

    day = dt.date.fromisoformat(spec["day"])
    with _client(spec, max_connections=spec["concurrency"]) as client:
        ready()
        orders = client.get_patient_order_list([], study_date_from=day, study_date_to=day).patient_order_list

        def fetch(order) -> int:
            properties = client.get_patient_order_properties(order.institution_uuid, order.patient_order_uuid)
            study_uid = properties.study_instance_uid
            if not study_uid:
                return 1
            client.get_dicom_tag_content(order.institution_uuid, order.patient_order_uuid,
                                         dicom_tag_id_list=tag_ids([]))
            client.search_for_studies({"StudyInstanceUID": study_uid}, fields=STUDIES.dicom_keywords)
            client.search_for_series(study_uid, fields=SERIES.dicom_keywords)
            return 4

        with ThreadPoolExecutor(spec["concurrency"]) as pool:
            requests = sum(pool.map(fetch, orders))
    return {"orders": len(orders), "requests": requests + 1}


def _export_flow(spec: dict, ready: Callable[[], None]) -> dict:
    from flows.export import nightly_order_export

    credentials = _credentials(spec)
    day = dt.date.fromisoformat(spec["day"])
    prefect = PrefectUp(spec)
    ready()
    run_end = prefect.run_end_clock("nightly-order-export")
    summary = nightly_order_export(credentials, spec["destination"], study_date_from=day, study_date_to=day,
                                   concurrency=spec["concurrency"], refresh_cache=True)
    return {"orders": summary.orders, "requests": summary.requests + 1, "prefect_cpu_s": prefect.cpu_seconds(),
            **run_end}


def _rows(spec: dict) -> list[dict]:
    """The reassignment rows (a file: thousands of rows do not fit in a command line)."""
    return json.loads(Path(spec["rows_file"]).read_text(encoding="utf-8"))


def _reassign_client(spec: dict, ready: Callable[[], None]) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    rows = _rows(spec)
    with _client(spec, max_connections=spec["concurrency"]) as client:
        ready()
        client.get_patient_order_list([])
        with ThreadPoolExecutor(spec["concurrency"]) as pool:
            answers = list(pool.map(
                lambda row: client.assign_order_to_user(row["patient_order_uuid"], row["assigned_user_uuid"]), rows))
    return {"rows": len(rows), "assigned": sum(bool(answer.changed) for answer in answers)}


def reassign_options(spec: dict) -> dict[str, Any]:
    """The flow's keyword arguments a reassignment worker's ``spec`` sets besides its rows.

    ``limit`` (from ``--assignment-limit``) is the flow's ``concurrency_limit_name``,
    ``""`` for none; ``None`` or absent, the flow's default limit.
    """
    options: dict[str, Any] = {"concurrency": spec["concurrency"]}
    if spec.get("limit") is not None:
        options["concurrency_limit_name"] = spec["limit"]
    return options


def _reassign_flow(spec: dict, ready: Callable[[], None]) -> dict:
    from flows.reassignment import batch_reassignment

    credentials = _credentials(spec)
    prefect = PrefectUp(spec)
    ready()
    run_end = prefect.run_end_clock("batch-reassignment")
    if spec["rows_file"].endswith(".csv"):
        report = batch_reassignment(credentials, assignments_file=spec["rows_file"], **reassign_options(spec))
    else:
        report = batch_reassignment(credentials, _rows(spec), **reassign_options(spec))
    return {"rows": len(report.rows), "assigned": report.counts.get("assigned", 0),
            "prefect_cpu_s": prefect.cpu_seconds(), **run_end}


FLOOR_CASES = {
    "empty": "empty flow run",
    "empty-no-heartbeat": "empty flow run, no heartbeat thread",
    "1-task": "1 trivial task run",
    "40-tasks": "40 trivial task runs, 4 threads",
    "40-slots": "40 task runs, 4 threads, a limit slot each",
}
"""The flow runs of the ``floor`` part, by name, and what each holds."""
FLOOR_LIMIT = "bench-floor-slots"
FLOOR_TASKS = 40
FLOOR_THREADS = 4


def _floor_flow(spec: dict, ready: Callable[[], None]) -> dict:
    """One of :data:`FLOOR_CASES`: Prefect's cost with no work of ours (the task returns its argument)."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.assignment import limit_slot
    from flows.prefect_admin import ensure_concurrency_limit

    case = spec["case"]
    limit = FLOOR_LIMIT if case == "40-slots" else None
    if case == "empty-no-heartbeat":
        # Attribution only: Prefect's flow-run heartbeat (on by default, every 180 s) is a thread that
        # sleeps in 1 s steps and that the end of every sync flow run joins; this case shows what that costs.
        import prefect.flow_engine

        prefect.flow_engine.BaseFlowRunEngine.heartbeat_seconds = property(lambda engine: None)  # type: ignore[assignment]

    @task(name="floor-task")
    def trivial(number: int) -> int:
        with limit_slot(limit):
            return number

    @flow(name=f"bench-floor-{case}", task_runner=ThreadPoolTaskRunner(max_workers=FLOOR_THREADS))
    def floor_flow() -> int:
        if case.startswith("empty"):
            return 0
        if case == "1-task":
            return trivial(1)
        return sum(trivial.map(range(FLOOR_TASKS)).result())

    prefect = PrefectUp(spec)
    if limit:
        ensure_concurrency_limit(limit, FLOOR_THREADS)
    ready()
    run_end = prefect.run_end_clock(f"bench-floor-{case}")
    floor_flow()
    return {"case": case, "prefect_cpu_s": prefect.cpu_seconds(), **run_end}


def counted(method: Callable[[dict, Callable[[], None]], dict]) -> Callable[[dict, Callable[[], None]], dict]:
    """``method`` with the HTTP requests it sends after ``ready()`` counted (:class:`_common.RequestCounter`)."""

    def run(spec: dict, ready: Callable[[], None]) -> dict:
        # without a DICOMweb server (the floor part) every request counted is the Prefect API's
        server = Server(**spec["server"]) if spec.get("server") else None
        with _common.RequestCounter(server.web_address if server else "", server.stow_path if server else "") as counter:

            def counted_ready() -> None:
                counter.reset()
                ready()

            figures = method(spec, counted_ready)
            return {**figures, **counter.figures()}

    return run


WORKERS = {name: counted(method) for name, method in {
    "upload-client": _upload_client,
    "upload-flow": _upload_flow,
    "export-client": _export_client,
    "export-flow": _export_flow,
    "reassign-client": _reassign_client,
    "reassign-flow": _reassign_flow,
    "floor": _floor_flow,
}.items()}


# ---------------------------------------------------------------- the parent


class Bench:
    """What the parts share: the work folder, the Prefect settings every worker gets, the result rows."""

    def __init__(self, args: argparse.Namespace, work: Path, prefect: tuple[str, int] | None) -> None:
        self.args = args
        self.work = work
        self.env = {"PREFECT_HOME": str(work / "prefect-home"), "PREFECT_LOGGING_LEVEL": "WARNING",
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                    "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(work / "prefect-results"),
                    **({} if args.recorder_default else RECORDER_SETTINGS)}
        self.prefect_pid = None
        self.api = f"prefect server ({args.prefect_database})" if prefect else "ephemeral"
        self.server = "sandbox"
        """The DICOMweb server the upload part stores into (``--servers``; the other parts need the sandbox)."""
        if prefect:
            self.env["PREFECT_API_URL"], self.prefect_pid = prefect
        self.comparisons: list[dict] = []
        self.growth: list[dict] = []
        self.floor: list[dict] = []

    def worker(self, method: str, spec: dict) -> dict:
        figures = _common.run_worker("flows_bench", dict(spec, method=method, prefect_pid=self.prefect_pid),
                                     env=self.env)
        figures["load"] = load()
        figures["all_cpu_s"] = round(figures["client_cpu_s"] + (figures["server_cpu_s"] or 0)
                                     + (figures.get("prefect_cpu_s") or 0), 2)
        print(f"    {method:16} {figures['seconds']:7.2f} s  CPU: own {figures['client_cpu_s']:5.2f} s, "
              f"Prefect API {figures.get('prefect_cpu_s') or 0:5.2f} s, server {figures['server_cpu_s'] or 0:5.2f} s; "
              f"peak RSS {figures['peak_rss_mb']:6.1f} MB  load {figures['load']}", flush=True)
        upload_part = f"upload part {figures['upload_part_s']:.2f} s, " if figures.get("upload_part_s") else ""
        if figures.get("run_end_s"):
            upload_part = f"run ended in Prefect at {figures['run_end_s']:.2f} s, " + upload_part
        print(f"    {'':16} {upload_part}requests: server {figures['server_requests']} "
              f"{figures['requests_by_kind']}, Prefect API {figures['prefect_requests']}"
              + (f"; {figures['ended']}" if figures.get("ended", "Completed") != "Completed" else ""), flush=True)
        return figures

    def compare(self, part: str, size: str, unit: str, count: int, measure: Callable[[str], dict]) -> None:
        """Client and flow, interleaved ``--repeat`` times; one row with the best of each and their ratio."""
        labels = [f"{part}-client", f"{part}-flow"]
        every: list[dict] = []
        best = _common.interleaved(self.args.repeat, labels, lambda label: every.append(measure(label)) or every[-1])
        client, flow = best[labels[0]], best[labels[1]]
        pairs = [round(c / f, 2) for c, f in zip(client["runs"], flow["runs"], strict=True)]
        flow_runs = [figures for figures in every if "run_end_s" in figures]
        run_end_pairs = [round(c / f["run_end_s"], 2) if f.get("run_end_s") else None
                         for c, f in zip(client["runs"], flow_runs, strict=True)]
        row = {"part": part, "server": self.server if part == "upload" else "sandbox", "api": self.api,
               "size": size, "client_s": client["seconds"], "flow_s": flow["seconds"],
               "client_rate": round(count / client["seconds"]), "flow_rate": round(count / flow["seconds"]),
               "unit": unit, "ratio": round(client["seconds"] / flow["seconds"], 2), "pair_ratios": pairs,
               "client_runs": client["runs"], "flow_runs": flow["runs"], "flow_peak_rss_mb": flow["peak_rss_mb"],
               "client_cpu_s": client["all_cpu_s"], "flow_cpu_s": flow["all_cpu_s"],
               "cpu_ratio": round(client["all_cpu_s"] / flow["all_cpu_s"], 2),
               "load": flow["load"], "loads": [figures["load"] for figures in every],
               "flow_upload_part_s": flow.get("upload_part_s"), "flow_ended": flow.get("ended"),
               "flow_run_end_s": flow.get("run_end_s"), "run_end_pair_ratios": run_end_pairs,
               "client_requests": client["server_requests"], "flow_requests": flow["server_requests"],
               "client_requests_by_kind": client["requests_by_kind"],
               "flow_requests_by_kind": flow["requests_by_kind"], "flow_prefect_requests": flow["prefect_requests"]}
        self.comparisons.append(row)
        print(f"  => {part} {size}: client {row['client_s']} s, flow {row['flow_s']} s, ratio {row['ratio']} "
              f"(per pair {pairs}; to the run's end in Prefect {run_end_pairs})", flush=True)


@contextmanager
def prefect_server(work: Path, settings: dict[str, str], database: str = "sqlite") -> Iterator[tuple[str, int]]:
    """A separate ``prefect server start`` on a free port and its own home; yields its API URL and process id.

    ``database``: ``sqlite`` (Prefect's default, a file in that home) or
    ``postgresql`` (a private cluster, :func:`deployments.postgres.private_postgres`,
    as production runs it).
    """
    if database == "postgresql":
        from deployments.postgres import private_postgres

        with private_postgres(prefix="bench-pg-") as url:
            with prefect_server(work, {**settings, "PREFECT_API_DATABASE_CONNECTION_URL": url}) as api:
                yield api
        return
    from deployments.processes import free_port, start_process, stop_process, wait_until_answering

    port = free_port()
    log = work / "prefect-server.log"
    command = [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
               "--port", str(port)]
    process = start_process(command, log=log, keep_prefixes=("PREFECT_",),
                            env={"PREFECT_HOME": str(work / "prefect-server-home"), "PREFECT_API_URL": None,
                                 "PREFECT_SERVER_API_PORT": str(port), **settings})
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}/api/health", what="the Prefect server", log=log,
                             timeout=180)
        yield f"http://127.0.0.1:{port}/api", process.pid
    finally:
        stop_process(process)


def upload_part(bench: Bench) -> None:
    sizes = [(1000, 16), (200, 512)] if bench.args.quick else [(4000, 16), (500, 512)]
    for count, size_kb in sizes:
        data = bench.work / f"upload-{count}x{size_kb}"
        _common.generate_studies(data, count, size_kb * 1024, f"f{count}x{size_kb}")
        payload = sum(p.stat().st_size for p in _common.dicom_files(data))
        print(f"\nupload {count} × {size_kb} KB ({payload / MB:.0f} MB), fresh {bench.server} per run; load {load()}",
              flush=True)

        def measure(label: str) -> dict:
            with _common.SERVERS[bench.server]() as server:
                figures = bench.worker(f"upload-{label.split('-')[1]}", {"server": server.as_dict(), "data": str(data)})
            if figures["stored"] != count:
                raise RuntimeError(f"{label}: stored {figures['stored']} of {count}")
            return figures

        bench.compare("upload", f"{count} × {size_kb} KB", "files/s", count, measure)
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def seeded_sandbox(bench: Bench, orders: int, latency_ms: int = 0) -> Iterator[Server]:
    """A sandbox holding ``orders`` one-instance studies on :data:`EXPORT_DAY` (``export_bench``'s seeding)."""
    from benchmarks.export_bench import seed_orders

    with _common.sandbox() as server:
        seconds = seed_orders(server.web_address, server.username, server.password, EXPORT_DAY, orders, bench.work)
        print(f"  seeded {orders} orders in {seconds:.1f} s", flush=True)
        if latency_ms:
            with delay_proxy(server.web_address, latency_ms / 2) as address:
                yield server.via(address)
        else:
            yield server


def export_sizes(args: argparse.Namespace, *, growth: bool) -> list[int]:
    """Orders of each export measured: ``--export-orders`` when given, else the part's own sizes.

    The export part compares client and flow at 1,000 orders (``--quick`` 300); the growth rows run
    the issue's 1k/5k/20k (``--quick`` a quarter).
    """
    if args.export_orders:
        return list(args.export_orders)
    scale = 4 if args.quick else 1
    return [1000 // scale, 5000 // scale, 20000 // scale] if growth else [300 if args.quick else 1000]


def export_part(bench: Bench) -> None:
    for orders, latency in itertools.product(export_sizes(bench.args, growth=False), bench.args.latencies):
        print(f"\nexport of {orders} orders, concurrency 8, round trip {latency} ms; load {load()}", flush=True)
        with seeded_sandbox(bench, orders, latency) as server:
            spec = {"server": server.as_dict(), "day": EXPORT_DAY.isoformat(), "concurrency": 8,
                    "destination": str(bench.work / "export")}

            def measure(label: str) -> dict:
                figures = bench.worker(label, spec)
                if figures["orders"] != orders:
                    raise RuntimeError(f"{label}: {figures['orders']} of {orders} orders")
                return figures

            bench.compare("export", f"{orders} orders, {latency} ms", "orders/s", orders, measure)


def reassignment_rows(bench: Bench, server: Server, count: int, user: str, *, csv: bool = False) -> str:
    """A file of ``count`` rows assigning the sandbox's first orders to ``user``; its path.

    JSON: the worker passes the rows inline (``assignments``). CSV: the flow reads the file
    (``assignments_file``), as thousands of rows must be given: inline rows are the flow run's
    parameters, which Prefect refuses over 512 KB (about 4,000 rows, HTTP 422).
    """
    rows = [{"patient_order_uuid": order["PatientOrderUuid"], "assigned_user_uuid": user}
            for order in _common.sandbox_orders(server)[:count]]
    path = bench.work / f"rows-{count}-{user}.{'csv' if csv else 'json'}"
    if csv:
        lines = ["patient_order_uuid,assigned_user_uuid"] + [f"{r['patient_order_uuid']},{user}" for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path.write_text(json.dumps(rows), encoding="utf-8")
    return str(path)


def reassign_part(bench: Bench) -> None:
    rows = 200 if bench.args.quick else 1000
    for latency in bench.args.latencies:
        limit = bench.args.assignment_limit
        print(f"\nreassignment of {rows} rows, concurrency 4, round trip {latency} ms, "
              f"limit {'the flow default' if limit is None else repr(limit)}; load {load()}", flush=True)
        with seeded_sandbox(bench, rows, latency) as server:
            turn = iter(range(1000))

            def measure(label: str) -> dict:
                spec = {"server": server.as_dict(), "concurrency": 4,
                        "rows_file": reassignment_rows(bench, server, rows, SANDBOX_USERS[next(turn) % 2]),
                        "limit": limit}
                figures = bench.worker(label, spec)
                if figures["assigned"] != rows:
                    raise RuntimeError(f"{label}: {figures['assigned']} of {rows} rows assigned")
                return figures

            bench.compare("reassign", f"{rows} rows, {latency} ms", "rows/s", rows, measure)


def floor_part(bench: Bench) -> None:
    """Prefect's floor: each of :data:`FLOOR_CASES` ``--repeat`` times, interleaved, each a fresh process."""
    print(f"\nPrefect's floor ({bench.api} API); load {load()}", flush=True)
    best = _common.interleaved(bench.args.repeat, list(FLOOR_CASES),
                               lambda case: bench.worker("floor", {"server": None, "case": case}))
    for case, what in FLOOR_CASES.items():
        figures = best[case]
        bench.floor.append({"case": what, "api": bench.api, "seconds": figures["seconds"], "runs": figures["runs"],
                            "flow_cpu_s": figures["client_cpu_s"], "prefect_cpu_s": figures["prefect_cpu_s"],
                            "prefect_requests": figures["prefect_requests"], "run_end_s": figures.get("run_end_s"),
                            "load": figures["load"]})


def growth_part(bench: Bench) -> None:
    scale = 4 if bench.args.quick else 1
    flows = bench.args.growth_flows
    print(f"\ncost growth of {', '.join(flows)} (each size a fresh process; load {load()})", flush=True)
    upload_sizes = bench.args.upload_files or [1000 // scale, 4000 // scale, 16000 // scale]
    for count in upload_sizes if "upload" in flows else ():
        data = bench.work / f"growth-{count}"
        _common.generate_studies(data, count, 16 * 1024, f"g{count}")
        with _common.sandbox() as server:
            figures = bench.worker("upload-flow", {"server": server.as_dict(), "data": str(data)})
        shutil.rmtree(data, ignore_errors=True)
        bench.growth.append({"flow": "upload", "size": count, "unit": "files", **figures})
    for count in (1000 // scale, 5000 // scale, 20000 // scale):
        reassign = "reassign" in flows and count <= 5000 // scale
        if "export" not in flows and not reassign:
            continue
        with seeded_sandbox(bench, count) as server:
            if "export" in flows:
                export_growth_run(bench, server, count)
            if reassign:
                spec = {"server": server.as_dict(), "concurrency": 4,
                        "rows_file": reassignment_rows(bench, server, count, SANDBOX_USERS[0], csv=True)}
                figures = bench.worker("reassign-flow", spec)
                bench.growth.append({"flow": "reassign", "size": count, "unit": "rows", **figures})
    growth_table(bench)


def export_growth_run(bench: Bench, server: Server, count: int) -> None:
    """One export of the ``count`` orders seeded on :data:`EXPORT_DAY`, a growth row."""
    spec = {"server": server.as_dict(), "day": EXPORT_DAY.isoformat(), "concurrency": 8,
            "destination": str(bench.work / "growth-export")}
    figures = bench.worker("export-flow", spec)
    if figures["orders"] != count:
        raise RuntimeError(f"export-flow: {figures['orders']} of {count} orders")
    bench.growth.append({"flow": "export", "size": count, "unit": "orders", **figures})


def export_growth_part(bench: Bench) -> None:
    """Only the export's cost growth, at ``--export-orders`` (default: the issue's 1k/5k/20k; --quick a quarter)."""
    sizes = export_sizes(bench.args, growth=True)
    print(f"\nexport cost growth at {sizes} orders (each size a fresh process; load {load()})", flush=True)
    for count in sizes:
        with seeded_sandbox(bench, count) as server:
            export_growth_run(bench, server, count)
    growth_table(bench)


def growth_table(bench: Bench) -> None:
    """Per-item time and memory above each flow's smallest size, for the growth rows."""
    for row in bench.growth:
        row["ms_per_item"] = round(1000 * row["seconds"] / row["size"], 2)
    for flow in ("upload", "export", "reassign"):
        rows = [row for row in bench.growth if row["flow"] == flow]
        for row in rows:
            row["rss_above_smallest_mb"] = round(row["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1)


PARTS = {"upload": upload_part, "export": export_part, "reassign": reassign_part, "growth": growth_part,
         "export-growth": export_growth_part, "floor": floor_part}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks flows", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved client/flow pairs per comparison")
    parser.add_argument("--parts", default="upload,export,reassign,growth",
                        help=f"comma-separated subset of {','.join(PARTS)} (default all but export-growth and floor)")
    parser.add_argument("--growth-flows", default="upload,export,reassign",
                        help="the flows the growth part measures (e.g. reassign: only its 1k and 5k rows)")
    parser.add_argument("--latencies", default="0,50",
                        help="round trips in ms for export and reassignment (50: through the delaying proxy)")
    parser.add_argument("--servers", default="sandbox",
                        help="DICOMweb servers of the upload part: sandbox, orthanc or both (sandbox,orthanc); "
                             "the other parts use PostDICOM calls and run on the sandbox only")
    parser.add_argument("--prefect-server", action="store_true",
                        help="run the flows against a separate `prefect server start` instead of the ephemeral API")
    parser.add_argument("--prefect-database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="database of the --prefect-server: SQLite in its home (default) or a private PostgreSQL")
    parser.add_argument("--recorder-default", action="store_true",
                        help="Prefect's default task-run recorder (one transaction per event) instead of RECORDER_SETTINGS")
    parser.add_argument("--export-orders", default="",
                        help="orders of each export run of --parts export-growth (default the issue's 1000,5000,20000, "
                             "--quick a quarter) and of --parts export (default 1000, --quick 300), e.g. 20000")
    parser.add_argument("--upload-files", default="",
                        help="sizes of the upload's growth rows, e.g. 1000,16000 (default the issue's 1k/4k/16k, "
                             "--quick a quarter)")
    parser.add_argument("--assignment-limit", default=None,
                        help="the reassignment flow's concurrency_limit_name in the reassign part (\"\" for none; "
                             "default the flow's own, postdicom-assignments); the ephemeral API takes no slot anyway")
    args = parser.parse_args(argv)
    args.export_orders = [int(value) for value in args.export_orders.split(",") if value]
    args.upload_files = [int(value) for value in args.upload_files.split(",") if value]
    args.latencies = [int(value) for value in args.latencies.split(",") if value]
    args.growth_flows = [flow.strip() for flow in args.growth_flows.split(",") if flow.strip()]
    unknown_flows = set(args.growth_flows) - {"upload", "export", "reassign"}
    if unknown_flows:
        parser.error(f"unknown growth flows: {', '.join(sorted(unknown_flows))}")
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown_servers = set(args.servers) - set(_common.SERVERS)
    if unknown_servers or not args.servers:
        parser.error(f"--servers takes {', '.join(_common.SERVERS)}, not {args.servers}")
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    work = Path(tempfile.mkdtemp(prefix="bench-flows-"))
    started = time.perf_counter()
    try:
        settings = {} if args.recorder_default else RECORDER_SETTINGS
        with (prefect_server(work, settings, args.prefect_database) if args.prefect_server else _no_server()) as api:
            bench = Bench(args, work, api)
            print(f"flows vs client; Prefect API: {api[0] if api else 'ephemeral'}; load {load()}", flush=True)
            for part in parts:
                for server in args.servers if part == "upload" else ["sandbox"]:
                    bench.server = server
                    PARTS[part](bench)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if bench.comparisons:
        print()
        _common.print_table(bench.comparisons, [("part", "flow"), ("server", "server"), ("api", "Prefect API"),
                                                ("size", "size"), ("client_s", "client s"),
                                                ("flow_s", "flow s"), ("client_rate", "client /s"),
                                                ("flow_rate", "flow /s"), ("unit", "unit"),
                                                ("ratio", "flow/client"), ("client_cpu_s", "client CPU s"),
                                                ("flow_cpu_s", "flow CPU s"), ("cpu_ratio", "CPU ratio"),
                                                ("load", "load (1, 5, 15 min)")])
        print()
        _common.print_table(bench.comparisons, [("part", "flow"), ("server", "server"), ("size", "size"),
                                                ("flow_upload_part_s", "flow upload part s"),
                                                ("flow_run_end_s", "flow s to the run's end in Prefect"),
                                                ("run_end_pair_ratios", "client/flow to the run's end, per pair"),
                                                ("client_requests", "client requests"),
                                                ("flow_requests", "flow requests"),
                                                ("flow_prefect_requests", "flow Prefect API requests"),
                                                ("flow_ended", "flow run ended")])
    if bench.floor:
        print()
        _common.print_table(bench.floor, [("case", "flow run"), ("api", "Prefect API"), ("seconds", "best s"),
                                          ("run_end_s", "s to the run's end in Prefect"),
                                          ("runs", "every run s"), ("flow_cpu_s", "flow process CPU s"),
                                          ("prefect_cpu_s", "Prefect API CPU s"),
                                          ("prefect_requests", "Prefect API requests"), ("load", "load")])
    if bench.growth:
        print()
        _common.print_table(bench.growth, [("flow", "flow"), ("size", "size"), ("unit", "unit"), ("seconds", "s"),
                                           ("ms_per_item", "ms each"), ("peak_rss_mb", "peak RSS MB"),
                                           ("rss_above_smallest_mb", "MB above smallest"), ("load", "load")])
    print(f"\n{time.perf_counter() - started:.0f} s in all; load {load()}")
    _common.write_json("flows", {"machine": _common.machine(), "settings": vars(args),
                                 "comparisons": bench.comparisons, "growth": bench.growth,
                                 "floor": bench.floor})
    return 0


@contextmanager
def _no_server() -> Iterator[tuple[str, int] | None]:
    yield None


if __name__ == "__main__":
    raise SystemExit(main())
