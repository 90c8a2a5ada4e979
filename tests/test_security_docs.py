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


def test_with_the_servers_own_key_the_database_file_alone_no_longer_reveals_the_password(tmp_path: Path) -> None:
    """The README's better way: a ``prefect server`` given ``PREFECT_SERVER_ENCRYPTION_KEY`` stores no key of its own,
    the block's row cannot be decrypted with anything in the file, and flows still load the block through the API."""
    import sys

    from cryptography.fernet import Fernet
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks import PostDicomCredentials
    from deployments.processes import free_port, start_process, stop_process, wait_until_answering

    key = Fernet.generate_key().decode()
    home, port, log = tmp_path / "home", free_port(), tmp_path / "server.log"
    env = {"PREFECT_HOME": str(home), "PREFECT_API_URL": None, "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_DATABASE_CONNECTION_URL": None, "PREFECT_SERVER_ENCRYPTION_KEY": key}
    prefect = str(Path(sys.executable).parent / "prefect")
    server = start_process([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], log=log,
                           env=env, keep_prefixes=("PREFECT_",), new_session=True)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        wait_until_answering(server, f"{api_url}/health", what="prefect server", log=log, timeout=240)
        with temporary_settings({PREFECT_API_URL: api_url}):
            PostDicomCredentials(username="db@example.org", password=PASSWORD,
                                 web_address="https://pacs.example.org/dicomweb").save("own-key", overwrite=True)
            loaded = PostDicomCredentials.load("own-key")
        assert loaded.password.get_secret_value() == PASSWORD
    finally:
        stop_process(server)

    with sqlite3.connect(home / "prefect.db") as db:
        keys_in_file = [json.loads(value)["fernet_key"] for (value,) in
                        db.execute("SELECT value FROM configuration WHERE key = 'ENCRYPTION_KEY'")]
        (data,) = db.execute("SELECT data FROM block_document WHERE name = 'own-key'").fetchone()
    token = json.loads(data).encode()
    assert keys_in_file == [], "the server kept no key of its own in the database"
    assert not [f.name for f in home.glob("prefect.db*") if PASSWORD.encode() in f.read_bytes()]
    assert json.loads(Fernet(key.encode()).decrypt(token))["password"] == PASSWORD
