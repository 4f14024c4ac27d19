"""The routing policy: :class:`Policy`, the whole YAML file, built from one model per section.

A policy names the tiers (each a litellm model string with its price and capabilities),
which tier is the local one and which the cloud one, the classifier and its threshold, the
escalation rule, model aliases, ordered routing rules, the proxy's API keys with their
per-key overlays, the guards (cache, budgets, rate limits), shadow sampling, and where
requests are logged. ``Policy()`` with no arguments is the embedded default, identical to
``policies/default.yaml``. Sections: :mod:`~router.policy.tiers`,
:mod:`~router.policy.routing`, :mod:`~router.policy.escalation`, :mod:`~router.policy.rules`,
:mod:`~router.policy.keys`, :mod:`~router.policy.server`, :mod:`~router.policy.guards`,
:mod:`~router.policy.shadow`; loading in :mod:`~router.policy.load`, file checks with
positions in :mod:`~router.policy.check`, the redacted view and hash in
:mod:`~router.policy.view`. ``policies/policy.schema.json`` is the JSON Schema of
:class:`Policy` (``slm-router policy schema`` regenerates it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from .base import _Strict
from .env import interpolate_env
from .tiers import LocalRuntime, Price, TierConfig
from .routing import RoutingConfig
from .escalation import EscalationConfig
from .rules import Rule
from .keys import ApiKey, Overlay
from .server import LogConfig, ServerConfig, StoreConfig
from .guards import BudgetsConfig, CacheConfig, RateLimitsConfig
from .shadow import ShadowConfig
from .references import _describe, reference_problems

__all__ = ["Policy"]


def _default_tiers() -> dict[str, TierConfig]:
    return {
        "local": TierConfig(
            model="slm-local/smollm2",
            max_tokens=256,
            price=Price(input_usd_per_mtok=0.0, output_usd_per_mtok=0.0),
            runtime=LocalRuntime(requantize="q8_0"),  # router/providers/requantize.py: Q4_1 -> Q8_0
        ),
        "cloud": TierConfig(
            model="openai/gpt-4o-mini",
            api_key=interpolate_env("${OPENAI_API_KEY}"),
            api_base=interpolate_env("${OPENAI_BASE_URL:-}"),
        ),
    }


class Policy(_Strict):
    """A whole routing policy. ``Policy()`` is the embedded default policy."""

    version: Literal[1] = Field(1, description="schema version")
    tiers: dict[str, TierConfig] = Field(default_factory=_default_tiers)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    aliases: dict[str, str] = Field(
        default_factory=dict, description="model name a client may send -> 'auto' or a tier name"
    )
    rules: list[Rule] = Field(default_factory=list, description="evaluated in order before the classifier")
    api_keys: list[ApiKey] = Field(default_factory=list, description="proxy keys clients send as Bearer tokens")
    overlays: dict[str, Overlay] = Field(default_factory=dict, description="named per-key changes")
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)

    @model_validator(mode="after")
    def _judge_tier_exists(self) -> "Policy":
        judge = self.shadow.judge_tier
        if judge is not None and judge not in self.tiers:
            raise ValueError(f"shadow.judge_tier names tier {judge!r}, which is not defined under tiers")
        return self

    @model_validator(mode="after")
    def _store_choice_agrees(self) -> "Policy":
        if self.log.store is not None:
            if "store" not in self.model_fields_set:
                self.store = self.store.model_copy(update={"backend": self.log.store})
            elif self.store.backend != self.log.store:
                raise ValueError(f"log.store is {self.log.store!r} but store.backend is {self.store.backend!r}; keep one")
        return self

    @model_validator(mode="after")
    def _references_resolve(self, info: ValidationInfo) -> "Policy":
        if info.context and info.context.get("defer_references"):
            return self  # router.policy.check reports them with file positions
        errors = [p for p in reference_problems(self) if p.severity == "error"]
        if errors:
            raise ValueError("; ".join(_describe(p) for p in errors))
        return self

    @property
    def local(self) -> TierConfig:
        """The tier that answers easy requests."""
        return self.tiers[self.routing.local_tier]

    @property
    def cloud(self) -> TierConfig:
        """The tier that answers hard and escalated requests."""
        return self.tiers[self.routing.cloud_tier]
