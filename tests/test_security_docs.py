"""The README's security claims, checked against the installed Prefect rather than taken on trust."""

from __future__ import annotations

import inspect
import json
import re
import sqlite3
from pathlib import Path

import prefect.settings
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PASSWORD = "block-password-in-the-db-Ø"


def readme_prefect_names() -> set[str]:
    return set(re.findall(r"\bPREFECT_[A-Z0-9_]+\b", README.read_text(encoding="utf-8")))


def test_every_prefect_setting_the_readme_names_exists() -> None:
    """No invented setting: each name is a Prefect setting, or the encryption key its server reads."""
    from prefect.server.utilities import encryption

    read_by_encryption = set(re.findall(r'"(PREFECT_[A-Z_]+)"', inspect.getsource(encryption)))
    assert "PREFECT_SERVER_ENCRYPTION_KEY" in read_by_encryption
    unknown = sorted(name for name in readme_prefect_names()
                     if not hasattr(prefect.settings, name) and name not in read_by_encryption)
    assert unknown == []


def test_the_readme_documents_the_shared_server_settings() -> None:
    assert {"PREFECT_SERVER_API_HOST", "PREFECT_SERVER_API_PORT", "PREFECT_UI_API_URL", "PREFECT_API_URL",
            "PREFECT_SERVER_ENCRYPTION_KEY", "PREFECT_SERVER_API_AUTH_STRING"} <= readme_prefect_names()


def _database_file() -> Path:
    url = prefect.settings.PREFECT_API_DATABASE_CONNECTION_URL.value() or ""
    if not url.startswith("sqlite"):
        pytest.skip(f"the test harness database is not SQLite ({url.split(':', 1)[0]})")
    return Path(url.split("///", 1)[1])


def test_a_block_password_can_be_decrypted_from_the_database_file_alone(prefect_harness: None) -> None:
    """What the README's "Credentials in Prefect's database" says: the default key sits beside the data."""
    from cryptography.fernet import Fernet

    from blocks import PostDicomCredentials

    PostDicomCredentials(username="db@example.org", password=PASSWORD,
                         web_address="https://pacs.example.org/dicomweb").save("security-docs", overwrite=True)
    with sqlite3.connect(_database_file()) as db:
        (key,) = db.execute("SELECT value FROM configuration WHERE key = 'ENCRYPTION_KEY'").fetchone()
        (data,) = db.execute("SELECT data FROM block_document WHERE name = 'security-docs'").fetchone()
    token = json.loads(data)
    assert "password" not in token and PASSWORD not in token, "stored encrypted"
    fields = json.loads(Fernet(json.loads(key)["fernet_key"].encode()).decrypt(token.encode()))
    assert fields["password"] == PASSWORD
