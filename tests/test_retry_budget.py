"""The retry budget: a server that always fails gets at most the stated number of requests.

The numbers are stated once, in the table of ``docs/architecture.md``;
:func:`budget_table` writes that table from a :class:`RetryPolicy`, a test
checks the document holds it for the default policy, and the cap tests run
real tasks against a server that always answers 503 (with and without
``Retry-After``) and count what it received. Delays are made tiny through the
same settings a deployment would use, so the tests are fast; what they assert
is the count of requests and the computed wait budget, not wall-clock speed.

Run ``python -m tests.test_retry_budget`` to print the table.
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from blocks import PostDicomCredentials
from postdicom import PostDicomClient, ServerError
from postdicom.retry import RetryBudget, RetryPolicy
from postdicom.synthetic import StudySpec, write_study
from tasks import qido_search
from tasks.policies import transient_retry_options

INSTITUTION = str(uuid.UUID(int=7))
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def budget_table(policy: RetryPolicy) -> str:
    """The budget of each layer and the worst case of each unit of work, as a markdown table."""
    a, r = policy.attempts, policy.task_retries
    call_wait = _seconds(policy.longest_wait())
    task_wait = _seconds(policy.longest_task_wait())
    delays = ", ".join(_seconds(d) for d in policy.task_retry_delays()) or "none"
    rows = [
        ("layer / unit of work", "what is repeated", "budget", "with these settings"),
        (
            "HTTP session (`postdicom/http.py`)",
            "one request after a connection error, 408, 429 or 5xx (a create only if it never left, or after a 429"
            " or a 503 with `Retry-After`: the server's way of saying it did nothing)",
            "the call's budget: A requests, W s of waiting, each wait ≤ `POSTDICOM_RETRY_AFTER_MAX`",
            f"{a} requests, ≤ {call_wait} waiting",
        ),
        (
            "look-before-create (`postdicom/endpoint_engine.py`)",
            "a create after a transient failure, after one lookup for what the earlier try made",
            "the call's budget, the lookups' own retries included: A creates and A lookups at most",
            f"≤ {2 * a} requests, ≤ {call_wait} waiting",
        ),
        (
            "WADO download (`postdicom/wado.py`)",
            "the whole download after its connection broke mid-body",
            "the call's budget, shared with the session's retries: A requests",
            f"{a} requests, ≤ {call_wait} waiting",
        ),
        (
            "STOW batch request",
            "nothing of its own: the session repeats it, rebuilding the body from the files",
            "the session's: A requests",
            f"{a} requests",
        ),
        (
            "Prefect task (`tasks/policies.py`)",
            "the whole task after a transient failure (reads and writes harmless to repeat; never a create)",
            "R + 1 runs, each a fresh call budget; delays from `POSTDICOM_TASK_RETRY_DELAY`",
            f"{r + 1} runs, {delays} apart (+ jitter)",
        ),
        (
            "flows (`flows/`)",
            "nothing after a failure: they rely on the tasks and the client. Only `ORDER_LOOKUP_ATTEMPTS`"
            " looks again for orders a real account indexes late (answers that lack the order, not failures)",
            "none of their own",
            "–",
        ),
        (
            "**one read task** (e.g. `qido_search`, one page), server always failing",
            "task × session",
            "(R + 1) × A requests",
            f"**{(r + 1) * a} requests**, ≤ {task_wait} waiting",
        ),
        (
            "**one upload batch** (`upload-files-batch`), server always failing",
            "task × session: the batch's first pre-check query fails, nothing is sent",
            "(R + 1) × A requests",
            f"**{(r + 1) * a} requests**, ≤ {task_wait} waiting",
        ),
        (
            "**one order-lookup group** (`find-upload-orders`, up to 50 studies), server always failing",
            "task × session: the group's first request (an order list, or a study query when no PatientID is"
            " known) fails, the rest are not asked",
            "(R + 1) × A requests",
            f"**{(r + 1) * a} requests**, ≤ {task_wait} waiting",
        ),
        (
            "**one reassignment row** (the client's `assign_order_to_user` in `assign-orders-batch`), server always"
            " failing",
            "session only: the batch task is not retried and reports the row `failed`; the next row has a budget"
            " of its own",
            "A requests",
            f"**{a} requests**, ≤ {call_wait} waiting ({(r + 1) * a} before, as a nested task run per row; 16 before"
            " that: a flow loop of 4 × 4)",
        ),
    ]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def test_the_architecture_page_states_the_budget_of_the_default_policy():
    assert budget_table(RetryPolicy()) in ARCHITECTURE.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- a server that always fails


class _AlwaysUnavailable(http.server.BaseHTTPRequestHandler):
    """503 to everything, with the server's ``retry_after`` header if it has one; counts requests."""

    protocol_version = "HTTP/1.1"

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests.append(f"{self.command} {self.path.split('?')[0]}")  # type: ignore[attr-defined]
        self.send_response(503)
        if self.server.retry_after is not None:  # type: ignore[attr-defined]
            self.send_header("Retry-After", self.server.retry_after)  # type: ignore[attr-defined]
        self.send_header("X-Error-Reason", "down for maintenance")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _refuse  # noqa: N815 - the http.server interface

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[None, "0", "3600"], ids=["no Retry-After", "Retry-After 0", "Retry-After 3600"])
def unavailable(request) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysUnavailable)
    server.requests = []  # type: ignore[attr-defined]
    server.retry_after = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def tiny_waits(monkeypatch) -> tuple[RetryPolicy, list[float]]:
    """The defaults with every wait made tiny through the settings; the waits the budgets grant recorded."""
    monkeypatch.setenv("POSTDICOM_RETRY_BACKOFF", "0.001")
    monkeypatch.setenv("POSTDICOM_RETRY_AFTER_MAX", "0.002")
    monkeypatch.setenv("POSTDICOM_RETRY_MAX_TOTAL_WAIT", "0.05")
    monkeypatch.setenv("POSTDICOM_TASK_RETRY_DELAY", "0")
    waits: list[float] = []
    next_wait = RetryBudget.next_wait

    def record(budget: RetryBudget, retry_after: float | None = None) -> float | None:
        wait = next_wait(budget, retry_after)
        if wait is not None:
            waits.append(wait)
        return wait

    monkeypatch.setattr(RetryBudget, "next_wait", record)
    return RetryPolicy.from_env(), waits


def _credentials(server: http.server.ThreadingHTTPServer) -> PostDicomCredentials:
    return PostDicomCredentials(
        username="radiology@example.org",
        password="account-pw",
        web_address=f"http://127.0.0.1:{server.server_address[1]}/dicomweb",
        dialect="standard",
    )


def _with_policy_retries(task, policy: RetryPolicy):
    """``task`` as declared, its Prefect retries taken from ``policy`` (the settings at import were the defaults)."""
    return task.with_options(**transient_retry_options(policy), refresh_cache=True)


def test_one_read_task_costs_at_most_the_stated_requests(unavailable, tiny_waits, prefect_harness):
    policy, waits = tiny_waits
    credentials = _credentials(unavailable)
    attempts = credentials.max_retries + 1
    with pytest.raises(ServerError):
        _with_policy_retries(qido_search, policy)(credentials, patient_id="P-1")
    assert len(unavailable.requests) == (policy.task_retries + 1) * attempts == 12
    assert len(waits) <= (policy.task_retries + 1) * (attempts - 1)
    assert sum(waits) <= (policy.task_retries + 1) * policy.longest_wait()
    assert all(wait <= max(policy.max_retry_after, policy.backoff_wait(attempts) * 1.5) for wait in waits)


def test_one_upload_batch_costs_at_most_the_stated_requests(unavailable, tiny_waits, prefect_harness, tmp_path):
    from flows.upload_and_share import upload_files_batch

    policy, waits = tiny_waits
    files = write_study(tmp_path / "batch", StudySpec("Budget^Bea", "B-1", "CT", 2, 3, seed="budget"))
    credentials = _credentials(unavailable)
    attempts = credentials.max_retries + 1
    with pytest.raises(ServerError):
        _with_policy_retries(upload_files_batch, policy)(files, credentials)
    assert len(unavailable.requests) == (policy.task_retries + 1) * attempts == 12
    assert sum(waits) <= (policy.task_retries + 1) * policy.longest_wait()


@pytest.mark.parametrize("patients_known", [False, True])
def test_one_order_lookup_group_costs_at_most_the_stated_requests(
    unavailable, tiny_waits, prefect_harness, patients_known
):
    """Whether the group starts with the files' patients' order lists or with study queries."""
    from flows.upload_orders import find_upload_orders

    policy, waits = tiny_waits
    credentials = _credentials(unavailable)
    attempts = credentials.max_retries + 1
    studies = [f"1.2.826.0.1.3680043.10.1437.{n}" for n in range(1, 6)]
    patient_ids = {uid: f"P-{number}" for number, uid in enumerate(studies)} if patients_known else {}
    with pytest.raises(ServerError):
        _with_policy_retries(find_upload_orders, policy)(studies, credentials, patient_ids)
    assert len(unavailable.requests) == (policy.task_retries + 1) * attempts == 12
    assert len(set(unavailable.requests)) == 1, "every request is the group's first, again"
    assert unavailable.requests[0].lower().endswith("/getpatientorderlist") == patients_known
    assert sum(waits) <= (policy.task_retries + 1) * policy.longest_wait()


def test_one_reassignment_row_costs_at_most_the_stated_requests(unavailable, tiny_waits, prefect_harness):
    """A row is one call of the batch's client: the client's budget, no task or flow retries on top; per row."""
    from flows.assignment import PlannedAssignment, assign_orders_batch

    policy, waits = tiny_waits
    credentials = _credentials(unavailable)
    attempts = credentials.max_retries + 1
    rows = [
        PlannedAssignment(
            row=number, patient_order_uuid=str(uuid.UUID(int=number)), target=kind, target_uuid=str(uuid.UUID(int=9))
        )
        for number, kind in ((1, "user"), (2, "group"))
    ]
    results = assign_orders_batch(rows, credentials, None)
    assert [(result.row, result.status) for result in results] == [(1, "failed"), (2, "failed")]
    assert all("HTTP 503" in result.reason for result in results)
    assert unavailable.requests == (
        ["GET /dicomweb/assignordertouser"] * attempts + ["GET /dicomweb/assignordertousergroup"] * attempts
    )
    assert attempts == 4
    assert len(waits) <= 2 * (attempts - 1)
    assert sum(waits) <= 2 * policy.longest_wait()


# --------------------------------------------------------------------------- look-before-create shares the budget


def _create_order(client: PostDicomClient) -> None:
    client.create_patient_order(
        institution_uuid=INSTITUTION,
        patient_name="Budget^Bea",
        patient_id="B-1",
        patient_birthdate="1970-01-01",
        modality="CT",
        accession_number="ACC-1",
    )


def _client(respond, policy: RetryPolicy) -> tuple[PostDicomClient, list[str]]:
    paths: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path.removeprefix("/dicomweb"))
        return respond(request)

    client = PostDicomClient(
        "https://pacs.test/dicomweb", "u", "p", retry=policy, transport=httpx.MockTransport(record)
    )
    return client, paths


def test_a_create_and_its_lookups_share_one_budget(monkeypatch):
    """Creates fail, lookups find nothing: A creates and A - 1 lookups, never more (it was A x A before)."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    policy = RetryPolicy(attempts=4, backoff=0.0, jitter=0.0)

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/createpatientorder"):
            return httpx.Response(503)
        return httpx.Response(200, json={"PatientOrderList": []})

    client, paths = _client(respond, policy)
    with pytest.raises(ServerError):
        _create_order(client)
    assert paths == ["/createpatientorder", "/getpatientorderlist"] * 3 + ["/createpatientorder"]
    assert len(paths) <= 2 * policy.attempts


def test_a_create_against_an_always_failing_server_stays_within_the_budget(monkeypatch):
    """The lookup's own retries draw on the create's budget."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    policy = RetryPolicy(attempts=4, backoff=0.0, jitter=0.0)
    client, paths = _client(lambda request: httpx.Response(503), policy)
    with pytest.raises(ServerError):
        _create_order(client)
    assert paths == ["/createpatientorder"] + ["/getpatientorderlist"] * 3
    folder_client, folder_paths = _client(lambda request: httpx.Response(503), policy)
    with pytest.raises(ServerError):
        folder_client.create_folder("Trauma")
    # the look before the first try spent the budget; a failed lookup never stops the create (issue 16),
    # which is still sent once, with no retry left
    assert folder_paths == ["/searchfolder"] * 4 + ["/createfolder"]


if __name__ == "__main__":
    print(budget_table(RetryPolicy()))
