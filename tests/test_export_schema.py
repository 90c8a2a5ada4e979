"""The export's value converters (flows/export_values.py) and schema (flows/export_schema.py): JSON → typed rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from flows import export_schema as es
from flows import export_values as ev

DOC = Path(__file__).resolve().parents[1] / "docs" / "export-schema.md"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20260314", dt.date(2026, 3, 14)),
        ("2026-03-14", dt.date(2026, 3, 14)),
        ("2026.03.14", dt.date(2026, 3, 14)),
        (" 20260314 ", dt.date(2026, 3, 14)),
        ("20260230", None),
        ("2026031", None),
        ("", None),
        (None, None),
    ],
)
def test_da(text, expected):
    assert ev.parse_da(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("093015", dt.time(9, 30, 15)),
        ("093015.5", dt.time(9, 30, 15, 500000)),
        ("093015.123456", dt.time(9, 30, 15, 123456)),
        ("0930", dt.time(9, 30)),
        ("09", dt.time(9)),
        ("14:03:00", dt.time(14, 3)),
        ("235960", dt.time(23, 59, 59, 999999)),
        ("2561", None),
        ("9:30", None),
        ("", None),
    ],
)
def test_tm(text, expected):
    assert ev.parse_tm(text) == expected


def test_dt_with_and_without_offset():
    aware = ev.parse_dt("20260314093015.25+0100")
    assert aware == dt.datetime(2026, 3, 14, 8, 30, 15, 250000, tzinfo=dt.UTC)
    assert aware.utcoffset() == dt.timedelta(hours=1)
    assert ev.parse_dt("202603") == dt.datetime(2026, 3, 1)
    assert ev.parse_dt("20260314", ev.parse_offset("-0500")).utcoffset() == dt.timedelta(hours=-5)
    assert ev.parse_dt("2026031409301") is None
    assert ev.parse_dt("") is None
    assert ev.parse_offset("+1500") is None


@pytest.mark.parametrize(
    ("value", "expected"), [(12, 12), ("12", 12), (" -7 ", -7), ("12.0", 12), ("12.5", None), ("x", None), ("", None), (True, None)]
)
def test_is(value, expected):
    assert ev.parse_is(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(2.5, 2.5), ("2.5", 2.5), (" 1e3", 1000.0), (3, 3.0), ("NaN", None), ("abc", None), ("", None)]
)
def test_ds(value, expected):
    assert ev.parse_ds(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Alphabetic": "Muñoz^José"}, "Muñoz^José"),
        ({"Alphabetic": "山田^太郎", "Ideographic": "やまだ^たろう"}, "山田^太郎=やまだ^たろう"),
        ({"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}, "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ({"Ideographic": "山田^太郎"}, "=山田^太郎"),
        ({"Alphabetic": "Παπαδόπουλος^Νίκος"}, "Παπαδόπουλος^Νίκος"),
        ("O'Brien^Siobhán^^Dr", "O'Brien^Siobhán^^Dr"),
        ({}, None),
        ("", None),
    ],
)
def test_pn_keeps_components_and_groups(value, expected):
    assert ev.pn_to_string(value) == expected


def test_snake_case_of_keywords():
    assert ev.snake_case("StudyInstanceUID") == "study_instance_uid"
    assert ev.snake_case("SOPInstanceUID") == "sop_instance_uid"
    assert ev.snake_case("NumberOfStudyRelatedInstances") == "number_of_study_related_instances"
    assert ev.snake_case("TimezoneOffsetFromUTC") == "timezone_offset_from_utc"
    assert ev.snake_case("PatientID") == "patient_id"


def test_vr_types_and_dictionary_multiplicity():
    studies = es.STUDIES.schema
    assert studies.field("study_date").type == pa.date32()
    assert studies.field("study_time").type == pa.time64("us")
    assert studies.field("number_of_study_related_instances").type == pa.int64()
    assert studies.field("modalities_in_study").type == pa.list_(pa.string())
    assert studies.field("patient_name").type == pa.string()
    assert ev.arrow_type_for_vr("DT") == pa.timestamp("us", tz="UTC")
    assert ev.arrow_type_for_vr("DS") == pa.float64()
    with pytest.raises(ValueError, match="SQ"):
        ev.arrow_type_for_vr("SQ")
    assert studies.metadata[b"postdicom_flows.schema_version"] == es.SCHEMA_VERSION.encode()
    assert studies.field("patient_name").metadata[b"source"].startswith(b"DICOM (0010,0010) PatientName PN")


QIDO_STUDY = {
    "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
    "00080020": {"vr": "DA", "Value": ["20260314"]},
    "00080030": {"vr": "TM", "Value": ["093015.5"]},
    "00080050": {"vr": "SH"},
    "00080061": {"vr": "CS", "Value": ["CT", "SR"]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Muñoz^José"}]},
    "00100030": {"vr": "DA", "Value": [""]},
    "00201206": {"vr": "IS", "Value": [2]},
    "00201208": {"vr": "IS", "Value": ["40"]},
}


def test_qido_study_match_to_typed_row():
    order = {"PatientOrderUuid": "ABC-1", "InstitutionUuid": "I-1"}
    (row,) = es.study_rows(order, [QIDO_STUDY])
    assert row["patient_order_uuid"] == "abc-1" and row["institution_uuid"] == "i-1"
    assert row["study_instance_uid"] == "1.2.3"
    assert row["study_date"] == dt.date(2026, 3, 14)
    assert row["study_time"] == dt.time(9, 30, 15, 500000)
    assert row["modalities_in_study"] == ["CT", "SR"]
    assert row["patient_name"] == "Muñoz^José"
    assert row["number_of_study_related_series"] == 2 and row["number_of_study_related_instances"] == 40
    assert row["accession_number"] is None, "Value omitted (Annex F) is null"
    assert row["patient_birth_date"] is None, "an empty value is null"
    assert row["study_description"] is None, "an absent element is null"
    batch = es.STUDIES.batch([row])
    assert batch.num_rows == 1 and batch.schema.equals(es.STUDIES.schema)


def test_series_rows_join_the_postdicom_series_uuid():
    order = {"PatientOrderUuid": "o", "SeriesList": [{"PatientSeriesUuid": "S-UUID", "SeriesInstanceUid": "1.2.3.4"}]}
    match = {"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}, "00200011": {"vr": "IS", "Value": ["3"]},
             "00080060": {"vr": "CS", "Value": ["MR"]}}
    other = {"0020000E": {"vr": "UI", "Value": ["9.9"]}}
    rows = es.series_rows(order, [match, other])
    assert rows[0]["patient_series_uuid"] == "s-uuid" and rows[0]["series_number"] == 3 and rows[0]["modality"] == "MR"
    assert rows[1]["patient_series_uuid"] is None


def test_tag_content_rows_long_form_with_typed_values():
    order = {"PatientOrderUuid": "o", "InstitutionUuid": "i"}
    contents = [
        {"PatientSeriesUuid": "s", "SeriesInstanceUid": "1.2", "SopInstanceUid": None, "TagId": "00100010",
         "Keyword": "PatientName", "Vr": "PN", "Values": ["山田^太郎=やまだ^たろう"]},
        {"PatientSeriesUuid": "s", "SeriesInstanceUid": "1.2", "SopInstanceUid": "1.2.9", "TagId": "0028,0030",
         "Keyword": "PixelSpacing", "Vr": "DS", "Values": ["0.7", "0.7"]},
        {"PatientSeriesUuid": "s", "SeriesInstanceUid": "1.2", "SopInstanceUid": None, "TagId": "00080020",
         "Keyword": "StudyDate", "Vr": "DA", "Values": ["20260314"]},
        {"PatientSeriesUuid": "s", "SeriesInstanceUid": "1.2", "SopInstanceUid": None, "TagId": "(0008,0030)",
         "Keyword": "StudyTime", "Vr": "TM", "Values": ["093000"]},
        {"PatientSeriesUuid": "s", "SeriesInstanceUid": "1.2", "SopInstanceUid": None, "TagId": "0008002A",
         "Keyword": "AcquisitionDateTime", "Vr": "DT", "Values": ["20260314093000+0200"]},
        {"PatientSeriesUuid": "s", "SeriesInstanceUid": "1.2", "SopInstanceUid": None, "TagId": "00081030",
         "Keyword": "StudyDescription", "Vr": "LO", "Values": []},
        {"patientseriesuuid": "s", "seriesinstanceuid": "1.2", "tagid": "BodyPartExamined", "values": ["CHEST"]},
    ]
    rows = es.tag_rows(order, contents)
    name, spacing, date, time, when, empty, lower = rows
    assert name["value"] == "山田^太郎=やまだ^たろう" and name["values"] == ["山田^太郎=やまだ^たろう"]
    assert name["sop_instance_uid"] is None and name["tag"] == "00100010"
    assert spacing["tag"] == "00280030" and spacing["sop_instance_uid"] == "1.2.9"
    assert spacing["value"] == "0.7\\0.7" and spacing["values"] == ["0.7", "0.7"] and spacing["value_number"] == 0.7
    assert date["value_date"] == dt.date(2026, 3, 14) and date["value_number"] is None
    assert time["tag"] == "00080030" and time["value_time"] == dt.time(9, 30)
    assert when["value_datetime"] == dt.datetime(2026, 3, 14, 7, 30, tzinfo=dt.UTC)
    assert empty["value"] is None and empty["values"] is None
    assert lower["tag"] == "00180015" and lower["keyword"] == "BodyPartExamined" and lower["vr"] == "CS"
    assert lower["value"] == "CHEST"
    batch = es.TAGS.batch(rows)
    assert batch.column(batch.schema.get_field_index("value_datetime")).type == pa.timestamp("us", tz="UTC")


def test_a_batch_is_built_in_the_memory_pool_it_is_given_and_equals_from_pylist():
    order = {"PatientOrderUuid": "o", "InstitutionUuid": "i"}
    contents = [
        {"TagId": "00100010", "Vr": "PN", "Values": ["Muñoz^José"]},
        {"TagId": "00280030", "Vr": "DS", "Values": ["0.7", "0.7"]},
        {"TagId": "0008002A", "Vr": "DT", "Values": ["20260314093000+0200"]},
        {"TagId": "00080030", "Vr": "TM", "Values": ["093000"]},
        {"TagId": "00081030", "Vr": "LO", "Values": []},
    ]
    rows = es.tag_rows(order, contents)
    pool = pa.proxy_memory_pool(pa.system_memory_pool())
    batch = es.TAGS.batch(rows, pool)
    assert pool.bytes_allocated() > 0
    assert batch.equals(pa.RecordBatch.from_pylist(rows, schema=es.TAGS.schema))
    assert batch.schema.equals(es.TAGS.schema, check_metadata=True)
    wrong = [{**rows[0], "value_date": "not a date"}]
    with pytest.raises(pa.ArrowTypeError):
        pa.RecordBatch.from_pylist(wrong, schema=es.TAGS.schema)
    with pytest.raises(pa.ArrowTypeError):
        es.TAGS.batch(wrong, pool)
    del batch
    assert pool.bytes_allocated() == 0


def test_rows_gathered_order_by_order_make_the_same_batch_and_keep_no_row_dict():
    """A chunk's rows wait as one list per column, not a dict per row (RESULTS.md, *Export CPU at loopback, sixth pass*)."""
    contents = [{"TagId": "00100010", "Vr": "PN", "Values": ["Muñoz^José"]}, {"TagId": "00280030", "Vr": "DS", "Values": ["0.7", "0.7"]}]
    first = es.tag_rows({"PatientOrderUuid": "o1", "InstitutionUuid": "i"}, contents)
    second = es.tag_rows({"PatientOrderUuid": "o2", "InstitutionUuid": "i"}, contents[:1])
    gathered = es.ColumnBuffer(es.TAGS)
    gathered.extend(first)
    gathered.extend(second)
    assert len(gathered.columns) == len(es.TAGS.columns)
    assert not any(isinstance(value, dict) for values in gathered.columns for value in values)
    assert gathered.batch().equals(pa.RecordBatch.from_pylist(first + second, schema=es.TAGS.schema))
    assert es.ColumnBuffer(es.TAGS).batch().num_rows == 0


def _tag_rows_of(orders: int) -> list[list[dict]]:
    contents = [{"TagId": "00100010", "Vr": "PN", "Values": ["Muñoz^José"]}, {"TagId": "00280030", "Vr": "DS", "Values": ["0.7", "0.7"]}]
    return [es.tag_rows({"PatientOrderUuid": f"o{n}", "InstitutionUuid": "i"}, contents) for n in range(orders)]


def test_a_buffer_holds_at_most_a_batch_of_rows_as_python_values_and_its_table_has_every_row_in_order():
    """A chunk thread's Python values stay bounded whatever the chunk's size (RESULTS.md, *Export memory, eighth pass*)."""
    per_order = _tag_rows_of(10)
    pool = pa.proxy_memory_pool(pa.system_memory_pool())
    gathered = es.ColumnBuffer(es.TAGS, pool, batch_rows=5)
    held = []
    for rows in per_order:
        gathered.extend(rows)
        held.append(gathered.held)
        assert all(len(values) == gathered.held for values in gathered.columns)
    assert max(held) < 5
    assert [batch.num_rows for batch in gathered.batches] == [6, 6, 6]
    assert pool.bytes_allocated() > 0
    table = gathered.to_table()
    expected = pa.Table.from_pylist([row for rows in per_order for row in rows], schema=es.TAGS.schema)
    assert table.equals(expected)
    assert table.num_rows == 20 and table.column("patient_order_uuid").to_pylist()[-1] == "o9"
    del gathered, table
    assert pool.bytes_allocated() == 0  # every batch freed (and freed before the proxy pool goes)


def test_a_buffer_that_never_batches_gives_one_batch_and_an_empty_one_an_empty_table():
    per_order = _tag_rows_of(3)
    gathered = es.ColumnBuffer(es.TAGS, batch_rows=None)
    for rows in per_order:
        gathered.extend(rows)
    assert gathered.batches == [] and gathered.held == 6
    assert len(gathered.to_table().to_batches()) == 1
    empty = es.ColumnBuffer(es.TAGS).to_table()
    assert empty.num_rows == 0 and empty.schema.equals(es.TAGS.schema, check_metadata=True)
    exact = es.ColumnBuffer(es.TAGS, batch_rows=2)
    exact.extend(per_order[0])
    assert exact.held == 0 and [b.num_rows for b in exact.to_table().to_batches()] == [2]
    with pytest.raises(ValueError, match="batch_rows"):
        es.ColumnBuffer(es.TAGS, batch_rows=0)


def test_order_row_from_the_custom_endpoint_answer():
    answer = {
        "PatientOrderUuid": "0F0E-AB", "InstitutionUuid": "inst", "OrderStatus": "Completed",
        "PatientName": "Παπαδόπουλος^Νίκος", "PatientId": "P1", "OtherPatientId": "", "PatientSex": "M",
        "PatientBirthdate": "1955-01-20", "ModalityList": ["CT"], "StudyDate": "2026-11-27",
        "StudyTime": "14:03:00", "OrderScheduledDatetime": "2026-11-27 14:00", "NumberOfSeries": 2,
        "NumberOfInstances": "40", "FolderUuidList": [], "CreatedDatetime": None, "UnknownKey": "kept in raw",
        "referringphysiciansname": "Referrer^Rita",
    }
    row = es.order_row(answer)
    assert row["patient_order_uuid"] == "0f0e-ab"
    assert row["patient_name"] == "Παπαδόπουλος^Νίκος"
    assert row["other_patient_id"] is None
    assert row["patient_birth_date"] == dt.date(1955, 1, 20)
    assert row["study_time"] == dt.time(14, 3)
    assert row["order_scheduled_datetime"] == dt.datetime(2026, 11, 27, 14, 0)
    assert row["number_of_study_related_series"] == 2 and row["number_of_study_related_instances"] == 40
    assert row["folder_uuid_list"] is None and row["created_datetime"] is None
    assert row["referring_physician_name"] == "Referrer^Rita", "key case is ignored"
    assert es.ORDERS.batch([row]).num_rows == 1


def test_normalize_tag_forms():
    assert es.normalize_tag("0010,0010") == "00100010"
    assert es.normalize_tag("(0010,0010)") == "00100010"
    assert es.normalize_tag("0020000d") == "0020000D"
    assert es.normalize_tag("PatientName") == "00100010"
    assert es.normalize_tag("NoSuchKeyword") is None


def test_export_date_is_reserved_for_the_partition():
    column = es.context_column("export_date", pa.date32(), "x", "y")
    with pytest.raises(ValueError, match="reserved"):
        es.Table("bad", "d", "g", (column,))


def test_committed_doc_matches_the_schema():
    assert DOC.read_text(encoding="utf-8") == es.render_markdown(), (
        "docs/export-schema.md is stale: python -m flows.export_schema > docs/export-schema.md"
    )
    for table in es.TABLES.values():
        assert f"## `{table.name}`" in DOC.read_text(encoding="utf-8")


def test_tag_rows_from_the_answers_dumped_list_equal_those_from_each_entrys_dump():
    """fetch_order reads the tag list from the answer's ``raw`` (one dump), no longer entry by entry."""
    from postdicom.models import DicomTagContentAnswer

    answer = DicomTagContentAnswer.model_validate({"patientOrderUuid": "{0F0E-AB}", "dicomTagContentList": [
        {"PATIENTSERIESUUID": "{AB-CD}", "SeriesInstanceUid": "1.2", "TagId": "0028,0030", "Vr": "DS",
         "Values": "0.7\\0.7", "Color": "unknown key"},
        {"patientseriesguid": "ab-cd", "TagId": "BodyPartExamined", "Values": ["CHEST", ""], "SopInstanceUid": 12},
        {"TagId": "00100010", "Keyword": None, "Vr": "PN", "Values": None},
    ]})
    order = {"PatientOrderUuid": "0f0e-ab", "InstitutionUuid": "i"}
    listed = answer.raw[DicomTagContentAnswer.list_key]
    assert listed == [entry.raw for entry in answer.dicom_tag_content_list]
    rows = es.tag_rows(order, listed)
    assert rows == es.tag_rows(order, [entry.raw for entry in answer.dicom_tag_content_list])
    assert [row["tag"] for row in rows] == ["00280030", "00180015", "00100010"]
    assert rows[0]["values"] == ["0.7", "0.7"] and rows[0]["value_number"] == 0.7
    assert rows[1]["keyword"] == "BodyPartExamined" and rows[1]["vr"] == "CS" and rows[1]["sop_instance_uid"] == "12"
    assert rows[2]["keyword"] == "PatientName" and rows[2]["values"] is None
