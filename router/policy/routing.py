"""Policy section ``routing``: the local and cloud tiers, the classifier and its threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import _Strict

__all__ = ["ClassifierConfig", "SessionConfig", "RoutingConfig"]


class ClassifierConfig(_Strict):
    """The difficulty classifier: an artifact directory and the decision threshold.

    Set either ``threshold`` or ``target_cloud_share``; the latter picks the threshold
    from the artifact card's held-out ``score_quantiles``
    (:func:`router.routing.threshold.threshold_for_cloud_share`).
    """

    kind: Literal["embedding", "rules"] = Field(
        "embedding", description="'embedding': the artifact's model over the request's embedding; 'rules': "
        "keyword/structure weights (router/scoring/rules.py), no model, no embedding, 0 ms; artifact is then unused")
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
        1, ge=0, description="earlier turns (of context_roles) read with the last user turn (bench/bounded_input.py)"
    )
    context_roles: list[Literal["user", "assistant", "system", "developer"]] = Field(
        ["user"], description="roles of the earlier turns read; a system prompt or an earlier answer in the window "
        "moved scores away from the ask's own (bench/bounded_input.py)")
    context_below_chars: int | None = Field(
        200, ge=0, description="read earlier turns only when the last user turn is shorter than this (a short "
        "follow-up leans on the ask before it; a long one stands alone); None = always")
    max_chars: int = Field(
        750, ge=64, description="characters read of the last user turn: its first head_chars and the rest from its "
        "end (bench/bounded_input.py)")
    head_chars: int = Field(
        187, ge=0, description="of max_chars, characters read from the start of the last user turn")
    context_chars: int = Field(
        500, ge=1, description="characters read of each earlier turn, from its end")
    turn_cache_size: int = Field(
        4096, ge=0, description="static embedder: word-piece vector sums of recent turns kept in memory (~1.2 KB each), "
        "so a conversation's next request embeds only its new turn, with the same scores; 0 = none")
    threads: int | None = Field(
        1, ge=1,
        description="CPU threads of the MiniLM embedding (torch: process-wide; None = torch's default, all "
        "cores; minilm-int8: ONNX Runtime's intra-op threads, None = 1). 1 is fastest on a box whose cores are busy "
        "(2 spinning threads were 2-10x slower there); concurrent decisions are batched instead",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="number format of the MiniLM embedding's matrix products: 'auto' = bf16 where the CPU "
        "computes it natively (AVX512-BF16, AMX; ~35% faster, embeddings at cosine 0.99999 of fp32), else fp32",
    )
    embedder: Literal["minilm", "minilm-int8"] | None = Field(
        "minilm-int8",
        description="how MiniLM embeddings are computed for an artifact trained on them (e.g. "
        "builtin:difficulty-minilm): 'minilm-int8' = ONNX Runtime int8 on one thread, no torch (cosine ~0.99 of torch "
        "fp32, 2-4x faster; bench/embedder_quality.py); 'minilm' = torch fp32/bf16; None = the artifact card's. "
        "Artifacts on another embedder (the default, on the static embedder) use their own",
    )
    max_tokens: int | None = Field(
        None, ge=8, le=256,
        description="word pieces of the text the minilm-int8 embedder reads; None = its default, the first 256 (all "
        "MiniLM reads, what builtin:difficulty-minilm was trained on); fewer are taken half from the start and half "
        "from the end (64: a quarter of the time; bench/embedder_quality.py). The static embedder reads the whole text",
    )
    first_stage: str | None = Field(
        None,
        description="two-stage decision: this artifact (e.g. builtin:difficulty-static, the static embedder) scores "
        "every request first and only a score within first_stage_band of the threshold is scored again by "
        "'artifact'; None = one stage (kind 'embedding' only)",
    )
    first_stage_band: float = Field(
        0.1, ge=0, le=1, description="half-width of the uncertain band around the threshold (score units)"
    )
    cache_size: int = Field(
        4096, ge=0, description="embeddings of recent texts kept in memory, by SHA-256 of the text (~1.5 KB each); 0 = none"
    )

    def bound(self) -> dict:
        """The input bound as :func:`router.request.features.extract_features` keywords."""
        return dict(context_turns=self.context_turns, max_chars=self.max_chars, head_chars=self.head_chars,
                    context_chars=self.context_chars, context_roles=tuple(self.context_roles),
                    context_below_chars=self.context_below_chars)

    @model_validator(mode="after")
    def _head_within(self) -> "ClassifierConfig":
        if self.head_chars > self.max_chars:
            raise ValueError(f"head_chars ({self.head_chars}) must not exceed max_chars ({self.max_chars})")
        return self

    @model_validator(mode="after")
    def _threshold_or_share(self) -> "ClassifierConfig":
        if self.target_cloud_share is not None and "threshold" in self.model_fields_set:
            raise ValueError("set either threshold or target_cloud_share, not both")
        return self


class SessionConfig(_Strict):
    """``routing.session``: whether the turns of one conversation keep the tier of the previous
    turn (``sticky``) or are routed one by one (``per_turn``); see :mod:`router.routing.session`."""

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
    escalation_order: list[str] = Field(
        default_factory=list,
        description="tiers asked after the cloud tier, in order, when a routed (auto) request's answer breaks its "
        "response_format (json_object / json_schema): each untried tier in turn until one answers in the format; "
        "the answer is marked 'returned anyway' only when none is left (router/pipeline/format_escalation.py)")
