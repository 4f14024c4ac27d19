"""Cost per call, counterfactual, savings, escalation tax, shadow spend, quality retention,
grouping and time windows: exact sums on the log of ``tests/accounting_log.py``."""

from __future__ import annotations

import litellm
import pytest

from router.request.api_keys import api_key_id
from router.ledger.cost import estimate_cloud_completion_tokens, policy_price, price_call
from router.policy import Price, TierConfig
from router.analysis.quality import wilson_interval
from router.analysis.report import group_key, latency_by_tier, route_of, summarize, summarize_by
from router.store.sqlite import SQLiteStore

from .accounting_log import ANSWERS, DAY2, KEY1, KEY2, MAX_TOKENS, MESSAGES, build_records, build_shadows


# -- cost per call --------------------------------------------------------------------------
def test_yaml_price_charges_prompt_cached_and_completion_separately():
    price = Price(input_usd_per_mtok=1.0, output_usd_per_mtok=2.0, cached_input_usd_per_mtok=0.5)
    # 800 uncached * $1 + 200 cached * $0.5 + 500 * $2, per million
    assert policy_price(price, 1000, 500, cached_prompt_tokens=200) == pytest.approx(0.0019, abs=1e-15)
    # cached rate defaults to the input rate
    assert policy_price(Price(input_usd_per_mtok=1.0), 1000, 0, cached_prompt_tokens=200) == pytest.approx(0.001)


def test_hourly_price_is_spread_over_calls_by_busy_time():
    tier = TierConfig(model="slm-local/smollm2", price=Price(usd_per_hour=3.6, utilization=0.5))
    cost, source = price_call(tier, 100, 100, latency_ms=2000.0)
    assert source == "hourly"
    assert cost == pytest.approx(3.6 * 2.0 / 3600 / 0.5)  # $0.004: two busy seconds at 50% utilisation


def test_litellm_price_map_prices_cached_tokens():
    tier = TierConfig(model="openai/gpt-4o-mini", api_key="x")
    entry = litellm.model_cost["gpt-4o-mini"]
    cost, source = price_call(tier, 1000, 100, cached_prompt_tokens=400)
    assert source == "litellm"
    expected = 600 * entry["input_cost_per_token"] + 400 * entry["cache_read_input_token_cost"] + 100 * entry["output_cost_per_token"]
    assert cost == pytest.approx(expected, rel=1e-12)
    assert entry["cache_read_input_token_cost"] < entry["input_cost_per_token"]


def test_unknown_price_is_none_never_zero():
    assert price_call(TierConfig(model="acme/unknown-model-v9", api_key="x"), 10, 10) == (None, None)


def test_completion_estimate_is_capped_by_max_tokens():
    assert estimate_cloud_completion_tokens(50, 32) == 32
    assert estimate_cloud_completion_tokens(20, 32) == 20
    assert estimate_cloud_completion_tokens(50, None) == 50


def test_api_key_id_hashes_and_never_stores_the_key():
    assert api_key_id("Bearer sk-one") == api_key_id("sk-one") != api_key_id("Bearer sk-two")
    assert api_key_id("Bearer sk-one").startswith("key-") and "sk-one" not in api_key_id("Bearer sk-one")
    assert api_key_id(None) is None and api_key_id("Bearer ") is None


# -- the built log -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def records():
    return build_records()


@pytest.fixture(scope="module")
def shadows():
    return build_shadows()


def _cf(rid: str) -> float:
    """Counterfactual of a request the cloud did not answer, from the cloud tokenizer."""
    p = litellm.token_counter(model="openai/gpt-4o-mini", messages=MESSAGES[rid])
    c = min(litellm.token_counter(model="openai/gpt-4o-mini", text=ANSWERS[rid]), MAX_TOKENS)
    return (p * 1.0 + c * 2.0) / 1e6


def test_calls_priced_from_known_prices(records):
    by_id = {r.id: r for r in records}
    assert [c.cost_usd for c in by_id["r1"].calls] == [pytest.approx(0.005)]
    assert [c.cost_usd for c in by_id["r2"].calls] == [pytest.approx(0.01), pytest.approx(0.0019)]
    assert [c.price_source for c in by_id["r2"].calls] == ["hourly", "policy"]
    assert by_id["r2"].cost_usd == pytest.approx(0.0119)
    assert by_id["r3"].cost_usd == pytest.approx(0.0022)
    assert by_id["r4"].cost_usd is None and by_id["r4"].calls[0].cost_usd is None
    assert by_id["r4"].calls[0].price_source is None


def test_counterfactual_uses_cloud_tokenizer_and_real_cloud_cost(records):
    by_id = {r.id: r for r in records}
    # answered by the cloud: its own call's cost and counts
    assert by_id["r2"].counterfactual_usd == pytest.approx(0.0019)
    assert (by_id["r2"].cloud_prompt_tokens, by_id["r2"].cloud_completion_tokens) == (1000, 500)
    assert by_id["r3"].counterfactual_usd == pytest.approx(0.0022)
    # answered elsewhere: cloud-tokenizer prompt, answer text in cloud tokens capped at max_tokens
    for rid in ("r1", "r4", "r6"):
        assert by_id[rid].cloud_prompt_tokens == litellm.token_counter(model="openai/gpt-4o-mini", messages=MESSAGES[rid])
        assert by_id[rid].counterfactual_usd == pytest.approx(_cf(rid), rel=1e-12)
    assert by_id["r5"].counterfactual_usd == 0.0


def test_summary_exact_sums(records, shadows):
    s = summarize(records, shadows)
    assert (s.requests, s.ok, s.failed, s.local, s.escalated) == (6, 5, 1, 2, 1)
    assert s.local_share == pytest.approx(2 / 5) and s.escalation_rate == pytest.approx(1 / 5)
    assert s.actual_usd == pytest.approx(0.005 + 0.0119 + 0.0022 + 0.003, abs=1e-15)
    all_cloud = _cf("r1") + 0.0019 + 0.0022 + _cf("r4") + _cf("r6")
    assert s.all_cloud_usd == pytest.approx(all_cloud, abs=1e-15)
    assert s.savings_usd == pytest.approx(all_cloud - 0.0221, abs=1e-15)
    assert s.savings_pct == pytest.approx(100 * (all_cloud - 0.0221) / all_cloud)
    assert s.cached_prompt_tokens == 200
    assert s.price_sources == {"hourly": 3, "none": 1, "policy": 2}


def test_unknown_price_is_flagged(records, shadows):
    s = summarize(records, shadows)
    assert (s.unpriced_calls, s.unpriced_requests, s.unpriced_models) == (1, 1, ("acme/unknown-model-v9",))


def test_escalation_tax_and_self_check_lines(records, shadows):
    s = summarize(records, shadows)
    assert s.escalation_tax_calls == 1
    assert (s.escalation_tax_prompt_tokens, s.escalation_tax_completion_tokens) == (12, 20)
    assert s.escalation_tax_usd == pytest.approx(0.01)
    assert s.escalation_tax_latency_ms == pytest.approx(1000.0)
    assert (s.self_check_calls, s.self_check_tokens, s.self_check_usd) == (0, 0, 0.0)


def test_shadow_spend_and_quality_retention(records, shadows):
    s = summarize(records, shadows)
    assert (s.shadow_samples, s.shadow_calls) == (3, 2)
    assert s.shadow_usd == pytest.approx(0.00005 + 0.00008, abs=1e-15)
    assert s.net_savings_usd == pytest.approx(s.savings_usd - 0.00013, abs=1e-15)
    q = s.quality
    # 3 ok requests not served locally count as retained; r1 agrees, r6 does not; none estimated
    assert (q.requests, q.cloud, q.observed, q.agreeing, q.estimated) == (5, 3, 2, 1, 0)
    assert q.estimate == pytest.approx(4 / 5) and q.lo == pytest.approx(4 / 5) and q.hi == pytest.approx(4 / 5)
    assert (q.rate.samples, q.rate.agreeing, q.rate.rate) == (2, 1, 0.5)
    assert q.rate.mean_similarity == pytest.approx((0.91 + 0.55) / 2)


def test_retention_estimates_unsampled_local_answers(records, shadows):
    # Drop r6's sample: r6 is then estimated at the agreement rate of the rest (1 of 1).
    s = summarize(records, [x for x in shadows if x.request_id != "r6"])
    q = s.quality
    lo, hi = wilson_interval(1, 1)
    assert (q.observed, q.estimated) == (1, 1)
    assert q.estimate == pytest.approx((3 + 1 + 1.0) / 5)
    assert (q.lo, q.hi) == (pytest.approx((4 + lo) / 5), pytest.approx((4 + hi) / 5))


def test_wilson_interval_known_values():
    # Wilson (1927) for 8 of 10 at 95%: [0.4902, 0.9433]
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_grouping_keys_and_group_sums(records, shadows):
    by_id = {r.id: r for r in records}
    assert route_of(by_id["r2"]) == "local -> cloud (escalated)"
    assert route_of(by_id["r4"]) == "forced mystery" and route_of(by_id["r5"]) == "failed"
    expected = {
        "tier": {"local": {"r1", "r6"}, "cloud": {"r2", "r3"}, "mystery": {"r4"}, "(none)": {"r5"}},
        "route": {"local": {"r1", "r6"}, "local -> cloud (escalated)": {"r2"}, "cloud": {"r3"},
                  "forced mystery": {"r4"}, "failed": {"r5"}},
        "model": {"slm-local/smollm2": {"r1", "r6"}, "openai/gpt-4o-mini": {"r2", "r3"},
                  "acme/unknown-model-v9": {"r4"}, "(none)": {"r5"}},
        "api-key": {KEY1: {"r1", "r2", "r3", "r4", "r5"}, KEY2: {"r6"}},
        "day": {"2026-11-01": {"r1", "r2", "r3", "r4", "r5"}, "2026-11-02": {"r6"}},
    }
    total = summarize(records, shadows)
    for by, groups in expected.items():
        got = {}
        for r in records:
            got.setdefault(group_key(r, by), set()).add(r.id)
        assert got == groups, by
        rows = summarize_by(records, by, shadows)
        assert [k for k, _ in rows] == sorted(groups)
        assert sum(s.actual_usd for _, s in rows) == pytest.approx(total.actual_usd, abs=1e-15)
        assert sum(s.savings_usd for _, s in rows) == pytest.approx(total.savings_usd, abs=1e-15)
        assert sum(s.shadow_usd for _, s in rows) == pytest.approx(total.shadow_usd, abs=1e-15)
    day2 = dict(summarize_by(records, "day", shadows))["2026-11-02"]
    assert day2.actual_usd == pytest.approx(0.003) and day2.all_cloud_usd == pytest.approx(_cf("r6"))
    assert day2.shadow_usd == pytest.approx(0.00008)
    with pytest.raises(ValueError):
        summarize_by(records, "colour")


def test_latency_percentiles_per_tier(records):
    lat = {t.tier: t for t in latency_by_tier(records)}
    assert lat["local"].calls == 3 and lat["local"].p50_ms == pytest.approx(500.0)
    assert lat["local"].p95_ms == pytest.approx(500 + 0.9 * 500)  # linear between 500 and 1000
    assert lat["cloud"].calls == 2 and lat["cloud"].max_ms == pytest.approx(900.0)


def test_store_roundtrip_keeps_new_fields_and_windows(tmp_path, records, shadows):
    store = SQLiteStore(tmp_path / "log.sqlite3")
    for r in records:
        store.record(r)
    for s in shadows:
        store.record_shadow(s)
    back = store.requests()
    assert back == records
    assert store.shadows() == shadows
    assert [r.id for r in store.requests(since=DAY2)] == ["r6"]
    assert [s.request_id for s in store.shadows(since=DAY2)] == ["r6"]
    assert [r.id for r in store.requests(until=DAY2)] == ["r1", "r2", "r3", "r4", "r5"]
    assert summarize(store.requests(), store.shadows()) == summarize(records, shadows)
    store.close()


def test_old_log_gains_new_columns(tmp_path):
    """A log written before these columns existed opens, and its rows read with defaults."""
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
    CREATE TABLE requests (id TEXT PRIMARY KEY, ts REAL NOT NULL, requested_model TEXT, routed_tier TEXT, tier TEXT,
        local INTEGER NOT NULL, score REAL, reason TEXT, escalated INTEGER NOT NULL, degraded INTEGER NOT NULL,
        stream INTEGER NOT NULL, status TEXT NOT NULL, http_status INTEGER NOT NULL, error TEXT,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL, cost_usd REAL,
        counterfactual_usd REAL);
    CREATE TABLE calls (request_id TEXT NOT NULL, ts REAL NOT NULL, tier TEXT NOT NULL, model TEXT NOT NULL,
        purpose TEXT NOT NULL, status TEXT NOT NULL, error TEXT, prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL, cost_usd REAL, mean_logprob REAL);
    INSERT INTO requests VALUES ('old', 1.0, 'auto', 'local', 'local', 1, 0.1, '', 0, 0, 0, 'ok', 200, NULL, 3, 4, 5.0, 0.0, 0.001);
    INSERT INTO calls VALUES ('old', 1.0, 'local', 'slm-local/smollm2', 'primary', 'ok', NULL, 3, 4, 5.0, 0.0, -0.2);
    """)
    db.commit()
    db.close()
    store = SQLiteStore(path)
    (r,) = store.requests()
    assert r.id == "old" and r.local is True and r.needs == "" and r.cloud_available is None
    assert r.calls[0].cached_prompt_tokens == 0 and r.calls[0].price_source is None
    assert store.shadows() == []
    store.close()
