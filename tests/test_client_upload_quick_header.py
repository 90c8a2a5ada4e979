"""The quick header reader of uploads gives pydicom's verdict on every file, or leaves the file to pydicom.

``inspect_file`` reads plain Part 10 files without pydicom (a tenth of the
cost); whatever it answers must be exactly what the pydicom reading answers.
"""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

import postdicom.part10
from postdicom.synthetic import StudySpec, make_instance, write_demo_disk
from postdicom.part10 import inspect_file, quick_header

SPEC = StudySpec("Quick^Quinn", "QUICK-1", seed="quick-header")


def _encoded(syntax: str | None = None, *, sequence: str = "", preamble: bool = True) -> bytes:
    ds = make_instance(SPEC, study_uid=SPEC.study_uid(), series_uid="1.2.3.4.5", series_number=1,
                       instance_number=1, sop_uid="1.2.826.0.1.3680043.10.1437.88.1")
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    if sequence:
        item = Dataset()
        item.ReferencedSOPInstanceUID = "1.2.3"
        ds.ReferencedImageSequence = Sequence([item])
        ds["ReferencedImageSequence"].is_undefined_length = sequence == "undefined"
    buffer = io.BytesIO()
    big = ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    ds.save_as(buffer, enforce_file_format=preamble, little_endian=not big,
               implicit_vr=ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian)
    return buffer.getvalue()


def _pydicom_verdict(path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(postdicom.part10, "quick_header", lambda path, size: None)
        return inspect_file(path)


@pytest.mark.parametrize(("syntax", "sequence"), [(None, ""), (ImplicitVRLittleEndian, ""), (None, "defined")])
def test_plain_files_are_read_quickly_with_pydicoms_answer(syntax, sequence, tmp_path, monkeypatch):
    path = tmp_path / "plain.dcm"
    path.write_bytes(_encoded(syntax, sequence=sequence))
    assert quick_header(path, path.stat().st_size) is not None  # the quick path is the one taken
    assert inspect_file(path) == _pydicom_verdict(path, monkeypatch)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _encoded(ExplicitVRBigEndian),
        lambda: _encoded(sequence="undefined"),
        lambda: _encoded(preamble=False),
    ],
)
def test_files_it_cannot_read_are_left_to_pydicom(make, tmp_path, monkeypatch):
    path = tmp_path / "other.dcm"
    path.write_bytes(make())
    assert quick_header(path, path.stat().st_size) is None
    assert inspect_file(path) == _pydicom_verdict(path, monkeypatch)


@pytest.mark.parametrize("syntax", [None, ImplicitVRLittleEndian])
def test_a_file_cut_anywhere_gets_pydicoms_verdict(syntax, tmp_path, monkeypatch):
    data = _encoded(syntax)
    cuts = [*range(0, 1200, 7), *range(1200, len(data), 997), len(data) - 1]
    for cut in cuts:
        path = tmp_path / f"cut-{cut}.dcm"
        path.write_bytes(data[:cut])
        assert inspect_file(path) == _pydicom_verdict(path, monkeypatch), f"cut at {cut}"


def test_a_header_longer_than_one_read_is_followed(tmp_path, monkeypatch):
    ds = pydicom.dcmread(io.BytesIO(_encoded()))
    ds.ImageComments = "x" * 100_000  # 100 KB before the pixel data: the reader must seek on
    path = tmp_path / "long.dcm"
    ds.save_as(path, enforce_file_format=True)
    quick = quick_header(path, path.stat().st_size)
    assert quick is not None and quick.sop_instance_uid == ds.SOPInstanceUID
    assert inspect_file(path) == _pydicom_verdict(path, monkeypatch)


def test_malformed_uids_are_left_to_pydicom(tmp_path):
    data = _encoded()
    bad = data.replace(b"1.2.826.0.1.3680043.10.1437.88.1", b"1.2.826.0.1.3680043.10.1437.88.X")
    path = tmp_path / "bad.dcm"
    path.write_bytes(bad)
    assert quick_header(path, len(bad)) is None


def test_a_disk_of_real_looking_files_gets_the_same_verdicts(tmp_path, monkeypatch):
    for path in write_demo_disk(tmp_path):
        assert inspect_file(path) == _pydicom_verdict(path, monkeypatch), path.name


@pytest.mark.parametrize(
    ("charset", "patient_id", "read"),
    [
        (None, "QUICK-1", "QUICK-1"),  # odd length: written with a padding space
        (None, "  QUICK-22  ", "QUICK-22"),
        ("ISO_IR 100", "Müller-7", None),  # not plain ASCII: the server's own answer decides
        (None, "", None),
        (None, None, None),  # no PatientID element at all
    ],
)
def test_the_patient_id_is_read_on_both_paths_and_only_when_plain(charset, patient_id, read, tmp_path, monkeypatch):
    ds = pydicom.dcmread(io.BytesIO(_encoded()))
    if charset:
        ds.SpecificCharacterSet = charset
    if patient_id is None:
        del ds.PatientID
    else:
        ds.PatientID = patient_id
    path = tmp_path / "patient.dcm"
    ds.save_as(path, enforce_file_format=True)
    quick = quick_header(path, path.stat().st_size)
    assert quick is not None and quick.patient_id == read
    assert _pydicom_verdict(path, monkeypatch) == quick
    assert not patient_id or patient_id.strip() not in repr(quick), "no PatientID in a header's repr"
