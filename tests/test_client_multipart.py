"""The streaming multipart writer and reader: round trips under adversarial input."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from postdicom.errors import ProtocolError
from postdicom.multipart import (
    CHUNK_SIZE,
    MultipartWriter,
    TruncatedMultipartError,
    multipart_boundary,
    read_parts,
    split_to_files,
)

# RFC 2046 bchars; a space may occur but not end the boundary.
BCHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
boundaries = st.text(alphabet=BCHARS, min_size=1, max_size=70).filter(lambda b: not b.endswith(" "))
# Payloads biased towards what confuses a splitter: CR, LF, dashes.
payloads = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"-", b"--", b"x", b"\x00"]), max_size=60
).map(b"".join)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    boundary=boundaries,
    parts=st.lists(payloads, max_size=12),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
    preamble=st.sampled_from([b"", b"preamble text\r\n", b"\r\n", b"x--not-a-boundary\r\n"]),
    epilogue=st.sampled_from([b"", b"epilogue\r\n"]),
)
def test_round_trip_any_split(boundary, parts, cuts, preamble, epilogue):
    delimiter = b"\r\n--" + boundary.encode()
    for payload in parts:
        assume(delimiter not in b"\r\n" + payload + b"\r\n")
    assume(delimiter not in b"\r\n" + preamble)
    writer = MultipartWriter(parts, boundary=boundary)
    body = b"".join(writer())
    assert len(body) == writer.content_length
    wire = preamble + body + epilogue
    got = read_parts(split_at(wire, cuts), writer.content_type)
    assert [data for _, data in got] == parts
    assert all(headers["content-type"] == "application/dicom" for headers, _ in got)
    assert [int(headers["content-length"]) for headers, _ in got] == [len(p) for p in parts]


@settings(max_examples=60, deadline=None)
@given(boundary=boundaries, parts=st.lists(payloads, min_size=1, max_size=4))
def test_one_byte_chunks(boundary, parts):
    delimiter = b"\r\n--" + boundary.encode()
    for payload in parts:
        assume(delimiter not in b"\r\n" + payload + b"\r\n")
    writer = MultipartWriter(parts, boundary=boundary)
    body = b"".join(writer())
    got = read_parts([body[i : i + 1] for i in range(len(body))], writer.content_type)
    assert [data for _, data in got] == parts


def test_quoted_boundary_with_spaces_is_read_from_content_type():
    content_type = 'multipart/related; type="application/dicom"; boundary="with spaces; and semicolon"'
    assert multipart_boundary(content_type) == "with spaces; and semicolon"
    body = b"--with spaces; and semicolon\r\nContent-Type: application/dicom\r\n\r\nabc\r\n--with spaces; and semicolon--"
    assert read_parts(body, content_type) == [({"content-type": "application/dicom"}, b"abc")]


def test_many_parts_and_empty_parts():
    parts = [b""] * 50 + [os.urandom(10) for _ in range(200)]
    writer = MultipartWriter(parts)
    assert [data for _, data in read_parts(b"".join(writer()), writer.content_type)] == parts


def test_not_multipart_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        multipart_boundary("application/dicom+json")
    with pytest.raises(ProtocolError):
        read_parts(b"--b\r\nbad header line without colon\r\n\r\n", "multipart/related; boundary=b")


def test_truncated_answer_is_a_transport_error_and_removes_the_unfinished_part(tmp_path):
    writer = MultipartWriter([b"a" * 1000, b"b" * 1000], boundary="bnd")
    body = b"".join(writer())
    finished = []
    with pytest.raises(TruncatedMultipartError):
        for part in split_to_files([body[:1500]], writer.content_type, tmp_path):
            finished.append(part.path)
    assert [p.read_bytes() for p in finished] == [b"a" * 1000]
    assert list(tmp_path.iterdir()) == finished  # the unfinished second part was removed


def test_split_to_files_writes_each_part_to_its_own_file(tmp_path):
    parts = [os.urandom(100_000), b"", b"\r\n--bnd\r\n" * 3]
    writer = MultipartWriter(parts, boundary="bnd-x")
    body = b"".join(writer())
    chunks = [body[i : i + 777] for i in range(0, len(body), 777)]
    received = list(split_to_files(chunks, writer.content_type, tmp_path))
    assert [p.path.read_bytes() for p in received] == parts
    assert [p.size for p in received] == [len(p) for p in parts]
    assert all(p.path.parent == tmp_path for p in received)


def test_file_body_is_recreated_identically_and_streams_in_bounded_chunks(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * CHUNK_SIZE + 17))
    small = tmp_path / "small.bin"
    small.write_bytes(b"tiny")
    writer = MultipartWriter([big, small])
    first = list(writer())
    second = list(writer())
    assert b"".join(first) == b"".join(second)
    assert len(b"".join(first)) == writer.content_length
    assert max(len(c) for c in first) <= CHUNK_SIZE
    parsed = read_parts(b"".join(first), writer.content_type)
    assert [data for _, data in parsed] == [big.read_bytes(), b"tiny"]


def test_file_changing_size_is_refused_rather_than_sent_short(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    writer = MultipartWriter([path])
    path.write_bytes(b"x" * 10)
    with pytest.raises(OSError, match="changed size"):
        b"".join(writer())
