"""WADO parts are named from the header bytes kept in memory; pydicom reads the file only when those cannot tell.

The quick reading must give exactly what pydicom gives, or say it cannot.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from postdicom.part10 import sop_instance_uid_of, uids_from_head
from postdicom.multipart import HEAD_BYTES, MultipartWriter, ReceivedPart, read_parts, split_to_files
from postdicom.synthetic import StudySpec, make_instance

SPEC = StudySpec("Head^Hanna", "HEAD-1", seed="wado-header")


def _dataset(syntax: str | None = None) -> pydicom.Dataset:
    ds = make_instance(SPEC, study_uid=SPEC.study_uid(), series_uid="1.2.3.4", series_number=1,
                       instance_number=1, sop_uid="1.2.826.0.1.3680043.10.1437.77.1")
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _encoded(ds: pydicom.Dataset, *, preamble: bool = True) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=preamble, little_endian=ds.file_meta.TransferSyntaxUID != ExplicitVRBigEndian,
               implicit_vr=ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian)
    return buffer.getvalue()


@pytest.mark.parametrize("syntax", [None, ImplicitVRLittleEndian])
def test_little_endian_headers_give_the_uids_pydicom_reads(syntax):
    data = _encoded(_dataset(syntax))
    read = pydicom.dcmread(io.BytesIO(data))
    assert uids_from_head(data[:HEAD_BYTES]) == (read.SOPInstanceUID, read.file_meta.MediaStorageSOPInstanceUID)


def test_a_data_set_without_sop_instance_uid_gives_only_the_meta_uid():
    ds = _dataset()
    del ds.SOPInstanceUID
    assert uids_from_head(_encoded(ds)[:HEAD_BYTES]) == ("", "1.2.826.0.1.3680043.10.1437.77.1")


def test_uid_padding_is_removed_as_pydicom_does():
    ds = _dataset()
    ds.SOPInstanceUID = "1.2.3.456"  # odd length: written with a NUL pad
    data = _encoded(ds)
    assert b"1.2.3.456\x00" in data
    assert uids_from_head(data[:HEAD_BYTES])[0] == "1.2.3.456"


@pytest.mark.parametrize(
    "make",
    [
        lambda: _encoded(_dataset(), preamble=False)[:HEAD_BYTES],  # no preamble: pydicom's job
        lambda: _encoded(_dataset())[:200],  # cut inside the file meta
        lambda: _encoded(_dataset())[:400],  # cut before the SOP Instance UID
        lambda: b"DICM" * 100,
        lambda: b"",
    ],
)
def test_heads_that_cannot_tell_say_so(make):
    assert uids_from_head(make()) is None


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_big_endian_and_deflated_data_sets_are_left_to_pydicom(syntax, tmp_path):
    data = _encoded(_dataset(syntax))
    path = tmp_path / "part.tmp"
    path.write_bytes(data)
    part = ReceivedPart(headers={}, sink=io.BytesIO(), size=len(data), path=path, head=bytearray(data[:HEAD_BYTES]))
    assert uids_from_head(bytes(part.head)) is None
    assert sop_instance_uid_of(bytes(part.head), part.path) == "1.2.826.0.1.3680043.10.1437.77.1"


def test_a_header_longer_than_the_head_is_read_from_the_file(tmp_path):
    ds = _dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY"] + ["X" * 14] * 1000  # 15 KB before the SOP Instance UID
    data = _encoded(ds)
    path = tmp_path / "part.tmp"
    path.write_bytes(data)
    part = ReceivedPart(headers={}, sink=io.BytesIO(), size=len(data), path=path, head=bytearray(data[:HEAD_BYTES]))
    assert uids_from_head(bytes(part.head)) is None
    assert sop_instance_uid_of(bytes(part.head), part.path) == ds.SOPInstanceUID


def test_each_part_keeps_its_first_bytes_whatever_the_chunking(tmp_path):
    parts = [bytes(range(256)) * 100, b"short", b""]
    writer = MultipartWriter(parts, boundary="bnd")
    body = b"".join(writer())
    for size in (1, 7, 4096, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        (tmp_path / str(size)).mkdir()
        received = list(split_to_files(chunks, writer.content_type, tmp_path / str(size)))
        assert [bytes(p.head) for p in received] == [p[:HEAD_BYTES] for p in parts]
        assert [Path(p.path).read_bytes() for p in received] == parts


def test_in_memory_reading_is_unchanged_by_the_head():
    writer = MultipartWriter([b"a" * (HEAD_BYTES + 10), b"b"], boundary="bnd")
    assert [data for _, data in read_parts(b"".join(writer()), writer.content_type)] == [b"a" * (HEAD_BYTES + 10), b"b"]
