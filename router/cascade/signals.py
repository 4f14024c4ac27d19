"""Confidence signals of one local answer, as numbers a threshold or a combiner can read.

Pure: :func:`extract` takes the answer text, its per-token log-probabilities (with the top-2
alternatives when the tier returned them), the finish reason and the request's
``response_format``; it returns :class:`AnswerSignals`. The self-check probability and the
consistency of two samples are measured by other calls (see :mod:`router.cascade.measures.self_check`) and
attached with :meth:`AnswerSignals.with_extra`.

Every numeric signal is oriented so that *higher means more likely correct* except the
flags (``finish_length``, ``repetition``, ``refusal``, ``empty``, ``format_error``), which are
1.0 when the bad thing happened. :data:`SIGNAL_NAMES` lists the vector a combiner reads.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

__all__ = ["AnswerSignals", "SIGNAL_NAMES", "HARD_FAILURES", "HardFailure", "NEUTRAL", "extract", "repetition_share", "is_refusal", "format_error",
           "normalize_answer", "agreement",
           "quantile"]

SIGNAL_NAMES: tuple[str, ...] = (
    "mean_logprob", "min_logprob", "p10_logprob", "p25_logprob", "p50_logprob",
    "first_logprob", "mean_margin", "min_margin", "log_tokens", "finish_length", "repetition",
    "refusal", "empty", "format_error", "self_check", "consistency", "verifier",
)
"""Names a combiner or a threshold may use, in the order of :meth:`AnswerSignals.vector`."""

LOGPROB_SIGNALS: frozenset[str] = frozenset({"mean_logprob", "min_logprob", "p10_logprob", "p25_logprob",
                                             "p50_logprob", "first_logprob", "mean_margin", "min_margin"})
"""The signals computed from the answer's token log-probabilities (unmeasured without them)."""

HardFailure = Literal["empty", "format_error", "refusal", "repetition", "finish_length"]
"""A signal that can fail an answer outright (``escalation.escalate_on``; the policy's type)."""

HARD_FAILURES: tuple[str, ...] = get_args(HardFailure)
"""Every :data:`HardFailure`, in check order."""

# Neutral values for a signal that could not be measured (no log-probabilities returned, no
# self-check made): roughly the middle of what SmolLM2-135M's answers show, so a missing
# signal neither rescues nor condemns an answer on its own.
NEUTRAL: dict[str, float] = {
    "mean_logprob": -0.75, "min_logprob": -4.0, "p10_logprob": -2.5, "p25_logprob": -1.0,
    "p50_logprob": -0.2, "first_logprob": -1.0, "mean_margin": 2.0, "min_margin": 0.2,
    "self_check": 0.5, "consistency": 0.5, "verifier": 0.5,
}

_REFUSAL = re.compile(
    r"\b(i('| a)m (sorry|unable|not able)|i can(no|')t (help|answer|assist|provide|do)|as an ai\b|"
    r"i (do not|don't) (know|have (enough )?information)|cannot (be )?(answer|determine)ed?|"
    r"i('m| am) not sure)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class AnswerSignals:
    """Signals of one answer. Log-probabilities are natural logs (nats) per token.

    Attributes:
        n_tokens: completion tokens with a log-probability (0 when none were returned).
        mean_logprob, min_logprob: mean and lowest token log-probability; None without logprobs.
        p10_logprob, p25_logprob, p50_logprob: 10th/25th/50th percentile of token log-probabilities.
        first_logprob: log-probability of the first token (the answer's commitment: a letter,
            "yes"/"no", a label word).
        mean_margin, min_margin: mean and lowest top-1 minus top-2 log-probability (nats) over
            tokens that returned two alternatives; None when the tier gave no ``top_logprobs``.
        n_chars: answer length in characters.
        finish_length: the answer was cut by ``max_tokens`` (``finish_reason == "length"``).
        repetition: share of repeated word 4-grams (0 = none; loops score near 1).
        refusal: the answer reads as a refusal or "I don't know".
        empty: no visible text.
        format_error: why the answer fails the requested ``response_format``, else None.
        self_check: P("yes") the local model gave its own answer, in [0, 1]; None if not asked.
        consistency: agreement in [0, 1] of a second sample with the answer; None if not asked.
        verifier: P(answer correct) in [0, 1] from a classifier trained on this model's
            labelled answers, reading the answer text (``escalation.verifier_artifact``);
            None when no verifier is configured.
    """

    n_tokens: int
    mean_logprob: float | None
    min_logprob: float | None
    p10_logprob: float | None
    p25_logprob: float | None
    p50_logprob: float | None
    first_logprob: float | None
    mean_margin: float | None
    min_margin: float | None
    n_chars: int
    finish_length: bool
    repetition: float
    refusal: bool
    empty: bool
    format_error: str | None = None
    self_check: float | None = None
    consistency: float | None = None
    verifier: float | None = None

    def with_extra(self, *, self_check: float | None = None, consistency: float | None = None,
                   verifier: float | None = None) -> "AnswerSignals":
        """A copy with the self-check probability, the consistency and/or the verifier's
        probability attached (None keeps the current value)."""
        return replace(self, self_check=self.self_check if self_check is None else self_check,
                       consistency=self.consistency if consistency is None else consistency,
                       verifier=self.verifier if verifier is None else verifier)

    def value(self, name: str) -> float:
        """Signal ``name`` as a float (flags 0/1; unmeasured ones take :data:`NEUTRAL`).

        Raises:
            KeyError: ``name`` is not in :data:`SIGNAL_NAMES`.
        """
        if name not in SIGNAL_NAMES:
            raise KeyError(f"unknown signal {name!r}; expected one of {', '.join(SIGNAL_NAMES)}")
        if name == "log_tokens":
            return math.log1p(self.n_tokens)
        if name == "format_error":
            return 1.0 if self.format_error else 0.0
        raw = getattr(self, name)
        if isinstance(raw, bool):
            return 1.0 if raw else 0.0
        if raw is None:
            return NEUTRAL[name]
        return float(raw)

    def vector(self, names: Sequence[str] = SIGNAL_NAMES) -> list[float]:
        """The signals ``names`` as floats, in that order (see :meth:`value`)."""
        return [self.value(n) for n in names]

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready) of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AnswerSignals":
        """Inverse of :meth:`as_dict` (unknown keys ignored)."""
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated ``q`` quantile (0..1) of already sorted values (numpy's default
    ``linear`` method).

    Raises:
        ValueError: no values.
    """
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def repetition_share(text: str, n: int = 4) -> float:
    """Share of word ``n``-grams that already occurred earlier in ``text`` (0..1); a
    degenerate loop ("the cat the cat the cat ...") scores near 1, normal prose near 0."""
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for g in grams:
        repeated += g in seen
        seen.add(g)
    return repeated / len(grams)


def is_refusal(text: str) -> bool:
    """True when the answer declines or says it does not know (English patterns, first 300
    characters)."""
    return bool(_REFUSAL.search(text[:300]))


def format_error(text: str, response_format: Mapping[str, Any] | None) -> str | None:
    """Why ``text`` fails the OpenAI ``response_format`` (``json_object``: must parse as a JSON
    object; ``json_schema``: must also validate against the schema), or None when it passes or
    no format was asked."""
    kind = (response_format or {}).get("type")
    if kind not in ("json_object", "json_schema"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return "answer is not valid JSON"
    if kind == "json_object" and not isinstance(value, dict):
        return "answer is JSON but not an object"
    schema = ((response_format or {}).get("json_schema") or {}).get("schema")
    if kind == "json_schema" and isinstance(schema, dict):
        import jsonschema

        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as err:
            return f"answer does not match the JSON schema: {err.message}"[:200]
        except jsonschema.SchemaError:
            return None  # the client's schema is broken; nothing to judge the answer by
    return None


def tool_choice_error(tool_calls: Sequence[Mapping[str, Any]] | None, tool_choice: Any) -> str | None:
    """Why an answer violates the request's ``tool_choice`` (OpenAI: ``"required"`` asks for at
    least one call, ``{"type": "function", "function": {"name": N}}`` for a call of N,
    ``"none"`` for no call), or None when it complies or nothing was forced."""
    calls = list(tool_calls or ())
    if tool_choice == "required" and not calls:
        return "answer ignores tool_choice 'required' (no tool call)"
    if tool_choice == "none" and calls:
        return "answer calls a tool although tool_choice is 'none'"
    if isinstance(tool_choice, Mapping):
        wanted = (tool_choice.get("function") or {}).get("name")
        names = [(c.get("function") or {}).get("name") for c in calls]
        if wanted and wanted not in names:
            return f"answer ignores tool_choice (no call of {wanted!r})"
    return None


def extract(text: str, token_logprobs: Sequence[float | None] | None, finish_reason: str | None,
            response_format: Mapping[str, Any] | None = None,
            top_logprobs: Sequence[Sequence[tuple[str, float]]] | None = None, *,
            tool_calls: Sequence[Mapping[str, Any]] | None = None, tool_choice: Any = None) -> AnswerSignals:
    """Signals of one answer.

    Args:
        text: the answer.
        token_logprobs: log-probability (nats) of each completion token, or None.
        finish_reason: as the tier reported it.
        response_format: the request's OpenAI ``response_format``, or None.
        top_logprobs: per token, the most likely alternatives as (token, logprob), best first
            (OpenAI's ``top_logprobs``); margins need at least two.
        tool_calls: the answer's tool calls; an answer that only calls a tool is not empty.
        tool_choice: the request's; an answer that ignores a forced choice is a format error.
    """
    lps = [float(lp) for lp in (token_logprobs or ()) if lp is not None and math.isfinite(lp)]
    ordered = sorted(lps)
    margins = [float(top[0][1]) - float(top[1][1]) for top in (top_logprobs or ()) if len(top) >= 2]
    return AnswerSignals(
        n_tokens=len(lps),
        mean_logprob=sum(lps) / len(lps) if lps else None,
        min_logprob=ordered[0] if lps else None,
        p10_logprob=quantile(ordered, 0.10) if lps else None,
        p25_logprob=quantile(ordered, 0.25) if lps else None,
        p50_logprob=quantile(ordered, 0.50) if lps else None,
        first_logprob=lps[0] if lps else None,
        mean_margin=sum(margins) / len(margins) if margins else None,
        min_margin=min(margins) if margins else None,
        n_chars=len(text),
        finish_length=finish_reason == "length",
        repetition=repetition_share(text),
        refusal=is_refusal(text),
        empty=not text.strip() and not tool_calls,
        format_error=tool_choice_error(tool_calls, tool_choice) or (
            format_error(text, response_format) if not tool_calls else None),
    )


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, punctuation and English articles removed,
    whitespace collapsed (Rajpurkar et al. 2016, the official SQuAD v1.1 evaluation script)."""
    text = _PUNCT.sub(" ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())


def agreement(a: str, b: str) -> float:
    """Consistency of two answers in [0, 1]: token-level F1 of the normalised texts (the SQuAD
    F1); 1.0 for two empty answers."""
    ta, tb = normalize_answer(a).split(), normalize_answer(b).split()
    if not ta or not tb:
        return 1.0 if ta == tb else 0.0
    counts: dict[str, int] = {}
    for t in tb:
        counts[t] = counts.get(t, 0) + 1
    common = 0
    for t in ta:
        if counts.get(t, 0) > 0:
            common += 1
            counts[t] -= 1
    if not common:
        return 0.0
    precision, recall = common / len(ta), common / len(tb)
    return 2 * precision * recall / (precision + recall)
