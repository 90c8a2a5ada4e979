"""GetPatientOrderList read as it arrives (``PostDicomClient.iter_patient_order_list``, ``postdicom.answer_stream``).

The streamed read must hand on the same orders, read the same shapes and
raise the same errors as ``get_patient_order_list`` on the same body (every
shape of ``docs/api-answers.md``, cut into 7-byte pieces so that every value
is cut somewhere); keep its limits (size cap, deadline) and its retries until
the first order is handed on; hand orders on before the body has ended; and
never hold more of the body than the order being read.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from postdicom import PostDicomClient, RetryPolicy, answer_stream
from postdicom.answer_stream import PIECE_BYTES, JsonPull
from postdicom.errors import (
    AnswerTooLargeError,
    DeadlineExceededError,
    FailedAnswerError,
    HeaderTooLargeError,
    TransportError,
    UnreadableAnswerError,
)
from postdicom.http_limits import HttpLimits
from postdicom.transport import READ_BYTES
from tests.fixtures.alt_shapes import EXTRA_KEYS, SHAPES, _with_extra_keys
from tests.fixtures.mock_server import make_client, params_of

INST = "bb1c0d7e-3333-4a6b-9c3d-0a1b2c3d4e5f"


def order(n: int, **fields) -> dict:
    return {
        "PatientOrderUuid": f"6f1c0d7e-1111-4a6b-9c3d-0a1b2c3d{n:04x}", "InstitutionUuid": INST,
        "OrderStatus": "Completed", "PatientName": f"Muñoz^José{n}", "PatientId": f"PID-{n}", "PatientSex": "M",
        "PatientBirthdate": "1961-03-14", "AccessionNumber": f"ACC-{n}", "Modality": "CT",
        "ModalityList": ["CT", "SR"], "StudyInstanceUid": f"1.2.3.{n}", "StudyDate": "2026-11-27",
        "AssignedUserUuid": None, "NumberOfSeries": 2, "NumberOfInstances": 40 + n, **fields,
    }


ROWS = [order(n) for n in range(6)]
DOCUMENTED = {"PatientOrderList": ROWS}


def pieces(body: bytes, size: int = 7) -> Callable[[httpx.Request], httpx.Response]:
    """Answer ``body`` (status 200, ``X-Error-Reason: Success``) in pieces of ``size`` bytes."""

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=iter([body[i : i + size] for i in range(0, len(body), size)]),
            headers={"X-Error-Reason": "Success"},
        )

    return respond


def both_ways(body: bytes, **client_options) -> tuple[object, object]:
    """``(get_patient_order_list answer or error, (streamed rows, reading) or error)`` for the same body."""
    results = []
    for streamed in (False, True):
        client, _ = make_client(pieces(body), **client_options)
        try:
            if streamed:
                with client.iter_patient_order_list([]) as rows:
                    results.append((list(rows), rows.reading))
            else:
                results.append(client.get_patient_order_list([]))
        except Exception as exc:  # compared below: the same error both ways
            results.append(exc)
    return results[0], results[1]


def kinds(fallbacks: list[str]) -> set[str]:
    """Fallbacks without the model they were noted on (a row read alone is noted on its own model)."""
    return {f.split(": ", 1)[-1] if ": keys in" in f else f for f in fallbacks}


BODIES: dict[str, bytes] = {
    **{shape: json.dumps(make("/getpatientorderlist", DOCUMENTED)).encode() for shape, make in SHAPES.items()},
    EXTRA_KEYS: json.dumps(_with_extra_keys(DOCUMENTED)).encode(),
    "documented": json.dumps(DOCUMENTED).encode(),
    "pascal-and-camel-rows": json.dumps({"patientOrderList": [ROWS[0], {k[:1].lower() + k[1:]: v for k, v in ROWS[1].items()}]}).encode(),
    "byte-order-mark": "\ufeff".encode() + json.dumps(DOCUMENTED).encode(),
    "list-under-items-with-count": json.dumps({"Count": 6, "Items": ROWS}).encode(),
    "result-envelope-status-after": json.dumps({"Result": {"PatientOrderList": ROWS}, "Success": "true"}).encode(),
    "null-list": b'{"PatientOrderList": null}',
    "null": b"null",
    "empty-body": b"",
    "empty-object": b"{}",
    "d-null": b'{"d": null}',
    "empty-array": b"[]",
    "data-empty-success": b'{"Data": [], "Success": true}',
    "one-object-for-the-list": json.dumps({"PatientOrderList": ROWS[0]}).encode(),
    "list-as-json-string": json.dumps({"PatientOrderList": json.dumps(ROWS)}).encode(),
    "rows-without-documented-keys": json.dumps({"Orders": [{"OrderGuid": "x", "Patient": "Muñoz^José"}], "Count": 1}).encode(),
    "booleans-and-numbers-as-strings": json.dumps({"PatientOrderList": [order(1, NumberOfSeries="2", Flag="True")]}).encode(),
    "numbers-at-piece-ends": json.dumps({"PatientOrderList": [order(n, NumberOfInstances=10**n) for n in range(12)]}).encode(),
    "whitespace": json.dumps(DOCUMENTED, indent=4).encode(),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_accepted_shape_streams_as_it_reads_whole(name):
    whole, streamed = both_ways(BODIES[name])
    assert not isinstance(whole, Exception), whole
    assert not isinstance(streamed, Exception), streamed
    rows, reading = streamed
    assert rows == whole.patient_order_list  # the same values, row by row
    assert [row.received for row in rows] == [row.received for row in whole.patient_order_list]
    assert reading.shape == whole.reading.shape
    assert kinds(reading.fallbacks) == kinds(whole.reading.fallbacks)
    assert set(reading.unknown_keys) == set(whole.reading.unknown_keys)
    assert (reading.understood, reading.empty) == (whole.reading.understood, whole.reading.empty)


def test_gzip_bodies_stream():
    body = gzip.compress(BODIES["documented"])

    def respond(request):
        return httpx.Response(200, content=iter([body[:50], body[50:]]), headers={"Content-Encoding": "gzip"})

    client, _ = make_client(respond)
    assert [r.patient_order_uuid for r in client.iter_patient_order_list([])] == [r["PatientOrderUuid"] for r in ROWS]


@pytest.mark.parametrize("body, error", [
    (b'{"Success": false, "Message": "Institution unknown", "Data": null}', FailedAnswerError),
    (b'{"IsSuccess": "false", "Error": "Institution unknown"}', FailedAnswerError),
    (b'{"Error": "Institution unknown"}', FailedAnswerError),
    (b"<html><body>Sign in: https://login.example.org/?next=PID-424242</body></html>", UnreadableAnswerError),
    (b"[1, 2, 3]", UnreadableAnswerError),
    (b'{"PatientOrderList": [1, 2], "Note": "' + b"x" * 400 + b'"}', UnreadableAnswerError),
    (b'"just text"', UnreadableAnswerError),
    (b'{"A": [{"x": 1}], "B": [{"y": 2}]}', UnreadableAnswerError),
])
def test_what_cannot_be_read_or_says_it_failed_raises_the_same_error(body, error):
    whole, streamed = both_ways(body)
    assert isinstance(whole, error) and isinstance(streamed, error)
    assert str(streamed) == str(whole)  # the same words, the same masked excerpt
    assert "Muñoz" not in str(streamed) and "424242" not in str(streamed)


def test_a_failure_stated_before_the_list_is_raised_before_any_order():
    body = json.dumps({"Success": False, "Message": "Institution unknown", "Data": ROWS}).encode()
    client, _ = make_client(pieces(body))
    rows = client.iter_patient_order_list([])
    with pytest.raises(FailedAnswerError) as raised:
        next(rows)
    assert raised.value.reason == "Institution unknown"


def test_an_answer_cut_after_some_orders_raises_after_them_with_no_value_quoted():
    body = BODIES["documented"]
    cut = body[: body.index(b"PID-3")]
    client, _ = make_client(pieces(cut))
    got = []
    with pytest.raises(UnreadableAnswerError) as raised:
        for row in client.iter_patient_order_list([]):
            got.append(row.patient_order_uuid)
    assert len(got) == 3  # the three complete orders were handed on before the cut was seen
    assert "not JSON" in str(raised.value) and "Muñoz" not in str(raised.value)


def test_another_list_of_objects_before_the_order_list_is_refused_not_mistaken():
    body = json.dumps({"Links": [{"Rel": "self"}], "PatientOrderList": ROWS}).encode()
    with pytest.raises(UnreadableAnswerError, match="several lists of objects"):
        list(make_client(pieces(body))[0].iter_patient_order_list([]))


# --------------------------------------------------------------------------- the limits


def test_an_announced_oversized_body_is_refused_before_any_order():
    body = BODIES["documented"]

    def respond(request):
        return httpx.Response(200, content=body, headers={"Content-Length": str(len(body))})

    client, _ = make_client(respond)
    client._http.limits = HttpLimits(max_json_bytes=len(body) - 1)
    rows = client.iter_patient_order_list([])
    with pytest.raises(AnswerTooLargeError, match="announces"):
        next(rows)


def test_an_endless_list_stops_at_the_size_cap():
    def endless() -> Iterator[bytes]:
        yield b'{"PatientOrderList": ['
        n = 0
        while True:
            yield json.dumps(order(n)).encode() + b","
            n += 1

    client, _ = make_client(lambda request: httpx.Response(200, content=endless()))
    client._http.limits = HttpLimits(max_json_bytes=200_000)
    handed = 0
    with pytest.raises(AnswerTooLargeError, match="POSTDICOM_MAX_JSON_BYTES"):
        for _ in client.iter_patient_order_list([]):
            handed += 1
    assert 100 < handed < 200_000 // 400


def test_an_endless_value_is_bounded_by_the_size_cap_not_held_whole():
    def endless() -> Iterator[bytes]:
        yield b'{"PatientOrderList": [{"PatientName": "'
        while True:
            yield b"x" * 65536

    client, _ = make_client(lambda request: httpx.Response(200, content=endless()))
    client._http.limits = HttpLimits(max_json_bytes=4_000_000)
    with pytest.raises(AnswerTooLargeError):
        list(client.iter_patient_order_list([]))


class _Slow(BaseHTTPRequestHandler):
    """Sends the first half of a body, waits for ``go`` (at most 60 s), then the rest; or trickles it."""

    protocol_version = "HTTP/1.1"
    body = b""
    go = threading.Event()
    waited_out: list[bool] = []
    trickle = False

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = type(self).body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if type(self).trickle:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            half = len(body) // 2
            self.wfile.write(body[:half])
            self.wfile.flush()
            type(self).waited_out.append(not type(self).go.wait(60))
            self.wfile.write(body[half:])
        except OSError:
            pass


@pytest.fixture
def slow_server() -> Iterator[type[_Slow]]:
    handler = type("Slow", (_Slow,), {"go": threading.Event(), "waited_out": [], "body": BODIES["documented"]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/dicomweb"  # type: ignore[attr-defined]
    yield handler
    handler.go.set()
    server.shutdown()


def test_orders_are_handed_on_before_the_body_has_ended(slow_server):
    with PostDicomClient(slow_server.url, "u", "p", retry=RetryPolicy(attempts=1)) as client:
        with client.iter_patient_order_list([]) as rows:
            first = next(rows)  # the server holds the second half until the test says go
            assert not slow_server.go.is_set()
            slow_server.go.set()
            rest = list(rows)
    assert slow_server.waited_out == [False]  # it was told to go: it never sent the rest unasked
    assert [first.patient_order_uuid] + [r.patient_order_uuid for r in rest] == [r["PatientOrderUuid"] for r in ROWS]


def test_a_body_trickling_past_the_request_deadline_stops_there(slow_server, monkeypatch):
    slow_server.trickle = True
    monkeypatch.setenv("POSTDICOM_REQUEST_DEADLINE", "1")
    monkeypatch.setenv("POSTDICOM_DOWNLOAD_DEADLINE", "3600")
    started = time.monotonic()
    with PostDicomClient(slow_server.url, "u", "p", retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(DeadlineExceededError, match="POSTDICOM_REQUEST_DEADLINE"):
            list(client.iter_patient_order_list([]))
    assert time.monotonic() - started < 30  # the body alone would take over a minute


# --------------------------------------------------------------------------- retries and splits


class _CutAt:
    """A body that loses its connection after ``at`` bytes."""

    def __init__(self, body: bytes, at: int) -> None:
        self.body, self.at = body, at

    def __iter__(self) -> Iterator[bytes]:
        yield self.body[: self.at]
        raise httpx.ReadError("connection reset by peer")


def test_a_connection_lost_before_the_first_order_is_tried_again():
    body = BODIES["documented"]
    client, recorder = make_client(pieces(body), attempts=3)
    recorder.script["/getpatientorderlist"] += [
        httpx.Response(503), lambda request: httpx.Response(200, content=_CutAt(body, 30)),
    ]
    rows = list(client.iter_patient_order_list([]))
    assert len(rows) == len(ROWS) and len(recorder.requests) == 3


def test_a_connection_lost_after_an_order_was_handed_on_is_raised():
    body = BODIES["documented"]
    client, recorder = make_client(lambda request: httpx.Response(200, content=_CutAt(body, len(body) // 2)), attempts=3)
    got = []
    with pytest.raises(TransportError, match="connection lost"):
        for row in client.iter_patient_order_list([]):
            got.append(row)
    assert got and len(recorder.requests) == 1


def test_the_retry_budget_is_the_calls(monkeypatch):
    body = BODIES["documented"]
    client, recorder = make_client(lambda request: httpx.Response(200, content=_CutAt(body, 10)), attempts=3)
    with pytest.raises(TransportError):
        list(client.iter_patient_order_list([]))
    assert len(recorder.requests) == 3


def test_an_oversized_header_is_split_and_each_order_handed_on_once():
    institutions = [f"bb1c0d7e-3333-4a6b-9c3d-0a1b2c3d{n:04x}" for n in range(40)]

    def respond(request):
        sent = params_of(request)["InstitutionUuidList"]
        asked = json.loads(sent) if isinstance(sent, str) else sent
        return httpx.Response(200, json={"PatientOrderList": [ROWS[0]] + [order(100 + institutions.index(i)) for i in asked]})

    client, recorder = make_client(respond)
    client.max_parameter_header_bytes = 600
    got = [row.patient_order_uuid for row in client.iter_patient_order_list(institutions)]
    assert len(recorder.requests) > 1
    assert sorted(got) == sorted({ROWS[0]["PatientOrderUuid"]} | {order(100 + n)["PatientOrderUuid"] for n in range(40)})
    assert len(got) == len(set(got))


def test_bad_values_are_refused_when_called_before_anything_is_sent():
    client, recorder = make_client(pieces(BODIES["documented"]))
    with pytest.raises(ValueError):
        client.iter_patient_order_list(["not-a-uuid"])
    client.max_parameter_header_bytes = 100
    with pytest.raises(HeaderTooLargeError):
        client.iter_patient_order_list([], patient_name="x" * 200)
    assert recorder.requests == []


def test_leaving_early_lets_the_connection_go(slow_server):
    with PostDicomClient(slow_server.url, "u", "p", retry=RetryPolicy(attempts=1), max_connections=1, timeout=10) as client:
        with client.iter_patient_order_list([]) as rows:
            next(rows)
        slow_server.go.set()
        # one connection in the pool: a second call only gets one if the first was let go
        assert len(client.get_patient_order_list([]).patient_order_list) == len(ROWS)


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize("read_bytes", [65536, READ_BYTES], ids=["64 KiB reads", "the transport's 1 MiB reads"])
def test_the_reader_holds_the_unread_part_not_the_body(read_bytes):
    """Whatever the reads' size, the text held is a piece or two (RESULTS.md, *Export memory, seventh pass*)."""
    rows = [json.dumps(order(n), ensure_ascii=False).encode() for n in range(6000)]
    body = b'{"PatientOrderList": [' + b",".join(rows) + b"]}"
    assert len(body) > 2 * READ_BYTES
    held = []
    pull = JsonPull(iter([body[i : i + read_bytes] for i in range(0, len(body), read_bytes)]))
    pull.take("{")
    pull.value()
    pull.take(":")
    pull.take("[")
    while True:
        pull.value()
        held.append(len(pull.text))
        if pull.peek() == "]":
            break
        pull.take(",")
    assert max(held) < 2 * PIECE_BYTES < len(body) // 4


def test_the_pieces_give_back_every_byte_in_order():
    chunks = [b"a" * 10, b"b" * (PIECE_BYTES * 2 + 7), b"", b"c" * PIECE_BYTES]
    cut = list(answer_stream.pieces(iter(chunks)))
    assert b"".join(cut) == b"".join(chunks)
    assert max(map(len, cut)) == PIECE_BYTES and len(cut) == 6


# --------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def sandbox_orders(sandbox_server) -> str:
    """Three orders of one patient on the shared sandbox; returns the patient id."""
    institution = sandbox_server.extra["account"]["Institutions"][0]["InstitutionUuid"]
    patient_id = f"STREAM-{time.time_ns()}"
    with sandbox_server.credentials().get_client() as client:
        for n in range(3):
            client.create_patient_order(institution, f"Stream^Test{n}", patient_id, "1970-01-01", "CT",
                                        accession_number=f"{patient_id}-{n}")
    return patient_id


@pytest.mark.parametrize("shape", ["sandbox", *SHAPES, EXTRA_KEYS])
def test_the_sandbox_and_its_reshaped_answers_stream_as_they_read_whole(sandbox_server, alt_shapes_server,
                                                                        sandbox_orders, shape):
    server = sandbox_server if shape == "sandbox" else alt_shapes_server(shape)
    with server.credentials().get_client() as client:
        whole = client.get_patient_order_list([], patient_id=sandbox_orders)
        with client.iter_patient_order_list([], patient_id=sandbox_orders) as rows:
            streamed = list(rows)
    assert len(streamed) == 3 and streamed == whole.patient_order_list
    assert rows.reading.shape == whole.reading.shape and rows.reading.understood
    assert kinds(rows.reading.fallbacks) == kinds(whole.reading.fallbacks)
