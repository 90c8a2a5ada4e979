"""Where the nightly export lives, and what a reader needs of it: the layout, JSON objects, the commit lock, manifests.

A :class:`Destination` is a local folder or any fsspec URL. It knows the
layout (``<table>/export_date=D/`` partitions; ``_staging``, ``_trash``,
``_manifests`` and ``_commits`` outside every table directory, see
:mod:`flows.parquet_writer` for why), writes a JSON object in one step
(``os.replace`` locally, one PUT on object stores) and holds the cross-process
commit lock. :func:`committed_files` is what a manifest-aware reader reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import posixpath
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from .export_schema import PARTITION_COLUMN

STAGING_DIR = "_staging"
TRASH_DIR = "_trash"
MANIFEST_DIR = "_manifests"
JOURNAL_DIR = "_commits"
LOCK_NAME = ".lock"


class Destination:
    """Where the export lives: a local folder or any fsspec URL (``s3://bucket/prefix``, ``memory://x``)."""

    def __init__(self, url: str | os.PathLike[str], **storage_options: Any) -> None:
        self.url = str(url)
        self.fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def partition_dir(self, table: str, export_date: dt.date) -> str:
        return self.path(table, f"{PARTITION_COLUMN}={export_date.isoformat()}")

    def manifest_path(self, table: str, export_date: dt.date) -> str:
        return self.path(MANIFEST_DIR, table, f"{PARTITION_COLUMN}={export_date.isoformat()}.json")

    def staging_dir(self, run_id: str, table: str, export_date: dt.date) -> str:
        return self.path(STAGING_DIR, run_id, table, f"{PARTITION_COLUMN}={export_date.isoformat()}")

    def trash_dir(self, run_id: str, table: str, export_date: dt.date) -> str:
        return self.path(TRASH_DIR, run_id, table, f"{PARTITION_COLUMN}={export_date.isoformat()}")

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def remove_tree(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def journal_path(self, export_date: dt.date) -> str:
        return self.path(JOURNAL_DIR, f"{PARTITION_COLUMN}={export_date.isoformat()}.json")

    def read_json(self, path: str) -> dict[str, Any] | None:
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))

    def write_json(self, path: str, body: Mapping[str, Any]) -> None:
        """One whole object: os.replace of a sibling temp file locally, a single PUT elsewhere."""
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        data = json.dumps(body, indent=2, sort_keys=True, default=str).encode("utf-8")
        if self.is_local:
            temporary = posixpath.join(posixpath.dirname(path), f".{uuid.uuid4().hex}.tmp")
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        else:
            self.fs.pipe_file(path, data)

    def read_manifest(self, table: str, export_date: dt.date) -> dict[str, Any] | None:
        return self.read_json(self.manifest_path(table, export_date))

    def write_manifest(self, table: str, export_date: dt.date, manifest: Mapping[str, Any]) -> None:
        self.write_json(self.manifest_path(table, export_date), manifest)

    @contextlib.contextmanager
    def commit_lock(self) -> Iterator[None]:
        """Exclusive across processes on a local destination (``flock``, freed by the kernel on kill -9)."""
        if not self.is_local:
            yield
            return
        folder = self.path(JOURNAL_DIR)
        os.makedirs(folder, exist_ok=True)
        with open(posixpath.join(folder, LOCK_NAME), "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def __repr__(self) -> str:
        return f"Destination({self.url!r})"


def children(destination: Destination, path: str) -> list[str]:
    if not destination.fs.exists(path):
        return []
    return [p.rstrip("/") for p in destination.fs.ls(path, detail=False)]


def mtime(destination: Destination, path: str) -> float | None:
    try:
        modified = destination.fs.modified(path)
    except (NotImplementedError, OSError, FileNotFoundError):
        return None
    return modified.timestamp() if isinstance(modified, dt.datetime) else None


def committed_files(destination: Destination, table: str, export_date: dt.date) -> list[str]:
    """The part files a manifest-aware reader should read for a partition (its manifest's list)."""
    manifest = destination.read_manifest(table, export_date)
    if manifest is None:
        return []
    final = destination.partition_dir(table, export_date)
    return [posixpath.join(final, name) for name in manifest["files"]]
