"""How a flow reports: Markdown-safe text, counts per status, and ending Failed with the report in hand."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
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


def error_text(error: BaseException) -> str:
    """Class and message of an error, short (the client's messages hold no query values or patient data)."""
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    return text if len(text) <= 300 else text[:297] + "..."


def count_by(values: Iterable[str], known: Iterable[str]) -> dict[str, int]:
    """Occurrences of each value, with every ``known`` value present (zero when absent)."""
    counts = dict.fromkeys(known, 0)
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def run_name_or(fallback: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    """Make a ``flow_run_name`` function total: any error gives ``fallback`` instead.

    Prefect calls the run-name function before the run starts, outside the
    flow's error handling: one that raises (a bad date, an unknown time zone)
    leaves the run Pending for ever. With this the run starts under
    ``fallback``, the flow's own checks raise the clear error, and the run
    ends Failed with it.
    """

    def decorate(name: Callable[[], str]) -> Callable[[], str]:
        @functools.wraps(name)
        def total() -> str:
            try:
                return name()
            except Exception:  # noqa: BLE001 - the flow body reports the same problem clearly
                return fallback

        return total

    return decorate
