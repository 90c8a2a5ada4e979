"""Reading DICOM JSON (PS3.18 Annex F): the answers of QIDO searches and of STOW requests.

Attributes are keyed by 8-hex tag, each an object whose ``Value`` is a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DICOM_JSON = "application/dicom+json"

TAG_STUDY_UID = "0020000D"
TAG_SERIES_UID = "0020000E"
TAG_SOP_UID = "00080018"
TAG_PATIENT_ID = "00100020"


def first_value(item: Mapping[str, Any], tag: str) -> Any:
    """The first value of attribute ``tag`` in a DICOM JSON object, or ``None`` when it has none."""
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else None
