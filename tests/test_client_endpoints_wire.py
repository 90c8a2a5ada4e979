"""What the 13 client methods put on the wire, how they refuse bad input, split long lists and parse answers.

Every request goes to the fake PostDICOM of ``tests/fixtures/mock_server.py``
behind a real ``PostDicomClient``. The expected header objects
(``tests/fixtures/endpoint_cases.py``) are written out from the wire-protocol
reference: they are the specification.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import uuid

import httpx
import pytest

from postdicom import models, wire
from postdicom import endpoint_table as table
from postdicom.errors import HeaderTooLargeError, ProtocolError, ValidationError
from tests.fixtures.endpoint_cases import INVALID, WIRE_CASES
from tests.fixtures.mock_server import (
    DOCUMENTED_ANSWERS,
    INST,
    INST2,
    O1,
    O2,
    ORDER_SUMMARY,
    PATIENT_SERIES,
    SHARE,
    SHARE_TOKEN,
    params_of,
)


@pytest.mark.parametrize(("name", "kwargs", "path", "header", "expected"), WIRE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(WIRE_CASES)])
def test_each_method_sends_exactly_the_documented_header(fake_server, fake_client, name, kwargs, path, header,
                                                         expected):
    answer = getattr(fake_client, name)(**kwargs)

    # create_folder first notes the folders of that name (to recognise its own after a lost answer)
    assert fake_server.paths() == (["/searchfolder", path] if name == "create_folder" else [path])
    request = fake_server.requests[-1]
    assert request.method == "GET"
    assert request.url.path == "/dicomweb" + path
    assert request.content == b""
    custom_headers = [k for k in request.headers if k.lower().endswith("parameters")]
    assert custom_headers == [header.lower()]
    raw = request.headers[header]
    raw.encode("ascii")  # pure ASCII on the wire, whatever the text
    sent = json.loads(raw)
    assert sent == expected
    assert list(sent) == list(expected)  # the vendor's key order
    assert all(isinstance(v, str) for v in sent.values())
    assert isinstance(answer, table.endpoint(name).answer)
    assert answer.raw == DOCUMENTED_ANSWERS[path]


def test_order_info_list_is_three_levels_deep(fake_server, fake_client):
    fake_client.create_share_link([O1, O2], "2026-12-31")
    value = params_of(fake_server.requests[0])["PatientOrderInfoList"]
    items = json.loads(value)
    assert isinstance(items, list) and all(isinstance(i, str) for i in items)
    assert [json.loads(i) for i in items] == [{"PatientOrderUuid": O1}, {"PatientOrderUuid": O2}]


def test_non_ascii_travels_as_json_escapes_and_arrives_intact(fake_server, fake_client):
    fake_client.create_patient_order(INST, "Muñoz^José", "HSB-0001", "1961-03-14", "CT",
                                study_description="山田 Παπαδόπουλος")
    raw = fake_server.requests[0].headers["CreatePatientOrderParameters"]
    assert "Mu\\u00f1oz^Jos\\u00e9" in raw
    assert raw.isascii()
    decoded = json.loads(raw)
    assert decoded["PatientName"] == "Muñoz^José"
    assert decoded["StudyDescription"] == "山田 Παπαδόπουλος"


def test_the_client_uses_basic_auth_and_no_body(fake_server, fake_client):
    fake_client.search_folder()
    request = fake_server.requests[0]
    assert request.headers["Authorization"].startswith("Basic ")
    assert "content-length" not in request.headers or request.headers["content-length"] == "0"


# --------------------------------------------------------------------------- validation before sending


@pytest.mark.parametrize(("name", "kwargs", "message"), INVALID, ids=[f"{c[0]}-{i}" for i, c in enumerate(INVALID)])
def test_invalid_input_fails_before_any_request(fake_server, fake_client, name, kwargs, message):
    with pytest.raises(ValidationError) as raised:
        getattr(fake_client, name)(**kwargs)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert fake_server.requests == []


def test_a_missing_required_argument_is_a_type_error_before_any_request(fake_server, fake_client):
    with pytest.raises(TypeError, match="modality"):
        fake_client.create_patient_order(INST, "A^B", "1", "1970-01-01")
    assert fake_server.requests == []


def test_a_wrong_share_password_type_is_refused_without_showing_it(fake_server, fake_client):
    with pytest.raises(ValidationError) as raised:
        fake_client.create_share_link([O1], "2026-12-31", share_password=987654321)
    assert "987654321" not in str(raised.value)
    assert "share_password" in str(raised.value)
    assert fake_server.requests == []


# --------------------------------------------------------------------------- header size: split or refuse


def many_uuids(n: int, prefix: str = "") -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_OID, f"{prefix}{i}")) for i in range(n)]


def test_a_share_of_hundreds_of_orders_is_refused_not_split(fake_server, fake_client):
    with pytest.raises(HeaderTooLargeError) as raised:
        fake_client.create_share_link(many_uuids(300), "2026-12-31")
    text = str(raised.value)
    assert "8192" in text and "ShareParameters" in text
    assert "share_folder_with_url" in text  # says what to do instead
    assert fake_server.requests == []
    with pytest.raises(HeaderTooLargeError):
        fake_client.share_patient_order_with_url(many_uuids(300), "2026-12-31")
    assert fake_server.requests == []


def test_the_safe_size_is_configurable(fake_server, fake_client, monkeypatch):
    orders = many_uuids(300)
    monkeypatch.setenv(wire.MAX_HEADER_ENV, "65536")
    fake_client.create_share_link(orders, "2026-12-31")
    assert len(fake_server.requests) == 1
    sent = json.loads(params_of(fake_server.requests[0])["PatientOrderInfoList"])
    assert [json.loads(item)["PatientOrderUuid"] for item in sent] == orders
    fake_client.max_parameter_header_bytes = 1024
    with pytest.raises(HeaderTooLargeError, match="1024"):
        fake_client.create_share_link(orders[:20], "2026-12-31")
    assert len(fake_server.requests) == 1


def test_a_long_text_is_refused_where_nothing_can_be_split(fake_server, fake_client):
    with pytest.raises(HeaderTooLargeError, match="CreatePatientOrder"):
        fake_client.create_patient_order(INST, "A^B", "1", "1970-01-01", "CT", patient_complaints="x" * 9000)
    with pytest.raises(HeaderTooLargeError, match="one item of institution_uuid_list"):
        fake_client.get_patient_order_list([INST, INST2], patient_name="y" * 9000)
    assert fake_server.requests == []


def echo_order_list(request: httpx.Request) -> httpx.Response:
    """Answers one order per institution asked, dated so that chunks interleave when sorted."""
    institutions = json.loads(params_of(request)["InstitutionUuidList"])
    orders = [{**ORDER_SUMMARY, "PatientOrderUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, inst)),
               "InstitutionUuid": inst, "StudyDate": f"2026-01-{1 + i % 28:02d}"}
              for i, inst in enumerate(institutions)]
    orders.sort(key=lambda o: o["StudyDate"])
    return httpx.Response(200, json={"PatientOrderList": orders})


def test_an_order_list_over_many_institutions_is_split_and_merged(fake_server, fake_client):
    institutions = many_uuids(400, "inst")
    fake_server.script["/getpatientorderlist"] = [echo_order_list] * 20

    answer = fake_client.get_patient_order_list(institutions + institutions[:5], modality_list=["CT"])

    assert len(fake_server.requests) > 1
    sent: list[str] = []
    for request in fake_server.requests:
        header = request.headers["GetPatientOrderListParameters"]
        assert wire.header_size("GetPatientOrderListParameters", header) <= wire.DEFAULT_MAX_HEADER_BYTES
        params = json.loads(header)
        assert params["ModalityList"] == '["CT"]'  # every call keeps the other filters
        sent += json.loads(params["InstitutionUuidList"])
    assert sent == institutions + institutions[:5]
    assert len(answer.patient_order_list) == 400  # each order once
    assert {o.institution_uuid for o in answer.patient_order_list} == set(institutions)
    dates = [o.study_date for o in answer.patient_order_list]
    assert dates == sorted(dates)
    assert answer.raw["PatientOrderList"][0]["PatientOrderUuid"] == answer.patient_order_list[0].patient_order_uuid


def test_adding_an_order_to_many_folders_is_split_and_merged(fake_server, fake_client):
    folders = many_uuids(300, "folder")
    state: list[str] = []

    def add(request: httpx.Request) -> httpx.Response:
        params = params_of(request)
        asked = json.loads(params["FolderUuidList"])
        state.extend(asked)
        return httpx.Response(200, json={"PatientOrderUuid": params["PatientOrderUuid"], "FolderUuidList": list(state),
                                         "AddedFolderUuidList": asked})

    fake_server.script["/addordertofolder"] = [add] * 20
    answer = fake_client.add_order_to_folder(O1, folders)
    assert len(fake_server.requests) > 1
    assert answer.added_folder_uuid_list == folders
    assert answer.folder_uuid_list == folders
    assert answer.patient_order_uuid == O1


def test_many_tags_are_split_and_the_rows_joined(fake_server, fake_client):
    tags = [f"0009{n:04X}" for n in range(1, 1200)]

    def rows(request: httpx.Request) -> httpx.Response:
        asked = json.loads(params_of(request)["DicomTagIdList"])
        return httpx.Response(200, json={"PatientOrderUuid": O1, "DicomTagContentList": [
            {"PatientSeriesUuid": PATIENT_SERIES, "TagId": t, "Values": [t]} for t in asked]})

    fake_server.script["/getdicomtagcontent"] = [rows] * 20
    answer = fake_client.get_dicom_tag_content(INST, O1, dicom_tag_id_list=tags)
    assert len(fake_server.requests) > 1
    assert [r.tag_id for r in answer.dicom_tag_content_list] == tags
    assert answer.patient_order_uuid == O1


# --------------------------------------------------------------------------- answers


def test_answers_are_parsed_tolerantly_and_keep_the_raw_json(fake_server, fake_client):
    weird = {"patientorderuuid": O1, "ORDERSTATUS": "Completed", "StudyDate": "", "StudyTime": "not a time",
             "SeriesList": None, "FolderUuidList": None, "NumberOfSeries": "2", "SomethingNew": {"x": 1}}
    fake_server.script["/getpatientorderproperties"] = [httpx.Response(200, json=weird)]
    answer = fake_client.get_patient_order_properties(INST, O1)
    assert answer.patient_order_uuid == O1
    assert answer.order_status == "Completed"
    assert answer.study_date is None and answer.study_time is None
    assert answer.series_list == [] and answer.folder_uuid_list == []
    assert answer.number_of_series == 2
    assert answer.model_extra == {"SomethingNew": {"x": 1}}
    assert answer.received == weird
    assert answer.raw["NumberOfSeries"] == 2 and answer.raw["SomethingNew"] == {"x": 1}


def test_documented_answers_become_typed_values(fake_server, fake_client):
    properties = fake_client.get_patient_order_properties(INST, O1)
    assert properties.patient_birthdate == dt.date(1961, 3, 14)
    assert properties.order_scheduled_datetime == dt.datetime(2026, 11, 27, 14, 0)
    assert properties.study_time == dt.time(14, 3)
    assert properties.series_list[0].number_of_instances == 20
    assert properties.series_list[0].raw["SeriesDescription"] == "Axial"
    share = fake_client.create_share_link([O1, O2], "2026-12-31")
    assert share.expire_date == dt.date(2026, 12, 31) and share.password_protected is True
    assert SHARE_TOKEN not in repr(share) and SHARE_TOKEN not in share.summary()
    assert share.share_url == SHARE["ShareUrl"]
    tags = fake_client.get_dicom_tag_content(INST, O1)
    assert tags.dicom_tag_content_list[0].values == ["Muñoz^José"]


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]"])
def test_an_answer_that_is_not_a_json_object_is_a_protocol_error(fake_server, fake_client, body):
    fake_server.script["/searchfolder"] = [httpx.Response(200, content=body)]
    with pytest.raises(ProtocolError, match="SearchFolder"):
        fake_client.search_folder()


def test_answer_models_pickle_with_their_raw_json():
    answer = models.PatientOrderProperties.from_json(DOCUMENTED_ANSWERS["/getpatientorderproperties"])
    again = pickle.loads(pickle.dumps(answer))
    assert again == answer and again.raw == DOCUMENTED_ANSWERS["/getpatientorderproperties"]
