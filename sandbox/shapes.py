"""Answer shapes of the custom endpoints: the documented ones, or plausible alternatives a .NET service may send.

The vendor documents parameters, not answers, so docs/api-answers.md is a
guess and the client must read other plausible shapes too. With
``--answer-shapes alternative`` (``SANDBOX_ANSWER_SHAPES``, or
``POST /_sandbox/answers``) the sandbox answers those alternatives, one fixed
combination per endpoint, so the tasks, the flows and the demo can be run
against them. The same content travels; only its shape changes:

- every key camelCase (``patientOrderUuid``), envelopes included;
- booleans and numbers as strings (``"True"``, ``"12"``);
- an empty list as ``null``;
- dates ``YYYYMMDD`` (``20261127``), except in GetPatientOrderList rows where
  dates are ISO date-times (``2026-11-27T00:00:00``); date-times
  (``YYYY-MM-DD HH:MM``) always as ISO (``2026-11-27T14:05:00``);
- per endpoint (:data:`ENVELOPES`): SearchFolder a bare array,
  GetPatientOrderList its rows under ``data`` (with ``totalCount`` and
  ``success``), CreateFolder its folder under ``result``,
  GetDicomTagContent under ``result`` with the rows under ``items``; the
  writes whose answer a caller does not need (AddOrderToFolder, the two
  assignments, DeletePatientOrder) an empty body;
- every success answer carries an ``X-Error-Reason`` header (``Success``, or
  empty with an empty body), as the vendor's sample prints it on every answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

DOCUMENTED, ALTERNATIVE = "documented", "alternative"
SHAPES = (DOCUMENTED, ALTERNATIVE)
EMPTY_BODY = frozenset({"AddOrderToFolder", "AssignOrderToUser", "AssignOrderToUserGroup", "DeletePatientOrder"})
ISO_DATES = frozenset({"GetPatientOrderList"})

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})")


def _camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def _reshape(value: Any, key: str, iso_dates: bool) -> Any:
    """The alternative form of one value of the documented answer (see the module docstring)."""
    if isinstance(value, dict):
        return {_camel(k): _reshape(v, k, iso_dates) for k, v in value.items()}
    if isinstance(value, list):
        return [_reshape(v, key, iso_dates) for v in value] or None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and key.endswith("Datetime") and (match := _DATETIME.fullmatch(value)):
        return f"{match.group(1)}T{match.group(2)}:00"
    if isinstance(value, str) and key.lower().endswith("date") and (match := _DATE.fullmatch(value)):
        return f"{value}T00:00:00" if iso_dates else "".join(match.groups())
    return value


def _order_list(answer: dict[str, Any]) -> dict[str, Any]:
    rows = answer["patientOrderList"]
    return {"data": rows, "totalCount": str(len(rows or [])), "success": "True"}


def _tag_content(answer: dict[str, Any]) -> dict[str, Any]:
    return {"result": {"patientOrderUuid": answer["patientOrderUuid"], "items": answer["dicomTagContentList"]}}


ENVELOPES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "SearchFolder": lambda answer: answer["folderList"] or [],
    "GetPatientOrderList": _order_list,
    "CreateFolder": lambda answer: {"result": answer},
    "GetDicomTagContent": _tag_content,
}


def encode(function: str, answer: dict[str, Any], shapes: str) -> tuple[bytes, dict[str, str], str | None]:
    """Body, extra headers and media type of a success answer of ``function`` in the ``shapes`` asked for."""
    if shapes == DOCUMENTED:
        return json.dumps(answer, ensure_ascii=False).encode("utf-8"), {}, "application/json; charset=utf-8"
    if function in EMPTY_BODY:
        return b"", {"X-Error-Reason": ""}, None
    reshaped = _reshape(answer, "", function in ISO_DATES)
    body = ENVELOPES.get(function, lambda same: same)(reshaped)
    return (json.dumps(body, ensure_ascii=False).encode("utf-8"), {"X-Error-Reason": "Success"},
            "application/json; charset=utf-8")
