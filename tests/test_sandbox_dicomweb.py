"""DICOMweb on the sandbox: the vendor sample's requests (PostDICOM dialect) and PS3.18 paths."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import uuid
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass

from postdicom.synthetic import StudySpec, write_odd_files, write_study
from tests.fixtures.sandbox_server import api_client, stow_body, vendor_stow


def unique_study(tmp_path: Path, modality: str = "CT", series: int = 2, per_series: int = 2, **kwargs):
    """A synthetic study with a patient ID no other test uses (the shared sandbox keeps everything)."""
    pid = kwargs.pop("patient_id", f"PID-{uuid.uuid4().hex[:10]}")
    spec = StudySpec(kwargs.pop("patient_name", "Muñoz^José"), pid, modality, series_count=series,
                     instances_per_series=per_series, seed=pid, **kwargs)
    paths = write_study(tmp_path / pid, spec)
    return spec, paths


def split_multipart(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """Parts of a multipart answer, with their headers (stdlib parser; fine for small test bodies)."""
    raw = b"Content-Type: " + response.headers["content-type"].encode() + b"\r\n\r\n" + response.content
    message = email.message_from_bytes(raw, policy=email.policy.HTTP)
    assert message.is_multipart()
    return [(dict(part.items()), part.get_payload(decode=True)) for part in message.iter_parts()]


def test_vendor_stow_one_file_per_request_then_dialect_qido_and_wado(sandbox_server, tmp_path):
    spec, paths = unique_study(tmp_path)
    with api_client(sandbox_server) as client:
        responses = vendor_stow(client, paths)
        assert [r.status_code for r in responses] == [200] * len(paths)
        stored = responses[0].json()["00081199"]["Value"][0]
        first = pydicom.dcmread(paths[0])
        assert stored["00081155"]["Value"] == [first.SOPInstanceUID]
        assert stored["00081150"]["Value"] == [first.SOPClassUID]
        assert stored["00081190"]["Value"][0].endswith(f"/instances/{first.SOPInstanceUID}")
        assert "00081198" not in responses[0].json()

        studies = client.get(f"/studies?00100020={spec.patient_id}").json()
        assert len(studies) == 1
        study = studies[0]
        assert study["0020000D"]["Value"] == [spec.study_uid()]
        assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Muñoz^José"}]}
        assert study["00201206"]["Value"] == [2] and study["00201208"]["Value"] == [4]
        assert study["00080061"]["Value"] == ["CT"]

        by_study = client.get(f"/studies?0020000D={spec.study_uid()}").json()
        assert [s["00100020"]["Value"] for s in by_study] == [[spec.patient_id]]

        series = client.get(f"/studies/series?0020000D={spec.study_uid()}").json()
        assert len(series) == 2
        series_uid = series[0]["0020000E"]["Value"][0]
        assert series[0]["00201209"]["Value"] == [2]

        instances = client.get(f"/studies/series/instances?0020000E={series_uid}").json()
        assert len(instances) == 2
        assert {i["0020000E"]["Value"][0] for i in instances} == {series_uid}

        study_parts = split_multipart(client.get(f"/studies/{spec.study_uid()}"))
        assert len(study_parts) == 4
        assert {pydicom.dcmread(io.BytesIO(body)).SOPInstanceUID for _, body in study_parts} == {
            pydicom.dcmread(p).SOPInstanceUID for p in paths}

        series_parts = split_multipart(client.get(f"/studies/series/{series_uid}"))
        assert len(series_parts) == 2

        sop = instances[0]["00080018"]["Value"][0]
        answer = client.get(f"/studies/series/instances/{sop}")
        assert answer.headers["content-type"].startswith("multipart/related")
        assert int(answer.headers["content-length"]) == len(answer.content)
        (headers, body), = split_multipart(answer)
        assert headers["Content-Type"].startswith("application/dicom")
        original = next(p for p in paths if pydicom.dcmread(p).SOPInstanceUID == sop)
        assert body == original.read_bytes()


def test_standard_paths_store_search_retrieve_and_metadata(sandbox_server, tmp_path):
    spec, paths = unique_study(tmp_path, "MR", series=1, per_series=3)
    study_uid = spec.study_uid()
    with api_client(sandbox_server) as client:
        body, content_type = stow_body(paths, boundary="std-boundary-1")
        stored = client.post(f"/studies/{study_uid}", content=body, headers={"Content-Type": content_type})
        assert stored.status_code == 200
        assert len(stored.json()["00081199"]["Value"]) == 3
        assert stored.json()["00081190"]["Value"] == [f"{sandbox_server.web_address}/studies/{study_uid}"]

        series = client.get(f"/studies/{study_uid}/series").json()
        series_uid = series[0]["0020000E"]["Value"][0]
        assert series[0]["00080060"]["Value"] == ["MR"]
        instances = client.get(f"/studies/{study_uid}/series/{series_uid}/instances").json()
        assert sorted(i["00200013"]["Value"][0] for i in instances) == [1, 2, 3]
        assert len(client.get(f"/studies/{study_uid}/instances").json()) == 3
        assert len(client.get("/series", params={"SeriesInstanceUID": series_uid}).json()) == 1
        sop = instances[0]["00080018"]["Value"][0]
        assert [i["0020000D"]["Value"] for i in client.get(f"/instances?SOPInstanceUID={sop}").json()] == [[study_uid]]

        assert len(split_multipart(client.get(f"/studies/{study_uid}/series/{series_uid}"))) == 3
        one = split_multipart(client.get(f"/studies/{study_uid}/series/{series_uid}/instances/{sop}"))
        assert pydicom.dcmread(io.BytesIO(one[0][1])).SOPInstanceUID == sop

        metadata = client.get(f"/studies/{study_uid}/metadata")
        assert metadata.headers["content-type"].startswith("application/dicom+json")
        items = metadata.json()
        assert len(items) == 3
        assert all(item["00100020"]["Value"] == [spec.patient_id] for item in items)
        pixel_uri = items[0]["7FE00010"]["BulkDataURI"]
        assert pixel_uri.startswith(sandbox_server.web_address + f"/studies/{study_uid}/series/")
        bulk = client.get(pixel_uri)
        (_, pixels), = split_multipart(bulk)
        sop_of_item = items[0]["00080018"]["Value"][0]
        original = next(p for p in paths if pydicom.dcmread(p).SOPInstanceUID == sop_of_item)
        assert pixels == pydicom.dcmread(original).PixelData
        assert len(client.get(f"/studies/{study_uid}/series/{series_uid}/metadata").json()) == 3
        assert len(client.get(f"/studies/{study_uid}/series/{series_uid}/instances/{sop}/metadata").json()) == 1
        assert len(client.get(f"/studies/series/{series_uid}/metadata").json()) == 3


def test_qido_matching_rules(sandbox_server, tmp_path):
    tag = uuid.uuid4().hex[:8].upper()
    day = dt.date(2011, 3, 4)
    spec_a, paths_a = unique_study(tmp_path, "CT", series=1, per_series=1, patient_id=f"Q-{tag}-A",
                                   patient_name=f"Zed{tag}^Alpha", study_date=day,
                                   accession_number=f"ACC-{tag}-1", study_description="CT Chest plain")
    spec_b, paths_b = unique_study(tmp_path, "MR", series=1, per_series=1, patient_id=f"Q-{tag}-B",
                                   patient_name=f"Zed{tag}^Beta", study_date=day + dt.timedelta(days=40))
    with api_client(sandbox_server) as client:
        body, content_type = stow_body(paths_a + paths_b)
        assert client.post("/studies", content=body, headers={"Content-Type": content_type}).status_code == 200

        def pids(query: str) -> list[str]:
            answer = client.get("/studies?" + query)
            assert answer.status_code == 200, answer.headers.get("x-error-reason")
            return sorted(s["00100020"]["Value"][0] for s in answer.json())

        both = sorted([spec_a.patient_id, spec_b.patient_id])
        assert pids(f"PatientID=Q-{tag}-*") == both
        assert pids(f"PatientID=Q-{tag}-%3F") == [spec_a.patient_id, spec_b.patient_id]
        assert pids(f"PatientID=Q%2D{tag}%2DA") == [spec_a.patient_id]
        assert pids(f"PatientName=zed{tag}^alpha") == [spec_a.patient_id]
        assert pids(f"PatientName=Zed{tag}*") == both
        assert pids(f"00100020=Q-{tag}-*&StudyDate=20110301-20110310") == [spec_a.patient_id]
        assert pids(f"00100020=Q-{tag}-*&StudyDate=20110401-") == [spec_b.patient_id]
        assert pids(f"00100020=Q-{tag}-*&StudyDate=-20110304") == [spec_a.patient_id]
        assert pids(f"00100020=Q-{tag}-*&ModalitiesInStudy=MR") == [spec_b.patient_id]
        assert pids(f"StudyInstanceUID={spec_a.study_uid()},{spec_b.study_uid()}") == both
        assert pids(f"StudyDescription=CT+Chest+plain&PatientID=Q-{tag}-*") == [spec_a.patient_id]
        assert pids(f"AccessionNumber=ACC-{tag}-1") == [spec_a.patient_id]
        assert pids(f"PatientID=Q-{tag}-*&limit=1") in ([spec_a.patient_id], [spec_b.patient_id])
        first = pids(f"PatientID=Q-{tag}-*&limit=1")
        second = pids(f"PatientID=Q-{tag}-*&limit=1&offset=1")
        assert sorted(first + second) == both
        limited = client.get(f"/studies?PatientID=Q-{tag}-*&limit=1")
        assert limited.headers["warning"].startswith("299")

        plain = client.get(f"/studies?PatientID={spec_a.patient_id}").json()[0]
        assert "00081030" in plain and "00180050" not in plain
        wide = client.get(f"/studies?PatientID={spec_a.patient_id}&includefield=00180050,BodyPartExamined").json()[0]
        assert wide["00180050"]["vr"] == "DS" and wide["00180015"]["Value"] == ["CHEST"]
        everything = client.get(f"/studies?PatientID={spec_a.patient_id}&includefield=all").json()[0]
        assert "00080070" in everything
        assert all(set(element) <= {"vr", "Value"} and element["vr"] for element in everything.values())

        assert client.get("/studies?PatientID=nobody-has-this-id").json() == []
        bad = client.get("/studies?BogusKeyword=1")
        assert bad.status_code == 400 and "BogusKeyword" in bad.headers["x-error-reason"]
        assert client.get("/studies?limit=ten").status_code == 400


def test_stow_failures_partial_success_and_duplicates(sandbox_server, tmp_path):
    spec, paths = unique_study(tmp_path, series=1, per_series=2)
    odd = write_odd_files(tmp_path / "odd")
    with api_client(sandbox_server) as client:
        body, content_type = stow_body([paths[0], odd["fake_dcm"], odd["truncated"]])
        partial = client.post("/", content=body, headers={"Content-Type": content_type})
        assert partial.status_code == 202
        assert partial.headers["x-error-reason"]
        answer = partial.json()
        assert len(answer["00081199"]["Value"]) == 1
        codes = sorted(item["00081197"]["Value"][0] for item in answer["00081198"]["Value"])
        assert codes == [0xC000, 0xC000]

        body, content_type = stow_body([paths[0]])
        again = client.post("/", content=body, headers={"Content-Type": content_type})
        assert again.status_code == 200
        assert again.json()["00081199"]["Value"][0]["00081155"]["Value"] == [pydicom.dcmread(paths[0]).SOPInstanceUID]
        assert len(client.get(f"/studies/{spec.study_uid()}/instances").json()) == 1

        body, content_type = stow_body([paths[1]])
        mismatch = client.post("/studies/1.2.3.4", content=body, headers={"Content-Type": content_type})
        assert mismatch.status_code == 409
        assert mismatch.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0110]
        assert len(client.get(f"/studies/{spec.study_uid()}/instances").json()) == 1

        ds = pydicom.dcmread(paths[1])
        del ds.SeriesInstanceUID
        no_uid = tmp_path / "no-series-uid.dcm"
        ds.save_as(no_uid)
        body, content_type = stow_body([no_uid])
        missing = client.post("/", content=body, headers={"Content-Type": content_type})
        assert missing.status_code == 409
        assert missing.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]

        not_multipart = client.post("/", content=paths[1].read_bytes(), headers={"Content-Type": "application/dicom"})
        assert not_multipart.status_code == 415 and not_multipart.headers["x-error-reason"]
        no_boundary = client.post("/", content=b"x", headers={"Content-Type": "multipart/related"})
        assert no_boundary.status_code == 400


def test_stow_accepts_preamble_and_tiny_chunks(sandbox_server, tmp_path):
    spec, paths = unique_study(tmp_path, series=1, per_series=1)
    body, content_type = stow_body(paths, boundary="b o u n d")
    body = b"This preamble is allowed by RFC 2046.\r\n" + body

    def tiny_chunks():
        for i in range(0, len(body), 7):
            yield body[i:i + 7]

    with api_client(sandbox_server) as client:
        answer = client.post("/", content=tiny_chunks(), headers={"Content-Type": content_type})
        assert answer.status_code == 200, answer.headers.get("x-error-reason")
        assert client.get(f"/studies?0020000D={spec.study_uid()}").json()[0]["00201208"]["Value"] == [1]


def test_wado_errors(sandbox_server, tmp_path):
    spec, paths = unique_study(tmp_path, series=1, per_series=1)
    with api_client(sandbox_server) as client:
        vendor_stow(client, paths)
        single = client.get(f"/studies/{spec.study_uid()}", headers={"Accept": "application/dicom"})
        assert single.status_code == 406 and "multipart" in single.headers["x-error-reason"]
        other_syntax = client.get(f"/studies/{spec.study_uid()}", headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'})
        assert other_syntax.status_code == 406
        stored_syntax = client.get(f"/studies/{spec.study_uid()}", headers={
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'})
        assert stored_syntax.status_code == 200
        unknown = client.get("/studies/1.2.3.999")
        assert unknown.status_code == 404 and unknown.headers["x-error-reason"]


def test_unauthenticated_and_wrong_password_get_401(sandbox_server):
    no_auth = httpx.get(sandbox_server.web_address + "/studies")
    assert no_auth.status_code == 401
    assert no_auth.headers["www-authenticate"].startswith("Basic")
    wrong = httpx.get(sandbox_server.web_address + "/studies", auth=(sandbox_server.username, "nope"))
    assert wrong.status_code == 401 and wrong.headers["x-error-reason"]
    custom = httpx.get(sandbox_server.web_address + "/searchfolder",
                       headers={"SearchFolderParameters": "{}"})
    assert custom.status_code == 401


def test_dicomweb_client_stores_searches_and_retrieves(sandbox_server, tmp_path):
    spec, paths = unique_study(tmp_path, "US", series=1, per_series=3, patient_name="Yamada^Taro")
    session = create_session_from_user_pass(sandbox_server.username, sandbox_server.password)
    client = DICOMwebClient(url=sandbox_server.web_address, session=session)
    datasets = [pydicom.dcmread(p) for p in paths]
    result = client.store_instances(datasets)
    assert len(result.ReferencedSOPSequence) == 3

    studies = client.search_for_studies(search_filters={"PatientID": spec.patient_id})
    assert [s["0020000D"]["Value"][0] for s in studies] == [spec.study_uid()]
    series = client.search_for_series(spec.study_uid())
    assert len(series) == 1
    instances = client.search_for_instances(spec.study_uid(), series[0]["0020000E"]["Value"][0])
    assert len(instances) == 3

    retrieved = client.retrieve_study(spec.study_uid())
    assert sorted(ds.SOPInstanceUID for ds in retrieved) == sorted(ds.SOPInstanceUID for ds in datasets)
    assert retrieved[0].PatientName == "Yamada^Taro"
    one = client.retrieve_instance(spec.study_uid(), datasets[0].SeriesInstanceUID, datasets[0].SOPInstanceUID)
    assert one.PixelData == datasets[0].PixelData
    metadata = client.retrieve_study_metadata(spec.study_uid())
    assert len(metadata) == 3


@pytest.mark.parametrize("path", ["/studies/series", "/studies/series/instances"])
def test_dialect_search_paths_are_not_taken_for_uids(sandbox_server, path):
    with api_client(sandbox_server) as client:
        answer = client.get(path + "?0020000D=1.2.3.4.5.6.7")
        assert answer.status_code == 200
        assert answer.json() == []


def test_the_access_log_shows_the_search_keys_but_not_whom_they_name(sandbox_server):
    patient_id = f"MRN-{uuid.uuid4().hex[:10]}"
    with api_client(sandbox_server) as client:
        assert client.get("/studies", params={"PatientID": patient_id, "limit": "5"}).status_code in (200, 204)
    log = Path(sandbox_server.extra["log_path"]).read_text()
    assert "/dicomweb/studies?PatientID=...&limit=..." in log
    assert patient_id not in log
