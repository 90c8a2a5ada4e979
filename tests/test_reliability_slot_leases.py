"""Issue 18.1: a rerun frees the concurrency-limit slots of runs of the same machine that died (flows/slot_leases.py).

- each held slot's lease is recorded under ``$PREFECT_HOME/postdicom-flows/leases`` while held, and removed after;
- a record is freed (its lease released through the API, the record removed) only when it is of this host and
  its process is gone or its pid now belongs to another process (another start time); live holders, other
  hosts, other limits and unreadable files are left alone;
- with a Prefect server, a batch finding the limit full of a dead run's slots frees them and goes on at once,
  instead of waiting for the lease to expire (the kill -9 version is in test_reliability_kill.py).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_HOME, temporary_settings

from flows.assignment import limit_slot
from flows.slot_leases import LeaseRecord, free_dead_leases, process_start_time, recorded_lease, registry_directory


class ReleasingClient:
    """Stands in for the Prefect client: notes the leases released through it."""

    def __init__(self) -> None:
        self.released: list[uuid.UUID] = []

    def release_concurrency_slots_with_lease(self, lease_id: uuid.UUID) -> None:
        self.released.append(lease_id)


def dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_record(directory: Path, limit: str, **fields: Any) -> uuid.UUID:
    lease_id = fields.pop("lease_id", uuid.uuid4())
    record = {"lease_id": lease_id, "limit_name": limit, "host": socket.gethostname(), "pid": os.getpid(),
              "started": process_start_time(os.getpid()), **fields}
    (directory / f"{lease_id}.json").write_text(LeaseRecord(**record).model_dump_json())
    return lease_id


@pytest.fixture
def registry(tmp_path) -> Path:
    with temporary_settings({PREFECT_HOME: tmp_path / "home"}):
        directory = registry_directory()
        directory.mkdir(parents=True)
        yield directory


def test_a_process_start_time_is_known_while_it_lives_and_later_for_a_later_process():
    own = process_start_time(os.getpid())
    assert own is not None and own == process_start_time(os.getpid())
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start_time(later.pid)
        assert started is not None and int(started) >= int(own)  # clock ticks since boot
    finally:
        later.kill()
        later.wait()
    assert process_start_time(later.pid) is None


def test_only_this_hosts_records_of_ended_processes_are_freed(registry):
    client = ReleasingClient()
    dead = write_record(registry, "limit-a", pid=dead_pid())
    reused = write_record(registry, "limit-a", started="1")  # this pid, but started at another time: another process
    alive = write_record(registry, "limit-a")
    elsewhere = write_record(registry, "limit-a", pid=dead_pid(), host=socket.gethostname() + "-other")
    other_limit = write_record(registry, "limit-b", pid=dead_pid())
    (registry / "garbled.json").write_text("{not json")
    (registry / f"{uuid.uuid4()}.json").write_text('{"lease_id": "not-a-uuid"}')

    assert free_dead_leases(client, "limit-a") == 2  # type: ignore[arg-type]

    assert sorted(client.released) == sorted([dead, reused])
    left = {path.name for path in registry.glob("*.json")}
    assert {f"{lease}.json" for lease in (alive, elsewhere, other_limit)} <= left
    assert f"{dead}.json" not in left and f"{reused}.json" not in left
    assert "garbled.json" in left and len(left) == 5, "unreadable records are left alone"


def test_an_empty_or_missing_registry_frees_nothing(tmp_path):
    with temporary_settings({PREFECT_HOME: tmp_path / "nowhere"}):
        assert free_dead_leases(ReleasingClient(), "limit-a") == 0  # type: ignore[arg-type]


def test_a_lease_is_recorded_while_held_and_removed_after_even_on_error(registry):
    lease_id = uuid.uuid4()
    path = registry / f"{lease_id}.json"
    with pytest.raises(RuntimeError), recorded_lease(lease_id, "limit-a"):
        record = LeaseRecord.model_validate_json(path.read_text())
        assert (record.lease_id, record.limit_name, record.host, record.pid) == (
            lease_id, "limit-a", socket.gethostname(), os.getpid())
        assert record.started == process_start_time(os.getpid())
        raise RuntimeError("the batch failed")
    assert not path.exists()
    assert list(registry.iterdir()) == []


def test_a_batch_frees_the_slot_of_a_dead_run_and_goes_on_at_once(prefect_harness, registry, caplog):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    name = f"slot-leases-{uuid.uuid4().hex[:8]}"
    lease = 600.0  # far longer than the test may take: only the release can hand the slot back
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        answer = client.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=lease)
    dead_lease = uuid.UUID(answer.json()["lease_id"])
    write_record(registry, name, lease_id=dead_lease, pid=dead_pid())

    @flow
    def one_batch() -> list[str]:
        with limit_slot(name):
            return [path.name for path in registry.glob("*.json")]

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="prefect"):
        held = one_batch()
    seconds = time.monotonic() - started

    assert len(held) == 1 and held != [f"{dead_lease}.json"], "the batch's own lease is recorded while held"
    assert f"Freed 1 slot(s) of the global concurrency limit '{name}'" in caplog.text
    assert "Waiting for a slot" not in caplog.text
    assert seconds < lease / 4, "the dead run's lease did not have to expire"
    assert list(registry.glob("*.json")) == []
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).active_slots == 0

