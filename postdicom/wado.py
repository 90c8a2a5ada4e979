"""WADO-RS: download a study, a series or an instance to ``<SOPInstanceUID>.dcm`` files as the answer streams.

The multipart answer is split as it arrives (:func:`postdicom.multipart.split_to_files`);
each part is written to a temporary file in the destination and renamed to
its SOP Instance UID, read from the part's own header
(:func:`postdicom.part10.sop_instance_uid_of`). Memory stays at one chunk
whatever the size of the answer.

An answer may not go on past what it announced: a body longer than its
``Content-Length``, or a part longer than its own ``Content-Length`` header,
stops the download with a :class:`~postdicom.errors.ProtocolError` before the
extra bytes are written (the unfinished file is removed, the download is not
tried again). Every answer, whether it announces its length or not, is bounded
by the session's download deadline and by its size cap
(``POSTDICOM_MAX_DOWNLOAD_BYTES``: an :class:`~postdicom.errors.AnswerTooLargeError`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from .dicom_json import TAG_SERIES_UID, TAG_SOP_UID, TAG_STUDY_UID, first_value
from .errors import NotFoundError, ProtocolError, TransportError
from .http_errors import bounded_body, error_reason
from .http_limits import DOWNLOAD_BYTES_SETTING, ERROR_BODY_BYTES, read_body
from .multipart import ReceivedPart, parse_content_type, split_to_files
from .part10 import sop_instance_uid_of
from .qido import QidoPaging
from .retry import retry_scope
from .uids import check_uid, is_uid

if TYPE_CHECKING:
    from .http import HttpSession
    from .qido import Qido
    from .urls import DicomWebPaths

WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
"""Ask for the instances as stored (``transfer-syntax=*``): what was uploaded comes back byte for byte."""

_PARENT_LOOKUP = QidoPaging(limit=1, fields=(TAG_STUDY_UID, TAG_SERIES_UID), page_size=1)


class Wado:
    """The WADO-RS downloads of one account: sent through ``http``, on the retrieve paths of ``paths``.

    When those paths need parent UIDs the caller did not give (a standard
    server), ``qido`` finds them (one extra request).
    """

    def __init__(self, http: HttpSession, paths: DicomWebPaths, qido: Qido) -> None:
        self._http = http
        self._paths = paths
        self._qido = qido

    def retrieve_study(self, study_uid: str, destination: str | os.PathLike) -> list[Path]:
        check_uid(study_uid, "study_instance_uid")
        return self._retrieve(self._paths.retrieve_study(study_uid), destination)

    def retrieve_series(self, series_uid: str, destination: str | os.PathLike, study_uid: str | None) -> list[Path]:
        check_uid(series_uid, "series_instance_uid")
        if self._paths.retrieve_needs_parents:
            if study_uid:
                check_uid(study_uid, "study_instance_uid")
            else:
                study_uid = self._parents("series", TAG_SERIES_UID, series_uid)[0]
        return self._retrieve(self._paths.retrieve_series(series_uid, study_uid), destination)

    def retrieve_instance(
        self,
        sop_uid: str,
        destination: str | os.PathLike,
        study_uid: str | None,
        series_uid: str | None,
    ) -> list[Path]:
        check_uid(sop_uid, "sop_instance_uid")
        if self._paths.retrieve_needs_parents:
            if study_uid and series_uid:
                check_uid(study_uid, "study_instance_uid")
                check_uid(series_uid, "series_instance_uid")
            else:
                study_uid, series_uid = self._parents("instances", TAG_SOP_UID, sop_uid)
        return self._retrieve(self._paths.retrieve_instance(sop_uid, study_uid, series_uid), destination)

    def _parents(self, level: str, tag: str, uid: str) -> tuple[str, str]:
        """Study and series UIDs of a series or instance, found with a top-level QIDO query."""
        if level == "series":
            matches = self._qido.search_for_series(None, {tag: uid}, _PARENT_LOOKUP)
        else:
            matches = self._qido.search_for_instances(None, None, {tag: uid}, _PARENT_LOOKUP)
        if not matches:
            raise NotFoundError(f"no {level} with UID {uid} on the server", status=None)
        study = str(first_value(matches[0], TAG_STUDY_UID) or "")
        series = str(first_value(matches[0], TAG_SERIES_UID) or "")
        if not study or (tag == TAG_SOP_UID and not series):
            raise ProtocolError(f"the QIDO answer for {uid} lacks its parent UIDs")
        return check_uid(study, "StudyInstanceUID"), series and check_uid(series, "SeriesInstanceUID")

    def _retrieve(self, path: str, destination: str | os.PathLike) -> list[Path]:
        """GET a WADO-RS resource and write its parts as ``<SOPInstanceUID>.dcm`` files.

        The whole download is tried again on a transport error met while
        reading the body (the session only retries before the body starts);
        files already written are simply overwritten with the same content.
        """
        target = Path(destination)
        target.mkdir(parents=True, exist_ok=True)
        # One logical call: the restarts and the session's own retries share one retry budget.
        with retry_scope(self._http.retry) as budget:
            while True:
                try:
                    return self._download(path, target)
                except TransportError:
                    delay = budget.next_wait()
                    if delay is None:
                        raise
                    time.sleep(delay)

    def _download(self, path: str, target: Path) -> list[Path]:
        written: dict[Path, None] = {}
        headers = {"Accept": WADO_ACCEPT, "Accept-Encoding": "identity"}
        with self._http.stream("GET", path, headers=headers) as response:
            content_type = response.headers.get("Content-Type", "")
            media, _ = parse_content_type(content_type)
            url = str(response.request.url)
            if not media.startswith("multipart/"):
                read_body(response, ERROR_BODY_BYTES, "GET", url, truncate=True)  # only an excerpt is shown
                raise ProtocolError(
                    f"expected a multipart WADO answer, got {media or 'no Content-Type'}",
                    status=response.status_code,
                    reason=error_reason(response),
                    method="GET",
                    url=url,
                )
            body = bounded_body(
                response, self._http.limits.max_download_bytes, "GET", url,
                chunks=_body_chunks(response), setting=DOWNLOAD_BYTES_SETTING,
            )
            try:
                for part in split_to_files(body, content_type, target):
                    written[_place(part, target)] = None
            except ProtocolError as exc:
                if exc.url is None:  # raised by the reader, which does not know the request
                    exc.method, exc.url = "GET", url
                raise
        return list(written)


def _body_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The answer's bytes as the transport hands them over, never more than its ``Content-Length``.

    WADO is asked for without content coding (DICOM pixel data hardly
    compresses), so the raw chunks are the body and httpx's decoding and
    re-chunking layer, a tenth of the download's CPU, is skipped. A server
    that encodes anyway is decoded, and a body httpx has already read (test
    transports) is taken from memory.
    """
    identity = response.headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")
    if not identity or response.is_stream_consumed:
        return response.iter_bytes()
    length = response.headers.get("Content-Length", "").strip()
    if not length.isdigit():
        return response.iter_raw()
    return _at_most(response.iter_raw(), int(length))


def _at_most(chunks: Iterator[bytes], announced: int) -> Iterator[bytes]:
    """``chunks``, stopped with a :class:`ProtocolError` before the first byte past ``announced``."""
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > announced:
            raise ProtocolError(f"the WADO answer goes on past its announced Content-Length of {announced} bytes")
        yield chunk


def _place(part: ReceivedPart, target: Path) -> Path:
    """Rename a received part to ``<SOPInstanceUID>.dcm``, the UID read from the part itself.

    A part whose DICOM header names no instance is named from its
    ``Content-Location`` (``.../instances/{uid}``); one that has neither is
    not a DICOM instance, and the download stops.
    """
    source = part.path
    uid = sop_instance_uid_of(bytes(part.head), source)
    if not uid and "/instances/" in part.content_location:
        uid = part.content_location.rsplit("/instances/", 1)[1].split("/")[0].split("?")[0]
    if source is None or not is_uid(uid):
        if source is not None:
            source.unlink(missing_ok=True)
        raise ProtocolError(
            f"a WADO part ({part.content_type or 'no Content-Type'}, {part.size} bytes) is not a DICOM instance"
        )
    final = target / f"{uid}.dcm"
    os.replace(source, final)
    return final
