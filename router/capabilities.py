"""Capability stage: can the chosen tier do what the request needs? Pure functions.

A tier's context window is its in-process runtime's ``n_ctx`` or, for other models, what
the policy declares; an unknown window is assumed to fit. A request that no allowed tier
can serve is refused before any model is called.
"""

from __future__ import annotations

from dataclasses import replace

from .decision import Decision
from .errors import InvalidRequestError
from .features import Features
from .policy import Policy, TierConfig

__all__ = ["context_window", "fits", "apply_capabilities"]


def context_window(tier: TierConfig) -> int | None:
    """The tier's context window in tokens, or None when unknown."""
    if tier.is_in_process:
        return tier.runtime.n_ctx
    return getattr(tier, "context_window", None)


def fits(tier: TierConfig, features: Features, max_completion_tokens: int | None = None) -> bool:
    """True when the prompt (estimated tokens) plus at least one completion token — or the
    requested completion budget, when smaller than the window — fits the tier's window."""
    window = context_window(tier)
    if window is None:
        return True
    budget = min(max_completion_tokens or 1, max(window // 4, 1))
    return features.approx_prompt_tokens + budget <= window


def apply_capabilities(decision: Decision, features: Features, policy: Policy, forced: bool,
                       max_completion_tokens: int | None = None) -> Decision:
    """Move a decision off a tier whose context window cannot hold the request.

    Order of preference: the decided tier, then the cloud tier, then any other tier.

    Raises:
        InvalidRequestError: ``context_length_exceeded`` (400) when no tier fits, or when the
            client forced a tier that does not fit.
    """
    tier = policy.tiers[decision.tier]
    if fits(tier, features, max_completion_tokens):
        return decision
    window = context_window(tier)
    message = (f"This request has about {features.approx_prompt_tokens} prompt tokens; tier '{decision.tier}' "
               f"has a context window of {window} tokens.")
    if forced:
        raise InvalidRequestError(message, code="context_length_exceeded", param="messages")
    candidates = [policy.routing.cloud_tier] + [n for n in policy.tiers if n != policy.routing.cloud_tier]
    for name in candidates:
        t = policy.tiers[name]
        if name != decision.tier and t.available and fits(t, features, max_completion_tokens):
            return replace(decision, tier=name, reason=f"{decision.reason}; too long for {decision.tier}, sent to {name}")
    raise InvalidRequestError(message + " No tier of this router can hold it.", code="context_length_exceeded",
                              param="messages")
