"""Type checkers see the code as it is: ``mypy`` passes on postdicom/, tasks/, flows/, blocks/, deployments/
and sandbox/.

The settings are the project's own (``[tool.mypy]`` in pyproject.toml), so a
person running ``python -m mypy`` at the repository root sees the same. The
second test is what an editor shows a user of the client: the real answer
types, and a misspelt or mistyped argument flagged before anything runs
(the methods are written out, so no stub is needed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=280)


@pytest.mark.slow
def test_mypy_passes_on_the_packages_with_the_project_settings():
    result = run_mypy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.slow
def test_a_type_checker_sees_the_client_methods_and_the_tasks(tmp_path):
    script = tmp_path / "use_client.py"
    script.write_text(
        "from blocks import PostDicomCredentials\n"
        "from postdicom import PostDicomClient\n"
        "from tasks import create_folder\n"
        "client = PostDicomClient('http://pacs.example/dicomweb', 'user', 'password')\n"
        "reveal_type(client.create_folder(folder_name='Night'))\n"
        "client.create_folder(folder_nme='Night')\n"
        "client.get_patient_order_list([], modality_list=3)\n"
        "creds = PostDicomCredentials(username='u', password='p', web_address='http://pacs.example/dicomweb')\n"
        "reveal_type(create_folder.fn(creds, 'Night'))\n",
        encoding="utf-8",
    )
    report = (lambda r: r.stdout + r.stderr)(run_mypy("--no-error-summary", str(script)))
    assert 'Revealed type is "postdicom.models.FolderAnswer"' in report, report
    assert report.count('Revealed type is "postdicom.models.FolderAnswer"') == 2, report
    assert 'Unexpected keyword argument "folder_nme" for "create_folder"' in report, report
    assert 'Argument "modality_list" to "get_patient_order_list"' in report, report
    assert "has no attribute" not in report, report
    assert "PostDicomCredentials" not in report, report  # a plain str password is fine, as at run time
