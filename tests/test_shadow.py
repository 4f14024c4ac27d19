"""Shadow sampling: the pure parts, then the sampler against a real HTTP cloud stand-in and
judge, with the real MiniLM embedder and SQLite store."""

from __future__ import annotations

import asyncio
import math
import time

import litellm
import pytest

from router.policy import policy_from_dict
from router.providers.tier_client import TierClient
from router.store.records import RequestRecord
from router.request.parse import parse_chat_request
from router.ledger.shadow import ShadowSampler, agreement, is_sampled, judge_messages, parse_verdict
from router.store.sqlite import SQLiteStore

from .fake_openai import FakeOpenAI


def test_sampling_is_a_reproducible_share():
    ids = [f"request-{i}" for i in range(4000)]
    share = sum(is_sampled(i, 0.25) for i in ids) / len(ids)
    assert 0.22 < share < 0.28
    assert [is_sampled(i, 0.25) for i in ids[:50]] == [is_sampled(i, 0.25) for i in ids[:50]]
    assert not any(is_sampled(i, 0.0) for i in ids[:50]) and all(is_sampled(i, 1.0) for i in ids[:50])


@pytest.mark.parametrize("text,verdict", [
    ("YES", True), ("yes.", True), ("**Yes**, it is", True), ("No", False), ("NO - wrong", False),
    ("Maybe", None), ("", None),
])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict


def test_agreement_prefers_the_judge():
    assert agreement(0.95, False, 0.8) is False
    assert agreement(0.5, True, 0.8) is True
    assert agreement(0.8, None, 0.8) is True and agreement(0.79, None, 0.8) is False
    assert agreement(None, None, 0.8) is None


def test_judge_prompt_holds_question_and_both_answers():
    turns = judge_messages("What is 2+2?", local="five", cloud="4")
    assert turns[0]["role"] == "system" and "BETTER, SAME or WORSE" in turns[0]["content"]
    assert "What is 2+2?" in turns[1]["content"] and "Answer 1:\n4" in turns[1]["content"]
    assert "Answer 2:\nfive" in turns[1]["content"]
    assert "Is answer 2 better than, as good as, or worse than answer 1" in turns[1]["content"]


@pytest.mark.slow
def test_sampler_stores_shadow_and_escalation_samples(tmp_path):
    cloud = FakeOpenAI(answer="Paris is the capital of France.", cached_tokens=2).start()
    judge = FakeOpenAI(answer="YES").start()
    try:
        policy = policy_from_dict({
            "tiers": {
                "local": {"model": "slm-local/smollm2", "price": {"input_usd_per_mtok": 0.0}},
                "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url},
                "judge": {"model": "openai/judge-model", "api_key": "sk-test", "api_base": judge.url,
                          "price": {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0}},
            },
            "shadow": {"rate": 1.0, "judge_tier": "judge", "agree_at": 0.8},
        })
        store = SQLiteStore(tmp_path / "log.sqlite3")
        sampler = ShadowSampler(policy, TierClient(policy), store)
        request = parse_chat_request({"model": "auto", "max_tokens": 16, "logprobs": True,
                                      "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        served = RequestRecord("s" * 32, time.time(), requested_model="auto", routed_tier="local", tier="local", local=True)
        escalated = RequestRecord("e" * 32, time.time(), requested_model="auto", routed_tier="local", tier="cloud",
                                  escalated=True)
        failed = RequestRecord("f" * 32, time.time(), requested_model="auto", tier="local", local=True, status="error")
        for r in (served, escalated, failed):
            store.record(r)

        async def run():
            sampler.consider(served, request, "The capital of France is Paris.")
            sampler.consider(escalated, request, "Paris is the capital of France.", local_text="Bananas grow on trees.")
            sampler.consider(failed, request, "")
            await sampler.drain()

        asyncio.run(run())
        samples = {s.request_id: s for s in store.shadows()}
        assert set(samples) == {served.id, escalated.id}  # failed requests are not sampled

        shadow = samples[served.id]
        assert (shadow.kind, shadow.status, shadow.tier, shadow.model) == ("shadow", "ok", "cloud", "openai/gpt-4o-mini")
        assert shadow.local_text == "The capital of France is Paris." and shadow.cloud_text == "Paris is the capital of France."
        assert shadow.similarity > 0.8  # same fact, different words (real MiniLM)
        assert shadow.cached_prompt_tokens == 2 and shadow.prompt_tokens == 6 and shadow.completion_tokens == 6
        entry = litellm.model_cost["gpt-4o-mini"]
        assert shadow.cost_usd == pytest.approx(4 * entry["input_cost_per_token"] + 2 * entry["cache_read_input_token_cost"]
                                                + 6 * entry["output_cost_per_token"], rel=1e-12)
        assert shadow.judge_verdict is True and shadow.agrees is True and shadow.judge_model == "openai/judge-model"
        # both orders asked, both raw replies kept, the judge's tokens priced at its own price
        assert [(r["order"], r["reply"], r["verdict"]) for r in shadow.judge_replies] == [
            ("cloud_first", "YES", True), ("local_first", "YES", True)]
        assert shadow.judge_completion_tokens == 2 and shadow.judge_prompt_tokens > 20
        assert shadow.judge_cost_usd == pytest.approx(
            (3.0 * shadow.judge_prompt_tokens + 15.0 * shadow.judge_completion_tokens) / 1e6, rel=1e-9)
        assert store.shadows()[0].judge_replies is not None  # read back from SQLite as JSON

        esc = samples[escalated.id]
        assert esc.kind == "escalation" and esc.cost_usd == 0.0 and esc.prompt_tokens == 0
        assert esc.similarity < 0.5  # an unrelated local attempt
        # the cloud got the request once (the shadow call), without log-probabilities
        assert len(cloud.received) == 1
        body = cloud.received[0]
        assert body["max_tokens"] == 16 and "logprobs" not in body
        assert body["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
        assert len(judge.received) == 4 and judge.received[0]["max_tokens"] == 4  # two samples x two orders
        assert sum("Bananas grow on trees." in b["messages"][1]["content"] for b in judge.received) == 2
        store.close()
    finally:
        cloud.stop()
        judge.stop()


@pytest.mark.slow
def test_cloud_failure_is_stored_as_a_failed_sample(tmp_path):
    cloud = FakeOpenAI(fail_with=500).start()
    try:
        policy = policy_from_dict({
            "tiers": {"local": {"model": "slm-local/smollm2"},
                      "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url}},
            "shadow": {"rate": 1.0},
        })
        store = SQLiteStore(tmp_path / "log.sqlite3")
        sampler = ShadowSampler(policy, TierClient(policy), store)
        record = RequestRecord("x" * 32, time.time(), requested_model="auto", tier="local", local=True)
        store.record(record)
        request = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": "Hi"}]})

        async def run():
            sampler.consider(record, request, "Hello!")
            await sampler.drain()

        asyncio.run(run())
        (sample,) = store.shadows()
        assert sample.status == "error" and "forced failure" in sample.error and sample.agrees is None
        store.close()
    finally:
        cloud.stop()


@pytest.mark.slow
def test_cloud_routed_requests_are_answered_by_the_local_tier_and_judged(tmp_path):
    local = FakeOpenAI(answer="Paris.").start()
    cloud = FakeOpenAI(answer="The capital of France is Paris.").start()
    judge = FakeOpenAI(answer="NO").start()
    try:
        policy = policy_from_dict({
            "tiers": {
                "local": {"model": "openai/small", "api_key": "sk-test", "api_base": local.url,
                          "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url},
                "judge": {"model": "openai/judge-model", "api_key": "sk-test", "api_base": judge.url},
            },
            "shadow": {"rate": 1.0, "cloud_rate": 1.0, "judge_tier": "judge", "strategy": "uncertain",
                       "band": 0.1, "min_rate": 0.05, "floor": 0.2},
        })
        store = SQLiteStore(tmp_path / "log.sqlite3")
        sampler = ShadowSampler(policy, TierClient(policy), store)
        request = parse_chat_request({"model": "auto", "max_tokens": 16,
                                      "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        p = 0.2 + 0.8 * math.exp(-0.12 / 0.1)  # the uncertain rule at |0.62 - 0.5|, floor 0.2 of the rate
        rid = next(f"c{i:031d}" for i in range(200) if is_sampled(f"c{i:031d}", p))
        routed = RequestRecord(rid, time.time(), requested_model="auto", routed_tier="cloud", tier="cloud",
                               score=0.62, threshold=0.5)
        forced = RequestRecord("d" * 32, time.time(), requested_model="cloud", routed_tier="cloud", tier="cloud")
        for r in (routed, forced):
            store.record(r)

        async def run():
            sampler.consider(routed, request, "The capital of France is Paris.")
            sampler.consider(forced, request, "The capital of France is Paris.")  # no score: not a routing decision
            await sampler.drain()

        asyncio.run(run())
        (sample,) = store.shadows()
        assert (sample.request_id, sample.kind, sample.tier, sample.model) == (routed.id, "local_shadow", "local",
                                                                               "openai/small")
        assert sample.local_text == "Paris." and sample.cloud_text == "The capital of France is Paris."
        assert sample.sample_p == pytest.approx(p)  # stored with it
        assert sample.judge_verdict is False and sample.agrees is False and sample.cost_usd == 0.0
        assert len(local.received) == 1 and not cloud.received  # the client's cloud answer is reused
        assert len(judge.received) == 2 and any("Paris." in b["messages"][1]["content"] for b in judge.received)
        from router.learning.labels import build_labels

        labels = build_labels(store.requests(), store.shadows())
        (label,) = labels.labels if labels.labels else [None]
        assert label is None and labels.without_inputs == 1  # labelled, but this row kept no embedding
        store.close()
    finally:
        local.stop()
        cloud.stop()
        judge.stop()
