"""Case-insensitive patterns that run case-sensitively on lower-cased ASCII text: same matches, less work.

Python's ``re`` with ``IGNORECASE`` compares every character through its lower-case mapping
and cannot skip an alternative on its first letter, so a long alternation of keywords
(``\\b(why|prove|step[- ]by[- ]step|...)\\b``) is tried in full at each word boundary. On an
ASCII text the same pattern with its literal letters lower-cased, compiled without
``IGNORECASE`` and run on ``text.lower()``, decides every character the same way (for an ASCII
character ``c`` and a literal or set ``x``, ``IGNORECASE`` matches when ``lower(c)`` matches
``lower(x)``; the extra Unicode case folds, such as the Kelvin sign for ``k``, are non-ASCII),
so it finds the same matches at the same positions, several times faster (``bench/decision.py``
profile, issue 17). A text with any non-ASCII character runs the original pattern.

Escapes keep their case when the pattern is lowered (``\\S`` is not ``\\s``).
"""

from __future__ import annotations

import re

__all__ = ["Caseless", "lowered", "lower_literals"]


def lower_literals(pattern: str) -> str:
    """``pattern`` with its letters lower-cased except the one after each backslash (``\\S``,
    ``\\W``, ``\\B``, ``\\D`` keep their meaning); pure."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i:i + 2])
            i += 2
            continue
        out.append(ch.lower())
        i += 1
    return "".join(out)


def lowered(text: str) -> str | None:
    """``text.lower()`` when ``text`` is ASCII (what :class:`Caseless` patterns read), else None."""
    return text.lower() if text.isascii() else None


class Caseless:
    """A pattern matched with ``IGNORECASE`` (plus ``flags``), run through its case-sensitive
    lowered twin whenever the caller passes the lowered text (:func:`lowered`, not None).

    ``search(text, low)`` and ``findall(text, low)`` return what ``re.compile(pattern,
    IGNORECASE | flags)`` returns on ``text`` for the match's presence and count (matched
    strings come from ``low`` when it is given, so they are lower-cased). Patterns must not use
    inline flags or backreferences.
    """

    __slots__ = ("pattern", "full", "fast")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.full = re.compile(pattern, flags | re.IGNORECASE)
        self.fast = re.compile(lower_literals(pattern), flags)

    def search(self, text: str, low: str | None) -> bool:
        """True when the pattern matches somewhere in ``text``."""
        return bool(self.fast.search(low) if low is not None else self.full.search(text))

    def count(self, text: str, low: str | None) -> int:
        """Number of non-overlapping matches in ``text`` (``len(findall)``)."""
        return len(self.fast.findall(low) if low is not None else self.full.findall(text))

    def match(self, text: str, low: str | None) -> bool:
        """True when the pattern matches at the start of ``text``."""
        return bool(self.fast.match(low) if low is not None else self.full.match(text))
