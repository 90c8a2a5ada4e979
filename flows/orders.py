"""Reading the account's patient orders, the one way the flows learn an order's institution and assignment."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from prefect import task

from blocks import PostDicomCredentials
from tasks.policies import read_task_options


def answer_dict(answer: Any) -> dict[str, Any]:
    """The server's JSON answer as a dict, whether the client returned a dict or a model keeping ``raw``."""
    if isinstance(answer, Mapping):
        return dict(answer)
    raw = getattr(answer, "raw", None)
    if isinstance(raw, Mapping):
        return dict(raw)
    dump = getattr(answer, "model_dump", None)
    if callable(dump):
        return dict(dump(by_alias=True))
    raise TypeError(f"cannot read an answer of type {type(answer).__name__}")


def pick(answer: Any, key: str, default: Any = None) -> Any:
    """``answer[key]`` ignoring key case (the answers' contract says case is not significant)."""
    data = answer_dict(answer)
    if key in data:
        return data[key]
    lowered = key.lower()
    for name, value in data.items():
        if name.lower() == lowered:
            return value
    return default


def canonical_uuid(value: Any) -> str | None:
    """The lower-case canonical form of a UUID string, or ``None`` when it is not one."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def fetch_orders(client: Any, **filters: Any) -> list[dict[str, Any]]:
    """Order-list rows as dicts; filters are GetPatientOrderList's (no institutions: all of them)."""
    institutions = list(filters.pop("institution_uuid_list", None) or [])
    given = {name: value for name, value in filters.items() if value not in (None, [], "")}
    answer = client.get_patient_order_list(institution_uuid_list=institutions, **given)
    return [answer_dict(row) for row in pick(answer, "PatientOrderList") or []]


@task(name="list-patient-orders", **read_task_options(cached=False))
def list_patient_orders(
    credentials: PostDicomCredentials,
    institution_uuid_list: list[str] | None = None,
    modality_list: list[str] | None = None,
    study_date_from: Any = None,
    study_date_to: Any = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
) -> list[dict[str, Any]]:
    """The account's patient orders matching the filters (each order-list row as a dict).

    Not cached on purpose: both flows compare against the server's *current*
    state (which orders exist, who is assigned), so a ten-minute-old answer
    would make a rerun report the wrong thing.
    """
    with credentials.get_client() as client:
        return fetch_orders(
            client,
            institution_uuid_list=institution_uuid_list,
            modality_list=modality_list,
            study_date_from=study_date_from,
            study_date_to=study_date_to,
            patient_id=patient_id,
            patient_name=patient_name,
        )


