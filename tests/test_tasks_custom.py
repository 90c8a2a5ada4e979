"""The 13 custom-endpoint tasks: their promised signatures, policies, names and logs, and runs inside Prefect.

What each call puts on the wire is tested on the client methods
(``test_client_endpoints_wire.py``); here each task is checked to make the
same request, through a credentials block whose clients talk to the fake
PostDICOM (``PostDicomCredentials.with_transport``).
"""

from __future__ import annotations

import inspect
import logging
import typing
import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import tasks
from postdicom import PostDicomClient
from postdicom import endpoint_table as table
from postdicom.endpoint_row import Safety
from postdicom.errors import ServerError, ValidationError
from tasks import custom, policies
from tests.fixtures.endpoint_cases import INVALID, WIRE_CASES
from tests.fixtures.mock_server import (
    DOCUMENTED_ANSWERS,
    INST,
    O1,
    O2,
    PASSWORD,
    SHARE_TOKEN,
    params_of,
    status,
)

NAMES = sorted(row.python_name for row in table.ENDPOINTS)


def test_each_task_sends_what_its_client_method_sends(fake_server, fake_credentials):
    for name, kwargs, path, header, expected in WIRE_CASES:
        answer = getattr(tasks, name).fn(fake_credentials, **kwargs)
        assert fake_server.paths()[-1] == path, name
        assert params_of(fake_server.requests[-1]) == expected, name
        assert isinstance(answer, table.endpoint(name).answer)
    creates_of_folders = sum(1 for case in WIRE_CASES if case[0] == "create_folder")
    assert len(fake_server.requests) == len(WIRE_CASES) + creates_of_folders


def test_invalid_input_fails_before_any_request(fake_server, fake_credentials):
    for name, kwargs, message in INVALID:
        with pytest.raises(ValidationError) as raised:
            getattr(tasks, name).fn(fake_credentials, **kwargs)
        assert message in str(raised.value)
    with pytest.raises(TypeError, match="expire_date"):
        custom.create_share_link.fn(fake_credentials, [O1])
    assert fake_server.requests == []


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


@pytest.mark.parametrize("name", NAMES)
def test_each_task_is_typed_like_its_method_and_documents_every_parameter(name):
    task_hints = typing.get_type_hints(getattr(tasks, name).fn)
    method_hints = typing.get_type_hints(getattr(PostDicomClient, name))
    assert task_hints.pop("credentials").__name__ == "PostDicomCredentials"
    assert task_hints == method_hints
    doc = inspect.getdoc(getattr(tasks, name).fn) or ""
    assert doc.startswith(table.endpoint(name).summary)
    assert f"PostDicomClient.{name}`" in doc
    for param in inspect.signature(getattr(tasks, name).fn).parameters:
        assert param in doc, param


@pytest.mark.parametrize("name", NAMES)
def test_task_policies_follow_the_table(name):
    from prefect.cache_policies import NO_CACHE

    row, t = table.endpoint(name), getattr(tasks, name)
    if row.safety is Safety.READ:
        assert t.retries == 2 and t.cache_expiration is not None
        # the shared read policy as it is: each task has its own source, so no per-task key is added
        assert t.cache_policy == policies.read_cache_policy()
    else:
        assert t.cache_policy is NO_CACHE  # mutations are never cached (no secret can reach a key)
        assert t.retries == (2 if row.safety is Safety.IDEMPOTENT_WRITE else 0)
    assert t.retry_condition_fn is (policies.retry_on_transient if t.retries else None)


def test_a_retried_task_looks_first(fake_server, fake_credentials, monkeypatch):
    monkeypatch.setattr(custom, "task_run", type("Run", (), {"run_count": 2})())
    fake_server.script["/getpatientorderproperties"] = [status(404)]
    answer = custom.delete_patient_order.fn(fake_credentials, INST, O1)
    assert fake_server.paths() == ["/getpatientorderproperties"]
    assert answer.deleted is True


# --------------------------------------------------------------------------- secrets, patients, logs and names


def test_the_share_password_and_url_never_reach_the_logs(fake_server, fake_credentials, caplog):
    caplog.set_level(logging.DEBUG)
    fake_server.script["/createsharelink"] = [status(503)]
    with pytest.raises(ServerError) as raised:
        custom.create_share_link.fn(fake_credentials, [O1], "2026-12-31", share_password=SecretStr("pw-Zq81-secret"))
    custom.create_share_link.fn(fake_credentials, [O1, O2], "2026-12-31", share_password="pw-Zq81-secret")
    text = caplog.text + str(raised.value)
    assert "pw-Zq81-secret" not in text and PASSWORD not in text
    assert SHARE_TOKEN not in text
    assert "of 2 order(s), expires 2026-12-31, password protected" in caplog.text  # what came back, with counts


PATIENT_VALUES = ("Muñoz^José", "Núñez^María José", "Smith^Anna", "HSB-0001", "HSB-0002", "P3", "ACC-1001",
                  "ACC-1002", "DNI 12345678Z", "1961-03-14", "1984-07-02", "Cefalea")


def test_task_run_names_and_logs_name_no_patient_and_no_secret(fake_server, fake_credentials, caplog):
    caplog.set_level(logging.DEBUG)
    fake_server.script["/getpatientorderlist"] = [httpx.Response(200, json={"PatientOrderList": []})] * 3
    for name, kwargs, *_ in WIRE_CASES:
        task = getattr(tasks, name)
        run_name = task.task_run_name(parameters={"credentials": fake_credentials, **kwargs})
        assert run_name.startswith(f"{name}: ")
        for value in (*PATIENT_VALUES, "clave-Ñandú", "plain-pw", PASSWORD):
            assert value not in run_name, (name, value)
        task.fn(fake_credentials, **kwargs)
    for value in (*PATIENT_VALUES, "clave-Ñandú", "plain-pw", PASSWORD):
        assert value not in caplog.text, value
    create = custom.create_patient_order.task_run_name(parameters=dict(
        institution_uuid=INST, patient_name="Doe^Jane", patient_id="P-7", patient_birthdate="1970-01-01",
        modality="CT", accession_number="ACC-7"))
    assert create == f"create_patient_order: create CT order in {INST}"


# --------------------------------------------------------------------------- inside Prefect


def test_read_tasks_are_cached_and_a_retried_delete_looks_first(fake_server, fake_credentials, prefect_harness):
    from prefect import flow

    order = str(uuid.uuid4())
    fake_server.script["/deleteorder"] = [status(503)]
    fake_server.script["/getpatientorderproperties"] = [
        lambda r: httpx.Response(200, json={**DOCUMENTED_ANSWERS["/getpatientorderproperties"], "PatientOrderUuid": order}),
        status(404),
    ]
    fast_creds = fake_credentials.model_copy(update={"max_retries": 0})
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
    assert fake_server.paths() == ["/getpatientorderproperties", "/deleteorder", "/getpatientorderproperties"]
    assert gone.deleted is True and gone.deleted_instance_count is None
