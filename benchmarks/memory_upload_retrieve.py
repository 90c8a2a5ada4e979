"""Peak memory of uploading and retrieving 500 files of 1 MB, directly and inside a flow.

The foundation issue's targets: a process that calls the client directly stays
under 150 MB peak RSS; a flow run doing the same stays within 64 MB of an
empty flow run's peak (Prefect alone is about 170 MB).

Each measurement runs in a fresh Python process (``--measure MODE``) so that
``ru_maxrss`` is that mode's own peak, and a sampling thread records RSS as
well (psutil, every 20 ms) to show the peak is not a start-up artefact. The
files are generated in yet another process, and each mode gets its own fresh
Orthanc (started here with a temporary config, like the test fixture) so every
upload really sends everything.

Usage::

    python benchmarks/memory_upload_retrieve.py            # 500 x 1 MB, all modes
    python benchmarks/memory_upload_retrieve.py --files 100 --size-mb 1
    python benchmarks/memory_upload_retrieve.py --url http://host/dicom-web \\
        --user U --password P --dialect standard            # an already running server

With ``--url`` the server is not restarted, so the modes upload different
copies (distinct UIDs) to keep the pre-check from skipping files.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import PeakSampler  # noqa: E402 - needs ROOT on the path

STUDIES = 5  # the files are spread over a few studies, like a real disk


def generate(directory: Path, files: int, size_mb: float, tag: str) -> None:
    """Write ``files`` synthetic instances of about ``size_mb`` each under ``directory``."""
    from postdicom.synthetic import StudySpec, size_for_bytes, write_study

    rows, columns = size_for_bytes(int(size_mb * 1024 * 1024))
    per_study = max(1, files // STUDIES)
    made = 0
    study = 0
    while made < files:
        count = min(per_study, files - made)
        spec = StudySpec(
            f"Bench^{tag}{study}", f"BENCH-{tag}-{study}", "CT", 1, count, rows=rows, columns=columns,
            seed=f"bench-{tag}-{study}",
        )
        write_study(directory, spec)
        made += count
        study += 1


def study_uids(directory: Path) -> list[str]:
    import pydicom

    uids = set()
    for patient in sorted(directory.iterdir()):
        first = next(patient.rglob("*.dcm"))
        uids.add(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)
    return sorted(uids)


def measure(mode: str, server: dict, data: Path, out: Path) -> dict:
    """Run one mode in this (fresh) process and return its figures."""
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    figures: dict = {"mode": mode}
    if mode == "direct":
        from postdicom import PostDicomClient

        with PostDicomClient(server["url"], server["user"], server["password"], dialect=server["dialect"]) as c:
            report = c.upload_folder(data)
            figures["upload_s"] = round(time.perf_counter() - started, 2)
            figures["counts"] = report.counts
            t = time.perf_counter()
            figures["retrieved"] = sum(len(c.retrieve_study(uid, out)) for uid in study_uids(data))
            figures["retrieve_s"] = round(time.perf_counter() - t, 2)
    else:
        from prefect import flow

        from blocks import PostDicomCredentials
        from tasks import retrieve_images_using_wado_rs, upload_dicom_images_in_a_folder

        creds = PostDicomCredentials(
            username=server["user"], password=server["password"], web_address=server["url"], dialect=server["dialect"]
        )
        uids = study_uids(data)

        @flow(name="bench-empty")
        def empty() -> None:
            return None

        @flow(name="bench-upload-retrieve")
        def upload_and_retrieve() -> tuple[dict, int]:
            report = upload_dicom_images_in_a_folder(creds, data)
            paths = [retrieve_images_using_wado_rs(creds, study_instance_uid=uid, destination=out) for uid in uids]
            return report.counts, sum(len(p) for p in paths)

        if mode == "empty-flow":
            empty()
        else:
            figures["counts"], figures["retrieved"] = upload_and_retrieve()
    figures["seconds"] = round(time.perf_counter() - started, 2)
    figures["sampled_peak_mb"] = round(sampler.stop() / 2**20, 1)
    figures["ru_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def run_mode(mode: str, server: dict, data: Path, workdir: Path) -> dict:
    out = workdir / f"out-{mode}"
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    env.setdefault("PREFECT_HOME", str(workdir / "prefect-home"))
    result = subprocess.run(
        [sys.executable, __file__, "--measure", mode, "--server", json.dumps(server), "--data", str(data), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{result.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--url")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--dialect", default="standard")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--server", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        print(json.dumps(measure(args.measure, json.loads(args.server), Path(args.data), Path(args.out))))
        return

    from deployments.orthanc import start_orthanc
    from deployments.processes import stop_process

    workdir = Path(tempfile.mkdtemp(prefix="pdf-bench-"))
    results = []
    try:
        for mode in ("direct", "empty-flow", "flow"):
            data = workdir / f"data-{mode}"
            if mode != "empty-flow":
                subprocess.run(
                    [sys.executable, "-c",
                     f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                     f"from benchmarks.memory_upload_retrieve import generate; from pathlib import Path; "
                     f"generate(Path({str(data)!r}), {args.files}, {args.size_mb}, {mode!r})"],
                    check=True,
                )
            else:
                data.mkdir()
            process = None
            if args.url:
                server = dict(url=args.url, user=args.user, password=args.password, dialect=args.dialect)
            else:
                orthanc_dir = workdir / f"orthanc-{mode}"
                orthanc_dir.mkdir()
                process, info = start_orthanc(orthanc_dir, user="bench", password="bench-password")
                server = dict(url=info.web_address, user=info.username, password=info.password, dialect="standard")
            try:
                figures = run_mode(mode, server, data, workdir)
            finally:
                if process is not None:
                    stop_process(process)
                    shutil.rmtree(workdir / f"orthanc-{mode}", ignore_errors=True)
                shutil.rmtree(data, ignore_errors=True)
            print(json.dumps(figures), flush=True)
            results.append(figures)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    by_mode = {r["mode"]: r for r in results}
    direct = by_mode["direct"]["ru_maxrss_mb"]
    empty = by_mode["empty-flow"]["ru_maxrss_mb"]
    flow_peak = by_mode["flow"]["ru_maxrss_mb"]
    print(f"\n{args.files} files x {args.size_mb} MB")
    print(f"direct client peak RSS: {direct} MB (target < 150 MB) {'OK' if direct < 150 else 'OVER'}")
    print(f"empty flow peak RSS: {empty} MB; flow peak RSS: {flow_peak} MB; "
          f"difference {flow_peak - empty:.1f} MB (target <= 64 MB) {'OK' if flow_peak - empty <= 64 else 'OVER'}")


if __name__ == "__main__":
    main()
