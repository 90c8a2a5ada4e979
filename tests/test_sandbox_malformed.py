"""Malformed values get a 400 naming the parameter; no answer is a 500 or carries exception text.

Property-style: hypothesis feeds odd JSON (objects inside lists, numbers,
nulls, nested arrays, surrogate escapes, huge and non-finite numbers, valid
UUIDs of real objects to get past the first checks) to every custom endpoint
and to the control routes of an in-process sandbox.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from sandbox.app import create_app
from sandbox.config import Settings, load_seed
from sandbox.custom import ENDPOINTS
from sandbox.guard import CONTROL_TOKEN_HEADER

SEED = load_seed(None)
DEMO = SEED["Accounts"][0]
INSTITUTION = DEMO["Institutions"][0]
AUTH = (DEMO["Email"], DEMO["Password"])
PYTHON_ERRORS = ("Traceback", "Error:", "Exception", "object has no attribute", "out of range", "argument")


@pytest.fixture(scope="module")
def app_client(tmp_path_factory) -> Iterator[tuple[TestClient, dict[str, list[str]]]]:
    """The sandbox app in-process, with one order and one folder so UUIDs can point at real objects."""
    app = create_app(Settings(tmp_path_factory.mktemp("malformed"), SEED, pbkdf2_rounds=1000))
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        def call(path: str, header: str, **params: str) -> dict:
            answer = client.get(f"/dicomweb{path}", headers={header: json.dumps(params)}, auth=AUTH)
            assert answer.status_code == 200, answer.headers.get("x-error-reason")
            return answer.json()

        order = call("/createpatientorder", "CreatePatientOrderParameters", InstitutionUuid=INSTITUTION[
            "InstitutionUuid"], PatientName="Odd^Values", PatientId="ODD-1", PatientBirthdate="1970-01-01",
            Modality="CT")["PatientOrderUuid"]
        folder = call("/createfolder", "CreateFolderParameters", FolderName="Odd")["FolderUuid"]
        real = {"uuid": [INSTITUTION["InstitutionUuid"], order, folder, INSTITUTION["Users"][0]["UserUuid"],
                         INSTITUTION["UserGroups"][0]["UserGroupUuid"], INSTITUTION["Equipment"][0]["EquipmentUuid"],
                         str(uuid.uuid4())]}
        yield client, real


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**30, max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
    | st.sampled_from(["\ud800", "1e999", "2030-02-30", "9999-12-31", "0000-01-01", "True", "²", "", " "]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def odd_value(real: dict[str, list[str]]) -> st.SearchStrategy:
    """One parameter's value: sometimes sane, mostly not, and often a JSON text of something odd."""
    uuids = st.sampled_from(real["uuid"])
    return st.one_of(
        JSON_VALUES,
        JSON_VALUES.map(json.dumps),
        st.lists(st.one_of(JSON_VALUES, uuids, JSON_VALUES.map(json.dumps)), max_size=3).map(json.dumps),
        st.lists(uuids.map(lambda u: json.dumps({"PatientOrderUuid": u})), max_size=2).map(json.dumps),
        st.lists(st.dictionaries(st.sampled_from(["PatientOrderUuid", "x"]), JSON_VALUES | uuids, max_size=2),
                 max_size=2).map(json.dumps),
        uuids, uuids.map(lambda u: json.dumps([u])),
        st.sampled_from(["True", "False", "2031-01-01", "2031-01-01 10:00", "CT", "M", "a*b?", "PatientName"]),
    )


def assert_clean(answer, names: list[str]) -> None:
    reason = answer.headers.get("x-error-reason", "")
    assert answer.status_code != 500, reason
    assert not any(marker in reason or marker in answer.text for marker in PYTHON_ERRORS), reason
    if answer.status_code == 400:
        assert any(name in reason for name in names), reason


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.function)
def test_odd_json_values_never_give_a_500(app_client, endpoint):
    client, real = app_client
    names = [endpoint.header, *(p.name for p in endpoint.params)]

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.fixed_dictionaries({}, optional={p.name: odd_value(real) for p in endpoint.params}))
    def check(params):
        header = json.dumps(params, ensure_ascii=False).encode("utf-8", "surrogatepass")
        answer = client.get(f"/dicomweb{endpoint.path}", headers={endpoint.header: header}, auth=AUTH)
        assert_clean(answer, names)

    check()


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.function)
def test_a_json_object_inside_a_list_parameter_is_a_400_naming_it(app_client, endpoint):
    client, real = app_client
    for param in endpoint.params:
        if param.kind not in ("uuid_list", "text_list"):
            continue
        sane = {"uuid": real["uuid"][0], "uuid_list": json.dumps([real["uuid"][0]]), "date": "2031-01-01",
                "order_info_list": json.dumps([json.dumps({"PatientOrderUuid": real["uuid"][1]})])}
        params = {p.name: sane.get(p.kind, "CT") for p in endpoint.params if p.required}
        params[param.name] = json.dumps([{"Modality": "CT"}])
        answer = client.get(f"/dicomweb{endpoint.path}", headers={endpoint.header: json.dumps(params)}, auth=AUTH)
        assert answer.status_code == 400 and param.name in answer.headers["x-error-reason"], answer.text


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(path=st.sampled_from(["/_sandbox/clock", "/_sandbox/faults"]),
       body=st.one_of(JSON_VALUES, st.dictionaries(st.sampled_from(
           ["offset_days", "latency_ms", "seed", "retry_after", "hang_seconds", "rules", "spec"]), JSON_VALUES,
           max_size=3)))
def test_odd_control_bodies_never_give_a_500(app_client, path, body):
    client, _ = app_client
    token = client.app.state.settings.control_token
    answer = client.post(path, content=json.dumps(body).encode("utf-8", "surrogatepass"),
                         headers={"Content-Type": "application/json", CONTROL_TOKEN_HEADER: token})
    assert_clean(answer, ["offset_days", "latency_ms", "seed", "retry_after", "hang_seconds", "rules", "spec",
                          "body", "fault"])
    client.post("/_sandbox/faults", json={}, headers={CONTROL_TOKEN_HEADER: token}).raise_for_status()
    client.post("/_sandbox/clock", json={}, headers={CONTROL_TOKEN_HEADER: token}).raise_for_status()


@pytest.mark.parametrize("body", [{"offset_days": 1e9}, {"offset_days": float("nan")}, {"offset_days": "1"},
                                  {"offset_days": True}, {"offset_days": 1, "offset": 1}])
def test_out_of_range_clock_offsets_are_a_400(app_client, body):
    client, _ = app_client
    token = client.app.state.settings.control_token
    answer = client.post("/_sandbox/clock", content=json.dumps(body),
                         headers={"Content-Type": "application/json", CONTROL_TOKEN_HEADER: token})
    assert answer.status_code == 400 and "offset_days" in answer.headers["x-error-reason"], answer.text
    assert client.get("/_sandbox/clock").json()["offset_days"] == 0


def test_an_unexpected_error_answers_500_without_its_text(app_client, caplog):
    client, _ = app_client
    endpoint = next(e for e in ENDPOINTS if e.function == "SearchFolder")
    working = endpoint.handler

    def broken(*args):
        raise RuntimeError("secret internals of Doe^Jane")

    object.__setattr__(endpoint, "handler", broken)  # the route reads it per request; the row is frozen
    try:
        answer = client.get("/dicomweb/searchfolder", headers={"SearchFolderParameters": "{}"}, auth=AUTH)
    finally:
        object.__setattr__(endpoint, "handler", working)
    assert answer.status_code == 500
    assert "internals" not in answer.text + answer.headers["x-error-reason"] and "RuntimeError" not in answer.text
    reference = answer.json()["Error"].split("reference ")[1].split()[0]
    assert f"internal error {reference}" in caplog.text


def test_odd_values_outside_the_custom_parameters_are_a_400(app_client):
    client, real = app_client
    surrogate = client.get("/dicomweb/createfolder", auth=AUTH,
                           headers={"CreateFolderParameters": b'{"FolderName": "\\ud800"}'})
    assert surrogate.status_code == 400 and "FolderName" in surrogate.headers["x-error-reason"]
    for query in ("limit=%C2%B2", "offset=%D9%A3", "PatientName=%ED%A0%80"):
        answer = client.get(f"/dicomweb/studies?{query}", auth=AUTH)
        assert answer.status_code == 400, query
    bulk = client.get("/dicomweb/studies/1.2/series/3.4/instances/5.6/bulkdata/-0000001", auth=AUTH)
    assert bulk.status_code in (400, 404)


def test_a_share_valid_until_the_last_representable_day_can_be_unlocked(app_client):
    client, real = app_client
    answer = client.get("/dicomweb/sharepatientorderwithurl", auth=AUTH, headers={"SharePatientOrderParameters": json.dumps(
        {"OrderUuidList": json.dumps([real["uuid"][1]]), "ExpireDate": "9999-12-31", "SharePassword": "pw"})})
    assert answer.status_code == 200, answer.headers.get("x-error-reason")
    path = answer.json()["ShareUrl"].split("127.0.0.1", 1)[1]
    unlocked = client.post(path, data={"password": "pw"}, follow_redirects=False)
    assert unlocked.status_code == 303 and "sbx_share_session" in unlocked.headers["set-cookie"]
