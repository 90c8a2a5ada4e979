"""Fault injection: switched at run time through /_sandbox/faults, or at start by flags and environment."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from postdicom.synthetic import StudySpec, write_study
from sandbox.faults import FaultConfig, group_of, parse_rule
from tests.fixtures.sandbox_server import api_client, control_post, sandbox_faults, stow_body, vendor_get


def search_folders(client) -> httpx.Response:
    return vendor_get(client, "/searchfolder", "SearchFolderParameters", ParentFolderUuid="", FolderName="",
                      GetOrdersInFolder=False)


def test_every_second_stow_answers_503_and_other_groups_are_untouched(sandbox_server, tmp_path):
    paths = write_study(tmp_path, StudySpec("Fault^Fay", f"F-{uuid.uuid4().hex[:8]}", seed=str(uuid.uuid4())))
    body, content_type = stow_body(paths[:1])
    with api_client(sandbox_server) as client, sandbox_faults(sandbox_server, "503:1/2@stow", retry_after=4):
        statuses = []
        for _ in range(4):
            answer = client.post("/", content=body, headers={"Content-Type": content_type})
            statuses.append(answer.status_code)
            if answer.status_code == 503:
                assert answer.headers["retry-after"] == "4"
                assert answer.headers["x-error-reason"].startswith("injected fault")
        assert statuses == [200, 503, 200, 503]
        assert client.get("/studies?limit=1").status_code == 200
        assert search_folders(client).status_code == 200
        counters = httpx.get(sandbox_server.root_url + "/_sandbox/faults").json()
        assert counters["rules"] == [{"kind": "503", "share": "1/2", "groups": ["stow"], "seen": 4, "fired": 2}]
    assert httpx.get(sandbox_server.root_url + "/_sandbox/faults").json()["rules"] == []


def test_429_with_retry_after_on_custom_endpoints(sandbox_server):
    with api_client(sandbox_server) as client, sandbox_faults(
            sandbox_server, rules=[{"kind": "429", "share": 1.0, "groups": ["custom"]}], retry_after=7):
        limited = search_folders(client)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
        assert client.get("/studies?limit=1").status_code == 200


def test_500_carries_no_retry_after(sandbox_server):
    with api_client(sandbox_server) as client, sandbox_faults(sandbox_server, "500:1/1@custom", retry_after=7):
        failed = search_folders(client)
        assert failed.status_code == 500 and "retry-after" not in failed.headers
        assert failed.headers["x-error-reason"] == "injected fault: internal error"
        assert client.get("/studies?limit=1").status_code == 200


def test_hang_outlasts_the_client_timeout(sandbox_server):
    with sandbox_faults(sandbox_server, "hang:1/1@qido", hang_seconds=3):
        with api_client(sandbox_server, timeout=0.5) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.get("/studies?limit=1")
        with api_client(sandbox_server, timeout=10) as patient_client:
            waited = time.monotonic()
            answer = patient_client.get("/studies?limit=1")
            assert answer.status_code == 503 and time.monotonic() - waited >= 2.9


def test_dropped_connection(sandbox_server):
    with api_client(sandbox_server) as client, sandbox_faults(sandbox_server, "drop:1/1@wado"):
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/studies/1.2.3.4")
        assert client.get("/studies?limit=1").status_code == 200
    log = open(sandbox_server.extra["log_path"]).read()
    assert "DroppedConnection" not in log


def test_latency_is_added_to_api_requests_only(sandbox_server):
    # 2 s of latency, so that a share page answered without it stays under the bound even
    # on a machine loaded enough to make a plain request take a few hundred milliseconds.
    with api_client(sandbox_server) as client, sandbox_faults(sandbox_server, latency_ms=2000):
        started = time.monotonic()
        assert client.get("/studies?limit=1").status_code == 200
        assert time.monotonic() - started >= 2.0
        started = time.monotonic()
        assert httpx.get(sandbox_server.root_url + "/share/unknown").status_code == 404
        assert time.monotonic() - started < 2.0


def test_seeded_probabilities_repeat_exactly(sandbox_server):
    def pattern() -> list[int]:
        with api_client(sandbox_server) as client, sandbox_faults(sandbox_server, "503:0.5@qido", seed=1234):
            return [client.get("/studies?limit=1").status_code for _ in range(16)]

    first, second = pattern(), pattern()
    assert first == second
    assert set(first) == {200, 503}


def test_bad_fault_settings_are_refused(sandbox_server):
    for body in ({"spec": "418:0.5"}, {"spec": "503:2"}, {"spec": "503:0.5@uploads"}, {"latency": 5},
                 {"rules": [{"kind": "drop"}]}):
        answer = control_post(sandbox_server, "/_sandbox/faults", body)
        assert answer.status_code == 400 and answer.headers["x-error-reason"], body


def test_faults_from_environment_and_flags_at_start(fresh_sandbox):
    sandbox = fresh_sandbox(env={"SANDBOX_FAULTS": "503:1/1@custom"}, args=("--fault", "429:1/1@wado",
                                                                             "--retry-after", "9"))
    info = sandbox.info()
    with api_client(info) as client:
        assert search_folders(client).status_code == 503
        wado = client.get("/studies/1.2.3")
        assert wado.status_code == 429 and wado.headers["retry-after"] == "9"
        assert client.get("/studies").status_code == 200
    described = httpx.get(info.root_url + "/_sandbox/faults").json()
    assert [r["kind"] for r in described["rules"]] == ["503", "429"]


@pytest.mark.parametrize("method, path, group", [
    ("POST", "/dicomweb/", "stow"), ("POST", "/dicomweb/studies", "stow"), ("POST", "/dicomweb/studies/1.2", "stow"),
    ("GET", "/dicomweb/studies", "qido"), ("GET", "/dicomweb/studies/series", "qido"),
    ("GET", "/dicomweb/studies/series/instances", "qido"), ("GET", "/dicomweb/studies/1.2/series", "qido"),
    ("GET", "/dicomweb/studies/1.2/series/3.4/instances", "qido"), ("GET", "/dicomweb/instances", "qido"),
    ("GET", "/dicomweb/studies/1.2", "wado"), ("GET", "/dicomweb/studies/series/3.4", "wado"),
    ("GET", "/dicomweb/studies/series/instances/5.6", "wado"), ("GET", "/dicomweb/studies/1.2/metadata", "wado"),
    ("GET", "/dicomweb/createsharelink", "custom"), ("GET", "/dicomweb/deleteorder", "custom"),
    ("GET", "/share/abc", None), ("POST", "/_sandbox/faults", None),
])
def test_endpoint_groups(method, path, group):
    assert group_of(method, path) == group


def test_rule_grammar():
    rule = parse_rule("hang:1/5@stow+wado")
    assert (rule.kind, rule.every, rule.groups) == ("hang", 5, ("stow", "wado"))
    config = FaultConfig.from_spec("drop:1/2@qido", seed=3)
    assert [config.decide("qido") for _ in range(4)] == [None, "drop", None, "drop"]
    assert config.decide("stow") is None
