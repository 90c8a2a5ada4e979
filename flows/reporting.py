"""How a flow reports: Markdown-safe text, counts per status, and ending Failed with the report in hand."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


class FlowRunFailed(Exception):
    """Raised at the end of a flow that did all it could but left some items not done.

    Carries the flow's full report in ``report``, so a caller who catches it
    (or reads ``state.result(raise_on_failure=False)``) still has every row;
    Prefect marks the run Failed with this exception as its result. The
    message holds counts only, never a value from the input.
    """

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.report))


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|<>])")


def md(text: Any) -> str:
    """``text`` safe to drop into a Markdown table cell or paragraph."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def count_by(values: Iterable[str], known: Iterable[str]) -> dict[str, int]:
    """Occurrences of each value, with every ``known`` value present (zero when absent)."""
    counts = dict.fromkeys(known, 0)
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
