"""Limits a deployment can change without code, read from environment variables.

Each limit has a default that suits a real account; an environment variable
overrides it. Values are read when a client (or a task's options) is built,
so a worker started with other values uses them. A value that is not a
number, or is out of range, is refused with an error naming the variable:
a typo must not silently become "no limit".

The variables and their defaults are listed in ``docs/architecture.md``
(section "Limits and the retry budget").
"""

from __future__ import annotations

import os

from .errors import ValidationError


def env_number(
    name: str,
    default: float,
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
    whole: bool = False,
    unit: str = "",
) -> float:
    """The number in environment variable ``name``, or ``default`` when it is unset or empty.

    Parameters
    ----------
    name:
        The variable, e.g. ``POSTDICOM_RETRY_ATTEMPTS``.
    default:
        Used when the variable is absent or blank.
    minimum:
        Smallest accepted value.
    maximum:
        Largest accepted value (``None``: no upper bound).
    whole:
        Accept whole numbers only (counts); the result is then an ``int``.
    unit:
        What the number counts (``"seconds"``, ``"bytes"``), for the error messages.

    Raises
    ------
    ValidationError
        The value is not a number (or not whole), or is outside ``minimum``..``maximum``.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value: float = int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise ValidationError(f"{name} must be {kind}{' of ' + unit if unit else ''}, not {text!r}") from None
    units = " " + unit if unit else ""
    if maximum is not None and not minimum <= value <= maximum:  # NaN fails both comparisons
        raise ValidationError(f"{name} must be between {minimum:g} and {maximum:g}{units}, not {text!r}")
    if value != value or value < minimum:  # NaN compares unequal to itself
        raise ValidationError(f"{name} must be at least {minimum:g}{units}, not {text!r}")
    return value
