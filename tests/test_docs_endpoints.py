"""The endpoint docs a person reads: ``docs/endpoints.md`` matches the table, and ``help()`` shows real methods."""

from __future__ import annotations

import pydoc
import runpy
from pathlib import Path

import tasks
from postdicom import PostDicomClient, endpoint_table

REPO = Path(__file__).resolve().parents[1]


def test_the_generated_docs_are_up_to_date():
    script = runpy.run_path(str(REPO / "scripts" / "write_endpoints_doc.py"))
    committed = (REPO / "docs" / "endpoints.md").read_text(encoding="utf-8")
    assert committed == script["endpoints_markdown"](), f"regenerate it: {script['REGENERATE_DOCS']}"
    for row in endpoint_table.ENDPOINTS:
        assert f"## {row.vendor_name}" in committed and f"`{row.python_name}`" in committed


def test_help_shows_the_methods_and_tasks_with_their_parameters():
    text = pydoc.render_doc(PostDicomClient.create_share_link, renderer=pydoc.plaintext)
    assert "patient_order_info_list" in text and "Create a web link" in text and "Never sent again" in text
    text = pydoc.render_doc(tasks.get_patient_order_list.fn, renderer=pydoc.plaintext)
    assert text.count("Search patient orders") == 1 and "credentials" in text and "cached" in text
