"""The custom-endpoint tasks against the sandbox: the whole life of an order, and retries under faults.

The sandbox is a separate process speaking the wire protocol (``sandbox_server``);
the seeded institution, users, groups and equipment come from its seed. Each
test makes its own patient and accession number, so it does not depend on what
other tests left in the shared sandbox.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from postdicom.errors import NotFoundError, ServerError
from postdicom.synthetic import StudySpec, write_study
from tasks import (
    add_order_to_folder,
    assign_order_to_user,
    assign_order_to_user_group,
    create_folder,
    create_patient_order,
    create_share_link,
    delete_patient_order,
    get_dicom_tag_content,
    get_patient_order_list,
    get_patient_order_properties,
    search_folder,
    share_folder_with_url,
    share_patient_order_with_url,
    upload_dicom_images_in_a_folder,
)
from tests.fixtures.sandbox_server import sandbox_faults


@pytest.fixture
def institution(sandbox_server) -> dict[str, Any]:
    """The demo account's first institution as seeded (users, groups, equipment)."""
    return sandbox_server.extra["seed"]["Accounts"][0]["Institutions"][0]


def page_text(response: httpx.Response) -> str:
    """The visible text of a share page (tags dropped, entities left as the browser would show them)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))


def test_the_whole_life_of_an_order(sandbox_server, institution, prefect_harness, tmp_path):
    from prefect import flow

    creds = sandbox_server.credentials()
    inst = institution["InstitutionUuid"]
    user = institution["Users"][1]["UserUuid"]
    group = institution["UserGroups"][1]["UserGroupUuid"]
    equipment = institution["Equipment"][0]["EquipmentUuid"]
    run = uuid.uuid4().hex[:8]
    accession, patient_id = f"ACC-{run}", f"PID-{run}"
    expire = dt.date.today() + dt.timedelta(days=30)
    password = f"clave-{run}-Ñ"
    spec = StudySpec("Muñoz^José", patient_id, "CT", series_count=2, instances_per_series=2, sex="M",
                     birth_date=dt.date(1961, 3, 14), accession_number=accession, seed=f"life-{run}")
    write_study(tmp_path / "disk", spec)

    @flow
    def life() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["created"] = order = create_patient_order(
            creds, inst, "Muñoz^José", patient_id, dt.date(1961, 3, 14), "CT", patient_sex="M",
            study_description="TC Tórax con contraste", accession_number=accession,
            order_scheduled_datetime=dt.datetime.combine(dt.date.today(), dt.time(14, 30)),
            scheduled_equipment_uuid=equipment, referring_physicians_name="Dra. Ibáñez",
        )
        uid = order.patient_order_uuid
        out["listed"] = get_patient_order_list(creds, [inst], accession_number=accession, modality_list=["CT"])
        out["listed_by_name"] = get_patient_order_list(creds, [], patient_name="muñoz", patient_id=run)
        out["properties"] = get_patient_order_properties(creds, inst, uid)
        out["properties_again"] = get_patient_order_properties(creds, inst, uid, return_state=True)
        out["folder"] = folder = create_folder(creds, f"Tórax {run}", folder_description="Casos de prueba")
        out["child"] = child = create_folder(creds, f"Urgencias {run}", parent_folder_uuid=folder.folder_uuid)
        out["added"] = add_order_to_folder(creds, uid, [child.folder_uuid])
        out["search_by_name"] = search_folder(creds, folder_name=f"TÓRAX {run}")
        out["search_children"] = search_folder(creds, parent_folder_uuid=folder.folder_uuid, get_orders_in_folder=True)
        out["to_user"] = assign_order_to_user(creds, uid, user)
        out["to_group"] = assign_order_to_user_group(creds, uid, group)
        out["again_to_user"] = assign_order_to_user(creds, uid, user)
        out["after_writes"] = get_patient_order_properties(creds, inst, uid, return_state=True)
        out["upload"] = upload_dicom_images_in_a_folder(creds, tmp_path / "disk")
        out["assigned"] = get_patient_order_properties(creds, inst, uid)
        out["tags"] = get_dicom_tag_content(
            creds, inst, uid, dicom_tag_id_list=["PatientName", "0008,0050", "(0008,0060)", "SeriesNumber"])
        out["share_link"] = create_share_link(creds, [uid], expire, share_password=SecretStr(password),
                                              downloadable=True)
        out["share_url"] = share_patient_order_with_url(creds, [uid], expire.isoformat(),
                                                        user_can_download_studies=False)
        out["share_folder"] = share_folder_with_url(creds, folder.folder_uuid, share_title=f"Comité {run}",
                                                    share_description="Casos del lunes")
        return out

    out = life()
    order = out["created"].patient_order_uuid

    # create → list → properties
    assert out["created"].accession_number == accession and out["created"].order_status == "Scheduled"
    assert out["created"].institution_uuid == inst
    assert [o.patient_order_uuid for o in out["listed"].patient_order_list] == [order]
    assert [o.patient_order_uuid for o in out["listed_by_name"].patient_order_list] == [order]
    listed = out["listed"].patient_order_list[0]
    assert (listed.patient_name, listed.patient_id, listed.study_date) == ("Muñoz^José", patient_id, dt.date.today())
    props = out["properties"]
    assert props.patient_name == "Muñoz^José" and props.patient_birthdate == dt.date(1961, 3, 14)
    assert props.study_description == "TC Tórax con contraste" and props.referring_physicians_name == "Dra. Ibáñez"
    assert props.order_scheduled_datetime == dt.datetime.combine(dt.date.today(), dt.time(14, 30))
    assert props.scheduled_equipment_uuid == equipment
    assert props.order_status == "Scheduled" and props.number_of_series == 0

    # folder create / search / add
    folder, child = out["folder"], out["child"]
    assert folder.folder_name == f"Tórax {run}" and folder.parent_folder_uuid is None
    assert child.parent_folder_uuid == folder.folder_uuid
    assert out["added"].added_folder_uuid_list == [child.folder_uuid]
    assert [f.folder_uuid for f in out["search_by_name"].folder_list] == [folder.folder_uuid]
    assert out["search_by_name"].folder_list[0].patient_order_uuid_list is None
    children = out["search_children"].folder_list
    assert [(f.folder_uuid, f.patient_order_uuid_list) for f in children] == [(child.folder_uuid, [order])]

    # assignments, visible in the properties: a read is reused until the process sends a write, then asked again
    assert out["to_user"].changed is True and out["to_user"].assigned_user_uuid == user
    assert out["to_group"].changed is True and out["to_group"].assigned_user_group_uuid == group
    assert out["again_to_user"].changed is False
    assert out["properties_again"].name == "Cached" and out["properties_again"].result() == props
    after_writes = out["after_writes"]
    assert after_writes.name == "Completed"
    assert (after_writes.result().assigned_user_uuid, after_writes.result().order_status) == (user, "Scheduled")
    assigned = out["assigned"]
    assert (assigned.assigned_user_uuid, assigned.assigned_user_group_uuid) == (user, group)
    assert assigned.folder_uuid_list == [child.folder_uuid]

    # images arrived for the scheduled order; tag content reads them
    assert out["upload"].counts["stored"] == 4
    assert assigned.order_status == "Completed" and assigned.number_of_series == 2
    assert assigned.number_of_instances == 4
    rows = {(r.keyword, r.series_instance_uid): r for r in out["tags"].dicom_tag_content_list}
    series_uids = {s.series_instance_uid for s in assigned.series_list}
    assert {key[1] for key in rows} == series_uids
    for uid in series_uids:
        assert rows["PatientName", uid].values == ["Muñoz^José"] and rows["PatientName", uid].tag_id == "00100010"
        assert rows["AccessionNumber", uid].values == [accession]
        assert rows["Modality", uid].values == ["CT"]
    assert sorted(rows["SeriesNumber", uid].values[0] for uid in series_uids) == ["1", "2"]

    # three ways to share, each opened as a recipient would
    link, by_url, by_folder = out["share_link"], out["share_url"], out["share_folder"]
    assert link.password_protected is True and link.downloadable is True and link.expire_date == expire
    assert link.patient_order_uuid_list == [order]
    assert by_url.password_protected is False and by_url.downloadable is False
    assert by_folder.folder_uuid == folder.folder_uuid and by_folder.expire_date is None
    assert by_folder.patient_order_uuid_list == [order]  # the order sits in a sub-folder
    assert len({link.share_url, by_url.share_url, by_folder.share_url}) == 3

    with httpx.Client(timeout=30, follow_redirects=True) as browser:
        locked = browser.get(link.share_url)
        assert locked.status_code == 200 and "protected by a password" in locked.text
        assert "Muñoz" not in locked.text
        wrong = browser.post(link.share_url, data={"password": "not-it"})
        assert wrong.status_code == 403
        opened = browser.post(link.share_url, data={"password": password})
        assert opened.status_code == 200
        assert "Muñoz José" in page_text(opened) and patient_id in opened.text
        assert "Download (ZIP)" in opened.text

        page = browser.get(by_url.share_url)
        assert page.status_code == 200
        assert "Muñoz José" in page_text(page) and patient_id in page.text
        assert "Download (ZIP)" not in page.text

        page = browser.get(by_folder.share_url)
        assert page.status_code == 200
        assert f"Comité {run}" in page.text and "Casos del lunes" in page.text
        assert patient_id in page.text

    # delete → gone everywhere
    deleted = delete_patient_order.fn(creds, inst, order)
    assert deleted.deleted is True and deleted.deleted_instance_count == 4
    with pytest.raises(NotFoundError):
        get_patient_order_properties.fn(creds, inst, order)
    assert get_patient_order_list.fn(creds, [inst], accession_number=accession).patient_order_list == []
    after = search_folder.fn(creds, parent_folder_uuid=folder.folder_uuid, get_orders_in_folder=True)
    assert after.folder_list[0].patient_order_uuid_list == []
    with pytest.raises(NotFoundError):
        delete_patient_order.fn(creds, inst, order)
    with httpx.Client(timeout=30) as browser:
        page = browser.get(by_url.share_url)
        assert page.status_code == 200 and patient_id not in page.text
        assert "No studies are shared here" in page.text


def fault_counts(sandbox_server) -> tuple[int, int]:
    """``(seen, fired)`` of the first fault rule: what the server actually received."""
    rule = httpx.get(sandbox_server.root_url + "/_sandbox/faults", timeout=10).json()["rules"][0]
    return rule["seen"], rule["fired"]


def test_a_read_is_retried_through_a_503(sandbox_server, institution):
    creds = sandbox_server.credentials()
    with sandbox_faults(sandbox_server, "503:1/2@custom", retry_after=0):
        search_folder.fn(creds, folder_name="no such folder")
        answer = get_patient_order_list.fn(creds, [institution["InstitutionUuid"]], accession_number="none")
        assert fault_counts(sandbox_server) == (3, 1)
    assert answer.patient_order_list == []


def test_a_share_is_not_sent_again_after_a_500(sandbox_server, institution):
    # A 500 without Retry-After may come after the server made the link; a 503 or 429 with
    # Retry-After is the server turning the call away, and is sent again (test_flow_share_outcome).
    creds = sandbox_server.credentials()
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    with sandbox_faults(sandbox_server, "500:1/1@custom"):
        with pytest.raises(ServerError, match="injected fault"):
            create_share_link.fn(creds, [str(uuid.uuid4())], tomorrow)
        assert fault_counts(sandbox_server) == (1, 1)


def test_an_order_whose_create_failed_is_created_once(sandbox_server, institution):
    creds = sandbox_server.credentials()
    inst = institution["InstitutionUuid"]
    accession = f"ACC-{uuid.uuid4().hex[:8]}"
    with sandbox_faults(sandbox_server, "500:1/3@custom"):
        search_folder.fn(creds, folder_name="warm-up 1")
        search_folder.fn(creds, folder_name="warm-up 2")
        created = create_patient_order.fn(creds, inst, "Núñez^María", "PID-RETRY", "1984-07-02", "MR",
                                          accession_number=accession)
        # create (500) → look up by accession (nothing) → create again
        assert fault_counts(sandbox_server) == (5, 1)
    found = get_patient_order_list.fn(creds, [inst], accession_number=accession).patient_order_list
    assert [o.patient_order_uuid for o in found] == [created.patient_order_uuid]
    delete_patient_order.fn(creds, inst, created.patient_order_uuid)
