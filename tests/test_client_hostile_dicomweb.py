"""A hostile DICOMweb server cannot make the client page forever or write past what it announced.

QIDO: a server that always says "more results" (full pages of new matches,
``Warning: 299`` on short pages, or pages it sent before) is stopped by the
page cap, the size cap on all its pages together, or the repeated-page
check, with an error that says which. WADO: a
body or a part that goes on past its announced ``Content-Length`` stops the
download before the extra bytes are written.

QIDO servers are ``httpx.MockTransport`` handlers (``tests/fixtures/mock_server.py``);
the WADO part that never ends comes from a small socket server in this file,
so the bytes really cross a connection.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from postdicom import PostDicomClient, ProtocolError, ValidationError
from postdicom.errors import AnswerTooLargeError
from postdicom.http_limits import DOWNLOAD_BYTES_SETTING
from postdicom.qido import DEFAULT_MAX_PAGES, MAX_BYTES_ENV, MAX_PAGES_ENV

from tests.fixtures.mock_server import SERIES, STUDY, make_client, qido_match, wado_body


def _fresh_matches(request: httpx.Request) -> httpx.Response:
    """A full page of matches never seen before, whatever the offset: "more results" forever."""
    limit = int(request.url.params["limit"])
    offset = int(request.url.params.get("offset", "0"))
    return httpx.Response(200, json=[qido_match(sop=f"1.2.3.{offset + i}") for i in range(limit)])


def test_a_server_with_more_results_forever_is_stopped_at_the_page_cap(monkeypatch):
    monkeypatch.setenv(MAX_PAGES_ENV, "7")
    client, server = make_client(_fresh_matches)
    with pytest.raises(ProtocolError) as caught:
        client.search_for_instances(STUDY, SERIES, page_size=10)
    assert len(server.requests) == 7
    assert MAX_PAGES_ENV in str(caught.value) and "7 pages" in str(caught.value)


def test_the_default_page_cap_holds_without_any_setting(monkeypatch):
    monkeypatch.delenv(MAX_PAGES_ENV, raising=False)
    client, server = make_client(_fresh_matches)
    with pytest.raises(ProtocolError, match=f"{DEFAULT_MAX_PAGES} pages"):
        client.search_for_studies(page_size=1)
    assert len(server.requests) == DEFAULT_MAX_PAGES


def test_the_cap_is_also_a_parameter_and_a_search_within_it_is_whole(monkeypatch):
    monkeypatch.setenv(MAX_PAGES_ENV, "2")
    pages = {0: 10, 10: 10, 20: 3}

    def three_pages(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        return httpx.Response(200, json=[qido_match(sop=f"1.2.3.{offset + i}") for i in range(pages[offset])])

    client, server = make_client(three_pages)
    assert len(client.search_for_studies(page_size=10, max_pages=3)) == 23
    assert len(server.requests) == 3
    with pytest.raises(ProtocolError, match="2 pages"):
        client.search_for_studies(page_size=10)


def test_short_pages_flagged_with_warning_299_forever_are_stopped(monkeypatch):
    monkeypatch.setenv(MAX_PAGES_ENV, "5")

    def short_but_more(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        return httpx.Response(200, json=[qido_match(sop=f"1.2.3.{offset}")], headers={"Warning": "299 more"})

    client, server = make_client(short_but_more)
    with pytest.raises(ProtocolError, match="5 pages"):
        client.search_for_series(STUDY, page_size=10)
    assert len(server.requests) == 5


def test_a_server_with_more_results_forever_is_stopped_at_the_size_cap(monkeypatch):
    """Pages far below the page cap, each under the per-answer cap, still cannot add up past the search's bytes."""
    monkeypatch.delenv(MAX_PAGES_ENV, raising=False)
    three_pages = sum(
        len(_fresh_matches(httpx.Request("GET", f"https://x/studies?limit=10&offset={offset}")).content)
        for offset in (0, 10, 20)
    )
    monkeypatch.setenv(MAX_BYTES_ENV, str(three_pages))
    client, server = make_client(_fresh_matches)
    with pytest.raises(AnswerTooLargeError) as caught:
        client.search_for_studies(page_size=10)
    assert len(server.requests) == 4, "the fourth page passes the cap: no fifth is asked"
    message = str(caught.value)
    assert MAX_BYTES_ENV in message and f"{three_pages} bytes" in message and "4 pages" in message


def test_a_search_within_the_size_cap_is_whole(monkeypatch):
    pages = {0: 10, 10: 10, 20: 3}

    def three_pages(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params.get("offset", "0"))
        return httpx.Response(200, json=[qido_match(sop=f"1.2.3.{offset + i}") for i in range(pages[offset])])

    total = sum(len(three_pages(httpx.Request("GET", f"https://x/studies?offset={o}")).content) for o in pages)
    monkeypatch.setenv(MAX_BYTES_ENV, str(total))
    client, _ = make_client(three_pages)
    assert len(client.search_for_studies(page_size=10)) == 23
    monkeypatch.setenv(MAX_BYTES_ENV, str(total - 1))
    with pytest.raises(AnswerTooLargeError, match=MAX_BYTES_ENV):
        client.search_for_studies(page_size=10)


@pytest.mark.parametrize(
    ("pages_served", "requests_made"),
    [
        ((0,), 2),  # the same page again: the server ignores offset
        ((0, 1), 3),  # A, B, A: the server went back to an earlier page
    ],
)
def test_a_page_sent_before_stops_the_search(pages_served, requests_made):
    served = iter(range(10_000))

    def repeating(request: httpx.Request) -> httpx.Response:
        page = pages_served[next(served) % len(pages_served)]
        return httpx.Response(200, json=[qido_match(sop=f"1.2.3.{page}.{i}") for i in range(4)])

    client, server = make_client(repeating)
    with pytest.raises(ProtocolError, match="same match as an earlier page"):
        client.search_for_studies(page_size=4)
    assert len(server.requests) == requests_made


@pytest.mark.parametrize(
    ("setting", "bad"),
    [(MAX_PAGES_ENV, bad) for bad in ("0", "-3", "many", "1.5")] + [(MAX_BYTES_ENV, bad) for bad in ("0", "-1", "lots", "2.5")],
)
def test_a_bad_paging_cap_setting_is_refused_before_any_request(setting, bad, monkeypatch):
    monkeypatch.setenv(setting, bad)
    client, server = make_client(_fresh_matches)
    with pytest.raises(ValidationError, match=setting):
        client.search_for_studies()
    assert server.requests == []


def test_a_bad_page_cap_parameter_is_refused():
    client, server = make_client(_fresh_matches)
    with pytest.raises(ValidationError, match="max_pages"):
        client.search_for_studies(max_pages=0)
    assert server.requests == []


class Chunked(httpx.SyncByteStream):
    """A body handed over 4 KiB at a time, as a network would, whatever its announced length."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), 4096):
            yield self.body[start : start + 4096]


def test_a_wado_body_longer_than_its_content_length_is_not_written_on(small_study, tmp_path):
    body, content_type = wado_body(small_study)

    def too_long(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body) // 2)}
        return httpx.Response(200, headers=headers, stream=Chunked(body))

    client, server = make_client(too_long)
    destination = tmp_path / "out"
    with pytest.raises(ProtocolError, match=f"past its announced Content-Length of {len(body) // 2} bytes") as caught:
        client.retrieve_study(STUDY, destination)
    assert caught.value.url is not None and len(server.requests) == 1
    assert sum(p.stat().st_size for p in destination.iterdir()) <= len(body) // 2


class EndlessPartServer:
    """Answers every request with a WADO part that never ends.

    The part says it is ``announced`` bytes long (``None``: it says nothing);
    with ``chunked`` the answer comes in chunked transfer encoding, else it
    announces no length at all (as Orthanc does). Stops sending when the
    client hangs up, or after ``limit`` bytes (so a client that keeps reading
    fails the test instead of hanging it).
    """

    def __init__(self, announced: int | None, limit: int = 256 * 1024 * 1024, *, chunked: bool = False) -> None:
        self.announced = announced
        self.limit = limit
        self.chunked = chunked
        self.requests = 0
        self.sent = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"http://127.0.0.1:{self._listener.getsockname()[1]}/dicomweb"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                self.requests += 1
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = connection.recv(4096)
            if not chunk:
                return
            request += chunk
        head = (
            b'HTTP/1.1 200 OK\r\nContent-Type: multipart/related; type="application/dicom"; boundary=edge\r\n'
            + (b"Transfer-Encoding: chunked\r\n" if self.chunked else b"")
            + b"Connection: close\r\n\r\n"
        )
        part_head = b"--edge\r\nContent-Type: application/dicom\r\n" + (
            b"Content-Length: %d\r\n\r\n" % self.announced if self.announced is not None else b"\r\n"
        )
        try:
            connection.sendall(head)
            for chunk in itertools.chain([part_head], self._endless()):
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if self.chunked else chunk)
        except OSError:
            return

    def _endless(self) -> Iterator[bytes]:
        chunk = b"\0" * 65536
        while self.sent < self.limit:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self._listener.close()


def test_a_wado_part_that_goes_on_past_its_announced_length_stops_the_download(tmp_path):
    server = EndlessPartServer(announced=1000)
    try:
        with PostDicomClient(server.address, "user", "pw", dialect="standard") as client:
            destination = tmp_path / "out"
            with pytest.raises(ProtocolError, match="past its announced Content-Length of 1000 bytes") as caught:
                client.retrieve_study(STUDY, destination)
    finally:
        server.close()
    assert server.requests == 1  # a server that lies is not asked again
    assert server.sent < server.limit
    assert "127.0.0.1" in str(caught.value)
    assert list(destination.iterdir()) == []  # the unfinished part file is removed


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "until-close"])
def test_a_wado_answer_without_any_length_that_never_ends_stops_at_the_download_size_cap(
    chunked, tmp_path, monkeypatch
):
    """No Content-Length anywhere: only the size cap, not the hour-long download deadline, ends it."""
    monkeypatch.setenv(DOWNLOAD_BYTES_SETTING, str(1024 * 1024))
    server = EndlessPartServer(announced=None, chunked=chunked)
    try:
        with PostDicomClient(server.address, "user", "pw", dialect="standard") as client:
            destination = tmp_path / "out"
            with pytest.raises(AnswerTooLargeError) as caught:
                client.retrieve_study(STUDY, destination)
    finally:
        server.close()
    message = str(caught.value)
    assert DOWNLOAD_BYTES_SETTING in message and "1048576 bytes" in message and "127.0.0.1" in message
    assert server.requests == 1, "a body over the cap is not asked again"
    assert server.sent < server.limit
    assert list(destination.iterdir()) == []  # the unfinished part file is removed


def test_a_wado_answer_announcing_more_than_the_download_size_cap_is_refused_before_reading(small_study, tmp_path,
                                                                                          monkeypatch):
    body, content_type = wado_body(small_study)
    monkeypatch.setenv(DOWNLOAD_BYTES_SETTING, str(len(body) - 1))
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    client, _ = make_client(lambda request: httpx.Response(200, headers=headers, stream=Chunked(body)))
    with pytest.raises(AnswerTooLargeError, match=f"announces {len(body)} bytes"):
        client.retrieve_study(STUDY, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.setenv(DOWNLOAD_BYTES_SETTING, str(len(body)))
    client, _ = make_client(lambda request: httpx.Response(200, headers={"Content-Type": content_type}, content=body))
    assert len(client.retrieve_study(STUDY, tmp_path / "out")) == len(small_study)


@pytest.mark.parametrize("bad", ["0", "-5", "huge", "1e3"])
def test_a_bad_download_size_cap_setting_is_refused(bad, monkeypatch):
    monkeypatch.setenv(DOWNLOAD_BYTES_SETTING, bad)
    with pytest.raises(ValidationError, match=DOWNLOAD_BYTES_SETTING):
        make_client(_fresh_matches)


# --------------------------------------------------------------------------- answers that cannot be read


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
"""200 kB a server can send: json.loads gives up on it with a RecursionError, not a ValueError."""


def _json(body: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(200, headers={"Content-Type": "application/dicom+json", **headers}, stream=Chunked(body))


@pytest.mark.parametrize("body", [DEEP_JSON, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_json_nested_too_deeply_is_an_answer_that_cannot_be_read(body):
    client, _ = make_client(lambda request: _json(body))
    with pytest.raises(ProtocolError, match="nested too deeply"):
        client.search_for_studies({"PatientID": "MRN-4711"})
    with pytest.raises(ProtocolError, match="cannot be read"):
        client.get_patient_order_list(institution_uuid_list=[])


def test_a_qido_array_of_anything_but_objects_is_refused():
    client, _ = make_client(lambda request: httpx.Response(200, json=[1, "two", None]))
    with pytest.raises(ProtocolError, match="array of something else than DICOM JSON objects"):
        client.search_for_studies()


@pytest.mark.parametrize(
    ("body", "why", "shape"),
    [
        (b'{"Matches": [{"PatientName": "Mu\xc3\xb1oz^Jos\xc3\xa9", "PatientID": "MRN-4711"}]}', "not a JSON array",
         '{"Matches": [{"PatientName": "\u2026", "PatientID": "\u2026"}]}'),
        (b"<html>Patient MRN-4711 Mu\xc3\xb1oz 1234567 https://pacs.example/s/x</html>", "not JSON",
         "<html>Patient MRN-<digits> Mu\u00f1oz <digits> <url>"),
    ],
)
def test_a_qido_answer_that_cannot_be_read_shows_its_first_bytes_with_values_masked(body, why, shape):
    """Enough of the answer to see its shape; names and identifiers masked, never quoted."""
    client, _ = make_client(lambda request: _json(body))
    with pytest.raises(ProtocolError) as raised:
        client.search_for_studies()
    message = str(raised.value)
    assert why in message and shape in message, message
    assert "MRN-4711" not in message and "Jos" not in message


BAD_GZIP = {"Content-Encoding": "gzip"}


@pytest.mark.parametrize("call", ["qido", "custom endpoint", "custom endpoint streamed", "wado"])
def test_a_body_its_content_encoding_does_not_describe_is_a_protocol_error(call, small_study, tmp_path):
    """A proxy that labels a plain body gzip: a clear error naming the coding, not httpx's DecodingError, once."""
    if call == "wado":
        body, content_type = wado_body(small_study)
        respond = lambda request: _json(body, **{**BAD_GZIP, "Content-Type": content_type})  # noqa: E731
    else:
        respond = lambda request: _json(b'[{"00100020": {"vr": "LO", "Value": ["MRN-4711"]}}]', **BAD_GZIP)  # noqa: E731
    client, server = make_client(respond, attempts=3)
    calls = {
        "qido": lambda: client.search_for_studies({"PatientID": "MRN-4711"}),
        "custom endpoint": lambda: client.get_patient_order_list(institution_uuid_list=[]),
        "custom endpoint streamed": lambda: list(client.iter_patient_order_list(institution_uuid_list=[])),
        "wado": lambda: client.retrieve_study(STUDY, tmp_path / "out"),
    }
    with pytest.raises(ProtocolError, match=r"cannot be decoded as its Content-Encoding \(gzip\) says") as caught:
        calls[call]()
    assert len(server.requests) == 1
    assert caught.value.url is not None and "MRN-4711" not in str(caught.value)
