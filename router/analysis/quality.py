"""Estimated quality retention from shadow samples (pure).

Quality retention is the share of requests whose answer is as good as the cloud tier's
answer would have been: the routed system's quality relative to sending everything to the
cloud. A request answered by the cloud tier counts as retained; a locally served request
counts as retained when its shadow sample agrees (:func:`router.ledger.shadow.agreement`). Locally
served requests without a sample are estimated at the sampled agreement rate ``p``:

    retention = (n_cloud + agreeing_samples + n_unsampled * p) / n

The 95% interval puts the Wilson score interval of ``p`` (Wilson 1927, "Probable inference,
the law of succession, and statistical inference", JASA 22:209-212) into the same formula;
with no samples at all ``p`` spans [0, 1] and the point estimate is unknown (None).
When samples were taken with unequal probabilities (``shadow.strategy: uncertain`` stores
``sample_p`` per sample), the agreement rate of the locally served requests is the
inverse-probability weighted mean ``p = sum(a_i / p_i) / sum(1 / p_i)`` (Hajek's ratio form
of the Horvitz-Thompson estimator, Horvitz and Thompson 1952, JASA 47:663-685), every locally
served request is estimated at it, and its Wilson interval uses the effective sample size
``(sum w)^2 / sum w^2`` (Kish 1965).
The estimate is as good as the agreement measure; ``bench/shadow_agreement.py`` measures how
well embedding agreement matches a judge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Retention", "AgreementRate", "wilson_interval", "agreement_rate", "weighted_agreement_rate",
           "estimate_retention"]

Z95 = 1.959963984540054  # standard normal quantile for a two-sided 95% interval


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class AgreementRate:
    """Agreement among shadow samples: ``agreeing`` of ``samples``; ``rate`` (None when no
    samples) with its Wilson 95% interval ``[lo, hi]``; ``mean_similarity`` of the samples."""

    samples: int
    agreeing: int
    rate: float | None
    lo: float
    hi: float
    mean_similarity: float | None


def agreement_rate(agrees: Sequence[bool], similarities: Sequence[float] = ()) -> AgreementRate:
    """Summarise sample verdicts (True = the local answer is as good)."""
    n, k = len(agrees), sum(bool(a) for a in agrees)
    lo, hi = wilson_interval(k, n)
    sims = [s for s in similarities if s is not None]
    return AgreementRate(n, k, k / n if n else None, lo, hi, sum(sims) / len(sims) if sims else None)


def weighted_agreement_rate(agrees: Sequence[bool], probabilities: Sequence[float],
                            similarities: Sequence[float] = ()) -> AgreementRate:
    """The inverse-probability weighted agreement rate of samples taken with ``probabilities``
    (see the module docstring); ``samples`` and ``agreeing`` are the effective counts, rounded."""
    w = [1.0 / max(float(p), 1e-6) for p in probabilities]
    if not w:
        return agreement_rate([], similarities)
    total = sum(w)
    rate = sum(wi for wi, a in zip(w, agrees) if a) / total
    n_eff = total * total / sum(wi * wi for wi in w)
    lo, hi = wilson_interval(round(rate * n_eff), max(1, round(n_eff)))
    sims = [s for s in similarities if s is not None]
    return AgreementRate(round(n_eff), round(rate * n_eff), rate, lo, hi, sum(sims) / len(sims) if sims else None)


@dataclass(frozen=True)
class Retention:
    """Estimated quality retention over ``requests`` ok requests (0..1).

    Attributes:
        estimate: point estimate; None when some local answers are unsampled and there are
            no samples to estimate them from.
        lo, hi: 95% interval.
        requests: ok requests; cloud: answered by the cloud tier; observed: locally served
            with a sample (agreeing of them agree); estimated: locally served without one
            (cloud and estimated are expected counts in ``replay``, so may be fractional).
        rate: the agreement rate used for the estimated ones.
    """

    estimate: float | None
    lo: float
    hi: float
    requests: int
    cloud: float
    observed: int
    agreeing: int
    estimated: float
    rate: AgreementRate


def estimate_retention(requests: int, cloud: float, observed: Sequence[bool], estimated: float,
                       rate: AgreementRate) -> Retention:
    """Combine known and estimated outcomes as the module docstring says.

    Args:
        requests: ok requests (the denominator); cloud: those answered by the cloud tier
            (an expected count may be fractional, as in ``replay``).
        observed: verdicts of locally served answers that have their own sample.
        estimated: locally served answers without a sample, estimated at ``rate`` (may be
            fractional).
        rate: the agreement rate (and interval) used for the estimated ones.

    Raises:
        ValueError: the parts add up to more than ``requests``.
    """
    if cloud + len(observed) + estimated > requests + 1e-9:
        raise ValueError("cloud + observed + estimated exceeds the number of requests")
    agreeing = sum(bool(a) for a in observed)
    known = cloud + agreeing
    if requests == 0:
        return Retention(None, 0.0, 1.0, 0, 0, 0, 0, 0, rate)
    estimate = None
    if estimated <= 1e-12:
        estimate = known / requests
    elif rate.rate is not None:
        estimate = (known + estimated * rate.rate) / requests
    return Retention(estimate, (known + estimated * rate.lo) / requests, (known + estimated * rate.hi) / requests,
                     requests, cloud, len(observed), agreeing, estimated, rate)
