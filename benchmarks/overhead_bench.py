"""What Prefect costs: the same upload and retrieve called directly and inside a flow, and per task run.

Modes, each in its own process (``_common.run_worker``) so that its peak RSS
is its own, sharing one temporary ``PREFECT_HOME`` (an ephemeral Prefect
server, as a flow run started without ``PREFECT_API_URL`` gets; its database
is created by a warm-up run that is not reported):

``direct``
    ``PostDicomClient.upload_folder`` then ``retrieve_study`` per study, no Prefect;
``empty-flow``
    a flow that does nothing: the baseline of the memory target (a flow
    doing the upload and retrieve may peak at most 64 MB above it);
``flow``
    a flow calling the ``upload_dicom_images_in_a_folder`` task, then
    ``retrieve_images_using_wado_rs`` per study (each task call timed inside
    the flow, so the flow's own start is not in the task figures);
``tasks``
    per-task overhead: a flow calling a trivial task N times, one after the
    other, and a flow ``.map``-ing it over N items on a 4-thread runner,
    against N direct calls of the same function.

``direct`` and ``flow`` each get a fresh Orthanc, so both really store
everything.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import _common
from benchmarks._common import MB, Server


def _client(spec: dict):
    from postdicom import PostDicomClient

    server = Server(**spec["server"])
    return PostDicomClient(server.web_address, server.username, server.password, dialect=server.dialect)


def _direct(spec: dict, ready: Callable[[], None]) -> dict:
    with _client(spec) as client:
        ready()
        started = time.perf_counter()
        report = client.upload_folder(spec["data"])
        upload_s = time.perf_counter() - started
        started = time.perf_counter()
        retrieved = sum(len(client.retrieve_study(uid, spec["destination"])) for uid in spec["study_uids"])
        retrieve_s = time.perf_counter() - started
    return {"stored": report.counts["stored"], "retrieved": retrieved, "upload_s": round(upload_s, 3),
            "retrieve_s": round(retrieve_s, 3)}


def _empty_flow(spec: dict, ready: Callable[[], None]) -> dict:
    from prefect import flow

    @flow(name="bench-empty")
    def empty() -> None:
        return None

    ready()
    empty()
    return {}


def _flow(spec: dict, ready: Callable[[], None]) -> dict:
    from prefect import flow

    from blocks import PostDicomCredentials
    from tasks import retrieve_images_using_wado_rs, upload_dicom_images_in_a_folder

    server = Server(**spec["server"])
    credentials = PostDicomCredentials(username=server.username, password=server.password,
                                       web_address=server.web_address, dialect=server.dialect)

    @flow(name="bench-upload-retrieve")
    def upload_and_retrieve() -> dict:
        started = time.perf_counter()
        report = upload_dicom_images_in_a_folder(credentials, spec["data"])
        upload_s = time.perf_counter() - started
        started = time.perf_counter()
        retrieved = sum(
            len(retrieve_images_using_wado_rs(credentials, study_instance_uid=uid, destination=spec["destination"]))
            for uid in spec["study_uids"]
        )
        retrieve_s = time.perf_counter() - started
        return {"stored": report.counts["stored"], "retrieved": retrieved, "upload_s": round(upload_s, 3),
                "retrieve_s": round(retrieve_s, 3)}

    ready()
    return upload_and_retrieve()


def _tasks(spec: dict, ready: Callable[[], None]) -> dict:
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    count = spec["tasks"]

    def add_one(value: int) -> int:
        return value + 1

    trivial = task(add_one, name="trivial")

    @flow(name="bench-no-tasks")
    def no_tasks() -> float:
        return 0.0

    @flow(name="bench-sequential-tasks")
    def sequential() -> float:
        started = time.perf_counter()
        for value in range(count):
            trivial(value)
        return time.perf_counter() - started

    @flow(name="bench-mapped-tasks", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def mapped() -> float:
        started = time.perf_counter()
        trivial.map(range(count)).result()
        return time.perf_counter() - started

    ready()
    started = time.perf_counter()
    for value in range(count):
        add_one(value)
    direct_s = time.perf_counter() - started
    timings = {}
    for name, run in (("no_tasks", no_tasks), ("sequential", sequential), ("mapped", mapped)):
        started = time.perf_counter()
        inside = run()
        timings[name] = (time.perf_counter() - started, inside)
    return {
        "tasks": count,
        "direct_calls_ms": round(1000 * direct_s, 3),
        "empty_flow_run_s": round(timings["no_tasks"][0], 3),
        "sequential_flow_run_s": round(timings["sequential"][0], 3),
        "sequential_per_task_ms": round(1000 * (timings["sequential"][1] - direct_s) / count, 2),
        "mapped_flow_run_s": round(timings["mapped"][0], 3),
        "mapped_per_task_ms": round(1000 * (timings["mapped"][1] - direct_s) / count, 2),
    }


WORKERS = {"direct": _direct, "empty-flow": _empty_flow, "flow": _flow, "tasks": _tasks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="instances uploaded and retrieved (default 200)")
    parser.add_argument("--size-kb", type=int, default=512, help="size of each instance in KB (default 512)")
    parser.add_argument("--tasks", type=int, default=100, help="trivial task runs per flow (default 100)")
    parser.add_argument("--quick", action="store_true", help="50 instances, 50 tasks")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.tasks = 50, 50

    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    env = {"PREFECT_HOME": str(work / "prefect-home"), "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    try:
        data = work / "data"
        study_uids = _common.generate_studies(data, args.count, args.size_kb * 1024, "overhead")
        files = _common.dicom_files(data)
        payload = sum(p.stat().st_size for p in files)
        spec = dict(data=str(data), study_uids=study_uids, destination=str(work / "retrieved"), tasks=args.tasks)
        print(f"Prefect overhead: upload + retrieve of {len(files)} instances ({payload / MB:.0f} MB) to a fresh "
              f"Orthanc, direct vs in a flow; {args.tasks} trivial tasks", flush=True)
        _common.run_worker("overhead_bench", dict(spec, method="empty-flow"), env=env)  # creates the database
        rows = {}
        for mode in ("empty-flow", "direct", "flow", "tasks"):
            if mode in ("direct", "flow"):
                with _common.orthanc() as server:
                    rows[mode] = _common.run_worker("overhead_bench", dict(spec, method=mode, server=server.as_dict()),
                                                    env=env)
                shutil.rmtree(spec["destination"], ignore_errors=True)
                if (rows[mode]["stored"], rows[mode]["retrieved"]) != (len(files), len(files)):
                    raise RuntimeError(f"{mode}: stored {rows[mode]['stored']}, retrieved {rows[mode]['retrieved']}, "
                                       f"expected {len(files)}")
            else:
                rows[mode] = _common.run_worker("overhead_bench", dict(spec, method=mode), env=env)
            rows[mode]["mode"] = mode
            print(f"  {mode:10} {rows[mode]['seconds']:7.2f} s  peak RSS {rows[mode]['peak_rss_mb']} MB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    empty, direct, in_flow, tasks = rows["empty-flow"], rows["direct"], rows["flow"], rows["tasks"]
    summary = {
        "upload_direct_s": direct["upload_s"],
        "upload_in_flow_s": in_flow["upload_s"],
        "upload_overhead_s": round(in_flow["upload_s"] - direct["upload_s"], 3),
        "retrieve_direct_s": direct["retrieve_s"],
        "retrieve_in_flow_s": in_flow["retrieve_s"],
        "retrieve_overhead_s": round(in_flow["retrieve_s"] - direct["retrieve_s"], 3),
        "empty_flow_peak_rss_mb": empty["peak_rss_mb"],
        "flow_peak_rss_mb": in_flow["peak_rss_mb"],
        "flow_above_empty_flow_mb": round(in_flow["peak_rss_mb"] - empty["peak_rss_mb"], 1),
        "direct_peak_rss_mb": direct["peak_rss_mb"],
        "direct_growth_mb": direct["rss_growth_mb"],
        **{k: tasks[k] for k in ("direct_calls_ms", "empty_flow_run_s", "sequential_flow_run_s",
                                 "sequential_per_task_ms", "mapped_flow_run_s", "mapped_per_task_ms")},
    }
    print()
    _common.print_table(list(rows.values()), [("mode", "mode"), ("seconds", "s"), ("upload_s", "upload s"),
                                              ("retrieve_s", "retrieve s"), ("baseline_rss_mb", "base RSS MB"),
                                              ("peak_rss_mb", "peak RSS MB")])
    print()
    _common.print_table([{"figure": k, "value": v} for k, v in summary.items()], [("figure", "figure"),
                                                                                   ("value", "value")])
    verdict = "OK" if summary["flow_above_empty_flow_mb"] <= 64 else "OVER"
    print(f"\nflow peak RSS - empty flow peak RSS = {summary['flow_above_empty_flow_mb']} MB "
          f"(target <= 64 MB): {verdict}")
    _common.write_json("overhead", {"machine": _common.machine(), "settings": vars(args), "results": rows,
                                    "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
