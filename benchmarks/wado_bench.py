"""WADO-RS retrieve of one study of about 100 MB to disk: this project vs dicomweb-client vs curl.

The study (default 200 instances x 512 KB) is stored once into a fresh server;
then each method downloads it into an empty folder, in its own process (so
its peak RSS is its own), ``--repeat`` times:

``postdicom``
    ``PostDicomClient.retrieve_study``: the answer split as it streams, one
    ``<SOPInstanceUID>.dcm`` per part;
``dicomweb-client retrieve_study``
    the whole answer read and decoded into datasets, each then saved;
``dicomweb-client iter_study``
    the datasets yielded one by one as the answer streams, each saved;
``curl``
    the raw multipart body saved to one file, not split (the limit).

Every method must produce as many instances as the study holds (curl: as
many part delimiters). Prints MB/s (payload MB = the stored files' sizes),
peak RSS, and the ratios postdicom/curl and postdicom/iter_study.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import _common
from benchmarks._common import MB, Server

METHODS = ("postdicom", "dwc-retrieve_study", "dwc-iter_study", "curl")
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _study_url(server: Server, study_uid: str) -> str:
    return f"{server.web_address}/studies/{study_uid}"


def _postdicom(spec: dict, ready: Callable[[], None]) -> dict:
    from postdicom import PostDicomClient

    server = Server(**spec["server"])
    with PostDicomClient(server.web_address, server.username, server.password, dialect=server.dialect) as client:
        ready()
        paths = client.retrieve_study(spec["study_uid"], spec["destination"])
    return {"instances": len(paths)}


def _dicomweb_client(spec: dict, ready: Callable[[], None], *, streaming: bool) -> dict:
    import requests
    from dicomweb_client.api import DICOMwebClient

    server = Server(**spec["server"])
    session = requests.Session()
    session.auth = (server.username, server.password)
    client = DICOMwebClient(url=server.web_address, session=session)
    destination = Path(spec["destination"])
    destination.mkdir(parents=True, exist_ok=True)
    ready()
    datasets = client.iter_study(spec["study_uid"]) if streaming else client.retrieve_study(spec["study_uid"])
    count = 0
    for dataset in datasets:
        dataset.save_as(destination / f"{dataset.SOPInstanceUID}.dcm")
        count += 1
    return {"instances": count}


def _curl(spec: dict, ready: Callable[[], None]) -> dict:
    server = Server(**spec["server"])
    destination = Path(spec["destination"])
    destination.mkdir(parents=True, exist_ok=True)
    body = destination / "study.multipart"
    ready()
    subprocess.run(["curl", "--silent", "--show-error", "--fail", "--user", f"{server.username}:{server.password}",
                    "--header", f"Accept: {ACCEPT}", "--output", str(body), _study_url(server, spec["study_uid"])],
                   check=True)
    return {"instances": _count_parts(body)}


def _count_parts(body: Path) -> int:
    """Part delimiters in a saved multipart body (the closing one excluded), read in chunks."""
    count = 0
    with body.open("rb") as handle:
        delimiter = b"\r\n" + handle.readline().rstrip(b"\r\n") + b"\r\n"
        carry = b""
        while chunk := handle.read(1 << 20):
            data = carry + chunk
            count += data.count(delimiter)
            last = data.rfind(delimiter)
            carry = data[max(len(data) - len(delimiter) + 1, last + len(delimiter) if last >= 0 else 0) :]
    return 1 + count


WORKERS = {
    "postdicom": _postdicom,
    "dwc-retrieve_study": functools.partial(_dicomweb_client, streaming=False),
    "dwc-iter_study": functools.partial(_dicomweb_client, streaming=True),
    "curl": _curl,
}


def measure(method: str, spec: dict, work: Path) -> dict:
    """One download into an empty folder, removed afterwards."""
    destination = work / f"out-{method}"
    shutil.rmtree(destination, ignore_errors=True)
    try:
        figures = _common.run_worker("wado_bench", dict(spec, method=method, destination=str(destination)))
    finally:
        shutil.rmtree(destination, ignore_errors=True)
    if figures["instances"] != spec["count"]:
        raise RuntimeError(f"{method} produced {figures['instances']} instances, the study holds {spec['count']}")
    return dict(figures, method=method, mb_per_s=spec["bytes"] / MB / figures["seconds"])


def _report_run(server_kind: str, method: str, figures: dict) -> None:
    print(f"  {server_kind:8} {method:19} {figures['seconds']:6.2f} s cpu {figures['client_cpu_s']:.2f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks wado", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="instances in the study (default 200)")
    parser.add_argument("--size-kb", type=int, default=512, help="size of each instance in KB (default 512)")
    parser.add_argument("--servers", default="orthanc,sandbox", help="comma list of orthanc, sandbox")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS))
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the fastest is kept (default 3)")
    parser.add_argument("--quick", action="store_true", help="50 instances, one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.repeat = 50, 1

    work = Path(tempfile.mkdtemp(prefix="bench-wado-"))
    rows = []
    versions = {}
    try:
        data = work / "data"
        (study_uid,) = _common.generate_studies(data, args.count, args.size_kb * 1024, "wado", per_study=args.count)
        files = _common.dicom_files(data)
        spec = dict(study_uid=study_uid, count=len(files), bytes=sum(p.stat().st_size for p in files))
        print(f"WADO-RS retrieve of one study: {len(files)} instances x {spec['bytes'] / len(files) / 1024:.0f} KB "
              f"= {spec['bytes'] / MB:.0f} MB, best of {args.repeat}", flush=True)
        for server_kind in args.servers.split(","):
            with _common.SERVERS[server_kind]() as server:
                versions.update(_common.server_versions([server]))
                _store(server, data)
                best = _common.interleaved(
                    args.repeat,
                    args.methods.split(","),
                    functools.partial(measure, spec=dict(spec, server=server.as_dict()), work=work),
                    progress=functools.partial(_report_run, server_kind),
                )
                for row in best.values():
                    row.update(server=server_kind, mb_per_s=spec["bytes"] / MB / row["seconds"])
                    rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = _common.ratios_to_postdicom(
        rows, ("server",), "mb_per_s",
        (("vs_curl", "curl"), ("vs_iter_study", "dwc-iter_study"), ("vs_retrieve_study", "dwc-retrieve_study")))
    print()
    _common.print_table(rows, [("server", "server"), ("method", "method"), ("seconds", "s"), ("mb_per_s", "MB/s"),
                               ("spread_pct", "spread %"), ("client_cpu_s", "client CPU s"),
                               ("server_cpu_s", "server CPU s"), ("baseline_rss_mb", "base RSS MB"),
                               ("peak_rss_mb", "peak RSS MB"), ("rss_growth_mb", "growth MB")])
    print()
    _common.print_table(ratios, [("server", "server"), ("vs_curl", "postdicom/curl"),
                                 ("vs_iter_study", "postdicom/iter_study"),
                                 ("vs_retrieve_study", "postdicom/retrieve_study")])
    _common.write_json("wado", {"machine": _common.machine(), "servers": versions,
                                "settings": dict(vars(args), **spec), "results": rows, "ratios": ratios})
    return 0


def _store(server: Server, data: Path) -> None:
    """Put the study on the server (not measured)."""
    from postdicom import PostDicomClient

    with PostDicomClient(server.web_address, server.username, server.password, dialect=server.dialect) as client:
        report = client.upload_folder(data, skip_existing=False)
    if not report.ok:
        raise RuntimeError(f"could not store the study: {report.summary()}")


if __name__ == "__main__":
    raise SystemExit(main())
