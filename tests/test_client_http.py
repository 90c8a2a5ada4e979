"""HttpSession: what is retried when a connection breaks while the answer is read, and how big reads are."""

import http.server
import random
import threading
import time

import httpx
import pytest

from postdicom.errors import TransportError
from postdicom.http import HttpSession, RetryPolicy
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


def test_large_reads_leave_other_transports_alone():
    assert use_large_reads(httpx.HTTPTransport()) is True
    assert use_large_reads(httpx.MockTransport(lambda request: httpx.Response(200))) is False
    assert use_large_reads(httpx.HTTPTransport(proxy="http://proxy.example:3128")) is False
