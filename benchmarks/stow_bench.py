"""Bulk STOW: this project's upload against the vendor's way, dicomweb-client, and the server's limit.

For each server (a fresh Orthanc + DICOMweb, a fresh sandbox) and each link
(loopback; a simulated wide-area round trip through the delaying proxy of
``_common``), N synthetic instances are stored four ways, each into a freshly
started, empty server, each in its own process (``_common.run_worker``):

``vendor``
    the vendor sample's method: one file per request, sequentially (httpx,
    keep-alive, boundary ``DICOM DATA BOUNDARY``);
``dicomweb-client``
    ``DICOMwebClient.store_instances`` on batches of pydicom datasets read
    from the files (the standard Python path);
``postdicom``
    this project's ``PostDicomClient.upload_folder`` with its defaults
    (walk, classify, QIDO pre-check, batched concurrent STOW);
``curl``
    the limit: multipart bodies built before the clock starts, posted by
    ``curl --parallel`` with the same batch size and concurrency as the
    project's defaults: what the server ingests when the client costs nothing.

Every run is checked with QIDO afterwards: the server must hold all N
instances, so a fast but lossy method cannot win. Prints instances/s, MB/s,
the ratios postdicom/vendor, postdicom/dicomweb-client, postdicom/curl, and the
peak RSS of each worker (baseline = its RSS once imports were done).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import _common
from benchmarks._common import MB, Server
from benchmarks.delay_proxy import delay_proxy

METHODS = ("vendor", "dicomweb-client", "postdicom", "curl")


def _project_default(name: str) -> int:
    """A default of ``upload_folder``, so the limit is measured with the same batch shape as the project."""
    from postdicom.upload import upload_folder

    return int(inspect.signature(upload_folder).parameters[name].default)


def _referenced(document: object) -> int:
    """Instances listed in a STOW answer's ReferencedSOPSequence."""
    if isinstance(document, list) and document:
        document = document[0]
    if not isinstance(document, dict):
        return 0
    return len((document.get("00081199") or {}).get("Value") or [])


def _vendor(spec: dict, ready: Callable[[], None]) -> dict:
    import httpx

    server = Server(**spec["server"])
    files = _common.dicom_files(Path(spec["data"]))
    headers = {"Content-Type": _common.vendor_content_type(), "Accept": "application/dicom+json"}
    stored = 0
    with httpx.Client(auth=(server.username, server.password), timeout=120) as client:
        ready()
        for path in files:
            answer = client.post(server.stow_url, content=_common.multipart_body([path]), headers=headers)
            stored += _referenced(answer.json()) if answer.content else 0
    return {"acknowledged": stored, "requests": len(files)}


def _dicomweb_client(spec: dict, ready: Callable[[], None]) -> dict:
    import pydicom
    import requests
    from dicomweb_client.api import DICOMwebClient

    server = Server(**spec["server"])
    files = _common.dicom_files(Path(spec["data"]))
    session = requests.Session()
    session.auth = (server.username, server.password)
    client = DICOMwebClient(url=server.web_address, session=session)
    size = spec["batch_size"]
    ready()
    stored = 0
    for start in range(0, len(files), size):
        datasets = [pydicom.dcmread(path) for path in files[start : start + size]]
        answer = client.store_instances(datasets)
        stored += len(getattr(answer, "ReferencedSOPSequence", []) or [])
    return {"acknowledged": stored, "requests": -(-len(files) // size)}


def _postdicom(spec: dict, ready: Callable[[], None]) -> dict:
    from postdicom import PostDicomClient

    server = Server(**spec["server"])
    with PostDicomClient(server.web_address, server.username, server.password, dialect=server.dialect) as client:
        ready()
        report = client.upload_folder(spec["data"])
    if not report.ok:
        reasons = {entry.reason for entry in report.rejected + report.failed}
        raise RuntimeError(f"upload not ok: {report.summary()}: {sorted(reasons)[:3]}")
    return {"acknowledged": report.counts["stored"]}


def _curl(spec: dict, ready: Callable[[], None]) -> dict:
    server = Server(**spec["server"])
    bodies = sorted(Path(spec["bodies"]).glob("body-*"))
    answers = Path(spec["bodies"]) / "answers"
    shutil.rmtree(answers, ignore_errors=True)
    answers.mkdir()
    content_type = _common.curl_quote(_common.vendor_content_type())
    config = []
    for body in bodies:
        config += [
            f'url = "{server.stow_url}"',
            f'user = "{server.username}:{server.password}"',
            f'data-binary = "@{body}"',
            f'header = "Content-Type: {content_type}"',
            'header = "Accept: application/dicom+json"',
            'header = "Expect:"',  # no 1 s wait for a "100 Continue" that Orthanc never sends
            f'output = "{answers / body.name}.json"',
            "next",
        ]
    config_path = Path(spec["bodies"]) / "curl.config"
    config_path.write_text("\n".join(config[:-1]) + "\n", encoding="utf-8")
    ready()
    subprocess.run(["curl", "--silent", "--show-error", "--parallel", "--parallel-max", str(spec["concurrency"]),
                    "--config", str(config_path)], check=True)
    stored = sum(_referenced(json.loads(p.read_bytes() or b"null")) for p in answers.glob("*.json"))
    return {"acknowledged": stored, "requests": len(bodies)}


WORKERS = {"vendor": _vendor, "dicomweb-client": _dicomweb_client, "postdicom": _postdicom, "curl": _curl}


def build_bodies(files: list[Path], batch_size: int, directory: Path) -> None:
    """The curl method's request bodies, written before any clock starts."""
    directory.mkdir(parents=True, exist_ok=True)
    for number, start in enumerate(range(0, len(files), batch_size)):
        (directory / f"body-{number:04d}").write_bytes(_common.multipart_body(files[start : start + batch_size]))


def _measure_method(server_kind: str, link: str, delay_ms: float, spec: dict, study_uids: list[str],
                    method: str) -> dict:
    """One method into one fresh server, checked with QIDO afterwards."""
    with _common.SERVERS[server_kind]() as server:
        if link == "loopback":
            figures = _common.run_worker("stow_bench", dict(spec, method=method, server=server.as_dict()))
        else:
            with delay_proxy(server.web_address, delay_ms) as address:
                figures = _common.run_worker("stow_bench",
                                             dict(spec, method=method, server=server.via(address).as_dict()))
        held = _common.stored_instances(server, study_uids)
    if held != spec["count"] or figures["acknowledged"] != spec["count"]:
        raise RuntimeError(f"{method} to {server_kind} ({link}): {figures['acknowledged']} acknowledged, "
                           f"{held} on the server, {spec['count']} sent")
    seconds = figures["seconds"]
    return dict(figures, server=server_kind, link=link, method=method, instances_per_s=spec["count"] / seconds,
                mb_per_s=spec["bytes"] / MB / seconds)


def _report_run(method: str, figures: dict) -> None:
    print(f"  {figures['server']:8} {figures['link']:8} {method:16} {figures['seconds']:7.2f} s "
          f"{figures['instances_per_s']:7.1f} inst/s  cpu {figures['client_cpu_s']:.2f} s  "
          f"peak {figures['peak_rss_mb']} MB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks stow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500, help="instances (default 500)")
    parser.add_argument("--size-kb", type=int, default=512, help="size of each instance in KB (default 512)")
    parser.add_argument("--delay-ms", type=float, default=25.0,
                        help="one-way delay of the simulated wide-area link (default 25: a 50 ms round trip)")
    parser.add_argument("--servers", default="orthanc,sandbox", help="comma list of orthanc, sandbox")
    parser.add_argument("--links", default="loopback,wan", help="comma list of loopback, wan")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest is kept")
    parser.add_argument("--quick", action="store_true", help="100 instances, one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.repeat = 100, 1

    batch_size, concurrency = _project_default("batch_size"), _project_default("concurrency")
    work = Path(tempfile.mkdtemp(prefix="bench-stow-"))
    try:
        data = work / "data"
        study_uids = _common.generate_studies(data, args.count, args.size_kb * 1024, "stow")
        files = _common.dicom_files(data)
        build_bodies(files, batch_size, work / "bodies")
        spec = dict(data=str(data), bodies=str(work / "bodies"), count=len(files),
                    bytes=sum(p.stat().st_size for p in files), batch_size=batch_size, concurrency=concurrency)
        print(f"STOW of {len(files)} instances x {spec['bytes'] / len(files) / 1024:.0f} KB "
              f"({spec['bytes'] / MB:.0f} MB); batches of {batch_size}, {concurrency} requests in flight "
              f"(postdicom, curl); dicomweb-client batches of {batch_size}, one at a time; "
              f"wan = {2 * args.delay_ms:.0f} ms round trip", flush=True)
        rows = []
        for server_kind in args.servers.split(","):
            for link in args.links.split(","):
                best = _common.interleaved(
                    args.repeat,
                    args.methods.split(","),
                    functools.partial(_measure_method, server_kind, link, args.delay_ms, spec, study_uids),
                    progress=_report_run,
                )
                for row in best.values():
                    row.update(instances_per_s=spec["count"] / row["seconds"],
                               mb_per_s=spec["bytes"] / MB / row["seconds"])
                    rows.append(row)
        ratios = _common.ratios_to_postdicom(
            rows, ("server", "link"), "instances_per_s",
            (("c/a", "vendor"), ("c/b", "dicomweb-client"), ("c/d", "curl")))
        print()
        _common.print_table(rows, [("server", "server"), ("link", "link"), ("method", "method"),
                                   ("seconds", "s"), ("instances_per_s", "inst/s"), ("mb_per_s", "MB/s"),
                                   ("spread_pct", "spread %"), ("client_cpu_s", "client CPU s"),
                                   ("server_cpu_s", "server CPU s"), ("baseline_rss_mb", "base RSS MB"),
                                   ("peak_rss_mb", "peak RSS MB")])
        print()
        _common.print_table(ratios, [("server", "server"), ("link", "link"), ("c/a", "postdicom/vendor"),
                                     ("c/b", "postdicom/dicomweb-client"), ("c/d", "postdicom/curl")])
        _common.write_json("stow", {"machine": _common.machine(), "settings": dict(vars(args), **spec),
                                    "results": rows, "ratios": ratios})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
