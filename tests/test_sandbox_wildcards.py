"""Wildcard searches run in linear time, and one account's heavy requests do not stall another account."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from postdicom.synthetic import StudySpec, write_study
from sandbox.wildcard import contains_wildcard, wildcard_match
from tests.fixtures.sandbox_server import api_client, stow_body, vendor_get, vendor_stow

STALL_BOUND_SECONDS = 1.0
"""docs/sandbox.md: one heavy request of one account adds at most this to another account's request."""
BACKTRACKING = "a*a*a*a*a*a*a*a*a*b"
LONG = "a" * 64  # as long as a PN component group or an LO may be


def reference(pattern: str, text: str, single: str | None = "?") -> bool:
    """What the matching means, written as the (backtracking) regular expression it replaces."""
    parts = ["." if c == single else ".*" if c == "*" else re.escape(c) for c in pattern]
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="ab*?", max_size=8), st.text(alphabet="ab?*c", max_size=10))
def test_wildcard_match_agrees_with_the_regular_expression(pattern, text):
    assert wildcard_match(pattern, text) == reference(pattern, text)
    assert wildcard_match(pattern, text, single=None) == reference(pattern, text, single=None)
    assert contains_wildcard(pattern, text, single=None) == reference(f"*{pattern}*", text, single=None)


def test_wildcard_match_is_fast_on_the_patterns_that_made_the_regex_backtrack():
    started = time.perf_counter()
    assert not wildcard_match(BACKTRACKING, "a" * 100_000)
    assert not contains_wildcard(BACKTRACKING, "a" * 100_000, ignore_case=True)
    assert not wildcard_match("a?a?a?a*a?a*b", "a" * 100_000)
    assert wildcard_match("DOE^*", "doe^jane", ignore_case=True)
    assert time.perf_counter() - started < 2


def test_a_backtracking_search_does_not_stall_another_account(fresh_sandbox, tmp_path):
    """The issue's searches (QIDO and GetPatientOrderList) plus a 200-part STOW, sent by the demo account,
    while the other account keeps searching: each of its requests answers within the stated bound."""
    sandbox = fresh_sandbox()
    demo, other = sandbox.info(0), sandbox.info(1)
    with api_client(demo) as client:
        long_name = write_study(tmp_path / "long", StudySpec(LONG, LONG, "CT", instances_per_series=1, rows=8,
                                                             columns=8, seed="long-name"))
        assert [r.status_code for r in vendor_stow(client, long_name)] == [200]
    many = write_study(tmp_path / "many", StudySpec("Many^Parts", "MANY", "CT", instances_per_series=200, rows=8,
                                                    columns=8, seed="many-parts"))
    body, content_type = stow_body(many)

    heavy = {
        "qido name": lambda c: c.get("/studies", params={"PatientName": BACKTRACKING}),
        "qido id": lambda c: c.get("/studies/series", params={"PatientID": BACKTRACKING}),
        "order list": lambda c: vendor_get(c, "/getpatientorderlist", "GetPatientOrderListParameters",
                                           InstitutionUuidList=[], PatientName=BACKTRACKING,
                                           PatientId=BACKTRACKING),
        "stow": lambda c: c.post("/", content=body, headers={"Content-Type": content_type}),
    }
    answers: dict[str, object] = {}

    def send(name: str) -> None:
        try:
            with api_client(demo, timeout=60) as client:
                answers[name] = heavy[name](client)
        except httpx.HTTPError as exc:
            answers[name] = exc

    threads = [threading.Thread(target=send, args=(name,), daemon=True) for name in heavy]
    for thread in threads:
        thread.start()
    waits = []
    with api_client(other, timeout=STALL_BOUND_SECONDS * 10) as client:
        while len(waits) < 5 or any(t.is_alive() for t in threads):
            started = time.monotonic()
            assert client.get("/studies", params={"PatientID": "nobody"}).status_code == 200
            waits.append(time.monotonic() - started)
            if len(waits) > 500:
                break
    for thread in threads:
        thread.join(timeout=60)
    assert max(waits) < STALL_BOUND_SECONDS, sorted(waits)[-5:]
    statuses = {name: getattr(answer, "status_code", answer) for name, answer in answers.items()}
    assert statuses == dict.fromkeys(heavy, 200)
    assert answers["qido name"].json() == [] and answers["qido id"].json() == []
    assert answers["order list"].json()["PatientOrderList"] == []
    with api_client(demo) as client:
        assert len(client.get("/studies", params={"PatientName": "a*a*a*a", "PatientID": "a?a*"}).json()) == 1
        found = vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters", InstitutionUuidList=[],
                           PatientName="aa*aa", PatientId="A*A").json()["PatientOrderList"]
        assert [o["PatientId"] for o in found] == [LONG]
