"""``--answer-shapes alternative``: the same content in the shapes a .NET service may send (docs/sandbox.md)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest

from postdicom.synthetic import StudySpec, write_study
from sandbox.shapes import ENVELOPES, _reshape
from tests.fixtures.sandbox_server import api_client, control_post, sandbox_answer_shapes, vendor_get, vendor_stow

IN_A_MONTH = (dt.date.today() + dt.timedelta(days=30)).isoformat()
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}T00:00:00")


def normalised(value: Any) -> Any:
    """Both shapes brought to one: lower-case keys, scalars as text, no empty lists, dates as digits."""
    if isinstance(value, dict):
        return {k.lower(): normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value] or None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}(T00:00:00)?", value):
        return value[:10].replace("-", "")
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:00)?", value):
        return value[:16].replace("T", " ")
    return value if value is None else str(value)


@pytest.fixture(scope="module")
def alternative(tmp_path_factory):
    """A sandbox started with ``--answer-shapes alternative``, holding one stored study."""
    from tests.fixtures.sandbox_server import launch

    tmp = tmp_path_factory.mktemp("shapes")
    process = launch(tmp, args=("--answer-shapes", "alternative"))
    info = process.info()
    spec = StudySpec("Shape^Sam", "SHAPE-1", "CT", instances_per_series=3, rows=8, columns=8, seed="shapes",
                     study_date=dt.date(2026, 11, 27), accession_number="SHAPEACC")
    with api_client(info) as client:
        assert {r.status_code for r in vendor_stow(client, write_study(tmp / "study", spec))} == {200}
    yield info
    process.stop()


def call(client: httpx.Client, path: str, header: str, **params: Any) -> httpx.Response:
    answer = vendor_get(client, path, header, **params)
    assert answer.status_code == 200, answer.headers.get("x-error-reason")
    return answer


def test_every_custom_endpoint_answers_its_alternative_shape(alternative):
    info = alternative
    inst = info.extra["institution_uuid"]
    user = info.extra["account"]["Institutions"][0]["Users"][0]["UserUuid"]
    assert "Answers    : alternative shapes" in open(info.extra["log_path"]).read()
    with api_client(info) as client:
        listed = call(client, "/getpatientorderlist", "GetPatientOrderListParameters", InstitutionUuidList=[],
                      PatientId="SHAPE-1")
        assert listed.headers["x-error-reason"] == "Success"
        body = listed.json()
        assert set(body) == {"data", "totalCount", "success"} and body["totalCount"] == "1"
        (row,) = body["data"]
        assert row["patientId"] == "SHAPE-1" and row["numberOfInstances"] == "3"
        assert row["studyDate"] == "2026-11-27T00:00:00" and ISO_DAY.fullmatch(row["patientBirthdate"])
        assert row["modalityList"] == ["CT"] and row["assignedUserUuid"] is None
        order = row["patientOrderUuid"]
        nothing = call(client, "/getpatientorderlist", "GetPatientOrderListParameters", InstitutionUuidList=[],
                       PatientId="NOBODY-HERE").json()
        assert nothing == {"data": None, "totalCount": "0", "success": "True"}

        properties = call(client, "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
                          PatientOrderInstitutionUuid=inst, PatientOrderUuid=order).json()
        assert properties["studyDate"] == "20261127" and properties["numberOfSeries"] == "1"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00", properties["createdDatetime"])
        assert properties["folderUuidList"] is None and properties["seriesList"][0]["numberOfInstances"] == "3"

        tags = call(client, "/getdicomtagcontent", "GetDicomTagContentParameters", PatientOrderInstitutionUuid=inst,
                    PatientOrderUuid=order, DicomTagIdList=["PatientID", "StudyDate"]).json()
        assert set(tags) == {"result"} and tags["result"]["patientOrderUuid"] == order
        assert {(r["keyword"], tuple(r["values"])) for r in tags["result"]["items"]} == {
            ("PatientID", ("SHAPE-1",)), ("StudyDate", ("20261127",))}

        folder = call(client, "/createfolder", "CreateFolderParameters", FolderName="Shapes").json()
        assert set(folder) == {"result"} and folder["result"]["folderName"] == "Shapes"
        assert folder["result"]["parentFolderUuid"] is None
        folder_uuid = folder["result"]["folderUuid"]
        found = call(client, "/searchfolder", "SearchFolderParameters", FolderName="Shapes",
                     GetOrdersInFolder=True).json()
        assert isinstance(found, list) and found[0]["patientOrderUuidList"] is None

        for path, header, params in (
                ("/addordertofolder", "AddOrderToFolderParameters",
                 {"PatientOrderUuid": order, "FolderUuidList": [folder_uuid]}),
                ("/assignordertouser", "AssignOrderToUserParameters",
                 {"PatientOrderUuid": order, "AssignedUserUuid": user})):
            written = call(client, path, header, **params)
            assert written.content == b"" and written.headers["x-error-reason"] == ""
        found = call(client, "/searchfolder", "SearchFolderParameters", FolderName="Shapes",
                     GetOrdersInFolder=True).json()
        assert found[0]["patientOrderUuidList"] == [order]

        shared = call(client, "/sharepatientorderwithurl", "SharePatientOrderParameters", OrderUuidList=[order],
                      ExpireDate=IN_A_MONTH, SharePassword="", UserCanDownloadStudies=False).json()
        assert shared["expireDate"] == IN_A_MONTH.replace("-", "") and shared["passwordProtected"] == "False"
        assert httpx.get(shared["shareUrl"], timeout=10).status_code == 200

        created = call(client, "/createpatientorder", "CreatePatientOrderParameters", InstitutionUuid=inst,
                       PatientName="Shape^New", PatientId="SHAPE-2", PatientBirthdate="1980-02-29",
                       Modality="MR").json()
        assert created["orderStatus"] == "Scheduled" and created["accessionNumber"].startswith("SBX")
        deleted = call(client, "/deleteorder", "DeleteOrderParameters", PatientOrderInstitutionUuid=inst,
                       PatientOrderUuid=created["patientOrderUuid"])
        assert deleted.content == b""
        gone = vendor_get(client, "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
                          PatientOrderInstitutionUuid=inst, PatientOrderUuid=created["patientOrderUuid"])
        assert gone.status_code == 404 and set(gone.json()) == {"Error"}


def test_the_control_route_switches_shapes_and_the_content_stays_the_same(alternative):
    info = alternative
    inst = info.extra["institution_uuid"]
    with api_client(info) as client:
        def both(path: str, header: str, **params: Any) -> tuple[Any, Any]:
            alternative_answer = call(client, path, header, **params).json()
            with sandbox_answer_shapes(info, "documented"):
                documented = call(client, path, header, **params)
                assert "x-error-reason" not in documented.headers
            return documented.json(), alternative_answer

        documented, _ = both("/getpatientorderlist", "GetPatientOrderListParameters", InstitutionUuidList=[],
                             PatientId="SHAPE-1")
        order = documented["PatientOrderList"][0]["PatientOrderUuid"]
        documented, reshaped = both("/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
                                    PatientOrderInstitutionUuid=inst, PatientOrderUuid=order)
        assert normalised(reshaped) == normalised(documented)
        documented, reshaped = both("/getpatientorderlist", "GetPatientOrderListParameters", InstitutionUuidList=[],
                                    PatientId="SHAPE-1")
        assert normalised(reshaped["data"]) == normalised(documented["PatientOrderList"])
    assert control_post(info, "/_sandbox/answers", {"shapes": "pascal"}).status_code == 400
    assert httpx.get(info.root_url + "/_sandbox/answers", timeout=10).json() == {"shapes": "alternative"}


def test_envelopes_are_named_for_real_endpoints():
    from sandbox.custom import ENDPOINTS

    assert set(ENVELOPES) <= {e.function for e in ENDPOINTS}
    assert _reshape({"ExpireDate": "2026-12-31", "Values": ["2026-12-31"], "Count": 0, "Ok": True, "L": []},
                    "", False) == {"expireDate": "20261231", "values": ["2026-12-31"], "count": "0", "ok": "True",
                                   "l": None}
