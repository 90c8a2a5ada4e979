"""Storage that lasts and stays consistent: restart, account isolation, concurrent and failed STOWs."""

from __future__ import annotations

import concurrent.futures
import json
import os
import uuid
from pathlib import Path

import httpx
import pydicom

from postdicom.synthetic import StudySpec, write_study
from tests.fixtures.sandbox_server import api_client, order_info_list, stow_body, vendor_get, vendor_stow

IN_A_WEEK = "2099-01-01"


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, (response.status_code, response.headers.get("x-error-reason"))
    return response.json()


def test_restart_keeps_studies_orders_folders_assignments_and_shares(fresh_sandbox, tmp_path):
    sandbox = fresh_sandbox()
    info = sandbox.info()
    inst = info.extra["institution_uuid"]
    spec = StudySpec("Restart^Rita", "RST-1", "CT", series_count=2, instances_per_series=2, seed="restart")
    paths = write_study(tmp_path, spec)
    with api_client(info) as client:
        assert {r.status_code for r in vendor_stow(client, paths)} == {200}
        order = ok(vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                              InstitutionUuidList=[], PatientId="RST-1"))["PatientOrderList"][0]["PatientOrderUuid"]
        folder = ok(vendor_get(client, "/createfolder", "CreateFolderParameters", FolderName="Kept",
                               FolderDescription="", ParentFolderUuid=""))["FolderUuid"]
        ok(vendor_get(client, "/addordertofolder", "AddOrderToFolderParameters", PatientOrderUuid=order,
                      FolderUuidList=[folder]))
        ok(vendor_get(client, "/assignordertouser", "AssignOrderToUserParameters", PatientOrderUuid=order,
                      AssignedUserUuid="9d02eb73-8dd5-4798-9962-621dcebf7caf"))
        scheduled = ok(vendor_get(client, "/createpatientorder", "CreatePatientOrderParameters",
                                  InstitutionUuid=inst, PatientName="Later^Lu", PatientId="RST-2",
                                  PatientBirthdate="2000-02-29", Modality="MR"))["PatientOrderUuid"]
        share_url = ok(vendor_get(client, "/createsharelink", "ShareParameters", raw_params=json.dumps({
            "PatientOrderInfoList": order_info_list([order]), "ExpireDate": IN_A_WEEK, "SharePassword": "",
            "Downloadable": "True"})))["ShareUrl"]
        before = ok(vendor_get(client, "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
                               PatientOrderInstitutionUuid=inst, PatientOrderUuid=order))

    sandbox.restart()

    with api_client(info) as client:
        after = ok(vendor_get(client, "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
                              PatientOrderInstitutionUuid=inst, PatientOrderUuid=order))
        assert after == before
        assert after["FolderUuidList"] == [folder] and after["AssignedUserUuid"]
        assert ok(vendor_get(client, "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
                             PatientOrderInstitutionUuid=inst, PatientOrderUuid=scheduled))["OrderStatus"] == "Scheduled"
        folders = ok(vendor_get(client, "/searchfolder", "SearchFolderParameters", ParentFolderUuid="",
                                FolderName="kepx", GetOrdersInFolder=True))["FolderList"]
        assert folders == []
        folders = ok(vendor_get(client, "/searchfolder", "SearchFolderParameters", ParentFolderUuid="",
                                FolderName="kept", GetOrdersInFolder=True))["FolderList"]
        assert [(f["FolderUuid"], f["PatientOrderUuidList"]) for f in folders] == [(folder, [order])]
        assert len(ok(client.get(f"/studies/{spec.study_uid()}/instances"))) == 4
        instance = client.get(f"/studies/series/instances/{pydicom.dcmread(paths[0]).SOPInstanceUID}")
        assert paths[0].read_bytes() in instance.content
    assert "RST-1" in httpx.get(share_url).text


def test_accounts_are_isolated_in_custom_endpoints_and_dicomweb(sandbox_server, sandbox_other_account, tmp_path):
    demo, other = sandbox_server, sandbox_other_account
    pid = f"ISO-{uuid.uuid4().hex[:8]}"
    spec = StudySpec("Private^Pat", pid, "CT", series_count=1, instances_per_series=2, seed=pid)
    paths = write_study(tmp_path, spec)
    sop = pydicom.dcmread(paths[0]).SOPInstanceUID
    series = pydicom.dcmread(paths[0]).SeriesInstanceUID
    inst = demo.extra["institution_uuid"]
    with api_client(demo) as client:
        assert {r.status_code for r in vendor_stow(client, paths)} == {200}
        order = ok(vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                              InstitutionUuidList=[], PatientId=pid))["PatientOrderList"][0]["PatientOrderUuid"]
        folder = ok(vendor_get(client, "/createfolder", "CreateFolderParameters", FolderName=f"Private {pid}",
                               FolderDescription="", ParentFolderUuid=""))["FolderUuid"]

    with api_client(other) as client:
        assert client.get(f"/studies?00100020={pid}").json() == []
        assert client.get(f"/studies/series?0020000D={spec.study_uid()}").json() == []
        assert client.get(f"/studies/series/instances?0020000E={series}").json() == []
        assert client.get(f"/instances?SOPInstanceUID={sop}").json() == []
        for path in (f"/studies/{spec.study_uid()}", f"/studies/series/{series}", f"/studies/series/instances/{sop}",
                     f"/studies/{spec.study_uid()}/metadata"):
            assert client.get(path).status_code == 404, path
        mine = other.extra["institution_uuid"]
        assert ok(vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters", InstitutionUuidList=[],
                             PatientId=pid))["PatientOrderList"] == []
        foreign_institution = vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                                         InstitutionUuidList=[inst])
        assert foreign_institution.status_code == 404
        for institution in (inst, mine):
            for path, header in (("/getpatientorderproperties", "GetPatientOrderPropertiesParameters"),
                                 ("/deleteorder", "DeleteOrderParameters")):
                refused = vendor_get(client, path, header, PatientOrderInstitutionUuid=institution,
                                     PatientOrderUuid=order)
                assert refused.status_code == 404, (path, institution)
        assert vendor_get(client, "/getdicomtagcontent", "GetDicomTagContentParameters",
                          PatientOrderInstitutionUuid=inst, PatientOrderUuid=order, PatientSeriesUuid="",
                          DicomTagIdList=[]).status_code == 404
        assert vendor_get(client, "/assignordertouser", "AssignOrderToUserParameters", PatientOrderUuid=order,
                          AssignedUserUuid="31efc756-f92b-4235-bc58-a588c65c1294").status_code == 404
        assert vendor_get(client, "/sharepatientorderwithurl", "SharePatientOrderParameters", OrderUuidList=[order],
                          ExpireDate=IN_A_WEEK, SharePassword="", UserCanDownloadStudies=True).status_code == 404
        assert vendor_get(client, "/sharefolderwithurl", "ShareFolderParameters", FolderUuid=folder,
                          SharePassword="", ShareTitle="", ShareDescription="", ExpireDate="",
                          UserCanDownloadStudies=False).status_code == 404
        assert vendor_get(client, "/createfolder", "CreateFolderParameters", FolderName="x", FolderDescription="",
                          ParentFolderUuid=folder).status_code == 404
        assert ok(vendor_get(client, "/searchfolder", "SearchFolderParameters", ParentFolderUuid="",
                             FolderName=pid, GetOrdersInFolder=False))["FolderList"] == []

        assert {r.status_code for r in vendor_stow(client, paths)} == {200}
        own = ok(vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters", InstitutionUuidList=[],
                            PatientId=pid))["PatientOrderList"]
        assert len(own) == 1 and own[0]["PatientOrderUuid"] != order and own[0]["InstitutionUuid"] == mine
        ok(vendor_get(client, "/deleteorder", "DeleteOrderParameters", PatientOrderInstitutionUuid=mine,
                      PatientOrderUuid=own[0]["PatientOrderUuid"]))

    with api_client(demo) as client:
        assert len(client.get(f"/studies/{spec.study_uid()}/instances").json()) == 2
        assert client.get(f"/studies/series/instances/{sop}").status_code == 200


def test_concurrent_stow_requests_are_all_stored(sandbox_server, tmp_path):
    pid = f"CON-{uuid.uuid4().hex[:8]}"
    spec = StudySpec("Busy^Bea", pid, "CT", series_count=4, instances_per_series=10, seed=pid)
    paths = write_study(tmp_path, spec)
    batches = [paths[i::8] for i in range(8)]

    def send(batch):
        body, content_type = stow_body(batch)
        with api_client(sandbox_server) as client:
            return client.post("/studies", content=body, headers={"Content-Type": content_type}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, batches + batches)) == [200] * 16
    with api_client(sandbox_server) as client:
        study = client.get(f"/studies?PatientID={pid}").json()
        assert len(study) == 1
        assert study[0]["00201206"]["Value"] == [4] and study[0]["00201208"]["Value"] == [40]
        orders = ok(vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                               InstitutionUuidList=[], PatientId=pid))["PatientOrderList"]
        assert len(orders) == 1 and orders[0]["NumberOfInstances"] == 40


def test_a_broken_upload_leaves_nothing_behind(sandbox_server, tmp_path):
    pid = f"BRK-{uuid.uuid4().hex[:8]}"
    spec = StudySpec("Broken^Bo", pid, "CT", series_count=1, instances_per_series=3, seed=pid)
    paths = write_study(tmp_path, spec)
    body, content_type = stow_body(paths)
    cut = body[: len(body) - 200]
    with api_client(sandbox_server) as client:
        answer = client.post("/", content=cut, headers={"Content-Type": content_type})
        assert answer.status_code == 400 and answer.headers["x-error-reason"]
        assert client.get(f"/studies?PatientID={pid}").json() == []
    data_dir = Path(sandbox_server.extra["data_dir"])
    assert list((data_dir / "tmp").iterdir()) == []
    assert not list((data_dir / "files").rglob(f"*{spec.study_uid()}*"))


def test_files_the_sandbox_writes_follow_the_umask(fresh_sandbox, tmp_path):
    previous = os.umask(0o077)
    try:
        sandbox = fresh_sandbox()
    finally:
        os.umask(previous)
    info = sandbox.info()
    paths = write_study(tmp_path, StudySpec("Umask^Ulla", "UMASK-1", "CT", instances_per_series=2, seed="umask"))
    with api_client(info) as client:
        assert {r.status_code for r in vendor_stow(client, paths)} == {200}
    written = [p for p in Path(info.extra["data_dir"]).rglob("*")]
    assert any(p.suffix == ".dcm" for p in written) and any(p.name == "index.sqlite3" for p in written)
    assert {oct(p.stat().st_mode & 0o077) for p in written} == {"0o0"}
