"""How many writes this process has sent: the version of the world a cached read was made in.

A read cached before a write may no longer be true after it (an order
assigned, images stored, a folder filled). The client counts every request
that may change the server — STOW batches and the custom endpoints that are
not reads — at the moment it is sent, whether or not it succeeds. Caches of
reads (the Prefect read tasks) put the count in their keys, so a write sent by
this process makes the next read ask the server again. Writes made by other
processes are not seen; those caches still expire on their own.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_sent = 0


def note_write() -> None:
    """Count one request that may change the server."""
    global _sent
    with _lock:
        _sent += 1


def writes_sent() -> int:
    """Writes this process has sent so far."""
    return _sent
