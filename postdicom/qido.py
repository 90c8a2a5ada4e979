"""QIDO-RS: searches that follow the server's paging to the end, and stop when a server pages forever.

A search asks ``limit``/``offset`` pages until the server has no more
(Orthanc: ``200 []``; others: ``204``, or fewer results than asked without
``Warning: 299``). A server may also get paging wrong, by mistake or on
purpose; two rules keep the client from asking forever:

* **Repeated pages**: a page that starts with the same match as an earlier
  page means the server ignores ``offset`` (or went back); the search stops
  with a :class:`~postdicom.errors.ProtocolError` instead of collecting the
  same matches again and again.
* **A page cap**: at most ``max_pages`` requests per search
  (``POSTDICOM_QIDO_MAX_PAGES``, default :data:`DEFAULT_MAX_PAGES`: 500,000
  matches at the default page size). A server that still says "more" after
  that gets a :class:`~postdicom.errors.ProtocolError` naming the setting;
  narrow the search or raise the cap.
* **A size cap**: the pages of one search together hold at most
  ``POSTDICOM_QIDO_MAX_BYTES`` of JSON (default :data:`DEFAULT_MAX_BYTES`,
  256 MiB), since every page is kept in memory until the search ends. Each
  page alone is already capped by ``POSTDICOM_MAX_JSON_BYTES``; this bounds
  their sum, which the page cap alone lets reach 1000 such pages. Past it the
  search stops with an :class:`~postdicom.errors.AnswerTooLargeError` naming
  the setting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx

from . import json_text
from .answers import masked_excerpt
from .dicom_json import DICOM_JSON
from .errors import AnswerTooLargeError, ProtocolError, ValidationError
from .query import FilterValue, build_query
from .settings import env_number
from .uids import check_uid

if TYPE_CHECKING:
    from .http import HttpSession
    from .urls import DicomWebPaths, QidoTarget

DEFAULT_PAGE_SIZE = 500
DEFAULT_MAX_PAGES = 1000
"""Page requests one search may make (500,000 matches at the default page size)."""
MAX_PAGES_ENV = "POSTDICOM_QIDO_MAX_PAGES"
"""Environment variable that overrides :data:`DEFAULT_MAX_PAGES`."""
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""JSON bytes the pages of one search may hold together (four times one answer's default cap)."""
MAX_BYTES_ENV = "POSTDICOM_QIDO_MAX_BYTES"
"""Environment variable that overrides :data:`DEFAULT_MAX_BYTES`."""
Level = Literal["study", "series", "instance"]
Match = dict[str, Any]
"""One QIDO match: a DICOM JSON object (PS3.18 Annex F) keyed by 8-hex tags."""


def max_pages_setting() -> int:
    """The page cap of a search: ``POSTDICOM_QIDO_MAX_PAGES``, or :data:`DEFAULT_MAX_PAGES` when unset.

    Read when a search starts, so a deployment can change it without code.
    """
    return int(env_number(MAX_PAGES_ENV, DEFAULT_MAX_PAGES, minimum=1, whole=True))


def max_bytes_setting() -> int:
    """The size cap of a search's pages together: ``POSTDICOM_QIDO_MAX_BYTES``, or :data:`DEFAULT_MAX_BYTES`.

    Read when a search starts, like the page cap.
    """
    return int(env_number(MAX_BYTES_ENV, DEFAULT_MAX_BYTES, minimum=1, whole=True, unit="bytes"))


@dataclass(frozen=True)
class QidoPaging:
    """What to ask of a search besides its filters, and how to page through it.

    Parameters
    ----------
    limit
        Most results wanted in total (``None``: all).
    offset
        Results to skip first.
    fields
        Extra attributes to return (``includefield``), or ``("all",)``.
    page_size
        Results asked for per request.
    fuzzymatching
        Ask for fuzzy person-name matching.
    max_pages
        Most page requests (``None``: ``POSTDICOM_QIDO_MAX_PAGES`` or
        :data:`DEFAULT_MAX_PAGES`, read when the search starts).

    Raises
    ------
    ValidationError
        A value out of range or an unknown field name (when made, before any request).
    """

    limit: int | None = None
    offset: int = 0
    fields: tuple[str, ...] = ()
    page_size: int = DEFAULT_PAGE_SIZE
    fuzzymatching: bool = False
    max_pages: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        if self.page_size < 1:
            raise ValidationError(f"page_size must be at least 1, not {self.page_size}")
        if self.max_pages is not None and self.max_pages < 1:
            raise ValidationError(f"max_pages must be at least 1, not {self.max_pages}")
        build_query(fields=self.fields, limit=self.limit, offset=self.offset)  # validate before any request

    def query(self, filters: Mapping[str, FilterValue], wanted: int, position: int) -> str:
        """The query string of the page of ``wanted`` results from ``position`` on."""
        return build_query(filters, fields=self.fields, limit=wanted, offset=position, fuzzymatching=self.fuzzymatching)


class Qido:
    """The QIDO-RS searches of one account: sent through ``http``, on the search paths of ``paths``."""

    def __init__(self, http: HttpSession, paths: DicomWebPaths) -> None:
        self._http = http
        self.paths = paths

    def search_for_studies(self, filters: Mapping[str, FilterValue], paging: QidoPaging) -> list[Match]:
        """Studies matching ``filters`` (keyed by 8-hex tag)."""
        return self.search(self.paths.search_studies(), filters, paging)

    def search_for_series(
        self, study_uid: str | None, filters: Mapping[str, FilterValue], paging: QidoPaging
    ) -> list[Match]:
        """Series of one study (or of all) matching ``filters``."""
        if study_uid:
            check_uid(study_uid, "study_instance_uid")
        return self.search(self.paths.search_series(study_uid), filters, paging)

    def search_for_instances(
        self,
        study_uid: str | None,
        series_uid: str | None,
        filters: Mapping[str, FilterValue],
        paging: QidoPaging,
    ) -> list[Match]:
        """Instances of one series, one study or all matching ``filters``."""
        if study_uid:
            check_uid(study_uid, "study_instance_uid")
        if series_uid:
            check_uid(series_uid, "series_instance_uid")
        return self.search(self.paths.search_instances(study_uid, series_uid), filters, paging)

    def search(self, target: QidoTarget, filters: Mapping[str, FilterValue], paging: QidoPaging) -> list[Match]:
        """Run one search page by page until the server has nothing more (or ``paging.limit`` is met).

        Raises
        ------
        ProtocolError
            The answer is not a JSON array, a page starts like an earlier
            one, or the server still says "more" after the page cap.
        AnswerTooLargeError
            The pages together hold more than ``POSTDICOM_QIDO_MAX_BYTES``.
        """
        path, needed = target
        filters = {**filters, **needed}
        cap = paging.max_pages if paging.max_pages is not None else max_pages_setting()
        max_bytes = max_bytes_setting()
        received = 0
        limit = paging.limit
        results: list[Match] = []
        position = paging.offset
        first_matches: set[str] = set()
        pages = 0
        while limit is None or len(results) < limit:
            if pages >= cap:
                raise ProtocolError(
                    f"QIDO search stopped after {cap} pages ({len(results)} matches) and the server still says "
                    f"there are more: narrow the search, or raise max_pages or {MAX_PAGES_ENV}",
                    method="GET",
                    url=self._http.url(path),
                )
            wanted = paging.page_size if limit is None else min(paging.page_size, limit - len(results))
            query = paging.query(filters, wanted, position)
            response = self._http.request("GET", path, query=query, headers={"Accept": DICOM_JSON})
            pages += 1
            received += len(response.content)
            if received > max_bytes:
                raise AnswerTooLargeError(
                    f"QIDO search stopped after {pages} pages ({len(results)} matches): its answers hold more than "
                    f"the {max_bytes} bytes one search may collect; narrow the search, or raise {MAX_BYTES_ENV}",
                    method="GET",
                    url=self._http.url(path),
                )
            page = _matches(response)
            if not page:
                break
            if len(page) > wanted:  # the server ignored limit: this is everything from position on
                results.extend(page)
                break
            first = json.dumps(page[0], sort_keys=True)
            if first in first_matches:
                raise ProtocolError(
                    f"the server ignores QIDO offset: page {pages} starts with the same match as an earlier page",
                    method="GET",
                    url=str(response.request.url),
                )
            first_matches.add(first)
            results.extend(page)
            position += len(page)
            more_flagged = "299" in response.headers.get("Warning", "")
            if len(page) < wanted and not more_flagged:
                break
        return results if limit is None else results[:limit]


def _matches(response: httpx.Response) -> list[Match]:
    """A QIDO answer's matches: ``204`` and empty bodies mean none."""
    if response.status_code == 204 or not response.content.strip():
        return []

    def unreadable(what: str) -> ProtocolError:
        # The first bytes with every value masked (matches hold names and identifiers): enough to see the shape.
        return ProtocolError(
            f"{what}; it begins: {masked_excerpt(response.content)}",
            status=response.status_code, method="GET", url=str(response.request.url),
        )

    try:
        document = json_text.loads(response.content)
    except ValueError as exc:
        raise unreadable(f"QIDO answer is not JSON ({exc})") from None
    if not isinstance(document, list):
        raise unreadable("QIDO answer is not a JSON array")
    if not all(isinstance(match, dict) for match in document):
        raise unreadable("QIDO answer is a JSON array of something else than DICOM JSON objects")
    return document
