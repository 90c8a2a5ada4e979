"""The shared child-process helper: secrets stay out of children's environments, ports, start and stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deployments import processes
from deployments.demo_servers import DemoPaths, sandbox_account, start_sandbox

SECRET = "h5-share-secret-Ünïcode"


def environ_of(pid: int) -> dict[str, str]:
    """What the kernel says a running process's environment is (``/proc/PID/environ``)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {name.decode(): value.decode(errors="replace") for name, value in pairs}


SLEEPER = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"]
"""A child that says when it runs: /proc/PID/environ read before its exec would show the parent's, or nothing."""


def sleeper(tmp_path: Path, **kwargs) -> subprocess.Popen[bytes]:
    log = tmp_path / "child.log"
    child = processes.start_process(SLEEPER, log=log, **kwargs)
    processes.wait_until(lambda: "ready" in log.read_text(), child, what="the sleeper", log=log, timeout=30)
    return child


@pytest.mark.parametrize(
    "name",
    ["POSTDICOM_SHARE_PASSWORD", "POSTDICOM_PASSWORD", "BENCH_PASSWORD", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN",
     "OPENAI_API_KEY", "MY_DB_PASSWD", "GOOGLE_APPLICATION_CREDENTIALS"],
)
def test_secret_variables_are_recognised(name: str) -> None:
    assert processes.is_secret_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "PREFECT_HOME", "SANDBOX_SHARE_MAX_ATTEMPTS", "KEYBOARD", "PYTHONPATH"])
def test_ordinary_variables_are_kept(name: str) -> None:
    assert not processes.is_secret_name(name)


def test_prefect_settings_are_kept_for_a_prefect_server_only() -> None:
    assert processes.is_secret_name("PREFECT_API_KEY")
    assert not processes.is_secret_name("PREFECT_API_KEY", keep_prefixes=("PREFECT_",))
    assert not processes.is_secret_name("PREFECT_SERVER_ENCRYPTION_KEY", keep_prefixes=("PREFECT_",))
    assert processes.is_secret_name("POSTDICOM_SHARE_PASSWORD", keep_prefixes=("PREFECT_",))


def test_a_started_child_has_no_secret_in_its_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read from /proc/PID/environ of the running child, as an attacker on the machine would."""
    monkeypatch.setenv("POSTDICOM_SHARE_PASSWORD", SECRET)
    monkeypatch.setenv("SOME_SERVICE_TOKEN", SECRET)
    monkeypatch.setenv("H5_ORDINARY", "kept")
    child = sleeper(tmp_path, env={"GIVEN_ON_PURPOSE": "yes", "H5_ORDINARY": None})
    try:
        env = environ_of(child.pid)
    finally:
        processes.stop_process(child)
    assert "POSTDICOM_SHARE_PASSWORD" not in env
    assert "SOME_SERVICE_TOKEN" not in env
    assert SECRET not in "".join(env.values())
    assert env["GIVEN_ON_PURPOSE"] == "yes"
    assert "H5_ORDINARY" not in env
    assert env["PATH"] == os.environ["PATH"]
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_secrets_withheld_covers_children_that_inherit_os_environ(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect's ephemeral API server is started with os.environ: while withheld, it cannot see the secret."""
    monkeypatch.setenv("POSTDICOM_SHARE_PASSWORD", SECRET)
    monkeypatch.setenv("PREFECT_SERVER_ENCRYPTION_KEY", "kept-for-prefect")
    with processes.secrets_withheld() as withheld:
        child = subprocess.Popen(SLEEPER, stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            env = environ_of(child.pid)
        finally:
            processes.stop_process(child)
    assert withheld == {"POSTDICOM_SHARE_PASSWORD": SECRET}
    assert "POSTDICOM_SHARE_PASSWORD" not in env
    assert env["PREFECT_SERVER_ENCRYPTION_KEY"] == "kept-for-prefect"
    assert os.environ["POSTDICOM_SHARE_PASSWORD"] == SECRET, "put back afterwards"


def test_the_demo_sandbox_does_not_inherit_the_share_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTDICOM_SHARE_PASSWORD", SECRET)
    paths = DemoPaths(tmp_path)
    running = start_sandbox(paths, sandbox_account(), processes.free_port())
    assert running.process is not None
    try:
        env = environ_of(running.process.pid)
    finally:
        processes.stop_process(running.process)
    assert "POSTDICOM_SHARE_PASSWORD" not in env
    assert SECRET not in "".join(env.values())


def test_free_port_is_free_until_taken() -> None:
    import socket

    port = processes.free_port()
    assert processes.port_is_free(port)
    with socket.socket() as server:
        server.bind((processes.HOST, port))
        server.listen()
        assert not processes.port_is_free(port)


def test_a_child_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "dies.log"
    child = processes.start_process([sys.executable, "-c", "print('cannot open the data dir'); raise SystemExit(3)"],
                                    log=log)
    with pytest.raises(RuntimeError, match=r"(?s)exited with code 3.*cannot open the data dir"):
        processes.wait_until_answering(child, f"http://127.0.0.1:{processes.free_port()}/", what="the child", log=log,
                                       timeout=30)


def test_a_child_that_never_answers_is_stopped(tmp_path: Path) -> None:
    child = processes.start_process(SLEEPER, log=tmp_path / "child.log")
    with pytest.raises(RuntimeError, match="did not answer within 0.5 s"):
        processes.wait_until_listening(child, processes.free_port(), what="the sleeper", log=tmp_path / "child.log",
                                       timeout=0.5)
    assert child.poll() is not None, "stopped after the time-out"
