"""Issue 18.5: two runs in one process finding-or-creating the same folder make one folder, not two.

The folder search is slowed (1 s after its answer) so that, without the
per-account-and-name lock, both threads search before either creates.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from flows import folders as upload_flow


def test_two_threads_make_one_folder_when_the_search_is_slow(prefect_harness, sandbox_server, monkeypatch):
    real_fresh = upload_flow.fresh

    def slow_fresh(task: Any) -> Any:
        fresh_task = real_fresh(task)

        def call(*args: Any, **kwargs: Any) -> Any:
            answer = fresh_task(*args, **kwargs)
            time.sleep(1.0)
            return answer

        return call

    monkeypatch.setattr(upload_flow, "fresh", slow_fresh)
    name = f"race-{uuid.uuid4().hex[:8]}"
    credentials = sandbox_server.credentials()
    found: list[Any] = []

    def find() -> None:
        found.append(upload_flow.find_or_create_folder(credentials, name, None))

    threads = [threading.Thread(target=find) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(found) == 2
    assert sorted(folder.created for folder in found) == [False, True]
    assert found[0].folder_uuid == found[1].folder_uuid
    with sandbox_server.client() as client:
        listed = client.search_folder(folder_name=name).folder_list
    assert [folder.folder_name for folder in listed] == [name]
