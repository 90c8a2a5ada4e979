"""Reading custom answers whatever their shape (``postdicom.answers`` and ``postdicom.models``).

Every alternative shape of ``tests/fixtures/alt_shapes.py`` is applied to a
documented answer of each endpoint and must read as the same values; what
cannot be read must say which endpoint, which shape was expected and how the
body began, without a value from it; helper lookups must never break the call
they protect.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle

import httpx
import pytest

from postdicom import models
from postdicom.answers import EXCERPT_BYTES, decode_answer, masked_excerpt
from postdicom.errors import AuthenticationError, FailedAnswerError, ServerError, UnreadableAnswerError
from tests.fixtures.alt_shapes import LIST_KEYS, SHAPES, WRITES
from tests.fixtures.mock_server import make_client

O1 = "6f1c0d7e-1111-4a6b-9c3d-0a1b2c3d4e5f"
F1 = "aa1c0d7e-2222-4a6b-9c3d-0a1b2c3d4e5f"
INST = "bb1c0d7e-3333-4a6b-9c3d-0a1b2c3d4e5f"
USER = "cc1c0d7e-4444-4a6b-9c3d-0a1b2c3d4e5f"
SHARE_URL = "http://127.0.0.1:8765/share/TOKEN-sEcReT-123456"

ORDER_ROW = {
    "PatientOrderUuid": O1, "InstitutionUuid": INST, "OrderStatus": "Completed", "PatientName": "Muñoz^José",
    "PatientId": "PID-42", "PatientSex": "M", "PatientBirthdate": "1961-03-14", "AccessionNumber": "ACC-1",
    "Modality": "CT", "ModalityList": ["CT", "SR"], "StudyInstanceUid": "1.2.3", "StudyDate": "2026-11-27",
    "AssignedUserUuid": None, "NumberOfSeries": 2, "NumberOfInstances": 40,
}
DOCUMENTED: dict[str, tuple[type[models.Answer], dict]] = {
    "/createsharelink": (models.ShareAnswer, {
        "ShareUuid": F1, "ShareUrl": SHARE_URL, "ExpireDate": "2026-12-31", "PasswordProtected": True,
        "Downloadable": False, "PatientOrderUuidList": [O1], "FolderUuid": None}),
    "/createfolder": (models.FolderAnswer, {"FolderUuid": F1, "FolderName": "Trauma", "ParentFolderUuid": None}),
    "/searchfolder": (models.SearchFolderAnswer, {"FolderList": [
        {"FolderUuid": F1, "FolderName": "Trauma", "ParentFolderUuid": None, "PatientOrderUuidList": [O1]}]}),
    "/addordertofolder": (models.AddOrderToFolderAnswer, {
        "PatientOrderUuid": O1, "FolderUuidList": [F1], "AddedFolderUuidList": []}),
    "/assignordertouser": (models.AssignOrderToUserAnswer, {
        "PatientOrderUuid": O1, "AssignedUserUuid": USER, "PreviousAssignedUserUuid": None, "Changed": False}),
    "/createpatientorder": (models.CreatePatientOrderAnswer, {
        "PatientOrderUuid": O1, "InstitutionUuid": INST, "AccessionNumber": "ACC-1", "OrderStatus": "Scheduled"}),
    "/getpatientorderproperties": (models.PatientOrderProperties, {
        **ORDER_ROW, "StudyTime": "14:03:00", "OrderScheduledDatetime": "2026-11-27 14:00", "FolderUuidList": [F1],
        "SeriesList": [{"PatientSeriesUuid": F1, "SeriesInstanceUid": "1.2.3.4", "Modality": "CT",
                        "SeriesNumber": 1, "NumberOfInstances": 20}],
        "CreatedDatetime": "2026-11-27 14:05"}),
    "/getpatientorderlist": (models.PatientOrderListAnswer, {"PatientOrderList": [ORDER_ROW]}),
    "/deleteorder": (models.DeleteOrderAnswer, {"PatientOrderUuid": O1, "Deleted": True, "DeletedInstanceCount": 40}),
    "/getdicomtagcontent": (models.DicomTagContentAnswer, {"PatientOrderUuid": O1, "DicomTagContentList": [
        {"PatientSeriesUuid": F1, "SeriesInstanceUid": "1.2.3.4", "SopInstanceUid": None, "TagId": "00100010",
         "Keyword": "PatientName", "Vr": "PN", "Values": ["Muñoz^José"]}]}),
}


MODELS = {path: model for path, (model, _) in DOCUMENTED.items()} | {
    "/sharepatientorderwithurl": models.ShareAnswer,
    "/sharefolderwithurl": models.ShareAnswer,
    "/assignordertousergroup": models.AssignOrderToUserGroupAnswer,
}


def decode(path: str, body: bytes, **kwargs) -> models.Answer:
    model = MODELS[path]
    return decode_answer(path.strip("/"), model, body, writes=path in WRITES, **kwargs)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("path", list(DOCUMENTED))
def test_every_alternative_shape_reads_as_the_documented_answer(path, shape):
    model, documented = DOCUMENTED[path]
    expected = decode(path, json.dumps(documented).encode())
    assert expected.reading.documented and expected.raw == documented
    sent = SHAPES[shape](path, documented)
    answer = decode(path, json.dumps(sent).encode())
    assert type(answer) is model
    if model.list_key and shape in ("bare-array", "data-envelope", "everything"):  # a bare array: the list alone
        assert answer.raw[model.list_key] == expected.raw[model.list_key]
    else:
        assert answer == expected  # every field holds the same value
        assert answer.raw == expected.raw  # ... and raw is the documented shape again
    assert answer.received == sent  # what was sent is kept as sent
    assert answer.reading.understood
    assert bool(answer.reading.fallbacks) == (sent != documented), answer.reading


def test_values_in_dotnet_forms_become_typed_values():
    sent = {
        "patientOrderUuid": "{" + O1.upper() + "}", "NumberOfSeries": "12", "NumberOfInstances": 40.0,
        "patient_birthdate": "19610314", "StudyDate": "2026-11-27T00:00:00", "StudyTime": "140300.25",
        "OrderScheduledDatetime": "/Date(1764252000000)/", "CreatedDatetime": "2026-11-27T14:05:00.1234567Z",
        "AssignedUserGuid": USER.upper(), "ModalityList": "CT\\SR", "FolderUuidList": json.dumps([F1]),
        "SeriesList": None, "Colour": "teal",
    }
    answer = decode("/getpatientorderproperties", json.dumps(sent).encode())
    assert answer.patient_order_uuid == O1 and answer.assigned_user_uuid == USER
    assert (answer.number_of_series, answer.number_of_instances) == (12, 40)
    assert answer.patient_birthdate == dt.date(1961, 3, 14) and answer.study_date == dt.date(2026, 11, 27)
    assert answer.study_time == dt.time(14, 3, 0, 250000)
    assert answer.order_scheduled_datetime == dt.datetime(2025, 11, 27, 14, 0)
    assert answer.created_datetime == dt.datetime(2026, 11, 27, 14, 5, 0, 123456)
    assert answer.modality_list == ["CT", "SR"] and answer.folder_uuid_list == [F1] and answer.series_list == []
    assert answer.reading.unknown_keys == ["Colour"] and answer.raw["Colour"] == "teal"
    fallbacks = "\n".join(answer.reading.fallbacks)
    for expected in ("number sent as a string", "date as YYYYMMDD", "date sent as a date-time", "DICOM form (HHMMSS)",
                     ".NET /Date()/", "date-time in ISO form", "UUID in upper case or braces", "keys in camelCase",
                     "keys in snake_case", "list sent as a JSON string", "separated by '\\\\'", "null for an empty list"):
        assert expected in fallbacks, expected
    assert answer.raw["PatientBirthdate"] == "1961-03-14" and answer.raw["OrderScheduledDatetime"] == "2025-11-27 14:00"


def test_unknown_keys_of_nested_answers_are_named_by_their_path_once():
    folders = {"FolderList": [{"FolderUuid": F1, "FolderName": "A", "Color": "teal"},
                              {"FolderUuid": O1, "FolderName": "B", "Color": "red", "Icon": 3}], "Total": 2}
    answer = decode("/searchfolder", json.dumps(folders).encode())
    assert answer.reading.unknown_keys == ["Total", "FolderList[].Color", "FolderList[].Icon"]
    order = {"PatientOrderUuid": O1, "SeriesList": [{"PatientSeriesUuid": O1, "Extra": 1}], "Colour": "teal",
             "modalityList": ["CT"]}
    answer = decode("/getpatientorderproperties", json.dumps(order).encode())
    assert answer.reading.unknown_keys == ["Colour", "SeriesList[].Extra"]
    assert answer.modality_list == ["CT"] and "keys in camelCase" in "\n".join(answer.reading.fallbacks)


@pytest.mark.parametrize("text, value", [("True", True), ("false", False), ("1", True), (0, False), ("", None)])
def test_booleans_sent_as_strings_or_numbers(text, value):
    answer = decode("/assignordertouser", json.dumps({"PatientOrderUuid": O1, "Changed": text}).encode())
    assert answer.changed is value


def test_unreadable_values_become_none_and_are_noted_not_refused():
    answer = decode("/getpatientorderproperties", json.dumps(
        {"PatientOrderUuid": O1, "StudyDate": "soon", "NumberOfSeries": "many", "StudyTime": "noon"}).encode())
    assert (answer.study_date, answer.number_of_series, answer.study_time) == (None, None, None)
    assert answer.received["StudyDate"] == "soon"
    assert sum("cannot be read" in f for f in answer.reading.fallbacks) == 3


@pytest.mark.parametrize("path", sorted(LIST_KEYS))
@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'{"d": null}', b'{"Data": [], "Success": true}', b"{}"])
def test_no_list_at_all_is_an_empty_list(path, body):
    answer = decode(path, body)
    assert answer.raw[LIST_KEYS[path]] == [] and answer.reading.understood
    assert answer.reading.fallbacks


@pytest.mark.parametrize("path", sorted(WRITES - {"/createsharelink"}))
def test_an_empty_write_answer_is_what_the_request_asked(path):
    request = {"PatientOrderUuid": O1.upper(), "AssignedUserUuid": USER, "FolderUuidList": json.dumps([F1]),
               "PatientOrderInstitutionUuid": INST, "SharePassword": "hunter2"}
    answer = decode(path, b"", request=request)
    assert answer.reading.empty and answer.reading.understood
    # only the empty body is noted: the request's own wire forms (a list as a JSON string, an upper-case UUID)
    # are not something the server sent
    assert answer.reading.fallbacks == ["empty answer on success: read as what the request asked for"]
    assert "hunter2" not in json.dumps(answer.raw)
    if "patient_order_uuid" in type(answer).model_fields:
        assert answer.patient_order_uuid == O1
    if path == "/deleteorder":
        assert answer.deleted is True and answer.deleted_instance_count is None
    if path == "/addordertofolder":
        assert answer.folder_uuid_list == [F1]


def test_an_empty_answer_to_a_read_of_one_object_is_an_error():
    with pytest.raises(UnreadableAnswerError, match="GetPatientOrderProperties|getpatientorderproperties"):
        decode("/getpatientorderproperties", b"")


def test_a_success_with_x_error_reason_is_a_success_and_noted():
    answer = decode("/createfolder", json.dumps(DOCUMENTED["/createfolder"][1]).encode(), error_reason="OK")
    assert answer.folder_uuid == F1
    assert answer.reading.fallbacks == ["X-Error-Reason header on a success answer (read as a success)"]


SECRET_BODY = json.dumps({"Shares": {"Url": SHARE_URL, "Patient": "Muñoz^José", "Pid": 123456}}).encode()


@pytest.mark.parametrize("path, body, why", [
    ("/searchfolder", b"<html><body>Sign in: https://login.example.org/?next=PID-424242</body></html>", "HTML"),
    ("/searchfolder", b"[1, 2, 3]", "no list of objects"),
    ("/getpatientorderlist", b'{"PatientOrderList": [{"PatientName": "Mu\xc3\xb1oz^Jos\xc3\xa9"', "not JSON"),
    ("/createfolder", b'[{"FolderUuid": "a"}, {"FolderUuid": "b"}]', "array of 2"),
    ("/createsharelink", SECRET_BODY, ""),
    ("/getpatientorderproperties", b'"just text"', "str"),
    ("/getpatientorderlist", b'{"PatientOrderList": [1, 2], "Note": "' + b"x" * 400 + b'"}', "PatientOrderListAnswer"),
])
def test_an_unreadable_answer_names_endpoint_and_shape_and_quotes_no_value(path, body, why):
    if path == "/createsharelink":  # an object without one documented key: not refused, but not understood
        answer = decode(path, body)
        assert not answer.reading.understood and answer.share_url is None
        return
    with pytest.raises(UnreadableAnswerError) as raised:
        decode(path, body, status=200, method="GET", url="https://pacs.example.org/dicomweb" + path)
    text = str(raised.value)
    assert path.strip("/") in text and "expected" in text and why in text
    assert (MODELS[path].list_key or MODELS[path].documented_keys()[0]) in text  # the shape that was expected
    for secret in ("Muñoz", "Jos", "424242", "TOKEN", "login.example.org"):
        assert secret not in text
    excerpt = text.split("the answer began with: ", 1)[1].split(" | ")[0]
    assert len(excerpt.encode()) <= EXCERPT_BYTES + 3


def test_the_excerpt_keeps_keys_and_masks_values():
    text = masked_excerpt(SECRET_BODY)
    assert text == '{"Shares": {"Url": "…", "Patient": "…", "Pid": 0}}'
    assert masked_excerpt(b"x" * 500).endswith("…") and len(masked_excerpt(b"x" * 500)) == EXCERPT_BYTES + 1


@pytest.mark.parametrize("body", [
    {"Success": False, "Message": "Folder name is required", "Data": None},
    {"IsSuccess": "false", "Error": "Folder name is required"},
    {"Error": "Folder name is required"},
    {"Data": {"HasError": True, "ErrorMessage": "Folder name is required"}},
])
def test_a_success_status_whose_body_says_it_failed_raises(body):
    with pytest.raises(FailedAnswerError) as raised:
        decode("/createfolder", json.dumps(body).encode())
    assert raised.value.reason == "Folder name is required"


def test_answers_pickle_with_their_reading():
    sent = {"d": {"folderList": [{"folderUuid": F1.upper(), "Colour": 1}]}}
    answer = decode("/searchfolder", json.dumps(sent).encode())
    again = pickle.loads(pickle.dumps(answer))
    assert again == answer and again.received == sent and again.reading == answer.reading
    assert again.raw == {"FolderList": [{"FolderUuid": F1, "Colour": 1}]}


# --------------------------------------------------------------------------- through the client


def test_list_endpoints_answering_a_bare_array_no_longer_break_creates():
    """The failure of issue 16: a server answering ``[]`` made create_folder itself fail."""
    made = {"FolderUuid": F1, "FolderName": "Trauma", "ParentFolderUuid": None}

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/createfolder"):
            return httpx.Response(200, json=made)
        return httpx.Response(200, json=[])

    client, recorder = make_client(respond)
    assert client.create_folder("Trauma").folder_uuid == F1
    assert client.search_folder(folder_name="Trauma").folder_list == []
    assert client.get_patient_order_list([INST]).patient_order_list == []
    assert recorder.targets.count("GET /createfolder") == 1


@pytest.mark.parametrize("lookup_answer", [
    httpx.Response(200, content=b"<html>maintenance</html>"),
    httpx.Response(503, headers={"X-Error-Reason": "busy"}),
    httpx.Response(200, json=[{"Id": 7, "Name": "Trauma"}]),  # read, but its rows say nothing of what exists
])
def test_a_failed_lookup_lets_the_create_through_once_with_a_warning(lookup_answer, caplog):
    caplog.set_level(logging.WARNING)

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/searchfolder"):
            return lookup_answer
        return httpx.Response(200, json={"FolderUuid": F1, "FolderName": "Trauma"})

    client, recorder = make_client(respond, attempts=2)
    answer = client.create_folder("Trauma")
    assert answer.folder_uuid == F1
    assert recorder.targets.count("GET /createfolder") == 1
    assert answer.reading.warnings == ["duplicate protection was not available for this call (its lookup failed)"]
    assert "duplicate protection was not available" in caplog.text and "Trauma" not in caplog.text


def test_a_failed_lookup_after_a_failed_create_does_not_send_it_blind_again():
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/createpatientorder"):
            return httpx.Response(503)
        return httpx.Response(200, content=b"not json")

    client, recorder = make_client(respond, attempts=3)
    with pytest.raises(ServerError):
        client.create_patient_order(INST, "A^B", "PID-1", "1970-01-01", "CT", accession_number="ACC-9")
    assert recorder.targets.count("GET /createpatientorder") == 1


def test_a_lookup_refused_for_authentication_still_fails_the_call():
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    client, recorder = make_client(respond)
    with pytest.raises(AuthenticationError):
        client.create_folder("Trauma")
    assert "GET /createfolder" not in recorder.targets


def test_an_empty_create_answer_is_completed_by_its_lookup():
    searches = []

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/searchfolder"):
            searches.append(1)
            folders = [] if len(searches) == 1 else [{"FolderUuid": F1, "FolderName": "Trauma"}]
            return httpx.Response(200, json=folders)
        return httpx.Response(200)

    client, recorder = make_client(respond)
    answer = client.create_folder("Trauma")
    assert answer.folder_uuid == F1 and answer.reading.empty
    assert "empty create answer completed by a lookup" in answer.reading.fallbacks
    assert recorder.targets.count("GET /createfolder") == 1


FOLDER = {"FolderUuid": F1, "FolderName": "Trauma"}


@pytest.mark.parametrize("path, body, shape", [
    ("/searchfolder", {"Items": [FOLDER], "Count": 1}, "list under 'Items'"),
    ("/searchfolder", {"Results": [FOLDER]}, "bare array"),
    ("/searchfolder", {"Value": {"FolderList": [FOLDER]}}, "'Value' envelope"),
    ("/searchfolder", {"d": {"d": {"FolderList": [FOLDER]}}}, "'d' envelope"),
    ("/searchfolder", {"FolderList": json.dumps([FOLDER])}, "documented object"),
    ("/searchfolder", {"FolderList": FOLDER}, "documented object"),
    ("/createfolder", {"Folder": FOLDER}, "'Folder' envelope"),
    ("/createfolder", {"FOLDERGUID": F1, "folder_name": "Trauma"}, "documented object"),
])
def test_the_shapes_listed_in_the_docs(path, body, shape):
    answer = decode(path, json.dumps(body).encode())
    folders = answer.folder_list if path == "/searchfolder" else [answer]
    assert [(f.folder_uuid, f.folder_name) for f in folders] == [(F1, "Trauma")]
    assert answer.reading.shape == shape and answer.reading.understood


def test_a_byte_order_mark_is_skipped():
    answer = decode("/createfolder", "\ufeff".encode() + json.dumps(FOLDER).encode())
    assert answer.folder_uuid == F1 and "UTF-8 byte-order mark before the JSON" in answer.reading.fallbacks


@pytest.mark.parametrize("path, body", [
    ("/searchfolder", [{"Id": 7, "Name": "Trauma"}]),
    ("/getpatientorderlist", {"Orders": [{"OrderGuid": O1, "Patient": "Muñoz^José"}], "Count": 1}),
    ("/getdicomtagcontent", {"PatientOrderUuid": O1, "DicomTagContentList": [{"Keyword": "PatientName"}, {"Tag": 1}]}),
])
def test_a_list_whose_rows_have_no_documented_key_is_not_understood(path, body):
    """Rows that read as all ``None`` must not pass for an understood answer (check reports it)."""
    answer = decode(path, json.dumps(body).encode())
    assert not answer.reading.understood, answer.reading
    assert answer.reading.unknown_keys
    rows = body if isinstance(body, list) else next(v for v in body.values() if isinstance(v, list))
    assert answer.raw[LIST_KEYS[path]] and len(answer.raw[LIST_KEYS[path]]) == len(rows)  # still read, not refused


def test_an_object_without_any_documented_key_is_read_but_not_understood(caplog):
    from postdicom.answers import read_answer

    caplog.set_level(logging.INFO, logger="postdicom.answers")
    request = httpx.Request("GET", "https://pacs.example.org/dicomweb/createfolder")
    response = httpx.Response(200, json={"Id": 7, "Name": "Trauma"}, request=request)
    row = type("Row", (), {"vendor_name": "CreateFolder", "answer": models.FolderAnswer})()
    answer = read_answer(row, response, {}, writes=True)
    assert answer.folder_uuid is None and not answer.reading.understood
    assert answer.reading.unknown_keys == ["Id", "Name"]
    assert "CreateFolder answered an object without any documented key (Id, Name)" in caplog.text
    assert "Trauma" not in caplog.text


def test_dicomweb_successes_carrying_x_error_reason_stay_successes(tmp_path):
    """The vendor's sample prints X-Error-Reason on every answer: QIDO, STOW and WADO successes too."""
    import pydicom

    from postdicom.synthetic import StudySpec, write_study
    from tests.fixtures.mock_server import qido_match, stow_answer, wado_body

    files = write_study(tmp_path / "src", StudySpec("Doe^Jane", "D-1", series_count=1, instances_per_series=1,
                                                    seed="x-error-reason"))
    sop = pydicom.dcmread(files[0]).SOPInstanceUID
    study = pydicom.dcmread(files[0]).StudyInstanceUID
    body, content_type = wado_body(files)
    reason = {"X-Error-Reason": "Success"}

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=stow_answer(stored=[sop]), headers=reason)
        if request.url.query:
            return httpx.Response(200, json=[qido_match(study=study, sop=sop)], headers=reason)
        return httpx.Response(200, content=body, headers={"Content-Type": content_type, **reason})

    client, _ = make_client(respond)
    assert client.store_instances(files).counts == {"stored": 1, "rejected": 0, "failed": 0}
    assert len(client.search_for_studies({"PatientID": "D-1"})) == 1
    written = client.retrieve_study(study, tmp_path / "out")
    assert [p.name for p in written] == [f"{sop}.dcm"]
