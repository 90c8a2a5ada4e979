"""Prefect's methods that are both sync and async, called from the command lines' synchronous code."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def synchronous_result(result: T | Coroutine[Any, Any, T]) -> T:
    """The value a Prefect sync/async dual method (``Block.load``, ``Flow.to_deployment``) returned outside an event loop.

    Prefect's ``async_dispatch`` picks the sync or the async implementation from
    the caller's context, so its type says "the value or a coroutine". The
    command lines call these methods outside any event loop, where the value
    comes back; a coroutine here means a caller inside an event loop, which
    must await the method's async form (``aload``, ``ato_deployment``): that is
    an error now rather than a coroutine object failing later.
    """
    if isinstance(result, Coroutine):
        result.close()
        raise RuntimeError("a Prefect sync/async method was called inside an event loop: await its async form")
    return result
