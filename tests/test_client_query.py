"""QIDO query strings (encoding, validation) and paging as real servers answer it."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qsl, unquote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from postdicom import ProtocolError, ValidationError
from postdicom.query import attribute_tag, build_query, quote_value
from tests.fixtures.mock_server import make_client, uid_item


@given(st.text())
def test_quote_value_round_trips_and_leaves_qido_characters_raw(text):
    quoted = quote_value(text)
    assert unquote(quoted, encoding="utf-8", errors="strict") == text
    assert re.fullmatch(r"(?:[A-Za-z0-9*?^,.\-]|%[0-9A-F]{2})*", quoted)
    for char in "*?^,-.":
        assert quoted.count(char) == text.count(char)


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("PatientID", "00100020"),
        ("00100020", "00100020"),
        ("0020000d", "0020000D"),
        ("0010,0010", "00100010"),
        ("(0008,0061)", "00080061"),
        ("ReferencedSeriesSequence.SeriesInstanceUID", "00081115.0020000E"),
    ],
)
def test_attribute_names_become_tags(name, tag):
    assert attribute_tag(name) == tag


@pytest.mark.parametrize("name", ["BogusKeyword", "patientid", "00091010", "1234", "PatientID.Nope", ""])
def test_unknown_attribute_is_refused_naming_it(name):
    with pytest.raises(ValidationError) as info:
        attribute_tag(name)
    assert repr(name) in str(info.value) or name == ""


def test_build_query_values():
    query = build_query(
        {"PatientName": "Doe^J*", "StudyDate": dt.date(2024, 2, 29), "ModalitiesInStudy": ["CT", "MR"], "PatientID": "A B&C"},
        fields=["StudyDescription", "all"],
        limit=10,
        offset=20,
        fuzzymatching=True,
    )
    assert query == (
        "00100010=Doe^J*&00080020=20240229&00080061=CT,MR&00100020=A%20B%26C"
        "&includefield=00081030&includefield=all&fuzzymatching=true&limit=10&offset=20"
    )
    assert dict(parse_qsl(query))["00100020"] == "A B&C"


@pytest.mark.parametrize("reserved", ["limit", "offset", "includefield", "fuzzymatching"])
def test_paging_parameters_are_not_filters(reserved):
    with pytest.raises(ValidationError, match=reserved):
        build_query({reserved: "1"})


def test_unknown_attribute_raises_before_any_request():
    client, rec = make_client(lambda r: httpx.Response(200, json=[]))
    with pytest.raises(ValidationError, match="BogusKeyword"):
        client.search_for_studies(BogusKeyword="x")
    with pytest.raises(ValidationError, match="Nonsense"):
        client.qido_search(patient_id="P", filters={"Nonsense": "1"})
    with pytest.raises(ValidationError):
        client.search_for_studies(fields=["NotAnAttribute"])
    assert rec.requests == []


def studies(n: int) -> list[dict]:
    return [uid_item("0020000D", f"1.2.{i}") for i in range(n)]


def paging_server(total: int, *, cap: int | None = None, empty_status: int = 200, warn: bool = False):
    """Answers QIDO pages out of ``total`` matches like Orthanc (200 []) or others (204, Warning 299)."""
    matches = studies(total)

    def respond(request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.url.query.decode()))
        limit, offset = int(params.get("limit", total)), int(params.get("offset", 0))
        if cap is not None:
            limit = min(limit, cap)
        page = matches[offset : offset + limit]
        if not page:
            return httpx.Response(empty_status, json=[]) if empty_status == 200 else httpx.Response(empty_status)
        headers = {"Warning": '299 pacs "There are additional results"'} if warn and offset + limit < total else {}
        return httpx.Response(200, json=page, headers=headers)

    return respond


def uids(matches):
    return [m["0020000D"]["Value"][0] for m in matches]


def test_paging_orthanc_style_until_an_empty_page():
    client, rec = make_client(paging_server(25))
    got = client.search_for_studies(page_size=10)
    assert uids(got) == uids(studies(25))
    assert [dict(parse_qsl(r.url.query.decode())).get("offset", "0") for r in rec.requests] == ["0", "10", "20"]


def test_paging_exact_multiple_stops_on_200_empty():
    client, rec = make_client(paging_server(20))
    assert len(client.search_for_studies(page_size=10)) == 20
    assert len(rec.requests) == 3


def test_paging_server_cap_with_warning_299_and_204_at_the_end():
    client, rec = make_client(paging_server(7, cap=3, empty_status=204, warn=True))
    got = client.search_for_studies(page_size=100)
    assert uids(got) == uids(studies(7))
    assert len(rec.requests) == 3  # 3 + 3 (+299) then 1 without the warning


def test_limit_and_offset_over_pages():
    client, _ = make_client(paging_server(50))
    got = client.search_for_studies(limit=12, offset=5, page_size=5)
    assert uids(got) == uids(studies(50))[5:17]


def test_server_ignoring_offset_is_a_protocol_error_not_a_loop():
    client, rec = make_client(lambda r: httpx.Response(200, json=studies(2)))
    with pytest.raises(ProtocolError, match="offset"):
        client.search_for_studies(page_size=2)
    assert len(rec.requests) == 2


def test_server_ignoring_limit_returns_what_it_sent():
    client, rec = make_client(lambda r: httpx.Response(200, json=studies(30)))
    assert len(client.search_for_studies(page_size=10)) == 30
    assert len(rec.requests) == 1
