"""The flows benchmark's own bookkeeping: request counts by kind, and how a flow run on Orthanc is accepted.

The benchmarks print figures rather than assert them; what is checked here is
what those figures rest on: each request is counted once, under the kind it
is, for the sync (client) and async (Prefect) transports, and the patch is
gone afterwards; a Failed flow run is taken as "failed after the upload"
only on a standard DICOMweb server; the private PostgreSQL a ``--prefect-server`` (and
the end-to-end test) runs on answers, and is stopped afterwards; what a
worker leaves until after the clock (reading back the run's end from Prefect)
is not in its seconds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from benchmarks._common import AFTER_CLOCK, RequestCounter, _worker_main
from benchmarks.flows_bench import _failed_after_upload
from flows.reporting import FlowRunFailed

ROOT = Path(__file__).resolve().parent.parent


class _Answer(BaseHTTPRequestHandler):
    def _ok(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _ok

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("stow_path", "method", "path", "kind"),
    [
        ("/", "POST", "/", "stow"),
        ("/studies", "POST", "/studies", "stow"),
        ("/studies", "GET", "/studies?0020000D=1.2", "qido"),
        ("/", "GET", "/studies/1.2/series/1.3/instances?includefield=00080018", "qido"),
        ("/", "GET", "/studies/1.2/series", "qido"),
        ("/", "GET", "/studies/1.2/series/1.3/instances/1.4", "wado"),
        ("/", "GET", "/GetPatientOrderList", "getpatientorderlist"),
        ("/", "POST", "/sharepatientorderwithurl", "sharepatientorderwithurl"),
    ],
)
def test_requests_to_the_dicomweb_server_are_counted_by_kind(stow_path: str, method: str, path: str, kind: str) -> None:
    counter = RequestCounter("http://127.0.0.1:9/dicomweb", stow_path)
    assert counter.kind(method, "http://127.0.0.1:9/dicomweb" + path) == kind


def test_any_other_address_is_the_prefect_api() -> None:
    counter = RequestCounter("http://127.0.0.1:9/dicomweb", "/")
    assert counter.kind("POST", "http://127.0.0.1:4200/api/flow_runs/") == "prefect"
    assert counter.kind("GET", "http://127.0.0.1:9/dicomweb-other/studies") == "prefect"


def count_sample_requests(local_server: str) -> None:
    """Send known requests through a :class:`RequestCounter` and check its figures (run in a fresh process)."""
    web_address = local_server + "/dicomweb"
    sync_send = httpx.HTTPTransport.handle_request
    async_send = httpx.AsyncHTTPTransport.handle_async_request

    async def prefect_calls() -> None:
        async with httpx.AsyncClient() as client:
            await client.post(local_server + "/api/flow_runs/")
            await client.get(local_server + "/api/health")

    with RequestCounter(web_address, "/studies") as counter:
        with httpx.Client() as client:
            client.post(web_address + "/studies", content=b"x")
            client.get(web_address + "/studies?0020000D=1.2")
            client.get(web_address + "/getpatientorderlist")
            counter.reset()
            client.post(web_address + "/studies", content=b"x")
            client.post(web_address + "/studies", content=b"x")
            client.get(web_address + "/studies/1.2/series/1.3/instances")
        asyncio.run(prefect_calls())
        figures = counter.figures()
    assert figures == {"server_requests": 3, "requests_by_kind": {"qido": 1, "stow": 2}, "prefect_requests": 2}
    assert httpx.HTTPTransport.handle_request is sync_send
    assert httpx.AsyncHTTPTransport.handle_async_request is async_send
    with httpx.Client() as client:
        client.get(web_address + "/studies")
    assert counter.figures()["server_requests"] == 3


def test_sync_and_async_requests_are_counted_once_each_and_the_transports_restored(local_server: str) -> None:
    # In a fresh process, as the benchmark's workers are: the counter counts every request of its process,
    # and pytest's process still has Prefect's background services from earlier tests' flow runs, which
    # sent one more request to their API during this test in a CI run.
    code = f"from tests.test_benchmarks_harness import count_sample_requests; count_sample_requests({local_server!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


class _Summary:
    problems = ["stopped after the upload: NotFoundError: not found | HTTP 404 | server says: {...} | GET http://x"]


def test_a_flow_failed_after_the_upload_is_accepted_on_a_standard_server_only() -> None:
    error = FlowRunFailed("stopped after the upload", _Summary())
    summary, ended = _failed_after_upload({"server": {"dialect": "standard"}}, error)
    assert summary is error.report
    assert ended == "Failed after the upload: stopped after the upload: NotFoundError: not found | HTTP 404"
    with pytest.raises(FlowRunFailed):
        _failed_after_upload({"server": {"dialect": "postdicom"}}, error)
    with pytest.raises(RuntimeError):
        _failed_after_upload({"server": {"dialect": "standard"}}, RuntimeError("connection refused"))


def test_a_private_postgres_takes_connections_and_is_gone_afterwards() -> None:
    import asyncio

    import asyncpg

    from deployments.postgres import private_postgres

    async def version(url: str) -> str:
        connection = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=30)
        try:
            return str(await connection.fetchval("show server_version"))
        finally:
            await connection.close()

    with private_postgres(prefix="pdf-test-pg-") as url:
        assert url.startswith("postgresql+asyncpg://postgres@127.0.0.1:") and url.endswith("/prefect")
        assert asyncio.run(version(url))
    with pytest.raises((OSError, asyncpg.PostgresError)):
        asyncio.run(version(url))


def test_what_a_worker_leaves_until_after_the_clock_is_added_but_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    def probe(spec: dict, ready) -> dict:
        ready()

        def later() -> dict:
            time.sleep(0.5)
            return {"read_after_the_clock": spec["value"]}

        return {"measured": True, AFTER_CLOCK: later}

    module = types.ModuleType("benchmarks.after_clock_probe")
    module.WORKERS = {"probe": probe}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "benchmarks.after_clock_probe", module)
    figures = _worker_main("after_clock_probe", {"method": "probe", "value": 7})
    assert figures["measured"] is True and figures["read_after_the_clock"] == 7
    assert AFTER_CLOCK not in figures, "the function itself is not a figure (the worker prints JSON)"
    assert figures["seconds"] < 0.5, figures


def test_the_export_sizes_are_the_parts_own_unless_export_orders_names_them() -> None:
    """``--export-orders`` sets the export part's size too (client vs flow at 20,000 orders); each part keeps its default."""
    import argparse

    from benchmarks.flows_bench import export_sizes

    def args(quick: bool = False, orders: tuple[int, ...] = ()) -> argparse.Namespace:
        return argparse.Namespace(quick=quick, export_orders=list(orders))

    assert export_sizes(args(), growth=False) == [1000]
    assert export_sizes(args(quick=True), growth=False) == [300]
    assert export_sizes(args(), growth=True) == [1000, 5000, 20000]
    assert export_sizes(args(quick=True), growth=True) == [250, 1250, 5000]
    assert export_sizes(args(orders=(20000,)), growth=False) == [20000]
    assert export_sizes(args(orders=(1000, 5000)), growth=True) == [1000, 5000]


def test_the_assignment_limit_reaches_the_reassignment_flow_only_when_named() -> None:
    """``--assignment-limit ""`` measures the reassignment without its slot calls; absent, the flow's own default."""
    import inspect

    from benchmarks.flows_bench import reassign_options
    from flows.reassignment import batch_reassignment

    assert reassign_options({"concurrency": 4}) == {"concurrency": 4}
    assert reassign_options({"concurrency": 4, "limit": None}) == {"concurrency": 4}
    assert reassign_options({"concurrency": 4, "limit": ""}) == {"concurrency": 4, "concurrency_limit_name": ""}
    assert reassign_options({"concurrency": 2, "limit": "ours"}) == {"concurrency": 2, "concurrency_limit_name": "ours"}
    flow_parameters = inspect.signature(batch_reassignment.fn).parameters
    assert set(reassign_options({"concurrency": 4, "limit": ""})) <= set(flow_parameters)
