"""Parsing JSON a server sent, where nesting depth is a hostile server's choice.

``json.loads`` raises :class:`RecursionError`, not :class:`ValueError`, on an
answer nested a few thousand levels deep (``[[[[…``, a few kilobytes): every
reader that turns a ``ValueError`` into "not JSON" would let it through as a
bare crash. :func:`loads` makes it a ``ValueError`` like any other JSON that
cannot be read.
"""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``, with nesting too deep to parse raised as :class:`ValueError`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None
