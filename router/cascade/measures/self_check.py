"""Self-check: ask the local model whether its own answer is correct and read P("yes").

AutoMix (Madaan et al. 2023, "AutoMix: Automatically Mixing Language Models") verifies a
small model's answer by prompting the same model to judge it; here the verdict is read
from the log-probabilities of the first token instead of sampled text, so one call of one
completion token is enough. Pure: this module builds the check's turns and reads its
answer; the call itself is made by the caller (through litellm, like every tier call), and
its tokens are logged as a call with purpose ``self_check``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .base import MeasureInput, Measured

if TYPE_CHECKING:
    from ...policy import EscalationConfig

__all__ = ["CHECK_QUESTION", "SelfCheck", "self_check_messages", "p_yes", "SELF_CHECK_PARAMS"]

CHECK_QUESTION = "Is your answer above correct? Reply with only yes or no."
"""The question appended after the answer. It continues the same conversation, so a local
server that reuses its prompt cache (llama.cpp does) only reads the answer and this line."""

SELF_CHECK_PARAMS: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 10}
"""Call parameters: one greedy token with its 10 most likely alternatives."""

_YES = {"yes", "y", "true", "correct"}
_NO = {"no", "n", "false", "incorrect", "wrong"}


def self_check_messages(messages: Sequence[Mapping[str, Any]], answer: str) -> list[dict[str, Any]]:
    """The check's turns: the request's turns, the answer as the assistant's turn, then
    :data:`CHECK_QUESTION` as a user turn."""
    return [dict(m) for m in messages] + [
        {"role": "assistant", "content": answer},
        {"role": "user", "content": CHECK_QUESTION},
    ]


def p_yes(top: Sequence[tuple[str, float]] | None) -> float | None:
    """P("yes") / (P("yes") + P("no")) from the first token's alternatives.

    Args:
        top: (token, logprob in nats) pairs of the check's first completion token, e.g.
            OpenAI's ``top_logprobs``. Tokens are compared stripped and lower-cased, so
            "Yes", " yes" and "YES" all count as yes.
    Returns:
        The normalised probability in [0, 1], or None when neither yes nor no is among the
        alternatives (the model answered something else).
    """
    yes = no = 0.0
    for token, logprob in top or ():
        word = token.strip().lower().strip(".,!:")
        if word in _YES:
            yes += math.exp(logprob)
        elif word in _NO:
            no += math.exp(logprob)
    if yes + no <= 0.0:
        return None
    return yes / (yes + no)


class SelfCheck:
    """The ``self_check`` measure: P("yes") of the local model judging its own answer
    (one call with purpose ``self_check``)."""

    signal = "self_check"

    def wanted(self, escalation: "EscalationConfig") -> bool:
        return bool(escalation.self_check or escalation.needs("self_check"))

    async def measure(self, given: MeasureInput) -> Measured:
        check = await given.check_call("self_check", self_check_messages(given.messages(), given.text),
                                       dict(SELF_CHECK_PARAMS))
        if check is None:
            return Measured()
        p = p_yes(check.top_logprobs[0] if check.top_logprobs else None)
        if p is None:
            return Measured(note="self-check gave neither yes nor no")
        return Measured(p, f"self-check {p:.2f}")
