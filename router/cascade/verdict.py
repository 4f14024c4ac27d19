"""Checks stage: signals from a local answer and the escalation verdict.

Pure: ``answer_signals`` and ``should_escalate`` take data and return data. The signals
themselves are computed by :mod:`router.cascade.signals`; the self-check and consistency calls are
made by the pipeline (I/O) and attached to the signals before the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..policy import CombinerConfig, EscalationConfig
from .signals import AnswerSignals, extract, format_error

__all__ = ["Signals", "Verdict", "answer_signals", "should_escalate", "p_correct",
           "format_error", "REPETITION_LOOP"]

Signals = AnswerSignals
"""The checks stage's name for :class:`router.cascade.signals.AnswerSignals`."""

REPETITION_LOOP = 0.5
"""``repetition`` above this (over half the word 4-grams repeat) counts as a loop."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether to escalate, the short reason shown in ``x-router-reason``, and the
    combiner's P(correct) when one was applied."""

    escalate: bool
    reason: str
    p_correct: float | None = None


def answer_signals(text: str, token_logprobs: Sequence[float] | None, finish_reason: str | None,
                   response_format: dict[str, Any] | None = None,
                   top_logprobs: Sequence[Sequence[tuple[str, float]]] | None = None, *,
                   tool_calls: Sequence[dict[str, Any]] | None = None, tool_choice: Any = None) -> AnswerSignals:
    """Compute :class:`AnswerSignals` from an answer and its per-token log-probabilities (nats);
    ``tool_calls`` (the answer's) and ``tool_choice`` (the request's) make a tool call an
    answer and an ignored forced tool choice a ``format_error``."""
    return extract(text, token_logprobs, finish_reason, response_format, top_logprobs,
                   tool_calls=tool_calls, tool_choice=tool_choice)


def p_correct(combiner: CombinerConfig, signals: AnswerSignals, router_score: float | None = None) -> float:
    """The combiner's P(local answer correct) in [0, 1] (formula in :class:`CombinerConfig`).
    ``router_score`` missing counts as 0.5."""
    total = combiner.intercept
    for i, name in enumerate(combiner.signals):
        x = (0.5 if router_score is None else float(router_score)) if name == "router_score" else signals.value(name)
        mean = combiner.means[i] if combiner.means else 0.0
        scale = combiner.scales[i] if combiner.scales else 1.0
        total += combiner.weights[i] * (x - mean) / scale
    if total >= 0:
        return 1.0 / (1.0 + math.exp(-total))
    z = math.exp(total)
    return z / (1.0 + z)


def _hard_failure(signals: AnswerSignals, kinds: Sequence[str]) -> str | None:
    if "empty" in kinds and signals.empty:
        return "empty local answer"
    if "format_error" in kinds and signals.format_error:
        return signals.format_error
    if "refusal" in kinds and signals.refusal:
        return "local answer is a refusal"
    if "repetition" in kinds and signals.repetition > REPETITION_LOOP:
        return f"local answer loops ({signals.repetition:.0%} repeated 4-grams)"
    if "finish_length" in kinds and signals.finish_length:
        return "local answer cut by max_tokens"
    return None


def _measured(signals: AnswerSignals, name: str) -> float | None:
    """Signal ``name``'s value, or None when it was not measured."""
    if name not in ("log_tokens", "format_error") and getattr(signals, name) is None:
        return None
    return signals.value(name)


def should_escalate(signals: AnswerSignals, config: EscalationConfig, router_score: float | None = None) -> Verdict:
    """Decide whether a local answer goes to the cloud tier instead.

    Rules, in order: escalation disabled -> keep; a hard failure listed in
    ``config.escalate_on`` -> escalate; no log-probabilities while a threshold reads them
    (``on_missing_signal``) -> escalate; mean log-probability below
    ``config.min_mean_logprob`` -> escalate; a ``min``/``max`` threshold broken -> escalate;
    the combiner's P(correct) below its ``min_p_correct`` -> escalate; else keep. A signal
    that was not measured (no log-probabilities, no self-check) breaks no threshold.

    Args:
        signals: the answer's signals, self-check/consistency attached when measured.
        config: the request's escalation settings (policy, overlay and rules applied).
        router_score: the pre-routing classifier score, for a combiner that reads it.
    """
    if not config.enabled:
        return Verdict(False, "escalation disabled")
    failure = _hard_failure(signals, config.escalate_on)
    if failure:
        return Verdict(True, failure)
    mean = signals.mean_logprob
    if mean is None and config.escalates_without_logprobs():
        return Verdict(True, "no log-probabilities returned (on_missing_signal: escalate)")
    if mean is not None and mean < config.min_mean_logprob:
        return Verdict(True, f"mean logprob {mean:.2f} < {config.min_mean_logprob:.2f}")
    for name, low in config.min.items():
        value = _measured(signals, name)
        if value is not None and value < low:
            return Verdict(True, f"{name} {value:.2f} < {low:.2f}")
    for name, high in config.max.items():
        value = _measured(signals, name)
        if value is not None and value > high:
            return Verdict(True, f"{name} {value:.2f} > {high:.2f}")
    if config.combiner is not None:
        p = p_correct(config.combiner, signals, router_score)
        cut = config.combiner.min_p_correct
        if p < cut:
            return Verdict(True, f"P(correct) {p:.2f} < {cut:.2f}", p)
        return Verdict(False, f"P(correct) {p:.2f} ok", p)
    if mean is None:
        return Verdict(False, "no log-probabilities")
    return Verdict(False, f"mean logprob {mean:.2f} ok")

