"""One retry policy for every layer, and the budget that caps one logical call.

A request may be repeated at several layers: the HTTP session repeats a
transient failure, the endpoint engine repeats a create after looking for what
an earlier attempt made, a WADO download starts again when its connection
breaks, and Prefect repeats a whole task. Each layer used to count on its own,
so the costs multiplied. Now every layer reads the same :class:`RetryPolicy`,
and the layers inside one client call share one :class:`RetryBudget`:

* at most ``attempts - 1`` retries in all, whichever layer makes them;
* each wait is the backoff (``backoff * 2**(n-1)``, capped by ``max_backoff``,
  stretched by up to ``jitter``) or the server's ``Retry-After`` when that is
  longer, but never more than ``max_retry_after``;
* a retry whose wait would bring the call's waiting past ``max_total_wait``
  is not made: the last error is raised instead.

The budget of the outermost call is the one in force (:func:`retry_scope`), so
a lookup made by the engine between two tries of a create draws on the same
retries and the same waiting as the create. Prefect task retries start a new
call each time; their count and delays come from the same policy
(``task_retries``, ``task_retry_delay``), so the worst case of every unit of
work can be written down: see the table in ``docs/architecture.md``, which a
test compares with :func:`budget_table`.
"""

from __future__ import annotations

import contextlib
import contextvars
import random
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

from .errors import ValidationError
from .settings import env_number

TASK_DELAY_GROWTH = 5
"""Each Prefect task retry waits this many times longer than the one before (2 s, 10 s, ...)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one logical call may try again after a transient failure.

    Parameters
    ----------
    attempts:
        Tries per logical call, the first included (1 = never retry).
        ``POSTDICOM_RETRY_ATTEMPTS``.
    backoff:
        First wait in seconds; doubles with each retry. ``POSTDICOM_RETRY_BACKOFF``.
    max_backoff:
        Longest backoff wait. ``POSTDICOM_RETRY_MAX_BACKOFF``.
    jitter:
        Each backoff wait is stretched by up to this fraction, at random, so
        that many clients do not retry in step. ``POSTDICOM_RETRY_JITTER``.
    max_retry_after:
        Longest single wait a server's ``Retry-After`` can impose; a longer
        ask is shortened to this. ``POSTDICOM_RETRY_AFTER_MAX``.
    max_total_wait:
        Most seconds one logical call spends waiting between tries, all waits
        together (``Retry-After`` included). ``POSTDICOM_RETRY_MAX_TOTAL_WAIT``.
    task_retries:
        Times Prefect runs a task again after a transient failure (reads and
        writes that are harmless to repeat). ``POSTDICOM_TASK_RETRIES``.
    task_retry_delay:
        Seconds before the first task retry; each next one waits
        :data:`TASK_DELAY_GROWTH` times longer. ``POSTDICOM_TASK_RETRY_DELAY``.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.5
    max_retry_after: float = 60.0
    max_total_wait: float = 120.0
    task_retries: int = 2
    task_retry_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValidationError(f"attempts must be at least 1 (the first try), not {self.attempts}")
        if self.task_retries < 0:
            raise ValidationError(f"task_retries must not be negative, not {self.task_retries}")
        for field in fields(self):
            value = getattr(self, field.name)
            if value != value or value < 0:
                raise ValidationError(f"{field.name} must not be negative, not {value}")

    @classmethod
    def from_env(cls, **overrides: float) -> RetryPolicy:
        """The policy of the ``POSTDICOM_RETRY_*`` / ``POSTDICOM_TASK_RETR*`` settings.

        ``overrides`` win over the environment (e.g. a credentials block's
        ``max_retries``); fields left unset keep the defaults above.
        """
        default = cls()
        values: dict[str, float] = {
            "attempts": env_number("POSTDICOM_RETRY_ATTEMPTS", default.attempts, minimum=1, whole=True),
            "backoff": env_number("POSTDICOM_RETRY_BACKOFF", default.backoff),
            "max_backoff": env_number("POSTDICOM_RETRY_MAX_BACKOFF", default.max_backoff),
            "jitter": env_number("POSTDICOM_RETRY_JITTER", default.jitter),
            "max_retry_after": env_number("POSTDICOM_RETRY_AFTER_MAX", default.max_retry_after),
            "max_total_wait": env_number("POSTDICOM_RETRY_MAX_TOTAL_WAIT", default.max_total_wait),
            "task_retries": env_number("POSTDICOM_TASK_RETRIES", default.task_retries, whole=True),
            "task_retry_delay": env_number("POSTDICOM_TASK_RETRY_DELAY", default.task_retry_delay),
        }
        values.update(overrides)
        return replace(default, **values)  # type: ignore[arg-type]

    def backoff_wait(self, retry_number: int) -> float:
        """The ``retry_number``-th backoff wait before jitter (1 = the first retry)."""
        return min(self.max_backoff, self.backoff * (2 ** (retry_number - 1)))

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """One wait: the jittered backoff, or the server's ``Retry-After`` up to ``max_retry_after``."""
        wait = self.backoff_wait(retry_number) * (1 + random.uniform(0, self.jitter))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait

    def longest_wait(self) -> float:
        """The most one logical call can wait in all (every retry at its longest, within the ceiling)."""
        longest = sum(
            max(self.backoff_wait(n) * (1 + self.jitter), self.max_retry_after) for n in range(1, self.attempts)
        )
        return min(longest, self.max_total_wait)

    def task_retry_delays(self) -> list[float]:
        """Prefect's ``retry_delay_seconds`` for :attr:`task_retries` retries."""
        return [self.task_retry_delay * TASK_DELAY_GROWTH**n for n in range(self.task_retries)]

    def longest_task_wait(self) -> float:
        """The most one task can spend waiting: its calls' waits and Prefect's delays (with jitter)."""
        calls = self.task_retries + 1
        return calls * self.longest_wait() + sum(self.task_retry_delays()) * (1 + self.jitter)

    def budget(self) -> RetryBudget:
        """A fresh budget for one logical call."""
        return RetryBudget(self)


NO_RETRY = RetryPolicy(attempts=1, task_retries=0)
"""A policy that never tries again (tests, and calls that must not be repeated)."""


class RetryBudget:
    """What one logical call has left: retries and seconds of waiting.

    Every layer that wants to try again asks :meth:`next_wait`; ``None`` means
    the call has used its share and the layer raises the error it holds.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.retries = 0
        self.waited = 0.0

    def next_wait(self, retry_after: float | None = None) -> float | None:
        """The wait before the next retry, counted as spent; ``None`` when no retry is left.

        ``retry_after`` is the server's ``Retry-After`` in seconds, if it sent one.
        """
        policy = self.policy
        if self.retries + 1 >= policy.attempts:
            return None
        wait = policy.delay(self.retries + 1, retry_after)
        if self.waited + wait > policy.max_total_wait:
            return None
        self.retries += 1
        self.waited += wait
        return wait

    def __repr__(self) -> str:
        return f"<RetryBudget {self.retries} of {self.policy.attempts - 1} retries, {self.waited:.2f}s waited>"


_current_budget: contextvars.ContextVar[RetryBudget | None] = contextvars.ContextVar(
    "postdicom_retry_budget", default=None
)


@contextlib.contextmanager
def retry_scope(policy: RetryPolicy) -> Iterator[RetryBudget]:
    """The budget of the logical call in progress, or a new one for ``policy`` if none is.

    Layers nest: the engine opens a scope for a create, and the HTTP requests
    it makes inside (the create, the lookups) find that scope and share its
    budget instead of each starting a full one of their own. Scopes follow
    the context (a thread started by a pool starts with none: each STOW batch
    is a call of its own).
    """
    budget = _current_budget.get()
    if budget is not None:
        yield budget
        return
    budget = policy.budget()
    token = _current_budget.set(budget)
    try:
        yield budget
    finally:
        _current_budget.reset(token)
