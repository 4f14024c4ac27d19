"""The ``consistency`` measure: agreement of the answer with extra samples of the local tier.

Each sample is the request's turns again at temperature :data:`CONSISTENCY_TEMPERATURE`
(with a distinct seed when the request set one), logged with purpose ``consistency``; the
signal is the mean :func:`router.cascade.signals.agreement` of the answer with them (0..1).
"""

from __future__ import annotations

from ...policy import EscalationConfig
from ..signals import agreement
from .base import MeasureInput, Measured

__all__ = ["CONSISTENCY_TEMPERATURE", "Consistency"]

CONSISTENCY_TEMPERATURE = 0.7
"""Sampling temperature of the consistency samples."""

_NOT_FORWARDED = ("n", "logprobs", "top_logprobs", "stream", "stream_options")


def samples_wanted(escalation: EscalationConfig) -> int:
    """Samples to draw: ``consistency_samples``, or 1 when a threshold or the combiner reads
    ``consistency`` with ``consistency_samples: 0``."""
    return escalation.consistency_samples or (1 if escalation.needs("consistency") else 0)


class Consistency:
    """Draws :func:`samples_wanted` samples and measures their agreement with the answer."""

    signal = "consistency"

    def wanted(self, escalation: EscalationConfig) -> bool:
        return samples_wanted(escalation) > 0

    async def measure(self, given: MeasureInput) -> Measured:
        base = {k: v for k, v in given.params.items() if k not in _NOT_FORWARDED}
        agreements = []
        for i in range(samples_wanted(given.escalation)):
            params = {**base, "temperature": CONSISTENCY_TEMPERATURE}
            if base.get("seed") is not None:
                params["seed"] = int(base["seed"]) + 1 + i  # distinct, still reproducible
            sample = await given.check_call("consistency", given.messages(), params)
            if sample is not None:
                agreements.append(agreement(given.text, sample.text))
        if not agreements:
            return Measured()
        value = sum(agreements) / len(agreements)
        return Measured(value, f"consistency {value:.2f} over {len(agreements)}")
