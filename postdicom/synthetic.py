"""Realistic synthetic DICOM studies, made with pydicom.

Nobody here may use real patient data, yet the tests, the demo and the
benchmarks need studies that look like what a hospital hands over: several
series, UTF-8 names (``Muñoz^José``, Japanese, Greek), CT/MR/US, files without
a suffix, and a few broken files. Everything is generated, nothing is shipped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
}
UID_ROOT = "1.2.826.0.1.3680043.10.1437."  # pydicom-style root for generated UIDs


def _uid(seed: str | None) -> str:
    """A UID, deterministic when a seed is given (so reruns make the same study)."""
    if seed is None:
        return generate_uid(prefix=UID_ROOT)
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[seed])


@dataclass
class StudySpec:
    """What one synthetic study looks like."""

    patient_name: str
    patient_id: str
    modality: str = "CT"
    series_count: int = 1
    instances_per_series: int = 3
    rows: int = 64
    columns: int = 64
    study_date: dt.date = field(default_factory=lambda: dt.date.today() - dt.timedelta(days=1))
    study_time: dt.time = dt.time(9, 30, 0)
    birth_date: dt.date = dt.date(1970, 1, 1)
    sex: str = "O"
    accession_number: str = ""
    study_description: str = ""
    institution_name: str = "Hospital Sandbox"
    body_part: str = "CHEST"
    other_patient_id: str = ""
    seed: str | None = None
    """Makes UIDs deterministic: the same seed gives the same study."""

    def study_uid(self) -> str:
        return _uid(None if self.seed is None else f"{self.seed}/study")


def make_instance(
    spec: StudySpec,
    *,
    study_uid: str,
    series_uid: str,
    series_number: int,
    instance_number: int,
    sop_uid: str,
) -> Dataset:
    """One instance of ``spec`` as a pydicom ``Dataset`` with file meta."""
    modality = spec.modality.upper()
    sop_class = SOP_CLASS.get(modality, SOP_CLASS["CT"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(UID_ROOT + "1")

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    if spec.other_patient_id:
        ds.OtherPatientIDs = spec.other_patient_id
    ds.PatientBirthDate = spec.birth_date.strftime("%Y%m%d")
    ds.PatientSex = spec.sex
    ds.StudyDate = spec.study_date.strftime("%Y%m%d")
    ds.StudyTime = spec.study_time.strftime("%H%M%S")
    ds.SeriesDate = ds.StudyDate
    ds.AccessionNumber = spec.accession_number
    ds.StudyDescription = spec.study_description or f"{modality} {spec.body_part.title()}"
    ds.SeriesDescription = f"{modality} series {series_number}"
    ds.StudyID = "1"
    ds.Modality = modality
    ds.Manufacturer = "postdicom-flows synthetic"
    ds.InstitutionName = spec.institution_name
    ds.BodyPartExamined = spec.body_part
    ds.ReferringPhysicianName = "Referrer^Rita"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [0.0, 0.0, float(instance_number) * 2.5]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = "2.5"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = _pixels(sop_uid, spec.rows * spec.columns * 2)
    return ds


def _pixels(seed: str, size: int) -> bytes:
    """Pseudo-random pixel bytes (incompressible enough to be honest in benchmarks)."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 8
    return bytes(out[:size])


def write_study(directory: str | os.PathLike, spec: StudySpec, *, suffix: str = ".dcm") -> list[Path]:
    """Write every instance of ``spec`` under ``directory/<PatientID>/<series>/``.

    ``suffix`` may be ``""`` (modalities often write files without one).
    Returns the paths written.
    """
    root = Path(directory) / _safe(spec.patient_id)
    study_uid = spec.study_uid()
    paths: list[Path] = []
    for s in range(1, spec.series_count + 1):
        series_uid = _uid(None if spec.seed is None else f"{spec.seed}/series/{s}")
        folder = root / f"series{s:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, spec.instances_per_series + 1):
            sop_uid = _uid(None if spec.seed is None else f"{spec.seed}/sop/{s}/{i}")
            ds = make_instance(
                spec,
                study_uid=study_uid,
                series_uid=series_uid,
                series_number=s,
                instance_number=i,
                sop_uid=sop_uid,
            )
            path = folder / f"IM{s:02d}{i:04d}{suffix}"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "patient"


def size_for_bytes(target_bytes: int) -> tuple[int, int]:
    """Rows and columns that make an instance of about ``target_bytes`` (16-bit pixels)."""
    side = max(8, int((max(target_bytes - 2048, 128) / 2) ** 0.5))
    return side, side


def write_odd_files(directory: str | os.PathLike) -> dict[str, Path]:
    """Files a real disk also holds: not DICOM, truncated, empty, a DICOMDIR-less README.

    Returns ``{kind: path}`` with the kinds ``text``, ``empty``, ``truncated``,
    ``binary`` and ``fake_dcm`` (a ``.dcm`` name with no DICOM inside).
    """
    root = Path(directory) / "odd"
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "text": root / "README.txt",
        "empty": root / "empty.dcm",
        "binary": root / "thumbs.db",
        "fake_dcm": root / "not-really.dcm",
        "truncated": root / "truncated.dcm",
    }
    files["text"].write_text("Disk exported by the modality. Keep.\n", encoding="utf-8")
    files["empty"].write_bytes(b"")
    files["binary"].write_bytes(os.urandom(4096))
    files["fake_dcm"].write_bytes(b"%PDF-1.4 this is a report, not an image\n" * 20)
    donor = StudySpec(patient_name="Truncated^Tom", patient_id="TRUNC-1", seed="odd-truncated")
    ds = make_instance(
        donor,
        study_uid=donor.study_uid(),
        series_uid=_uid("odd-truncated/series"),
        series_number=1,
        instance_number=1,
        sop_uid=_uid("odd-truncated/sop"),
    )
    full = root / "_full.tmp"
    ds.save_as(full, enforce_file_format=True)
    data = full.read_bytes()
    full.unlink()
    files["truncated"].write_bytes(data[: len(data) // 3])
    return files


DEMO_PATIENTS: tuple[StudySpec, ...] = (
    StudySpec("Muñoz^José", "HSB-0001", "CT", series_count=2, instances_per_series=4, sex="M",
              birth_date=dt.date(1961, 3, 14), accession_number="ACC-1001", body_part="CHEST",
              study_description="TC Tórax con contraste", seed="demo-munoz"),
    StudySpec("Núñez^María José", "HSB-0002", "MR", series_count=2, instances_per_series=3, sex="F",
              birth_date=dt.date(1984, 7, 2), accession_number="ACC-1002", body_part="HEAD",
              study_description="RM Cerebro", seed="demo-nunez"),
    StudySpec("山田^太郎=ヤマダ^タロウ", "HSB-0003", "US", series_count=1, instances_per_series=3, sex="M",
              birth_date=dt.date(1990, 11, 5), accession_number="ACC-1003", body_part="ABDOMEN",
              study_description="Abdominal ultrasound", seed="demo-yamada"),
    StudySpec("Παπαδόπουλος^Νίκος", "HSB-0004", "CT", series_count=1, instances_per_series=5, sex="M",
              birth_date=dt.date(1955, 1, 20), accession_number="ACC-1004", body_part="ABDOMEN",
              study_description="CT Abdomen", seed="demo-papadopoulos"),
    StudySpec("O'Brien^Siobhán", "HSB-0005", "MR", series_count=1, instances_per_series=4, sex="F",
              birth_date=dt.date(1977, 9, 9), accession_number="ACC-1005", body_part="KNEE",
              study_description="MR Knee", seed="demo-obrien"),
)


def write_demo_disk(directory: str | os.PathLike, specs: Iterable[StudySpec] = DEMO_PATIENTS) -> list[Path]:
    """A disk like one a hospital hands over: the demo patients, some files without suffix, odd files."""
    written: list[Path] = []
    for n, spec in enumerate(specs):
        written += write_study(directory, spec, suffix="" if n % 2 else ".dcm")
    written += list(write_odd_files(directory).values())
    return written
