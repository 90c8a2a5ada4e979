"""``*``/``?`` wildcard matching in time linear in the text, for QIDO and GetPatientOrderList.

Why not a regular expression: ``a*a*a*a*b`` translated to ``a.*a.*a.*a.*b``
makes Python's backtracking engine try every way of splitting a long name
(polynomial in the name's length, with the pattern's star count as the
exponent), and the ``re`` module holds the GIL while it does, which froze the
whole sandbox for every account. Here:

- a pattern without ``?`` is cut at its stars; the first piece must start the
  text, the last must end it, and each middle piece is found with
  ``str.find`` from where the previous one ended (the leftmost place is
  always the best one), so the text is scanned once;
- a pattern with ``?`` runs as a set of pattern positions kept in one integer
  (a bit-parallel automaton): one step per character of the text, each a few
  integer operations on ``len(pattern)`` bits.
"""

from __future__ import annotations


def wildcard_match(pattern: str, text: str, *, ignore_case: bool = False, single: str | None = "?") -> bool:
    """Whether ``text`` matches ``pattern`` whole (``*`` any run, ``single`` any one character).

    ``single=None`` makes ``?`` an ordinary character (GetPatientOrderList
    knows only ``*``).
    """
    if ignore_case:
        pattern, text = pattern.casefold(), text.casefold()
    if single and single in pattern:
        return _bit_parallel(pattern, text, single)
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return pattern == text
    first, *middle, last = pieces
    if len(first) + len(last) > len(text) or not text.startswith(first) or not text.endswith(last):
        return False
    at, end = len(first), len(text) - len(last)
    for piece in middle:
        if not piece:
            continue
        found = text.find(piece, at, end)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def contains_wildcard(pattern: str, text: str, *, ignore_case: bool = False, single: str | None = "?") -> bool:
    """Whether ``pattern`` matches some part of ``text``: a substring search with wildcards."""
    return wildcard_match(f"*{pattern}*", text, ignore_case=ignore_case, single=single)


def _bit_parallel(pattern: str, text: str, single: str) -> bool:
    """Bit ``s`` of ``state`` is set when ``pattern[:s]`` can match the text read so far."""
    collapsed: list[str] = []
    for char in pattern:
        if not (char == "*" and collapsed and collapsed[-1] == "*"):
            collapsed.append(char)
    stars = any_char = 0
    exact: dict[str, int] = {}
    for position, char in enumerate(collapsed):
        bit = 1 << position
        if char == "*":
            stars |= bit
        elif char == single:
            any_char |= bit
        else:
            exact[char] = exact.get(char, 0) | bit
    state = 1
    state |= (state & stars) << 1
    for char in text:
        advancing = state & (exact.get(char, 0) | any_char)
        state = (state & stars) | (advancing << 1)
        if not state:
            return False
        state |= (state & stars) << 1
    return bool(state >> len(collapsed) & 1)
