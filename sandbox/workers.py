"""Worker threads shared out per account, so one account's heavy requests cannot take them all.

Blocking work (SQLite reads, searches, the custom endpoints, PBKDF2) runs in
worker threads. With one pool for everybody, an account sending many slow
searches at once would hold every thread and the next request of any other
account would wait for one to finish. Each account gets its own
:class:`anyio.CapacityLimiter` of ``Settings.account_workers`` threads
(``SANDBOX_ACCOUNT_WORKERS``), and share pages (no account) get one too; a
busy account then only queues behind itself and shares the CPU with the others.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

T = TypeVar("T")
SHARE_PAGES = "share pages"


class Workers:
    """One thread limiter per account (created on first use, inside the event loop)."""

    def __init__(self, per_account: int):
        self.per_account = per_account
        self._limiters: dict[str, CapacityLimiter] = {}

    def limiter(self, key: str) -> CapacityLimiter:
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = CapacityLimiter(self.per_account)
        return limiter


async def in_worker(request: Request, function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a worker thread counted against the caller's account."""
    account = request.scope.get("state", {}).get("account")
    limiter = request.app.state.workers.limiter(account.uuid if account else SHARE_PAGES)
    return await anyio.to_thread.run_sync(partial(function, *args), limiter=limiter)
