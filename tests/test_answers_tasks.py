"""The custom-endpoint tasks against a server answering the *alternative* shapes (issue 16).

``alt_shapes_server(shape)`` is the sandbox behind a proxy that rewrites every
custom answer into one shape a .NET service might send instead of the
documented one (bare arrays, ``Data``/``d`` envelopes, lists under other keys,
camelCase keys with booleans, numbers, dates and UUIDs as .NET strings, ISO
date-times, ``null`` lists, JSON inside a JSON string, empty write answers),
always with an ``X-Error-Reason`` header. The whole life of an order must read
the same values as against the documented shape, and each answer must say
which fallbacks it needed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest

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
from tests.fixtures.alt_shapes import EMPTY_WRITES, EXTRA_KEYS, SHAPES
from tests.fixtures.servers import ServerInfo

ALL_SHAPES = [*SHAPES, EMPTY_WRITES, EXTRA_KEYS]
RESHAPES_EVERY_ANSWER = {"data-envelope", "d-envelope", "other-key", "camel-strings", "json-string", "everything"}


def life_of_an_order(server: ServerInfo, tmp_path: Path) -> dict[str, Any]:
    """Every custom task once (and an upload) on ``server``; checks what any shape must read the same.

    Values a write answered with an empty body cannot give (``Changed``,
    ``AddedFolderUuidList``, ``DeletedInstanceCount``) are checked only where
    the answer was not empty. Returns the answers by step.
    """
    from prefect import flow

    creds = server.credentials()
    institution = server.extra["seed"]["Accounts"][0]["Institutions"][0]
    inst = institution["InstitutionUuid"]
    user = institution["Users"][1]["UserUuid"]
    group = institution["UserGroups"][1]["UserGroupUuid"]
    run = uuid.uuid4().hex[:8]
    accession, patient_id = f"ALT-{run}", f"PID-{run}"
    expire = dt.date.today() + dt.timedelta(days=10)
    birth = dt.date(1970, 1, 31)
    write_study(tmp_path / "disk", StudySpec("Shape^Test", patient_id, "MR", series_count=1, instances_per_series=2,
                                             birth_date=birth, accession_number=accession, seed=f"alt-{run}"))

    @flow
    def life() -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["created"] = order = create_patient_order(creds, inst, "Shape^Test", patient_id, birth, "MR",
                                                      accession_number=accession)
        uid = order.patient_order_uuid
        out["upload"] = upload_dicom_images_in_a_folder(creds, tmp_path / "disk")
        out["listed"] = get_patient_order_list(creds, [inst], accession_number=accession)
        out["nothing"] = get_patient_order_list(creds, [inst], accession_number=f"NONE-{run}")
        out["properties"] = get_patient_order_properties(creds, inst, uid)
        out["tags"] = get_dicom_tag_content(creds, inst, uid, dicom_tag_id_list=["PatientName", "SeriesNumber"])
        out["folder"] = folder = create_folder(creds, f"Shapes {run}")
        out["added"] = add_order_to_folder(creds, uid, [folder.folder_uuid])
        out["found"] = search_folder(creds, folder_name=f"shapes {run}", get_orders_in_folder=True)
        out["no_folder"] = search_folder(creds, folder_name=f"none {run}")
        out["to_user"] = assign_order_to_user(creds, uid, user)
        out["to_group"] = assign_order_to_user_group(creds, uid, group)
        out["link"] = create_share_link(creds, [uid], expire, downloadable=True)
        out["by_url"] = share_patient_order_with_url(creds, [uid], expire)
        out["by_folder"] = share_folder_with_url(creds, folder.folder_uuid)
        out["deleted"] = delete_patient_order(creds, inst, uid)
        return out

    out = life()
    order = out["created"].patient_order_uuid
    assert order and uuid.UUID(order)  # also read from an empty create answer: found by its accession number
    assert out["created"].accession_number == accession

    assert out["upload"].counts["stored"] == 2
    [listed] = out["listed"].patient_order_list
    assert (listed.patient_order_uuid, listed.patient_id, listed.accession_number) == (order, patient_id, accession)
    assert listed.patient_birthdate == birth and listed.study_date is not None
    assert listed.number_of_series == 1 and listed.number_of_instances == 2
    assert out["nothing"].patient_order_list == []
    props = out["properties"]
    assert (props.patient_order_uuid, props.institution_uuid, props.order_status) == (order, inst, "Completed")
    assert props.patient_birthdate == birth and props.number_of_instances == 2
    assert [s.number_of_instances for s in props.series_list] == [2]
    rows = {r.keyword: r for r in out["tags"].dicom_tag_content_list}
    assert rows["PatientName"].values == ["Shape^Test"] and rows["SeriesNumber"].values == ["1"]

    folder = out["folder"]
    assert folder.folder_uuid and uuid.UUID(folder.folder_uuid)  # an empty create answer is completed by SearchFolder
    [found] = out["found"].folder_list
    assert (found.folder_uuid, found.folder_name, found.patient_order_uuid_list) == (
        folder.folder_uuid, f"Shapes {run}", [order])
    assert out["no_folder"].folder_list == []
    assert out["added"].patient_order_uuid == order and folder.folder_uuid in out["added"].folder_uuid_list
    assert out["to_user"].assigned_user_uuid == user
    assert out["to_group"].assigned_user_group_uuid == group
    if not out["added"].reading.empty:
        assert out["added"].added_folder_uuid_list == [folder.folder_uuid]
    for assigned in (out["to_user"], out["to_group"]):
        assert assigned.changed is (None if assigned.reading.empty else True)
    if not out["deleted"].reading.empty:
        assert out["deleted"].deleted_instance_count == 2
    assert out["deleted"].deleted is True

    link, by_url, by_folder = out["link"], out["by_url"], out["by_folder"]
    assert link.downloadable is True and link.password_protected is False and link.expire_date == expire
    assert link.patient_order_uuid_list == [order]
    assert by_url.downloadable is False and by_folder.folder_uuid == folder.folder_uuid
    assert by_folder.expire_date is None
    assert len({link.share_url, by_url.share_url, by_folder.share_url}) == 3

    # every answer was understood; raw is the documented shape whatever was sent
    for name, answer in out.items():
        if name != "upload":
            assert answer.reading.understood, (name, answer.reading)
    assert out["listed"].raw["PatientOrderList"][0]["NumberOfSeries"] == 1
    assert out["properties"].raw["PatientBirthdate"] == "1970-01-31"
    assert out["link"].raw["Downloadable"] is True
    return out


@pytest.mark.parametrize("shape", ALL_SHAPES)
def test_the_life_of_an_order_reads_the_same_in_every_shape(shape, alt_shapes_server, prefect_harness, tmp_path):
    out = life_of_an_order(alt_shapes_server(shape), tmp_path)
    # every answer says it needed a fallback (at least the X-Error-Reason header)
    for answer in (v for k, v in out.items() if k != "upload"):
        assert any("X-Error-Reason" in f for f in answer.reading.fallbacks)
        reshaped = shape in RESHAPES_EVERY_ANSWER or (shape == "bare-array" and type(answer).list_key)
        if reshaped:
            assert len(answer.reading.fallbacks) > 1, (shape, answer.reading)
    notes = {
        "bare-array": (out["found"], "bare array instead of {'FolderList': [...]}"),
        "data-envelope": (out["properties"], "answer inside a 'Data' envelope"),
        "d-envelope": (out["created"], "answer inside a 'd' envelope"),
        "other-key": (out["listed"], "list under 'Items' instead of 'PatientOrderList'"),
        "camel-strings": (out["to_user"], "AssignOrderToUserAnswer.Changed: boolean sent as a string"),
        "iso-dates": (out["properties"], "PatientOrderProperties.PatientBirthdate: date sent as a date-time"),
        "null-lists": (out["nothing"], "PatientOrderListAnswer.PatientOrderList: null for an empty list"),
        "json-string": (out["tags"], "answer sent as a JSON string holding JSON"),
        "everything": (out["link"], "ShareAnswer.ExpireDate: date as YYYYMMDD"),
        EMPTY_WRITES: (out["to_group"], "empty answer on success: read as what the request asked for"),
    }
    if shape == EXTRA_KEYS:  # unknown keys are no fallback: they stay in raw and are listed
        props, listed = out["properties"], out["listed"]
        assert props.raw["Colour"] == "teal" and props.raw["Links"] == {"Self": "/x"}
        assert {"Colour", "Links", "SeriesList[].Colour"} <= set(props.reading.unknown_keys)
        assert listed.raw["PatientOrderList"][0]["Colour"] == "teal"
        assert "PatientOrderList[].Links" in listed.reading.unknown_keys
        return
    answer, expected = notes[shape]
    assert expected in answer.reading.fallbacks, answer.reading
    if shape == EMPTY_WRITES:
        assert out["to_user"].reading.empty and out["created"].reading.empty
        assert "empty create answer completed by a lookup" in out["folder"].reading.fallbacks
    elif shape in RESHAPES_EVERY_ANSWER:
        assert out["created"].received != out["created"].raw  # what was sent is kept as sent


def test_the_create_folder_task_goes_through_once_when_its_lookup_cannot_be_read(
        alt_shapes_server, sandbox_server, prefect_harness, caplog):
    """Issue 16 item 2 through the task: SearchFolder answers an HTML page; the folder is still made, once."""
    import logging

    from prefect import flow

    server = alt_shapes_server("bare-array", broken=["/searchfolder"])
    name = f"Lookup broken {uuid.uuid4().hex[:8]}"

    @flow
    def make_it() -> Any:
        return create_folder(server.credentials(), name, return_state=True)

    state = make_it()
    assert state.is_completed(), state.message
    answer = state.result()
    assert answer.folder_uuid and answer.reading.warnings == [
        "duplicate protection was not available for this call (its lookup failed)"]
    with sandbox_server.client() as direct:  # made once, on the real account behind the proxy
        assert [f.folder_uuid for f in direct.search_folder(folder_name=name).folder_list] == [answer.folder_uuid]

    caplog.set_level(logging.WARNING)
    again = create_folder.fn(server.credentials(), name + " bis")  # the task's own code, outside Prefect's logger
    assert again.folder_uuid and "duplicate protection was not available for this call" in caplog.text
    assert name not in caplog.text  # the folder name is the user's data: not logged
