"""Policy sections ``cache``, ``budgets`` and ``rate_limits``: the guards around tier calls."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import _Strict

__all__ = ["SemanticCacheConfig", "CacheConfig", "BudgetLimit", "ThresholdShift", "BudgetsConfig", "RateLimitsConfig"]


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
