"""Bounded input: which characters of a conversation the classifier reads.

Pure: strings in, strings out. The routing decision reads the last user turn and up to
``context_turns`` turns before it; each turn is cut on its own to at most ``max_chars``
characters, the first ``head_chars`` of it and the rest from its end (a pasted document
between a question's opening and its closing ask loses its middle). A cut falls on
whitespace where one is near, so no word is split into a stray word piece, and the two
kept parts are joined by a line break. Because every turn is cut by itself, a turn's
bounded text does not depend on the turns around it: its embedding partial result can be
cached across the requests of one conversation (:mod:`router.scoring.static_embedder`).

The policy's defaults (the last user turn's first 187 and last 563 characters; the user turn
before it, its last 500 characters, only when the last is shorter than 200 characters; no
system prompt, no answer) were chosen by ``bench/bounded_input.py`` (README, "Bounded
input"): long and multi-turn variants of the shared data's prompts, scored bounded and
unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["bound_turn", "bound_turns", "SNAP_CHARS"]

SNAP_CHARS = 24
"""How far (characters) a cut moves, at most, to land on whitespace."""


def bound_turn(text: str, max_chars: int, head_chars: int = 0) -> str:
    """``text`` when it has at most ``max_chars`` characters; else its first ``head_chars``
    and last ``max_chars - head_chars`` characters joined by ``"\\n"`` (each cut moved up to
    :data:`SNAP_CHARS` characters inwards to a whitespace; the result has at most
    ``max_chars + 1`` characters).

    Raises:
        ValueError: ``max_chars`` < 1 or ``head_chars`` outside [0, ``max_chars``].
    """
    if max_chars < 1 or not 0 <= head_chars <= max_chars:
        raise ValueError(f"need 1 <= max_chars and 0 <= head_chars <= max_chars, got {max_chars}, {head_chars}")
    if len(text) <= max_chars:
        return text
    tail_chars = max_chars - head_chars
    head = text[:head_chars]
    if head and not text[head_chars].isspace():  # the cut splits a word: end at the whitespace before it
        start = max(0, head_chars - SNAP_CHARS)
        cut = max(head.rfind(" ", start), head.rfind("\n", start))
        head = head[:cut] if cut > 0 else head
    start = len(text) - tail_chars
    tail = text[start:] if tail_chars else ""
    if tail and not text[start - 1].isspace():  # begin after the next whitespace
        cuts = [i for i in (tail.find(" ", 0, SNAP_CHARS), tail.find("\n", 0, SNAP_CHARS)) if i >= 0]
        tail = tail[min(cuts) + 1:] if cuts and min(cuts) + 1 < len(tail) else tail
    if head.strip() and tail.strip():
        return f"{head.rstrip()}\n{tail.lstrip()}"
    return (head if head.strip() else tail).strip()


def bound_turns(turns: Sequence[str], context_turns: int, max_chars: int, head_chars: int = 0,
                context_chars: int | None = None, context_head_chars: int = 0) -> list[str]:
    """The last turn and up to ``context_turns`` turns before it (the empty ones left out),
    oldest first: the last cut by :func:`bound_turn` to ``max_chars`` (``head_chars`` from
    its start), each earlier one to ``context_chars`` (None: ``max_chars``;
    ``context_head_chars`` from its start).

    Args:
        turns: the texts of the conversation's turns up to and including the last user turn.

    Raises:
        ValueError: as :func:`bound_turn`; ``context_turns`` < 0.
    """
    if context_turns < 0:
        raise ValueError("context_turns must be >= 0")
    if not turns:
        return []
    earlier = turns[max(0, len(turns) - 1 - context_turns): -1]
    chars = max_chars if context_chars is None else context_chars
    out = [bound_turn(t, chars, min(context_head_chars, chars)) for t in earlier if t]
    return out + ([bound_turn(turns[-1], max_chars, head_chars)] if turns[-1] else [])
