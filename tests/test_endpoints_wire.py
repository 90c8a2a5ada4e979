"""What the 13 custom endpoints put on the wire, how they refuse bad input, split, retry and parse.

Every request is captured by an ``httpx.MockTransport`` behind a real
``PostDicomClient``; the tasks are called through ``task.fn`` with the block's
``get_client`` handing out such a client. The expected header objects are
written out from the wire-protocol reference: they are the specification.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import pydoc
import runpy
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import tasks
from blocks import PostDicomCredentials
from postdicom import PostDicomClient, RetryPolicy
from postdicom import endpoint_table as table
from postdicom import models, wire
from postdicom.endpoint_row import Endpoint, Safety
from postdicom.errors import (
    BadRequestError,
    HeaderTooLargeError,
    NotFoundError,
    ProtocolError,
    ServerError,
    TransportError,
    ValidationError,
)
from tasks import custom

REPO = Path(__file__).resolve().parents[1]
BASE = "http://pd.test/dicomweb"

INST = "4f33177f-8441-4143-bb35-184dd57f47d8"
INST2 = "1d63b377-198b-4169-95f1-dd8bdee432db"
O1 = "0c6e1f8a-3b7d-4c2e-9a51-7d2f0e6b1a01"
O2 = "0c6e1f8a-3b7d-4c2e-9a51-7d2f0e6b1a02"
F1 = "5b1d2c3e-4f50-4a61-8b72-9c83d4e5f601"
F2 = "5b1d2c3e-4f50-4a61-8b72-9c83d4e5f602"
USER = "9d02eb73-8dd5-4798-9962-621dcebf7caf"
GROUP = "0734b2de-8bce-46c2-856e-bfd52bea559f"
EQUIP = "7fe7db06-7c79-49c3-b703-25dcae3600fe"
SERIES = "e2a7c9d0-1b2c-4d3e-8f40-5a6b7c8d9e01"
SHARE_TOKEN = "tok-7Qv9-do-not-log-me"

SHARE = {
    "ShareUuid": "3c9e4d1f-0a2b-4c5d-8e6f-7a8b9c0d1e2f",
    "ShareUrl": f"http://pd.test/share/{SHARE_TOKEN}",
    "ExpireDate": "2026-12-31",
    "PasswordProtected": True,
    "Downloadable": False,
    "PatientOrderUuidList": [O1, O2],
    "FolderUuid": None,
    "ShareTitle": None,
    "ShareDescription": None,
}
ORDER_SUMMARY = {
    "PatientOrderUuid": O1, "InstitutionUuid": INST, "OrderStatus": "Completed",
    "PatientName": "Muñoz^José", "PatientId": "HSB-0001", "OtherPatientId": "", "PatientSex": "M",
    "PatientBirthdate": "1961-03-14", "AccessionNumber": "ACC-1001", "Modality": "CT", "ModalityList": ["CT", "SR"],
    "StudyInstanceUid": "1.2.3", "StudyDate": "2026-11-27", "StudyDescription": "TC Tórax",
    "AssignedUserUuid": None, "AssignedUserGroupUuid": None, "NumberOfSeries": 2, "NumberOfInstances": 40,
}
EXAMPLES: dict[str, dict[str, Any]] = {
    "/createsharelink": SHARE,
    "/sharepatientorderwithurl": SHARE,
    "/sharefolderwithurl": {**SHARE, "PatientOrderUuidList": [O1], "FolderUuid": F1, "ShareTitle": "Tumour board",
                            "ExpireDate": None, "PasswordProtected": False},
    "/createfolder": {"FolderUuid": F1, "FolderName": "Trauma 2026", "FolderDescription": "", "ParentFolderUuid": None},
    "/searchfolder": {"FolderList": [{"FolderUuid": F1, "FolderName": "Trauma 2026", "FolderDescription": "",
                                      "ParentFolderUuid": None, "PatientOrderUuidList": [O1]}]},
    "/addordertofolder": {"PatientOrderUuid": O1, "FolderUuidList": [F1, F2], "AddedFolderUuidList": [F2]},
    "/assignordertouser": {"PatientOrderUuid": O1, "AssignedUserUuid": USER, "PreviousAssignedUserUuid": None,
                           "Changed": True},
    "/assignordertousergroup": {"PatientOrderUuid": O1, "AssignedUserGroupUuid": GROUP,
                                "PreviousAssignedUserGroupUuid": None, "Changed": True},
    "/createpatientorder": {"PatientOrderUuid": O1, "InstitutionUuid": INST, "AccessionNumber": "ACC-1001",
                            "OrderStatus": "Scheduled"},
    "/getpatientorderproperties": {
        **ORDER_SUMMARY, "StudyTime": "14:03:00", "PatientComplaints": "", "OrderScheduledDatetime": "2026-11-27 14:00",
        "RequestedProcedureId": "", "RequestedProcedureDescription": "", "RequestingPhysician": "",
        "ReferringPhysiciansName": "", "ScheduledEquipmentUuid": None, "FolderUuidList": [F1],
        "SeriesList": [{"PatientSeriesUuid": SERIES, "SeriesInstanceUid": "1.2.3.1", "Modality": "CT",
                        "SeriesNumber": 1, "SeriesDescription": "Axial", "NumberOfInstances": 20}],
        "CreatedDatetime": "2026-11-27 14:05",
    },
    "/getpatientorderlist": {"PatientOrderList": [ORDER_SUMMARY]},
    "/deleteorder": {"PatientOrderUuid": O1, "Deleted": True, "DeletedInstanceCount": 40},
    "/getdicomtagcontent": {"PatientOrderUuid": O1, "DicomTagContentList": [
        {"PatientSeriesUuid": SERIES, "SeriesInstanceUid": "1.2.3.1", "SopInstanceUid": None, "TagId": "00100010",
         "Keyword": "PatientName", "Vr": "PN", "Values": ["Muñoz^José"]}]},
}

Step = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakePostDicom:
    """A scripted PostDICOM: records every request; per path, scripted steps first, then the documented example."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: dict[str, list[Step]] = defaultdict(list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/dicomweb")
        if self.script[path]:
            step = self.script[path].pop(0)
            if isinstance(step, Exception):
                raise step
            return step(request) if callable(step) else step
        return httpx.Response(200, json=EXAMPLES[path])

    def client(self, attempts: int = 3) -> PostDicomClient:
        return PostDicomClient(BASE, "radiology@example.org", "account-pw", transport=httpx.MockTransport(self.handler),
                               retry=RetryPolicy(attempts=attempts, backoff=0.0, jitter=0.0))

    def paths(self) -> list[str]:
        return [r.url.path.removeprefix("/dicomweb") for r in self.requests]


def params_of(request: httpx.Request) -> dict[str, str]:
    """The one parameter header of a custom-endpoint request, decoded."""
    headers = [k for k in request.headers if k.lower().endswith("parameters")]
    assert len(headers) == 1, headers
    return json.loads(request.headers[headers[0]])


def status(code: int, reason: str = "scripted failure") -> httpx.Response:
    return httpx.Response(code, json={"Error": reason}, headers={"X-Error-Reason": reason})


@pytest.fixture
def fake() -> FakePostDicom:
    return FakePostDicom()


@pytest.fixture
def client(fake: FakePostDicom) -> PostDicomClient:
    return fake.client()


@pytest.fixture
def creds(fake: FakePostDicom, monkeypatch: pytest.MonkeyPatch) -> PostDicomCredentials:
    """A block whose clients talk to ``fake`` (only the transport and the backoff differ from the real ones)."""
    monkeypatch.setattr(PostDicomCredentials, "get_client", lambda self: fake.client(attempts=self.max_retries + 1))
    return PostDicomCredentials(username="radiology@example.org", password="account-pw", web_address=BASE)


def order_info(*uuids: str) -> str:
    return "[" + ",".join(f'"{{\\"PatientOrderUuid\\":\\"{u}\\"}}"' for u in uuids) + "]"


# --------------------------------------------------------------------------- exact wire, every task

WIRE_CASES: list[tuple[str, dict[str, Any], str, str, dict[str, str]]] = [
    ("create_share_link", dict(patient_order_info_list=[O1, O2], expire_date=dt.date(2026, 12, 31)),
     "/createsharelink", "ShareParameters",
     {"PatientOrderInfoList": order_info(O1, O2), "ExpireDate": "2026-12-31", "SharePassword": "",
      "Downloadable": ""}),
    ("create_share_link", dict(patient_order_info_list=[uuid.UUID(O1)], expire_date="2026-12-31",
                               share_password=SecretStr("clave-Ñandú"), downloadable=False),
     "/createsharelink", "ShareParameters",
     {"PatientOrderInfoList": order_info(O1), "ExpireDate": "2026-12-31", "SharePassword": "clave-Ñandú",
      "Downloadable": "False"}),
    ("share_patient_order_with_url", dict(order_uuid_list=[O1, O2], expire_date="2027-01-15"),
     "/sharepatientorderwithurl", "SharePatientOrderParameters",
     {"OrderUuidList": f'["{O1}","{O2}"]', "ExpireDate": "2027-01-15", "SharePassword": "",
      "UserCanDownloadStudies": ""}),
    ("share_patient_order_with_url", dict(order_uuid_list=(O1.upper(),), expire_date=dt.datetime(2027, 1, 15, 23, 59),
                                          share_password="plain-pw", user_can_download_studies=True),
     "/sharepatientorderwithurl", "SharePatientOrderParameters",
     {"OrderUuidList": f'["{O1}"]', "ExpireDate": "2027-01-15", "SharePassword": "plain-pw",
      "UserCanDownloadStudies": "True"}),
    ("create_folder", dict(folder_name="Trauma 2026"), "/createfolder", "CreateFolderParameters",
     {"FolderName": "Trauma 2026", "FolderDescription": "", "ParentFolderUuid": ""}),
    ("create_folder", dict(folder_name="Tórax – Núñez", folder_description="Casos de María José",
                           parent_folder_uuid=F2.upper()),
     "/createfolder", "CreateFolderParameters",
     {"FolderName": "Tórax – Núñez", "FolderDescription": "Casos de María José", "ParentFolderUuid": F2}),
    ("search_folder", dict(), "/searchfolder", "SearchFolderParameters",
     {"ParentFolderUuid": "", "FolderName": "", "GetOrdersInFolder": ""}),
    ("search_folder", dict(parent_folder_uuid=F1, folder_name="trauma", get_orders_in_folder=True),
     "/searchfolder", "SearchFolderParameters",
     {"ParentFolderUuid": F1, "FolderName": "trauma", "GetOrdersInFolder": "True"}),
    ("share_folder_with_url", dict(folder_uuid=F1), "/sharefolderwithurl", "ShareFolderParameters",
     {"FolderUuid": F1, "SharePassword": "", "ShareTitle": "", "ShareDescription": "", "ExpireDate": "",
      "UserCanDownloadStudies": ""}),
    ("share_folder_with_url", dict(folder_uuid=F1, share_password=SecretStr("x"), share_title="Comité",
                                   share_description="Casos del lunes", expire_date="2026-02-28",
                                   user_can_download_studies=False),
     "/sharefolderwithurl", "ShareFolderParameters",
     {"FolderUuid": F1, "SharePassword": "x", "ShareTitle": "Comité", "ShareDescription": "Casos del lunes",
      "ExpireDate": "2026-02-28", "UserCanDownloadStudies": "False"}),
    ("add_order_to_folder", dict(patient_order_uuid=O1, folder_uuid_list=[F1, F2]),
     "/addordertofolder", "AddOrderToFolderParameters",
     {"PatientOrderUuid": O1, "FolderUuidList": f'["{F1}","{F2}"]'}),
    ("assign_order_to_user", dict(patient_order_uuid=O1, assigned_user_uuid=USER),
     "/assignordertouser", "AssignOrderToUserParameters",
     {"PatientOrderUuid": O1, "AssignedUserUuid": USER}),
    ("assign_order_to_user_group", dict(patient_order_uuid=O1, assigned_user_group_uuid=GROUP),
     "/assignordertousergroup", "AssignOrderToUserGroupParameters",
     {"PatientOrderUuid": O1, "AssignedUserGroupUuid": GROUP}),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="Muñoz^José", patient_id="HSB-0001",
                                  patient_birthdate=dt.date(1961, 3, 14), modality="CT"),
     "/createpatientorder", "CreatePatientOrderParameters",
     {"InstitutionUuid": INST, "PatientName": "Muñoz^José", "PatientId": "HSB-0001", "OtherPatientId": "",
      "PatientSex": "", "PatientBirthdate": "1961-03-14", "Modality": "CT", "StudyDescription": "",
      "AccessionNumber": "", "PatientComplaints": "", "OrderScheduledDatetime": "", "RequestedProcedureId": "",
      "RequestedProcedureDescription": "", "RequestingPhysician": "", "ReferringPhysiciansName": "",
      "ScheduledEquipmentUuid": ""}),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="Núñez^María José", patient_id="HSB-0002",
                                  patient_birthdate="1984-07-02", modality="mr", other_patient_id="DNI 12345678Z",
                                  patient_sex="f", study_description="RM Cerebro", accession_number="ACC-1002",
                                  patient_complaints="Cefalea desde hace 3 días",
                                  order_scheduled_datetime=dt.datetime(2026, 11, 27, 14, 5, 59),
                                  requested_procedure_id="RP-7", requested_procedure_description="RM craneal",
                                  requesting_physician="Dr. Peña", referring_physicians_name="Dra. Ibáñez",
                                  scheduled_equipment_uuid=EQUIP),
     "/createpatientorder", "CreatePatientOrderParameters",
     {"InstitutionUuid": INST, "PatientName": "Núñez^María José", "PatientId": "HSB-0002",
      "OtherPatientId": "DNI 12345678Z", "PatientSex": "F", "PatientBirthdate": "1984-07-02", "Modality": "MR",
      "StudyDescription": "RM Cerebro", "AccessionNumber": "ACC-1002",
      "PatientComplaints": "Cefalea desde hace 3 días", "OrderScheduledDatetime": "2026-11-27 14:05",
      "RequestedProcedureId": "RP-7", "RequestedProcedureDescription": "RM craneal",
      "RequestingPhysician": "Dr. Peña", "ReferringPhysiciansName": "Dra. Ibáñez", "ScheduledEquipmentUuid": EQUIP}),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="Smith^Anna", patient_id="P3",
                                  patient_birthdate="2000-02-29", modality="US",
                                  order_scheduled_datetime="2026-11-27T09:30"),
     "/createpatientorder", "CreatePatientOrderParameters",
     {"InstitutionUuid": INST, "PatientName": "Smith^Anna", "PatientId": "P3", "OtherPatientId": "",
      "PatientSex": "", "PatientBirthdate": "2000-02-29", "Modality": "US", "StudyDescription": "",
      "AccessionNumber": "", "PatientComplaints": "", "OrderScheduledDatetime": "2026-11-27 09:30",
      "RequestedProcedureId": "", "RequestedProcedureDescription": "", "RequestingPhysician": "",
      "ReferringPhysiciansName": "", "ScheduledEquipmentUuid": ""}),
    ("get_patient_order_properties", dict(patient_order_institution_uuid=INST, patient_order_uuid=O1),
     "/getpatientorderproperties", "GetPatientOrderPropertiesParameters",
     {"PatientOrderInstitutionUuid": INST, "PatientOrderUuid": O1}),
    ("get_patient_order_list", dict(institution_uuid_list=[INST]),
     "/getpatientorderlist", "GetPatientOrderListParameters",
     {"InstitutionUuidList": f'["{INST}"]', "PatientName": "", "PatientId": "", "OtherPatientId": "",
      "AccessionNumber": "", "ModalityList": "", "StudyDateFrom": "", "StudyDateTo": "", "PatientBirthdateFrom": "",
      "PatientBirthdateTo": ""}),
    ("get_patient_order_list", dict(institution_uuid_list=[], patient_name="Muñoz*", patient_id="HSB",
                                    other_patient_id="X-1", accession_number="ACC-1001", modality_list=["ct", "MR"],
                                    study_date_from=dt.date(2026, 1, 1), study_date_to="2026-12-31",
                                    patient_birthdate_from="1950-01-01", patient_birthdate_to=dt.date(1999, 12, 31)),
     "/getpatientorderlist", "GetPatientOrderListParameters",
     {"InstitutionUuidList": '[""]', "PatientName": "Muñoz*", "PatientId": "HSB", "OtherPatientId": "X-1",
      "AccessionNumber": "ACC-1001", "ModalityList": '["CT","MR"]', "StudyDateFrom": "2026-01-01",
      "StudyDateTo": "2026-12-31", "PatientBirthdateFrom": "1950-01-01", "PatientBirthdateTo": "1999-12-31"}),
    ("get_patient_order_list", dict(institution_uuid_list=[""], modality_list=[]),
     "/getpatientorderlist", "GetPatientOrderListParameters",
     {"InstitutionUuidList": '[""]', "PatientName": "", "PatientId": "", "OtherPatientId": "",
      "AccessionNumber": "", "ModalityList": "", "StudyDateFrom": "", "StudyDateTo": "", "PatientBirthdateFrom": "",
      "PatientBirthdateTo": ""}),
    ("delete_patient_order", dict(patient_order_institution_uuid=INST, patient_order_uuid=O1),
     "/deleteorder", "DeleteOrderParameters",
     {"PatientOrderInstitutionUuid": INST, "PatientOrderUuid": O1}),
    ("get_dicom_tag_content", dict(patient_order_institution_uuid=INST, patient_order_uuid=O1),
     "/getdicomtagcontent", "GetDicomTagContentParameters",
     {"PatientOrderInstitutionUuid": INST, "PatientOrderUuid": O1, "PatientSeriesUuid": "", "DicomTagIdList": ""}),
    ("get_dicom_tag_content", dict(patient_order_institution_uuid=INST, patient_order_uuid=O1,
                                   patient_series_uuid=SERIES,
                                   dicom_tag_id_list=["PatientName", "0010,0020", "(0008,0060)", "00100030",
                                                      0x00080020]),
     "/getdicomtagcontent", "GetDicomTagContentParameters",
     {"PatientOrderInstitutionUuid": INST, "PatientOrderUuid": O1, "PatientSeriesUuid": SERIES,
      "DicomTagIdList": '["00100010","00100020","00080060","00100030","00080020"]'}),
]


@pytest.mark.parametrize(("name", "kwargs", "path", "header", "expected"), WIRE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(WIRE_CASES)])
def test_each_task_sends_exactly_the_documented_header(fake, creds, name, kwargs, path, header, expected):
    answer = getattr(tasks, name).fn(creds, **kwargs)

    # create_folder first notes the folders of that name (to recognise its own after a lost answer)
    assert fake.paths() == (["/searchfolder", path] if name == "create_folder" else [path])
    request = fake.requests[-1]
    assert request.method == "GET"
    assert request.url.path == "/dicomweb" + path
    assert request.content == b""
    custom_headers = [k for k in request.headers if k.lower().endswith("parameters")]
    assert custom_headers == [header.lower()]
    raw = request.headers[header]
    raw.encode("ascii")  # pure ASCII on the wire, whatever the text
    sent = json.loads(raw)
    assert sent == expected
    assert list(sent) == list(expected)  # the vendor's key order
    assert all(isinstance(v, str) for v in sent.values())
    assert isinstance(answer, table.endpoint(name).answer)
    assert answer.raw == EXAMPLES[path]


def test_the_client_methods_send_the_same_as_the_tasks(fake, client):
    for name, kwargs, path, header, expected in WIRE_CASES:
        getattr(client, name)(**kwargs)
        assert params_of(fake.requests[-1]) == expected, name
    creates_of_folders = sum(1 for case in WIRE_CASES if case[0] == "create_folder")
    assert len(fake.requests) == len(WIRE_CASES) + creates_of_folders


def test_order_info_list_is_three_levels_deep(fake, client):
    client.create_share_link([O1, O2], "2026-12-31")
    value = params_of(fake.requests[0])["PatientOrderInfoList"]
    items = json.loads(value)
    assert isinstance(items, list) and all(isinstance(i, str) for i in items)
    assert [json.loads(i) for i in items] == [{"PatientOrderUuid": O1}, {"PatientOrderUuid": O2}]


def test_non_ascii_travels_as_json_escapes_and_arrives_intact(fake, client):
    client.create_patient_order(INST, "Muñoz^José", "HSB-0001", "1961-03-14", "CT",
                                study_description="山田 Παπαδόπουλος")
    raw = fake.requests[0].headers["CreatePatientOrderParameters"]
    assert "Mu\\u00f1oz^Jos\\u00e9" in raw
    assert raw.isascii()
    decoded = json.loads(raw)
    assert decoded["PatientName"] == "Muñoz^José"
    assert decoded["StudyDescription"] == "山田 Παπαδόπουλος"


def test_the_client_uses_basic_auth_and_no_body(fake, client):
    client.search_folder()
    request = fake.requests[0]
    assert request.headers["Authorization"].startswith("Basic ")
    assert "content-length" not in request.headers or request.headers["content-length"] == "0"


# --------------------------------------------------------------------------- validation before sending

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("create_patient_order", dict(institution_uuid=INST, patient_name="A^B", patient_id="1",
                                  patient_birthdate="1970-01-01", modality=None), "modality (Modality) is required"),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="", patient_id="1",
                                  patient_birthdate="1970-01-01", modality="CT"),
     "patient_name (PatientName) is required"),
    ("create_patient_order", dict(institution_uuid="not-a-uuid", patient_name="A^B", patient_id="1",
                                  patient_birthdate="1970-01-01", modality="CT"), "institution_uuid (InstitutionUuid)"),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="A^B", patient_id="1",
                                  patient_birthdate="1970-02-30", modality="CT"), "not a real date"),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="A^B", patient_id="1",
                                  patient_birthdate="31/01/1970", modality="CT"), "patient_birthdate"),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="A^B", patient_id="1",
                                  patient_birthdate="1970-01-01", modality="TC"), "modality (Modality)"),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="A^B", patient_id="1",
                                  patient_birthdate="1970-01-01", modality="CT", patient_sex="X"), "patient_sex"),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="A^B", patient_id="1",
                                  patient_birthdate="1970-01-01", modality="CT",
                                  order_scheduled_datetime="2026-11-27 25:00"), "order_scheduled_datetime"),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="A^B", patient_id="1",
                                  patient_birthdate="1970-01-01", modality="CT",
                                  order_scheduled_datetime=dt.date(2026, 11, 27)), "order_scheduled_datetime"),
    ("create_patient_order", dict(institution_uuid=INST, patient_name="A^B", patient_id="1",
                                  patient_birthdate="1970-01-01", modality="CT",
                                  scheduled_equipment_uuid="{" + EQUIP + "}"), "scheduled_equipment_uuid"),
    ("create_share_link", dict(patient_order_info_list=[], expire_date="2026-12-31"),
     "patient_order_info_list (PatientOrderInfoList) is required"),
    ("create_share_link", dict(patient_order_info_list=[O1, "O2"], expire_date="2026-12-31"),
     "patient_order_info_list (PatientOrderInfoList)[1]"),
    ("create_share_link", dict(patient_order_info_list=[O1], expire_date="2026-13-01"), "expire_date"),
    ("create_share_link", dict(patient_order_info_list=[O1], expire_date=None), "expire_date (ExpireDate) is required"),
    ("create_share_link", dict(patient_order_info_list=[O1], expire_date="2026-12-31", downloadable="False"),
     "downloadable"),
    ("share_patient_order_with_url", dict(order_uuid_list=O1, expire_date="2026-12-31"), "must be a list"),
    ("add_order_to_folder", dict(patient_order_uuid=O1, folder_uuid_list=[F1, ""]), "folder_uuid_list"),
    ("assign_order_to_user", dict(patient_order_uuid=O1, assigned_user_uuid=USER[:-1]), "assigned_user_uuid"),
    ("get_patient_order_list", dict(institution_uuid_list=[INST], modality_list=["CT", "XYZ"]), "modality_list"),
    ("get_patient_order_list", dict(institution_uuid_list=None), "institution_uuid_list"),
    ("get_patient_order_list", dict(institution_uuid_list=[INST], study_date_to="2026-04-31"), "study_date_to"),
    ("get_dicom_tag_content", dict(patient_order_institution_uuid=INST, patient_order_uuid=O1,
                                   dicom_tag_id_list=["PatientName", "NotATag"]), "dicom_tag_id_list"),
    ("delete_patient_order", dict(patient_order_institution_uuid=INST, patient_order_uuid=None), "patient_order_uuid"),
    ("create_folder", dict(folder_name=None), "folder_name (FolderName) is required"),
    ("search_folder", dict(get_orders_in_folder=1), "get_orders_in_folder"),
]


@pytest.mark.parametrize(("name", "kwargs", "message"), INVALID, ids=[f"{c[0]}-{i}" for i, c in enumerate(INVALID)])
def test_invalid_input_fails_before_any_request(fake, client, creds, name, kwargs, message):
    with pytest.raises(ValidationError) as raised:
        getattr(client, name)(**kwargs)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)
    with pytest.raises(ValidationError):
        getattr(tasks, name).fn(creds, **kwargs)
    assert fake.requests == []


def test_a_missing_required_argument_is_a_type_error_before_any_request(fake, client, creds):
    with pytest.raises(TypeError, match="modality"):
        client.create_patient_order(INST, "A^B", "1", "1970-01-01")
    with pytest.raises(TypeError, match="expire_date"):
        custom.create_share_link.fn(creds, [O1])
    assert fake.requests == []


def test_a_wrong_share_password_type_is_refused_without_showing_it(fake, client):
    with pytest.raises(ValidationError) as raised:
        client.create_share_link([O1], "2026-12-31", share_password=987654321)
    assert "987654321" not in str(raised.value)
    assert "share_password" in str(raised.value)
    assert fake.requests == []


# --------------------------------------------------------------------------- header size: split or refuse


def many_uuids(n: int, prefix: str = "") -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_OID, f"{prefix}{i}")) for i in range(n)]


def test_a_share_of_hundreds_of_orders_is_refused_not_split(fake, client):
    with pytest.raises(HeaderTooLargeError) as raised:
        client.create_share_link(many_uuids(300), "2026-12-31")
    text = str(raised.value)
    assert "8192" in text and "ShareParameters" in text
    assert "share_folder_with_url" in text  # says what to do instead
    assert fake.requests == []
    with pytest.raises(HeaderTooLargeError):
        client.share_patient_order_with_url(many_uuids(300), "2026-12-31")
    assert fake.requests == []


def test_the_safe_size_is_configurable(fake, client, monkeypatch):
    orders = many_uuids(300)
    monkeypatch.setenv(wire.MAX_HEADER_ENV, "65536")
    client.create_share_link(orders, "2026-12-31")
    assert len(fake.requests) == 1
    sent = json.loads(params_of(fake.requests[0])["PatientOrderInfoList"])
    assert [json.loads(item)["PatientOrderUuid"] for item in sent] == orders
    client.max_parameter_header_bytes = 1024
    with pytest.raises(HeaderTooLargeError, match="1024"):
        client.create_share_link(orders[:20], "2026-12-31")
    assert len(fake.requests) == 1


def test_a_long_text_is_refused_where_nothing_can_be_split(fake, client):
    with pytest.raises(HeaderTooLargeError, match="CreatePatientOrder"):
        client.create_patient_order(INST, "A^B", "1", "1970-01-01", "CT", patient_complaints="x" * 9000)
    with pytest.raises(HeaderTooLargeError, match="one item of institution_uuid_list"):
        client.get_patient_order_list([INST, INST2], patient_name="y" * 9000)
    assert fake.requests == []


def echo_order_list(request: httpx.Request) -> httpx.Response:
    """Answers one order per institution asked, dated so that chunks interleave when sorted."""
    institutions = json.loads(params_of(request)["InstitutionUuidList"])
    orders = [{**ORDER_SUMMARY, "PatientOrderUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, inst)),
               "InstitutionUuid": inst, "StudyDate": f"2026-01-{1 + i % 28:02d}"}
              for i, inst in enumerate(institutions)]
    orders.sort(key=lambda o: o["StudyDate"])
    return httpx.Response(200, json={"PatientOrderList": orders})


def test_an_order_list_over_many_institutions_is_split_and_merged(fake, client):
    institutions = many_uuids(400, "inst")
    fake.script["/getpatientorderlist"] = [echo_order_list] * 20

    answer = client.get_patient_order_list(institutions + institutions[:5], modality_list=["CT"])

    assert len(fake.requests) > 1
    sent: list[str] = []
    for request in fake.requests:
        header = request.headers["GetPatientOrderListParameters"]
        assert wire.header_size("GetPatientOrderListParameters", header) <= wire.DEFAULT_MAX_HEADER_BYTES
        params = json.loads(header)
        assert params["ModalityList"] == '["CT"]'  # every call keeps the other filters
        sent += json.loads(params["InstitutionUuidList"])
    assert sent == institutions + institutions[:5]
    assert len(answer.patient_order_list) == 400  # each order once
    assert {o.institution_uuid for o in answer.patient_order_list} == set(institutions)
    dates = [o.study_date for o in answer.patient_order_list]
    assert dates == sorted(dates)
    assert answer.raw["PatientOrderList"][0]["PatientOrderUuid"] == answer.patient_order_list[0].patient_order_uuid


def test_adding_an_order_to_many_folders_is_split_and_merged(fake, client):
    folders = many_uuids(300, "folder")
    state: list[str] = []

    def add(request: httpx.Request) -> httpx.Response:
        params = params_of(request)
        asked = json.loads(params["FolderUuidList"])
        state.extend(asked)
        return httpx.Response(200, json={"PatientOrderUuid": params["PatientOrderUuid"], "FolderUuidList": list(state),
                                         "AddedFolderUuidList": asked})

    fake.script["/addordertofolder"] = [add] * 20
    answer = client.add_order_to_folder(O1, folders)
    assert len(fake.requests) > 1
    assert answer.added_folder_uuid_list == folders
    assert answer.folder_uuid_list == folders
    assert answer.patient_order_uuid == O1


def test_many_tags_are_split_and_the_rows_joined(fake, client):
    tags = [f"0009{n:04X}" for n in range(1, 1200)]

    def rows(request: httpx.Request) -> httpx.Response:
        asked = json.loads(params_of(request)["DicomTagIdList"])
        return httpx.Response(200, json={"PatientOrderUuid": O1, "DicomTagContentList": [
            {"PatientSeriesUuid": SERIES, "TagId": t, "Values": [t]} for t in asked]})

    fake.script["/getdicomtagcontent"] = [rows] * 20
    answer = client.get_dicom_tag_content(INST, O1, dicom_tag_id_list=tags)
    assert len(fake.requests) > 1
    assert [r.tag_id for r in answer.dicom_tag_content_list] == tags
    assert answer.patient_order_uuid == O1


def test_the_split_and_refuse_choices_are_in_the_table():
    splittable = {row.python_name for row in table.ENDPOINTS if row.split}
    assert splittable == {"get_patient_order_list", "add_order_to_folder", "get_dicom_tag_content"}
    for row in table.ENDPOINTS:
        assert row.split or row.too_large, row.vendor_name


# --------------------------------------------------------------------------- retries, per row


def test_a_read_is_retried_after_a_503_and_a_read_timeout(fake, client):
    fake.script["/getpatientorderproperties"] = [status(503), httpx.ReadTimeout("slow")]
    answer = client.get_patient_order_properties(INST, O1)
    assert answer.patient_order_uuid == O1
    assert fake.paths() == ["/getpatientorderproperties"] * 3


def test_a_read_is_not_retried_on_a_400_and_the_reason_surfaces(fake, client):
    fake.script["/getpatientorderlist"] = [status(400, "unknown InstitutionUuidList item")]
    with pytest.raises(BadRequestError, match="unknown InstitutionUuidList item"):
        client.get_patient_order_list([INST])
    assert len(fake.requests) == 1


@pytest.mark.parametrize("failure", [status(503), httpx.ReadTimeout("answer lost"), status(500)])
@pytest.mark.parametrize("name", ["create_share_link", "share_patient_order_with_url", "share_folder_with_url"])
def test_a_share_is_never_sent_again_once_it_may_have_arrived(fake, client, name, failure):
    kwargs = {"create_share_link": dict(patient_order_info_list=[O1], expire_date="2026-12-31"),
              "share_patient_order_with_url": dict(order_uuid_list=[O1], expire_date="2026-12-31"),
              "share_folder_with_url": dict(folder_uuid=F1)}[name]
    fake.script[table.endpoint(name).path] = [failure]
    with pytest.raises((ServerError, TransportError)):
        getattr(client, name)(**kwargs)
    assert len(fake.requests) == 1


def test_a_share_is_sent_again_when_it_certainly_never_left_or_was_throttled(fake, client):
    throttled = httpx.Response(429, headers={"Retry-After": "0"})
    fake.script["/createsharelink"] = [httpx.ConnectError("refused"), throttled]
    answer = client.create_share_link([O1], "2026-12-31")
    assert answer.share_uuid == SHARE["ShareUuid"]
    assert fake.paths() == ["/createsharelink"] * 3


def test_an_order_without_accession_number_is_not_created_twice(fake, client):
    fake.script["/createpatientorder"] = [httpx.ReadTimeout("answer lost")]
    with pytest.raises(TransportError):
        client.create_patient_order(INST, "A^B", "P1", "1970-01-01", "CT")
    assert fake.paths() == ["/createpatientorder"]


def test_an_order_with_accession_number_is_looked_up_before_creating_again(fake, client):
    made = {**ORDER_SUMMARY, "PatientOrderUuid": O2, "OrderStatus": "Scheduled", "AccessionNumber": "ACC-77",
            "PatientId": "P1"}
    fake.script["/createpatientorder"] = [status(503)]
    fake.script["/getpatientorderlist"] = [httpx.Response(200, json={"PatientOrderList": [made]})]

    answer = client.create_patient_order(INST.upper(), "A^B", "P1", "1970-01-01", "CT", accession_number="ACC-77")

    assert fake.paths() == ["/createpatientorder", "/getpatientorderlist"]
    lookup = params_of(fake.requests[1])
    assert lookup["InstitutionUuidList"] == f'["{INST}"]'
    assert lookup["AccessionNumber"] == "ACC-77"
    assert isinstance(answer, models.CreatePatientOrderAnswer)
    assert (answer.patient_order_uuid, answer.accession_number, answer.order_status) == (O2, "ACC-77", "Scheduled")


def test_an_order_not_found_by_the_lookup_is_created_again(fake, client):
    someone_else = {**ORDER_SUMMARY, "PatientOrderUuid": O2, "AccessionNumber": "ACC-77", "PatientId": "OTHER"}
    fake.script["/createpatientorder"] = [httpx.ReadTimeout("answer lost")]
    fake.script["/getpatientorderlist"] = [httpx.Response(200, json={"PatientOrderList": [someone_else]})]
    answer = client.create_patient_order(INST, "A^B", "P1", "1970-01-01", "CT", accession_number="ACC-77")
    assert fake.paths() == ["/createpatientorder", "/getpatientorderlist", "/createpatientorder"]
    assert answer.patient_order_uuid == EXAMPLES["/createpatientorder"]["PatientOrderUuid"]


def test_an_order_create_gives_up_after_the_retry_budget(fake, client):
    fake.script["/createpatientorder"] = [status(503)] * 3
    fake.script["/getpatientorderlist"] = [httpx.Response(200, json={"PatientOrderList": []})] * 3
    with pytest.raises(ServerError):
        client.create_patient_order(INST, "A^B", "P1", "1970-01-01", "CT", accession_number="ACC-77")
    assert fake.paths().count("/createpatientorder") == 3
    assert fake.paths() == ["/createpatientorder", "/getpatientorderlist"] * 2 + ["/createpatientorder"]


def folder_list(*folders: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"FolderList": list(folders)})


def test_a_folder_create_returns_the_folder_an_earlier_attempt_made(fake, client):
    older = {"FolderUuid": F1, "FolderName": "Trauma", "FolderDescription": "", "ParentFolderUuid": None}
    ours = {**older, "FolderUuid": F2}
    similar = {**older, "FolderUuid": str(uuid.uuid4()), "FolderName": "Trauma 2025"}
    fake.script["/searchfolder"] = [folder_list(older, similar), folder_list(older, similar, ours)]
    fake.script["/createfolder"] = [httpx.ReadTimeout("answer lost")]

    answer = client.create_folder(" Trauma ")  # sent as given; the server may trim it, the lookup does too

    assert fake.paths() == ["/searchfolder", "/createfolder", "/searchfolder"]
    assert params_of(fake.requests[0]) == {"ParentFolderUuid": "", "FolderName": "Trauma", "GetOrdersInFolder": ""}
    assert params_of(fake.requests[1])["FolderName"] == " Trauma "
    assert answer.folder_uuid == F2  # not the folder of the same name that was there before


def test_a_folder_create_is_sent_again_when_the_first_left_no_trace(fake, client):
    older = {"FolderUuid": F1, "FolderName": "Trauma", "FolderDescription": "", "ParentFolderUuid": F2}
    fake.script["/searchfolder"] = [folder_list(older), folder_list(older)]
    fake.script["/createfolder"] = [status(503)]
    client.create_folder("Trauma", parent_folder_uuid=F2)
    assert fake.paths() == ["/searchfolder", "/createfolder", "/searchfolder", "/createfolder"]
    assert params_of(fake.requests[0])["ParentFolderUuid"] == F2


def test_a_delete_after_a_lost_answer_finds_the_order_gone(fake, client):
    fake.script["/deleteorder"] = [httpx.ReadTimeout("answer lost")]
    fake.script["/getpatientorderproperties"] = [status(404, "unknown PatientOrderUuid")]
    answer = client.delete_patient_order(INST, O1)
    assert fake.paths() == ["/deleteorder", "/getpatientorderproperties"]
    assert (answer.patient_order_uuid, answer.deleted, answer.deleted_instance_count) == (O1, True, None)


def test_a_delete_is_repeated_when_the_order_is_still_there(fake, client):
    fake.script["/deleteorder"] = [status(503)]
    answer = client.delete_patient_order(INST, O1)
    assert fake.paths() == ["/deleteorder", "/getpatientorderproperties", "/deleteorder"]
    assert answer.deleted_instance_count == 40


def test_a_delete_of_an_unknown_order_is_a_not_found(fake, client):
    fake.script["/deleteorder"] = [status(404, "unknown PatientOrderUuid")]
    with pytest.raises(NotFoundError):
        client.delete_patient_order(INST, O1)
    assert fake.paths() == ["/deleteorder"]


@pytest.mark.parametrize("name", ["assign_order_to_user", "assign_order_to_user_group", "add_order_to_folder"])
def test_idempotent_writes_are_simply_retried(fake, client, name):
    kwargs = {"assign_order_to_user": (O1, USER), "assign_order_to_user_group": (O1, GROUP),
              "add_order_to_folder": (O1, [F1])}[name]
    path = table.endpoint(name).path
    fake.script[path] = [status(503), httpx.ReadTimeout("answer lost")]
    getattr(client, name)(*kwargs)
    assert fake.paths() == [path] * 3


def test_every_row_documents_its_retry_choice():
    choices = {row.python_name: row.safety for row in table.ENDPOINTS}
    assert choices == {
        "create_share_link": Safety.NO_RETRY_AFTER_SEND,
        "share_patient_order_with_url": Safety.NO_RETRY_AFTER_SEND,
        "share_folder_with_url": Safety.NO_RETRY_AFTER_SEND,
        "create_folder": Safety.LOOK_BEFORE_CREATE,
        "create_patient_order": Safety.LOOK_BEFORE_CREATE,
        "search_folder": Safety.READ,
        "get_patient_order_properties": Safety.READ,
        "get_patient_order_list": Safety.READ,
        "get_dicom_tag_content": Safety.READ,
        "add_order_to_folder": Safety.IDEMPOTENT_WRITE,
        "assign_order_to_user": Safety.IDEMPOTENT_WRITE,
        "assign_order_to_user_group": Safety.IDEMPOTENT_WRITE,
        "delete_patient_order": Safety.IDEMPOTENT_WRITE,
    }
    for row in table.ENDPOINTS:
        if row.safety is Safety.LOOK_BEFORE_CREATE:
            assert row.lookup is not None and "looks" in row.retry_doc


def test_task_policies_follow_the_table():
    from prefect.cache_policies import NO_CACHE

    for row in table.ENDPOINTS:
        t = custom.TASKS[row.python_name]
        if row.safety is Safety.READ:
            assert t.retries == 2 and t.cache_expiration is not None
            assert t.cache_policy is not NO_CACHE
        else:
            assert t.cache_policy is NO_CACHE  # mutations are never cached (no secret can reach a key)
            assert t.retries == (2 if row.safety is Safety.IDEMPOTENT_WRITE else 0)


def test_a_retried_task_looks_first(fake, creds, monkeypatch):
    monkeypatch.setattr(custom, "task_run", type("Run", (), {"run_count": 2})())
    fake.script["/getpatientorderproperties"] = [status(404)]
    answer = custom.delete_patient_order.fn(creds, INST, O1)
    assert fake.paths() == ["/getpatientorderproperties"]
    assert answer.deleted is True


# --------------------------------------------------------------------------- answers


def test_answers_are_parsed_tolerantly_and_keep_the_raw_json(fake, client):
    weird = {"patientorderuuid": O1, "ORDERSTATUS": "Completed", "StudyDate": "", "StudyTime": "not a time",
             "SeriesList": None, "FolderUuidList": None, "NumberOfSeries": "2", "SomethingNew": {"x": 1}}
    fake.script["/getpatientorderproperties"] = [httpx.Response(200, json=weird)]
    answer = client.get_patient_order_properties(INST, O1)
    assert answer.patient_order_uuid == O1
    assert answer.order_status == "Completed"
    assert answer.study_date is None and answer.study_time is None
    assert answer.series_list == [] and answer.folder_uuid_list == []
    assert answer.number_of_series == 2
    assert answer.model_extra == {"SomethingNew": {"x": 1}}
    assert answer.raw == weird


def test_documented_answers_become_typed_values(fake, client):
    properties = client.get_patient_order_properties(INST, O1)
    assert properties.patient_birthdate == dt.date(1961, 3, 14)
    assert properties.order_scheduled_datetime == dt.datetime(2026, 11, 27, 14, 0)
    assert properties.study_time == dt.time(14, 3)
    assert properties.series_list[0].number_of_instances == 20
    assert properties.series_list[0].raw["SeriesDescription"] == "Axial"
    share = client.create_share_link([O1, O2], "2026-12-31")
    assert share.expire_date == dt.date(2026, 12, 31) and share.password_protected is True
    assert SHARE_TOKEN not in repr(share) and SHARE_TOKEN not in share.summary()
    assert share.share_url == SHARE["ShareUrl"]
    tags = client.get_dicom_tag_content(INST, O1)
    assert tags.dicom_tag_content_list[0].values == ["Muñoz^José"]


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]"])
def test_an_answer_that_is_not_a_json_object_is_a_protocol_error(fake, client, body):
    fake.script["/searchfolder"] = [httpx.Response(200, content=body)]
    with pytest.raises(ProtocolError, match="SearchFolder"):
        client.search_folder()


def test_answer_models_pickle_with_their_raw_json():
    import pickle

    answer = models.PatientOrderProperties.from_json(EXAMPLES["/getpatientorderproperties"])
    again = pickle.loads(pickle.dumps(answer))
    assert again == answer and again.raw == EXAMPLES["/getpatientorderproperties"]


# --------------------------------------------------------------------------- secrets and logs


def test_the_share_password_and_url_never_reach_the_logs(fake, creds, caplog):
    caplog.set_level(logging.DEBUG)
    fake.script["/createsharelink"] = [status(503)]
    with pytest.raises(ServerError) as raised:
        custom.create_share_link.fn(creds, [O1], "2026-12-31", share_password=SecretStr("pw-Zq81-secret"))
    custom.create_share_link.fn(creds, [O1, O2], "2026-12-31", share_password="pw-Zq81-secret")
    text = caplog.text + str(raised.value)
    assert "pw-Zq81-secret" not in text and "account-pw" not in text
    assert SHARE_TOKEN not in text
    assert "share 2 order(s) until 2026-12-31" in caplog.text  # what was done, with counts


def test_labels_show_counts_and_hide_secrets():
    row = table.endpoint("share_folder_with_url")
    assert row.describe({"folder_uuid": F1, "share_password": "hunter2"}) == f"share folder {F1} until *"
    name = custom._run_name(table.endpoint("add_order_to_folder"))
    assert name(parameters={"patient_order_uuid": O1, "folder_uuid_list": [F1, F2]}) == \
        f"add_order_to_folder: add order {O1} to 2 folder(s)"


# --------------------------------------------------------------------------- interface, docs, extension

PUBLIC = {
    "create_share_link": "credentials, patient_order_info_list, expire_date, share_password=None, downloadable=None",
    "share_patient_order_with_url": "credentials, order_uuid_list, expire_date, share_password=None, "
                                    "user_can_download_studies=None",
    "create_folder": "credentials, folder_name, folder_description=None, parent_folder_uuid=None",
    "search_folder": "credentials, parent_folder_uuid=None, folder_name=None, get_orders_in_folder=None",
    "share_folder_with_url": "credentials, folder_uuid, share_password=None, share_title=None, "
                             "share_description=None, expire_date=None, user_can_download_studies=None",
    "add_order_to_folder": "credentials, patient_order_uuid, folder_uuid_list",
    "assign_order_to_user": "credentials, patient_order_uuid, assigned_user_uuid",
    "assign_order_to_user_group": "credentials, patient_order_uuid, assigned_user_group_uuid",
    "create_patient_order": "credentials, institution_uuid, patient_name, patient_id, patient_birthdate, modality, "
                            "other_patient_id=None, patient_sex=None, study_description=None, accession_number=None, "
                            "patient_complaints=None, order_scheduled_datetime=None, requested_procedure_id=None, "
                            "requested_procedure_description=None, requesting_physician=None, "
                            "referring_physicians_name=None, scheduled_equipment_uuid=None",
    "get_patient_order_properties": "credentials, patient_order_institution_uuid, patient_order_uuid",
    "get_patient_order_list": "credentials, institution_uuid_list, patient_name=None, patient_id=None, "
                              "other_patient_id=None, accession_number=None, modality_list=None, study_date_from=None, "
                              "study_date_to=None, patient_birthdate_from=None, patient_birthdate_to=None",
    "delete_patient_order": "credentials, patient_order_institution_uuid, patient_order_uuid",
    "get_dicom_tag_content": "credentials, patient_order_institution_uuid, patient_order_uuid, "
                             "patient_series_uuid=None, dicom_tag_id_list=None",
}


def plain_signature(fn: Any) -> str:
    parts = []
    for p in inspect.signature(fn).parameters.values():
        parts.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}")
    return ", ".join(parts)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_tasks_and_methods_have_the_promised_signatures(name):
    task = getattr(tasks, name)
    assert name in tasks.__all__
    assert task.name == name
    assert plain_signature(task) == PUBLIC[name]
    assert plain_signature(task.fn) == PUBLIC[name]
    method = getattr(PostDicomClient, name)
    assert plain_signature(method) == PUBLIC[name].replace("credentials", "self")
    assert inspect.signature(method, eval_str=True).return_annotation is table.endpoint(name).answer


def test_help_shows_the_generated_methods_and_tasks():
    text = pydoc.render_doc(PostDicomClient.create_share_link, renderer=pydoc.plaintext)
    assert "patient_order_info_list" in text and "Create a web link" in text and "Never sent again" in text
    doc = custom.get_patient_order_list.fn.__doc__
    assert doc.startswith("Search patient orders")
    assert "cached" in doc


def test_the_generated_docs_are_up_to_date():
    script = runpy.run_path(str(REPO / "scripts" / "write_endpoints_doc.py"))
    committed = (REPO / "docs" / "endpoints.md").read_text(encoding="utf-8")
    assert committed == script["endpoints_markdown"](), f"regenerate it: {script['REGENERATE_DOCS']}"


def test_a_fourteenth_endpoint_is_a_row(fake, client, creds):
    row = Endpoint(
        "GetFolderShares", "/getfoldershares", "GetFolderSharesParameters",
        (wire.Param("folder_uuid", wire.UUID, required=True), wire.Param("include_expired", wire.BOOL)),
        models.SearchFolderAnswer, Safety.READ, "List the shares of a folder.", "shares of folder {folder_uuid}",
        too_large="no list",
    )
    fake.script["/getfoldershares"] = [lambda r: httpx.Response(200, json={"FolderList": []})] * 2
    answer = client.call_endpoint(row, {"folder_uuid": F1})
    assert answer.folder_list == []
    assert fake.requests[0].url.path == "/dicomweb/getfoldershares"
    assert params_of(fake.requests[0]) == {"FolderUuid": F1, "IncludeExpired": ""}
    task = custom.make_task(row)
    assert plain_signature(task) == "credentials, folder_uuid, include_expired=None"
    task.fn(creds, F1, include_expired=True)
    assert params_of(fake.requests[1]) == {"FolderUuid": F1, "IncludeExpired": "True"}


# --------------------------------------------------------------------------- inside Prefect


def test_read_tasks_are_cached_and_a_retried_delete_looks_first(fake, creds, prefect_harness):
    from prefect import flow

    order = str(uuid.uuid4())
    fake.script["/deleteorder"] = [status(503)]
    fake.script["/getpatientorderproperties"] = [
        lambda r: httpx.Response(200, json={**EXAMPLES["/getpatientorderproperties"], "PatientOrderUuid": order}),
        status(404),
    ]
    fast_creds = creds.model_copy(update={"max_retries": 0})
    delete = custom.delete_patient_order.with_options(retry_delay_seconds=0)

    @flow
    def walk() -> tuple[Any, Any, Any]:
        first = custom.get_patient_order_properties(fast_creds, INST, order)
        second = custom.get_patient_order_properties(fast_creds, INST, order)
        gone = delete(fast_creds, INST, order)
        return first, second, gone

    first, second, gone = walk()
    assert first.patient_order_uuid == order and second == first
    # one properties call for the two reads (cached), then the failed delete,
    # then the Prefect retry looked first and found the order gone
    assert fake.paths() == ["/getpatientorderproperties", "/deleteorder", "/getpatientorderproperties"]
    assert gone.deleted is True and gone.deleted_instance_count is None
