"""A chunk's rows: gathered into Arrow as they come, cached pickled into zlib through Prefect's result record."""

from __future__ import annotations

import httpx
import pyarrow as pa
import pytest
from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
from prefect.serializers import PickleSerializer

from flows.export_chunks import ChunkRows, ChunkRowsSerializer, OrderRef, fetch_order_chunk
from flows.export_schema import BATCH_ROWS, SCHEMA_VERSION, TABLES, order_row, series_rows, study_rows, tag_rows
from tests.fixtures.mock_server import INST, Recorder, credentials_for, documented_answer


def a_chunk(orders: int = 40) -> ChunkRows:
    """A chunk shaped like the sandbox's: per order one order row, a study, two series and 20 tag rows."""
    rows: dict[str, list] = {name: [] for name in TABLES}
    for number in range(orders):
        study_uid = f"1.2.826.0.1.3680043.8.498.{number * 7919}"
        order = {"PatientOrderUuid": f"{number:08x}-0000-4000-8000-00000000abcd", "InstitutionUuid": "inst-1",
                 "PatientName": f"Patient^{number}", "StudyInstanceUid": study_uid, "StudyDate": "20260314",
                 "Modality": "CT", "ModalityList": ["CT", "SR"], "NumberOfInstances": number,
                 "SeriesList": [{"SeriesInstanceUid": f"{study_uid}.{s}", "PatientSeriesUuid": f"s{number}-{s}"}
                                for s in range(2)]}
        rows["orders"].append(order_row(order))
        rows["studies"] += study_rows(order, [{"0020000D": {"vr": "UI", "Value": [study_uid]},
                                               "00100010": {"vr": "PN", "Value": [{"Alphabetic": f"Patient^{number}"}]}}])
        rows["series"] += series_rows(order, [{"0020000E": {"vr": "UI", "Value": [f"{study_uid}.{s}"]},
                                               "00200011": {"vr": "IS", "Value": [s]}} for s in range(2)])
        rows["tags"] += tag_rows(order, [
            {"PatientSeriesUuid": f"s{number}-{tag % 2}", "SeriesInstanceUid": f"{study_uid}.{tag % 2}",
             "TagId": tag_id, "Vr": vr, "Values": [value]}
            for tag, (tag_id, vr, value) in enumerate(
                [("00100010", "PN", f"Patient^{number}"), ("00080020", "DA", "20260314"), ("00280030", "DS", "0.7"),
                 ("00080030", "TM", "093000"), ("00200013", "IS", str(number))] * 4)
        ])
    tables = {name: pa.Table.from_batches([TABLES[name].batch(rows[name])]) for name in TABLES}
    return ChunkRows(tables=tables, orders=orders, requests=4 * orders + 1, vanished=["gone-1"])


@pytest.mark.parametrize("orders", [40, 600], ids=["small", "buffers over 64 KiB"])
def test_a_chunk_reads_back_equal_through_prefects_result_record(orders: int):
    # From 64 KiB on, pickle's protocol 5 writes an Arrow buffer to the sink as a PickleBuffer, not bytes.
    chunk = a_chunk(orders)
    assert (orders < 100) == all(buffer is None or buffer.size < 64 * 1024 for table in chunk.tables.values()
                                 for column in table.columns for piece in column.chunks for buffer in piece.buffers())
    serializer = ChunkRowsSerializer()
    record = ResultRecord(metadata=ResultRecordMetadata(serializer=serializer, storage_key="k"), result=chunk)
    stored = record.serialize()
    back = ResultRecord.deserialize(stored)
    assert back.metadata.serializer.type == "postdicom-export-chunk"
    assert isinstance(back.result, ChunkRows)
    assert list(back.result.tables) == list(TABLES)
    for name, table in chunk.tables.items():
        assert back.result.tables[name].equals(table, check_metadata=True), name
        assert back.result.tables[name].schema.equals(TABLES[name].schema, check_metadata=True)
    assert (back.result.orders, back.result.requests, back.result.vanished) == (orders, 4 * orders + 1, ["gone-1"])


def test_a_cached_chunk_is_under_a_quarter_of_its_pickle_and_ascii():
    """Prefect stores the serializer's output as a string inside JSON: ASCII, one line per table, no escapes."""
    chunk = a_chunk()
    compact = ChunkRowsSerializer().dumps(chunk)
    pickled = PickleSerializer().dumps(chunk)
    assert len(compact) * 4 < len(pickled), (len(compact), len(pickled))
    text = compact.decode("ascii")
    assert "\n" not in text
    record = ResultRecord(metadata=ResultRecordMetadata(serializer=ChunkRowsSerializer(), storage_key="k"), result=chunk)
    assert b"\\n" not in record.serialize()


def test_an_empty_chunk_reads_back_empty():
    tables = {name: pa.Table.from_batches([TABLES[name].batch([])]) for name in TABLES}
    chunk = ChunkRows(tables=tables, orders=0, requests=1, vanished=["a", "b"])
    serializer = ChunkRowsSerializer()
    back = serializer.loads(serializer.dumps(chunk))
    assert all(back.tables[name].num_rows == 0 and back.tables[name].schema.equals(TABLES[name].schema) for name in TABLES)
    assert (back.orders, back.requests, back.vanished) == (0, 1, ["a", "b"])


def test_a_chunk_task_turns_its_tag_rows_into_arrow_as_they_pass_the_batch_size():
    """A chunk thread holds at most about ``BATCH_ROWS`` rows as Python values (RESULTS.md, *Export memory, eighth pass*)."""
    tag_items = [{"TagId": "00100010", "Vr": "PN", "Values": [f"Patient^{n}"]} for n in range(400)]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/getdicomtagcontent"):
            return httpx.Response(200, json={"DicomTagContentList": tag_items})
        if "/studies" in request.url.path:
            return httpx.Response(200, json=[], headers={"Content-Type": "application/dicom+json"})
        return documented_answer(request)

    refs = [OrderRef(f"0c6e1f8a-3b7d-4c2e-9a51-7d2f0e6b1a{n:02d}", INST, "digest") for n in range(4)]
    rows = fetch_order_chunk.fn(credentials_for(Recorder(answer)), refs, ["00100010"], SCHEMA_VERSION)
    assert BATCH_ROWS == 1024
    assert [batch.num_rows for batch in rows.tables["tags"].to_batches()] == [1200, 400]
    assert rows.tables["tags"].column("value").to_pylist() == [f"Patient^{n}" for n in range(400)] * 4
    assert (rows.tables["orders"].num_rows, rows.orders, rows.requests) == (4, 4, 16)
