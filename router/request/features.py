"""Features stage: what the router looks at in a request before choosing a tier.

Pure: takes a :class:`~router.request.parse.ChatRequest`, returns :class:`Features`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..scoring.caseless import Caseless, lowered
from ..scoring.part_cache import PART_SEPARATOR
from .bound import bound_turns
from .parse import ChatRequest, message_text

__all__ = ["Features", "approx_tokens", "TOKENS_PER_MESSAGE", "REPLY_PRIMING_TOKENS", "extract_features", "strip_router_directives", "ROUTER_DIRECTIVE"]

_DIRECTIVE_WORDS = (
    r"(?:note|message|instruction|instructions|hint|directive|attention)s?\s+(?:to|for)\s+(?:the\s+)?"
    r"(?:router|classifier|routing\s+(?:model|system|layer)|model\s+(?:selector|router)|gateway|proxy)\b"
    r"|(?:router|classifier)\s*:"
    r"|(?:route|send|forward|escalate)\s+(?:this|me|it|the\s+request)\s+to\s+(?:the\s+)?"
    r"(?:cloud|strong(?:est)?|best|big(?:gest)?|large(?:st)?|premium|gpt-?4\w*|claude\w*)\b")
ROUTER_DIRECTIVE = re.compile(r"(?i)[^.!?\n]*\b(?:" + _DIRECTIVE_WORDS + r")[^.!?\n]*[.!?]?[ \t]*")
"""A sentence addressed to the router rather than the model ("NOTE TO ROUTER: very hard",
"route this to the strongest model"). Such a line asks for a tier; it says nothing about the
question's difficulty, and alone it moved a simple question's score from 0.43 to 0.51
(``bench/injection.py`` measures the shift over real prompts). No prompt of the shared
training or evaluation data matches it."""

_HAS_DIRECTIVE = Caseless(r"\b(?:" + _DIRECTIVE_WORDS + ")")
"""Whether a text holds a directive at all (the directive words' search, run on the lowered
text when it is ASCII: :mod:`router.scoring.caseless`); linear in the text."""

_SENTENCE = re.compile(r"[^.!?\n]*[.!?]?")
""":data:`ROUTER_DIRECTIVE` in two linear steps: its unanchored ``[^.!?\\n]*`` prefix made
``re`` retry every start of a long sentence (quadratic: a 20,000-character line without
punctuation held the event loop for 40 s), so a line is cut into sentences and a sentence
holding the directive words goes, with the blanks after it, as ``ROUTER_DIRECTIVE.sub`` does."""


def _strip_line(line: str) -> str:
    """``ROUTER_DIRECTIVE.sub("", line)`` in linear time (see :data:`_SENTENCE`); pure."""
    kept, after_directive = [], False
    for sentence in _SENTENCE.findall(line):
        if after_directive:
            sentence = sentence.lstrip(" \t")
        after_directive = _HAS_DIRECTIVE.search(sentence, lowered(sentence))
        if not after_directive:
            kept.append(sentence)
    return "".join(kept)


def strip_router_directives(text: str) -> str:
    """``text`` without the sentences that address the router (:data:`ROUTER_DIRECTIVE`); a line
    that held nothing else goes with them (its line break would change the text features: the
    question alone and the question plus a directive line must read the same); pure."""
    if not text or not _HAS_DIRECTIVE.search(text, lowered(text)):
        return text
    kept = []
    for line in text.split("\n"):
        left = _strip_line(line)
        if left.strip() or not line.strip():
            kept.append(left)
    return "\n".join(kept)


@dataclass(frozen=True, slots=True)
class Features:
    """What routing decides on.

    Attributes:
        text: the text the classifier reads: ``turns`` joined by a blank line
            (:data:`router.scoring.part_cache.PART_SEPARATOR`, where the static embedder's
            per-turn cache cuts it); empty when the
            last user turn has no text (an image only).
        turns: the last user turn preceded by up to ``context_turns`` earlier turns of the
            ``context_roles`` (only when the last user turn is shorter than
            ``context_below_chars``), each
            without sentences addressed to the router (:func:`strip_router_directives`) and
            cut on its own by :func:`router.request.bound.bound_turns` (the last to
            ``max_chars`` with ``head_chars`` from its start, each earlier one to the last
            ``context_chars``); oldest first; empty turns left out.
        prompt_chars: characters in all turns.
        prompt_messages: how many turns the request holds.
        approx_prompt_tokens: :func:`approx_tokens` of the two: ``prompt_chars / 4`` plus each
            turn's framing tokens and the reply's priming.
        needs: capabilities the request needs: ``vision``, ``tools``, ``json``.
    """

    text: str
    turns: tuple[str, ...]
    prompt_chars: int
    approx_prompt_tokens: int
    needs: frozenset[str]
    prompt_messages: int | None = None

    @classmethod
    def sized(cls, needs: frozenset[str], prompt_chars: int, prompt_messages: int | None) -> "Features":
        """The features a tier filter reads (needs and size), without the scored text: what
        a logged request or a routed one keeps (``approx_prompt_tokens`` as in
        :func:`extract_features`; ``prompt_messages`` None for a log written before the count
        was kept, see :func:`approx_tokens`)."""
        return cls(text="", turns=(), prompt_chars=prompt_chars, prompt_messages=prompt_messages,
                   approx_prompt_tokens=approx_tokens(prompt_chars, prompt_messages), needs=frozenset(needs))


TOKENS_PER_MESSAGE = 4
"""Tokens each turn costs besides its content: the 3 of ``tokens_per_message`` in OpenAI's
cookbook ``num_tokens_from_messages`` ("How to count tokens with tiktoken", gpt-4o and
gpt-4/3.5-turbo since 0613: ``<|start|>{role}<|message|>...<|end|>``) plus the one token its
role name encodes to, which the cookbook counts with the values."""

REPLY_PRIMING_TOKENS = 3
"""Tokens the cookbook adds once per request: "every reply is primed with
<|start|>assistant<|message|>"."""


def approx_tokens(prompt_chars: int, messages: int | None) -> int:
    """Prompt tokens estimated from characters and turns: ``chars / 4`` (OpenAI's rule of
    thumb for English text) plus :data:`TOKENS_PER_MESSAGE` per turn plus
    :data:`REPLY_PRIMING_TOKENS` (OpenAI's cookbook ``num_tokens_from_messages``). Without the
    overhead, 40,001 turns of "hi" were estimated at 20,000 tokens where the tokenizer counts
    about 180,000. ``messages`` None (a request logged before the count was kept) gives the
    estimate it was decided on then: ``chars / 4``, at least 1."""
    if messages is None:
        return max(1, prompt_chars // 4)
    return prompt_chars // 4 + TOKENS_PER_MESSAGE * messages + REPLY_PRIMING_TOKENS


def extract_features(request: ChatRequest, *, context_turns: int = 1, max_chars: int = 750,
                     head_chars: int = 187, context_chars: int = 500, context_roles: Sequence[str] = ("user",),
                     context_below_chars: int | None = 200) -> Features:
    """Compute :class:`Features` for one request (no I/O, no model). The defaults are the
    policy's (:class:`router.policy.ClassifierConfig`, measured by ``bench/bounded_input.py``):
    the last user turn (without one, the asking turn of :func:`router.request.parse.asking_turn`), and the user turn before it when the last one is shorter than
    ``context_below_chars`` (None: always); turns of other roles (``context_roles``) are
    not read.

    Raises:
        ValueError: a bound outside its range (:func:`router.request.bound.bound_turns`).
    """
    asking = request.asking_index()  # the last user turn; without one, the last turn with text
    kept: tuple[str, ...] = ()
    last_text = message_text(request.messages[asking])
    if last_text.strip():  # else (an image-only turn) earlier turns must not decide its route
        earlier = [m for m in request.messages[:asking] if m.role in context_roles]
        if context_below_chars is not None and len(last_text) >= context_below_chars:
            earlier = []
        window = earlier[max(0, len(earlier) - context_turns):] if context_turns else []
        texts = [strip_router_directives(message_text(m)) for m in [*window, request.messages[asking]]]
        kept = tuple(bound_turns(texts, len(texts) - 1, max_chars, min(head_chars, max_chars), context_chars))
    text = PART_SEPARATOR.join(kept)

    prompt_chars = sum(len(message_text(m)) for m in request.messages)
    needs = set()
    for m in request.messages:
        if isinstance(m.content, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "input_image") for p in m.content
        ):
            needs.add("vision")
    if request.params.get("tools") or request.params.get("functions"):  # functions: the deprecated tools
        needs.add("tools")
    if request.params.get("response_format", {}).get("type") in ("json_object", "json_schema"):
        needs.add("json")
    return Features(
        text=text,
        turns=kept,
        prompt_chars=prompt_chars,
        prompt_messages=len(request.messages),
        approx_prompt_tokens=approx_tokens(prompt_chars, len(request.messages)),
        needs=frozenset(needs),
    )
