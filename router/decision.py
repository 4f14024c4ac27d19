"""Policy stage: choose a tier from the requested model, the classifier score and the policy.

Pure: ``decide(...)`` takes data and returns a :class:`Decision`; it calls nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ModelNotFoundError, TierUnavailableError
from .policy import Policy

__all__ = ["AUTO", "Decision", "decide", "needs_score"]

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request goes and why.

    Attributes:
        tier: name of the tier to call first.
        score: classifier P(needs the cloud tier) in [0, 1]; None when not scored (forced tier).
        reason: short text for ``x-router-reason`` and the log.
        degraded: True when the policy wanted the cloud tier but it is unavailable and the
            local tier answers instead.
    """

    tier: str
    score: float | None
    reason: str
    degraded: bool = False


def needs_score(requested_model: str, policy: Policy) -> bool:
    """True when the request must be scored by the classifier (``model: auto``).

    Raises:
        ModelNotFoundError: the model is neither ``auto`` nor a tier name.
    """
    if requested_model == AUTO:
        return True
    if requested_model in policy.tiers:
        return False
    raise ModelNotFoundError(
        f"The model '{requested_model}' does not exist on this router; use 'auto' or one of: "
        f"{', '.join(sorted(policy.tiers))}.",
        param="model",
    )


def _cloud_or_fallback(reason: str, score: float | None, policy: Policy) -> Decision:
    cloud = policy.routing.cloud_tier
    if policy.cloud.available:
        return Decision(cloud, score, reason)
    if policy.routing.on_cloud_unavailable == "local":
        return Decision(policy.routing.local_tier, score, f"{reason}; cloud unavailable", degraded=True)
    raise TierUnavailableError(
        f"Tier '{cloud}' is unavailable (no API key configured) and "
        "routing.on_cloud_unavailable is 'error'."
    )


def decide(requested_model: str, score: float | None, policy: Policy, threshold: float | None = None) -> Decision:
    """Choose the first tier for a request.

    Args:
        requested_model: the request's ``model``: ``auto`` or a tier name.
        score: classifier P(needs cloud) in [0, 1]; required when ``requested_model`` is auto.
        policy: the active policy; ``routing.classifier.threshold`` splits the scores.
        threshold: overrides that threshold (e.g. raised as a budget burns, see
            :func:`router.budget.shifted_threshold`).

    Returns:
        The decision: score >= threshold goes to the cloud tier, below it to the local tier.

    Raises:
        ModelNotFoundError: unknown model name.
        TierUnavailableError: the chosen cloud tier has no key and the policy says ``error``.
    """
    if not needs_score(requested_model, policy):
        if requested_model == policy.routing.cloud_tier:
            return _cloud_or_fallback("forced by model", None, policy)
        return Decision(requested_model, None, "forced by model")
    if score is None:
        raise ValueError("decide() needs a score for model 'auto'")
    if threshold is None:
        threshold = policy.routing.classifier.threshold
    if score >= threshold:
        return _cloud_or_fallback(f"score {score:.3f} >= threshold {threshold:.3f}", score, policy)
    return Decision(policy.routing.local_tier, score, f"score {score:.3f} < threshold {threshold:.3f}")
