"""The cascade's pure parts and its edges, without a server: the verdict, the combiner, the
share cap (pure rule and its counters on process memory and on a real Redis), override
merging by overlays and rules, signals in the SQLite log and the Redis codec, and replay on
logged signals."""

from __future__ import annotations

import asyncio
import math
import sqlite3

import pytest

from router.cascade.verdict import answer_signals, p_correct, should_escalate
from router.routing.decide import decide, needs_score
from router.cascade.share_cap import BUCKETS, EscalationShare, cap_allows
from router.policy import CombinerConfig, EscalationConfig, EscalationOverride, StoreConfig, policy_from_dict
from router.store.records import CallRecord, RequestRecord
from router.analysis.replay import logged_signals, replay
from router.analysis.report import answering_call, summarize
from router.routing.rules import RequestFacts, constraints_for, evaluate_rules
from router.cascade.signals import AnswerSignals
from router.state.memory import MemoryState
from router.state.redis import RedisState
from router.store.codec import record_from_json, record_to_json
from router.store.sqlite import SQLiteStore

SURE = answer_signals("Paris is the capital of France.", [-0.05, -0.1, -0.2, -0.01, -0.3, -0.02], "stop",
                      top_logprobs=[[("Paris", -0.05), ("Lyon", -3.0)]] * 6)
UNSURE = answer_signals("Maybe Lyon or Nice", [-2.5, -1.9, -0.7, -3.1], "stop")


# -- verdict and combiner ----------------------------------------------------------------------
def test_should_escalate_order_hard_failures_then_mean_then_thresholds_then_combiner():
    cfg = EscalationConfig(min_mean_logprob=-1.0)
    assert not should_escalate(SURE, cfg).escalate
    v = should_escalate(UNSURE, cfg)
    assert v.escalate and v.reason == "mean logprob -2.05 < -1.00" and v.p_correct is None
    assert should_escalate(answer_signals(" ", [-0.1], "stop"), cfg).reason == "empty local answer"
    refusal = answer_signals("I'm sorry, I cannot answer that.", [-0.1] * 5, "stop")
    assert not should_escalate(refusal, cfg).escalate  # refusal is not in the default escalate_on
    assert should_escalate(refusal, cfg.model_copy(update={"escalate_on": ["refusal"]})).reason == \
        "local answer is a refusal"
    strict = EscalationConfig(min_mean_logprob=-100, min={"min_margin": 3.5}, max={"repetition": 0.3})
    v = should_escalate(SURE, strict)
    assert v.escalate and v.reason == "min_margin 2.95 < 3.50"
    # an unmeasured signal breaks no threshold: UNSURE has no margins, no self-check
    assert not should_escalate(UNSURE, EscalationConfig(min_mean_logprob=-100, min={"min_margin": 3.5,
                                                                                    "self_check": 0.9})).escalate
    assert should_escalate(UNSURE.with_extra(self_check=0.2),
                           EscalationConfig(min_mean_logprob=-100, min={"self_check": 0.5})).reason == \
        "self_check 0.20 < 0.50"
    assert should_escalate(UNSURE, EscalationConfig(enabled=False, min_mean_logprob=-0.1)).reason == "escalation disabled"


def test_p_correct_is_the_documented_logistic_and_reads_router_score():
    comb = CombinerConfig(signals=["mean_logprob", "router_score", "self_check"], weights=[2.0, -1.5, 1.0],
                          intercept=0.3, means=[-1.0, 0.5, 0.5], scales=[0.5, 0.25, 0.2], min_p_correct=0.6)
    s = UNSURE.with_extra(self_check=0.9)
    z = 0.3 + 2.0 * (-2.05 + 1.0) / 0.5 - 1.5 * (0.7 - 0.5) / 0.25 + 1.0 * (0.9 - 0.5) / 0.2
    assert p_correct(comb, s, 0.7) == pytest.approx(1 / (1 + math.exp(-z)))
    # missing router score counts 0.5; unmeasured self-check takes the neutral 0.5
    z0 = 0.3 + 2.0 * (-2.05 + 1.0) / 0.5
    assert p_correct(comb, UNSURE, None) == pytest.approx(1 / (1 + math.exp(-z0)))
    v = should_escalate(s, EscalationConfig(min_mean_logprob=-100, combiner=comb), router_score=0.7)
    assert v.escalate and v.p_correct == pytest.approx(1 / (1 + math.exp(-z)))
    assert v.reason == f"P(correct) {v.p_correct:.2f} < 0.60"
    keep = should_escalate(SURE, EscalationConfig(min_mean_logprob=-100, combiner=comb.model_copy(
        update={"min_p_correct": 0.01})), router_score=0.1)
    assert not keep.escalate and keep.reason.endswith("ok") and keep.p_correct is not None
    assert p_correct(comb, SURE, -1e6) == 1.0 or p_correct(comb, SURE, -1e6) > 0.999  # no overflow


def test_bad_combiner_and_threshold_values_are_clear_errors():
    with pytest.raises(ValueError, match="did you mean 'self_check'"):
        EscalationConfig(min={"self_chek": 0.5})
    with pytest.raises(ValueError, match="combiner.weights has 1 values for 2 signals"):
        CombinerConfig(signals=["mean_logprob", "router_score"], weights=[1.0])
    with pytest.raises(ValueError, match="unknown signal 'router_score'"):
        EscalationOverride(max={"router_score": 0.5})  # router_score is for the combiner only


# -- share cap ---------------------------------------------------------------------------------
@pytest.mark.parametrize("checked,escalated,max_share,allowed", [
    (0, 0, 1.0, True), (100, 100, 1.0, True),
    (0, 0, 0.0, False), (1000, 0, 0.0, False),
    (0, 0, 0.5, False),   # 1/1 > 0.5: the cap binds from the first answer
    (1, 0, 0.5, True),    # 1/2 <= 0.5
    (3, 1, 0.5, True), (3, 2, 0.5, False),
    (9, 1, 0.2, True), (9, 2, 0.2, False),
])
def test_cap_allows(checked, escalated, max_share, allowed):
    assert cap_allows(checked, escalated, max_share) is allowed


@pytest.fixture(params=["memory", "redis"])
def state(request):
    if request.param == "memory":
        yield MemoryState()
        return
    yield RedisState(StoreConfig(backend="redis", url=request.getfixturevalue("redis_url"),
                                 prefix=request.getfixturevalue("redis_prefix")))


def test_share_counters_slide_over_the_window(state):
    now = [1_000_000.0]
    share = EscalationShare(state, 100.0, clock=lambda: now[0])
    other = EscalationShare(state, 100.0, clock=lambda: now[0])  # a second replica on the same state

    async def run():
        assert await share.counts() == (0, 0)
        for escalated in (True, False, False):
            await share.note(escalated)
        await other.note(True)
        assert await share.counts() == (4, 2) and await other.counts() == (4, 2)
        now[0] += 100.0 / BUCKETS * (BUCKETS - 1)  # still inside the window
        assert await share.counts() == (4, 2)
        now[0] += 100.0 / BUCKETS  # the first bucket left the window
        assert await share.counts() == (0, 0)
        await state.close()

    asyncio.run(run())


def test_share_counts_none_when_redis_is_unreachable():
    from .fake_openai import free_port

    state = RedisState(StoreConfig(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", timeout_ms=200))
    share = EscalationShare(state, 60)

    async def run():
        assert await share.counts() is None
        await share.note(True)  # never raises

    asyncio.run(run())


# -- overrides: overlay, then rules (first rule per field) ---------------------------------------
def _policy(rules=(), overlays=None, keys=(), escalation=None):
    return policy_from_dict({
        "tiers": {"local": {"model": "slm-local/smollm2"}, "cloud": {"model": "openai/gpt-4o-mini", "api_key": "k"}},
        "escalation": escalation or {"min_mean_logprob": -1.0, "combiner": {
            "signals": ["mean_logprob"], "weights": [1.0], "min_p_correct": 0.5}},
        "rules": list(rules), "overlays": overlays or {}, "api_keys": list(keys),
    })


def _esc(policy, facts, overlay=None):
    c = constraints_for(policy, evaluate_rules(policy.rules, facts), overlay, "ov" if overlay else None)
    d = decide(facts.requested_model, 0.1 if needs_score(facts.requested_model, policy, c) else None, policy, c)
    return d


def test_override_apply_and_first_wins_merge():
    base = EscalationConfig(min={"self_check": 0.5, "min_margin": 1.0})
    o = EscalationOverride(min={"self_check": 0.8}, self_check=True, max_share=0.1)
    e = o.apply(base)
    assert e.min == {"self_check": 0.8, "min_margin": 1.0} and e.self_check and e.max_share == 0.1
    assert e.min_mean_logprob == base.min_mean_logprob and e.stream_check_tokens is None
    assert EscalationOverride(min_p_correct=0.9).apply(base) == base  # no combiner to cut
    merged = EscalationOverride.first_wins([
        EscalationOverride(min={"self_check": 0.3}, enabled=True),
        EscalationOverride(min={"self_check": 0.9, "mean_margin": 1.0}, enabled=False, stream_check_tokens=8),
    ])
    assert merged.enabled is True and merged.min == {"self_check": 0.3, "mean_margin": 1.0}
    assert merged.stream_check_tokens == 8 and merged.model_fields_set == {"enabled", "min", "stream_check_tokens"}
    assert EscalationOverride.first_wins([]) is None


def test_rule_overrides_apply_after_the_overlay_and_disable_escalation_still_wins():
    p = _policy(
        rules=[
            {"name": "strict-code", "match": {"last_user_regex": "```"},
             "action": {"escalation": {"enabled": True, "min_mean_logprob": -0.2, "min_p_correct": 0.9}}},
            {"name": "all", "match": {}, "action": {"escalation": {"min_mean_logprob": -3.0, "self_check": True}}},
            {"name": "eval", "match": {"metadata": {"purpose": "eval"}}, "action": {"disable_escalation": True}},
        ],
        overlays={"lax": {"escalation": {"enabled": False, "min_mean_logprob": -5.0, "max_share": 0.2}}})
    lax = p.overlays["lax"]
    d = _esc(p, RequestFacts("auto", "hello"))
    assert d.escalation.min_mean_logprob == -3.0 and d.escalation.self_check and d.escalation.enabled
    d = _esc(p, RequestFacts("auto", "```x```"), overlay=lax)
    # the first rule's fields win over the second's and over the overlay's; the overlay's max_share stays
    assert d.escalation.enabled and d.escalation.min_mean_logprob == -0.2 and d.escalation.self_check
    assert d.escalation.combiner.min_p_correct == 0.9 and d.escalation.max_share == 0.2
    assert "escalation off" not in d.reason
    d = _esc(p, RequestFacts("auto", "hello"), overlay=lax)  # no rule sets enabled: the overlay's off stays
    assert not d.escalation.enabled and "escalation off by overlay ov" in d.reason
    d = _esc(p, RequestFacts("auto", "```x```", metadata={"purpose": "eval"}))
    assert not d.escalation.enabled and "escalation off by rule eval" in d.reason
    off = _policy(rules=[{"name": "quiet", "match": {}, "action": {"escalation": {"enabled": False}}}])
    d = _esc(off, RequestFacts("auto", "x"))
    assert not d.escalation.enabled and "escalation off by rule quiet" in d.reason


def test_rule_action_accepts_escalation_alone_and_rejects_bad_values():
    from router.errors import PolicyError

    assert _policy(rules=[{"name": "r", "action": {"escalation": {"stream_check_tokens": 16}}}]).rules[0]\
        .action.escalation.stream_check_tokens == 16
    with pytest.raises((PolicyError, ValueError), match="max_share"):
        _policy(rules=[{"name": "r", "action": {"escalation": {"max_share": 1.5}}}])
    with pytest.raises((PolicyError, ValueError), match="did you mean 'mean_margin'"):
        _policy(rules=[{"name": "r", "action": {"escalation": {"min": {"mean_margn": 1}}}}])


# -- the log keeps signals; replay re-evaluates them ---------------------------------------------
def _logged(i: int, signals: AnswerSignals | None, score: float = 0.2) -> RequestRecord:
    call = CallRecord(f"r{i}", 1000.0 + i, "local", "slm-local/smollm2", completion_tokens=6, prompt_tokens=10,
                      mean_logprob=None if signals is None else signals.mean_logprob,
                      empty_answer=None if signals is None else signals.empty,
                      signals=None if signals is None else signals.as_dict())
    check = CallRecord(f"r{i}", 1000.5 + i, "local", "slm-local/smollm2", "self_check", prompt_tokens=30,
                       completion_tokens=1)
    return RequestRecord(id=f"r{i}", ts=1000.0 + i, requested_model="auto", routed_tier="local", tier="local",
                         local=True, score=score, calls=[call, check], cloud_available=True, prompt_chars=20,
                         cloud_prompt_tokens=10, cloud_completion_tokens=6)


def test_signals_round_trip_through_sqlite_and_the_redis_codec(tmp_path):
    rec = _logged(1, SURE.with_extra(self_check=0.75))
    rec.calls[0].signals["p_correct"] = 0.8
    assert record_from_json(record_to_json(rec)).calls[0].signals == rec.calls[0].signals
    store = SQLiteStore(tmp_path / "log.sqlite3")
    store.record(rec)
    back = store.requests()[0]
    assert back.calls[0].signals == rec.calls[0].signals and back.calls[1].signals is None
    assert logged_signals(back.calls[0]) == SURE.with_extra(self_check=0.75)
    store.close()


def test_old_log_without_signals_column_stays_readable(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE requests (id TEXT PRIMARY KEY, ts REAL NOT NULL, requested_model TEXT, routed_tier TEXT,
          tier TEXT, local INTEGER NOT NULL, score REAL, reason TEXT, escalated INTEGER NOT NULL,
          degraded INTEGER NOT NULL, stream INTEGER NOT NULL, status TEXT NOT NULL, http_status INTEGER NOT NULL,
          error TEXT, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL,
          cost_usd REAL, counterfactual_usd REAL, policy_hash TEXT, rules TEXT, api_key_name TEXT, tenant TEXT,
          cache TEXT);
        CREATE TABLE calls (request_id TEXT NOT NULL, ts REAL NOT NULL, tier TEXT NOT NULL, model TEXT NOT NULL,
          purpose TEXT NOT NULL, status TEXT NOT NULL, error TEXT, prompt_tokens INTEGER NOT NULL,
          completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL, cost_usd REAL, mean_logprob REAL);
        INSERT INTO requests VALUES ('a', 1.0, 'auto', 'local', 'local', 1, 0.2, 'r', 0, 0, 0, 'ok', 200, NULL,
          10, 5, 3.0, 0.0, 0.001, NULL, NULL, NULL, NULL, NULL);
        INSERT INTO calls VALUES ('a', 1.0, 'local', 'slm-local/smollm2', 'primary', 'ok', NULL, 10, 5, 3.0, 0.0, -2.0);
    """)
    db.commit()
    db.close()
    store = SQLiteStore(path)
    (rec,) = store.requests()
    assert rec.calls[0].signals is None and rec.calls[0].mean_logprob == -2.0
    old = logged_signals(rec.calls[0])
    assert old.mean_logprob == -2.0 and old.min_logprob is None and not old.empty
    store.close()


def test_replay_re_evaluates_thresholds_and_combiner_on_logged_signals():
    records = [_logged(1, SURE, score=0.1), _logged(2, UNSURE, score=0.1), _logged(3, None, score=0.1)]
    records[2].calls[0].mean_logprob = -0.5  # an old row: only its mean is known
    tiers = {"local": {"model": "slm-local/smollm2", "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
             "cloud": {"model": "openai/gpt-4o-mini", "api_key": "k"}}

    def run(escalation):
        policy = policy_from_dict({"tiers": tiers, "escalation": escalation})
        return {p.request_id: p.escalation_p for p in replay(records, [], policy).projections}

    assert run({"min_mean_logprob": -100}) == {"r1": 0.0, "r2": 0.0, "r3": 0.0}
    # min_logprob is only in the new rows' signals: r2 (min -3.1) escalates, r3 (no signals) cannot
    assert run({"min_mean_logprob": -100, "min": {"min_logprob": -3.0}}) == {"r1": 0.0, "r2": 1.0, "r3": 0.0}
    # SURE margins are 2.95; UNSURE has none (unmeasured: kept)
    assert run({"min_mean_logprob": -100, "min": {"mean_margin": 2.9}}) == {"r1": 0.0, "r2": 0.0, "r3": 0.0}
    assert run({"min_mean_logprob": -100, "min": {"mean_margin": 3.0}}) == {"r1": 1.0, "r2": 0.0, "r3": 0.0}
    # a combiner that reads the logged router score (0.1) and the mean log-probability
    comb = {"signals": ["mean_logprob", "router_score"], "weights": [4.0, -2.0], "intercept": 2.5,
            "min_p_correct": 0.5}
    assert run({"min_mean_logprob": -100, "combiner": comb}) == {"r1": 0.0, "r2": 1.0, "r3": 0.0}


def test_report_counts_check_calls_on_their_own_lines_and_not_as_the_answer():
    rec = _logged(1, SURE)
    rec.calls.append(CallRecord("r1", 1001.0, "local", "slm-local/smollm2", "consistency", prompt_tokens=10,
                                completion_tokens=7))
    s = summarize([rec])
    assert (s.self_check_calls, s.self_check_tokens) == (1, 31)
    assert (s.consistency_calls, s.consistency_tokens) == (1, 17)
    assert answering_call(rec) is rec.calls[0]
