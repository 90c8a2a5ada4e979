"""What the demo's summary points a person to when the runs went to a Prefect server."""

from __future__ import annotations

from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

from deployments.demo_report import server_runs_page


def test_a_server_s_runs_are_pointed_to_on_its_ui_not_its_api():
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4299/api"}):
        assert server_runs_page() == "http://127.0.0.1:4299/runs"
    with temporary_settings({PREFECT_API_URL: "http://pacs-jobs.example:4200/api",
                             PREFECT_UI_URL: "https://prefect.example/ui/"}):
        assert server_runs_page() == "https://prefect.example/ui/runs"
