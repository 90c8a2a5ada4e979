"""The custom endpoints' parameter header: one decoder and validator for all 13 of them.

On the wire (see the wire-protocol page) every parameter travels in ONE
request header whose value is a JSON object of strings: ``""`` means "not
given", booleans are .NET's ``"True"``/``"False"``, lists are JSON strings of
arrays (``"[\\"\\"]"`` is an empty list), ``PatientOrderInfoList`` nests a
third level. Each endpoint declares its parameters as :class:`Param` rows;
:func:`decode` turns the header into typed Python values or raises the 400/431
the real service would.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ApiError

MAX_PARAMETER_HEADER = 16 * 1024
"""Bytes; a bigger parameter header answers 431 (see docs/sandbox.md for the server-wide limit)."""

TEXT, UUID, DATE, DATETIME, BOOL, UUID_LIST, TEXT_LIST, ORDER_INFO_LIST = (
    "text", "uuid", "date", "datetime", "bool", "uuid_list", "text_list", "order_info_list")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str = TEXT
    required: bool = False
    blank_means_all: bool = False
    """For a required list: the key must be present, but ``""``/``[""]`` means "all"."""


def decode(header_name: str, raw: str | None, params: tuple[Param, ...]) -> dict[str, Any]:
    """Typed values keyed by parameter name; a parameter not given is ``None``."""
    if raw is None:
        raise ApiError(400, f"missing parameter header {header_name}")
    if len(raw) > MAX_PARAMETER_HEADER:
        raise ApiError(431, f"parameter header {header_name} is larger than {MAX_PARAMETER_HEADER} bytes")
    raw_bytes = raw.encode("latin-1", "replace")
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError:
        text = raw
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, f"parameter header {header_name} is not a JSON object{_where(exc)}") from exc
    if not isinstance(obj, dict):
        raise ApiError(400, f"parameter header {header_name} is not a JSON object")
    values: dict[str, Any] = {}
    for param in params:
        sent = obj.get(param.name)
        if sent is not None and not isinstance(sent, str):
            raise ApiError(400, f"parameter {param.name} must be sent as a JSON string")
        if sent is not None:
            _check_unicode(param.name, sent)
        value = _convert(param, sent) if sent else None
        if param.required:
            missing = sent is None if param.blank_means_all else value in (None, [])
            if missing:
                raise ApiError(400, f"missing required parameter {param.name}")
        values[param.name] = value
    return values


def _convert(param: Param, text: str) -> Any:
    kind = param.kind
    if kind == TEXT:
        return text
    if kind == UUID:
        return parse_uuid(param.name, text)
    if kind == DATE:
        return parse_date(param.name, text)
    if kind == DATETIME:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", text):
            raise ApiError(400, f"parameter {param.name} must be YYYY-MM-DD HH:MM, not {text!r}")
        try:
            return dt.datetime.strptime(text, "%Y-%m-%d %H:%M")
        except ValueError as exc:
            raise ApiError(400, f"parameter {param.name} is not a valid date-time: {text!r}") from exc
    if kind == BOOL:
        if text.lower() not in ("true", "false"):
            raise ApiError(400, f"parameter {param.name} must be True or False, not {text!r}")
        return text.lower() == "true"
    if kind in (UUID_LIST, TEXT_LIST, ORDER_INFO_LIST):
        items = _json_list(param.name, text, objects=kind == ORDER_INFO_LIST)
        if kind == TEXT_LIST:
            return items
        if kind == UUID_LIST:
            return _unique(parse_uuid(param.name, item) for item in items)
        return _unique(_order_info(param.name, item) for item in items)
    raise AssertionError(f"unknown parameter kind {kind}")


def _check_unicode(name: str, text: str) -> None:
    """JSON escapes can spell lone surrogates (``"\\ud800"``), which no UTF-8 store or answer can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(400, f"parameter {name} holds an unpaired surrogate escape, not text") from exc


def _where(exc: ValueError) -> str:
    """Where JSON text broke, without the decoder's own message (answers carry no exception text)."""
    position = getattr(exc, "pos", None)
    return f" (invalid JSON at character {position})" if isinstance(position, int) else ""


def _json_list(name: str, text: str, *, objects: bool = False) -> list[Any]:
    """A list sent as a JSON string of an array; blank items (``[""]``) are dropped.

    Items are strings; ``objects`` also lets JSON objects through (``PatientOrderInfoList``).
    """
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, f"parameter {name} is not a JSON list{_where(exc)}") from exc
    if not isinstance(items, list):
        raise ApiError(400, f"parameter {name} is not a JSON list")
    out: list[Any] = []
    for item in items:
        if objects and isinstance(item, dict):
            out.append(item)
        elif isinstance(item, str):
            _check_unicode(name, item)
            if item.strip():
                out.append(item.strip())
        else:
            raise ApiError(400, f"parameter {name} must be a list of strings")
    return out


def _order_info(name: str, item: Any) -> str:
    """One ``PatientOrderInfoList`` item: a JSON string (or object) with ``PatientOrderUuid``."""
    if isinstance(item, str):
        try:
            item = json.loads(item)
        except ValueError as exc:
            raise ApiError(400, f"parameter {name} item is not a JSON object{_where(exc)}") from exc
    if not isinstance(item, dict) or not isinstance(item.get("PatientOrderUuid"), str):
        raise ApiError(400, f"parameter {name} items must be objects with a PatientOrderUuid")
    return parse_uuid(f"{name}.PatientOrderUuid", item["PatientOrderUuid"])


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


def parse_uuid(name: str, text: str) -> str:
    try:
        return str(uuid.UUID(text.strip()))
    except (ValueError, AttributeError) as exc:
        raise ApiError(400, f"parameter {name} is not a UUID: {text!r}") from exc


def parse_date(name: str, text: str) -> dt.date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ApiError(400, f"parameter {name} must be a date YYYY-MM-DD, not {text!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ApiError(400, f"parameter {name} is not a valid date: {text!r}") from exc
