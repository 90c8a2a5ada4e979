"""Write ``docs/endpoints.md`` from the endpoint table, so the docs cannot drift from the code.

Run from the repository root after changing a row of ``postdicom/endpoint_table.py``::

    python scripts/write_endpoints_doc.py

``tests/test_docs_endpoints.py`` fails while the committed file differs from
what this script writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postdicom import wire
from postdicom.endpoint_row import Endpoint
from postdicom.endpoint_table import ENDPOINTS

DOC = Path(__file__).resolve().parents[1] / "docs" / "endpoints.md"
"""Where the page lives."""

REGENERATE_DOCS = "python scripts/write_endpoints_doc.py"
"""The command that rewrites ``docs/endpoints.md`` (shown in the file and by the test that checks it)."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def endpoints_markdown(rows: Sequence[Endpoint[Any]] = ENDPOINTS) -> str:
    """``docs/endpoints.md``: the table in Markdown."""
    out = [
        "# Custom endpoints",
        "",
        f"<!-- Generated from postdicom/endpoint_table.py by: {REGENERATE_DOCS}"
        " -- do not edit by hand (a test checks it is up to date). -->",
        "",
        "Every call is `GET {WebAddress}{path}` with an empty body and the parameters as one JSON",
        "header whose values are all strings (see `postdicom/wire.py`). Each row is a method of",
        "`PostDicomClient` and a Prefect task in `tasks` with the same name (the task takes the",
        "`credentials` block first). Prefect retries the tasks of reads and idempotent writes on",
        "transient errors (a retried task looks first where the row has a lookup); creates are",
        "retried only inside the client call, where it is known what may have reached the server.",
        "Tasks of reads are cached (`POSTDICOM_CACHE_MINUTES`) until the process sends a write;",
        "mutations never are. The safe",
        f"header size is {wire.DEFAULT_MAX_HEADER_BYTES} bytes unless `{wire.MAX_HEADER_ENV}` says otherwise.",
        "",
        "| function | method / task | request | answer | retry safety | header too large |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        out.append(
            f"| {row.vendor_name} | `{row.python_name}` | `GET {row.path}`, header `{row.header}`"
            f" | `{row.answer.__name__}` | {_cell(row.retry_doc)} | {_cell(row.too_large_doc)} |"
        )
    for row in rows:
        out += [
            "",
            f"## {row.vendor_name}",
            "",
            row.summary,
            "",
            "| parameter | wire key | type | required | accepts |",
            "|---|---|---|---|---|",
        ]
        by_name = {p.name: p for p in row.params}
        for sp in row.signature_parameters():
            p = by_name[sp.name]
            need = "yes (may be empty)" if p.empty_ok else ("yes" if p.required else "no")
            accepts = f"{p.doc} Accepts {p.wire.accepts}." if p.doc else f"Accepts {p.wire.accepts}."
            out.append(f"| `{p.name}` | `{p.key}` | {p.wire.name} | {need} | {_cell(accepts)} |")
    return "\n".join(out) + "\n"


def main() -> None:
    """Rewrite the page."""
    DOC.write_text(endpoints_markdown(), encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
