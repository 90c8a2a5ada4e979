"""``error_text``: the short error a flow's report carries still names what failed, and nothing more."""

from __future__ import annotations

from flows.reporting import CUT_MARK, ERROR_TEXT_CHARS, error_text
from postdicom.errors import ProtocolError, ServerError

ENDPOINT = "https://hospital-a.postdicom.com/dicomweb/createsharelink"


def test_a_long_server_message_does_not_hide_the_endpoint():
    reason = "Object reference not set to an instance of an object. " * 8
    error = ServerError("the server failed", status=500, reason=reason, method="POST", url=ENDPOINT)
    assert str(error).endswith(f"POST {ENDPOINT}") and len(str(error)) > ERROR_TEXT_CHARS
    text = error_text(error)
    assert len(text) <= ERROR_TEXT_CHARS
    assert text.startswith(f"ServerError on POST {ENDPOINT}: the server failed | HTTP 500 | server says: Object")
    assert CUT_MARK in text and text.endswith(reason.strip()[-40:])


def test_a_long_message_of_any_error_keeps_its_start_and_its_end():
    error = RuntimeError("start " + "x" * 1000 + " the end that names it")
    text = error_text(error)
    assert len(text) <= ERROR_TEXT_CHARS
    assert text.startswith("RuntimeError: start x") and text.endswith("x the end that names it")


def test_a_short_error_is_left_whole():
    assert error_text(ValueError("boom")) == "ValueError: boom"
    assert error_text(ValueError()) == "ValueError"
    error = ProtocolError("not JSON", status=200, method="GET", url="https://pacs.example.org/dicomweb/studies")
    assert error_text(error) == "ProtocolError on GET https://pacs.example.org/dicomweb/studies: not JSON | HTTP 200"


def test_query_values_stay_masked_when_the_request_moves_to_the_front():
    url = "https://pacs.example.org/dicomweb/studies?PatientID=MRN-4711&PatientName=DOE%5EJANE"
    reason = "no study for PatientID MRN-4711, DOE^JANE " + "and more text " * 30
    text = error_text(ServerError("search failed", status=500, reason=reason, method="GET", url=url))
    assert "MRN-4711" not in text and "DOE" not in text and "JANE" not in text
    assert "GET https://pacs.example.org/dicomweb/studies?PatientID=...&PatientName=..." in text
