"""How each client method repeats a call after a failure, as its row's retry safety says.

Reads and idempotent writes are repeated; shares never once they may have
reached the server; creates with a lookup look for what an earlier attempt
made before creating again (the fake PostDICOM of
``tests/fixtures/mock_server.py`` is scripted to fail, then answer).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from postdicom import endpoint_table as table
from postdicom import models
from postdicom.endpoint_row import Safety
from postdicom.errors import (
    BadRequestError,
    DeadlineExceededError,
    FailedAnswerError,
    HeaderTooLargeError,
    NotFoundError,
    ServerError,
    ThrottledError,
    TransportError,
    UnreadableAnswerError,
    may_have_acted,
)
from tests.fixtures.mock_server import (
    DOCUMENTED_ANSWERS,
    F1,
    F2,
    GROUP,
    INST,
    O1,
    O2,
    ORDER_SUMMARY,
    SHARE,
    USER,
    params_of,
    status,
)


def test_a_read_is_retried_after_a_503_and_a_read_timeout(fake_server, fake_client):
    fake_server.script["/getpatientorderproperties"] = [status(503), httpx.ReadTimeout("slow")]
    answer = fake_client.get_patient_order_properties(INST, O1)
    assert answer.patient_order_uuid == O1
    assert fake_server.paths() == ["/getpatientorderproperties"] * 3


def test_a_read_is_not_retried_on_a_400_and_the_reason_surfaces(fake_server, fake_client):
    fake_server.script["/getpatientorderlist"] = [status(400, "unknown InstitutionUuidList item")]
    with pytest.raises(BadRequestError, match="unknown InstitutionUuidList item"):
        fake_client.get_patient_order_list([INST])
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize("failure", [status(503), httpx.ReadTimeout("answer lost"), status(500)])
@pytest.mark.parametrize("name", ["create_share_link", "share_patient_order_with_url", "share_folder_with_url"])
def test_a_share_is_never_sent_again_once_it_may_have_arrived(fake_server, fake_client, name, failure):
    kwargs = {"create_share_link": dict(patient_order_info_list=[O1], expire_date="2026-12-31"),
              "share_patient_order_with_url": dict(order_uuid_list=[O1], expire_date="2026-12-31"),
              "share_folder_with_url": dict(folder_uuid=F1)}[name]
    fake_server.script[table.endpoint(name).path] = [failure]
    with pytest.raises((ServerError, TransportError)):
        getattr(fake_client, name)(**kwargs)
    assert len(fake_server.requests) == 1


def test_a_share_is_sent_again_when_it_certainly_never_left_or_was_throttled(fake_server, fake_client):
    throttled = httpx.Response(429, headers={"Retry-After": "0"})
    fake_server.script["/createsharelink"] = [httpx.ConnectError("refused"), throttled]
    answer = fake_client.create_share_link([O1], "2026-12-31")
    assert answer.share_uuid == SHARE["ShareUuid"]
    assert fake_server.paths() == ["/createsharelink"] * 3


def test_a_share_is_sent_again_after_a_503_with_retry_after_but_not_after_one_without(fake_server, fake_client):
    """A 503 carrying Retry-After is the server turning the call away unread; a bare 503 may follow a write."""
    turned_away = httpx.Response(503, headers={"Retry-After": "0"})
    fake_server.script["/sharepatientorderwithurl"] = [turned_away, turned_away]
    answer = fake_client.share_patient_order_with_url([O1], "2026-12-31")
    assert answer.share_uuid == SHARE["ShareUuid"]
    assert fake_server.paths() == ["/sharepatientorderwithurl"] * 3

    fake_server.requests.clear()
    fake_server.script["/sharepatientorderwithurl"] = [turned_away, status(503)]
    with pytest.raises(ServerError) as raised:
        fake_client.share_patient_order_with_url([O1], "2026-12-31")
    assert fake_server.paths() == ["/sharepatientorderwithurl"] * 2
    assert may_have_acted(raised.value), "a bare 503 after a turned-away try: the link may exist"


def test_which_failures_may_have_left_a_write_done():
    sent = TransportError("lost")
    never = TransportError("refused")
    never.never_sent = True
    cases = {
        sent: True,
        never: False,
        ServerError("x", status=503, retry_after=2.0): False,
        ServerError("x", status=503): True,
        ServerError("x", status=502): True,
        ThrottledError("x", status=429): False,
        BadRequestError("x", status=400): False,
        NotFoundError("x", status=404): False,
        HeaderTooLargeError("too large"): False,
        FailedAnswerError("said it failed"): False,
        UnreadableAnswerError("html"): True,
        DeadlineExceededError("slow"): True,
        RuntimeError("not the client's"): True,
    }
    assert {repr(error): may_have_acted(error) for error in cases} == {repr(e): v for e, v in cases.items()}


def test_an_order_without_accession_number_is_not_created_twice(fake_server, fake_client):
    fake_server.script["/createpatientorder"] = [httpx.ReadTimeout("answer lost")]
    with pytest.raises(TransportError):
        fake_client.create_patient_order(INST, "A^B", "P1", "1970-01-01", "CT")
    assert fake_server.paths() == ["/createpatientorder"]


def test_an_order_with_accession_number_is_looked_up_before_creating_again(fake_server, fake_client):
    made = {**ORDER_SUMMARY, "PatientOrderUuid": O2, "OrderStatus": "Scheduled", "AccessionNumber": "ACC-77",
            "PatientId": "P1"}
    fake_server.script["/createpatientorder"] = [status(503)]
    fake_server.script["/getpatientorderlist"] = [httpx.Response(200, json={"PatientOrderList": [made]})]

    answer = fake_client.create_patient_order(INST.upper(), "A^B", "P1", "1970-01-01", "CT", accession_number="ACC-77")

    assert fake_server.paths() == ["/createpatientorder", "/getpatientorderlist"]
    lookup = params_of(fake_server.requests[1])
    assert lookup["InstitutionUuidList"] == f'["{INST}"]'
    assert lookup["AccessionNumber"] == "ACC-77"
    assert isinstance(answer, models.CreatePatientOrderAnswer)
    assert (answer.patient_order_uuid, answer.accession_number, answer.order_status) == (O2, "ACC-77", "Scheduled")


def test_an_order_not_found_by_the_lookup_is_created_again(fake_server, fake_client):
    someone_else = {**ORDER_SUMMARY, "PatientOrderUuid": O2, "AccessionNumber": "ACC-77", "PatientId": "OTHER"}
    fake_server.script["/createpatientorder"] = [httpx.ReadTimeout("answer lost")]
    fake_server.script["/getpatientorderlist"] = [httpx.Response(200, json={"PatientOrderList": [someone_else]})]
    answer = fake_client.create_patient_order(INST, "A^B", "P1", "1970-01-01", "CT", accession_number="ACC-77")
    assert fake_server.paths() == ["/createpatientorder", "/getpatientorderlist", "/createpatientorder"]
    assert answer.patient_order_uuid == DOCUMENTED_ANSWERS["/createpatientorder"]["PatientOrderUuid"]


def test_an_order_create_gives_up_after_the_retry_budget(fake_server, fake_client):
    fake_server.script["/createpatientorder"] = [status(503)] * 3
    fake_server.script["/getpatientorderlist"] = [httpx.Response(200, json={"PatientOrderList": []})] * 3
    with pytest.raises(ServerError):
        fake_client.create_patient_order(INST, "A^B", "P1", "1970-01-01", "CT", accession_number="ACC-77")
    assert fake_server.paths().count("/createpatientorder") == 3
    assert fake_server.paths() == ["/createpatientorder", "/getpatientorderlist"] * 2 + ["/createpatientorder"]


def folder_list(*folders: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"FolderList": list(folders)})


def test_a_folder_create_returns_the_folder_an_earlier_attempt_made(fake_server, fake_client):
    older = {"FolderUuid": F1, "FolderName": "Trauma", "FolderDescription": "", "ParentFolderUuid": None}
    ours = {**older, "FolderUuid": F2}
    similar = {**older, "FolderUuid": str(uuid.uuid4()), "FolderName": "Trauma 2025"}
    fake_server.script["/searchfolder"] = [folder_list(older, similar), folder_list(older, similar, ours)]
    fake_server.script["/createfolder"] = [httpx.ReadTimeout("answer lost")]

    answer = fake_client.create_folder(" Trauma ")  # sent as given; the server may trim it, the lookup does too

    assert fake_server.paths() == ["/searchfolder", "/createfolder", "/searchfolder"]
    assert params_of(fake_server.requests[0]) == {"ParentFolderUuid": "", "FolderName": "Trauma", "GetOrdersInFolder": ""}
    assert params_of(fake_server.requests[1])["FolderName"] == " Trauma "
    assert answer.folder_uuid == F2  # not the folder of the same name that was there before


def test_a_folder_create_is_sent_again_when_the_first_left_no_trace(fake_server, fake_client):
    older = {"FolderUuid": F1, "FolderName": "Trauma", "FolderDescription": "", "ParentFolderUuid": F2}
    fake_server.script["/searchfolder"] = [folder_list(older), folder_list(older)]
    fake_server.script["/createfolder"] = [status(503)]
    fake_client.create_folder("Trauma", parent_folder_uuid=F2)
    assert fake_server.paths() == ["/searchfolder", "/createfolder", "/searchfolder", "/createfolder"]
    assert params_of(fake_server.requests[0])["ParentFolderUuid"] == F2


def test_a_delete_after_a_lost_answer_finds_the_order_gone(fake_server, fake_client):
    fake_server.script["/deleteorder"] = [httpx.ReadTimeout("answer lost")]
    fake_server.script["/getpatientorderproperties"] = [status(404, "unknown PatientOrderUuid")]
    answer = fake_client.delete_patient_order(INST, O1)
    assert fake_server.paths() == ["/deleteorder", "/getpatientorderproperties"]
    assert (answer.patient_order_uuid, answer.deleted, answer.deleted_instance_count) == (O1, True, None)


def test_a_delete_is_repeated_when_the_order_is_still_there(fake_server, fake_client):
    fake_server.script["/deleteorder"] = [status(503)]
    answer = fake_client.delete_patient_order(INST, O1)
    assert fake_server.paths() == ["/deleteorder", "/getpatientorderproperties", "/deleteorder"]
    assert answer.deleted_instance_count == 40


def test_a_delete_of_an_unknown_order_is_a_not_found(fake_server, fake_client):
    fake_server.script["/deleteorder"] = [status(404, "unknown PatientOrderUuid")]
    with pytest.raises(NotFoundError):
        fake_client.delete_patient_order(INST, O1)
    assert fake_server.paths() == ["/deleteorder"]


@pytest.mark.parametrize("name", ["assign_order_to_user", "assign_order_to_user_group", "add_order_to_folder"])
def test_idempotent_writes_are_simply_retried(fake_server, fake_client, name):
    kwargs = {"assign_order_to_user": (O1, USER), "assign_order_to_user_group": (O1, GROUP),
              "add_order_to_folder": (O1, [F1])}[name]
    path = table.endpoint(name).path
    fake_server.script[path] = [status(503), httpx.ReadTimeout("answer lost")]
    getattr(fake_client, name)(*kwargs)
    assert fake_server.paths() == [path] * 3


def test_every_row_documents_its_retry_choice():
    choices = {row.python_name: row.safety for row in table.ENDPOINTS}
    assert choices == {
        "create_share_link": Safety.NO_RETRY_AFTER_SEND,
        "share_patient_order_with_url": Safety.NO_RETRY_AFTER_SEND,
        "share_folder_with_url": Safety.NO_RETRY_AFTER_SEND,
        "create_folder": Safety.LOOK_BEFORE_CREATE,
        "create_patient_order": Safety.LOOK_BEFORE_CREATE,
        "search_folder": Safety.READ,
        "get_patient_order_properties": Safety.READ,
        "get_patient_order_list": Safety.READ,
        "get_dicom_tag_content": Safety.READ,
        "add_order_to_folder": Safety.IDEMPOTENT_WRITE,
        "assign_order_to_user": Safety.IDEMPOTENT_WRITE,
        "assign_order_to_user_group": Safety.IDEMPOTENT_WRITE,
        "delete_patient_order": Safety.IDEMPOTENT_WRITE,
    }
    for row in table.ENDPOINTS:
        if row.safety is Safety.LOOK_BEFORE_CREATE:
            assert row.lookup is not None and "looks" in row.retry_doc


def test_a_repeating_client_looks_before_sending_anything(fake_server, fake_client):
    """What a Prefect task retry builds: the earlier attempt may have deleted the order already."""
    fake_client.repeating = True
    fake_server.script["/getpatientorderproperties"] = [status(404)]
    answer = fake_client.delete_patient_order(INST, O1)
    assert fake_server.paths() == ["/getpatientorderproperties"]
    assert answer.deleted is True and answer.deleted_instance_count is None
