"""How a flow reports: Markdown-safe text, counts per status, and ending Failed with the report in hand."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from postdicom.errors import PostDicomError


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


ERROR_TEXT_CHARS = 300
"""Longest error text a report carries (a server may explain itself at length)."""
CUT_MARK = " [...] "
"""Where :func:`error_text` left out the middle of a message."""


def error_text(error: BaseException) -> str:
    """Class, request and message of an error, at most :data:`ERROR_TEXT_CHARS` characters.

    What names the failure comes first: the error's class and, for the
    client's errors, the request that failed (``POST https://.../createsharelink``),
    so a long server explanation cannot push the endpoint out of the text.
    A message still too long loses its middle (marked :data:`CUT_MARK`): its
    start says what failed, its end is often the server's last word. Nothing
    is added to what the error holds, and the client's errors hold no query
    values or patient data (masked when the error is made).
    """
    message = str(error).strip()
    request = error.request_line if isinstance(error, PostDicomError) else None
    if request and message.endswith(" | " + request):
        message = message[: -len(request) - 3]
    text = f"{type(error).__name__}{f' on {request}' if request else ''}: {message}".strip().rstrip(":")
    if len(text) <= ERROR_TEXT_CHARS:
        return text
    kept = ERROR_TEXT_CHARS - len(CUT_MARK)
    head = kept * 2 // 3
    return text[:head] + CUT_MARK + text[-(kept - head):]


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
