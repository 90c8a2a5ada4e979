"""Where each DICOMweb transaction goes, in PostDICOM's path dialect and in the standard one.

This is the one place that knows the two dialects apart; STOW, QIDO and WADO
ask it for a path and send whatever it gives.

PostDICOM puts its DICOMweb routes on non-standard paths (``POST {base}/``,
``/studies/series?0020000D=...``, ``/studies/series/{SeriesInstanceUID}``, see
``docs/wire-protocol.md``): a series or an instance is reached by its own UID
alone, and a parent UID travels as a query filter. PS3.18 servers such as
Orthanc nest resources (``/studies/{study}/series/{series}/...``), so a WADO
download of a series or an instance needs its parent UIDs
(:attr:`DicomWebPaths.retrieve_needs_parents`), which the caller looks up
with QIDO when it was not given them.

UIDs reach these methods already checked (:func:`postdicom.uids.check_uid`).
"""

from __future__ import annotations

from typing import Literal

from .dicom_json import TAG_SERIES_UID, TAG_STUDY_UID

Dialect = Literal["postdicom", "standard"]
DIALECTS: tuple[str, ...] = ("postdicom", "standard")

QidoTarget = tuple[str, dict[str, str]]
"""A QIDO path and the filters it needs besides the caller's (the parent UIDs some paths cannot carry)."""


class DicomWebPaths:
    """The paths of the standard dialect (PS3.18); :class:`PostDicomPaths` overrides where PostDICOM differs."""

    dialect: Dialect = "standard"
    retrieve_needs_parents = True
    """Whether a WADO path for a series or an instance must name its parent study (and series)."""

    def stow(self) -> str:
        """Where STOW-RS bodies are posted."""
        return "/studies"

    def search_studies(self) -> QidoTarget:
        return "/studies", {}

    def search_series(self, study_uid: str | None) -> QidoTarget:
        """Series of one study, or of every study when ``study_uid`` is ``None``."""
        return (f"/studies/{study_uid}/series", {}) if study_uid else ("/series", {})

    def search_instances(self, study_uid: str | None, series_uid: str | None) -> QidoTarget:
        """Instances of one series, one study or all; a series without its study becomes a filter."""
        if study_uid and series_uid:
            return f"/studies/{study_uid}/series/{series_uid}/instances", {}
        if study_uid:
            return f"/studies/{study_uid}/instances", {}
        return "/instances", ({TAG_SERIES_UID: series_uid} if series_uid else {})

    def retrieve_study(self, study_uid: str) -> str:
        return f"/studies/{study_uid}"

    def retrieve_series(self, series_uid: str, study_uid: str | None) -> str:
        """A series' WADO path (``study_uid`` needed when :attr:`retrieve_needs_parents`)."""
        return f"/studies/{study_uid}/series/{series_uid}"

    def retrieve_instance(self, sop_uid: str, study_uid: str | None, series_uid: str | None) -> str:
        """An instance's WADO path (the parents needed when :attr:`retrieve_needs_parents`)."""
        return f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


class PostDicomPaths(DicomWebPaths):
    """PostDICOM's paths: flat routes, each resource by its own UID, parents as filters."""

    dialect: Dialect = "postdicom"
    retrieve_needs_parents = False

    def stow(self) -> str:
        return "/"

    def search_series(self, study_uid: str | None) -> QidoTarget:
        return "/studies/series", ({TAG_STUDY_UID: study_uid} if study_uid else {})

    def search_instances(self, study_uid: str | None, series_uid: str | None) -> QidoTarget:
        """A series UID is enough; the study UID is a filter only when no series is given."""
        if series_uid:
            return "/studies/series/instances", {TAG_SERIES_UID: series_uid}
        return "/studies/series/instances", ({TAG_STUDY_UID: study_uid} if study_uid else {})

    def retrieve_series(self, series_uid: str, study_uid: str | None) -> str:
        return f"/studies/series/{series_uid}"

    def retrieve_instance(self, sop_uid: str, study_uid: str | None, series_uid: str | None) -> str:
        return f"/studies/series/instances/{sop_uid}"


_PATHS: dict[str, DicomWebPaths] = {"standard": DicomWebPaths(), "postdicom": PostDicomPaths()}


def paths_for(dialect: str) -> DicomWebPaths:
    """The paths of ``dialect`` (``"postdicom"`` or ``"standard"``)."""
    try:
        return _PATHS[dialect]
    except KeyError:
        raise ValueError(f"dialect must be one of {DIALECTS}, not {dialect!r}") from None
