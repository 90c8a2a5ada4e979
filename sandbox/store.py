"""Lasting storage: a SQLite index plus the DICOM files on disk under the data directory.

Why this shape: a restart must keep everything, several STOW requests may be
in flight at once, and a failed request must leave nothing half-written. So:

- SQLite in WAL mode (readers never wait for the writer), one connection per
  thread, foreign keys with ``ON DELETE CASCADE`` so deleting an order removes
  its series, instances, folder memberships, assignments and share entries;
- one process-wide write lock and one transaction per request
  (:meth:`Store.write`), committed only when the whole request succeeded;
- files are written to ``tmp/`` first and renamed into ``files/`` inside the
  write transaction; when the transaction fails the renamed files are removed
  again (:meth:`WriteTransaction.place_file`), and files of deleted rows are
  unlinked only after the commit (:meth:`WriteTransaction.unlink_after_commit`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    uuid TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE COLLATE NOCASE, name TEXT NOT NULL,
    password_salt BLOB NOT NULL, password_sha256 BLOB NOT NULL, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS institutions (
    uuid TEXT PRIMARY KEY, account_uuid TEXT NOT NULL REFERENCES accounts(uuid),
    name TEXT NOT NULL, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    uuid TEXT PRIMARY KEY, institution_uuid TEXT NOT NULL REFERENCES institutions(uuid),
    name TEXT NOT NULL, email TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS user_groups (
    uuid TEXT PRIMARY KEY, institution_uuid TEXT NOT NULL REFERENCES institutions(uuid),
    name TEXT NOT NULL, members_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS equipment (
    uuid TEXT PRIMARY KEY, institution_uuid TEXT NOT NULL REFERENCES institutions(uuid),
    name TEXT NOT NULL, modality TEXT NOT NULL, ae_title TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    account_uuid TEXT NOT NULL REFERENCES accounts(uuid),
    institution_uuid TEXT NOT NULL REFERENCES institutions(uuid),
    status TEXT NOT NULL,
    patient_name TEXT NOT NULL DEFAULT '', patient_id TEXT NOT NULL DEFAULT '',
    other_patient_id TEXT NOT NULL DEFAULT '', patient_sex TEXT NOT NULL DEFAULT '',
    patient_birthdate TEXT, modality TEXT NOT NULL DEFAULT '',
    study_instance_uid TEXT, study_date TEXT, study_time TEXT,
    study_description TEXT NOT NULL DEFAULT '', accession_number TEXT NOT NULL DEFAULT '',
    patient_complaints TEXT NOT NULL DEFAULT '', order_scheduled_datetime TEXT,
    requested_procedure_id TEXT NOT NULL DEFAULT '',
    requested_procedure_description TEXT NOT NULL DEFAULT '',
    requesting_physician TEXT NOT NULL DEFAULT '', referring_physicians_name TEXT NOT NULL DEFAULT '',
    scheduled_equipment_uuid TEXT, assigned_user_uuid TEXT, assigned_user_group_uuid TEXT,
    created_datetime TEXT NOT NULL,
    study_attrs TEXT,
    UNIQUE (account_uuid, study_instance_uid));
CREATE INDEX IF NOT EXISTS orders_by_accession ON orders (account_uuid, accession_number, patient_id);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    order_uuid TEXT NOT NULL REFERENCES orders(uuid) ON DELETE CASCADE,
    account_uuid TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL, modality TEXT NOT NULL DEFAULT '',
    series_number INTEGER, series_description TEXT NOT NULL DEFAULT '',
    attrs TEXT NOT NULL,
    UNIQUE (order_uuid, series_instance_uid));
CREATE INDEX IF NOT EXISTS series_by_uid ON series (account_uuid, series_instance_uid);
CREATE TABLE IF NOT EXISTS instances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_uuid TEXT NOT NULL,
    order_uuid TEXT NOT NULL REFERENCES orders(uuid) ON DELETE CASCADE,
    series_uuid TEXT NOT NULL REFERENCES series(uuid) ON DELETE CASCADE,
    study_instance_uid TEXT NOT NULL, series_instance_uid TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL, sop_class_uid TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL, instance_number INTEGER,
    path TEXT NOT NULL, size INTEGER NOT NULL, attrs TEXT NOT NULL,
    UNIQUE (account_uuid, sop_instance_uid));
CREATE INDEX IF NOT EXISTS instances_by_study ON instances (account_uuid, study_instance_uid);
CREATE INDEX IF NOT EXISTS instances_by_series ON instances (series_uuid);
CREATE INDEX IF NOT EXISTS instances_by_series_uid ON instances (account_uuid, series_instance_uid);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    account_uuid TEXT NOT NULL REFERENCES accounts(uuid),
    name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    parent_uuid TEXT REFERENCES folders(uuid) ON DELETE CASCADE,
    created_datetime TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folder_orders (
    folder_uuid TEXT NOT NULL REFERENCES folders(uuid) ON DELETE CASCADE,
    order_uuid TEXT NOT NULL REFERENCES orders(uuid) ON DELETE CASCADE,
    added_datetime TEXT NOT NULL,
    PRIMARY KEY (folder_uuid, order_uuid));
CREATE TABLE IF NOT EXISTS assignments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_uuid TEXT NOT NULL REFERENCES orders(uuid) ON DELETE CASCADE,
    kind TEXT NOT NULL, target_uuid TEXT NOT NULL, previous_uuid TEXT,
    assigned_datetime TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shares (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    account_uuid TEXT NOT NULL REFERENCES accounts(uuid),
    token_sha256 TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL, folder_uuid TEXT REFERENCES folders(uuid) ON DELETE CASCADE,
    title TEXT, description TEXT, expire_date TEXT,
    password_hash TEXT, downloadable INTEGER NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0,
    created_datetime TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS share_orders (
    share_uuid TEXT NOT NULL REFERENCES shares(uuid) ON DELETE CASCADE,
    order_uuid TEXT NOT NULL REFERENCES orders(uuid) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    PRIMARY KEY (share_uuid, order_uuid));
"""


def now_text() -> str:
    """Creation stamps in the answers' ``YYYY-MM-DD HH:MM`` form (UTC)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def new_uuid() -> str:
    return str(uuid.uuid4())


class WriteTransaction:
    """An open write transaction plus the file moves that must follow its fate."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._placed: list[Path] = []
        self._to_unlink: list[Path] = []

    def place_file(self, temp: Path, final: Path) -> None:
        """Move a fully written temp file into place; undone if the transaction fails."""
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        self._placed.append(final)

    def unlink_after_commit(self, path: Path) -> None:
        """Remove ``path`` once the rows that pointed at it are committed as deleted."""
        self._to_unlink.append(path)

    def _rolled_back(self) -> None:
        for path in self._placed:
            path.unlink(missing_ok=True)

    def _committed(self) -> None:
        for path in self._to_unlink:
            path.unlink(missing_ok=True)


class Store:
    """The data directory: ``index.sqlite3``, ``files/`` and ``tmp/``."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir).resolve()
        self.files_dir = self.data_dir / "files"
        self.tmp_dir = self.data_dir / "tmp"
        self.db_path = self.data_dir / "index.sqlite3"
        for folder in (self.data_dir, self.files_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._clean_tmp()
        with self._write_lock:
            conn = self.connection()
            conn.executescript(SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(32),))
            conn.commit()
        self.secret = bytes.fromhex(self.meta("secret"))

    def _clean_tmp(self) -> None:
        """Temp files left by a crash belong to requests that never committed."""
        for leftover in self.tmp_dir.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections must not be shared across threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def meta(self, key: str) -> str:
        row = self.connection().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"]

    @contextmanager
    def write(self) -> Iterator[WriteTransaction]:
        """One serialised write transaction; committed only if the block returns normally."""
        with self._write_lock:
            conn = self.connection()
            conn.execute("BEGIN IMMEDIATE")
            tx = WriteTransaction(conn)
            try:
                yield tx
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                tx._rolled_back()
                raise
            tx._committed()

    def read(self) -> sqlite3.Connection:
        return self.connection()

    def temp_path(self) -> Path:
        return self.tmp_dir / f"{secrets.token_hex(12)}.part"

    def instance_path(self, account_uuid: str, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Where an instance lives; UIDs are digits and dots only (checked at STOW)."""
        return self.files_dir / account_uuid / study_uid / series_uid / f"{sop_uid}.dcm"

    def load_seed(self, seed: dict[str, Any]) -> None:
        """Insert or update the seed's accounts, institutions, users, groups and equipment.

        Orders, folders and shares are never touched, so a restart (even with an
        edited seed) keeps the stored data.
        """
        with self.write() as tx:
            for a_pos, account in enumerate(seed["Accounts"]):
                salt = secrets.token_bytes(16)
                digest = password_digest(salt, account["Password"])
                tx.conn.execute(
                    "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(uuid) DO UPDATE SET "
                    "email = excluded.email, name = excluded.name, password_salt = excluded.password_salt, "
                    "password_sha256 = excluded.password_sha256, position = excluded.position",
                    (account["AccountUuid"], account["Email"], account.get("Name", account["Email"]),
                     salt, digest, a_pos),
                )
                for i_pos, inst in enumerate(account["Institutions"]):
                    tx.conn.execute(
                        "INSERT OR REPLACE INTO institutions VALUES (?, ?, ?, ?)",
                        (inst["InstitutionUuid"], account["AccountUuid"], inst["Name"], i_pos),
                    )
                    for user in inst.get("Users", []):
                        tx.conn.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?)",
                                        (user["UserUuid"], inst["InstitutionUuid"], user["Name"],
                                         user.get("Email", "")))
                    for group in inst.get("UserGroups", []):
                        tx.conn.execute("INSERT OR REPLACE INTO user_groups VALUES (?, ?, ?, ?)",
                                        (group["UserGroupUuid"], inst["InstitutionUuid"], group["Name"],
                                         json.dumps(group.get("MemberUserUuidList", []))))
                    for item in inst.get("Equipment", []):
                        tx.conn.execute("INSERT OR REPLACE INTO equipment VALUES (?, ?, ?, ?, ?)",
                                        (item["EquipmentUuid"], inst["InstitutionUuid"], item["Name"],
                                         item.get("Modality", ""), item.get("AeTitle", "")))

    def authenticate(self, email: str, password: str) -> str | None:
        """The account UUID when ``email``/``password`` are right, else ``None`` (constant-time compare)."""
        row = self.read().execute(
            "SELECT uuid, password_salt, password_sha256 FROM accounts WHERE email = ?", (email,)
        ).fetchone()
        if row is None:
            hmac.compare_digest(password_digest(b"\0" * 16, password), b"\0" * 32)
            return None
        if hmac.compare_digest(password_digest(row["password_salt"], password), row["password_sha256"]):
            return row["uuid"]
        return None


def password_digest(salt: bytes, password: str) -> bytes:
    """Account passwords come from the seed in clear; keep only a salted digest in the index.

    A fast hash is enough here (the seed file holds the clear text anyway) and
    keeps Basic auth cheap on every request; share passwords, chosen by users,
    get a slow KDF instead (see ``sandbox.shares``).
    """
    return hashlib.sha256(salt + password.encode("utf-8")).digest()
