"""Savings report: pure aggregation of logged requests and quality samples (no I/O).

:func:`summarize` totals a set of requests; :func:`summarize_by` splits them by tier,
route, model, API key or day; :func:`latency_by_tier` gives call latency percentiles.
Rendering (Markdown, HTML, JSON, CSV) is in :mod:`router.analysis.render`.

Definitions (all USD unless said):

- actual cost: the sum of every logged call's cost (failed requests' calls included);
  calls with an unknown price are excluded and counted in ``unpriced_calls``.
- all-cloud cost: the sum of ok requests' counterfactual cloud cost (:mod:`router.ledger.cost`).
- savings = all-cloud - actual; net savings = savings - shadow spend (the cloud and judge
  calls made only to measure quality).
- judge: the judge tier's calls on shadow samples (both orders of the answers), their
  prompt/completion tokens and cost, on their own line (part of the shadow spend).
- escalation tax: what the local attempts of escalated requests took (tokens, cost,
  latency), spent although the cloud answered in the end.
- self-check: calls made to check an answer (``purpose == "self_check"``), on their own line;
  consistency samples (``purpose == "consistency"``, extra local answers drawn to measure
  agreement) on the line after it. Both are part of the serving cost and are not counted in
  the escalation tax.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..ledger.judge import OUTCOMES
from .quality import Retention, agreement_rate, estimate_retention, weighted_agreement_rate
from ..store.records import CallRecord, RequestRecord, ShadowRecord

__all__ = ["Summary", "summarize", "summarize_by", "GROUPINGS", "group_key", "route_of", "latency_by_tier",
           "TierLatency", "quality_retention", "answering_call", "CHECK_PURPOSES"]

GROUPINGS = ("tier", "route", "model", "api-key", "day", "session")
NONE_KEY = "(none)"


@dataclass(frozen=True)
class Summary:
    """Totals over a set of logged requests.

    Attributes:
        requests: all logged requests, failed ones included; ok/failed split them.
        local_share: answered by the local tier / ok requests (0..1).
        escalation_rate: escalated / ok requests (0..1).
        prompt_tokens, completion_tokens, cached_prompt_tokens: over all calls (tokens).
        cached_over_prompt: calls whose tier reported more cached than prompt tokens (priced
            with every prompt token cached; a provider's usage report to check).
        actual_usd: sum of every logged call's cost (USD).
        all_cloud_usd: sum of the requests' counterfactual cloud cost (USD).
        savings_usd: all_cloud_usd - actual_usd; savings_pct: savings / all_cloud (%),
            None when all_cloud is 0.
        unpriced_calls: calls whose price is unknown (their cost is excluded and flagged).
        cache_hits: ok requests answered from the response cache (no model call).
        unpriced_calls: calls whose price is unknown (their cost is excluded and flagged);
            unpriced_requests: requests with such a call; unpriced_models: their models.
        unknown_counterfactual: ok requests whose cloud cost is unknown (excluded).
        price_sources: calls per price source (``policy``, ``hourly``, ``litellm``, ``none``).
        escalation_tax_*: the local attempts of escalated requests: their number (calls),
            prompt and completion tokens, cost (USD) and summed latency (ms).
        self_check_*: calls with purpose ``self_check``: number, tokens, cost (USD).
        consistency_*: calls with purpose ``consistency``: number, tokens, cost (USD).
        shadow_samples: quality samples (shadow and escalation); shadow_calls: extra calls
            made for them (cloud calls of ``shadow`` samples, local calls of ``local_shadow`` ones), of
            which local_shadow_calls local; shadow_usd: their cost plus judge calls (USD);
            net_savings_usd: savings_usd - shadow_usd.
        judge_samples: samples the judge tier judged; judge_calls: its calls (one per order
            asked); judge_prompt_tokens,
            judge_completion_tokens: its tokens (both orders); judge_usd: its cost (USD; part of
            shadow_usd); judge_unsure: judged samples without a verdict (the orders disagreed).
        judge_outcomes: judged samples per three-way verdict on the local answer (``better``,
            ``same``, ``worse``; samples of logs written before it have none).
        quality: estimated quality retention (see :mod:`router.analysis.quality`).
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
    cached_prompt_tokens: int = 0
    cached_over_prompt: int = 0
    unpriced_requests: int = 0
    unpriced_models: tuple[str, ...] = ()
    unknown_counterfactual: int = 0
    price_sources: dict[str, int] = field(default_factory=dict)
    escalation_tax_calls: int = 0
    escalation_tax_prompt_tokens: int = 0
    escalation_tax_completion_tokens: int = 0
    escalation_tax_usd: float = 0.0
    escalation_tax_latency_ms: float = 0.0
    self_check_calls: int = 0
    self_check_tokens: int = 0
    self_check_usd: float = 0.0
    consistency_calls: int = 0
    consistency_tokens: int = 0
    consistency_usd: float = 0.0
    shadow_samples: int = 0
    shadow_calls: int = 0
    local_shadow_calls: int = 0
    shadow_usd: float = 0.0
    net_savings_usd: float = 0.0
    quality: Retention | None = None
    judge_samples: int = 0
    judge_calls: int = 0
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    judge_usd: float = 0.0
    judge_unsure: int = 0
    judge_outcomes: dict[str, int] = field(default_factory=dict)


CHECK_PURPOSES = frozenset({"self_check", "consistency"})
"""Purposes of calls made only to check an answer (their answers never reach the client)."""


def answering_call(record: RequestRecord) -> CallRecord | None:
    """The call whose answer the client got: the last ok call on the answering tier that
    was not a check call."""
    for call in reversed(record.calls):
        if call.status == "ok" and call.tier == record.tier and call.purpose not in CHECK_PURPOSES:
            return call
    return None


def _escalation_tax_calls(record: RequestRecord) -> list[CallRecord]:
    """Calls of an escalated request made before its escalation call (the local attempt)."""
    if not record.escalated:
        return []
    out = []
    for call in record.calls:
        if call.purpose == "escalation":
            break
        if call.purpose not in CHECK_PURPOSES:
            out.append(call)
    return out


def quality_retention(records: Iterable[RequestRecord], shadows: Iterable[ShadowRecord]) -> Retention:
    """Estimated quality retention of ok requests from their shadow samples (pure); samples
    taken with unequal probabilities are weighted by their inverse (:mod:`.quality`)."""
    ok = [r for r in records if r.status == "ok"]
    local_ids = {r.id for r in ok if r.local}
    verdicts = {s.request_id: s for s in shadows
                if s.kind == "shadow" and s.status == "ok" and s.agrees is not None and s.request_id in local_ids}
    samples = list(verdicts.values())
    probabilities = {s.sample_p for s in samples if s.sample_p is not None}
    if len(probabilities) > 1:  # unequal sampling (shadow.strategy: uncertain): inverse-probability weights
        rate = weighted_agreement_rate([bool(s.agrees) for s in samples], [s.sample_p or 1.0 for s in samples],
                                       [s.similarity for s in samples])
        return estimate_retention(len(ok), len(ok) - len(local_ids), [], len(local_ids), rate)
    rate = agreement_rate([bool(s.agrees) for s in samples], [s.similarity for s in samples])
    observed = [bool(s.agrees) for s in samples]
    return estimate_retention(len(ok), len(ok) - len(local_ids), observed, len(local_ids) - len(observed), rate)


def summarize(records: Iterable[RequestRecord], shadows: Iterable[ShadowRecord] = ()) -> Summary:
    """Aggregate requests (and the quality samples of those requests) into a :class:`Summary`."""
    records = list(records)
    ids = {r.id for r in records}
    shadows = [s for s in shadows if s.request_id in ids]
    ok = [r for r in records if r.status == "ok"]
    calls = [c for r in records for c in r.calls]
    actual = sum(c.cost_usd for c in calls if c.cost_usd is not None)
    all_cloud = sum(r.counterfactual_usd for r in ok if r.counterfactual_usd is not None)
    savings = all_cloud - actual
    n_ok = len(ok)
    tax = [c for r in ok for c in _escalation_tax_calls(r)]
    checks = [c for c in calls if c.purpose == "self_check"]
    samples = [c for c in calls if c.purpose == "consistency"]
    shadow_calls = [s for s in shadows if s.kind in ("shadow", "local_shadow")]  # the samples that made a call
    judged = [s for s in shadows if s.judge_model is not None]
    judge_usd = sum(s.judge_cost_usd or 0.0 for s in judged)
    shadow_usd = sum(s.cost_usd or 0.0 for s in shadow_calls) + judge_usd
    sources = Counter(c.price_source or ("none" if c.cost_usd is None else "unrecorded") for c in calls)
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
        cached_prompt_tokens=sum(c.cached_prompt_tokens for c in calls),
        cached_over_prompt=sum(c.cached_prompt_tokens > c.prompt_tokens for c in calls),
        unpriced_requests=sum(any(c.cost_usd is None for c in r.calls) for r in records),
        unpriced_models=tuple(sorted({c.model for c in calls if c.cost_usd is None})),
        unknown_counterfactual=sum(r.counterfactual_usd is None for r in ok),
        price_sources=dict(sorted(sources.items())),
        escalation_tax_calls=len(tax),
        escalation_tax_prompt_tokens=sum(c.prompt_tokens for c in tax),
        escalation_tax_completion_tokens=sum(c.completion_tokens for c in tax),
        escalation_tax_usd=sum(c.cost_usd for c in tax if c.cost_usd is not None),
        escalation_tax_latency_ms=sum(c.latency_ms for c in tax),
        self_check_calls=len(checks),
        self_check_tokens=sum(c.prompt_tokens + c.completion_tokens for c in checks),
        self_check_usd=sum(c.cost_usd for c in checks if c.cost_usd is not None),
        consistency_calls=len(samples),
        consistency_tokens=sum(c.prompt_tokens + c.completion_tokens for c in samples),
        consistency_usd=sum(c.cost_usd for c in samples if c.cost_usd is not None),
        shadow_samples=len(shadows),
        shadow_calls=len(shadow_calls),
        local_shadow_calls=sum(s.kind == "local_shadow" for s in shadow_calls),
        shadow_usd=shadow_usd,
        net_savings_usd=savings - shadow_usd,
        quality=quality_retention(records, shadows) if records else None,
        judge_samples=len(judged),
        judge_calls=sum(len(s.judge_replies or ()) for s in judged),
        judge_prompt_tokens=sum(s.judge_prompt_tokens or 0 for s in judged),
        judge_completion_tokens=sum(s.judge_completion_tokens or 0 for s in judged),
        judge_usd=judge_usd,
        judge_unsure=sum(s.judge_verdict is None for s in judged),
        judge_outcomes={o: n for o in OUTCOMES if (n := sum(s.judge_outcome == o for s in judged))},
    )


def route_of(record: RequestRecord) -> str:
    """The path a request took: ``failed``, ``forced <tier>``, ``<local> -> <cloud> (escalated)``,
    ``<routed> -> <tier> (degraded)`` or ``(fallback)``, or the tier name when it went straight there."""
    if record.status != "ok":
        return "failed"
    if record.requested_model and record.requested_model != "auto":
        return f"forced {record.tier}"
    if record.escalated:
        local = next((c.tier for c in record.calls if c.purpose == "primary"), record.routed_tier)
        return f"{local} -> {record.tier} (escalated)"
    if record.routed_tier and record.routed_tier != record.tier:
        return f"{record.routed_tier} -> {record.tier} (fallback)"
    if record.degraded:
        return f"{record.tier} (degraded)"
    return record.tier or NONE_KEY


def _day(record: RequestRecord) -> str:
    return dt.datetime.fromtimestamp(record.ts, dt.timezone.utc).date().isoformat()


def _model(record: RequestRecord) -> str:
    call = answering_call(record)
    return call.model if call else NONE_KEY


_KEYS: dict[str, Callable[[RequestRecord], str]] = {
    "tier": lambda r: r.tier or NONE_KEY,
    "route": route_of,
    "model": _model,
    "api-key": lambda r: r.api_key_id or NONE_KEY,
    "day": _day,
    "session": lambda r: r.session_id or NONE_KEY,
}


def group_key(record: RequestRecord, by: str) -> str:
    """The group of a request under ``by`` (one of :data:`GROUPINGS`): the answering tier,
    the route, the answering model, the API key id, the UTC day (``YYYY-MM-DD``) or the
    session id.

    Raises:
        ValueError: ``by`` is not a known grouping.
    """
    try:
        return _KEYS[by](record)
    except KeyError:
        raise ValueError(f"unknown grouping {by!r}; use one of: {', '.join(GROUPINGS)}") from None


def summarize_by(records: Iterable[RequestRecord], by: str, shadows: Iterable[ShadowRecord] = ()) -> list[tuple[str, Summary]]:
    """:func:`summarize` per group, groups sorted by key. A request's whole cost (all its
    calls) and its quality samples go to its group.

    Raises:
        ValueError: ``by`` is not a known grouping.
    """
    if by not in _KEYS:
        raise ValueError(f"unknown grouping {by!r}; use one of: {', '.join(GROUPINGS)}")
    groups: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        groups[group_key(r, by)].append(r)
    by_request: dict[str, list[ShadowRecord]] = defaultdict(list)
    for s in shadows:
        by_request[s.request_id].append(s)
    return [(key, summarize(rs, [s for r in rs for s in by_request.get(r.id, ())])) for key, rs in sorted(groups.items())]


@dataclass(frozen=True)
class TierLatency:
    """Latency of a tier's ok calls (ms): count, p50, p95, max, and every value (for plots)."""

    tier: str
    calls: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    values_ms: tuple[float, ...]


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method) of sorted values."""
    if not sorted_values:
        return 0.0
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_by_tier(records: Iterable[RequestRecord]) -> list[TierLatency]:
    """Per tier, the latency of its ok calls (escalated requests' local attempts included)."""
    values: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for c in r.calls:
            if c.status == "ok":
                values[c.tier].append(c.latency_ms)
    out = []
    for tier, vs in sorted(values.items()):
        vs = sorted(vs)
        out.append(TierLatency(tier, len(vs), _percentile(vs, 0.5), _percentile(vs, 0.95), vs[-1], tuple(vs)))
    return out
