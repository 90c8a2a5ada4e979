"""STOW-RS: send DICOM files in batches, and decide from each answer what became of every file.

* Bodies stream from the files (flat memory), several instances per request
  (a count and a byte budget, :class:`StowBatching`) and several requests in
  flight.
* The answer is read whatever its status, because real servers store some
  parts of a request they answer 400 to, and every part sent is reconciled
  with the ReferencedSOPSequence and FailedSOPSequence: a part listed in
  neither is not stored (:func:`reconcile`).
* Retrying a request is safe: storing a SOP instance the server already
  holds replaces or keeps the same instance, it never creates a second one.
  The retry rebuilds the body from the files; a spent stream is never re-sent.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from . import json_text
from .dicom_json import DICOM_JSON, first_value
from .errors import AuthenticationError, NotFoundError, PostDicomError, RedirectError, ValidationError
from .http_errors import error_reason
from .multipart import MultipartWriter
from .part10 import DicomHeader, NotDicom, inspect_file
from .writes import note_write

if TYPE_CHECKING:
    from .http import HttpSession
    from .urls import DicomWebPaths

MiB = 1024 * 1024

TAG_REFERENCED_SOP_SEQUENCE = "00081199"
TAG_FAILED_SOP_SEQUENCE = "00081198"
TAG_REFERENCED_SOP_UID = "00081155"
TAG_FAILURE_REASON = "00081197"
TAG_WARNING_REASON = "00081196"

# PS3.18 / PS3.4 FailureReason codes, by exact value then by range.
_FAILURE_CODES = {
    0x0110: "processing failure",
    0x0111: "duplicate SOP instance",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xC122: "transfer syntax not supported",
    0xA770: "out of resources",
    0xA771: "data set does not match SOP class",
}
_FAILURE_RANGES = (
    (0xFF00, 0xA700, "out of resources"),
    (0xFF00, 0xA900, "data set does not match SOP class"),
    (0xF000, 0xC000, "cannot understand"),
)
_WARNING_CODES = {
    0xB000: "coercion of data elements",
    0xB006: "elements discarded",
    0xB007: "data set does not match SOP class",
}

OutcomeStatus = Literal["stored", "rejected", "failed"]
ProgressCallback = Callable[[int, int], None]
"""Called as ``on_progress(files_done, files_total)``."""


def failure_text(code: int) -> str:
    """FailureReason ``code`` as ``"C122H transfer syntax not supported"``."""
    meaning = _FAILURE_CODES.get(code)
    if meaning is None:
        meaning = next((m for mask, base, m in _FAILURE_RANGES if code & mask == base), "failure")
    return f"FailureReason {code:04X}H ({code}): {meaning}"


@dataclass(frozen=True)
class InstanceOutcome:
    """What became of one file sent (or meant to be sent) with STOW-RS.

    ``status`` is ``stored``, ``rejected`` (the server refused it; ``reason``
    says why, ``failure_code`` holds its FailureReason if it gave one) or
    ``failed`` (it could not be sent: transport or server error after the
    retries, or not a readable DICOM file).
    """

    path: Path
    status: OutcomeStatus
    sop_instance_uid: str | None = None
    reason: str = ""
    failure_code: int | None = None


@dataclass
class StowResult:
    """Outcomes of a ``store_instances`` call, one per file, in the order given."""

    outcomes: list[InstanceOutcome] = field(default_factory=list)

    def with_status(self, status: OutcomeStatus) -> list[InstanceOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def stored(self) -> list[InstanceOutcome]:
        return self.with_status("stored")

    @property
    def rejected(self) -> list[InstanceOutcome]:
        return self.with_status("rejected")

    @property
    def failed(self) -> list[InstanceOutcome]:
        return self.with_status("failed")

    @property
    def counts(self) -> dict[str, int]:
        return {s: len(self.with_status(s)) for s in ("stored", "rejected", "failed")}

    def __len__(self) -> int:
        return len(self.outcomes)

    def __iter__(self) -> Iterator[InstanceOutcome]:
        return iter(self.outcomes)


@dataclass(frozen=True)
class StowBatching:
    """How files are grouped into STOW requests, and how many requests are in flight.

    Parameters
    ----------
    batch_size
        Most instances per request.
    max_batch_bytes
        Most bytes of files per request (a larger file travels alone: it cannot be split).
    concurrency
        Requests in flight at once (threads sharing the client's pool).

    Raises
    ------
    ValidationError
        A value below 1 (raised when made, before any request).
    """

    batch_size: int = 20
    max_batch_bytes: int = 32 * MiB
    concurrency: int = 4

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValidationError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.max_batch_bytes < 1:
            raise ValidationError(f"max_batch_bytes must be positive, not {self.max_batch_bytes}")
        if self.concurrency < 1:
            raise ValidationError(f"concurrency must be at least 1, not {self.concurrency}")

    def groups(self, headers: Iterable[DicomHeader]) -> Iterator[list[DicomHeader]]:
        """The files in order, in requests of at most ``batch_size`` files and ``max_batch_bytes``.

        Each group is yielded as soon as it is complete (``headers`` may still be being read).
        """
        current: list[DicomHeader] = []
        current_bytes = 0
        for header in headers:
            if current and (len(current) >= self.batch_size or current_bytes + header.size > self.max_batch_bytes):
                yield current
                current, current_bytes = [], 0
            current.append(header)
            current_bytes += header.size
        if current:
            yield current


def _stow_reads_body(status: int) -> bool:
    """Statuses whose STOW body is read rather than raised: 4xx answers say which parts failed.

    Auth, not-found, wrong-address (405), timeout and throttling answers stay
    errors (the last two are retried by the session).
    """
    return status < 500 and status not in (401, 403, 404, 405, 407, 408, 429)


def _as_code(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    for base in (10, 16):
        try:
            return int(text, base)
        except ValueError:
            continue
    return None


def reconcile(batch: Sequence[DicomHeader], response: httpx.Response) -> list[InstanceOutcome]:
    """Decide the fate of each part of a STOW request from the server's answer.

    The body is read whatever the status (Orthanc answers 400 to a request it
    partly stored). A part is ``stored`` when its SOP Instance UID is in the
    ReferencedSOPSequence, ``rejected`` with its FailureReason when in the
    FailedSOPSequence, and ``rejected`` as "not acknowledged" when in neither:
    a server that does not list an instance has not promised to keep it.
    """
    status = response.status_code
    document: Any = None
    if response.content:
        try:
            document = json_text.loads(response.content)
        except ValueError:
            document = None
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    referenced: dict[str, Mapping[str, Any]] = {}
    failed: dict[str, int | None] = {}
    if isinstance(document, Mapping):
        for item in (document.get(TAG_REFERENCED_SOP_SEQUENCE) or {}).get("Value") or []:
            uid = first_value(item, TAG_REFERENCED_SOP_UID)
            if uid:
                referenced[str(uid)] = item
        for item in (document.get(TAG_FAILED_SOP_SEQUENCE) or {}).get("Value") or []:
            uid = first_value(item, TAG_REFERENCED_SOP_UID)
            if uid:
                failed[str(uid)] = _as_code(first_value(item, TAG_FAILURE_REASON))
    server_reason = error_reason(response) if status >= 400 else None
    outcomes = []
    for header in batch:
        uid = header.sop_instance_uid
        if uid in failed:
            code = failed[uid]
            reason = failure_text(code) if code is not None else "listed as failed (no FailureReason given)"
            if server_reason:
                reason += f"; server says: {server_reason}"
            outcomes.append(InstanceOutcome(header.path, "rejected", uid, reason, code))
        elif uid in referenced:
            warning = _as_code(first_value(referenced[uid], TAG_WARNING_REASON))
            note = f"stored with warning {warning:04X}H: {_WARNING_CODES.get(warning, 'warning')}" if warning else ""
            outcomes.append(InstanceOutcome(header.path, "stored", uid, note))
        else:
            reason = f"not acknowledged by the server (HTTP {status}, in neither ReferencedSOPSequence nor FailedSOPSequence)"
            if document is None:
                reason = f"no readable STOW answer (HTTP {status})"
            if server_reason:
                reason += f"; server says: {server_reason}"
            outcomes.append(InstanceOutcome(header.path, "rejected", uid, reason))
    return outcomes


class _NoSharedLimit:
    """The request slots of a call that shares none: taking one never waits."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


class Stow:
    """The STOW-RS transaction of one account: files in, one :class:`InstanceOutcome` per file out.

    Bodies are posted through ``http`` to the STOW path of ``paths``.
    """

    def __init__(self, http: HttpSession, paths: DicomWebPaths) -> None:
        self._http = http
        self._path = paths.stow()

    def store_files(
        self,
        paths: Iterable[str | os.PathLike],
        batching: StowBatching,
        on_progress: ProgressCallback | None = None,
    ) -> StowResult:
        """Read each file's header, send the DICOM ones, report every path in the order given.

        A file that is not readable DICOM is reported ``failed`` ("not sent: ...")
        without a request. See :meth:`postdicom.client.PostDicomClient.store_instances`.
        """
        headers: list[DicomHeader] = []
        unreadable: dict[Path, InstanceOutcome] = {}
        order: list[Path] = []
        for raw in paths:
            path = Path(raw)
            order.append(path)
            found = inspect_file(path)
            if isinstance(found, NotDicom):
                unreadable[path] = InstanceOutcome(path, "failed", None, f"not sent: {found.reason}")
            else:
                headers.append(found)
        by_path = {o.path: o for o in self.store_headers(headers, batching, on_progress).outcomes}
        by_path.update(unreadable)
        return StowResult([by_path[p] for p in order])

    def store_headers(
        self,
        headers: Iterable[DicomHeader],
        batching: StowBatching,
        on_progress: ProgressCallback | None = None,
        slots: threading.Semaphore | None = None,
        pool: Executor | None = None,
    ) -> StowResult:
        """STOW files whose headers are read; one outcome per file, in order.

        ``headers`` may be a generator still reading files: each batch is sent
        as soon as it is full, so reading the next headers (and an upload's
        QIDO pre-checks) overlaps the requests instead of delaying the first
        one. At most ``2 * concurrency`` batches wait their turn, so memory
        stays small whatever the number of files. ``on_progress`` receives
        ``(files done, files queued so far)``; the second number is final once
        ``headers`` is exhausted.

        ``slots`` bounds the requests in flight of several calls together
        (the batches of one upload run as separate calls): a request is
        handed to the pool only once it holds a slot, and gives it back when
        its answer is read. Without it, ``batching.concurrency`` alone bounds
        this call's requests. ``pool`` runs the requests of such calls on one
        set of threads (:class:`~postdicom.upload.SharedUpload`'s); without
        it, this call starts ``batching.concurrency`` threads of its own.

        Raises
        ------
        AuthenticationError, NotFoundError, RedirectError
            The account or address is wrong: no request can succeed, so the
            upload stops instead of reporting every file as failed.
        """
        order: list[Path] = []
        outcomes: dict[Path, InstanceOutcome] = {}
        pending: set[Future] = set()
        done = 0

        def settle(block: bool) -> None:
            """Take in the finished requests (waiting for one if ``block``); a batch's error is raised here."""
            nonlocal pending, done
            finished, pending = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in finished:
                sent = future.result()
                for outcome in sent:
                    outcomes[outcome.path] = outcome
                done += len(sent)
                if on_progress is not None:
                    on_progress(done, len(order))

        slot = slots if slots is not None else _NoSharedLimit()

        def send(group: list[DicomHeader]) -> list[InstanceOutcome]:
            try:
                return self._store_batch(group)
            finally:
                slot.release()

        with contextlib.ExitStack() as own:
            if pool is None:
                pool = own.enter_context(
                    ThreadPoolExecutor(max_workers=batching.concurrency, thread_name_prefix="stow")
                )
            try:
                for group in batching.groups(headers):
                    order.extend(h.path for h in group)
                    slot.acquire()
                    try:
                        pending.add(pool.submit(send, group))
                    except BaseException:
                        slot.release()
                        raise
                    settle(block=len(pending) >= 2 * batching.concurrency)
                while pending:
                    settle(block=True)
            except BaseException:
                for future in pending:
                    if future.cancel():
                        slot.release()
                wait(pending)  # the requests already sent end before the error goes up, as with a pool of our own
                raise
        return StowResult([outcomes[path] for path in order])

    def _store_batch(self, batch: Sequence[DicomHeader]) -> list[InstanceOutcome]:
        """One STOW request; transport and server errors become ``failed`` outcomes."""
        writer = MultipartWriter([h.path for h in batch])
        note_write()
        try:
            response = self._http.request(
                "POST",
                self._path,
                headers={**writer.headers, "Accept": DICOM_JSON},
                body=writer,
                idempotent=True,
                accept_status=_stow_reads_body,
            )
        except (AuthenticationError, NotFoundError, RedirectError):
            raise
        except PostDicomError as exc:
            return [InstanceOutcome(h.path, "failed", h.sop_instance_uid, str(exc)) for h in batch]
        except OSError as exc:
            return [
                InstanceOutcome(h.path, "failed", h.sop_instance_uid, f"could not read the files: {exc}")
                for h in batch
            ]
        return reconcile(batch, response)
