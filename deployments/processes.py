"""Child server processes (the sandbox, a Prefect server, Orthanc, a proxy): ports, environment, start, wait, stop.

One helper for the demo, the tests and the benchmarks, so that each of them
starts a server the same way: on a port the OS picked, with its output in a
log file, with an environment that carries no secret it does not need, waited
for until it answers, and stopped with SIGTERM (then SIGKILL) at the end.

Secrets and children
--------------------
A child inherits its parent's whole environment unless told otherwise, so a
share password read from ``POSTDICOM_SHARE_PASSWORD`` would sit in
``/proc/PID/environ`` of every server the demo starts. :func:`child_environment`
builds a child's environment without the variables :func:`is_secret_name`
recognises; :func:`secrets_withheld` takes them out of this process's own
environment for a while, for children started by code we do not control
(Prefect's ephemeral API server inherits ``os.environ``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"

SECRET_NAMES = frozenset({"POSTDICOM_SHARE_PASSWORD", "POSTDICOM_PASSWORD", "BENCH_PASSWORD"})
"""Variables this project's own commands read secrets from."""

SECRET_PATTERN = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|(^|_)API_?KEY$|_PRIVATE_KEY$", re.IGNORECASE)
"""What other programs' secret variables are usually called (``AWS_SECRET_ACCESS_KEY``, ``GITHUB_TOKEN``, ...)."""


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists and is ours to signal."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def is_secret_name(name: str, keep_prefixes: Sequence[str] = ()) -> bool:
    """Whether an environment variable of this name holds a secret a child should not get.

    ``keep_prefixes`` names families the child needs whatever they are called
    (a Prefect server needs ``PREFECT_SERVER_ENCRYPTION_KEY`` and its API auth
    string, which ``PREFECT_`` keeps).
    """
    if name.startswith(tuple(keep_prefixes)):
        return False
    return name in SECRET_NAMES or bool(SECRET_PATTERN.search(name))


def child_environment(
    extra: Mapping[str, str | None] | None = None, *, keep_prefixes: Sequence[str] = ()
) -> dict[str, str]:
    """This process's environment without secrets, changed by ``extra``.

    ``extra`` is given on purpose, so its values are always kept; a ``None``
    value removes that variable. Prefect's telemetry is always off: every
    child may import Prefect, and the project runs offline.
    """
    env = {name: value for name, value in os.environ.items() if not is_secret_name(name, keep_prefixes)}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@contextlib.contextmanager
def secrets_withheld(keep_prefixes: Sequence[str] = ("PREFECT_",)) -> Iterator[dict[str, str]]:
    """Take secret variables out of ``os.environ`` for the block, and put them back afterwards.

    For children that other code starts with ``os.environ`` (Prefect's
    ephemeral API server). Read what you need from the environment before
    entering. Yields what was withheld.
    """
    withheld = {name: value for name, value in os.environ.items() if is_secret_name(name, keep_prefixes)}
    for name in withheld:
        del os.environ[name]
    try:
        yield withheld
    finally:
        for name, value in withheld.items():
            os.environ.setdefault(name, value)


def start_process(
    command: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
    keep_prefixes: Sequence[str] = (),
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output appended to ``log`` and an environment from :func:`child_environment`.

    ``env`` changes it (a ``None`` value removes a variable). ``new_session`` keeps Ctrl-C in the
    terminal from reaching the child, for a parent that stops its children
    itself (the demo).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        return subprocess.Popen(
            list(command),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=child_environment(env, keep_prefixes=keep_prefixes),
            start_new_session=new_session,
        )


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a server's log, for the error that says it did not start."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(
    check: Callable[[], bool], process: subprocess.Popen[bytes] | None, *, what: str, log: Path, timeout: float = 60
) -> None:
    """Poll ``check`` until it is true; stop the process and raise ``RuntimeError`` with its log if it dies or never is."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see {log}:\n{log_tail(log)}")
        if check():
            return
        if time.monotonic() > deadline:
            if process is not None:
                stop_process(process)
            raise RuntimeError(f"{what} did not answer within {timeout:g} s; see {log}:\n{log_tail(log)}")
        time.sleep(0.1)


def answers_ok(url: str, *, auth: tuple[str | bytes, str | bytes] | None = None, timeout: float = 2) -> bool:
    """Whether ``url`` answers 200 now."""
    import httpx

    try:
        return httpx.get(url, auth=auth, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_answering(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    what: str,
    log: Path,
    auth: tuple[str | bytes, str | bytes] | None = None,
    timeout: float = 60,
) -> None:
    """Poll ``url`` until it answers 200 (see :func:`wait_until`)."""
    wait_until(lambda: answers_ok(url, auth=auth), process, what=what, log=log, timeout=timeout)


def wait_until_listening(process: subprocess.Popen[bytes], port: int, *, what: str, log: Path, timeout: float = 20) -> None:
    """Wait until something accepts TCP connections on ``port`` (for servers that are not HTTP)."""

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return True
        return False

    wait_until(listening, process, what=what, log=log, timeout=timeout)


def stop_process(process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Ask a child to stop (``sig``), and kill it if it is still there after ``timeout`` s.

    SIGTERM by default rather than SIGINT: uvicorn shuts down just as
    gracefully on either (finishes requests, closes the store), but re-raises
    the signal it caught, and a re-raised SIGINT ends in a KeyboardInterrupt
    traceback in the child's log.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
