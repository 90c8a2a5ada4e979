"""Errors and retries: status mapping, the server's reason, Retry-After, STOW re-sends and reconciliation,
redirects refused by every call, and what a pickled (persisted) error keeps."""

from __future__ import annotations

import pickle
import uuid

import cloudpickle
import httpx
import pydicom
import pytest
from prefect.serializers import PickleSerializer

import postdicom.http
from postdicom import (
    AnswerTooLargeError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeadlineExceededError,
    NotFoundError,
    PostDicomError,
    RedirectError,
    ServerError,
    ThrottledError,
    TransportError,
)
from postdicom.multipart import MultipartWriter
from postdicom.writes import writes_sent
from tests.fixtures.mock_server import STUDY, make_client, stow_answer


@pytest.fixture
def sleeps(monkeypatch):
    """Record the session's back-off waits instead of sleeping them."""
    waited: list[float] = []
    monkeypatch.setattr(postdicom.http.time, "sleep", waited.append)
    return waited


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (405, NotFoundError),
        (409, ConflictError),
        (429, ThrottledError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_status_maps_to_exception_with_the_server_reason(status, error, sleeps):
    client, _ = make_client(lambda r: httpx.Response(status, headers={"X-Error-Reason": "the reason given"}))
    with pytest.raises(error) as info:
        client.search_for_studies()
    assert info.value.status == status
    assert info.value.reason == "the reason given"
    assert "the reason given" in str(info.value)
    assert "pw-Ünïcode" not in str(info.value)


def test_error_messages_and_retry_logs_name_the_search_keys_not_the_patient(sleeps, caplog):
    client, _ = make_client(lambda r: httpx.Response(503), attempts=2)
    with caplog.at_level("INFO", logger="postdicom.http"), pytest.raises(ServerError) as info:
        client.search_for_studies({"PatientName": "Doe^Jane", "PatientID": "MRN-4711"})
    shown = str(info.value) + repr(info.value) + caplog.text
    assert "00100010=..." in str(info.value) and "00100020=..." in str(info.value)  # PatientName, PatientID
    assert "retrying GET" in caplog.text
    for value in ("Doe", "Jane", "MRN-4711"):
        assert value not in shown
    assert info.value.url.endswith("/studies?00100010=...&00100020=...&limit=...")  # keys kept, values nowhere


def test_retry_waits_at_least_retry_after(sleeps):
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "7"}),
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json=[]),
        ]
    )
    client, rec = make_client(lambda r: next(answers), attempts=4)
    assert client.search_for_studies() == []
    assert len(rec.requests) == 3
    assert sleeps[0] >= 7 and sleeps[1] >= 3


def test_transient_errors_give_up_after_the_policy(sleeps):
    client, rec = make_client(lambda r: httpx.Response(502), attempts=3)
    with pytest.raises(ServerError):
        client.search_for_studies()
    assert len(rec.requests) == 3 and len(sleeps) == 2


def test_client_errors_are_not_retried(sleeps):
    client, rec = make_client(lambda r: httpx.Response(400), attempts=4)
    with pytest.raises(BadRequestError):
        client.search_for_studies()
    assert len(rec.requests) == 1 and sleeps == []


def test_retried_stow_resends_the_full_body(small_study, sleeps):
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in small_study]
    answers = iter([httpx.Response(503), httpx.Response(200, json=stow_answer(stored=uids))])
    client, rec = make_client(lambda r: next(answers), attempts=3, dialect="standard")
    result = client.store_instances(small_study)
    assert result.counts["stored"] == 2
    assert len(rec.bodies) == 2
    first, second = rec.bodies
    assert first == second
    assert len(second) == int(rec.requests[1].headers["Content-Length"])
    assert all(p.read_bytes() in second for p in small_study)


def test_non_idempotent_request_not_retried_once_sent(sleeps):
    calls = []

    def respond(request):
        calls.append(request)
        raise httpx.ReadError("connection reset after the request was sent")

    client, _ = make_client(respond, attempts=4)
    with pytest.raises(TransportError):
        client._http.request("POST", "/createfolder", idempotent=False)
    assert len(calls) == 1
    client, rec = make_client(lambda r: httpx.Response(503), attempts=4)
    with pytest.raises(ServerError):
        client._http.request("POST", "/createfolder", idempotent=False)
    assert len(rec.requests) == 1


def test_connection_refused_is_retried_then_a_transport_error(sleeps):
    calls = []

    def respond(request):
        calls.append(request)
        raise httpx.ConnectError("connection refused")

    client, _ = make_client(respond, attempts=3)
    with pytest.raises(TransportError):
        client.search_for_studies()
    assert len(calls) == 3


def test_stow_400_partial_success_is_reconciled(small_study):
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in small_study]
    # Orthanc: 400, no Content-Type, the good part referenced, the bad one listed nowhere.
    answer = httpx.Response(400, content=httpx.Response(200, json=stow_answer(stored=uids[:1])).content)
    client, _ = make_client(lambda r: answer, dialect="standard")
    result = client.store_instances(small_study)
    assert [o.status for o in result] == ["stored", "rejected"]
    assert "neither ReferencedSOPSequence nor FailedSOPSequence" in result.outcomes[1].reason
    assert "HTTP 400" in result.outcomes[1].reason


def test_stow_failed_sequence_gives_failure_reason_text_and_code(small_study):
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in small_study]
    answer = stow_answer(stored=uids[:1], failed=[(uids[1], 0xC122)])
    client, _ = make_client(lambda r: httpx.Response(202, json=answer))
    result = client.store_instances(small_study)
    assert result.outcomes[1].status == "rejected"
    assert result.outcomes[1].failure_code == 0xC122
    assert "C122H" in result.outcomes[1].reason and "transfer syntax not supported" in result.outcomes[1].reason


def test_stow_409_conflict_body_is_read(small_study):
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in small_study]
    answer = stow_answer(failed=[(u, 272) for u in uids])
    client, _ = make_client(lambda r: httpx.Response(409, json=answer, headers={"X-Error-Reason": "study mismatch"}))
    result = client.store_instances(small_study)
    assert [o.failure_code for o in result] == [272, 272]
    assert all("0110H" in o.reason and "study mismatch" in o.reason for o in result)


def test_stow_server_error_after_retries_marks_files_failed(small_study, sleeps):
    client, rec = make_client(lambda r: httpx.Response(500, headers={"X-Error-Reason": "disk full"}), attempts=2)
    result = client.store_instances(small_study, batch_size=1)
    assert result.counts == {"stored": 0, "rejected": 0, "failed": 2}
    assert all("disk full" in o.reason for o in result)
    assert len(rec.requests) == 4


def test_stow_wrong_password_raises_with_the_reason(small_study):
    client, rec = make_client(lambda r: httpx.Response(401, headers={"X-Error-Reason": "bad credentials"}))
    with pytest.raises(AuthenticationError, match="bad credentials"):
        client.store_instances(small_study, batch_size=1, concurrency=1)


def test_stow_batches_by_count_and_bytes(small_study):
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in small_study]
    client, rec = make_client(lambda r: httpx.Response(200, json=stow_answer(stored=uids)))
    client.store_instances(small_study * 3, batch_size=4, concurrency=1)
    assert [body.count(b"Content-Type: application/dicom") for body in rec.bodies] == [4, 2]
    rec.bodies.clear()
    client.store_instances(small_study, max_batch_bytes=small_study[0].stat().st_size)
    assert [body.count(b"Content-Type: application/dicom") for body in rec.bodies] == [1, 1]


def test_truncated_wado_answer_is_retried_then_a_transport_error(small_study, tmp_path, sleeps):
    writer = MultipartWriter([p.read_bytes() for p in small_study])
    body = b"".join(writer())
    client, rec = make_client(
        lambda r: httpx.Response(200, content=body[: len(body) // 2], headers={"Content-Type": writer.content_type}),
        attempts=3,
    )
    with pytest.raises(TransportError, match="closing boundary"):
        client.retrieve_study(STUDY, tmp_path)
    assert len(rec.requests) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_writes_are_counted_when_sent_and_reads_are_not(small_study, sleeps):
    """The count read caches key on (postdicom.writes): every request that may change the server, even a failed one."""
    client, _ = make_client(lambda r: httpx.Response(400, headers={"X-Error-Reason": "refused"}))
    order = str(uuid.uuid4())
    start = writes_sent()
    with pytest.raises(BadRequestError):
        client.get_patient_order_properties(order, order)
    with pytest.raises(BadRequestError):
        client.search_for_studies()
    assert writes_sent() == start
    with pytest.raises(BadRequestError):
        client.assign_order_to_user(order, order)
    client.store_instances(small_study, batch_size=1)
    assert writes_sent() == start + 1 + len(small_study)


# --------------------------------------------------------------------------- redirects, for every kind of call


REDIRECTED_CALLS = {
    "qido": lambda client, study: client.search_for_studies({"PatientID": "MRN-4711"}),
    "custom endpoint": lambda client, study: client.search_folder(folder_name="Research"),
    "stow": lambda client, study: client.store_instances(study),
    "wado": lambda client, study: client.retrieve_study(STUDY, study[0].parent.parent / "out"),
}


@pytest.mark.parametrize("call", sorted(REDIRECTED_CALLS))
@pytest.mark.parametrize("status", [301, 302, 307])
def test_every_call_refuses_a_redirect_and_names_where_it_points(call, status, small_study, sleeps):
    """Before: any status under 400 was success, so a redirected QIDO search gave ``[]``."""

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Location": str(request.url.copy_with(scheme="https"))})

    client, rec = make_client(respond, attempts=3)
    client._http.base_url = client._http.base_url.replace("https://", "http://")
    with pytest.raises(RedirectError) as caught:
        REDIRECTED_CALLS[call](client, small_study)
    assert len(rec.requests) == 1 and sleeps == []
    assert caught.value.location.startswith("https://pacs.example.org/dicomweb/")
    assert "web_address starts with http:// but the service answers at https://" in str(caught.value)
    assert "MRN-4711" not in str(caught.value)


# --------------------------------------------------------------------------- what a persisted error keeps


def _failed_search_by_patient_name(status: int, **headers: str) -> PostDicomError:
    reason = "no study matches PatientName=DOE^JANE* (patient DOE, JANE)"
    client, _ = make_client(
        lambda r: httpx.Response(status, headers={"X-Error-Reason": reason, **headers}, text=reason), attempts=1
    )
    with pytest.raises(PostDicomError) as caught:
        client.search_for_studies({"PatientName": "Doe^Jane*", "PatientID": "MRN-4711"})
    return caught.value


@pytest.mark.parametrize("status", [400, 429, 503])
def test_a_pickled_failed_search_keeps_no_patient_value(status):
    """Prefect pickles a failed task's exception into result storage: what it stores names no patient."""
    error = _failed_search_by_patient_name(status, **{"Retry-After": "5"})
    for stored in (pickle.dumps(error), cloudpickle.dumps(error), PickleSerializer().dumps(error)):
        for value in (b"Doe", b"DOE", b"Jane", b"JANE", b"MRN-4711", b"4711"):
            assert value not in stored, (status, value)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert (again.status, again.method, again.url, again.reason) == (error.status, error.method, error.url, error.reason)
    assert again.url.endswith("/studies?00100010=...&00100020=...&limit=...")
    assert again.reason == "no study matches PatientName=... (patient ..., ...)"
    assert again.retry_after == 5.0 and str(again) == str(error)


def test_every_error_class_survives_pickling_with_its_attributes():
    errors = [
        ThrottledError("slow down", retry_after=3.0, status=429, method="GET", url="https://x/studies?PatientID=A1B2"),
        RedirectError("moved", location="https://x/y?PatientName=Doe", status=301, method="GET", url="http://x/y"),
        DeadlineExceededError("too slow", method="GET", url="https://x/studies?PatientID=A1B2"),
        AnswerTooLargeError("too big", status=200, method="GET", url="https://x/studies"),
        TransportError("refused", method="POST", url="https://x/studies"),
    ]
    for error in errors:
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and again.__dict__ == error.__dict__ and str(again) == str(error)
        assert b"A1B2" not in pickle.dumps(error) and b"Doe" not in pickle.dumps(error)


def test_a_failed_order_search_by_patient_keeps_no_patient_value():
    """Custom endpoints carry the patient in a header, not the URL: a reason repeating it is masked too."""
    reason = "no orders for patient Doe^Jane (MRN-4711) in this institution"
    client, _ = make_client(lambda r: httpx.Response(400, headers={"X-Error-Reason": reason}, text=reason))
    with pytest.raises(BadRequestError) as caught:
        client.get_patient_order_list(
            institution_uuid_list=[str(uuid.UUID(int=3))], patient_name="Doe^Jane", patient_id="MRN-4711"
        )
    error = caught.value
    assert error.reason == "no orders for patient ... (...) in this institution"
    stored = pickle.dumps(error)
    for value in ("Doe", "Jane", "MRN-4711"):
        assert value not in str(error) and value.encode() not in stored
