"""The three DICOMweb tasks inside real flow runs, and what qido_search's cache key is made of."""

from __future__ import annotations

import inspect
import uuid
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from prefect import flow
from prefect.settings import get_current_settings

from postdicom import ValidationError
from postdicom.synthetic import StudySpec, write_odd_files, write_study
from tasks import qido_search, retrieve_images_using_wado_rs, upload_dicom_images_in_a_folder


@pytest.fixture
def creds(dicomweb_server, prefect_harness):
    return dicomweb_server.credentials()


def test_upload_search_retrieve_in_a_flow(creds, tmp_path):
    patient = f"TASK-{uuid.uuid4().hex[:8]}"
    spec = StudySpec("Task^Tina", patient, "CT", 2, 2, seed=uuid.uuid4().hex)
    sent = write_study(tmp_path / "disk", spec, suffix="")
    write_odd_files(tmp_path / "disk")
    study = spec.study_uid()
    series = pydicom.dcmread(sent[0]).SeriesInstanceUID

    @flow(name="dicomweb-tasks-roundtrip")
    def roundtrip():
        report = upload_dicom_images_in_a_folder(creds, tmp_path / "disk")
        rerun = upload_dicom_images_in_a_folder(creds, str(tmp_path / "disk"))
        studies = qido_search(creds, patient_id=patient)
        series_found = qido_search(creds, study_instance_uid=study)
        instances = qido_search(creds, series_instance_uid=series)
        by_filter = qido_search(creds, filters={"PatientName": "Task^Ti*", "PatientID": patient})
        study_files = retrieve_images_using_wado_rs(creds, study_instance_uid=study, destination=tmp_path / "out")
        one = retrieve_images_using_wado_rs(
            creds, sop_instance_uid=pydicom.dcmread(sent[0]).SOPInstanceUID, destination=tmp_path / "one"
        )
        return report, rerun, studies, series_found, instances, by_filter, study_files, one

    report, rerun, studies, series_found, instances, by_filter, study_files, one = roundtrip()
    assert report.counts["stored"] == 4 and report.counts["not_dicom"] == 5
    assert rerun.counts["already_stored"] == 4 and rerun.counts["stored"] == 0
    assert [s["0020000D"]["Value"][0] for s in studies] == [study]
    assert len(series_found) == 2
    assert len(instances) == 2
    assert [s["0020000D"]["Value"][0] for s in by_filter] == [study]
    assert sorted(Path(p).read_bytes() for p in study_files) == sorted(p.read_bytes() for p in sent)
    assert [Path(p).read_bytes() for p in one] == [sent[0].read_bytes()]


def test_retrieve_without_any_uid_is_refused(creds, tmp_path):
    @flow
    def nothing():
        return retrieve_images_using_wado_rs(creds, destination=tmp_path)

    with pytest.raises(ValidationError):
        nothing()


def qido_key(credentials, **arguments) -> str:
    """The cache key Prefect computes for a qido_search run with these arguments (defaults included)."""
    bound = inspect.signature(qido_search.fn).bind(credentials, **arguments)
    bound.apply_defaults()
    return qido_search.cache_policy.compute_key(
        task_ctx=SimpleNamespace(task=qido_search),
        inputs=dict(bound.arguments),
        flow_parameters={},
    )


def test_qido_cache_key_never_depends_on_the_password(dicomweb_server, prefect_harness):
    base = dicomweb_server.credentials()
    other_password = dicomweb_server.credentials(password="another-Secret-42")
    other_user = dicomweb_server.credentials(username="someone-else@example.org")
    key = qido_key(base, patient_id="P-1")
    assert key == qido_key(other_password, patient_id="P-1")
    assert key != qido_key(other_user, patient_id="P-1")
    assert key != qido_key(base, patient_id="P-2")
    assert dicomweb_server.password not in key


def test_qido_results_are_cached_without_the_password_at_rest(creds, dicomweb_server, tmp_path):
    patient = f"CACHE-{uuid.uuid4().hex[:8]}"

    @flow
    def twice():
        first = qido_search(creds, patient_id=patient, return_state=True)
        second = qido_search(creds, patient_id=patient, return_state=True)
        return first, second

    first, second = twice()
    assert first.is_completed() and second.name == "Cached"
    storage = Path(get_current_settings().results.local_storage_path)
    stored = storage / qido_key(creds, patient_id=patient)
    assert stored.is_file()
    secret = dicomweb_server.password.encode()
    for path in storage.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes()
            assert dicomweb_server.password not in path.name
