"""The demo waits long enough for Prefect's ephemeral API on a busy machine, unless the user said otherwise."""

from __future__ import annotations

import os

from deployments import demo

VARIABLE = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def test_the_demo_gives_the_ephemeral_api_its_own_startup_wait(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    demo._quiet_prefect_console(verbose=True)
    assert os.environ[VARIABLE] == str(demo.EPHEMERAL_STARTUP_SECONDS)
    assert demo.EPHEMERAL_STARTUP_SECONDS > 20  # Prefect's own default, which a busy first start outlasted


def test_a_startup_wait_set_by_the_user_is_kept(monkeypatch):
    monkeypatch.setenv(VARIABLE, "7")
    demo._quiet_prefect_console(verbose=True)
    assert os.environ[VARIABLE] == "7"
