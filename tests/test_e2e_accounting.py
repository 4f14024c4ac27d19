"""Cost accounting end to end: the real `slm-router serve` (SmolLM2 in-process, a real HTTP
cloud stand-in that reports cached prompt tokens and answers slowly, a real HTTP judge),
real AlpacaEval prompts through the OpenAI SDK, then `report` and `replay` on its log.

Checks that every logged cost is the price formula applied to the logged tokens and
latency, that the counterfactual is counted with the cloud tokenizer, that shadow samples
are taken in the background (the client has its answer before the slow cloud does), and
that replaying the serving policy reproduces the logged decisions exactly.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import litellm
import openai
import pytest
from typer.testing import CliRunner

from router.request.api_keys import api_key_id
from router.cli import app
from router.analysis.replay import replay
from router.store.sqlite import SQLiteStore

from .fake_openai import FakeOpenAI
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow
MAX_TOKENS = 16
CLOUD_DELAY_S = 3.0
LOCAL_USD_PER_HOUR = 0.9
N_PROMPTS = 4


def _policy(cloud_url: str, judge_url: str) -> dict:
    return {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 64,
                      "price": {"usd_per_hour": LOCAL_USD_PER_HOUR, "utilization": 0.5}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud_url},
            "judge": {"model": "openai/judge-model", "api_key": "sk-test", "api_base": judge_url,
                      "price": {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0}},
        },
        # threshold 1: every routed request is answered locally; escalation never triggers
        "routing": {"classifier": {"threshold": 1.0}},
        "escalation": {"enabled": True, "min_mean_logprob": -50.0},
        "shadow": {"rate": 1.0, "judge_tier": "judge"},
    }


@pytest.fixture(scope="module")
def session(data_dir, tmp_path_factory):
    cloud = FakeOpenAI(delay_s=CLOUD_DELAY_S, cached_tokens=3).start()
    judge = FakeOpenAI(answer="YES").start()
    workdir = tmp_path_factory.mktemp("accounting")
    proxy = ProxyProcess(_policy(cloud.url, judge.url), workdir).start()
    prompts = [json.loads(line)["instruction"]
               for line in (data_dir / "alpaca_eval" / "alpaca_eval_805_prompts.jsonl").open()][:N_PROMPTS]
    sent = []  # (request id, messages, answer text, key, shadow row present at answer time)
    try:
        for i, prompt in enumerate(prompts):
            key = "sk-alpha" if i % 2 == 0 else "sk-beta"
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0, timeout=120)
            messages = [{"role": "user", "content": prompt}]
            raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, max_tokens=MAX_TOKENS)
            answer = raw.parse().choices[0].message.content
            rid = raw.headers["x-request-id"]
            db = sqlite3.connect(proxy.log_path)
            early = db.execute("SELECT COUNT(*) FROM shadows WHERE request_id = ?", (rid,)).fetchone()[0]
            db.close()
            assert raw.headers["x-router-tier"] == "local"
            sent.append((rid, messages, answer, key, early))
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-alpha", max_retries=0, timeout=120)
        forced = client.chat.completions.with_raw_response.create(
            model="cloud", messages=[{"role": "user", "content": "Say hi."}], max_tokens=MAX_TOKENS)
        assert forced.headers["x-router-tier"] == "cloud"
    finally:
        proxy.stop()  # graceful: waits for the shadow samples still running
        cloud.stop()
        judge.stop()
    return proxy.log_path, sent, cloud, judge


def test_shadow_samples_never_delay_the_client(session):
    log_path, sent, cloud, judge = session
    # when each answer arrived, its shadow call (>= CLOUD_DELAY_S at the cloud) had not finished
    assert [early for *_, early in sent] == [0] * N_PROMPTS
    store = SQLiteStore(log_path)
    samples = store.shadows()
    store.close()
    assert sorted(s.request_id for s in samples) == sorted(rid for rid, *_ in sent)
    assert all(s.kind == "shadow" and s.status == "ok" and s.latency_ms >= CLOUD_DELAY_S * 1000 for s in samples)
    assert all(s.judge_verdict is True and s.agrees is True and -1 <= s.similarity <= 1 for s in samples)
    assert len(cloud.received) == N_PROMPTS + 1 and len(judge.received) == 2 * N_PROMPTS  # judge_swap: both orders


def test_logged_costs_follow_the_price_formulas(session):
    log_path, sent, *_ = session
    store = SQLiteStore(log_path)
    records = {r.id: r for r in store.requests()}
    samples = store.shadows()
    store.close()
    entry = litellm.model_cost["gpt-4o-mini"]

    def cloud_usd(p, c, cached=0):
        return ((p - cached) * entry["input_cost_per_token"] + cached * entry["cache_read_input_token_cost"]
                + c * entry["output_cost_per_token"])

    for rid, messages, answer, key, _ in sent:
        r = records[rid]
        assert r.api_key_id == api_key_id("Bearer " + key) and r.max_tokens == MAX_TOKENS
        assert r.cloud_available is True and r.score is not None and r.prompt_chars == len(messages[0]["content"])
        (call,) = r.calls
        assert call.price_source == "hourly"
        assert call.cost_usd == pytest.approx(LOCAL_USD_PER_HOUR * call.latency_ms / 3.6e6 / 0.5, rel=1e-12)
        # counterfactual: prompt in cloud tokens; the returned text in cloud tokens, capped at max_tokens
        assert r.cloud_prompt_tokens == litellm.token_counter(model="openai/gpt-4o-mini", messages=messages)
        assert r.cloud_completion_tokens == min(litellm.token_counter(model="openai/gpt-4o-mini", text=answer), MAX_TOKENS)
        assert r.counterfactual_usd == pytest.approx(cloud_usd(r.cloud_prompt_tokens, r.cloud_completion_tokens), rel=1e-12)
    forced = next(r for r in records.values() if r.requested_model == "cloud")
    (call,) = forced.calls
    assert (call.price_source, call.cached_prompt_tokens) == ("litellm", 2)  # "Say hi." is 2 words: cap at prompt size
    assert call.cost_usd == pytest.approx(cloud_usd(call.prompt_tokens, call.completion_tokens, 2), rel=1e-12)
    assert forced.counterfactual_usd == call.cost_usd
    for s in samples:
        assert s.cached_prompt_tokens == 3
        assert s.cost_usd == pytest.approx(cloud_usd(s.prompt_tokens, s.completion_tokens, 3), rel=1e-12)
        assert s.judge_cost_usd > 0


def test_report_and_replay_on_the_served_log(session, tmp_path):
    log_path, sent, *_ = session
    out = subprocess.run([sys.executable, "-m", "router.cli", "report", "--log", str(log_path), "--format", "json"],
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    db = sqlite3.connect(log_path)
    actual = db.execute("SELECT SUM(cost_usd) FROM calls").fetchone()[0]
    shadow = db.execute("SELECT SUM(cost_usd) + SUM(judge_cost_usd) FROM shadows").fetchone()[0]
    db.close()
    assert report["requests"] == N_PROMPTS + 1 and report["local"] == N_PROMPTS
    assert report["actual_usd"] == pytest.approx(actual, rel=1e-9)
    assert report["shadow_usd"] == pytest.approx(shadow, rel=1e-9)
    assert report["quality"]["estimate"] == pytest.approx(1.0)  # the judge said YES every time
    assert report["quality"]["rate"]["samples"] == N_PROMPTS
    keys = {g["group"]: g["requests"] for g in json.loads(CliRunner().invoke(
        app, ["report", "--log", str(log_path), "--format", "json", "--by", "api-key"]).stdout)["groups"]}
    assert keys == {api_key_id("sk-alpha"): N_PROMPTS // 2 + 1, api_key_id("sk-beta"): N_PROMPTS // 2}

    html_path = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", "--log", str(log_path), "--format", "html", "--out", str(html_path)])
    assert result.exit_code == 0 and html_path.read_text().count("data:image/png;base64,") == 5

    store = SQLiteStore(log_path)
    records, samples = store.requests(), store.shadows()
    store.close()
    policy_path = Path(log_path).parent / "policy.yaml"
    from router.policy import load_policy

    result = replay(records, samples, load_policy(policy_path))
    assert all(p.tier == r.routed_tier for p, r in zip(result.projections, [r for r in records if r.status == "ok"]))
    assert result.decisions_changed == result.escalations_changed == 0
    assert result.projected.cost_usd == pytest.approx(result.actual.cost_usd, rel=1e-12)
