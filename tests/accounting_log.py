"""A request log built by the tests, with prices chosen so every expected sum is exact.

Prices (policy ``POLICY``):
- local tier: hardware at $36/hour = $0.00001 per ms of call latency;
- cloud tier: $1 per 1e6 prompt tokens, $0.50 per 1e6 cached prompt tokens, $2 per 1e6
  completion tokens (a YAML price, so litellm's map is not involved);
- ``mystery`` tier: a model no price map knows, and no YAML price.

Requests (2026-11-01 unless said):
- r1 local, 500 ms -> $0.005; shadow sample agrees; key sk-one
- r2 escalated: local attempt 1000 ms -> $0.01 (the escalation tax), then cloud 1000 prompt
  (200 cached) + 500 completion -> $0.0019; escalation sample disagrees
- r3 routed to the cloud: 2000 prompt + 100 completion -> $0.0022
- r4 forced to ``mystery``: unpriced (flagged)
- r5 failed (unknown model), no calls
- r6 local on 2026-11-02, 300 ms -> $0.003; shadow sample disagrees; key sk-two
"""

from __future__ import annotations

import datetime as dt

from router.request.api_keys import api_key_id
from router.ledger.cost import price_call, price_request
from router.policy import policy_from_dict
from router.store.records import CallRecord, RequestRecord, ShadowRecord

POLICY_DICT = {
    "tiers": {
        "local": {"model": "slm-local/smollm2", "price": {"usd_per_hour": 36.0}},
        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test",
                  "price": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "cached_input_usd_per_mtok": 0.5}},
        "mystery": {"model": "acme/unknown-model-v9", "api_key": "sk-test"},
    },
    "routing": {"classifier": {"threshold": 0.5}},
    "escalation": {"enabled": True, "min_mean_logprob": -1.0},
    "shadow": {"rate": 0.5},
}
POLICY = policy_from_dict(POLICY_DICT)

DAY1 = dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.timezone.utc).timestamp()
DAY2 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc).timestamp()
KEY1, KEY2 = api_key_id("Bearer sk-one"), api_key_id("Bearer sk-two")

MESSAGES = {
    "r1": [{"role": "user", "content": "What is the capital of France?"}],
    "r2": [{"role": "user", "content": "Prove that there are infinitely many primes."}],
    "r3": [{"role": "user", "content": "Write a sonnet about tax law."}],
    "r4": [{"role": "user", "content": "Hello mystery model."}],
    "r6": [{"role": "user", "content": "Name three red fruits."}],
}
ANSWERS = {
    "r1": "Paris is the capital of France.",
    "r2": "Suppose there were finitely many primes p1..pn; then p1*...*pn + 1 has a prime factor not in the list.",
    "r3": "Upon the ledger of the year we write...",
    "r4": "Hello.",
    "r6": "Strawberries, cherries and raspberries.",
}
MAX_TOKENS = 32


def _call(rid, ts, tier, purpose="primary", p=0, c=0, cached=0, ms=0.0, lp=None):
    model = POLICY.tiers[tier].model
    return CallRecord(rid, ts, tier, model, purpose, prompt_tokens=p, completion_tokens=c, cached_prompt_tokens=cached,
                      latency_ms=ms, mean_logprob=lp, empty_answer=False if lp is not None else None)


def _request(rid, ts, requested, routed, tier, score, calls, key=KEY1, escalated=False):
    r = RequestRecord(rid, ts, requested_model=requested, routed_tier=routed, tier=tier, local=tier == "local",
                      score=score, escalated=escalated, calls=calls, api_key_id=key, cloud_available=True,
                      max_tokens=MAX_TOKENS)
    answered = calls[-1] if calls else None
    if answered:
        r.prompt_tokens, r.completion_tokens = answered.prompt_tokens, answered.completion_tokens
    return r


def build_records() -> list[RequestRecord]:
    """The six requests, priced by the real pricing code (``router.ledger.cost.price_request``)."""
    t = DAY1
    records = [
        _request("r1", t, "auto", "local", "local", 0.2, [_call("r1", t, "local", p=10, c=5, ms=500.0, lp=-0.5)]),
        _request("r2", t + 60, "auto", "local", "cloud", 0.3, [
            _call("r2", t + 60, "local", p=12, c=20, ms=1000.0, lp=-2.0),
            _call("r2", t + 61, "cloud", "escalation", p=1000, c=500, cached=200, ms=800.0)], escalated=True),
        _request("r3", t + 120, "auto", "cloud", "cloud", 0.9, [_call("r3", t + 120, "cloud", p=2000, c=100, ms=900.0)]),
        _request("r4", t + 180, "mystery", "mystery", "mystery", None,
                 [_call("r4", t + 180, "mystery", p=50, c=50, ms=100.0)]),
        RequestRecord("r5", t + 240, requested_model="nope", status="error", http_status=404,
                      error="model_not_found: unknown", api_key_id=KEY1),
        _request("r6", DAY2, "auto", "local", "local", 0.1, [_call("r6", DAY2, "local", p=8, c=9, ms=300.0, lp=-0.8)],
                 key=KEY2),
    ]
    for r in records:
        price_request(r, POLICY, MESSAGES.get(r.id) if r.status == "ok" else None, ANSWERS.get(r.id))
    return records


def _shadow(rid, ts, kind, agrees, similarity, p=0, c=0):
    cost = price_call(POLICY.cloud, p, c)[0] if kind == "shadow" else 0.0
    return ShadowRecord(rid, ts, kind, "cloud", POLICY.cloud.model, local_text=ANSWERS[rid], cloud_text="cloud says",
                        prompt_tokens=p, completion_tokens=c, cost_usd=cost, price_source="policy" if kind == "shadow" else None,
                        similarity=similarity, agrees=agrees)


def build_shadows() -> list[ShadowRecord]:
    """r1 agrees (30 + 10 tokens -> $0.00005), r6 disagrees (40 + 20 -> $0.00008), r2's
    escalation sample disagrees (no extra call)."""
    return [
        _shadow("r1", DAY1 + 5, "shadow", True, 0.91, p=30, c=10),
        _shadow("r2", DAY1 + 65, "escalation", False, 0.42),
        _shadow("r6", DAY2 + 5, "shadow", False, 0.55, p=40, c=20),
    ]
