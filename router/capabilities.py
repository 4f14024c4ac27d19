"""A tier's effective capabilities: what the policy declares, completed from litellm's
model map (``litellm.get_model_info``: ``max_input_tokens``, ``supports_vision``,
``supports_function_calling``, ``supports_response_schema``) or, for in-process
``slm-local`` tiers, from the runtime (``n_ctx``; SmolLM2 under llama.cpp here takes no
images, tools or JSON schema).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .policy import TierConfig

__all__ = ["TierCapabilities", "resolve_capabilities"]


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
    """Declared capabilities, with unset fields filled in (see the module docstring)."""
    declared = tier.capabilities
    fields = ("context_window", "vision", "tools", "json_schema")
    if all(getattr(declared, f) is not None for f in fields):
        return TierCapabilities(declared.context_window, bool(declared.vision), bool(declared.tools),
                                bool(declared.json_schema), "policy")
    if tier.is_in_process:
        found = {"context_window": tier.runtime.n_ctx, "vision": False, "tools": False, "json_schema": False}
        source = "runtime"
    else:
        found, source = _litellm_info(tier.model)
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
