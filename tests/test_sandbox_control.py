"""What a web page could make a browser send is refused: unknown Host names, cross-site control requests."""

from __future__ import annotations

import httpx
import pytest

from sandbox.guard import CONTROL_TOKEN_HEADER, host_name, is_loopback
from tests.fixtures.sandbox_server import control_post


def post_clock(info, *, token: str | None, content: bytes = b'{"offset_days": 3}',
               content_type: str = "application/json", **headers: str) -> httpx.Response:
    if token is not None:
        headers[CONTROL_TOKEN_HEADER] = token
    return httpx.post(info.root_url + "/_sandbox/clock", content=content,
                      headers={"Content-Type": content_type, **headers}, timeout=10)


def clock_days(info) -> float:
    return httpx.get(info.root_url + "/_sandbox/clock", timeout=10).json()["offset_days"]


def test_control_routes_need_the_start_up_token_json_and_their_own_origin(sandbox_server):
    token = sandbox_server.extra["control_token"]
    origin = sandbox_server.root_url
    assert token
    refused = {
        "no token": post_clock(sandbox_server, token=None),
        "wrong token": post_clock(sandbox_server, token=token[:-1] + ("x" if token[-1] != "x" else "y")),
        "form post from a page": post_clock(sandbox_server, token=None, content=b"offset_days=3",
                                            content_type="application/x-www-form-urlencoded",
                                            Origin="http://evil.example"),
        "text/plain": post_clock(sandbox_server, token=token, content_type="text/plain"),
        "another origin": post_clock(sandbox_server, token=token, Origin="http://evil.example"),
        "another local port": post_clock(sandbox_server, token=token, Origin="http://127.0.0.1:1"),
        "cross-site fetch": post_clock(sandbox_server, token=token, **{"Sec-Fetch-Site": "cross-site"}),
    }
    assert {name: r.status_code for name, r in refused.items()} == {
        "no token": 403, "wrong token": 403, "form post from a page": 403, "text/plain": 415,
        "another origin": 403, "another local port": 403, "cross-site fetch": 403}
    assert all(r.headers["x-error-reason"] for r in refused.values())
    assert token not in str([r.text for r in refused.values()])
    assert clock_days(sandbox_server) == 0
    faults = httpx.post(sandbox_server.root_url + "/_sandbox/faults", json={"spec": "hang:1/1"}, timeout=10)
    assert faults.status_code == 403
    assert httpx.get(sandbox_server.root_url + "/_sandbox/faults", timeout=10).json()["rules"] == []

    try:
        assert post_clock(sandbox_server, token=token, Origin=origin).status_code == 200
        assert clock_days(sandbox_server) == 3
    finally:
        control_post(sandbox_server, "/_sandbox/clock", {"offset_days": 0}).raise_for_status()


def test_unknown_host_names_are_refused_everywhere(sandbox_server):
    auth = (sandbox_server.username, sandbox_server.password)
    port = sandbox_server.extra["port"]
    rebound = {"Host": f"attacker.example:{port}"}
    for method, path in (("GET", "/dicomweb/studies"), ("GET", "/share/whatever"), ("GET", "/_sandbox/faults"),
                         ("GET", "/")):
        answer = httpx.request(method, sandbox_server.root_url + path, headers=rebound, auth=auth, timeout=10)
        assert answer.status_code == 400 and "Host" in answer.headers["x-error-reason"], path
    answer = post_clock(sandbox_server, token=sandbox_server.extra["control_token"], **rebound)
    assert answer.status_code == 400 and clock_days(sandbox_server) == 0
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", f"[::1]:{port}"):
        answer = httpx.get(sandbox_server.root_url + "/dicomweb/studies", headers={"Host": host}, auth=auth,
                           timeout=10)
        assert answer.status_code == 200, host


def test_control_flag_opens_the_routes_without_a_token_but_not_to_other_origins(fresh_sandbox):
    opened = fresh_sandbox(args=("--control",)).info()
    assert "open, no token" in open(opened.extra["log_path"]).read()
    assert post_clock(opened, token=None).status_code == 200 and clock_days(opened) == 3
    assert post_clock(opened, token=None, Origin="http://evil.example").status_code == 403
    assert post_clock(opened, token=None, content_type="text/plain").status_code == 415
    closed = fresh_sandbox(args=("--control", "off"), env={"SANDBOX_ALLOWED_HOSTS": "pacs.test"}).info()
    assert post_clock(closed, token=closed.extra["control_token"]).status_code == 404
    answer = httpx.get(closed.root_url + "/dicomweb/studies", headers={"Host": f"pacs.test:{closed.extra['port']}"},
                       auth=(closed.username, closed.password), timeout=10)
    assert answer.status_code == 200


def test_listening_beyond_loopback_warns_and_shows_the_real_address(fresh_sandbox):
    sandbox = fresh_sandbox(args=("--host", "0.0.0.0"))
    log = open(sandbox.info().extra["log_path"]).read()
    assert f"Listening  : 0.0.0.0:{sandbox.port} (every network interface)" in log
    assert "WARNING: the sandbox listens on 0.0.0.0, not on loopback" in log


@pytest.mark.parametrize("header, name, loopback", [
    ("127.0.0.1:8765", "127.0.0.1", True), ("[::1]:8765", "::1", True), ("::1", "::1", True),
    ("LocalHost.:80", "localhost", True), ("10.1.2.3", "10.1.2.3", False), ("pacs.example:443", "pacs.example", False),
])
def test_host_names(header, name, loopback):
    assert host_name(header) == name
    assert is_loopback(header) is loopback
