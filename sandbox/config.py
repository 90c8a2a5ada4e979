"""Run-time settings of one sandbox process, with their environment overrides.

Share-security knobs are settings (not constants) so tests can exercise the
lock-out quickly and so the clock can be moved forward to test expiry without
waiting for a day to pass.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_PBKDF2_ROUNDS = 600_000


def default_seed_text() -> str:
    return resources.files("sandbox").joinpath("seed.json").read_text(encoding="utf-8")


def load_seed(path: str | os.PathLike | None) -> dict[str, Any]:
    """The seed (``--seed FILE`` or the packaged default), checked enough to fail early and clearly."""
    text = Path(path).read_text(encoding="utf-8") if path else default_seed_text()
    seed = json.loads(text)
    accounts = seed.get("Accounts")
    if not isinstance(accounts, list) or not accounts:
        raise ValueError("seed: 'Accounts' must be a non-empty list")
    for account in accounts:
        for key in ("AccountUuid", "Email", "Password", "Institutions"):
            if key not in account:
                raise ValueError(f"seed: an account lacks {key!r}")
        if not account["Institutions"]:
            raise ValueError(f"seed: account {account['Email']} has no institution")
        for inst in account["Institutions"]:
            for key in ("InstitutionUuid", "Name"):
                if key not in inst:
                    raise ValueError(f"seed: an institution of {account['Email']} lacks {key!r}")
    return seed


def _env_int(name: str, default: int, minimum: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    number = int(value)
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return number


@dataclass
class Settings:
    data_dir: Path
    seed: dict[str, Any]
    pbkdf2_rounds: int = DEFAULT_PBKDF2_ROUNDS
    share_max_attempts: int = 5
    share_lockout_seconds: int = 900
    share_session_seconds: int = 12 * 3600
    account_workers: int = 8
    """Worker threads one account may hold at once (see ``sandbox.workers``)."""
    control: str = "token"
    """``token`` (POSTs to the control routes need ``control_token``), ``open`` or ``off`` (``sandbox.guard``)."""
    control_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """New at every start, printed in the banner."""
    answer_shapes: str = "documented"
    """``documented`` or ``alternative`` (``sandbox.shapes``); moved by ``POST /_sandbox/answers``."""
    allowed_hosts: frozenset[str] = frozenset()
    """``Host`` names served besides localhost and IP addresses: ``--host`` and ``--allowed-host``."""
    clock_offset: dt.timedelta = field(default_factory=dt.timedelta)
    """Moved by ``POST /_sandbox/clock`` so tests can see a share expire."""

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike, seed: dict[str, Any]) -> Settings:
        return cls(
            data_dir=Path(data_dir),
            seed=seed,
            pbkdf2_rounds=_env_int("SANDBOX_PBKDF2_ROUNDS", DEFAULT_PBKDF2_ROUNDS, 1000),
            share_max_attempts=_env_int("SANDBOX_SHARE_MAX_ATTEMPTS", 5, 1),
            share_lockout_seconds=_env_int("SANDBOX_SHARE_LOCKOUT_SECONDS", 900, 1),
            account_workers=_env_int("SANDBOX_ACCOUNT_WORKERS", 8, 1),
        )

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.clock_offset

    def today(self) -> dt.date:
        return self.now().date()
