"""``batch_reassignment``: hand a worklist of patient orders to another user or group.

The job of a day when a radiologist is away or a team takes over: a list of
(order, new reader) rows, or a selection of orders plus one reader. Every row is
checked and resolved against the account before anything changes, so a typo
in row 180 is reported instead of leaving the worklist half moved; ``dry_run``
stops right there and reports what would change. The changes are then sent in
batches over a bounded pool; each row compares the current assignment first,
so running the same batch twice changes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import sys
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from pydantic import BaseModel, BeforeValidator

from blocks import PostDicomCredentials
from postdicom.errors import AnswerTooLargeError
from postdicom.http_limits import JSON_BYTES_SETTING, HttpLimits
from postdicom.settings import env_number

from .assignment import (
    ASSIGNMENT_STATUSES,
    TARGET_COLUMNS,
    AssignmentCandidate,
    PlannedAssignment,
    RowResult,
    assign_orders_batch,
    plan_assignments,
    row_result,
)
from .orders import canonical_uuid, order_index
from .forms import ACCOUNT, NONE_AS_EMPTY, PATH_PASSES_THROUGH, AssignmentRow, OptionalDate, OptionalText, form
from .prefect_admin import ensure_concurrency_limit, has_prefect_server
from .reporting import FlowRunFailed, count_by, run_name_or
from .window import MAX_WORKERS, bounded_task_runner, submit_bounded, take_chunks

DEFAULT_LIMIT_NAME = "postdicom-assignments"
"""Prefect global concurrency limit the write batches hold a slot of."""

FILE_ROWS_PER_READ = 1000
"""Rows of an assignments file read at a time (pandas' CSV parser, pyarrow's Parquet batches).

The read's memory beyond the rows kept (the name was ``CSV_ROWS_PER_READ`` in RESULTS.md's figures)."""

MAX_ROWS_ENV = "POSTDICOM_REASSIGNMENT_MAX_ROWS"
DEFAULT_MAX_ROWS = 100_000
"""The most rows one run takes (file, inline rows or selection), checked before anything is written.

A run's peak RSS grows by about 2.1 KB a row (8.2-8.4 MB from 1,000 to 5,000
rows, ``benchmarks/RESULTS.md``, *Reassignment CSV read in pieces*) over about
290 MB, and its time by about 2.5 ms a row (*Reassignment memory, second
pass*): 100,000 rows is about 500 MB and 4-5 minutes at loopback. That is twice a month
of a large hospital's orders (1,500 a day), so a real handover fits; a file
or a selection past it is more likely a mistake (the wrong file, a filter
left out) than a worklist, and split runs report and fail separately."""

ORDER_LIST_BYTES_AN_ORDER = (600, 700)
"""What one order takes in a GetPatientOrderList answer (least, most), for the error naming ``POSTDICOM_MAX_JSON_BYTES``.

The order list is one answer (the API does not page it), under the same
size cap as every answer read into memory: 64 MiB by default. Measured: 0.60
KB an order from the sandbox (300 scheduled orders, half of them assigned,
no study UID yet), 0.61 KB for ``benchmarks/order_list_bench.py``'s orders;
both assignees and a 64-character study UID add about 0.1 KB. So 64 MiB
holds about 96,000-112,000 orders: a selection can pass the cap before
``POSTDICOM_REASSIGNMENT_MAX_ROWS`` (100,000), and the lookup of a file's
or inline rows reads every order of the account, however few rows there are."""

NO_LIMIT_AS_EMPTY = BeforeValidator(lambda value: "" if value is None else value)
"""``concurrency_limit_name=None`` means no limit, as empty does (the form keeps a plain text field)."""


class ReassignmentReport(BaseModel):
    """The flow's result: one entry per input row, plus counts."""

    dry_run: bool
    rows: list[RowResult]
    counts: dict[str, int]



def _snake(name: str) -> str:
    """``PatientOrderUuid`` / ``patient_order_uuid`` / `` Patient Order UUID`` -> ``patient_order_uuid``."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name).strip())
    return re.sub(r"[\s\-]+", "_", name).lower()


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _show(value: Any, limit: int = 60) -> str:
    """An input value as text short enough for a report cell."""
    text = "" if _blank(value) else str(value).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _csv_records(location: str) -> Generator[dict[str, Any], None, None]:
    """The rows of the CSV file at ``location``, read :data:`FILE_ROWS_PER_READ` rows at a time.

    The same pandas reader, options and errors as a read of the whole file
    (the same parser reads each piece), without a whole-file frame and its
    records alive at once beside the rows kept (``benchmarks/RESULTS.md``,
    *Reassignment CSV read in pieces*).
    """
    first_row = 1
    with pd.read_csv(location, dtype=str, keep_default_na=False, chunksize=FILE_ROWS_PER_READ) as pieces:
        for frame in pieces:
            if isinstance(frame.index, pd.RangeIndex):
                yield from frame.to_dict("records")
            else:
                yield from _records_past_the_header(frame, first_row)
            first_row += len(frame)


def _records_past_the_header(frame: pd.DataFrame, first_row: int) -> Iterator[dict[str, Any]]:
    """The records of a piece whose rows have more fields than the header names, the extra ones empty.

    Such rows are what a spreadsheet export with a comma at the end of every
    row writes. pandas then reads the first field(s) as the frame's index and
    shifts every column by one: ``patient_order_uuid`` would get the user's
    UUID. Its ``index_col=False`` instead drops the fields past the header
    even when they hold something. Here the row is put back together from
    the index and the columns; the fields past the header must be empty, and
    a row with something in them is an error naming the row (its value is
    not repeated: it may be patient data), since it cannot be told which of
    its fields is the one too many.
    """
    columns = list(frame.columns)
    for number, (leading, values) in enumerate(
        zip(frame.index, frame.itertuples(index=False, name=None)), start=first_row
    ):
        fields = (*(leading if isinstance(leading, tuple) else (leading,)), *values)
        past = [position for position, value in enumerate(fields[len(columns) :], start=len(columns) + 1) if not _blank(value)]
        if past:
            raise ValueError(
                f"assignments CSV row {number} (counted from the first row after the header) has a value in field "
                f"{past[0]}, past the {len(columns)} columns the header names: name that column in the header, or remove the field (rows ending in an empty field "
                "are read as if it were not there)"
            )
        yield dict(zip(columns, fields))


def max_rows() -> int:
    """The most rows one run takes, from ``POSTDICOM_REASSIGNMENT_MAX_ROWS`` (default 100,000, at least 1)."""
    return int(env_number(MAX_ROWS_ENV, DEFAULT_MAX_ROWS, minimum=1, whole=True, unit="rows"))


def too_many_rows(source: str, count: str, most_rows: int) -> ValueError:
    """The error of a run given more rows than it takes: the source, the count and the setting."""
    return ValueError(
        f"{source} has {count} rows, and {MAX_ROWS_ENV} (the most rows one run takes) is {most_rows:,}; nothing "
        "was changed: split the rows over several runs, or raise the setting"
    )


URL_SCHEMES_READ_WHOLE = frozenset({"http", "https", "ftp"})
"""URL schemes a Parquet file is downloaded whole from (urllib), as ``pd.read_parquet`` reads them.

fsspec's own HTTP file system needs ``aiohttp``, which is not a dependency."""


@contextmanager
def _opened_parquet(location: str, label: str) -> Iterator[pq.ParquetFile]:
    """The Parquet file at ``location``, from the paths and URLs ``pd.read_parquet`` accepts.

    pyarrow's own file systems for what it knows (absolute local paths,
    ``file://``, ``s3://``, ``gs://``, ``hdfs://``); http(s) and ftp
    downloaded whole (:data:`URL_SCHEMES_READ_WHOLE`: a Parquet file is read
    from its end, and those answers are not seekable); fsspec (a dependency)
    for the rest: relative paths and its other protocols. A file that cannot
    be opened keeps its error (``FileNotFoundError`` names the path); one
    whose protocol nothing here knows, or whose content is not Parquet, is a
    ``ValueError`` naming ``label``.
    """
    scheme = urlsplit(location).scheme.lower()
    with ExitStack() as stack:
        try:
            if scheme in URL_SCHEMES_READ_WHOLE:
                with urlopen(location) as answer:  # noqa: S310 - the schemes are the ones listed above
                    handle: Any = pa.BufferReader(answer.read())
            else:
                try:
                    filesystem, path = pa_fs.FileSystem.from_uri(location)
                except (TypeError, pa.ArrowInvalid):
                    handle = stack.enter_context(fsspec.open(location, "rb"))
                else:
                    handle = stack.enter_context(filesystem.open_input_file(path))
            parquet = stack.enter_context(pq.ParquetFile(handle))
        except ValueError as error:  # pa.ArrowInvalid is one; fsspec's unknown protocol too
            source = f"a {scheme}:// URL" if scheme else "a local path"
            raise ValueError(f"{label} could not be read as Parquet from {source}: {error}") from error
        yield parquet


def _parquet_records(location: str, label: str, most_rows: int) -> Generator[dict[str, Any], None, None]:
    """The rows of the Parquet file at ``location``, read :data:`FILE_ROWS_PER_READ` rows at a time.

    The file's footer says how many rows it holds: past ``most_rows`` no row
    is read at all.
    """
    with _opened_parquet(location, label) as parquet:
        count = parquet.metadata.num_rows
        if count > most_rows:
            raise too_many_rows(label, f"{count:,}", most_rows)
        for batch in parquet.iter_batches(batch_size=FILE_ROWS_PER_READ):
            yield from batch.to_pandas().to_dict("records")


def read_assignment_rows(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]], most_rows: int | None = None
) -> list[dict[str, Any]]:
    """The rows of ``source`` with their column names in snake_case.

    A string is a path or URL (anything pandas/fsspec opens) to a ``.csv``
    (optionally compressed) or ``.parquet`` file; CSV cells are read as text so
    that nothing is turned into a number or a date behind the caller's back.
    Raises ``ValueError`` when the file's format cannot be told from its name,
    when a Parquet file cannot be read as one (or its URL's protocol is not
    known), and when there are more than ``most_rows`` rows (default:
    :func:`max_rows`): a file is read no further than one piece past it.
    """
    most_rows = max_rows() if most_rows is None else most_rows
    if isinstance(source, (str, os.PathLike)):
        location = os.fspath(source)
        name = PurePosixPath(location.split("?", 1)[0]).name
        label = f"assignments file {name!r}"
        if name.lower().endswith((".parquet", ".pq", ".parq")):
            records: Generator[Any, None, None] = _parquet_records(location, label, most_rows)
        elif re.search(r"\.csv(\.(gz|bz2|zip|xz|zst))?$", name.lower()):
            records = _csv_records(location)
        else:
            raise ValueError("assignments file must be named *.csv or *.parquet")
    else:
        label = "the inline assignments"
        if len(source) > most_rows:
            raise too_many_rows(label, f"{len(source):,}", most_rows)
        records = (record for record in source)
    rows: list[dict[str, Any]] = []
    # Closed on the way out, error or not: an error's traceback holds this frame, and with it an
    # unfinished file reader and its open file, for as long as the error is kept.
    with closing(records):
        for record in records:
            if len(rows) == most_rows:
                raise too_many_rows(label, f"more than {most_rows:,}", most_rows)
            rows.append(
                {_snake(key): value for key, value in record.items()}
                if isinstance(record, Mapping)
                else {"_not_a_row": record}
            )
    return rows


def validate_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[AssignmentCandidate], list[RowResult]]:
    """Split rows into well-formed candidates and ``skipped`` results (invalid, duplicate, conflicting).

    A row needs a ``patient_order_uuid`` and exactly one of ``assigned_user_uuid``
    / ``assigned_user_group_uuid``, all UUIDs. Rows that say the same thing are
    collapsed into the first one. Rows that give one order two different users
    (or two different groups) are all skipped: picking one would be a guess.
    A user row and a group row for the same order do not conflict (an order has
    one of each).
    """
    skipped: list[RowResult] = []
    candidates: list[AssignmentCandidate] = []
    for number, row in enumerate(rows, start=1):
        raw_order = row.get("patient_order_uuid")
        order = canonical_uuid(raw_order)
        targets = {kind: row.get(column) for kind, column in TARGET_COLUMNS.items() if not _blank(row.get(column))}
        problem = None
        if "_not_a_row" in row:
            problem = "invalid: not a row of named columns"
        elif _blank(raw_order):
            problem = "invalid: patient_order_uuid is missing"
        elif order is None:
            problem = "invalid: patient_order_uuid is not a UUID"
        elif not targets:
            problem = "invalid: no assigned_user_uuid or assigned_user_group_uuid"
        elif len(targets) > 1:
            problem = "invalid: both assigned_user_uuid and assigned_user_group_uuid given (one per row)"
        target = None
        if problem is None:
            (kind, raw_target), = targets.items()
            target = canonical_uuid(raw_target)
            if target is None:
                problem = f"invalid: {TARGET_COLUMNS[kind]} is not a UUID"
        if problem is not None or order is None or target is None:
            first_target = next(iter(targets.items()), (None, None))
            skipped.append(
                RowResult(
                    row=number,
                    patient_order_uuid=order or _show(raw_order),
                    target=first_target[0],
                    target_uuid=_show(first_target[1]) or None,
                    status="skipped",
                    reason=problem or "invalid",
                )
            )
            continue
        # most rows name one of a few users or groups: each is held once
        candidates.append(
            AssignmentCandidate(row=number, patient_order_uuid=order, target=kind, target_uuid=sys.intern(target))
        )

    groups: dict[tuple[str, str], list[AssignmentCandidate]] = {}
    for candidate in candidates:
        groups.setdefault((candidate.patient_order_uuid, candidate.target), []).append(candidate)
    kept: list[AssignmentCandidate] = []
    for members in groups.values():
        first = members[0]
        if len({member.target_uuid for member in members}) > 1:
            numbers = ", ".join(str(member.row) for member in members)
            for member in members:
                skipped.append(
                    row_result(
                        member, "skipped", f"conflict: rows {numbers} give this order different {member.target}s"
                    )
                )
            continue
        kept.append(first)
        for member in members[1:]:
            duplicate = row_result(member, "skipped", f"duplicate of row {first.row}")
            duplicate.duplicate_of = first.row
            skipped.append(duplicate)
    kept.sort(key=lambda candidate: candidate.row)
    return kept, skipped


@run_name_or("reassign")
def _run_name() -> str:
    """Names the run after its input (file name, or 'rows', or 'selection') and marks dry runs."""
    parameters = flow_run.parameters or {}
    source = parameters.get("assignments_file") or parameters.get("assignments")
    if isinstance(source, str):
        label = PurePosixPath(source.split("?", 1)[0]).name or "file"
    elif source is not None:
        label = f"{len(source)}-rows"
    else:
        label = "selection"
    suffix = "-dry-run" if parameters.get("dry_run") else ""
    return f"reassign-{label}{suffix}"


def _table_row(row: RowResult) -> dict[str, Any]:
    """One row of the artifact; short columns first, so the reason is on screen without scrolling past UUIDs."""
    return {
        "row": row.row,
        "status": row.status,
        "reason": row.reason,
        "target": row.target or "",
        "patient_order_uuid": row.patient_order_uuid,
        "target_uuid": row.target_uuid or "",
        "previous_uuid": row.previous_uuid or "",
    }


def create_rows_artifact(rows: Iterable[RowResult], *, key: str, description: str) -> None:
    """The table artifact of ``rows``, as ``create_table_artifact`` makes it, its JSON written one row at a time.

    ``create_table_artifact`` takes every row as a dict, then copies them
    twice (validating the table, replacing NaN) before writing the JSON: for
    thousands of rows that is the run's largest moment of memory, after the
    order list (``benchmarks/RESULTS.md``, *Reassignment memory, second pass*).
    Here each row's dict lives only while its JSON is written; the artifact's
    data is the same text (a JSON list of objects, NaN cannot occur).
    """
    data = "[" + ", ".join(json.dumps(_table_row(row)) for row in rows) + "]"
    context = FlowRunContext.get()
    with get_client(sync_client=True) as client:
        client.create_artifact(
            artifact=ArtifactCreate(
                type="table",
                key=key,
                description=description,
                flow_run_id=context.flow_run.id if context and context.flow_run else None,
                data=data,
            )
        )


def not_applied(report: ReassignmentReport) -> list[RowResult]:
    """Rows whose change is not on the server: failed, invalid, conflicting or naming an unknown order.

    A duplicate is carried by the row it repeats, and in a dry run nothing is
    meant to be applied, so neither counts.
    """
    if report.dry_run:
        return []
    return [row for row in report.rows if row.status == "failed" or (row.status == "skipped" and row.duplicate_of is None)]


@contextmanager
def _order_list_within_cap(read: str, remedy: str) -> Iterator[None]:
    """An order list larger than ``POSTDICOM_MAX_JSON_BYTES`` raised as an error saying what was read and what to do.

    The client's own error names the setting and the byte count only; the
    person running a reassignment needs to know which list that was (a
    file's lookup reads every order of the account), about how many orders
    the cap holds (:data:`ORDER_LIST_BYTES_AN_ORDER`), and that nothing was
    changed. Still an :class:`~postdicom.errors.AnswerTooLargeError`, with
    the request it was about.
    """
    try:
        yield
    except AnswerTooLargeError as error:
        cap = HttpLimits.from_env().max_json_bytes
        most, least = (cap // size for size in ORDER_LIST_BYTES_AN_ORDER)
        raise AnswerTooLargeError(
            f"{read} is larger than {JSON_BYTES_SETTING} allows ({cap:,} bytes, about {least:,}-{most:,} orders); "
            f"nothing was changed: {remedy}",
            status=error.status,
            method=error.method,
            url=error.url,
        ) from error


def _plan(
    credentials: PostDicomCredentials,
    source: str | Sequence[AssignmentRow] | None,
    chosen_filters: Mapping[str, Any],
    assigned_user_uuid: str | None,
    assigned_user_group_uuid: str | None,
    *,
    dry_run: bool,
    most_rows: int,
) -> tuple[list[PlannedAssignment], list[RowResult], int]:
    """The rows to send, the rows already decided (skipped, unchanged, dry run), and how many were decided by lookup.

    The input rows and the account's order list are needed for planning only:
    they are read and dropped here, before any batch is sent. The order list
    is read as an index of the orders the rows name (who each is assigned to
    now, :func:`flows.orders.order_index`), never as parsed entries with the
    JSON they were read from (3-5 KB an order; ``benchmarks/RESULTS.md``,
    *Reassignment memory* and its second pass). More than ``most_rows`` rows
    (a file, inline rows or a selection) is an error here, before any write,
    and so is an order list larger than ``POSTDICOM_MAX_JSON_BYTES``.
    """
    if source is not None:
        candidates, results = validate_rows(read_assignment_rows(source, most_rows))
        with _order_list_within_cap(
            f"the account's order list (every order of every institution, read to look up the {len(candidates):,} "
            "orders the rows name: a row does not say its order's institution)",
            f"raise {JSON_BYTES_SETTING} above the size of that list (it is read as it arrives, one order at a time: "
            "a larger value costs this run no memory)",
        ):
            index = order_index(credentials, {candidate.patient_order_uuid for candidate in candidates})
    else:
        with _order_list_within_cap(
            "the selection's order list (the orders of its institutions, modalities and study dates)",
            f"split the selection over several runs (fewer study dates or institutions), or raise {JSON_BYTES_SETTING} "
            f"(and {MAX_ROWS_ENV}, {most_rows:,} now, if the selection has more orders than that)",
        ):
            index = order_index(credentials, listing=True, **chosen_filters)
        selected = len(index.listed or [])
        if selected > most_rows:
            raise too_many_rows("the selection", f"{selected:,}", most_rows)
        target_rows = [
            {
                "patient_order_uuid": order_uuid,
                "assigned_user_uuid": assigned_user_uuid,
                "assigned_user_group_uuid": assigned_user_group_uuid,
            }
            for order_uuid in index.listed or []
        ]
        index.listed = None
        candidates, results = validate_rows(target_rows)
        del target_rows
    to_send, decided = plan_assignments(candidates, index.assignments, dry_run=dry_run)
    return to_send, results + decided, len(decided)


@flow(
    name="batch-reassignment",
    flow_run_name=_run_name,
    task_runner=bounded_task_runner(),
    log_prints=False,
)
def batch_reassignment(
    credentials: Annotated[PostDicomCredentials, ACCOUNT],
    assignments: Annotated[
        list[AssignmentRow] | None,
        PATH_PASSES_THROUGH,
        form("Rows", "Inline rows: patient_order_uuid and assigned_user_uuid or assigned_user_group_uuid."),
    ] = None,
    dry_run: Annotated[bool, form("Dry run", "Check everything and report what would change; change nothing.")] = False,
    assignments_file: Annotated[
        OptionalText,
        form("Rows file", "Path or URL of a .csv or .parquet file of rows (same columns as Rows).", blank=True),
    ] = None,
    institution_uuid_list: Annotated[
        list[str], NONE_AS_EMPTY, form("Selection: institutions", "Instead of rows: orders of these institution UUIDs.")
    ] = [],  # noqa: B006 - never mutated; a list keeps the form free of a list/None toggle
    modality_list: Annotated[
        list[str], NONE_AS_EMPTY, form("Selection: modalities", "Instead of rows: orders of these modalities.")
    ] = [],  # noqa: B006
    study_date_from: Annotated[
        OptionalDate,
        form("Selection: first study date", "Instead of rows: orders from this study date (YYYY-MM-DD).", blank=True),
    ] = None,
    study_date_to: Annotated[
        OptionalDate,
        form("Selection: last study date", "Instead of rows: orders up to this study date (YYYY-MM-DD).", blank=True),
    ] = None,
    assigned_user_uuid: Annotated[
        OptionalText,
        form("Selection: assign to user UUID", "The one target of a selection (or a group, not both).", blank=True),
    ] = None,
    assigned_user_group_uuid: Annotated[
        OptionalText,
        form("Selection: assign to group UUID", "The one target of a selection (or a user, not both).", blank=True),
    ] = None,
    concurrency: Annotated[int, form("Concurrency", "Write batches running at once.", ge=1, le=16)] = 4,
    batch_size: Annotated[
        int, form("Rows per batch", "Most rows one write task sends (batches are evened out).", ge=1, le=1000)
    ] = 100,
    concurrency_limit_name: Annotated[
        str,
        NO_LIMIT_AS_EMPTY,
        form("Concurrency limit", "Prefect global concurrency limit each batch holds a slot of; empty: none."),
    ] = DEFAULT_LIMIT_NAME,
) -> ReassignmentReport:
    """Assign patient orders to users or user groups, in bulk, safely.

    Give either ``assignments`` (rows ``{patient_order_uuid, assigned_user_uuid |
    assigned_user_group_uuid}``, or a path/URL to a CSV or Parquet file of such
    rows) or a selection (``institution_uuid_list``, ``modality_list``,
    ``study_date_from``/``study_date_to``; no patient filters, so that no
    patient identifier is kept in the run's stored parameters: for one
    patient's orders, give their rows)
    with exactly one of ``assigned_user_uuid`` / ``assigned_user_group_uuid``
    for everything selected. ``dry_run`` validates and reports without
    changing anything. At most ``concurrency`` batches of at most ``batch_size``
    rows run at once (as many batches as the rows need, rounded up to a
    multiple of ``concurrency`` and evened out, so that no slot idles while the
    others send), and each holds a slot of the Prefect global concurrency limit
    ``concurrency_limit_name`` (created with ``concurrency`` slots if missing;
    empty or ``None`` disables it) on a lease of ``POSTDICOM_ASSIGNMENT_LEASE_SECONDS``
    (60 s, Prefect's least), so a killed run's slots come back about 75 s later. Without a
    Prefect server (ephemeral API) the limit is not used (nothing would ever
    expire the leases there) and a warning says so. The run ends Failed when
    any requested row was not applied (failed, invalid, conflicting, unknown
    order), after every other row was processed; the report is in the raised
    error's ``report``. More rows than ``POSTDICOM_REASSIGNMENT_MAX_ROWS``
    (100,000 by default) fail the run before any change, and so does an order
    list larger than ``POSTDICOM_MAX_JSON_BYTES`` (64 MiB, about 100,000
    orders; rows are looked up in every order of the account).
    """
    logger = get_run_logger()
    most_rows = max_rows()
    selection = {
        "institution_uuid_list": institution_uuid_list,
        "modality_list": modality_list,
        "study_date_from": study_date_from,
        "study_date_to": study_date_to,
    }
    chosen_filters = {name: value for name, value in selection.items() if value not in (None, [], "")}
    if assignments is not None and assignments_file:
        raise ValueError("give assignments (rows) or assignments_file, not both")
    source = assignments_file or assignments
    if source is not None and (chosen_filters or assigned_user_uuid or assigned_user_group_uuid):
        raise ValueError("give either assignments or a selection with one target, not both")
    if source is None:
        if not chosen_filters:
            raise ValueError("a selection needs at least one filter (refusing to reassign every order)")
        if not (assigned_user_uuid or assigned_user_group_uuid) or (assigned_user_uuid and assigned_user_group_uuid):
            raise ValueError("a selection needs exactly one of assigned_user_uuid or assigned_user_group_uuid")
        if canonical_uuid(assigned_user_uuid or assigned_user_group_uuid) is None:
            raise ValueError("the target of a selection must be a UUID")
    to_send, results, decided_count = _plan(
        credentials, source, chosen_filters, assigned_user_uuid, assigned_user_group_uuid, dry_run=dry_run,
        most_rows=most_rows,
    )
    logger.info(
        "%d rows: %d to send, %d already decided, %d skipped before lookup",
        len(to_send) + len(results),
        len(to_send),
        decided_count,
        len(results) - decided_count,
    )
    if to_send:
        if concurrency_limit_name and not has_prefect_server():
            logger.warning(
                "No Prefect server (PREFECT_API_URL unset): the global concurrency limit %r is not used, since without "
                "a server a killed run's slots would never come back; this run sends at most %d batches at once",
                concurrency_limit_name, concurrency,
            )
            concurrency_limit_name = ""
        if concurrency_limit_name:
            ensure_concurrency_limit(concurrency_limit_name, concurrency)
        # Batches are taken out of to_send as they are submitted, and nothing holds a finished one:
        # only the rows' results stay (RESULTS.md, "Reassignment memory, second pass").
        width = min(concurrency, MAX_WORKERS)
        for _, batch_results, _ in submit_bounded(
            lambda batch: assign_orders_batch.submit(batch, credentials, concurrency_limit_name),
            take_chunks(to_send, batch_size, waves_of=width),
            width,
        ):
            results += batch_results

    results.sort(key=lambda result: result.row)
    report = ReassignmentReport(
        dry_run=dry_run,
        rows=results,
        counts=count_by((result.status for result in results), ASSIGNMENT_STATUSES),
    )
    counts_text = ", ".join(f"{status} {count}" for status, count in report.counts.items())
    create_rows_artifact(
        results,
        key="batch-reassignment-rows",
        description=f"Reassignment{' (dry run)' if dry_run else ''}: {counts_text}",
    )
    logger.info("reassignment finished: %s", counts_text)
    missed = not_applied(report)
    if missed:
        raise FlowRunFailed(
            f"partly applied: {len(missed)} of {len(results)} rows not applied ({counts_text}); "
            "see the report or the batch-reassignment-rows artifact for each row's reason",
            report,
        )
    return report
