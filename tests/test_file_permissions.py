"""Files the project writes itself follow the user's umask: a restrictive one gives files only the owner reads.

Exports, WADO downloads and the sandbox's data hold patient data. None of them
sets a mode of its own: files are created with ``open()``/``mkdir()``, which
apply the process umask (``umask 077`` → ``rw-------`` files, ``rwx------``
folders). These tests run the real code under ``umask 077`` and look at every
file and folder it created.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from postdicom.synthetic import StudySpec, write_study

DAY = dt.date(2032, 2, 9)
"""A study date no other test module uses: the export window holds this module's order only."""

SPEC = StudySpec("Umask^Una", "UMASK-001", "CT", series_count=1, instances_per_series=2, study_date=DAY,
                 accession_number="UMASK-A1", seed="umask-una")


@pytest.fixture
def restrictive_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def group_or_other_access(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) that someone other than the owner may read, write or enter."""
    paths = [root, *root.rglob("*")]
    return [f"{stat.filemode(p.stat().st_mode)} {p}" for p in paths if p.stat().st_mode & 0o077]


@pytest.fixture(scope="module")
def stored_study(sandbox_server, tmp_path_factory):
    paths = write_study(tmp_path_factory.mktemp("umask-disk"), SPEC)
    with sandbox_server.client() as client:
        result = client.store_instances(paths)
    assert len(result.stored) + len(result.with_status("already_stored")) == len(paths)
    return sandbox_server


def test_wado_download_follows_a_restrictive_umask(stored_study, tmp_path: Path, restrictive_umask: None) -> None:
    destination = tmp_path / "wado" / "nested"
    with stored_study.client() as client:
        written = client.retrieve_study(SPEC.study_uid(), destination)
    assert len(written) == 2
    assert group_or_other_access(tmp_path / "wado") == []


def test_export_partition_follows_a_restrictive_umask(
    stored_study, prefect_harness: None, tmp_path: Path, restrictive_umask: None
) -> None:
    from flows import nightly_order_export

    destination = tmp_path / "export"
    state = nightly_order_export(credentials=stored_study.credentials(), destination=str(destination),
                                 study_date_from=DAY, study_date_to=DAY, return_state=True)
    assert state.is_completed(), state.message
    parquet = list(destination.rglob("*.parquet"))
    assert parquet, "the export wrote no Parquet file"
    assert group_or_other_access(destination) == []


def test_sandbox_data_follows_the_umask_it_was_started_with(fresh_sandbox, tmp_path: Path,
                                                            restrictive_umask: None) -> None:
    """The sandbox child inherits the umask; its index, files and folders are the owner's only."""
    sandbox = fresh_sandbox()
    paths = write_study(tmp_path / "disk", SPEC)
    with sandbox.info().client() as client:
        client.store_instances(paths)
    assert any(p.is_file() for p in sandbox.data_dir.rglob("*"))
    assert group_or_other_access(sandbox.data_dir) == []


def test_a_permissive_umask_is_followed_too(stored_study, tmp_path: Path) -> None:
    """The check above can fail: under umask 022 the same download is readable by others."""
    previous = os.umask(0o022)
    try:
        with stored_study.client() as client:
            client.retrieve_study(SPEC.study_uid(), tmp_path / "open")
    finally:
        os.umask(previous)
    assert group_or_other_access(tmp_path / "open")
