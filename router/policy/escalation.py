"""Policy section ``escalation``: the cascade's checks, the combiner and per-rule overrides.

Signal names come from :data:`router.cascade.signals.SIGNAL_NAMES` (defined once there)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..cascade.signals import LOGPROB_SIGNALS, SIGNAL_NAMES, HardFailure
from .base import _Strict

LOGPROB_THRESHOLD_OFF = -100.0
"""``min_mean_logprob`` at or below this is no threshold (the README's "set -100")."""

__all__ = ["CombinerConfig", "EscalationConfig", "EscalationOverride"]


def _check_signal_names(names: Any, allow_router_score: bool = False) -> Any:
    allowed = set(SIGNAL_NAMES) | ({"router_score"} if allow_router_score else set())
    for name in names or ():
        if name not in allowed:
            hint = difflib.get_close_matches(name, sorted(allowed), n=1)
            raise ValueError(f"unknown signal {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                             + f" (signals: {', '.join(sorted(allowed))})")
    return names


class CombinerConfig(_Strict):
    """A learned escalation combiner: logistic regression giving P(local answer correct).

    ``p = 1 / (1 + exp(-(intercept + sum_i weights[i] * (x_i - means[i]) / scales[i])))`` over
    the named ``signals`` (``router.cascade.signals.SIGNAL_NAMES`` plus ``router_score``); the answer
    is escalated when ``p < min_p_correct``. Written by ``slm-router calibrate --labels``
    (trained on label files from ``slm-router label``); ``trained_on`` records provenance.
    """

    signals: list[str] = Field(min_length=1, description="input signal names, in weight order")
    weights: list[float] = Field(description="one weight per signal (on standardised inputs)")
    intercept: float = 0.0
    means: list[float] | None = Field(None, description="per-signal mean subtracted first (default 0)")
    scales: list[float] | None = Field(None, description="per-signal scale divided by (default 1)")
    min_p_correct: float = Field(0.5, ge=0, le=1, description="escalate when P(correct) < this")
    trained_on: str | None = Field(None, description="where the weights came from (label files, n, AUROC)")

    @field_validator("signals")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return _check_signal_names(value, allow_router_score=True)

    @model_validator(mode="after")
    def _lengths(self) -> "CombinerConfig":
        n = len(self.signals)
        for name in ("weights", "means", "scales"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"combiner.{name} has {len(v)} values for {n} signals")
        if self.scales is not None and any(x <= 0 for x in self.scales):
            raise ValueError("combiner.scales must all be > 0")
        return self


class EscalationConfig(_Strict):
    """Cascade: check a local answer and escalate it to the cloud tier when a check fails.

    Checks, in order: ``escalate_on`` hard failures (empty answer, invalid JSON/schema for a
    ``response_format`` request, refusal, repetition loop, cut by ``max_tokens``); then the
    ``min``/``max`` signal thresholds; then the ``combiner`` when set. ``min_mean_logprob`` is
    the first cascade step's single threshold and still applies (set it to -100 to turn it
    off when a combiner decides).

    Default -0.75 nats/token, measured here on SmolLM2-135M-Instruct (greedy, 32 tokens) over
    100 short factual questions (80 NQ-open dev + 20 "capital of <country>?"): the mean
    log-probability separates right from wrong answers at AUROC 0.84; at -0.75 the router
    keeps 30% of local answers, 57% of them right, against 23% right overall.
    """

    enabled: bool = Field(True, description="check local answers and escalate failing ones")
    min_mean_logprob: float = Field(
        -0.75, le=0, description="escalate when mean log-probability (nats/token) < this"
    )
    escalate_on: list[HardFailure] = Field(
        default_factory=lambda: ["empty", "format_error"],
        description="hard failures that always escalate (repetition: over 50% repeated word 4-grams)",
    )
    min: dict[str, float] = Field(
        default_factory=dict, description="signal -> lowest accepted value (e.g. self_check: 0.5)")
    max: dict[str, float] = Field(
        default_factory=dict, description="signal -> highest accepted value (e.g. repetition: 0.3)")
    combiner: CombinerConfig | None = Field(None, description="learned P(correct) combiner (see calibrate --labels)")
    self_check: bool = Field(
        False, description="ask the local model whether its answer is right (one extra 1-token call, logged "
                           "with purpose self_check); needed when a threshold or the combiner reads self_check")
    consistency_samples: int = Field(
        0, ge=0, le=4, description="extra local samples at temperature 0.7 whose agreement is the consistency signal")
    verifier_artifact: str | None = Field(
        None, description="classifier artifact (builtin:<name> or a directory) trained on this local model's "
                          "labelled answers (slm-router train --text answer); its P(correct) of the answer text "
                          "is the verifier signal (one embedding, no model call)")
    max_share: float = Field(
        1.0, ge=0, le=1, description="cap on the share of checked local answers that may escalate over the last "
                                     "share_window_s; above it, failing answers are kept (reason says so)")
    share_window_s: float = Field(300.0, gt=0, description="window of the max_share cap (seconds)")
    stream_check_tokens: int | None = Field(
        None, ge=1, description="streaming: check after the first N local tokens and then stream; "
                                "null holds back the whole answer until checked")
    on_missing_signal: Literal["escalate", "keep"] | None = Field(
        None, description="an answer without the log-probabilities a threshold reads (a tier that returns "
                          "none, e.g. Ollama): escalate or keep it; null = escalate when the policy has a "
                          "log-probability threshold (min_mean_logprob above -100, or min/max on one)")

    def reads_logprobs(self) -> bool:
        """True when a threshold reads a log-probability signal (``min_mean_logprob`` above
        -100, the README's "off", or ``min``/``max`` on one of ``LOGPROB_SIGNALS``)."""
        return (self.min_mean_logprob > LOGPROB_THRESHOLD_OFF
                or any(name in LOGPROB_SIGNALS for name in (*self.min, *self.max)))

    def escalates_without_logprobs(self) -> bool:
        """Whether an answer that came without log-probabilities escalates
        (``on_missing_signal``; unset: when a threshold reads them)."""
        if self.on_missing_signal is not None:
            return self.on_missing_signal == "escalate"
        return self.reads_logprobs()

    @field_validator("min", "max")
    @classmethod
    def _known(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_signal_names(value)

    @model_validator(mode="after")
    def _verifier_configured(self) -> "EscalationConfig":
        if self.needs("verifier") and not self.verifier_artifact:
            raise ValueError("a threshold or the combiner reads 'verifier' but escalation.verifier_artifact is not set")
        return self

    def needs(self, signal: str) -> bool:
        """True when a threshold or the combiner reads ``signal``."""
        return signal in self.min or signal in self.max or bool(self.combiner and signal in self.combiner.signals)


class EscalationOverride(_Strict):
    """Changes to :class:`EscalationConfig` for one key (overlay) or one rule; unset fields
    keep the policy's value."""

    enabled: bool | None = None
    min_mean_logprob: float | None = Field(None, le=0)
    escalate_on: list[HardFailure] | None = None
    min: dict[str, float] | None = None
    max: dict[str, float] | None = None
    min_p_correct: float | None = Field(None, ge=0, le=1, description="the combiner's cut-off for these requests")
    self_check: bool | None = None
    consistency_samples: int | None = Field(None, ge=0, le=4)
    max_share: float | None = Field(None, ge=0, le=1)
    stream_check_tokens: int | None = Field(None, ge=1)

    @field_validator("min", "max")
    @classmethod
    def _known(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return _check_signal_names(value)

    @classmethod
    def first_wins(cls, overrides: "Sequence[EscalationOverride]") -> "EscalationOverride | None":
        """One override from several in precedence order (matching rules in file order): for
        each field the first override that sets it wins; ``min``/``max`` merge per signal,
        the first override naming a signal winning. None when ``overrides`` is empty."""
        if not overrides:
            return None
        fields: dict[str, Any] = {}
        for o in overrides:
            for name in o.model_fields_set:
                value = getattr(o, name)
                if value is None:
                    continue
                if name in ("min", "max"):
                    fields[name] = {**value, **fields.get(name, {})}
                else:
                    fields.setdefault(name, value)
        return cls(**fields)

    def apply(self, base: EscalationConfig) -> EscalationConfig:
        """``base`` with this override's set fields replaced (min/max dicts are merged)."""
        changes: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is None:
                continue
            if name in ("min", "max"):
                changes[name] = {**getattr(base, name), **value}
            elif name == "min_p_correct":
                if base.combiner is not None:
                    changes["combiner"] = base.combiner.model_copy(update={"min_p_correct": value})
            else:
                changes[name] = value
        return base.model_copy(update=changes) if changes else base
