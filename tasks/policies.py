"""Retry and cache policies shared by every task (declared once: reads vs writes).

The client already retries transient failures inside one task run (honouring
``Retry-After``, rebuilding request bodies, within the budget of each call);
the task-level retries below are the second line, for outages longer than the
client's backoff. Their count and delays come from the same
:class:`~postdicom.retry.RetryPolicy` (``POSTDICOM_TASK_RETRIES``,
``POSTDICOM_TASK_RETRY_DELAY``, read when the task module is imported), so
the worst case of a task is known (``docs/architecture.md``). Only transient
errors are retried: a 400 or 404 will not get better by asking again.
"""

from __future__ import annotations

import datetime as dt

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy

from postdicom.errors import is_transient
from postdicom.retry import RetryPolicy
from postdicom.settings import env_number
from postdicom.writes import writes_sent

READ_TAGS = ["postdicom", "postdicom-read"]
WRITE_TAGS = ["postdicom", "postdicom-write"]
"""Task-run tags: filter runs in the UI, or cap them with a tag concurrency limit
(``prefect concurrency-limit create postdicom-write 4``) across every flow."""


def cache_minutes() -> float:
    """Cache lifetime for read tasks, from ``POSTDICOM_CACHE_MINUTES`` (default 10; 0 disables)."""
    return env_number("POSTDICOM_CACHE_MINUTES", 10.0, unit="minutes")


def retry_on_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure was transient."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - we classify whatever the task raised
        return is_transient(exc)
    return False


def _writes_seen(context: object, inputs: dict) -> str:
    return f"postdicom-writes-sent-{writes_sent()}"


def read_cache_policy() -> CachePolicy:
    """Inputs + task source + the writes this process has sent (:mod:`postdicom.writes`).

    The last part makes a read after a write ask the server again instead of
    returning what was true before it (an order just assigned, images just
    stored), in the same flow, a subflow or a later run of this process.
    Blocks hash with their secret masked, so no password reaches a key.
    """
    return INPUTS + TASK_SOURCE + CachePolicy.from_cache_key_fn(_writes_seen)


def transient_retry_options(policy: RetryPolicy | None = None) -> dict:
    """``@task`` keyword arguments that retry transient failures only (the one retry rule).

    ``policy`` defaults to the settings' (:meth:`RetryPolicy.from_env`).
    """
    policy = policy if policy is not None else RetryPolicy.from_env()
    return dict(
        retries=policy.task_retries,
        retry_delay_seconds=policy.task_retry_delays(),
        retry_jitter_factor=policy.jitter,
        retry_condition_fn=retry_on_transient,
    )


def read_task_options(*, cached: bool = True) -> dict:
    """``@task`` keyword arguments for a read: transient retries, optional short-lived cache."""
    options: dict = dict(tags=READ_TAGS, **transient_retry_options())
    minutes = cache_minutes()
    if cached and minutes > 0:
        options.update(
            cache_policy=read_cache_policy(),
            cache_expiration=dt.timedelta(minutes=minutes),
        )
    return options


def write_task_options(*, idempotent: bool) -> dict:
    """``@task`` keyword arguments for a mutation: never cached; retried only if repeating is harmless."""
    from prefect.cache_policies import NO_CACHE

    options: dict = dict(cache_policy=NO_CACHE, tags=WRITE_TAGS)
    if idempotent:
        options.update(transient_retry_options())
    return options
