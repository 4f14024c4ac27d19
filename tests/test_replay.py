"""What-if replay on the log of ``tests/accounting_log.py``: the same policy reproduces the
logged decisions and costs exactly; other policies give the projections worked out by hand."""

from __future__ import annotations

import pytest

from router.policy import policy_from_dict
from router.analysis.quality import wilson_interval
from router.analysis.replay import decision_for, policy_as_logged, replay
from router.analysis.report import summarize

from .accounting_log import POLICY, POLICY_DICT, build_records, build_shadows


def _policy(**changes):
    d = {**POLICY_DICT, "routing": {"classifier": {"threshold": changes.get("threshold", 0.5)}},
         "escalation": {"enabled": True, "min_mean_logprob": changes.get("min_mean_logprob", -1.0)}}
    return policy_from_dict(d)


@pytest.fixture(scope="module")
def log():
    return build_records(), build_shadows()


def test_same_policy_reproduces_logged_decisions_exactly(log):
    records, shadows = log
    result = replay(records, shadows, POLICY)
    ok = {r.id: r for r in records if r.status == "ok"}
    assert len(result.projections) == len(ok)
    for p in result.projections:
        r = ok[p.request_id]
        assert p.tier == r.routed_tier
        assert p.escalation_p == (1.0 if r.escalated else 0.0)
        assert p.local_p == (1.0 if r.local else 0.0)
        assert p.cost_usd == r.cost_usd if r.cost_usd is not None else p.cost_usd is None
    assert (result.decisions_changed, result.escalations_changed, result.would_fail) == (0, 0, 0)
    assert result.escalation_estimated == 0 and result.quality_extrapolated == 0
    a, p = result.actual, result.projected
    assert p.cost_usd == pytest.approx(a.cost_usd, abs=1e-15)
    assert (p.requests, p.unpriced_calls, p.local_share, p.escalation_rate, p.quality) == (
        a.requests, a.unpriced_calls, a.local_share, a.escalation_rate, a.quality)
    s = summarize(records, shadows)
    assert result.actual.cost_usd == pytest.approx(s.actual_usd, abs=1e-15)
    assert (result.actual.local_share, result.actual.escalation_rate) == (s.local_share, s.escalation_rate)
    assert result.actual.quality == s.quality
    assert result.actual.unpriced_calls == 1


def test_all_cloud_policy_projects_the_counterfactual(log):
    records, shadows = log
    by_id = {r.id: r for r in records}
    result = replay(records, shadows, _policy(threshold=0.0))
    assert result.decisions_changed == 3  # r1, r2, r6 now go to the cloud first
    expected = by_id["r1"].counterfactual_usd + 0.0019 + 0.0022 + by_id["r6"].counterfactual_usd
    assert result.projected.cost_usd == pytest.approx(expected, abs=1e-15)  # r2's escalation tax is gone
    assert (result.projected.local_share, result.projected.escalation_rate) == (0.0, 0.0)
    q = result.projected.quality
    assert q.estimate == pytest.approx(1.0) and q.lo == pytest.approx(1.0)
    assert result.projected.shadow_usd == 0.0


def test_all_local_with_lenient_escalation(log):
    """threshold 1 sends r3 to the local tier (its local attempt is not in the log); with
    min_mean_logprob -3 no logged attempt escalates, so q = 0 and r2 keeps its local answer."""
    records, shadows = log
    result = replay(records, shadows, _policy(threshold=1.0, min_mean_logprob=-3.0))
    by_id = {p.request_id: p for p in result.projections}
    assert by_id["r3"].tier == "local" and by_id["r3"].escalation_p == 0.0
    assert by_id["r2"].escalation_p == 0.0 and by_id["r2"].cost_usd == pytest.approx(0.01)
    # r3 local: 2000 + 100 cloud-counted tokens, priced by the hour at the mean local latency (400 ms)
    assert by_id["r3"].cost_usd == pytest.approx(0.004)
    assert result.projected.cost_usd == pytest.approx(0.005 + 0.01 + 0.004 + 0.003, abs=1e-15)
    assert (result.decisions_changed, result.escalations_changed) == (1, 1)
    assert (result.escalation_estimated, result.quality_extrapolated) == (1, 1.0)
    assert result.projected.local_share == pytest.approx(4 / 5)
    assert result.projected.escalation_rate == 0.0
    # r4 retained; r1 agrees, r6 and r2 (its escalation sample) do not; r3 estimated at 1 of 2
    q = result.projected.quality
    lo, hi = wilson_interval(1, 2)
    assert q.estimate == pytest.approx((1 + 1 + 0.5) / 5)
    assert (q.lo, q.hi) == (pytest.approx((2 + lo) / 5), pytest.approx((2 + hi) / 5))
    # expected shadow spend: rate 0.5 x 4 local answers x mean shadow-call cost
    assert result.projected.shadow_usd == pytest.approx(0.5 * 4 * (0.00005 + 0.00008) / 2)


def test_a_cloud_routed_requests_local_shadow_verdict_is_its_own(log):
    """With ``shadow.cloud_rate`` the local tier also answered r3 (cloud-routed) and the judge
    found it as good: made local by the new policy, r3 counts that verdict instead of the
    estimate at the logged agreement rate (1 of 2), and nothing is extrapolated."""
    import dataclasses

    from router.store.records import ShadowRecord

    records, shadows = log
    r3 = next(r for r in records if r.id == "r3")
    sample = ShadowRecord("r3", r3.ts + 1, "local_shadow", "local", "slm-local/smollm2", local_text="ok",
                          cloud_text="ok", cost_usd=0.00001, sample_p=1.0)
    sample = dataclasses.replace(sample, agrees=True)
    result = replay(records, [*shadows, sample], _policy(threshold=1.0, min_mean_logprob=-3.0))
    q = result.projected.quality
    assert q.estimate == pytest.approx((1 + 1 + 1) / 5)
    assert result.quality_extrapolated == 0
    assert result.actual.shadow_usd == pytest.approx(replay(records, shadows, POLICY).actual.shadow_usd + 0.00001)


def test_newly_local_requests_escalate_at_the_logged_rate(log):
    """Same escalation rule as logged: of the three logged local attempts one (r2) escalates,
    so r3, newly local, escalates with probability 1/3: expected cost and shares."""
    records, shadows = log
    result = replay(records, shadows, _policy(threshold=1.0))
    r3 = next(p for p in result.projections if p.request_id == "r3")
    assert r3.escalation_p == pytest.approx(1 / 3) and r3.local_p == pytest.approx(2 / 3)
    assert r3.cost_usd == pytest.approx(0.004 + 0.0022 / 3)
    assert result.projected.cost_usd == pytest.approx(0.005 + 0.0119 + 0.004 + 0.0022 / 3 + 0.003, abs=1e-15)
    assert result.projected.local_share == pytest.approx((1 + 2 / 3 + 1) / 5)
    assert result.projected.escalation_rate == pytest.approx((1 + 1 / 3) / 5)
    assert result.escalations_changed == 0


def test_stricter_escalation_flips_logged_verdicts(log):
    records, shadows = log
    result = replay(records, shadows, _policy(min_mean_logprob=-0.6))  # r6 (-0.8) now escalates, r1 (-0.5) not
    r6 = next(p for p in result.projections if p.request_id == "r6")
    assert r6.escalation_p == 1.0 and r6.local_p == 0.0
    by_id = {r.id: r for r in records}
    # r6 gains a cloud call synthesised from its logged cloud token counts (= its counterfactual)
    assert r6.cost_usd == pytest.approx(0.003 + by_id["r6"].counterfactual_usd)
    assert result.escalations_changed == 1 and result.decisions_changed == 0


def test_cloud_availability_is_replayed_as_logged(log):
    records, _ = log
    r3 = next(r for r in records if r.id == "r3")
    assert decision_for(r3, POLICY) == "cloud"
    unavailable = r3.__class__(**{**{f: getattr(r3, f) for f in r3.__slots__}, "cloud_available": False})
    assert decision_for(unavailable, POLICY) == "local"  # degraded, as the router would have done
    keyless = policy_from_dict({**POLICY_DICT, "tiers": {**POLICY_DICT["tiers"], "cloud": {"model": "openai/gpt-4o-mini"}}})
    assert not keyless.cloud.available
    assert policy_as_logged(keyless, True).cloud.available  # the replaying machine's keys do not matter
    assert decision_for(r3, keyless) == "cloud"


def test_a_policy_without_a_forced_tier_rejects_those_requests(log):
    records, shadows = log
    tiers = {k: v for k, v in POLICY_DICT["tiers"].items() if k != "mystery"}
    result = replay(records, shadows, policy_from_dict({**POLICY_DICT, "tiers": tiers}))
    assert result.would_fail == 1  # r4 asked for 'mystery'
    assert next(p for p in result.projections if p.request_id == "r4").tier is None
