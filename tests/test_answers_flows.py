"""The three flows complete against a server answering the alternative shapes (issue 16).

A private sandbox behind the reshaping proxy of ``tests/fixtures/alt_shapes.py``
(``everything``: camelCase keys, .NET strings for booleans, numbers and dates,
upper-case UUIDs, bare arrays inside a ``data`` envelope, ``null`` lists;
``other-key``: lists under ``Items``, objects under ``Result``; ``empty-writes``:
every write but the shares answers an empty body; ``extra-keys``: undocumented
keys in every object). The flows' effects are read
back from the sandbox directly, in the documented shape.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from flows import batch_reassignment, bulk_upload_and_share, nightly_order_export
from postdicom.synthetic import StudySpec, write_study
from tests.fixtures.alt_shapes import EMPTY_WRITES, EXTRA_KEYS, start_proxy
from tests.fixtures.sandbox_server import launch
from tests.fixtures.servers import ServerInfo

SHAPES = {"everything": dt.date(2020, 1, 2), "other-key": dt.date(2020, 1, 3), EMPTY_WRITES: dt.date(2020, 1, 4),
          EXTRA_KEYS: dt.date(2020, 1, 6)}
"""Each shape with the study date of its own studies (the export reads one day)."""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Iterator[ServerInfo]:
    process = launch(tmp_path_factory.mktemp("alt-shapes-flows"))
    yield process.info(0)
    process.stop()


def behind_proxy(sandbox: ServerInfo, shape: str) -> tuple[Any, ServerInfo]:
    server, root = start_proxy(sandbox.root_url, shape)
    info = ServerInfo(name=f"alt:{shape}", web_address=root + "/dicomweb", username=sandbox.username,
                      password=sandbox.password, dialect="postdicom", root_url=root, extra=sandbox.extra)
    return server, info


def result_of(state: Any) -> Any:
    result = state.result(raise_on_failure=False)
    return getattr(result, "report", result)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_three_flows_complete_against_the_alternative_shapes(shape, sandbox, prefect_harness, tmp_path):
    proxy, server = behind_proxy(sandbox, shape)
    try:
        run_flows(sandbox, server, tmp_path, day=SHAPES[shape])
    finally:
        proxy.shutdown()


def run_flows(sandbox: ServerInfo, server: ServerInfo, tmp_path, day: dt.date) -> None:
    """The three flows on ``server``, their effects read back from ``sandbox`` (the same account).

    ``day`` is the study date of this run's studies (the export reads that day only).
    """
    credentials = server.credentials()
    institution = sandbox.extra["account"]["Institutions"][0]
    user, group = institution["Users"][1]["UserUuid"], institution["UserGroups"][0]["UserGroupUuid"]
    tag = uuid.uuid4().hex[:6]
    patients = [f"ALT-{tag}-{n}" for n in range(2)]
    for n, patient in enumerate(patients):
        write_study(tmp_path / "disk", StudySpec(f"Alt^Shape{n}", patient, "CT", series_count=1,
                                                 instances_per_series=2, study_date=day,
                                                 accession_number=f"AS{tag}{n}", seed=f"{tag}-{n}"))
    folder_name = f"Alt shapes {server.name} {tag}"

    # bulk_upload_and_share: upload, find the orders, create and fill a folder, assign, share
    state = bulk_upload_and_share(credentials=credentials, directory=str(tmp_path / "disk"),
                                  expire_date=dt.date.today() + dt.timedelta(days=3), folder_name=folder_name,
                                  assign_to_user_uuid=user, return_state=True)
    summary = result_of(state)
    assert state.is_completed(), getattr(summary, "problems", summary)
    assert summary.counts["stored"] == 4 and len(summary.patient_order_uuids) == 2
    assert summary.folder_uuid and uuid.UUID(summary.folder_uuid) and summary.folder_created
    assert len(summary.share_urls) == 1 and summary.share_urls[0].startswith("http")
    orders = sorted(summary.patient_order_uuids)
    with sandbox.client() as direct:
        [folder] = direct.search_folder(folder_name=folder_name, get_orders_in_folder=True).folder_list
        assert folder.folder_uuid == summary.folder_uuid and sorted(folder.patient_order_uuid_list or []) == orders
        for order in orders:
            properties = direct.get_patient_order_properties(institution["InstitutionUuid"], order)
            assert properties.assigned_user_uuid == user and properties.patient_id in patients

    # nightly_order_export: the day's orders, studies, series and tags to Parquet
    state = nightly_order_export(credentials=credentials, destination=str(tmp_path / "export"),
                                 study_date_from=day, study_date_to=day, return_state=True)
    export = result_of(state)
    assert state.is_completed(), state.message
    assert export.orders == 2 and export.rows["orders"] == 2 and export.rows["series"] == 2
    assert export.rows["tags"] > 0

    # batch_reassignment: hand both orders to a group
    rows = [{"patient_order_uuid": order, "assigned_user_group_uuid": group} for order in orders]
    state = batch_reassignment(credentials=credentials, assignments=rows, return_state=True)
    report = result_of(state)
    assert state.is_completed(), report
    assert [r.status for r in report.rows] == ["assigned", "assigned"]
    with sandbox.client() as direct:
        for order in orders:
            assert direct.get_patient_order_properties(institution["InstitutionUuid"], order
                                                       ).assigned_user_group_uuid == group
