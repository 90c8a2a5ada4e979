"""DICOMweb on ``/dicomweb``: STOW, QIDO and WADO in PostDICOM's path dialect and in PS3.18's.

Both dialects share one implementation per service; the routes only differ in
where the UIDs come from (path or query). Everything is scoped to the caller's
account (``request.state.account``, set by the auth middleware).

Route order matters: PostDICOM's ``/studies/series...`` paths are registered
before ``/studies/{study}`` (a UID is digits and dots, never ``series``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections import defaultdict
from typing import Any

import pydicom
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sandbox import model
from sandbox.dicom import (FAILURE_PROCESSING, INSTANCE_FIELDS, SERIES_FIELDS, STUDY_FIELDS, ParsedInstance,
                           QidoQuery, QueryError, StowReject, json_element, matches, parse_qido, project, read_instance,
                           with_bulk_base)
from sandbox.errors import ApiError, header_safe
from sandbox.multipart import OutgoingPart, ReceivedPart, content_type_params, multipart_body, receive_parts
from sandbox.store import Store
from sandbox.workers import in_worker

PREFIX = "/dicomweb"
DICOM_JSON = "application/dicom+json"
STOW_COMMIT_BATCH = 50
"""Instances indexed per write transaction: the loop is given back between batches (a batch of 50 takes
about 15 ms), so a STOW of thousands of parts does not hold other requests up while it is indexed."""


def api_base(request: Request) -> str:
    """The WebAddress as the caller reached it (URLs in answers follow the Host header)."""
    return str(request.base_url).rstrip("/") + PREFIX


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode("utf-8"), status_code=status,
                    media_type=DICOM_JSON, headers=headers)


# ---------------------------------------------------------------- STOW-RS

async def stow(request: Request) -> Response:
    """``POST /`` (PostDICOM), ``POST /studies`` and ``POST /studies/{study}`` (PS3.18).

    The parts are received into temp files, then parsed and indexed (a write
    transaction per batch) on the event loop itself, which holds the loop about a
    millisecond per instance. The sandbox is one process: with the parsing in
    a worker thread, receiving concurrent uploads and parsing fought over the
    GIL, costing a fifth more CPU per instance and slower ingest with four
    uploads in flight; parsing each part as it arrived measured slower too
    (benchmarks/RESULTS.md). The loop is given back after every part and
    every :data:`STOW_COMMIT_BATCH` indexed instances, so a request of many
    parts holds other requests up by one part or one batch at a time.
    """
    media, params = content_type_params(request.headers.get("content-type", ""))
    if media != "multipart/related":
        raise ApiError(415, f"STOW needs a multipart/related body, not {media or 'no Content-Type'}")
    part_type = params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise ApiError(415, f"only type=application/dicom parts are accepted, not {part_type}")
    boundary = params.get("boundary")
    if not boundary:
        raise ApiError(400, "multipart/related Content-Type has no boundary")
    store: Store = request.app.state.store
    parts = await receive_parts(request.stream(), boundary, store.temp_path)
    try:
        if not parts:
            raise ApiError(400, "multipart body holds no part")
        study_in_url = request.path_params.get("study")
        memo: dict[tuple, dict[str, Any]] = {}
        outcomes = []
        for part in parts:
            outcomes.append((part, _examine(part, study_in_url, memo)))
            await asyncio.sleep(0)
        account: model.Account = request.state.account
        to_store = [(part, outcome) for part, outcome in outcomes if not isinstance(outcome, StowReject)]
        for start in range(0, len(to_store), STOW_COMMIT_BATCH):
            with store.write() as tx:
                for part, outcome in to_store[start:start + STOW_COMMIT_BATCH]:
                    model.store_instance(tx, store, account, outcome, part.path, part.size)
            await asyncio.sleep(0)
        return _stow_answer(api_base(request), outcomes)
    finally:
        for part in parts:
            part.path.unlink(missing_ok=True)


def _examine(part: ReceivedPart, study_in_url: str | None,
             memo: dict[tuple, dict[str, Any]]) -> ParsedInstance | StowReject:
    """The parsed instance to index, or the :class:`StowReject` saying why it cannot be stored.

    ``memo`` is shared by the parts of one request (see :func:`sandbox.dicom.dataset_json`).
    """
    media, _ = content_type_params(part.content_type or "application/dicom")
    try:
        if media != "application/dicom":
            raise StowReject(0xC000, f"part of type {media} is not application/dicom")
        parsed = read_instance(part.path, memo)
        if study_in_url and parsed.study_instance_uid != study_in_url:
            raise StowReject(FAILURE_PROCESSING, "StudyInstanceUID does not match the study in the URL",
                             parsed.sop_class_uid, parsed.sop_instance_uid)
        return parsed
    except StowReject as reject:
        return reject


def _stow_answer(base: str, outcomes: list[tuple[ReceivedPart, ParsedInstance | StowReject]]) -> Response:
    stored_items, failed_items, reasons, studies = [], [], [], set()
    for part, outcome in outcomes:
        if isinstance(outcome, StowReject):
            failed_items.append({
                "00081150": json_element("UI", [outcome.sop_class_uid] if outcome.sop_class_uid else []),
                "00081155": json_element("UI", [outcome.sop_instance_uid] if outcome.sop_instance_uid else []),
                "00081197": json_element("US", [outcome.code]),
            })
            reasons.append(f"{outcome.sop_instance_uid or 'part'}: {outcome.reason} (0x{outcome.code:04X})")
            continue
        studies.add(outcome.study_instance_uid)
        stored_items.append({
            "00081150": json_element("UI", [outcome.sop_class_uid]),
            "00081155": json_element("UI", [outcome.sop_instance_uid]),
            "00081190": json_element("UR", [f"{base}/studies/{outcome.study_instance_uid}/series/"
                                            f"{outcome.series_instance_uid}/instances/{outcome.sop_instance_uid}"]),
        })
    body: dict[str, Any] = {}
    if len(studies) == 1:
        body["00081190"] = json_element("UR", [f"{base}/studies/{next(iter(studies))}"])
    if failed_items:
        body["00081198"] = json_element("SQ", failed_items)
    if stored_items:
        body["00081199"] = json_element("SQ", stored_items)
    if not failed_items:
        return _json(body, 200)
    status = 202 if stored_items else 409
    summary = f"{len(failed_items)} of {len(outcomes)} instances not stored: " + "; ".join(reasons[:3])
    return _json(body, status, {"X-Error-Reason": header_safe(summary)})


# ---------------------------------------------------------------- QIDO-RS

def _qido_query(request: Request) -> QidoQuery:
    try:
        return parse_qido(request.scope.get("query_string", b"").decode("latin-1"))
    except QueryError as exc:
        raise ApiError(400, str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ApiError(400, "query string is not UTF-8") from exc


def _check_accept_json(request: Request) -> None:
    accept = request.headers.get("accept", "")
    if accept and "xml" in accept and "json" not in accept and "*/*" not in accept:
        raise ApiError(406, "QIDO answers are application/dicom+json only")


def _counts(conn: sqlite3.Connection, column: str, account_uuid: str,
            study_uid: str | None = None) -> dict[str, int]:
    sql = f"SELECT {column}, COUNT(*) FROM instances WHERE account_uuid = ?"
    args: list[Any] = [account_uuid]
    if study_uid:
        sql += " AND study_instance_uid = ?"
        args.append(study_uid)
    return {r[0]: r[1] for r in conn.execute(sql + f" GROUP BY {column}", args)}


def _exact_uid(query: QidoQuery, tag: str, from_path: str | None) -> str | None:
    """The one UID a search is pinned to (path or exact query key), so SQL can narrow it.

    Only an optimisation: every row found is still checked against the whole
    query, so a wildcard or list value simply means "no narrowing".
    """
    if from_path:
        return from_path
    for key, _vr, value in query.filters:
        if key == tag and value and not any(c in value for c in "*?,\\"):
            return value
    return None


def _study_rows(conn: sqlite3.Connection, account: model.Account, base: str,
                study_uid: str | None) -> list[dict[str, Any]]:
    sql = "SELECT uuid, study_instance_uid, study_attrs FROM orders WHERE account_uuid = ? AND study_instance_uid "
    args: list[Any] = [account.uuid]
    if study_uid:
        sql += "= ?"
        args.append(study_uid)
    else:
        sql += "IS NOT NULL"
    orders = conn.execute(sql + " ORDER BY id", args).fetchall()
    instances = _counts(conn, "order_uuid", account.uuid, study_uid)
    series_count: dict[str, int] = defaultdict(int)
    modalities: dict[str, list[str]] = defaultdict(list)
    if study_uid:
        # Through the order: the (order_uuid, ...) index, not every series of the account.
        series_sql = ("SELECT order_uuid, modality FROM series WHERE order_uuid IN "
                      "(SELECT uuid FROM orders WHERE account_uuid = ? AND study_instance_uid = ?)")
        args = [account.uuid, study_uid]
    else:
        series_sql = "SELECT order_uuid, modality FROM series WHERE account_uuid = ?"
        args = [account.uuid]
    for row in conn.execute(series_sql + " ORDER BY id", args):
        series_count[row["order_uuid"]] += 1
        if row["modality"] and row["modality"] not in modalities[row["order_uuid"]]:
            modalities[row["order_uuid"]].append(row["modality"])
    out = []
    for row in orders:
        if not instances.get(row["uuid"]):
            continue
        attrs = json.loads(row["study_attrs"])
        attrs["00080061"] = json_element("CS", modalities[row["uuid"]])
        attrs["00201206"] = json_element("IS", [series_count[row["uuid"]]])
        attrs["00201208"] = json_element("IS", [instances[row["uuid"]]])
        attrs["00080056"] = json_element("CS", ["ONLINE"])
        attrs["00081190"] = json_element("UR", [f"{base}/studies/{row['study_instance_uid']}"])
        out.append(attrs)
    return out


def _series_rows(conn: sqlite3.Connection, account: model.Account, base: str,
                 study_uid: str | None, series_uid: str | None) -> list[dict[str, Any]]:
    args: list[Any] = [account.uuid]
    if study_uid:
        # CROSS JOIN makes SQLite start from the one order, then its series by index.
        sql = ("SELECT s.uuid, s.attrs, o.study_instance_uid FROM orders o CROSS JOIN series s "
               "ON s.order_uuid = o.uuid WHERE o.account_uuid = ? AND o.study_instance_uid = ?")
        args.append(study_uid)
    else:
        sql = ("SELECT s.uuid, s.attrs, o.study_instance_uid FROM series s JOIN orders o ON o.uuid = s.order_uuid "
               "WHERE s.account_uuid = ?")
    if series_uid:
        sql += " AND s.series_instance_uid = ?"
        args.append(series_uid)
    counts = _counts(conn, "series_uuid", account.uuid, study_uid)
    out = []
    for row in conn.execute(sql + " ORDER BY o.id, s.series_number IS NULL, s.series_number, s.id", args):
        attrs = json.loads(row["attrs"])
        uid = attrs["0020000E"]["Value"][0]
        attrs["00201209"] = json_element("IS", [counts.get(row["uuid"], 0)])
        attrs["00080056"] = json_element("CS", ["ONLINE"])
        attrs["00081190"] = json_element("UR", [f"{base}/studies/{row['study_instance_uid']}/series/{uid}"])
        out.append(attrs)
    return out


def _instance_rows(conn: sqlite3.Connection, account: model.Account, base: str, study_uid: str | None,
                   series_uid: str | None, sop_uid: str | None) -> list[dict[str, Any]]:
    out = []
    for row in _instances(conn, account, study_uid, series_uid, sop_uid):
        attrs = json.loads(row["attrs"])
        attrs["00080056"] = json_element("CS", ["ONLINE"])
        attrs["00081190"] = json_element("UR", [_instance_url(base, row)])
        out.append(attrs)
    return out


def _instance_url(base: str, row: sqlite3.Row) -> str:
    return (f"{base}/studies/{row['study_instance_uid']}/series/{row['series_instance_uid']}"
            f"/instances/{row['sop_instance_uid']}")


def _instances(conn: sqlite3.Connection, account: model.Account, study_uid: str | None, series_uid: str | None,
               sop_uid: str | None) -> list[sqlite3.Row]:
    sql = "SELECT * FROM instances WHERE account_uuid = ?"
    args: list[Any] = [account.uuid]
    for column, value in (("study_instance_uid", study_uid), ("series_instance_uid", series_uid),
                          ("sop_instance_uid", sop_uid)):
        if value:
            sql += f" AND {column} = ?"
            args.append(value)
    return conn.execute(sql + " ORDER BY study_instance_uid, series_instance_uid, instance_number IS NULL, "
                              "instance_number, id", args).fetchall()


def _qido(level: str):
    """A QIDO route handler for one level; UIDs in the path narrow the search like query keys."""
    defaults = {"study": STUDY_FIELDS, "series": SERIES_FIELDS, "instance": INSTANCE_FIELDS}[level]

    async def handle(request: Request) -> Response:
        _check_accept_json(request)
        query = _qido_query(request)
        account: model.Account = request.state.account
        store: Store = request.app.state.store
        base = api_base(request)
        study_uid = _exact_uid(query, "0020000D", request.path_params.get("study"))
        series_uid = _exact_uid(query, "0020000E", request.path_params.get("series"))
        sop_uid = _exact_uid(query, "00080018", None)

        def search() -> tuple[list[dict[str, Any]], int]:
            conn = store.read()
            if level == "study":
                rows = _study_rows(conn, account, base, study_uid)
            elif level == "series":
                rows = _series_rows(conn, account, base, study_uid, series_uid)
            else:
                rows = _instance_rows(conn, account, base, study_uid, series_uid, sop_uid)
            found = [project(r, defaults, query) for r in rows if matches(r, query)]
            end = len(found) if query.limit is None else query.offset + query.limit
            return found[query.offset:end], max(0, len(found) - end)

        page, remaining = await in_worker(request, search)
        headers = {}
        if remaining:
            headers["Warning"] = f'299 sandbox "There are {remaining} additional results that can be requested"'
        return _json(page, 200, headers)

    return handle


# ---------------------------------------------------------------- WADO-RS

def _accept_multipart_dicom(request: Request, stored_syntaxes: set[str]) -> None:
    """Only ``multipart/related; type="application/dicom"`` answers exist here (as on PostDICOM).

    A specific ``transfer-syntax`` is honoured only if every instance is stored
    in it (the sandbox does not transcode); ``*`` or none means "as stored".
    """
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return
    reasons = []
    for media_range in accept.split(","):
        media, params = content_type_params(media_range.strip())
        if media in ("*/*", "multipart/*"):
            return
        if media != "multipart/related":
            reasons.append(f"{media} (only multipart/related answers exist)")
            continue
        part_type = params.get("type", "application/dicom").lower()
        if part_type not in ("application/dicom", "application/*", "*/*"):
            reasons.append(f"multipart/related with type={part_type}")
            continue
        syntax = params.get("transfer-syntax", "*")
        if syntax == "*" or {syntax} >= stored_syntaxes:
            return
        reasons.append(f"transfer-syntax={syntax} (stored as {', '.join(sorted(stored_syntaxes))}; no transcoding)")
    raise ApiError(406, "not acceptable: " + "; ".join(reasons))


async def _path_instances(request: Request, level: str) -> list[sqlite3.Row]:
    """The caller's instances under the path's study/series/SOP UIDs; 404 when there are none."""
    account: model.Account = request.state.account
    store: Store = request.app.state.store
    uids = {k: request.path_params.get(k) for k in ("study", "series", "sop")}
    rows = await in_worker(request, lambda: _instances(store.read(), account, uids["study"], uids["series"],
                                                       uids["sop"]))
    if not rows:
        raise ApiError(404, f"no {level} {uids['sop'] or uids['series'] or uids['study']} in this account")
    return rows


def _wado(level: str):
    async def handle(request: Request) -> Response:
        rows = await _path_instances(request, level)
        _accept_multipart_dicom(request, {r["transfer_syntax_uid"] for r in rows})
        store: Store = request.app.state.store
        base = api_base(request)
        parts = [OutgoingPart(store.files_dir / r["path"], r["size"],
                              f"application/dicom; transfer-syntax={r['transfer_syntax_uid']}",
                              _instance_url(base, r)) for r in rows]
        boundary, length, chunks = multipart_body(parts)
        return StreamingResponse(chunks, headers={"Content-Length": str(length)},
                                 media_type=f'multipart/related; type="application/dicom"; boundary={boundary}')

    return handle


def _metadata(level: str):
    async def handle(request: Request) -> Response:
        rows = await _path_instances(request, level)
        base = api_base(request)
        return _json([with_bulk_base(json.loads(r["attrs"]), _instance_url(base, r)) for r in rows])

    return handle


async def bulkdata(request: Request) -> Response:
    """The BulkDataURIs of ``/metadata``: one element's bytes as a one-part multipart answer."""
    account: model.Account = request.state.account
    store: Store = request.app.state.store
    p = request.path_params
    rows = await in_worker(request, lambda: _instances(store.read(), account, p["study"], p["series"], p["sop"]))
    if not rows:
        raise ApiError(404, f"no instance {p['sop']} in this account")
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", p["tag"]):
        raise ApiError(400, f"bulk data tag {p['tag']!r} is not 8 hex digits")
    tag = int(p["tag"], 16)

    def read() -> bytes:
        ds = pydicom.dcmread(store.files_dir / rows[0]["path"])
        if tag not in ds or not isinstance(ds[tag].value, (bytes, bytearray)):
            raise ApiError(404, f"instance has no bulk data element {p['tag']}")
        return bytes(ds[tag].value)

    value = await in_worker(request, read)
    boundary, _, chunks = multipart_body([OutgoingPart(None, len(value), "application/octet-stream", data=value)])
    return Response(b"".join(chunks),
                    media_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}')


def routes() -> list[Route]:
    """All DICOMweb routes; the PostDICOM dialect paths come first (see module docstring)."""
    p = PREFIX
    get = ["GET"]
    return [
        Route(p, stow, methods=["POST"]),
        Route(p + "/", stow, methods=["POST"]),
        Route(p + "/studies", stow, methods=["POST"]),
        Route(p + "/studies/{study}", stow, methods=["POST"]),
        # PostDICOM dialect: UIDs in the query, or a single UID without its parents.
        Route(p + "/studies/series", _qido("series"), methods=get),
        Route(p + "/studies/series/instances", _qido("instance"), methods=get),
        Route(p + "/studies/series/instances/{sop}", _wado("instance"), methods=get),
        Route(p + "/studies/series/instances/{sop}/metadata", _metadata("instance"), methods=get),
        Route(p + "/studies/series/{series}", _wado("series"), methods=get),
        Route(p + "/studies/series/{series}/metadata", _metadata("series"), methods=get),
        # PS3.18.
        Route(p + "/studies", _qido("study"), methods=get),
        Route(p + "/series", _qido("series"), methods=get),
        Route(p + "/instances", _qido("instance"), methods=get),
        Route(p + "/studies/{study}", _wado("study"), methods=get),
        Route(p + "/studies/{study}/metadata", _metadata("study"), methods=get),
        Route(p + "/studies/{study}/series", _qido("series"), methods=get),
        Route(p + "/studies/{study}/instances", _qido("instance"), methods=get),
        Route(p + "/studies/{study}/series/{series}", _wado("series"), methods=get),
        Route(p + "/studies/{study}/series/{series}/metadata", _metadata("series"), methods=get),
        Route(p + "/studies/{study}/series/{series}/instances", _qido("instance"), methods=get),
        Route(p + "/studies/{study}/series/{series}/instances/{sop}", _wado("instance"), methods=get),
        Route(p + "/studies/{study}/series/{series}/instances/{sop}/metadata", _metadata("instance"), methods=get),
        Route(p + "/studies/{study}/series/{series}/instances/{sop}/bulkdata/{tag}", bulkdata, methods=get),
    ]
