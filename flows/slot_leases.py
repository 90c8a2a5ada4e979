"""Slots of a Prefect global concurrency limit, on a lease recorded on this machine, so a rerun frees a killed run's.

A run killed with kill -9 (or by the OOM killer) keeps its slots until their
lease runs out, and Prefect's API cannot say who holds a limit's slots; it can
only release a lease by its id. So while a slot is held, its lease is written
down in ``$PREFECT_HOME/postdicom-flows/leases/<lease_id>.json`` (host name,
process id and start time, limit name, flow run id: nothing secret, no
patient data), and removed when the slot is released. A run that finds the
limit full first releases, through the API, the leases recorded by processes
of this host that are gone (or whose process id now belongs to a later
process), then waits as before. Records of other hosts are left alone: this
machine cannot tell whether their process lives, and their lease's expiry
hands those slots back.
Containers sharing one ``PREFECT_HOME`` must have distinct host names (the
default): a process id is only known within its own host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.runtime import flow_run
from prefect.settings import PREFECT_HOME
from pydantic import BaseModel

REGISTRY_SUBDIRECTORY = Path("postdicom-flows", "leases")
RENEWALS_PER_LEASE = 4
"""A held lease is renewed this many times per lease duration, so two renewals in a row may fail before it runs out."""
LOCKED = 423
"""What the Prefect server answers while every slot of the limit is taken (with a ``Retry-After``)."""


class LeaseRecord(BaseModel):
    """One held lease, as written in the registry (what tells a dead holder from a live one)."""

    lease_id: UUID
    limit_name: str
    host: str
    pid: int
    started: str
    flow_run_id: str | None = None


def registry_directory() -> Path:
    """Where this machine's held leases are recorded: under ``PREFECT_HOME``, shared by every run using it."""
    return Path(PREFECT_HOME.value()) / REGISTRY_SUBDIRECTORY


def process_start_time(pid: int) -> str | None:
    """When process ``pid`` started (field 22 of ``/proc/<pid>/stat``), or ``None`` when there is no such process.

    Together with the pid it names one process for good: a pid reused by a
    later process has a later start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name start at field 3


@contextlib.contextmanager
def recorded_lease(lease_id: UUID, limit_name: str) -> Iterator[None]:
    """Record the lease ``lease_id`` of this process in the registry while the block runs."""
    directory = registry_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{lease_id}.json"
    pid = os.getpid()
    record = LeaseRecord(lease_id=lease_id, limit_name=limit_name, host=socket.gethostname(), pid=pid,
                         started=process_start_time(pid) or "", flow_run_id=flow_run.id)
    partial = path.with_suffix(".partial")
    partial.write_text(record.model_dump_json())
    partial.replace(path)  # a reader sees a whole record or none
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def free_dead_leases(client: SyncPrefectClient, limit_name: str) -> int:
    """Release the leases on ``limit_name`` recorded by processes of this host that are gone; how many were released.

    Unreadable records (not this module's) and records of other hosts are left
    alone; without ``/proc`` nothing can be told about a process, so nothing is freed.
    """
    if process_start_time(os.getpid()) is None:
        return 0
    host = socket.gethostname()
    freed = 0
    for path in sorted(registry_directory().glob("*.json")):
        try:
            record = LeaseRecord.model_validate_json(path.read_text())
        except (OSError, ValueError):
            continue
        if record.host != host or record.limit_name != limit_name:
            continue
        if process_start_time(record.pid) == record.started:
            continue  # its holder still runs
        client.release_concurrency_slots_with_lease(lease_id=record.lease_id)  # a lease already expired: a no-op
        path.unlink(missing_ok=True)
        freed += 1
    return freed


def acquire_slot(client: SyncPrefectClient, limit_name: str, lease_seconds: float, timeout: float | None) -> UUID | None:
    """Take one slot of ``limit_name`` on a lease; its lease id, or ``None`` when the limit does not exist.

    Tries once when ``timeout`` is 0, waits for as long as it takes when
    ``None``; ``TimeoutError`` when no slot came free in time.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            answer = client.increment_concurrency_slots_with_lease(
                names=[limit_name], slots=1, mode="concurrency", lease_duration=lease_seconds
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != LOCKED:
                raise
            delay = float(exc.response.headers.get("Retry-After", 1))
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TimeoutError(f"no slot of the global concurrency limit {limit_name!r} came free") from None
            time.sleep(delay)
            continue
        body = answer.json()
        return UUID(body["lease_id"]) if body.get("limits") else None


@contextlib.contextmanager
def renewed_lease(
    lease_id: UUID, lease_seconds: float, logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
) -> Iterator[None]:
    """Renew the lease in a background thread while the block runs (so only a dead holder's lease runs out)."""
    stop = threading.Event()

    def renew() -> None:
        with get_client(sync_client=True) as client:
            while not stop.wait(lease_seconds / RENEWALS_PER_LEASE):
                try:
                    client.renew_concurrency_lease(lease_id=lease_id, lease_duration=lease_seconds)
                except Exception as exc:
                    logger.warning("Could not renew the lease of a concurrency slot (%s: %s); trying again",
                                   type(exc).__name__, exc)

    thread = threading.Thread(target=renew, name=f"lease-renewal-{lease_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
