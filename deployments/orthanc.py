"""A throw-away Orthanc with the DICOMweb plugin, for the tests and the benchmarks.

Debian's build (``orthanc`` + ``orthanc-dicomweb``) is the real third-party
server the client is checked against. Each start gets its own storage under a
folder the caller owns, free ports and Basic authentication, so runs never
share state. The pytest fixture is ``tests/fixtures/orthanc.py``; the
benchmarks call :func:`start_orthanc` themselves.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from deployments.processes import HOST, free_port, start_process, wait_until_answering

ORTHANC_BINARY = os.environ.get("ORTHANC_BINARY", "/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = os.environ.get("ORTHANC_DICOMWEB_PLUGIN", "/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
STARTUP_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class OrthancServer:
    """Where a started Orthanc answers, and its account."""

    web_address: str
    """The DICOMweb root (``.../dicom-web``)."""
    root_url: str
    """Orthanc's own REST root."""
    username: str
    password: str
    log: Path


def missing_binaries() -> list[str]:
    """The Orthanc files that are not installed (empty when Orthanc can start)."""
    return [path for path in (ORTHANC_BINARY, DICOMWEB_PLUGIN) if not Path(path).exists()]


def orthanc_config(workdir: Path, http_port: int, dicom_port: int, user: str, password: str) -> dict[str, Any]:
    """The JSON configuration of a throw-away Orthanc under ``workdir``."""
    return {
        "Name": "postdicom-flows-tests",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {user: password},
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 1,
    }


def start_orthanc(workdir: Path, *, user: str, password: str) -> tuple[subprocess.Popen[bytes], OrthancServer]:
    """Start Orthanc with a fresh config in ``workdir`` and wait until its DICOMweb root answers.

    Raises ``RuntimeError`` with the end of Orthanc's log if it does not come up.
    """
    http_port, dicom_port = free_port(), free_port()
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(orthanc_config(workdir, http_port, dicom_port, user, password)), encoding="utf-8")
    log = workdir / "orthanc.log"
    process = start_process([ORTHANC_BINARY, str(config_path)], log=log, cwd=workdir)
    root = f"http://{HOST}:{http_port}"
    wait_until_answering(process, f"{root}/dicom-web/studies", what="Orthanc", log=log,
                         auth=(user.encode(), password.encode()), timeout=STARTUP_TIMEOUT)
    return process, OrthancServer(f"{root}/dicom-web", root, user, password, log)
