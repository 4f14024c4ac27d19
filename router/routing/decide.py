"""Policy stage: choose a tier from the requested model, the classifier score, the policy
and the constraints that rules and the caller's overlay put on the request.

Pure: ``decide(...)`` takes data and returns a :class:`Decision`; it calls nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ModelNotFoundError, TierForbiddenError, TierUnavailableError
from ..policy import AUTO, EscalationConfig, Policy

__all__ = ["AUTO", "Constraints", "Decision", "decide", "needs_score", "resolve_model"]


@dataclass(frozen=True, slots=True)
class Constraints:
    """What rules and the caller's overlay ask of one decision (see :mod:`router.routing.rules`).

    Attributes:
        forced_tier, forced_by: a tier a rule forces, and who (``rule <name>``).
        forbidden: tier name -> who forbade it (``rule <name>`` or ``overlay <name>``);
            a forbidden tier is never called: not routed, escalated nor fallen back to.
        threshold, threshold_source: the classifier threshold to use (None: the policy's)
            and who set it (None: the policy).
        escalation, escalation_note: the escalation settings for a local answer (None: the
            policy's) and why they differ, for the reason text.
        rules: names of the matching rules, in order.
    """

    forced_tier: str | None = None
    forced_by: str | None = None
    forbidden: Mapping[str, str] = field(default_factory=dict)
    threshold: float | None = None
    threshold_source: str | None = None
    escalation: EscalationConfig | None = None
    escalation_note: str | None = None
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request goes and why.

    Attributes:
        tier: name of the tier to call first.
        score: classifier P(needs the cloud tier) in [0, 1]; None when not scored (forced tier).
        reason: short text for ``x-router-reason`` and the log.
        degraded: True when the policy wanted the cloud tier but it is unavailable and the
            local tier answers instead.
        model: the requested model after aliasing (``auto`` or a tier name).
        threshold: the threshold the score was compared with (None when not compared).
        escalation: how to check a local answer of this request; None when the answer is
            not checked (a forced tier).
        forbidden: tier name -> who forbade it; the pipeline never calls these.
        rules: names of the rules that matched.
    """

    tier: str
    score: float | None
    reason: str
    degraded: bool = False
    model: str = AUTO
    threshold: float | None = None
    escalation: EscalationConfig | None = None
    forbidden: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[str, ...] = ()


def resolve_model(requested_model: str, policy: Policy) -> str:
    """Map the client's ``model`` through ``policy.aliases`` to ``auto`` or a tier name.

    Raises:
        ModelNotFoundError: the model is neither ``auto``, a tier name nor an alias.
    """
    target = policy.aliases.get(requested_model, requested_model)
    if target == AUTO or target in policy.tiers:
        return target
    names = [AUTO, *sorted(policy.tiers), *sorted(policy.aliases)]
    raise ModelNotFoundError(
        f"The model '{requested_model}' does not exist on this router; use one of: {', '.join(names)}.",
        param="model",
    )


def needs_score(requested_model: str, policy: Policy, constraints: Constraints | None = None) -> bool:
    """True when the classifier must score the request: ``model`` resolves to ``auto``, no
    rule forces a tier, and both the local and the cloud tier are allowed.

    Raises:
        ModelNotFoundError: the model is neither ``auto``, a tier name nor an alias.
    """
    c = constraints or Constraints()
    if resolve_model(requested_model, policy) != AUTO:
        return False
    if c.forced_tier is not None and c.forced_tier not in c.forbidden:
        return False
    return policy.routing.local_tier not in c.forbidden and policy.routing.cloud_tier not in c.forbidden


def _cloud_or_fallback(reason: str, score: float | None, policy: Policy, forbidden: Mapping[str, str],
                       escalation: EscalationConfig | None, **common) -> Decision:
    cloud, local = policy.routing.cloud_tier, policy.routing.local_tier
    if policy.cloud.available:
        return Decision(cloud, score, reason, forbidden=forbidden, **common)
    if policy.routing.on_cloud_unavailable == "local" and local not in forbidden:
        return Decision(local, score, f"{reason}; cloud unavailable", degraded=True, forbidden=forbidden,
                        escalation=escalation, **common)
    why = "routing.on_cloud_unavailable is 'error'" if local not in forbidden else f"'{local}' is forbidden ({forbidden[local]})"
    raise TierUnavailableError(f"Tier '{cloud}' is unavailable (no API key configured) and {why}.")


def decide(requested_model: str, score: float | None, policy: Policy,
           constraints: Constraints | None = None) -> Decision:
    """Choose the first tier for a request.

    Order: a tier forced by a rule (unless forbidden) > the tier the client named (after
    aliasing) > the classifier, where ``score >= threshold`` goes to the cloud tier and below
    it to the local tier. A forbidden tier is never chosen: when the cloud tier is forbidden
    auto-routed requests go to the local tier and vice versa.

    Args:
        requested_model: the request's ``model``: ``auto``, a tier name or an alias.
        score: classifier P(needs cloud) in [0, 1]; required when :func:`needs_score` is True.
        policy: the active policy.
        constraints: from rules and the caller's overlay (:func:`router.routing.rules.constraints_for`).

    Returns:
        The decision. Its ``escalation`` is set for answers of the local tier on
        auto-routed requests (the cascade may check them), None otherwise.

    Raises:
        ModelNotFoundError: unknown model name.
        TierForbiddenError: the client named a forbidden tier, or every candidate tier is forbidden.
        TierUnavailableError: the chosen cloud tier has no key and the local tier may not answer.
    """
    c = constraints or Constraints()
    model = resolve_model(requested_model, policy)
    forbidden = c.forbidden
    local, cloud = policy.routing.local_tier, policy.routing.cloud_tier
    parts = [f"rules {','.join(c.rules)}"] if c.rules else []
    common = dict(model=model, rules=c.rules)

    def reason(*more: str) -> str:
        return "; ".join(parts + [m for m in more if m])

    if c.forced_tier is not None:
        if c.forced_tier not in forbidden:
            text = reason(f"{c.forced_by or 'rule'} forces {c.forced_tier}")
            if c.forced_tier == cloud:
                return _cloud_or_fallback(text, None, policy, forbidden, None, **common)
            return Decision(c.forced_tier, None, text, forbidden=forbidden, **common)
        parts.append(f"{c.forced_by or 'rule'} forces {c.forced_tier} but {forbidden[c.forced_tier]} forbids it")

    if model != AUTO:
        if model in forbidden:
            raise TierForbiddenError(
                f"Tier '{model}' is not allowed for this request ({forbidden[model]}); use model 'auto' "
                f"or an allowed tier.", param="model")
        via = f" (alias {requested_model})" if requested_model != model else ""
        text = reason(f"forced by model{via}")
        if model == cloud:
            return _cloud_or_fallback(text, None, policy, forbidden, None, **common)
        return Decision(model, None, text, forbidden=forbidden, **common)

    escalation = c.escalation or policy.escalation
    esc_note = c.escalation_note
    if local in forbidden and cloud in forbidden:
        raise TierForbiddenError(
            f"No tier may answer this request: '{local}' ({forbidden[local]}) and '{cloud}' ({forbidden[cloud]}) "
            "are both forbidden.")
    if cloud in forbidden:
        return Decision(local, score, reason(f"cloud forbidden ({forbidden[cloud]})", esc_note),
                        escalation=escalation, forbidden=forbidden, **common)
    if local in forbidden:
        return _cloud_or_fallback(reason(f"local forbidden ({forbidden[local]})"), score, policy, forbidden,
                                  None, **common)
    if score is None:
        raise ValueError("decide() needs a score when the classifier routes the request")
    threshold = c.threshold if c.threshold is not None else policy.routing.classifier.threshold
    src = f" ({c.threshold_source})" if c.threshold_source else ""
    if score >= threshold:
        return _cloud_or_fallback(reason(f"score {score:.3f} >= threshold {threshold:.3f}{src}"), score, policy,
                                  forbidden, escalation, threshold=threshold, **common)
    return Decision(local, score, reason(f"score {score:.3f} < threshold {threshold:.3f}{src}", esc_note),
                    threshold=threshold, escalation=escalation, forbidden=forbidden, **common)
