"""HttpSession: what is retried when a connection breaks while the answer is read."""

import httpx
import pytest

from postdicom.errors import TransportError
from postdicom.http import HttpSession, RetryPolicy


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
