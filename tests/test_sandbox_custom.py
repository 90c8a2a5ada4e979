"""The 13 custom endpoints on the sandbox, called exactly as the vendor's C# sample calls them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

from postdicom.synthetic import StudySpec, write_study
from tests.fixtures.sandbox_server import api_client, order_info_list, vendor_get, vendor_stow

SEED_USERS = {
    "ana": "9d02eb73-8dd5-4798-9962-621dcebf7caf",
    "ben": "aa608466-d46c-4eba-a901-433c9c222e33",
    "carmen_other_institution": "bb28fc9b-fe7f-4b8f-99c2-3033cddd2a3e",
    "otto_other_account": "31efc756-f92b-4235-bc58-a588c65c1294",
}
SEED_GROUPS = {"neuro": "0734b2de-8bce-46c2-856e-bfd52bea559f", "oncall": "d81e538a-b889-44a0-8fbe-c2cb891e0f6f"}
SEED_EQUIPMENT_CT = "7fe7db06-7c79-49c3-b703-25dcae3600fe"
TOMORROW = (dt.date.today() + dt.timedelta(days=2)).isoformat()


def get(client, path, header, **params):
    response = vendor_get(client, path, header, **params)
    assert response.status_code == 200, (path, response.status_code, response.headers.get("x-error-reason"))
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def create_order(client, institution, **overrides):
    params = dict(InstitutionUuid=institution, PatientName="Núñez^María José", PatientId=f"P-{uuid.uuid4().hex[:8]}",
                  OtherPatientId="", PatientSex="F", PatientBirthdate="1984-07-02", Modality="MR",
                  StudyDescription="RM Cerebro", AccessionNumber="", PatientComplaints="Headache",
                  OrderScheduledDatetime="2026-12-01 09:30", RequestedProcedureId="RP-1",
                  RequestedProcedureDescription="Brain MR", RequestingPhysician="Dr. House",
                  ReferringPhysiciansName="Referrer^Rita", ScheduledEquipmentUuid=SEED_EQUIPMENT_CT)
    params.update(overrides)
    return get(client, "/createpatientorder", "CreatePatientOrderParameters", **params)


def properties(client, institution, order):
    return get(client, "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
               PatientOrderInstitutionUuid=institution, PatientOrderUuid=order)


def test_scheduled_order_is_fulfilled_by_images_with_its_accession_and_patient(sandbox_server, tmp_path):
    inst = sandbox_server.extra["institution_uuid"]
    with api_client(sandbox_server) as client:
        created = create_order(client, inst, AccessionNumber=f"ACC-{uuid.uuid4().hex[:6]}")
        assert created["OrderStatus"] == "Scheduled" and created["InstitutionUuid"] == inst
        order = created["PatientOrderUuid"]
        before = properties(client, inst, order)
        assert before["OrderStatus"] == "Scheduled"
        assert before["PatientName"] == "Núñez^María José" and before["PatientBirthdate"] == "1984-07-02"
        assert before["OrderScheduledDatetime"] == "2026-12-01 09:30"
        assert before["ScheduledEquipmentUuid"] == SEED_EQUIPMENT_CT
        assert before["StudyInstanceUid"] is None and before["SeriesList"] == [] and before["NumberOfInstances"] == 0

        spec = StudySpec("Núñez^María José", before["PatientId"], "MR", series_count=2, instances_per_series=2,
                         accession_number=created["AccessionNumber"], seed=order, study_date=dt.date(2026, 12, 1))
        assert [r.status_code for r in vendor_stow(client, write_study(tmp_path, spec))] == [200] * 4

        after = properties(client, inst, order)
        assert after["OrderStatus"] == "Completed"
        assert after["StudyInstanceUid"] == spec.study_uid()
        assert after["StudyDate"] == "2026-12-01" and after["StudyTime"] == "09:30:00"
        assert after["NumberOfSeries"] == 2 and after["NumberOfInstances"] == 4
        assert [s["SeriesNumber"] for s in after["SeriesList"]] == [1, 2]
        assert after["ModalityList"] == ["MR"]
        assert after["PatientComplaints"] == "Headache"
        listed = get(client, "/getpatientorderlist", "GetPatientOrderListParameters", InstitutionUuidList=[],
                     AccessionNumber=created["AccessionNumber"])["PatientOrderList"]
        assert [o["PatientOrderUuid"] for o in listed] == [order]


def test_create_patient_order_invents_an_accession_number_and_validates(sandbox_server):
    inst = sandbox_server.extra["institution_uuid"]
    with api_client(sandbox_server) as client:
        created = create_order(client, inst)
        assert created["AccessionNumber"].startswith("SBX") and created["AccessionNumber"][3:].isdigit()
        bad_sex = vendor_get(client, "/createpatientorder", "CreatePatientOrderParameters",
                             InstitutionUuid=inst, PatientName="A^B", PatientId="X", PatientBirthdate="1990-01-01",
                             Modality="CT", PatientSex="Q")
        assert bad_sex.status_code == 400 and "PatientSex" in bad_sex.headers["x-error-reason"]
        no_modality = vendor_get(client, "/createpatientorder", "CreatePatientOrderParameters",
                                 InstitutionUuid=inst, PatientName="A^B", PatientId="X",
                                 PatientBirthdate="1990-01-01", Modality="")
        assert no_modality.status_code == 400
        assert no_modality.headers["x-error-reason"] == "missing required parameter Modality"
        assert no_modality.json() == {"Error": "missing required parameter Modality"}
        bad_time = vendor_get(client, "/createpatientorder", "CreatePatientOrderParameters",
                              InstitutionUuid=inst, PatientName="A^B", PatientId="X", PatientBirthdate="1990-01-01",
                              Modality="CT", OrderScheduledDatetime="2026-12-01T09:30")
        assert bad_time.status_code == 400 and "OrderScheduledDatetime" in bad_time.headers["x-error-reason"]


@pytest.fixture
def stored_order(sandbox_server, tmp_path):
    """A completed order made by STOW (patient ID unique to the test)."""
    pid = f"T-{uuid.uuid4().hex[:10]}"
    spec = StudySpec("O'Brien^Siobhán", pid, "CT", series_count=2, instances_per_series=3, seed=pid,
                     accession_number=f"A-{pid}", body_part="KNEE", study_date=dt.date(2019, 5, 17))
    paths = write_study(tmp_path, spec)
    with api_client(sandbox_server) as client:
        assert {r.status_code for r in vendor_stow(client, paths)} == {200}
        listed = get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                     InstitutionUuidList=[sandbox_server.extra["institution_uuid"]], PatientId=pid)
    (order,) = listed["PatientOrderList"]
    return order, spec, paths


def test_order_list_filters(sandbox_server, stored_order):
    order, spec, _ = stored_order
    inst = sandbox_server.extra["institution_uuid"]
    with api_client(sandbox_server) as client:
        def find(**filters):
            params = {"InstitutionUuidList": [inst], "PatientName": "", "PatientId": "", "OtherPatientId": "",
                      "AccessionNumber": "", "ModalityList": [], "StudyDateFrom": "", "StudyDateTo": "",
                      "PatientBirthdateFrom": "", "PatientBirthdateTo": ""}
            params.update(filters)
            answer = get(client, "/getpatientorderlist", "GetPatientOrderListParameters", **params)
            return [o["PatientOrderUuid"] for o in answer["PatientOrderList"]]

        assert order["OrderStatus"] == "Completed" and order["NumberOfInstances"] == 6
        assert order["StudyDate"] == "2019-05-17" and order["PatientBirthdate"] == "1970-01-01"
        assert find(PatientId=spec.patient_id[2:8].lower()) == [order["PatientOrderUuid"]]
        assert order["PatientOrderUuid"] in find(PatientName="o'brien*siob")
        assert find(PatientId=spec.patient_id, ModalityList=["MR", "US"]) == []
        assert find(PatientId=spec.patient_id, ModalityList=["MR", "CT"]) == [order["PatientOrderUuid"]]
        assert find(PatientId=spec.patient_id, StudyDateFrom="2019-05-17", StudyDateTo="2019-05-17") == [
            order["PatientOrderUuid"]]
        assert find(PatientId=spec.patient_id, StudyDateFrom="2019-05-18") == []
        assert find(PatientId=spec.patient_id, StudyDateTo="2019-05-16") == []
        assert find(PatientId=spec.patient_id, PatientBirthdateFrom="1969-12-31", PatientBirthdateTo="1970-01-01") == [
            order["PatientOrderUuid"]]
        assert find(AccessionNumber=spec.accession_number) == [order["PatientOrderUuid"]]
        assert find(AccessionNumber=spec.accession_number[:-1]) == []
        every_institution = get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                                raw_params=json.dumps({"InstitutionUuidList": '[""]', "PatientId": spec.patient_id}))
        assert [o["PatientOrderUuid"] for o in every_institution["PatientOrderList"]] == [order["PatientOrderUuid"]]
        northern = sandbox_server.extra["account"]["Institutions"][1]["InstitutionUuid"]
        assert find(InstitutionUuidList=[northern], PatientId=spec.patient_id) == []
        missing = vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                             raw_params=json.dumps({"PatientId": spec.patient_id}))
        assert missing.status_code == 400 and "InstitutionUuidList" in missing.headers["x-error-reason"]


def test_dicom_tag_content_per_series_and_per_instance(sandbox_server, stored_order):
    order, spec, _ = stored_order
    inst = sandbox_server.extra["institution_uuid"]
    with api_client(sandbox_server) as client:
        def content(tags, series=""):
            answer = get(client, "/getdicomtagcontent", "GetDicomTagContentParameters",
                         PatientOrderInstitutionUuid=inst, PatientOrderUuid=order["PatientOrderUuid"],
                         PatientSeriesUuid=series, DicomTagIdList=tags)
            assert answer["PatientOrderUuid"] == order["PatientOrderUuid"]
            return answer["DicomTagContentList"]

        rows = content(["00100010", "0008,0060", "(0018,0015)", "InstanceNumber", "00091001"])
        names = [r for r in rows if r["TagId"] == "00100010"]
        assert len(names) == 2 and all(r["SopInstanceUid"] is None for r in names)
        assert names[0]["Values"] == ["O'Brien^Siobhán"] and names[0]["Keyword"] == "PatientName"
        assert names[0]["Vr"] == "PN"
        assert {tuple(r["Values"]) for r in rows if r["TagId"] == "00180015"} == {("KNEE",)}
        numbers = [r for r in rows if r["TagId"] == "00200013"]
        assert len(numbers) == 6 and all(r["SopInstanceUid"] for r in numbers)
        assert sorted(r["Values"][0] for r in numbers) == ["1", "1", "2", "2", "3", "3"]
        assert not [r for r in rows if r["TagId"] == "00091001"]

        props = properties(client, inst, order["PatientOrderUuid"])
        second = props["SeriesList"][1]
        only_second = content(["PatientID", "SeriesNumber"], series=second["PatientSeriesUuid"])
        assert {r["PatientSeriesUuid"] for r in only_second} == {second["PatientSeriesUuid"]}
        assert {r["TagId"]: r["Values"] for r in only_second} == {"00100020": [spec.patient_id], "00200011": ["2"]}

        defaults = {r["Keyword"] for r in content([])}
        assert {"PatientName", "StudyDate", "Modality", "Manufacturer", "BodyPartExamined"} <= defaults

        unknown = vendor_get(client, "/getdicomtagcontent", "GetDicomTagContentParameters",
                             PatientOrderInstitutionUuid=inst, PatientOrderUuid=order["PatientOrderUuid"],
                             PatientSeriesUuid="", DicomTagIdList=["PatientNme"])
        assert unknown.status_code == 400 and "PatientNme" in unknown.headers["x-error-reason"]


def test_folders_nest_hold_orders_and_search_by_partial_name(sandbox_server, stored_order):
    order, _, _ = stored_order
    mark = uuid.uuid4().hex[:6]
    with api_client(sandbox_server) as client:
        def folder(name, parent=""):
            answer = get(client, "/createfolder", "CreateFolderParameters", FolderName=name,
                         FolderDescription=f"about {name}", ParentFolderUuid=parent)
            assert answer["FolderName"] == name and answer["ParentFolderUuid"] == (parent or None)
            return answer["FolderUuid"]

        parent = folder(f"Trauma {mark}")
        child = folder(f"Knees {mark}", parent)
        added = get(client, "/addordertofolder", "AddOrderToFolderParameters",
                    PatientOrderUuid=order["PatientOrderUuid"], FolderUuidList=[parent, child])
        assert added["AddedFolderUuidList"] == [parent, child]
        again = get(client, "/addordertofolder", "AddOrderToFolderParameters",
                    PatientOrderUuid=order["PatientOrderUuid"], FolderUuidList=[child])
        assert again["AddedFolderUuidList"] == [] and again["FolderUuidList"] == [parent, child]

        def search(name="", parent_uuid="", with_orders=None):
            return get(client, "/searchfolder", "SearchFolderParameters", ParentFolderUuid=parent_uuid,
                       FolderName=name, GetOrdersInFolder=with_orders)["FolderList"]

        found = search(mark.upper())
        assert {f["FolderUuid"] for f in found} == {parent, child}
        assert all(f["PatientOrderUuidList"] is None for f in found)
        with_orders = search(f"knees {mark}", with_orders=True)
        assert [(f["FolderUuid"], f["PatientOrderUuidList"]) for f in with_orders] == [
            (child, [order["PatientOrderUuid"]])]
        assert [f["FolderUuid"] for f in search(parent_uuid=parent)] == [child]
        props = properties(client, sandbox_server.extra["institution_uuid"], order["PatientOrderUuid"])
        assert props["FolderUuidList"] == [parent, child]

        unknown_parent = vendor_get(client, "/createfolder", "CreateFolderParameters", FolderName="x",
                                    FolderDescription="", ParentFolderUuid=str(uuid.uuid4()))
        assert unknown_parent.status_code == 404
        empty_list = vendor_get(client, "/addordertofolder", "AddOrderToFolderParameters",
                                PatientOrderUuid=order["PatientOrderUuid"], FolderUuidList=[])
        assert empty_list.status_code == 400 and "FolderUuidList" in empty_list.headers["x-error-reason"]


def test_assignments_are_recorded_and_shown(sandbox_server, stored_order):
    order, _, _ = stored_order
    uuid_ = order["PatientOrderUuid"]
    with api_client(sandbox_server) as client:
        first = get(client, "/assignordertouser", "AssignOrderToUserParameters", PatientOrderUuid=uuid_,
                    AssignedUserUuid=SEED_USERS["ana"])
        assert first == {"PatientOrderUuid": uuid_, "AssignedUserUuid": SEED_USERS["ana"],
                         "PreviousAssignedUserUuid": None, "Changed": True}
        second = get(client, "/assignordertouser", "AssignOrderToUserParameters", PatientOrderUuid=uuid_,
                     AssignedUserUuid=SEED_USERS["ben"])
        assert second["PreviousAssignedUserUuid"] == SEED_USERS["ana"] and second["Changed"] is True
        same = get(client, "/assignordertouser", "AssignOrderToUserParameters", PatientOrderUuid=uuid_,
                   AssignedUserUuid=SEED_USERS["ben"])
        assert same["Changed"] is False
        group = get(client, "/assignordertousergroup", "AssignOrderToUserGroupParameters", PatientOrderUuid=uuid_,
                    AssignedUserGroupUuid=SEED_GROUPS["oncall"])
        assert group["AssignedUserGroupUuid"] == SEED_GROUPS["oncall"] and group["Changed"] is True
        props = properties(client, sandbox_server.extra["institution_uuid"], uuid_)
        assert props["AssignedUserUuid"] == SEED_USERS["ben"]
        assert props["AssignedUserGroupUuid"] == SEED_GROUPS["oncall"]
        for user in (SEED_USERS["carmen_other_institution"], SEED_USERS["otto_other_account"]):
            refused = vendor_get(client, "/assignordertouser", "AssignOrderToUserParameters",
                                 PatientOrderUuid=uuid_, AssignedUserUuid=user)
            assert refused.status_code == 404 and user in refused.headers["x-error-reason"]


def test_share_endpoints_answer_urls_on_the_sandbox(sandbox_server, stored_order):
    order, spec, _ = stored_order
    uuid_ = order["PatientOrderUuid"]
    with api_client(sandbox_server) as client:
        link = get(client, "/createsharelink", "ShareParameters", raw_params=json.dumps({
            "PatientOrderInfoList": order_info_list([uuid_]), "ExpireDate": TOMORROW, "SharePassword": "",
            "Downloadable": "True"}))
        assert link["ShareUrl"].startswith(sandbox_server.root_url + "/share/")
        assert len(link["ShareUrl"].rsplit("/", 1)[1]) >= 43
        assert link["PatientOrderUuidList"] == [uuid_] and link["Downloadable"] is True
        assert link["PasswordProtected"] is False and link["ExpireDate"] == TOMORROW and link["FolderUuid"] is None
        page = client.get(link["ShareUrl"])
        assert page.status_code == 200 and spec.patient_id in page.text and "Download" in page.text

        by_url = get(client, "/sharepatientorderwithurl", "SharePatientOrderParameters", OrderUuidList=[uuid_],
                     ExpireDate=TOMORROW, SharePassword="s3cret pass", UserCanDownloadStudies=False)
        assert by_url["PasswordProtected"] is True and by_url["Downloadable"] is False
        assert by_url["ShareUrl"] != link["ShareUrl"]

        folder = get(client, "/createfolder", "CreateFolderParameters", FolderName="Shared knees",
                     FolderDescription="", ParentFolderUuid="")["FolderUuid"]
        get(client, "/addordertofolder", "AddOrderToFolderParameters", PatientOrderUuid=uuid_, FolderUuidList=[folder])
        folder_share = get(client, "/sharefolderwithurl", "ShareFolderParameters", FolderUuid=folder,
                           SharePassword="", ShareTitle="Knee cases", ShareDescription="For the tumour board",
                           ExpireDate="", UserCanDownloadStudies=True)
        assert folder_share["ExpireDate"] is None and folder_share["FolderUuid"] == folder
        assert folder_share["ShareTitle"] == "Knee cases" and folder_share["PatientOrderUuidList"] == [uuid_]
        page = client.get(folder_share["ShareUrl"])
        assert "Knee cases" in page.text and "For the tumour board" in page.text and spec.patient_id in page.text

        no_expiry = vendor_get(client, "/sharepatientorderwithurl", "SharePatientOrderParameters",
                               OrderUuidList=[uuid_], ExpireDate="", SharePassword="", UserCanDownloadStudies=False)
        assert no_expiry.status_code == 400 and "ExpireDate" in no_expiry.headers["x-error-reason"]
        past = vendor_get(client, "/createsharelink", "ShareParameters", raw_params=json.dumps({
            "PatientOrderInfoList": order_info_list([uuid_]), "ExpireDate": "2001-01-01", "SharePassword": "",
            "Downloadable": "False"}))
        assert past.status_code == 400 and "past" in past.headers["x-error-reason"]
        stranger = vendor_get(client, "/sharepatientorderwithurl", "SharePatientOrderParameters",
                              OrderUuidList=[str(uuid.uuid4())], ExpireDate=TOMORROW, SharePassword="",
                              UserCanDownloadStudies=False)
        assert stranger.status_code == 404


def test_delete_order_removes_order_instances_and_files(sandbox_server, stored_order):
    order, spec, paths = stored_order
    inst = sandbox_server.extra["institution_uuid"]
    files_dir = Path(sandbox_server.extra["data_dir"]) / "files"
    stored_files = [p for p in files_dir.rglob("*.dcm") if spec.study_uid() in p.parts]
    assert len(stored_files) == 6
    with api_client(sandbox_server) as client:
        deleted = get(client, "/deleteorder", "DeleteOrderParameters", PatientOrderInstitutionUuid=inst,
                      PatientOrderUuid=order["PatientOrderUuid"])
        assert deleted == {"PatientOrderUuid": order["PatientOrderUuid"], "Deleted": True, "DeletedInstanceCount": 6}
        gone = vendor_get(client, "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
                          PatientOrderInstitutionUuid=inst, PatientOrderUuid=order["PatientOrderUuid"])
        assert gone.status_code == 404 and order["PatientOrderUuid"] in gone.headers["x-error-reason"]
        assert client.get(f"/studies?0020000D={spec.study_uid()}").json() == []
        assert not [p for p in stored_files if p.exists()]
        assert {r.status_code for r in vendor_stow(client, paths[:1])} == {200}
        assert client.get(f"/studies?0020000D={spec.study_uid()}").json()[0]["00201208"]["Value"] == [1]


@pytest.mark.parametrize("raw, status, reason", [
    (None, 400, "missing parameter header GetPatientOrderPropertiesParameters"),
    ("{not json", 400, "not a JSON object"),
    ('["a list"]', 400, "not a JSON object"),
    ('{"PatientOrderInstitutionUuid": "4f33177f-8441-4143-bb35-184dd57f47d8"}', 400,
     "missing required parameter PatientOrderUuid"),
    ('{"PatientOrderInstitutionUuid": "4f33177f-8441-4143-bb35-184dd57f47d8", "PatientOrderUuid": "nope"}', 400,
     "PatientOrderUuid is not a UUID"),
    ('{"PatientOrderInstitutionUuid": "4f33177f-8441-4143-bb35-184dd57f47d8", "PatientOrderUuid": true}', 400,
     "must be sent as a JSON string"),
    ('{"PatientOrderInstitutionUuid": "4f33177f-8441-4143-bb35-184dd57f47d8", '
     '"PatientOrderUuid": "00000000-0000-4000-8000-000000000000"}', 404, "unknown PatientOrderUuid"),
])
def test_parameter_header_errors_name_the_problem(sandbox_server, raw, status, reason):
    with api_client(sandbox_server) as client:
        headers = {} if raw is None else {"GetPatientOrderPropertiesParameters": raw}
        response = client.get("/getpatientorderproperties", headers=headers)
    assert response.status_code == status
    assert reason in response.headers["x-error-reason"]
    assert response.json()["Error"] == response.headers["x-error-reason"]


@pytest.mark.parametrize("params, reason", [
    ({"FolderName": "", "ParentFolderUuid": ""}, "missing required parameter FolderName"),
    ({"FolderName": "x", "GetOrdersInFolder": "yes"}, None),
])
def test_bool_and_required_checks(sandbox_server, params, reason):
    with api_client(sandbox_server) as client:
        created = client.get("/createfolder", headers={"CreateFolderParameters": json.dumps(params)})
        searched = client.get("/searchfolder", headers={"SearchFolderParameters": json.dumps(params)})
    if reason:
        assert created.status_code == 400 and created.headers["x-error-reason"] == reason
    else:
        assert searched.status_code == 400 and "GetOrdersInFolder must be True or False" in searched.headers[
            "x-error-reason"]


def test_bad_dates_and_oversized_headers(sandbox_server):
    with api_client(sandbox_server) as client:
        bad_date = vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                              InstitutionUuidList=[], StudyDateFrom="17/05/2019")
        assert bad_date.status_code == 400 and "StudyDateFrom" in bad_date.headers["x-error-reason"]
        impossible = vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                                InstitutionUuidList=[], StudyDateTo="2019-02-30")
        assert impossible.status_code == 400
        many = [str(uuid.uuid4()) for _ in range(500)]
        too_big = vendor_get(client, "/sharepatientorderwithurl", "SharePatientOrderParameters",
                             OrderUuidList=many, ExpireDate=TOMORROW, SharePassword="", UserCanDownloadStudies=False)
        assert too_big.status_code == 431 and "16384" in too_big.headers["x-error-reason"]
        not_list = vendor_get(client, "/getpatientorderlist", "GetPatientOrderListParameters",
                              raw_params=json.dumps({"InstitutionUuidList": "not a list"}))
        assert not_list.status_code == 400 and "InstitutionUuidList" in not_list.headers["x-error-reason"]
        wrong_method = client.post("/getpatientorderlist")
        assert wrong_method.status_code == 405 and wrong_method.headers["x-error-reason"]
