"""The client against real servers: Orthanc (``standard``) and the sandbox (``postdicom``).

Every test makes its own studies with unique seeds, so tests never see each
other's data on the shared session server.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pydicom
import pytest

import postdicom.http
from postdicom import AuthenticationError, TransportError, ValidationError
from postdicom.synthetic import StudySpec, write_odd_files, write_study
from deployments.processes import free_port


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sop_uid(path: Path) -> str:
    return pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID


def uid_values(matches, tag):
    return {m[tag]["Value"][0] for m in matches}


@pytest.fixture
def client(dicomweb_server):
    with dicomweb_server.client() as c:
        yield c


def test_upload_folder_accounts_for_every_file_and_a_rerun_is_already_stored(client, tmp_path):
    disk = tmp_path / "disk"
    with_suffix = write_study(disk, StudySpec("Alpha^Ann", unique("UP"), "CT", 2, 2, seed=unique("s")))
    without_suffix = write_study(disk / "deep" / "er", StudySpec("Beta^Bob", unique("UP"), "MR", 1, 3, seed=unique("s")), suffix="")
    odd = write_odd_files(disk)
    dicom = with_suffix + without_suffix
    every_file = {p for p in disk.rglob("*") if p.is_file()}

    report = client.upload_folder(disk, batch_size=3, concurrency=2)

    assert {e.path for e in report.files} == every_file
    assert len(report.files) == len(every_file)
    assert {e.path for e in report.stored} == set(dicom)
    assert {e.path for e in report.not_dicom} == set(odd.values())
    assert report.counts == {"stored": 7, "already_stored": 0, "rejected": 0, "not_dicom": 5, "failed": 0}
    assert next(e for e in report.files if e.path == odd["truncated"]).reason.startswith("truncated/unreadable DICOM")
    on_server = set()
    for spec_files in (with_suffix, without_suffix):
        study = pydicom.dcmread(spec_files[0], stop_before_pixels=True).StudyInstanceUID
        on_server |= uid_values(client.search_for_instances(study, fields=["SOPInstanceUID"]), "00080018")
    assert on_server >= {sop_uid(p) for p in dicom}

    again = client.upload_folder(disk)
    assert again.counts == {"stored": 0, "already_stored": 7, "rejected": 0, "not_dicom": 5, "failed": 0}
    assert {e.path for e in again.already_stored} == set(dicom)


def test_upload_sends_only_what_is_missing(client, tmp_path):
    disk = tmp_path / "disk"
    files = write_study(disk, StudySpec("Gamma^Gil", unique("MISS"), "CT", 1, 4, seed=unique("s")))
    result = client.store_instances(files[:2])
    assert result.counts["stored"] == 2
    report = client.upload_folder(disk)
    assert {e.path for e in report.already_stored} == set(files[:2])
    assert {e.path for e in report.stored} == set(files[2:])


@pytest.fixture
def searchable(client, tmp_path):
    """Two studies of one patient (unique ID and family name) on the server."""
    family = unique("Zeta").replace("-", "")
    patient = unique("SRCH")
    specs = [
        StudySpec(f"{family}^Zoe", patient, "CT", 2, 2, seed=unique("s"), accession_number=unique("ACC")),
        StudySpec(f"{family}^Zoe", patient, "MR", 1, 3, seed=unique("s"), accession_number=unique("ACC")),
    ]
    files = {spec.study_uid(): write_study(tmp_path / spec.modality, spec) for spec in specs}
    assert client.store_instances([p for group in files.values() for p in group]).counts["stored"] == 7
    return family, patient, specs, files


def test_the_three_documented_searches(client, searchable):
    family, patient, specs, files = searchable
    studies = client.qido_search(patient_id=patient)
    assert uid_values(studies, "0020000D") == set(files)
    first = specs[0].study_uid()
    series = client.qido_search(study_instance_uid=first)
    series_uids = {pydicom.dcmread(p).SeriesInstanceUID for p in files[first]}
    assert uid_values(series, "0020000E") == series_uids
    one_series = sorted(series_uids)[0]
    instances = client.qido_search(series_instance_uid=one_series)
    expected = {sop_uid(p) for p in files[first] if pydicom.dcmread(p).SeriesInstanceUID == one_series}
    assert uid_values(instances, "00080018") == expected


def test_attribute_filters_wildcards_and_paging(client, searchable):
    family, patient, specs, files = searchable
    assert uid_values(client.search_for_studies(PatientName=f"{family}*"), "0020000D") == set(files)
    assert uid_values(client.search_for_studies({"00100010": f"{family}^Zo?"}), "0020000D") == set(files)
    by_accession = client.search_for_studies(AccessionNumber=specs[1].accession_number)
    assert uid_values(by_accession, "0020000D") == {specs[1].study_uid()}
    assert client.search_for_studies(PatientID=patient, ModalitiesInStudy="US") == []
    paged = client.search_for_studies(PatientID=patient, page_size=1)
    assert len(paged) == 2 and uid_values(paged, "0020000D") == set(files)
    assert len(client.search_for_studies(PatientID=patient, limit=1)) == 1
    with_field = client.search_for_studies(PatientID=patient, fields=["StudyDescription"])
    assert all("00081030" in m for m in with_field)


def test_retrieve_study_series_and_instance_give_back_what_was_sent(client, searchable, tmp_path):
    _, _, specs, files = searchable
    study = specs[0].study_uid()
    sent = {sop_uid(p): p.read_bytes() for p in files[study]}

    got = client.retrieve_study(study, tmp_path / "study")
    assert {p.name for p in got} == {f"{uid}.dcm" for uid in sent}
    assert all(p.read_bytes() == sent[p.stem] for p in got)

    one = files[study][0]
    series_uid = pydicom.dcmread(one).SeriesInstanceUID
    got = client.retrieve_series(series_uid, tmp_path / "series")
    expected = {sop_uid(p) for p in files[study] if pydicom.dcmread(p).SeriesInstanceUID == series_uid}
    assert {p.stem for p in got} == expected
    assert all(p.read_bytes() == sent[p.stem] for p in got)

    got = client.retrieve_instance(sop_uid(one), tmp_path / "instance")
    assert [p.name for p in got] == [f"{sop_uid(one)}.dcm"]
    assert got[0].read_bytes() == one.read_bytes()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_wrong_password_is_an_authentication_error_with_the_servers_reason(dicomweb_server):
    raw = httpx.get(f"{dicomweb_server.web_address}/studies", auth=(dicomweb_server.username, "wrong-password"))
    with dicomweb_server.client(password="wrong-password") as client:
        with pytest.raises(AuthenticationError) as info:
            client.search_for_studies()
    assert info.value.status == raw.status_code
    assert info.value.reason == (raw.headers.get("X-Error-Reason") or raw.text.strip()[:300] or None)
    assert "wrong-password" not in str(info.value)


def test_unreachable_server_is_a_transport_error_after_the_retries(dicomweb_server, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(postdicom.http.time, "sleep", waits.append)
    address = f"http://127.0.0.1:{free_port()}/dicomweb"
    with dicomweb_server.client(web_address=address, max_retries=2) as client:
        with pytest.raises(TransportError):
            client.search_for_studies()
    assert len(waits) == 2


def test_nonexistent_folder_is_refused_before_any_request(dicomweb_server, tmp_path):
    unreachable = f"http://127.0.0.1:{free_port()}/dicomweb"  # any request would be a TransportError
    with dicomweb_server.client(web_address=unreachable, max_retries=0) as client:
        with pytest.raises(ValidationError, match="does not exist"):
            client.upload_folder(tmp_path / "no-such-folder")
