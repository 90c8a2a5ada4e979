"""Shared test set-up: environment first, then the fixture plugins in tests/fixtures/."""

import os
import tempfile

# Offline and quiet Prefect, set before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="pdf-tests-prefect-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = os.path.join(_PREFECT_HOME, "storage")
os.environ.setdefault("PREFECT_API_URL", "")

pytest_plugins = [
    "tests.fixtures.prefect_harness",
    "tests.fixtures.dicom_files",
    "tests.fixtures.mock_server",
    "tests.fixtures.orthanc",
    "tests.fixtures.sandbox_server",
    "tests.fixtures.server_matrix",
    "tests.fixtures.alt_shapes",
]
