"""``check_account``: a read-only tour of a real account, the first thing a user runs.

The vendor documents parameters but not answers, so the client's reading of
them is a guess (``docs/api-answers.md``) made tolerant (``postdicom.answers``).
This flow calls every kind of endpoint once on a real account, with the public
tasks, and reports for each call whether it worked, how long it took, whether
the answer was understood, which keys were not documented and which fallbacks
its shape needed. Its JSON report carries no patient data (counts, key names,
JSON types, timings; identifiers in error texts masked), so a user can send it
to the team to fix a mismatch.

Read-only unless ``write_test`` is set: then it creates a folder and a
synthetic patient order (``CHECK^POSTDICOM-FLOWS``), files, assigns and shares
the order, deletes it, and reports what the API cannot delete (the folder; the
share links, which expire the next day and show nothing once the order is gone).
With ``dialect="standard"`` (Orthanc, dcm4chee ...) only the DICOMweb calls run.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from blocks import PostDicomCredentials
from postdicom.errors import AuthenticationError, NotFoundError
from postdicom.models import Answer, PatientOrderListAnswer, PatientOrderSummary
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
    qido_search,
    retrieve_images_using_wado_rs,
    search_folder,
    share_folder_with_url,
    share_patient_order_with_url,
)

from .forms import ACCOUNT, OptionalText, form
from .orders import fresh

Result = Literal["ok", "failed", "skipped"]

TAG_STUDY_UID, TAG_SERIES_UID, TAG_SOP_UID = "0020000D", "0020000E", "00080018"


class CheckStep(BaseModel):
    """One call of the tour: what was asked and how the answer was read (never a value from it)."""

    name: str = Field(description="What the step checks.")
    call: str = Field(description="The documented function called.")
    result: Result
    seconds: float | None = None
    status: int | None = Field(default=None, description="HTTP status, when known.")
    understood: bool | None = Field(default=None, description="Whether a documented key (or list) was found.")
    shape: str | None = Field(default=None, description="The answer's overall shape.")
    fallbacks: list[str] = Field(default_factory=list, description="Departures from the documented shape.")
    unknown_keys: list[str] = Field(default_factory=list, description="Keys outside the documented shape.")
    outline: Any = Field(default=None, description="The answer as received: keys and JSON types only.")
    detail: str = Field(default="", description="Counts and checks, never a value.")
    error: str | None = Field(default=None, description="The error, identifiers masked.")
    warnings: list[str] = Field(default_factory=list)


class CheckReport(BaseModel):
    """What ``check_account`` found; ``model_dump_json()`` is the file to send to the team."""

    server: str = Field(description="Scheme and host of the WebAddress (no path, no user).")
    dialect: str
    started: str
    write_test: bool
    steps: list[CheckStep] = Field(default_factory=list)
    left_behind: list[str] = Field(default_factory=list, description="What the write test could not delete.")

    @property
    def failed(self) -> list[CheckStep]:
        return [s for s in self.steps if s.result == "failed"]

    @property
    def ok(self) -> bool:
        """Whether no call failed and every answer was understood."""
        return not self.failed and all(s.understood is not False for s in self.steps)

    def summary(self) -> str:
        counts = {r: sum(s.result == r for s in self.steps) for r in ("ok", "failed", "skipped")}
        shaped = [s for s in self.steps if s.fallbacks or s.unknown_keys]
        not_understood = [s for s in self.steps if s.understood is False]
        line = f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped"
        line += f"; {len(shaped)} answer(s) in an undocumented shape"
        if not_understood:
            line += f"; NOT understood: {', '.join(s.call for s in not_understood)}"
        return line

    def table(self, width: int = 120) -> str:
        """The report as a plain-text table (what ``postdicom-flows check`` prints)."""
        head = ("step", "call", "result", "time", "answer")
        rows = [head] + [
            (
                s.name,
                s.call,
                s.result + (f" {s.status}" if s.status else ""),
                f"{s.seconds:.2f}s" if s.seconds is not None else "",
                _answer_cell(s),
            )
            for s in self.steps
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            f"PostDICOM account check of {self.server} (dialect {self.dialect}), {self.started}"
            + (" -- with write test" if self.write_test else " -- read-only"),
            "",
        ]
        for index, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
                continue
            step = self.steps[index - 1]
            indent = " " * (widths[0] + 2)
            notes = [step.detail] if step.detail else []
            notes += [f"error: {step.error}"] if step.error else []
            notes += [f"fallback: {f}" for f in step.fallbacks]
            notes += [f"unknown key: {k}" for k in step.unknown_keys]
            notes += [f"warning: {w}" for w in step.warnings]
            for note in notes:  # wrapped, not cut: an error's end (the answer's first bytes) is what helps most
                wrapped = textwrap.wrap(note, width=max(40, width - len(indent)), subsequent_indent="  ")
                lines += [indent + part for part in wrapped]
        lines += ["", "Summary: " + self.summary()]
        lines += [f"Left behind: {item}" for item in self.left_behind]
        return "\n".join(lines)


def _answer_cell(step: CheckStep) -> str:
    if step.result != "ok":
        return ""
    if step.understood is None:
        return ""  # no answer body to read (the expected 404 of a deleted order)
    if step.understood is False:
        return "NOT understood"
    if step.fallbacks or step.unknown_keys:
        return f"understood ({len(step.fallbacks)} fallback(s), {len(step.unknown_keys)} unknown key(s))"
    return "understood, as documented"


_MASKS = (
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "<e-mail>"),
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<uuid>"),
    (re.compile(r"\b\d+(\.\d+){4,}\b"), "<uid>"),  # five parts or more: an IPv4 address stays
    (re.compile(r"(/share/)[^\s/?#|]+"), r"\1<token>"),
    (re.compile(r"\d{4,}"), "<digits>"),
)


def redact(text: str) -> str:
    """``text`` with e-mails, UUIDs, DICOM UIDs, share tokens and long digit runs masked."""
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def outline(value: Any, depth: int = 0) -> Any:
    """The shape of a JSON value: keys kept, scalars replaced by their JSON type, lists by their first item.

    Keys go through :func:`redact`: a .NET dictionary arrives as an object
    keyed by its identifiers (order UUIDs, patient IDs).
    """
    if depth > 6:
        return "…"
    if isinstance(value, Mapping):
        return {redact(str(k)): outline(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [outline(value[0], depth + 1), f"({len(value)} item(s))"] if value else []
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def _server(web_address: str) -> str:
    parts = urlsplit(web_address)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class _Tour:
    """Runs the steps and records them; a failed step never stops the tour (except authentication)."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        self.stopped: str | None = None

    def skip(self, name: str, call: str, why: str) -> None:
        self.report.steps.append(CheckStep(name=name, call=call, result="skipped", detail=why))

    def run(
        self,
        name: str,
        call: str,
        task: Any,
        *args: Any,
        describe: Callable[[Any], str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``task`` and record the step; returns its result, or ``None`` when it failed or was skipped."""
        if self.stopped:
            self.skip(name, call, self.stopped)
            return None
        started = time.perf_counter()
        state = task(*args, return_state=True, **kwargs)
        seconds = round(time.perf_counter() - started, 3)
        value = state.result(raise_on_failure=False)
        if not state.is_completed() or isinstance(value, BaseException):
            error = value if isinstance(value, BaseException) else RuntimeError(state.message or "failed")
            self.report.steps.append(CheckStep(
                name=name, call=call, result="failed", seconds=seconds, status=getattr(error, "status", None),
                error=redact(f"{type(error).__name__}: {error}"),
            ))
            if isinstance(error, AuthenticationError):
                self.stopped = "not run: authentication was refused"
            return None
        step = CheckStep(name=name, call=call, result="ok", seconds=seconds)
        if isinstance(value, Answer):
            reading = value.reading
            # fallbacks, shapes and unknown keys name the answer's keys, which may be identifiers: redacted
            step.status, step.understood, step.shape = reading.status, reading.understood, redact(reading.shape)
            step.fallbacks = [redact(text) for text in reading.fallbacks]
            step.unknown_keys = [redact(key) for key in reading.unknown_keys]
            step.warnings = [redact(text) for text in reading.warnings]
            step.outline = outline(value.received)
        elif isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
            step.understood = all(all(re.fullmatch(r"[0-9A-F]{8}", k) for k in v) for v in value)
            step.outline = outline(value[:1])
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            step.understood = True  # WADO: the instances arrived as files (their names are checked by describe)
        if describe is not None:
            step.detail = describe(value)
        self.report.steps.append(step)
        return value


TAG_SERIES_COUNT, TAG_INSTANCE_COUNT = "00201206", "00201209"


def _richest(matches: list[Any] | None, count_tag: str) -> Mapping[str, Any] | None:
    """The match with the most children (``count_tag``, when the server sends it): the best chance to page below."""
    if not matches:
        return None

    def children(match: Mapping[str, Any]) -> int:
        value = _uid(match, count_tag)
        return int(value) if value and value.strip().isdigit() else 0

    return max(matches, key=children)  # the first of equals: servers without the count keep page 1's first


def _uid(match: Mapping[str, Any], tag: str) -> str | None:
    values = (match.get(tag) or {}).get("Value") or []
    return str(values[0]) if values else None


_UNITS = {"studies": "study(ies)", "series": "series", "instances": "instance(s)"}


def _second_page(tour: _Tour, credentials: PostDicomCredentials, what: str, tag: str, first_page: Any,
                 page_size: int, none: str, **query: Any) -> None:
    """Page 2 (offset 1) of a QIDO query whose page 1 is ``first_page``: it must start with page 1's second match."""
    name, call = f"QIDO {what}, page 2", f"QidoSearch ({what}, offset 1, limit {page_size})"
    if not first_page or len(first_page) < 2:
        tour.skip(name, call, none)
        return
    second = tour.run(name, call, fresh(qido_search), credentials, limit=page_size, offset=1,
                      describe=lambda v: f"{len(v)} {_UNITS[what]}", **query)
    if second is not None:
        consistent = bool(second) and _uid(second[0], tag) == _uid(first_page[1], tag)
        tour.report.steps[-1].detail += "; paging consistent" if consistent else "; PAGING INCONSISTENT"
        if not consistent:
            tour.report.steps[-1].understood = False


def _dicomweb_tour(tour: _Tour, credentials: PostDicomCredentials, page_size: int) -> None:
    qido = fresh(qido_search)
    first = tour.run("authenticate", "QidoSearch (studies, limit 1)", qido, credentials, level="study", limit=1,
                     describe=lambda v: f"{len(v)} study(ies)")
    if first is None:
        return
    page = tour.run("QIDO studies, page 1", f"QidoSearch (studies, limit {page_size})", qido, credentials,
                    level="study", limit=page_size, describe=lambda v: f"{len(v)} study(ies)")
    _second_page(tour, credentials, "studies", TAG_STUDY_UID, page, page_size, "fewer than 2 studies on the account",
                 level="study")
    richest_study = _richest(page, TAG_SERIES_COUNT)
    study = _uid(richest_study, TAG_STUDY_UID) if richest_study else None
    if study is None:
        for name, call in (("QIDO series", "QidoSearch (series of one study)"),
                           ("QIDO instances", "QidoSearch (instances of one series)"),
                           ("WADO one instance", "RetrieveImagesUsingWadoRs")):
            tour.skip(name, call, "no study on the account")
        return
    series_list = tour.run("QIDO series", "QidoSearch (series of one study)", qido, credentials,
                           study_instance_uid=study, limit=page_size, describe=lambda v: f"{len(v)} series")
    _second_page(tour, credentials, "series", TAG_SERIES_UID, series_list, page_size,
                 "fewer than 2 series in the study", study_instance_uid=study)
    richest_series = _richest(series_list, TAG_INSTANCE_COUNT)
    series = _uid(richest_series, TAG_SERIES_UID) if richest_series else None
    if series is None:
        tour.skip("QIDO instances", "QidoSearch (instances of one series)", "no series found")
        tour.skip("WADO one instance", "RetrieveImagesUsingWadoRs", "no series found")
        return
    instances = tour.run("QIDO instances", "QidoSearch (instances of one series)", qido, credentials,
                         study_instance_uid=study, series_instance_uid=series, limit=page_size,
                         describe=lambda v: f"{len(v)} instance(s)")
    _second_page(tour, credentials, "instances", TAG_SOP_UID, instances, page_size,
                 "fewer than 2 instances in the series", study_instance_uid=study, series_instance_uid=series)
    sop = _uid(instances[0], TAG_SOP_UID) if instances else None
    if sop is None:
        tour.skip("WADO one instance", "RetrieveImagesUsingWadoRs", "no instance found")
        return
    with tempfile.TemporaryDirectory(prefix="postdicom-check-") as folder:

        def files(paths: list[Any]) -> str:
            size = sum(p.stat().st_size for p in paths)
            named = all(p.name == f"{sop}.dcm" for p in paths)
            return f"{len(paths)} file(s), {size} bytes" + ("" if named else "; FILE NAME NOT THE SOP UID")

        tour.run("WADO one instance", "RetrieveImagesUsingWadoRs (one instance, to a temp dir)",
                 retrieve_images_using_wado_rs, credentials, study_instance_uid=study, series_instance_uid=series,
                 sop_instance_uid=sop, destination=folder, describe=files)


def _custom_tour(
    tour: _Tour, credentials: PostDicomCredentials, days: int
) -> dict[str, str | None]:
    """The read-only custom calls; returns what the write test can reuse (an institution, a user, a group)."""
    known: dict[str, str | None] = {"institution": None, "user": None, "group": None}
    since = dt.date.today() - dt.timedelta(days=days)
    listing = tour.run(f"orders of the last {days} days", "GetPatientOrderList (all institutions, study date from)",
                       fresh(get_patient_order_list), credentials, [], study_date_from=since,
                       describe=lambda v: f"{len(v.patient_order_list)} order(s)")
    orders = list(listing.patient_order_list) if listing is not None else []
    for order in orders:
        known["institution"] = known["institution"] or order.institution_uuid
        known["user"] = known["user"] or order.assigned_user_uuid
        known["group"] = known["group"] or order.assigned_user_group_uuid
    order = next((o for o in orders if o.number_of_instances), orders[0] if orders else None)
    if order is None or not order.patient_order_uuid or not order.institution_uuid:
        why = "no order in the window" if listing is not None else "the order list failed"
        tour.skip("one order's properties", "GetPatientOrderProperties", why)
        tour.skip("one order's tags", "GetDicomTagContent", why)
    else:
        tour.run("one order's properties", "GetPatientOrderProperties", fresh(get_patient_order_properties),
                 credentials, order.institution_uuid, order.patient_order_uuid,
                 describe=lambda v: f"{len(v.series_list)} series, {v.number_of_instances} instance(s)")
        tour.run("one order's tags", "GetDicomTagContent (default tags)", fresh(get_dicom_tag_content),
                 credentials, order.institution_uuid, order.patient_order_uuid,
                 describe=lambda v: f"{len(v.dicom_tag_content_list)} row(s)")
    tour.run("folders", "SearchFolder (all folders)", fresh(search_folder), credentials,
             describe=lambda v: f"{len(v.folder_list)} folder(s)")
    return known


def _write_tour(tour: _Tour, credentials: PostDicomCredentials, known: Mapping[str, str | None],
                run_id: str) -> None:
    """Create, file, assign, share and delete one synthetic order; note what cannot be deleted."""
    _remove_leftovers(tour, credentials)
    institution = known["institution"]
    if not institution:
        tour.skip("write test", "CreateFolder ... DeletePatientOrder",
                  "no institution known: give institution_uuid (--institution)")
        return
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    folder_name = f"postdicom-flows check {run_id}"
    folder = tour.run("create a folder", "CreateFolder", create_folder, credentials, folder_name,
                      folder_description="Made by postdicom-flows check --write-test; safe to delete")
    order = tour.run("create an order", "CreatePatientOrder", create_patient_order, credentials, institution,
                     TEST_PATIENT_NAME, f"{TEST_PATIENT_ID_PREFIX}{run_id}", TEST_BIRTH_DATE, "OT",
                     accession_number=f"PDFCHK{run_id}",
                     study_description="postdicom-flows check: test order, deleted at the end")
    if folder is not None and folder.folder_uuid:
        tour.report.left_behind.append(
            f"the folder '{folder_name}' (the API has no DeleteFolder: delete it in the PostDICOM web app)")
    uid = order.patient_order_uuid if order is not None else None
    if not uid:
        tour.skip("rest of the write test", "AddOrderToFolder ... DeletePatientOrder", "the order was not created")
        return
    if folder is not None and folder.folder_uuid:
        tour.run("file the order", "AddOrderToFolder", add_order_to_folder, credentials, uid, [folder.folder_uuid],
                 describe=lambda v: _written(v, f"{len(v.added_folder_uuid_list)} folder(s) added"))
    tour.run("read the new order", "GetPatientOrderProperties", fresh(get_patient_order_properties), credentials,
             institution, uid, describe=lambda v: f"status {v.order_status}, in {len(v.folder_uuid_list)} folder(s)")
    for name, call, task, target, missing in (
        ("assign to a user", "AssignOrderToUser", assign_order_to_user, known["user"], "--user"),
        ("assign to a group", "AssignOrderToUserGroup", assign_order_to_user_group, known["group"], "--group"),
    ):
        if target:
            tour.run(name, call, task, credentials, uid, target,
                     describe=lambda v: _written(v, f"changed: {v.changed}"))
        else:
            tour.skip(name, call, f"no UUID known from the account's orders: give {missing}")
    shares = 0
    share_tasks: tuple[tuple[str, str, Any], ...] = (
        ("share link", "CreateShareLink", create_share_link),
        ("share by URL", "SharePatientOrderWithUrl", share_patient_order_with_url),
    )
    for name, call, share_task in share_tasks:
        shares += tour.run(name, call, share_task, credentials, [uid], tomorrow, describe=_share_detail) is not None
    if folder is not None and folder.folder_uuid:
        shares += tour.run("share the folder", "ShareFolderWithUrl", share_folder_with_url, credentials,
                           folder.folder_uuid, expire_date=tomorrow, describe=_share_detail) is not None
    deleted = tour.run("delete the order", "DeletePatientOrder", delete_patient_order, credentials, institution, uid,
                       describe=lambda v: _written(v, f"deleted: {v.deleted}"))
    if deleted is not None:
        _confirm_gone(tour, credentials, institution, uid)
    else:
        tour.report.left_behind.append(f"the order of accession number PDFCHK{run_id} (its delete did not"
                                       " go through: delete it in the PostDICOM web app)")
    if shares:
        tour.report.left_behind.append(
            f"{shares} share link(s) expiring {tomorrow.isoformat()} (they show nothing: the order is deleted)")


TEST_PATIENT_NAME = "CHECK^POSTDICOM-FLOWS"
TEST_PATIENT_ID_PREFIX = "PDF-CHECK-"
TEST_BIRTH_DATE = dt.date(1900, 1, 1)
"""What marks the write test's synthetic order: all three together, which no real order has."""


def _remove_leftovers(tour: _Tour, credentials: PostDicomCredentials) -> None:
    """Delete the synthetic orders of earlier write tests that were interrupted before their own delete.

    Found by all three marks (:data:`TEST_PATIENT_NAME`, :data:`TEST_BIRTH_DATE`,
    a patient ID starting with :data:`TEST_PATIENT_ID_PREFIX`), so an order of
    a real patient is never touched. The step shows only how many.
    """
    found: list[PatientOrderSummary] = []

    def count(listing: PatientOrderListAnswer) -> str:
        found.extend(_leftovers(listing.patient_order_list))
        return f"{len(found)} from an interrupted write test"

    tour.run("leftover test orders", "GetPatientOrderList (the write test's synthetic patient)",
             fresh(get_patient_order_list), credentials, [], patient_name=TEST_PATIENT_NAME,
             patient_birthdate_from=TEST_BIRTH_DATE, patient_birthdate_to=TEST_BIRTH_DATE, describe=count)
    for order in found:
        tour.run("delete a leftover test order", "DeletePatientOrder", delete_patient_order, credentials,
                 order.institution_uuid, order.patient_order_uuid,
                 describe=lambda v: _written(v, f"deleted: {v.deleted}"))


def _leftovers(orders: Sequence[PatientOrderSummary]) -> list[PatientOrderSummary]:
    return [
        o for o in orders
        if o.patient_name == TEST_PATIENT_NAME and o.patient_birthdate == TEST_BIRTH_DATE
        and str(o.patient_id or "").startswith(TEST_PATIENT_ID_PREFIX) and o.patient_order_uuid and o.institution_uuid
    ]


def _written(answer: Answer, detail: str) -> str:
    """``detail``, unless the write answered an empty body: then what it did is not known from its answer."""
    return "empty answer: done as asked, nothing more known" if answer.reading.empty else detail


def _confirm_gone(tour: _Tour, credentials: PostDicomCredentials, institution: str, order_uuid: str) -> None:
    """Read the deleted order back (GetPatientOrderProperties): only a 404 shows the write test left no order.

    The client is called directly, not the task: the expected 404 is not a failed task run.
    """
    started = time.perf_counter()
    step = CheckStep(name="the order is gone", call="GetPatientOrderProperties (expects 404)", result="ok")
    try:
        with credentials.get_client() as client:
            client.get_patient_order_properties(institution, order_uuid)
    except NotFoundError as exc:
        step.status, step.detail = exc.status, "not found: the delete worked"
    except Exception as exc:  # noqa: BLE001 - reported as the step's outcome, the tour goes on
        step.result, step.status = "failed", getattr(exc, "status", None)
        step.error = redact(f"{type(exc).__name__}: {exc}")
    else:
        step.result, step.understood = "failed", False
        step.detail = "STILL THERE after DeletePatientOrder answered a success"
        tour.report.left_behind.append("the synthetic order (DeletePatientOrder did not remove it)")
    step.seconds = round(time.perf_counter() - started, 3)
    tour.report.steps.append(step)


def _share_detail(share: Any) -> str:
    has_url = bool(getattr(share, "share_url", None))
    return "link received" if has_url else "NO LINK IN THE ANSWER"


def _run_name() -> str:
    from prefect.runtime import flow_run

    credentials = flow_run.parameters.get("credentials")
    web_address = getattr(credentials, "web_address", None) or (credentials or {}).get("web_address", "")
    return f"check {_server(str(web_address))}"


MAX_DAYS = 366
"""Most past days ``check_account`` lists orders of: the answer is one unpaged list, so the window bounds its size."""
MAX_PAGE_SIZE = 1000
"""Largest QIDO page ``check_account`` asks for (it reads two of them)."""


@flow(name="check-account", flow_run_name=_run_name, log_prints=False)
def check_account(
    credentials: Annotated[PostDicomCredentials, ACCOUNT],
    write_test: Annotated[
        bool, form("Write test", "Also create, assign, share and delete a synthetic order; off: the tour only reads.")
    ] = False,
    days: Annotated[
        int, form("Days of orders", "GetPatientOrderList looks at orders of this many past days.", ge=1, le=MAX_DAYS)
    ] = 30,
    page_size: Annotated[
        int, form("QIDO page size", "Two pages of this size are compared to check paging.", ge=1, le=MAX_PAGE_SIZE)
    ] = 5,
    institution_uuid: Annotated[
        OptionalText, form("Institution UUID", "For the write test, when recent orders name none.", blank=True)
    ] = None,
    assigned_user_uuid: Annotated[
        OptionalText, form("User UUID", "For the write test's assignment, when recent orders name none.", blank=True)
    ] = None,
    assigned_user_group_uuid: Annotated[
        OptionalText, form("User group UUID", "For the write test's assignment, when recent orders name none.", blank=True)
    ] = None,
) -> CheckReport:
    """Tour an account once and report how each kind of call answered.

    Parameters
    ----------
    credentials:
        The account (a saved ``PostDicomCredentials`` block).
    write_test:
        Also create, assign, share and delete a synthetic order (and a folder,
        which the API cannot delete). Off by default: the tour only reads.
    days:
        GetPatientOrderList looks at orders of this many past days (1 to :data:`MAX_DAYS`).
    page_size:
        QIDO page size, 1 to :data:`MAX_PAGE_SIZE` (two pages are compared to check paging).
    institution_uuid, assigned_user_uuid, assigned_user_group_uuid:
        For the write test, when the account's recent orders do not name them.

    Returns
    -------
    CheckReport
        One step per call; ``report.table()`` prints it, ``report.model_dump_json()``
        is the file to send (no patient data). Also published as the
        ``postdicom-check`` markdown artifact.
    """
    started = dt.datetime.now(dt.timezone.utc)
    report = CheckReport(server=_server(credentials.web_address), dialect=credentials.dialect,
                         started=started.strftime("%Y-%m-%d %H:%M UTC"), write_test=write_test)
    tour = _Tour(report)
    _dicomweb_tour(tour, credentials, page_size)
    if credentials.dialect == "standard":
        tour.skip("custom endpoints", "the 13 PostDICOM functions", "not on a standard DICOMweb server")
    else:
        known = _custom_tour(tour, credentials, days)
        known = {
            "institution": institution_uuid or known["institution"],
            "user": assigned_user_uuid or known["user"],
            "group": assigned_user_group_uuid or known["group"],
        }
        if write_test and not tour.stopped:
            _write_tour(tour, credentials, known, started.strftime("%Y%m%d%H%M%S"))
    get_run_logger().info("Account check: %s", report.summary())
    create_markdown_artifact(key="postdicom-check", markdown=f"```\n{report.table()}\n```",
                             description="postdicom-flows check: how this account answers (no patient data)")
    return report
