"""Savings report: pure aggregation of logged requests (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .records import RequestRecord

__all__ = ["Summary", "summarize"]


@dataclass(frozen=True)
class Summary:
    """Totals over a set of logged requests.

    Attributes:
        requests: all logged requests, failed ones included; ok/failed split them.
        local_share: answered by the local tier / ok requests (0..1).
        escalation_rate: escalated / ok requests (0..1).
        actual_usd: sum of every logged call's cost (USD).
        all_cloud_usd: sum of the requests' counterfactual cloud cost (USD).
        savings_usd: all_cloud_usd - actual_usd; savings_pct: savings / all_cloud (%),
            None when all_cloud is 0.
        unpriced_calls: calls whose price is unknown (their cost is excluded and flagged).
        cache_hits: ok requests answered from the response cache (no model call).
    """

    requests: int
    ok: int
    failed: int
    local: int
    escalated: int
    degraded: int
    local_share: float
    escalation_rate: float
    prompt_tokens: int
    completion_tokens: int
    actual_usd: float
    all_cloud_usd: float
    savings_usd: float
    savings_pct: float | None
    unpriced_calls: int
    cache_hits: int = 0


def summarize(records: Iterable[RequestRecord]) -> Summary:
    """Aggregate requests into a :class:`Summary`."""
    records = list(records)
    ok = [r for r in records if r.status == "ok"]
    calls = [c for r in records for c in r.calls]
    actual = sum(c.cost_usd for c in calls if c.cost_usd is not None)
    all_cloud = sum(r.counterfactual_usd for r in ok if r.counterfactual_usd is not None)
    savings = all_cloud - actual
    n_ok = len(ok)
    return Summary(
        requests=len(records),
        ok=n_ok,
        failed=len(records) - n_ok,
        local=sum(r.local for r in ok),
        escalated=sum(r.escalated for r in ok),
        degraded=sum(r.degraded for r in ok),
        local_share=sum(r.local for r in ok) / n_ok if n_ok else 0.0,
        escalation_rate=sum(r.escalated for r in ok) / n_ok if n_ok else 0.0,
        prompt_tokens=sum(c.prompt_tokens for c in calls),
        completion_tokens=sum(c.completion_tokens for c in calls),
        actual_usd=actual,
        all_cloud_usd=all_cloud,
        savings_usd=savings,
        savings_pct=(100.0 * savings / all_cloud) if all_cloud > 0 else None,
        unpriced_calls=sum(c.cost_usd is None for c in calls),
        cache_hits=sum(bool(r.cache) for r in ok),
    )
