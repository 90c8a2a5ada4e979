"""How flow parameters show in Prefect's run form: a title, a one-line help text, selects for choices.

Prefect builds the form (the flow's parameter schema) from the signature. It
sets each field's title to the parameter's name and its description from the
docstring, replacing what an ``Annotated[..., Field(title=...)]`` says; the
keys of ``json_schema_extra`` are copied into the field's schema last, so
:func:`form` puts the title and help text there. Validation constraints
(``ge``, ``le``) are kept as usual.
"""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema, WrapValidator, with_config
from pydantic.fields import FieldInfo
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypedDict

TIME_ZONES: tuple[str, ...] = tuple(sorted(zoneinfo.available_timezones()))
"""IANA time zone names known to this Python (its ``tzdata``): the choices of the ``time_zone`` select."""


def form(
    title: str, description: str, *, enum: tuple[str, ...] | None = None, blank: bool = False, **constraints: Any
) -> FieldInfo:
    """``Field`` metadata for ``Annotated``: the form's title, help text and, for ``enum``, a select.

    ``blank`` is for :data:`OptionalText` and :data:`OptionalDate` parameters
    (Python default ``None``): the form's field starts empty. Prefect would
    put ``"default": null`` in the schema, which the run form loads as the
    field's value and then refuses on Submit ("None is not of type 'string'").
    """
    bounds = _bounds_text(constraints.get("ge"), constraints.get("le"))
    extra: dict[str, Any] = {"title": title, "description": f"{description} {bounds}" if bounds else description}
    if enum is not None:
        extra["enum"] = list(enum)
    if blank:
        extra["default"] = ""
    return Field(json_schema_extra=extra, **constraints)


def _bounds_text(low: float | None, high: float | None) -> str:
    """A number field's bounds in words: Prefect's run form neither shows the schema's minimum and maximum
    nor checks them before Submit (the server then refuses the run, naming one field), so the help text says them."""
    if low is not None and high is not None:
        return f"From {low:g} to {high:g}."
    if low is not None:
        return f"At least {low:g}."
    return f"At most {high:g}." if high is not None else ""


ACCOUNT = form("Account", "The PostDICOM account: a saved PostDicomCredentials block.")

TIME_ZONE = form("Time zone", "IANA zone the night is counted in; keep it equal to the schedule's.", enum=TIME_ZONES)
"""A select of every IANA zone; the value stays a ``str`` checked by the flow, whose message is short and
names the parameter (a ``Literal`` of 600 zones would make Prefect print them all)."""

NONE_AS_EMPTY = BeforeValidator(lambda value: [] if value is None else value)
"""A list parameter that also accepts ``None`` (meaning empty), so its form field needs no list/None toggle."""

EMPTY_AS_NONE = BeforeValidator(lambda value: None if value == "" else value)
"""An emptied text box arrives as ``""``: for an optional parameter that means ``None``."""

OptionalText = Annotated[str | SkipJsonSchema[None], EMPTY_AS_NONE]
"""Text that may be left empty (``None``): a plain text box in the run form, without the str/None toggle
("Property is type 'None'") that a ``str | None`` parameter gets. Describe it with ``form(..., blank=True)``.
Through the API, leave it out (or send ``""``) for ``None``."""

DATE_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"
OptionalDate = Annotated[
    dt.date | None, EMPTY_AS_NONE, WithJsonSchema({"type": "string", "pattern": DATE_PATTERN})
]
"""A date that may be left empty (``None``): a text box for ``YYYY-MM-DD`` in the run form, as
:data:`OptionalText` (a date picker cannot start empty: the forms refuse its empty value on Submit)."""

PATH_PASSES_THROUGH = WrapValidator(
    lambda value, handler: value if isinstance(value, (str, os.PathLike)) else handler(value)
)
"""Rows typed for the form, yet a Python caller may still pass a path (the promised ``assignments`` shape)."""


@with_config(ConfigDict(extra="allow"))
class AssignmentRow(TypedDict, total=False):
    """One row of a reassignment: an order and its new user or user group (UUIDs); other keys are kept."""

    patient_order_uuid: Annotated[str, Field(title="Patient order UUID", description="The patient order to reassign.")]
    assigned_user_uuid: Annotated[
        OptionalText, Field(title="User UUID", description="Its new user; empty when a group is given.")
    ]
    assigned_user_group_uuid: Annotated[
        OptionalText, Field(title="User group UUID", description="Its new user group; empty when a user is given.")
    ]
