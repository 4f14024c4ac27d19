"""Capability stage: what each tier can do, and moving a request off a tier that cannot.

A tier's effective capabilities are what the policy declares, completed from litellm's
model map (``litellm.get_model_info``: ``max_input_tokens``, ``supports_vision``,
``supports_function_calling``, ``supports_response_schema``) or, for in-process
``slm-local`` tiers, from the runtime (``n_ctx``; no images or tools; JSON and JSON schema
through a llama.cpp grammar). :func:`apply_capabilities` is pure given those.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from .decide import Decision
from ..errors import InvalidRequestError
from ..request.features import Features
from ..policy import Policy, TierConfig

__all__ = ["TIER_FILTERS", "TierCapabilities", "resolve_capabilities", "unmet_needs", "unmet_text",
           "apply_capabilities"]


@dataclass(frozen=True, slots=True)
class TierCapabilities:
    """Capabilities of one tier.

    Attributes:
        context_window: tokens the model accepts (prompt + completion), None when unknown.
        vision, tools, json_schema: accepts image parts / tools / response_format schemas.
            Unknown counts as not capable.
        source: ``policy`` when everything was declared, else where the rest came from
            (``litellm``, ``runtime`` or ``unknown``).
    """

    context_window: int | None
    vision: bool
    tools: bool
    json_schema: bool
    source: str

    def can(self, need: str) -> bool:
        """True when the tier can serve a request needing ``need`` (``vision``, ``tools``, ``json``)."""
        return {"vision": self.vision, "tools": self.tools, "json": self.json_schema}[need]


def resolve_capabilities(tier: TierConfig) -> TierCapabilities:
    """Declared capabilities, with unset fields filled in (see the module docstring);
    memoised per model and declaration, so a request pays no lookup."""
    return _resolve(tier.model, tier.capabilities.model_dump_json(), tier.runtime.n_ctx, tier.is_in_process)


@functools.lru_cache(maxsize=256)
def _resolve(model: str, declared_json: str, n_ctx: int, in_process: bool) -> TierCapabilities:
    from ..policy import Capabilities

    declared = Capabilities.model_validate_json(declared_json)
    fields = ("context_window", "vision", "tools", "json_schema")
    if all(getattr(declared, f) is not None for f in fields):
        return TierCapabilities(declared.context_window, bool(declared.vision), bool(declared.tools),
                                bool(declared.json_schema), "policy")
    if in_process:
        found = {"context_window": n_ctx, "vision": False, "tools": False, "json_schema": True}
        source = "runtime"
    else:
        found, source = _litellm_info(model)
    values = {f: getattr(declared, f) if getattr(declared, f) is not None else found.get(f) for f in fields}
    return TierCapabilities(values["context_window"], bool(values["vision"]), bool(values["tools"]),
                            bool(values["json_schema"]), source)


def _litellm_info(model: str) -> tuple[dict, str]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    try:
        info = litellm.get_model_info(model)
    except Exception:  # litellm raises a plain Exception for models it has not mapped
        return {}, "unknown"
    return {
        "context_window": info.get("max_input_tokens") or info.get("max_tokens"),
        "vision": info.get("supports_vision"),
        "tools": info.get("supports_function_calling"),
        "json_schema": info.get("supports_response_schema"),
    }, "litellm"


def lacks_capabilities(caps: TierCapabilities, features: Features, max_completion_tokens: int | None) -> list[str]:
    """The needs (``vision``, ``tools``, ``json``) the tier's capabilities lack."""
    return [need for need in sorted(features.needs) if not caps.can(need)]


def exceeds_context(caps: TierCapabilities, features: Features, max_completion_tokens: int | None) -> list[str]:
    """``["context"]`` when the prompt (estimated tokens) plus the completion budget (the
    request's, capped at a quarter of the window; at least one token) exceeds the window."""
    if caps.context_window is None:
        return []
    budget = answer_budget(caps.context_window, max_completion_tokens)
    return ["context"] if features.approx_prompt_tokens + budget > caps.context_window else []


def answer_budget(context_window: int, max_completion_tokens: int | None) -> int:
    """Tokens of the window kept for the answer by :func:`exceeds_context`: the request's
    cap, at most a quarter of the window (so a large cap still lets a long prompt in), at least 1."""
    return min(max_completion_tokens or 1, max(context_window // 4, 1))


TIER_FILTERS: list[Callable[[TierCapabilities, Features, int | None], list[str]]] = [
    lacks_capabilities, exceeds_context]
"""Pure checks of whether a tier can serve a request, each ``(capabilities, features,
completion cap) -> what is missing``; a tier with anything missing is not chosen."""


def unmet_needs(tier: TierConfig, features: Features, max_completion_tokens: int | None = None) -> list[str]:
    """What ``tier`` cannot do for this request, by every :data:`TIER_FILTERS` entry in
    order: capabilities it lacks, then ``context``. Empty when the tier can serve it."""
    caps = resolve_capabilities(tier)
    return [missing for check in TIER_FILTERS for missing in check(caps, features, max_completion_tokens)]


def unmet_text(missing: list[str]) -> str:
    """What :func:`unmet_needs` found, as the reasons and errors say it: ``needs tools,
    vision`` and/or ``too long for its context window``."""
    lacks = [m for m in missing if m != "context"]
    parts = [f"needs {', '.join(lacks)}"] if lacks else []
    if "context" in missing:
        parts.append("too long for its context window")
    return "; ".join(parts)


def apply_capabilities(decision: Decision, features: Features, policy: Policy, forced: bool,
                       max_completion_tokens: int | None = None) -> Decision:
    """Move a decision off a tier that cannot serve the request, before anything is called.

    Preference: the decided tier, then the cloud tier, then the other tiers in policy order;
    forbidden and unavailable tiers are skipped.

    Raises:
        InvalidRequestError: 400 ``context_length_exceeded`` (or ``unsupported_capability``)
            when no allowed tier can serve the request, or when the request named a tier
            (or a rule forced one) that cannot.
    """
    missing = unmet_needs(policy.tiers[decision.tier], features, max_completion_tokens)
    if not missing:
        return decision
    code = "context_length_exceeded" if missing == ["context"] else "unsupported_capability"
    window = resolve_capabilities(policy.tiers[decision.tier]).context_window
    if "context" in missing:
        budget = answer_budget(window, max_completion_tokens)
        what = (f"about {features.approx_prompt_tokens} prompt tokens plus {budget} for the answer "
                f"against a context window of {window}")
    else:
        what = unmet_text(missing)
    message = f"Tier '{decision.tier}' cannot serve this request ({what})."
    candidates = [policy.routing.cloud_tier] + [n for n in policy.tiers if n != policy.routing.cloud_tier]
    out_of_reach = []  # tiers that could serve it but may not be called: say so, it is what to fix
    for name in candidates:
        tier = policy.tiers[name]
        if name == decision.tier or unmet_needs(tier, features, max_completion_tokens):
            continue
        if name in decision.forbidden or not tier.available:
            why = f"forbidden: {decision.forbidden[name]}" if name in decision.forbidden else "unavailable: no API key"
            out_of_reach.append(f"'{name}' could, but it is {why}")
        elif not forced:
            label = "too long" if "context" in missing else f"needs {', '.join(missing)}"
            return replace(decision, tier=name, reason=f"{decision.reason}; {label} for {decision.tier}, sent to {name}")
    if not forced:
        message += " No allowed tier of this router can."
    if out_of_reach:
        message += f" Tier {'; tier '.join(out_of_reach)}."
    raise InvalidRequestError(message, code=code, param="messages")
