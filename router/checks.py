"""Checks stage: signals from a local answer and the escalation verdict.

Pure: ``answer_signals`` and ``should_escalate`` take data and return data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .policy import EscalationConfig, Policy

__all__ = ["Signals", "Verdict", "answer_signals", "should_escalate", "escalation_applies"]


@dataclass(frozen=True, slots=True)
class Signals:
    """Confidence signals of one generated answer.

    Attributes:
        n_tokens: completion tokens with a log-probability.
        mean_logprob: mean natural-log probability per token (nats); None without logprobs.
        min_logprob: lowest token log-probability (nats); None without logprobs.
        empty: the answer has no visible text.
        finish_reason: as the tier reported it (``stop``, ``length``...).
        format_error: why the answer does not satisfy the request's ``response_format``
            (not JSON, or not matching the JSON schema); None when it does or none was asked.
    """

    n_tokens: int
    mean_logprob: float | None
    min_logprob: float | None
    empty: bool
    finish_reason: str | None
    format_error: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether to escalate, and the short reason shown in ``x-router-reason``."""

    escalate: bool
    reason: str


def format_error(text: str, response_format: dict[str, Any] | None) -> str | None:
    """Why ``text`` fails the OpenAI ``response_format`` (``json_object``: must parse as a JSON
    object; ``json_schema``: must also validate against the schema), or None when it passes."""
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


def answer_signals(text: str, token_logprobs: Sequence[float] | None, finish_reason: str | None,
                   response_format: dict[str, Any] | None = None) -> Signals:
    """Compute :class:`Signals` from an answer and its per-token log-probabilities (nats)."""
    lps = [lp for lp in (token_logprobs or ()) if lp is not None and math.isfinite(lp)]
    return Signals(
        n_tokens=len(lps),
        mean_logprob=(sum(lps) / len(lps)) if lps else None,
        min_logprob=min(lps) if lps else None,
        empty=not text.strip(),
        finish_reason=finish_reason,
        format_error=format_error(text, response_format),
    )


def should_escalate(signals: Signals, config: EscalationConfig) -> Verdict:
    """Decide whether a local answer goes to the cloud tier instead.

    Rules, in order: escalation disabled -> keep; empty answer -> escalate; an answer that
    fails the requested ``response_format`` -> escalate; mean
    log-probability below ``config.min_mean_logprob`` -> escalate; no log-probabilities ->
    keep (nothing to judge by); else keep.
    """
    if not config.enabled:
        return Verdict(False, "escalation disabled")
    if signals.empty:
        return Verdict(True, "empty local answer")
    if signals.format_error:
        return Verdict(True, signals.format_error)
    if signals.mean_logprob is None:
        return Verdict(False, "no log-probabilities")
    if signals.mean_logprob < config.min_mean_logprob:
        return Verdict(
            True, f"mean logprob {signals.mean_logprob:.2f} < {config.min_mean_logprob:.2f}"
        )
    return Verdict(False, f"mean logprob {signals.mean_logprob:.2f} ok")


def escalation_applies(requested_model: str | None, tier: str, policy: Policy) -> bool:
    """True when an answer of ``tier`` is checked and may be escalated: the policy's local
    tier answered a routed (``auto``) request and escalation is enabled."""
    return tier == policy.routing.local_tier and requested_model == "auto" and policy.escalation.enabled
