"""Prefect tasks for PostDICOM's 13 custom endpoints, made from the endpoint table.

Each task is a thin wrapper around one row of :data:`postdicom.endpoints.ENDPOINTS`:
it takes the :class:`~blocks.PostDicomCredentials` block first and the
documented parameters after it (names as in ``public-interface.md``), builds
the client inside the task (a client cannot be hashed for a cache key), sends
the call through :meth:`~postdicom.endpoints.CustomEndpointsMixin.call_endpoint`
and logs what was done with counts, never a secret, a share URL or a patient
name.

Policies, from the row's retry safety (``tasks.policies``):

- reads (order properties, order list, folder search, tag content) are retried
  on transient errors and cached for ``POSTDICOM_CACHE_MINUTES`` on their
  inputs (the block hashes with its password masked). Cached answers are
  pickled under ``PREFECT_RESULTS_LOCAL_STORAGE_PATH``: they hold patient
  data, so point that at secured storage or set the variable to ``0``. A read
  made after a change in the same flow returns the cached answer until it
  expires: use ``task.with_options(refresh_cache=True)`` there.
- idempotent writes (assignments, adding to folders, deleting) are retried on
  transient errors and never cached; a retried delete looks first.
- creates (orders, folders, shares) are never cached and not retried by
  Prefect: the client call already looked before repeating, or refused to
  repeat, knowing what may have reached the server; a Prefect retry would
  start blind. A share password (``str`` or ``SecretStr``) only ever reaches
  the request header.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import CachePolicy
from prefect.exceptions import MissingContextError
from prefect.runtime import task_run

from blocks import PostDicomCredentials
from postdicom.endpoint_row import Endpoint, Safety
from postdicom.endpoint_table import ENDPOINTS
from postdicom.endpoints import CustomEndpointsMixin
from postdicom.models import Answer

from .policies import read_task_options, write_task_options

_CREDENTIALS = inspect.Parameter(
    "credentials", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=PostDicomCredentials
)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside Prefect, a plain logger for ``task.fn(...)`` outside it."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _row_key(row: Endpoint) -> str:
    """What identifies a row's behaviour, for the cache key.

    The 13 tasks share one wrapper's source, so Prefect's ``TASK_SOURCE`` alone
    cannot tell two reads apart or notice that a row changed.
    """
    description = {
        "endpoint": [row.vendor_name, row.path, row.header],
        "params": [[p.name, p.key, p.wire.name, p.required] for p in row.params],
        "answer": row.answer.model_json_schema(),
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def _options(row: Endpoint) -> dict[str, Any]:
    """``@task`` options from the row's retry safety (see the module docstring)."""
    if row.safety is not Safety.READ:
        return write_task_options(idempotent=row.safety.repeatable)
    options = read_task_options()
    if "cache_policy" in options:
        key = _row_key(row)
        options["cache_policy"] = options["cache_policy"] + CachePolicy.from_cache_key_fn(lambda ctx, inputs: key)
    return options


def _run_name(row: Endpoint) -> Callable[..., str]:
    """A task-run name such as ``delete_patient_order: delete order 6f1c…`` (the row's label)."""

    def name(parameters: dict[str, Any]) -> str:
        return f"{row.python_name}: {row.describe(parameters)}"

    return name


def _caching_note(row: Endpoint) -> str:
    if row.safety is Safety.READ:
        return (
            "As a task: retried on transient errors; cached for ``POSTDICOM_CACHE_MINUTES`` on its inputs"
            " until this process sends a write (for a change made elsewhere, read again with"
            " ``.with_options(refresh_cache=True)``)."
        )
    if row.safety.repeatable:
        return "As a task: retried on transient errors (a retry looks first where the row says so); never cached."
    return "As a task: never cached, not retried by Prefect (the client call decides what is safe to repeat)."


def make_task(row: Endpoint) -> Task[..., Answer]:
    """The Prefect task for one row: ``credentials`` first, then the row's parameters."""
    signature = inspect.Signature([_CREDENTIALS, *row.signature_parameters()], return_annotation=row.answer)

    def run(*args: Any, **kwargs: Any) -> Answer:
        bound = signature.bind(*args, **kwargs)
        values = dict(bound.arguments)
        credentials: PostDicomCredentials = values.pop("credentials")
        with credentials.get_client() as client:
            client.repeating = task_run.run_count > 1
            answer = client.call_endpoint(row, values)
        _logger().info("%s: %s", row.describe(values), answer.summary())
        return answer

    run.__name__ = row.python_name
    run.__qualname__ = row.python_name
    run.__module__ = __name__
    method = getattr(CustomEndpointsMixin, row.python_name, None)
    run.__doc__ = (method.__doc__ or row.summary) + "\n" + _caching_note(row)
    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    run.__annotations__["return"] = row.answer
    return task(run, name=row.python_name, task_run_name=_run_name(row), **_options(row))


TASKS: dict[str, Task[..., Answer]] = {row.python_name: make_task(row) for row in ENDPOINTS}
"""Every custom-endpoint task by name."""

create_share_link = TASKS["create_share_link"]
share_patient_order_with_url = TASKS["share_patient_order_with_url"]
create_folder = TASKS["create_folder"]
search_folder = TASKS["search_folder"]
share_folder_with_url = TASKS["share_folder_with_url"]
add_order_to_folder = TASKS["add_order_to_folder"]
assign_order_to_user = TASKS["assign_order_to_user"]
assign_order_to_user_group = TASKS["assign_order_to_user_group"]
create_patient_order = TASKS["create_patient_order"]
get_patient_order_properties = TASKS["get_patient_order_properties"]
get_dicom_tag_content = TASKS["get_dicom_tag_content"]
get_patient_order_list = TASKS["get_patient_order_list"]
delete_patient_order = TASKS["delete_patient_order"]

__all__ = [
    "TASKS",
    "add_order_to_folder",
    "assign_order_to_user",
    "assign_order_to_user_group",
    "create_folder",
    "create_patient_order",
    "create_share_link",
    "delete_patient_order",
    "get_dicom_tag_content",
    "get_patient_order_list",
    "get_patient_order_properties",
    "make_task",
    "search_folder",
    "share_folder_with_url",
    "share_patient_order_with_url",
]
