"""What-if replay: re-decide every logged request under another policy, calling no model.

For each logged request, :func:`replay` runs the pure decision (:func:`router.routing.decide.decide`)
on the inputs the log holds (requested model, classifier score, whether the cloud tier was
available) under the new policy, then the pure escalation check
(:func:`router.cascade.verdict.should_escalate`, thresholds and combiner included) on the logged
signals of the local attempt (every signal when the log kept them, ``calls.signals``; the
mean token log-probability and empty flag in older logs), and prices the projected calls from logged token
counts with the new policy's prices (:func:`router.ledger.cost.price_call`: a table lookup, no
model is called).

Projection rules, per ok request:

- decision and escalation verdict unchanged: the logged calls, re-priced (so replaying the
  policy that produced the log reproduces its decisions and costs exactly);
- a call the log does not hold is synthesised: a cloud call from the request's logged
  cloud-tokenizer prompt count and completion estimate (the counterfactual's inputs,
  :mod:`router.ledger.cost`), a local call from the same counts with the mean logged local latency
  (for hourly prices);
- a request newly routed to the local tier whose local attempt was never logged is
  escalated with probability ``q``: the share of logged local attempts that the new
  escalation rule escalates; its cost and counts are expected values (fractional).

Quality (:mod:`router.analysis.quality`): an answer from the cloud tier counts as retained; a local
answer that has its own sample (a shadow sample, the escalation sample of an escalated
request whose local answer the new policy would keep, or the ``local_shadow`` sample of a
cloud-routed request, ``shadow.cloud_rate``) counts as its verdict; any other local answer
is estimated at the shadow-sample agreement rate. Requests that were answered by the cloud,
have no ``local_shadow`` sample and would now be answered locally are such estimates; they
are counted in ``quality_extrapolated`` because harder prompts may agree less often than
the sampled ones.

Failed requests keep their logged calls, re-priced, and are not re-decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..cascade.cascade import caps_share, checks as is_checked, may_escalate
from ..cascade.verdict import Signals, should_escalate
from ..errors import RouterError
from ..ledger.cost import price_call
from ..policy import EscalationConfig, Policy, TierConfig
from ..store.records import CallRecord, RequestRecord, ShadowRecord
from .quality import Retention, estimate_retention
from .redecide import SessionReplay, ShareCapReplay, decision_for, logged_decision, policy_as_logged
from .report import CHECK_PURPOSES, quality_retention

__all__ = ["Outcome", "Projection", "ReplayResult", "replay", "decision_for", "policy_as_logged"]


@dataclass(frozen=True)
class Outcome:
    """Totals of a policy over the replayed requests.

    Attributes:
        requests: ok requests; cost_usd: serving cost of all requests (USD, unpriced calls
            excluded); unpriced_calls: calls without a known price (expected count).
        local_share, escalation_rate: of ok requests (0..1).
        quality: estimated quality retention with its 95% interval.
        shadow_usd: cost of shadow sampling (USD; projected: expected at the new rate from
            the mean logged shadow-call cost).
    """

    requests: int
    cost_usd: float
    unpriced_calls: float
    local_share: float
    escalation_rate: float
    quality: Retention
    shadow_usd: float


@dataclass(frozen=True)
class Projection:
    """One request under the new policy.

    Attributes:
        request_id; logged_tier / tier: first tier chosen in the log / under the new policy
        (None: the request is not re-decided, or the new policy would reject it);
        logged_escalated / escalation_p: escalated in the log / probability it escalates now
        (0 or 1 when known); local_p: probability the local tier answers; cost_usd: expected
        cost (USD, None when a projected call has no price).
    """

    request_id: str
    logged_tier: str | None
    tier: str | None
    logged_escalated: bool
    escalation_p: float
    local_p: float
    cost_usd: float | None


@dataclass(frozen=True)
class ReplayResult:
    """Actual (as logged) beside projected (under the new policy).

    Attributes:
        actual, projected: :class:`Outcome` of each.
        decisions_changed: ok requests whose first tier differs; escalations_changed: whose
            escalation verdict differs (known verdicts only); escalation_estimated: newly
            local requests whose escalation is estimated (their local attempt is not in the
            log); quality_extrapolated: expected local answers never seen locally;
            would_fail: ok requests the new policy rejects (unknown model, tier unavailable).
        projections: per request.
    """

    actual: Outcome
    projected: Outcome
    decisions_changed: int
    escalations_changed: int
    escalation_estimated: int
    quality_extrapolated: float
    would_fail: int
    projections: list[Projection] = field(default_factory=list)


def _local_attempt(record: RequestRecord) -> CallRecord | None:
    """The logged local attempt whose signals were checked (None when none was)."""
    for call in record.calls:
        if call.purpose == "primary" and call.status == "ok" and (call.mean_logprob is not None or call.empty_answer is not None):
            return call
    return None


def logged_signals(call: CallRecord) -> Signals:
    """The signals of a logged local attempt: every signal the log kept (``call.signals``), or
    for a log written before signals were kept, the mean log-probability and the empty flag
    (other signals unmeasured: they break no threshold and a combiner reads them as neutral)."""
    if call.signals:
        return Signals.from_dict(call.signals)
    empty = call.empty_answer if call.empty_answer is not None else call.completion_tokens == 0
    return Signals(n_tokens=call.completion_tokens, mean_logprob=call.mean_logprob, min_logprob=None,
                   p10_logprob=None, p25_logprob=None, p50_logprob=None, first_logprob=None,
                   mean_margin=None, min_margin=None, n_chars=0, finish_length=False, repetition=0.0,
                   refusal=False, empty=empty)


def _escalates(call: CallRecord, escalation: EscalationConfig, router_score: float | None = None) -> bool:
    """The verdict of ``escalation`` (the request's settings under the new policy) on a logged
    local attempt (thresholds and combiner on the logged signals; a self-check or
    consistency the log lacks stays unmeasured)."""
    return should_escalate(logged_signals(call), escalation, router_score).escalate


def _tier_for(call: CallRecord, record: RequestRecord, policy: Policy) -> TierConfig:
    """The new policy's tier that prices a logged call: same name, else by role."""
    if call.tier in policy.tiers:
        return policy.tiers[call.tier]
    if call.purpose == "escalation" or not (record.local or (record.escalated and call.purpose == "primary")):
        return policy.cloud
    return policy.local


def _price(tier: TierConfig, call: CallRecord) -> float | None:
    return price_call(tier, call.prompt_tokens, call.completion_tokens, call.cached_prompt_tokens, call.latency_ms)[0]


class _Costs:
    """Accumulates expected cost and unpriced-call counts."""

    def __init__(self) -> None:
        self.usd = 0.0
        self.unpriced = 0.0
        self.request_unknown = False

    def add(self, usd: float | None, weight: float = 1.0) -> None:
        if weight <= 0:
            return
        if usd is None:
            self.unpriced += weight
            self.request_unknown = True
        else:
            self.usd += usd * weight


def _sample_verdicts(shadows: Iterable[ShadowRecord]) -> dict[tuple[str, str], bool]:
    """(request id, sample kind) -> whether the local answer agrees, for usable samples."""
    return {(s.request_id, s.kind): bool(s.agrees) for s in shadows if s.status == "ok" and s.agrees is not None}


def replay(records: Iterable[RequestRecord], shadows: Iterable[ShadowRecord], policy: Policy,
           base_threshold: float | None = None) -> ReplayResult:
    """Project the logged requests under ``policy`` (pure apart from litellm's price table).

    Args:
        records: logged requests with their calls (``store.requests()``), oldest first.
        shadows: their quality samples (``store.shadows()``).
        policy: the policy to replay.
        base_threshold: the threshold ``policy``'s ``target_cloud_share`` derives from its
            artifact card (None when it sets a threshold).

    Returns:
        Actual and projected :class:`Outcome`, counts of what changed, per-request projections.
    """
    records = list(records)
    shadows = list(shadows)
    ids = {r.id for r in records}
    shadows = [s for s in shadows if s.request_id in ids]
    verdicts = _sample_verdicts(shadows)
    local_ids = {r.id for r in records if r.status == "ok" and r.local}
    actual_quality = quality_retention(records, shadows)
    rate = actual_quality.rate  # agreement of the logged shadow samples: estimates unsampled local answers

    attempts = [(c, r.score) for r in records if r.status == "ok" for c in [_local_attempt(r)] if c is not None]
    q = sum(_escalates(c, policy.escalation, score) for c, score in attempts) / len(attempts) if attempts else 0.0
    local_latencies = [c.latency_ms for r in records for c in r.calls
                       if c.status == "ok" and r.local and c.tier == r.tier and c.purpose not in CHECK_PURPOSES]
    mean_local_latency = sum(local_latencies) / len(local_latencies) if local_latencies else 0.0

    actual_cost = _Costs()
    projected_cost = _Costs()
    ok = [r for r in records if r.status == "ok"]
    n = len(ok)
    proj_local = proj_esc = proj_cloud = proj_estimated = extrapolated = 0.0
    observed: list[bool] = []
    changed = esc_changed = esc_estimated = would_fail = 0
    projections: list[Projection] = []
    share_counted = caps_share(policy)
    cap = ShareCapReplay()
    sessions = SessionReplay()

    for r in records:
        for c in r.calls:
            actual_cost.add(c.cost_usd)
        if r.status != "ok":
            for c in r.calls:
                projected_cost.add(_price(_tier_for(c, r, policy), c))
            continue
        view = policy_as_logged(policy, r.cloud_available)
        decision = None
        if r.cache:  # answered from the response cache: never routed, nothing to re-decide
            tier = r.routed_tier
        else:
            try:
                decision = logged_decision(r, policy, base_threshold, sessions)
            except RouterError:
                would_fail += 1
                projections.append(Projection(r.id, r.routed_tier, None, r.escalated, 0.0, 0.0, 0.0))
                continue
            tier = decision.tier
            # the session's next turn follows the tier that answers this one (the logged one on the same route)
            sessions.note(r, r.tier if tier == r.routed_tier and r.tier else tier, view)
        changed += tier != r.routed_tier
        costs = _Costs()
        attempt = _local_attempt(r)
        logged_cloud = next((c for c in reversed(r.calls) if c.status == "ok" and c.tier == r.tier and not r.local), None)
        is_local = tier == view.routing.local_tier
        checks = decision is not None and is_checked(view, decision, tier) and may_escalate(view, decision)
        can_escalate = view.cloud.available

        same_route = tier == r.routed_tier
        primary = next((c for c in r.calls if c.purpose == "primary"), None)
        primary_failed = primary is None or primary.status != "ok"
        escalation_failed = any(c.purpose == "escalation" and c.status != "ok" for c in r.calls)
        logged_usd = [_price(_tier_for(c, r, view), c) for c in r.calls]

        if same_route and not r.escalated and (not checks or primary_failed):
            # same route and nothing to re-check: the logged calls, re-priced
            for usd in logged_usd:
                costs.add(usd)
            esc_p, local_p = 0.0, 1.0 if r.local else 0.0
        elif is_local and same_route and attempt is not None:
            escalate = checks and _capped_verdict(attempt, r, decision.escalation, share_counted, can_escalate, cap)
            if escalate and (escalation_failed or not can_escalate):
                for usd in logged_usd:  # the log shows what happens: the local answer is kept
                    costs.add(usd)
                esc_p = 0.0
            else:
                esc_p = 1.0 if escalate else 0.0
                costs.add(_price(_tier_for(attempt, r, view), attempt))
                if escalate:
                    costs.add(_cloud_usd(r, logged_cloud, view))
            esc_changed += (esc_p == 1.0) != r.escalated
            local_p = 1.0 - esc_p
        elif is_local:
            if same_route and r.local:  # answered locally unchecked (escalation was off): logged calls
                for usd in logged_usd:
                    costs.add(usd)
            else:  # newly local: a local call synthesised from the logged cloud token counts
                costs.add(price_call(view.local, r.cloud_prompt_tokens or r.prompt_tokens,
                                     r.cloud_completion_tokens or r.completion_tokens, 0, mean_local_latency)[0])
            esc_p = q if checks and can_escalate else 0.0
            esc_estimated += checks and can_escalate
            if esc_p > 0:
                costs.add(_cloud_usd(r, logged_cloud, view), esc_p)
            local_p = 1.0 - esc_p
        else:
            if logged_cloud is not None and r.tier == tier:
                costs.add(_price(_tier_for(logged_cloud, r, view), logged_cloud))
            elif tier == view.routing.cloud_tier:
                costs.add(_cloud_usd(r, logged_cloud, view))
            else:  # a forced tier that the log did not answer with: nothing to price it from
                costs.add(None)
            esc_p, local_p = 0.0, 0.0

        projected_cost.usd += costs.usd
        projected_cost.unpriced += costs.unpriced
        proj_local += local_p
        proj_esc += esc_p
        if local_p > 0:
            # a cloud-routed request's own verdict is its local_shadow sample (shadow.cloud_rate)
            kind = "escalation" if r.escalated else ("shadow" if r.local else "local_shadow")
            verdict = verdicts.get((r.id, kind))
            if verdict is not None and local_p == 1.0:
                observed.append(verdict)
            else:
                proj_estimated += local_p
                if not r.local and not r.escalated:
                    extrapolated += local_p
        proj_cloud += 1.0 - local_p
        projections.append(Projection(r.id, r.routed_tier, tier, r.escalated, esc_p, local_p,
                                      None if costs.request_unknown else costs.usd))

    projected_quality = estimate_retention(n, proj_cloud, observed, proj_estimated, rate)

    shadow_calls = [s for s in shadows if s.kind == "shadow"]
    actual_shadow = (sum(s.cost_usd or 0.0 for s in shadows if s.kind in ("shadow", "local_shadow"))
                     + sum(s.judge_cost_usd or 0.0 for s in shadows))
    priced_shadow = [s.cost_usd for s in shadow_calls if s.cost_usd is not None and s.status == "ok"]
    mean_shadow = sum(priced_shadow) / len(priced_shadow) if priced_shadow else 0.0
    projected_shadow = policy.shadow.rate * proj_local * mean_shadow

    actual = Outcome(n, actual_cost.usd, actual_cost.unpriced, len(local_ids) / n if n else 0.0,
                     sum(r.escalated for r in ok) / n if n else 0.0, actual_quality, actual_shadow)
    projected = Outcome(n, projected_cost.usd, projected_cost.unpriced, proj_local / n if n else 0.0,
                        proj_esc / n if n else 0.0, projected_quality, projected_shadow)
    return ReplayResult(actual, projected, changed, esc_changed, esc_estimated, extrapolated, would_fail, projections)


def _cloud_usd(record: RequestRecord, logged_cloud: CallRecord | None, policy: Policy) -> float | None:
    """Cost of the request's cloud call under ``policy``: the logged one re-priced, else one
    synthesised from the logged cloud token counts (the counterfactual's inputs)."""
    if logged_cloud is not None:
        return _price(policy.cloud, logged_cloud)
    escalation = next((c for c in record.calls if c.purpose == "escalation" and c.status == "ok"), None)
    if escalation is not None:
        return _price(policy.cloud, escalation)
    if record.cloud_prompt_tokens is None:
        return None
    return price_call(policy.cloud, record.cloud_prompt_tokens, record.cloud_completion_tokens or 0)[0]


def _capped_verdict(attempt: CallRecord, record: RequestRecord, esc: EscalationConfig, counted: bool,
                    can_escalate: bool, cap: ShareCapReplay) -> bool:
    """The new verdict on a checked logged attempt after the share cap, counting it the way
    the live cascade does (:meth:`router.cascade.cascade.Cascade.escalation_allowed`)."""
    if not _escalates(attempt, esc, record.score):
        if counted:
            cap.note(esc, record.ts, False)
        return False
    if not can_escalate:
        return True  # kept by the caller's branch: the cloud tier was unavailable
    if counted and esc.max_share < 1.0 and not cap.allows(esc, record.ts):
        cap.note(esc, record.ts, False)
        return False
    if counted:
        cap.note(esc, record.ts, True)
    return True
