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

__all__ = ["Caseless", "lowered", "lower_literals", "match_leads"]


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


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def lowered(text: str) -> str | None:
    """``text.lower()`` (what :class:`Caseless` patterns read) when the twin decides as the
    ``IGNORECASE`` pattern does on ``text``, else None (the caller runs the original pattern).

    That holds when every non-ASCII character of ``text`` is **uncased** (its lower and upper
    case are itself: curly quotes, dashes, ``°``, ``√``, CJK, emoji) and not a decimal digit:
    ``IGNORECASE`` matches such a character only to itself (``re`` treats a character as
    case-sensitive when neither mapping changes it), lowering leaves it and the text's length
    unchanged, and no digit hides from the ASCII digits :func:`match_leads` looks for. A cased
    non-ASCII letter (``é``, the Kelvin sign, which ``IGNORECASE`` matches to ``k``) gives None.
    Real prompts are often ASCII but for a typographic quote or dash; before this check they
    all ran the slower original patterns (``bench/decision.py``: 1.5x the time of an ASCII
    prompt of the same length, most of the decision's p99)."""
    if text.isascii():
        return text.lower()
    others = "".join(_NON_ASCII.findall(text))
    if others.lower() != others or others.upper() != others or any(map(str.isdecimal, others)):
        return None
    return text.lower()


class Caseless:
    """A pattern matched with ``IGNORECASE`` (plus ``flags``), run through its case-sensitive
    lowered twin whenever the caller passes the lowered text (:func:`lowered`, not None).

    ``search(text, low)`` and ``findall(text, low)`` return what ``re.compile(pattern,
    IGNORECASE | flags)`` returns on ``text`` for the match's presence and count (matched
    strings come from ``low`` when it is given, so they are lower-cased). Patterns must not use
    inline flags or backreferences.
    """

    __slots__ = ("pattern", "full", "fast", "leads")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.full = re.compile(pattern, flags | re.IGNORECASE)
        self.fast = re.compile(lower_literals(pattern), flags)
        self.leads = match_leads(self.fast.pattern, flags)

    def _start(self, low: str) -> int:
        """Where the first match in ``low`` can start at the earliest (-1: nowhere): the first
        occurrence of any of :attr:`leads` (0 without leads)."""
        if self.leads is None:
            return 0
        return min((i for lead in self.leads if (i := low.find(lead)) >= 0), default=-1)

    def search(self, text: str, low: str | None) -> bool:
        """True when the pattern matches somewhere in ``text``."""
        if low is None:
            return bool(self.full.search(text))
        start = self._start(low)
        return start >= 0 and bool(self.fast.search(low, start))

    def count(self, text: str, low: str | None) -> int:
        """Number of non-overlapping matches in ``text`` (``len(findall)``)."""
        if low is None:
            return len(self.full.findall(text))
        start = self._start(low)
        return 0 if start < 0 else len(self.fast.findall(low, start))

    def match(self, text: str, low: str | None) -> bool:
        """True when the pattern matches at the start of ``text``."""
        return bool(self.fast.match(low) if low is not None else self.full.match(text))


_DIGITS = frozenset("0123456789")


def match_leads(pattern: str, flags: int = 0) -> tuple[str, ...] | None:
    """Strings one of which every match of ``pattern`` begins with, at the match's start
    (``\\b(why|prove)\\b`` -> ``("prove", "why")``), or None when the pattern does not say
    (an alternative that begins with ``^``, a repeat that may be empty, a wide class). No
    match can start before the first occurrence of a lead, so a search may begin there, or
    be skipped when no lead occurs (the keyword groups mostly find nothing: a few substring
    searches in C instead of the regex at every word); pure. Reads the pattern with Python's
    own parser (``re._parser``); an unknown structure gives None."""
    try:
        from re import _constants as c, _parser as parser

        return _leads(list(parser.parse(pattern, flags).data), c)
    except Exception:  # a parser of another Python: no leads, the plain search
        return None


def _leads(items: list, c) -> tuple[str, ...] | None:
    while items and items[0][0] is c.AT and items[0][1] in (c.AT_BOUNDARY, c.AT_UNI_BOUNDARY):
        items = items[1:]  # a word boundary consumes nothing
    if not items:
        return None
    op, av = items[0]
    if op is c.LITERAL:
        run = []
        for o, a in items:
            if o is not c.LITERAL:
                break
            run.append(chr(a))
        return ("".join(run),)
    if op is c.IN:
        chars: set[str] = set()
        for o, a in av:
            if o is c.LITERAL:
                chars.add(chr(a))
            elif o is c.CATEGORY and a in (c.CATEGORY_DIGIT, c.CATEGORY_UNI_DIGIT):
                chars |= _DIGITS  # the lowered ASCII text has no other digits
            else:
                return None
        return tuple(sorted(chars)) or None
    if op is c.SUBPATTERN and not av[1] and not av[2]:  # a group without inline flags
        return _leads(list(av[3].data), c)
    if op is c.BRANCH:
        out: set[str] = set()
        for alternative in av[1]:
            leads = _leads(list(alternative.data) if hasattr(alternative, "data") else list(alternative), c)
            if leads is None:
                return None
            out.update(leads)
        return tuple(sorted(out))
    if op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] >= 1:
        return _leads(list(av[2].data) if hasattr(av[2], "data") else list(av[2]), c)
    return None
