"""HttpSession: retries, the retry budget, limits no answer can pass (deadline, size, redirects), big reads.

The hostile servers are small: ``httpx.MockTransport`` handlers, and for what
only a real socket shows (a drip of bytes) a raw socket server in this file.
"""

import gzip
import http.server
import random
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

import postdicom.http
from postdicom.errors import (
    AnswerTooLargeError,
    DeadlineExceededError,
    RedirectError,
    ServerError,
    TransportError,
    ValidationError,
)
from postdicom.http import HttpSession
from postdicom.http_limits import ERROR_BODY_BYTES, HttpLimits
from postdicom.retry import RetryPolicy, retry_scope
from postdicom import transport
from postdicom.transport import use_large_reads


class _BreaksMidBody(httpx.SyncByteStream):
    def __iter__(self):
        yield b'{"partial": '
        raise httpx.ReadError("connection reset by peer")


def _session(answers: list) -> tuple[HttpSession, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)()

    session = HttpSession(
        "http://pacs.test/dicomweb",
        "user@example.org",
        "s3cret",
        retry=RetryPolicy(attempts=3, backoff=0.0, jitter=0.0),
        transport=httpx.MockTransport(handler),
    )
    return session, seen


def test_idempotent_request_is_sent_again_when_the_answer_breaks_mid_body():
    session, seen = _session(
        [
            lambda: httpx.Response(200, stream=_BreaksMidBody()),
            lambda: httpx.Response(200, json={"ok": True}),
        ]
    )
    response = session.request("GET", "/getpatientorderlist")
    assert response.json() == {"ok": True}
    assert len(seen) == 2


def test_non_idempotent_request_is_not_sent_again_after_the_answer_broke():
    session, seen = _session(
        [
            lambda: httpx.Response(200, stream=_BreaksMidBody()),
            lambda: httpx.Response(200, json={"ok": True}),
        ]
    )
    with pytest.raises(TransportError) as caught:
        session.request("GET", "/createfolder", idempotent=False)
    assert len(seen) == 1
    assert "s3cret" not in str(caught.value)


def test_basic_auth_is_utf8_and_absent_from_repr():
    session, seen = _session([lambda: httpx.Response(200, json={})])
    session._client.auth = type(session._client.auth)("médico@example.org", "contraseña")
    session.request("GET", "/x")
    import base64

    header = seen[0].headers["Authorization"]
    assert base64.b64decode(header.split()[1]).decode("utf-8") == "médico@example.org:contraseña"
    assert "contraseña" not in repr(session._client.auth)


class _BigAnswer(http.server.BaseHTTPRequestHandler):
    """Answers every GET with :data:`BIG_BODY` (Content-Length, one write)."""

    def do_GET(self):  # noqa: N802 - the http.server interface
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(BIG_BODY)))
        self.end_headers()
        self.wfile.write(BIG_BODY)

    def log_message(self, *args):
        pass


BIG_BODY = random.Random(7).randbytes(6 * 1024 * 1024)


@pytest.fixture
def big_answer_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BigAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_large_answer_arrives_in_reads_larger_than_httpcores_64_kib(big_answer_server):
    """The session's own transport reads up to 1 MiB at a time (postdicom.transport), intact."""
    with HttpSession(big_answer_server, "user@example.org", "s3cret") as session:
        with session.stream("GET", "/big") as response:
            time.sleep(0.2)  # let the socket buffer fill, so a read can return more than 64 KiB
            chunks = list(response.iter_raw())
    assert b"".join(chunks) == BIG_BODY
    assert max(len(chunk) for chunk in chunks) > 64 * 1024


def test_only_downloads_read_more_than_64_kib_at_a_time(big_answer_server, monkeypatch):
    """A JSON answer, streamed or read whole, is read in httpcore's 64 KiB (RESULTS.md, *Export memory, eighth pass*)."""
    reads: list[int] = []
    real_read = transport.LargeReadStream.read

    def counted(self, max_bytes, timeout=None):
        data = real_read(self, max_bytes, timeout)
        reads.append(len(data))
        return data

    monkeypatch.setattr(transport.LargeReadStream, "read", counted)
    with HttpSession(big_answer_server, "user@example.org", "s3cret") as session:
        sizes = {}
        for kind in ("download", "json stream", "read whole"):
            reads.clear()
            if kind == "read whole":
                body = session.request("GET", "/big").content
            else:
                with session.stream("GET", "/big", json_answer=kind == "json stream") as response:
                    time.sleep(0.2)  # let the socket buffer fill, so a read can return more than 64 KiB
                    body = b"".join(response.iter_raw())
            assert body == BIG_BODY, kind
            sizes[kind] = max(reads)
    assert sizes["download"] > 64 * 1024
    assert sizes["json stream"] <= 64 * 1024 and sizes["read whole"] <= 64 * 1024, sizes


def test_large_reads_leave_other_transports_alone():
    assert use_large_reads(httpx.HTTPTransport()) is True
    assert use_large_reads(httpx.MockTransport(lambda request: httpx.Response(200))) is False
    assert use_large_reads(httpx.HTTPTransport(proxy="http://proxy.example:3128")) is False


# --------------------------------------------------------------------------- hostile servers


class RawServer:
    """A socket server whose every connection is handed to ``serve(connection)``; counts connections."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self._serve = serve
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/dicomweb"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)  # the request (small GETs in these tests)
            try:
                self._serve(connection)
            except OSError:
                pass  # the client gave up and closed: what the tests want

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


def _drip(connection: socket.socket, prefix: bytes, every: float = 0.05) -> None:
    """Send ``prefix`` at once, then one byte every ``every`` seconds for (nearly) ever."""
    connection.sendall(prefix)
    for _ in range(100_000):
        connection.sendall(b"a")
        time.sleep(every)


@pytest.fixture
def raw_server():
    servers: list[RawServer] = []

    def start(serve: Callable[[socket.socket], None]) -> RawServer:
        servers.append(RawServer(serve))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _limited(url: str, *, policy: RetryPolicy | None = None, **limits: float) -> HttpSession:
    return HttpSession(
        url,
        "user@example.org",
        "s3cret",
        timeout=5.0,
        retry=policy or RetryPolicy(attempts=3, backoff=0.0, jitter=0.0),
        limits=HttpLimits(**limits),
    )


# --------------------------------------------------------------------------- deadline (issue 14 item 5)


def test_a_drip_of_the_headers_ends_at_the_request_deadline(raw_server):
    """One byte every 0.05 s restarts a 5 s read timeout for ever; the 0.5 s deadline ends it, and it is not retried."""
    server = raw_server(lambda c: _drip(c, b"HTTP/1.1 200 OK\r\nX-Slow: "))
    started = time.monotonic()
    with _limited(server.url, request_deadline=0.5) as session, pytest.raises(DeadlineExceededError) as caught:
        session.request("GET", "/studies")
    assert time.monotonic() - started < 4.5  # well before the read timeout could ever have fired
    assert "POSTDICOM_REQUEST_DEADLINE" in str(caught.value) and "0.5 s" in str(caught.value)
    assert server.connections == 1


def test_a_drip_of_the_body_ends_at_the_request_deadline(raw_server):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    server = raw_server(lambda c: _drip(c, head))
    with _limited(server.url, request_deadline=0.5) as session, pytest.raises(DeadlineExceededError):
        session.request("GET", "/studies")
    assert server.connections == 1


def test_a_streamed_download_has_its_own_deadline(raw_server):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/related; boundary=x\r\n\r\n"
    server = raw_server(lambda c: _drip(c, head))
    with _limited(server.url, request_deadline=30, download_deadline=0.5) as session:
        with session.stream("GET", "/studies/1.2.3") as response, pytest.raises(DeadlineExceededError) as caught:
            for _ in response.iter_raw():
                pass
    assert "POSTDICOM_DOWNLOAD_DEADLINE" in str(caught.value)


def test_the_deadline_holds_on_any_transport():
    """A test or proxy transport has no socket of ours: the body's chunks are checked against the deadline."""

    def slow_chunks():
        for _ in range(1000):
            time.sleep(0.05)
            yield b" "

    session = HttpSession(
        "http://pacs.test/dicomweb",
        "u",
        "p",
        retry=RetryPolicy(attempts=3, backoff=0.0, jitter=0.0),
        limits=HttpLimits(request_deadline=0.3),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=slow_chunks())),
    )
    with pytest.raises(DeadlineExceededError):
        session.request("GET", "/studies")


def test_limits_are_settings(monkeypatch):
    monkeypatch.setenv("POSTDICOM_REQUEST_DEADLINE", "42")
    monkeypatch.setenv("POSTDICOM_DOWNLOAD_DEADLINE", "900")
    monkeypatch.setenv("POSTDICOM_MAX_JSON_BYTES", "1048576")
    assert HttpLimits.from_env() == HttpLimits(request_deadline=42, download_deadline=900, max_json_bytes=1048576)
    with HttpSession("http://pacs.test", "u", "p", transport=httpx.MockTransport(lambda r: httpx.Response(200))) as s:
        assert s.limits.request_deadline == 42


@pytest.mark.parametrize(
    ("read", "name", "value", "message"),
    [
        (HttpLimits.from_env, "POSTDICOM_MAX_JSON_BYTES", "64MB", "must be a whole number, not '64MB'"),
        (HttpLimits.from_env, "POSTDICOM_REQUEST_DEADLINE", "0", "must be at least 0.001"),
        (RetryPolicy.from_env, "POSTDICOM_RETRY_ATTEMPTS", "0", "must be at least 1"),
        (RetryPolicy.from_env, "POSTDICOM_RETRY_MAX_TOTAL_WAIT", "forever", "must be a number"),
        (RetryPolicy.from_env, "POSTDICOM_RETRY_AFTER_MAX", "nan", "must be at least 0"),
    ],
)
def test_a_wrong_setting_is_refused_naming_it(monkeypatch, read, name, value, message):
    """A typo must not silently become "no limit"."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=f"{name} {message}"):
        read()


def test_default_limits_are_sane():
    limits = HttpLimits()
    assert 60 <= limits.request_deadline <= 600
    assert limits.download_deadline >= limits.request_deadline
    assert 8 * 2**20 <= limits.max_json_bytes <= 256 * 2**20


# --------------------------------------------------------------------------- answer size (issue 14 item 5)


class _CountedChunks(httpx.SyncByteStream):
    """An endless body of 64 KiB chunks that counts how many were taken."""

    def __init__(self) -> None:
        self.taken = 0

    def __iter__(self):
        while True:
            self.taken += 1
            yield b" " * 65536


def _mock_session(handler, **limits) -> tuple[HttpSession, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    session = HttpSession(
        "https://pacs.test/dicomweb",
        "user@example.org",
        "s3cret",
        retry=RetryPolicy(attempts=3, backoff=0.0, jitter=0.0),
        limits=HttpLimits(**limits),
        transport=httpx.MockTransport(record),
    )
    return session, seen


def test_an_announced_4_gib_answer_is_refused_before_it_is_read():
    body = _CountedChunks()
    headers = {"Content-Length": str(4 * 2**30), "Content-Type": "application/dicom+json"}
    session, seen = _mock_session(lambda r: httpx.Response(200, headers=headers, stream=body), max_json_bytes=2**20)
    with pytest.raises(AnswerTooLargeError, match="announces 4294967296 bytes") as caught:
        session.request("GET", "/studies")
    assert body.taken == 0
    assert len(seen) == 1  # a fact about the answer: not retried
    assert "POSTDICOM_MAX_JSON_BYTES" in str(caught.value)


def test_an_endless_answer_is_read_only_up_to_the_limit():
    body = _CountedChunks()
    session, seen = _mock_session(lambda r: httpx.Response(200, stream=body), max_json_bytes=2**20)
    with pytest.raises(AnswerTooLargeError):
        session.request("GET", "/studies")
    assert body.taken == 2**20 // 65536 + 1
    assert len(seen) == 1


def test_the_limit_counts_decompressed_bytes():
    bomb = gzip.compress(b" " * (8 * 2**20))
    assert len(bomb) < 2**20 // 4
    session, _ = _mock_session(
        lambda r: httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb), max_json_bytes=2**20
    )
    with pytest.raises(AnswerTooLargeError):
        session.request("GET", "/studies")


def test_an_answer_within_the_limit_reads_as_usual():
    plain = b"[" + b", ".join([b'{"a": 1}'] * 50) + b"]"
    session, _ = _mock_session(
        lambda r: httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=gzip.compress(plain)),
        max_json_bytes=len(plain),
    )
    response = session.request("GET", "/studies")
    assert response.json() == [{"a": 1}] * 50 and response.content == plain


def test_an_endless_error_body_is_cut_short_not_read():
    body = _CountedChunks()
    session, seen = _mock_session(lambda r: httpx.Response(400, stream=body))
    with pytest.raises(Exception) as caught:
        session.request("GET", "/studies")
    assert caught.value.status == 400
    assert body.taken <= ERROR_BODY_BYTES // 65536 + 1


# --------------------------------------------------------------------------- redirects (issue 14 item 6)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_naming_where_it_points(status):
    location = "https://pacs.test/dicomweb/studies?PatientName=Doe^Jane"
    session, seen = _mock_session(lambda r: httpx.Response(status, headers={"Location": location}))
    session.base_url = "http://pacs.test/dicomweb"
    with pytest.raises(RedirectError) as caught:
        session.request("GET", "/studies", query="PatientName=Doe^Jane")
    error = caught.value
    assert error.status == status and len(seen) == 1
    assert "https://pacs.test/dicomweb/studies?PatientName=..." in str(error)
    assert "use the https:// address in web_address" in str(error)
    assert error.location == "https://pacs.test/dicomweb/studies?PatientName=..."
    assert "Doe" not in str(error) + repr(error)


def test_a_redirect_elsewhere_and_one_without_location_are_errors_too():
    session, _ = _mock_session(lambda r: httpx.Response(302, headers={"Location": "/login"}))
    with pytest.raises(RedirectError, match="redirects to https://pacs.test/login; redirects are not followed"):
        session.request("GET", "/studies")
    session, _ = _mock_session(lambda r: httpx.Response(301))
    with pytest.raises(RedirectError, match="no usable Location"):
        session.request("GET", "/studies")
    session, _ = _mock_session(lambda r: httpx.Response(307, headers={"Location": "https://elsewhere.test/x"}))
    with pytest.raises(RedirectError), session.stream("GET", "/studies/1.2.3"):
        pass


# --------------------------------------------------------------------------- retry budget (issue 13 item 4, 14 item 9)


@pytest.fixture
def sleeps(monkeypatch):
    """Record the session's back-off waits instead of sleeping them."""
    waited: list[float] = []
    monkeypatch.setattr(postdicom.http.time, "sleep", waited.append)
    return waited


@pytest.mark.parametrize("retry_after", [None, "0", "3600"])
def test_a_server_that_always_answers_503_gets_attempts_requests(sleeps, retry_after):
    headers = {"Retry-After": retry_after} if retry_after else {}
    policy = RetryPolicy(attempts=4, backoff=0.01, jitter=0.5, max_retry_after=0.5, max_total_wait=100)
    session, seen = _mock_session(lambda r: httpx.Response(503, headers=headers))
    with pytest.raises(ServerError):
        session.request("GET", "/studies", retry=policy)
    assert len(seen) == policy.attempts
    assert len(sleeps) == policy.attempts - 1
    assert all(wait <= policy.max_retry_after for wait in sleeps)
    assert sum(sleeps) <= policy.longest_wait()


def test_retry_after_is_honoured_up_to_its_ceiling_and_the_calls_total(sleeps):
    """A server asking for an hour gets 0.05 s per wait, and no wait past the call's 0.12 s in all."""
    policy = RetryPolicy(attempts=10, backoff=0.0, jitter=0.0, max_retry_after=0.05, max_total_wait=0.12)
    session, seen = _mock_session(lambda r: httpx.Response(429, headers={"Retry-After": "3600"}))
    with pytest.raises(Exception) as caught:
        session.request("GET", "/studies", retry=policy)
    assert caught.value.status == 429
    assert sleeps == [0.05, 0.05]  # a third would pass 0.12 s
    assert len(seen) == 3
    assert policy.longest_wait() == 0.12


def test_layers_inside_one_call_share_its_budget(sleeps):
    """Two requests made inside one logical call (say, a lookup and a create) draw on the same retries."""
    policy = RetryPolicy(attempts=3, backoff=0.0, jitter=0.0)
    session, seen = _mock_session(lambda r: httpx.Response(503))
    with retry_scope(policy) as budget:
        with pytest.raises(ServerError):
            session.request("GET", "/searchfolder", retry=policy)
        with pytest.raises(ServerError):
            session.request("GET", "/createfolder", retry=policy)
    assert [r.url.path for r in seen] == ["/dicomweb/searchfolder"] * 3 + ["/dicomweb/createfolder"]
    assert budget.retries == 2
    with pytest.raises(ServerError):  # a new call, a new budget
        session.request("GET", "/createfolder", retry=policy)
    assert len(seen) == 7


def test_the_retry_policy_is_a_setting(monkeypatch):
    for name, value in {
        "POSTDICOM_RETRY_ATTEMPTS": "6",
        "POSTDICOM_RETRY_BACKOFF": "0.25",
        "POSTDICOM_RETRY_MAX_BACKOFF": "8",
        "POSTDICOM_RETRY_JITTER": "0.1",
        "POSTDICOM_RETRY_AFTER_MAX": "20",
        "POSTDICOM_RETRY_MAX_TOTAL_WAIT": "45",
        "POSTDICOM_TASK_RETRIES": "1",
        "POSTDICOM_TASK_RETRY_DELAY": "3",
    }.items():
        monkeypatch.setenv(name, value)
    assert RetryPolicy.from_env() == RetryPolicy(6, 0.25, 8, 0.1, 20, 45, 1, 3)
    assert RetryPolicy.from_env(attempts=2).attempts == 2


def test_the_worst_case_of_the_default_policy():
    policy = RetryPolicy()
    assert (policy.attempts, policy.max_retry_after, policy.max_total_wait) == (4, 60.0, 120.0)
    assert policy.longest_wait() == 120.0  # three waits of up to 60 s, capped at 120 s in all
    assert policy.task_retry_delays() == [2.0, 10.0]
    assert policy.longest_task_wait() == 3 * 120.0 + 12.0 * 1.5
