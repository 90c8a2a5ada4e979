"""Which URLs each client method requests, in the ``postdicom`` and the ``standard`` dialect.

Requests are captured with ``httpx.MockTransport`` (helpers in
``tests/fixtures/mock_server.py``).
"""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pydicom
import pytest

from postdicom import NotFoundError, ProtocolError, ValidationError

from tests.fixtures.mock_server import (
    BASE,
    SERIES,
    SOP,
    STUDY,
    make_client,
    qido_match,
    stow_answer,
    wado_body,
)


def _qido_router(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/series") or path.endswith("/instances"):
        return httpx.Response(200, json=[qido_match(sop=SOP)])
    return httpx.Response(200, json=[])


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            "postdicom",
            [
                "GET /studies?00100020=P-1&limit=500",
                "GET /studies?0020000D=1.2.3.4&limit=500",
                "GET /studies/series?0020000D=1.2.3.4&limit=500",
                "GET /studies/series/instances?0020000E=1.2.3.4.5&limit=500",
            ],
        ),
        (
            "standard",
            [
                "GET /studies?00100020=P-1&limit=500",
                "GET /studies?0020000D=1.2.3.4&limit=500",
                "GET /studies/1.2.3.4/series?limit=500",
                "GET /instances?0020000E=1.2.3.4.5&limit=500",
            ],
        ),
    ],
)
def test_qido_paths(dialect, expected):
    client, rec = make_client(lambda r: httpx.Response(200, json=[]), dialect)
    client.qido_search(patient_id="P-1")
    client.search_for_studies(StudyInstanceUID=STUDY)
    client.qido_search(study_instance_uid=STUDY)
    client.qido_search(series_instance_uid=SERIES)
    assert rec.targets == expected
    assert all(r.headers["Accept"] == "application/dicom+json" for r in rec.requests)


def test_standard_instances_of_a_known_study_and_series_use_the_full_path():
    client, rec = make_client(lambda r: httpx.Response(200, json=[]), "standard")
    client.search_for_instances(STUDY, SERIES)
    client.search_for_instances(STUDY)
    assert rec.targets == [
        f"GET /studies/{STUDY}/series/{SERIES}/instances?limit=500",
        f"GET /studies/{STUDY}/instances?limit=500",
    ]


@pytest.mark.parametrize(("dialect", "path"), [("postdicom", "/"), ("standard", "/studies")])
def test_stow_path_and_content_type(dialect, path, small_study):
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in small_study]
    client, rec = make_client(lambda r: httpx.Response(200, json=stow_answer(stored=uids)), dialect)
    result = client.store_instances(small_study)
    assert result.counts == {"stored": 2, "rejected": 0, "failed": 0}
    assert rec.targets == [f"POST {path}"]
    request = rec.requests[0]
    assert request.headers["Content-Type"].startswith('multipart/related; type="application/dicom"; boundary=')
    assert int(request.headers["Content-Length"]) == len(rec.bodies[0])
    assert "Transfer-Encoding" not in request.headers


def _wado_server(files):
    body, content_type = wado_body(files)

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(("/series", "/instances")) and request.url.query:
            return httpx.Response(200, json=[qido_match(sop=SOP)])
        return httpx.Response(200, content=body, headers={"Content-Type": content_type})

    return respond


@pytest.mark.parametrize(
    ("dialect", "call", "expected"),
    [
        ("postdicom", lambda c, d: c.retrieve_study(STUDY, d), [f"GET /studies/{STUDY}"]),
        ("postdicom", lambda c, d: c.retrieve_series(SERIES, d), [f"GET /studies/series/{SERIES}"]),
        ("postdicom", lambda c, d: c.retrieve_instance(SOP, d), [f"GET /studies/series/instances/{SOP}"]),
        ("standard", lambda c, d: c.retrieve_study(STUDY, d), [f"GET /studies/{STUDY}"]),
        (
            "standard",
            lambda c, d: c.retrieve_series(SERIES, d),
            [
                "GET /series?0020000E=1.2.3.4.5&includefield=0020000D&includefield=0020000E&limit=1",
                f"GET /studies/{STUDY}/series/{SERIES}",
            ],
        ),
        (
            "standard",
            lambda c, d: c.retrieve_series(SERIES, d, study_instance_uid=STUDY),
            [f"GET /studies/{STUDY}/series/{SERIES}"],
        ),
        (
            "standard",
            lambda c, d: c.retrieve_instance(SOP, d),
            [
                "GET /instances?00080018=1.2.3.4.5.6&includefield=0020000D&includefield=0020000E&limit=1",
                f"GET /studies/{STUDY}/series/{SERIES}/instances/{SOP}",
            ],
        ),
    ],
)
def test_wado_paths_and_parent_lookup(dialect, call, expected, small_study, tmp_path):
    client, rec = make_client(_wado_server(small_study), dialect)
    written = call(client, tmp_path / "out")
    assert rec.targets == expected
    assert rec.requests[-1].headers["Accept"] == 'multipart/related; type="application/dicom"; transfer-syntax=*'
    assert sorted(p.read_bytes() for p in written) == sorted(p.read_bytes() for p in small_study)
    assert {p.name for p in written} == {f"{pydicom.dcmread(p).SOPInstanceUID}.dcm" for p in small_study}


def test_standard_lookup_of_an_unknown_series_is_not_found(tmp_path):
    client, rec = make_client(lambda r: httpx.Response(200, json=[]), "standard")
    with pytest.raises(NotFoundError, match=SERIES):
        client.retrieve_series(SERIES, tmp_path)
    assert len(rec.requests) == 1


@pytest.mark.parametrize("bad", ["../../etc/passwd", "1.2.3/../x", "abc", ""])
def test_uids_that_are_not_uids_never_reach_a_url(bad, tmp_path):
    client, rec = make_client(lambda r: httpx.Response(200, json=[]), "postdicom")
    with pytest.raises(ValidationError):
        client.retrieve_study(bad, tmp_path)
    assert rec.requests == []


def test_wado_part_uid_falls_back_to_content_location(tmp_path):
    payload = b"not a dicom header at all"
    body = (
        b"--b\r\nContent-Type: application/dicom\r\n"
        b"Content-Location: " + f"{BASE}/studies/{STUDY}/series/{SERIES}/instances/{SOP}".encode() + b"\r\n\r\n"
        + payload + b"\r\n--b--\r\n"
    )
    client, _ = make_client(
        lambda r: httpx.Response(200, content=body, headers={"Content-Type": "multipart/related; boundary=b"})
    )
    written = client.retrieve_study(STUDY, tmp_path)
    assert [p.name for p in written] == [f"{SOP}.dcm"]
    assert written[0].read_bytes() == payload
    assert [p.name for p in tmp_path.iterdir()] == [f"{SOP}.dcm"]


def test_search_filters_reach_the_wire_unencoded_where_qido_needs_it():
    client, rec = make_client(lambda r: httpx.Response(200, json=[]))
    client.search_for_studies({"PatientName": "Muñoz^Jos*", "StudyDate": "20240101-20240131", "ModalitiesInStudy": ["CT", "MR"]})
    query = rec.requests[0].url.query.decode()
    assert query == "00100010=Mu%C3%B1oz^Jos*&00080020=20240101-20240131&00080061=CT,MR&limit=500"
    assert unquote(query.split("&")[0]) == "00100010=Muñoz^Jos*"


def test_wado_answer_that_is_not_multipart_is_an_error_with_the_server_reason(tmp_path):
    client, _ = make_client(
        lambda r: httpx.Response(200, text="{}", headers={"Content-Type": "application/json", "X-Error-Reason": "no images"})
    )
    with pytest.raises(ProtocolError) as info:
        client.retrieve_study(STUDY, tmp_path)
    assert info.value.reason == "no images"

