"""DICOM UIDs: the one check made before a UID goes into a URL, a query or a file name."""

from __future__ import annotations

import re

from .errors import ValidationError

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_uid(value: object) -> bool:
    """Whether ``value`` is a well-formed DICOM UID (digits and dots, at most 64 characters)."""
    return isinstance(value, str) and bool(_UID.match(value)) and len(value) <= 64


def check_uid(value: str, name: str) -> str:
    """Refuse anything that is not a DICOM UID before it goes into a URL path or a file name."""
    if not is_uid(value):
        raise ValidationError(f"{name} is not a DICOM UID: {value!r}")
    return value
