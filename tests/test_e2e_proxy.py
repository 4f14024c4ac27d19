"""End to end through real HTTP: the OpenAI SDK -> `slm-router serve` (subprocess) ->
SmolLM2 in-process, or litellm -> a real local OpenAI-compatible server as the cloud tier.

Real prompts: 20 AlpacaEval instructions and 20 GSM8K questions from ../shared/data.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from router.scoring.classifier import EmbeddingClassifier

from .fake_openai import ANSWER
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow
MAX_TOKENS = 24


def _prompts(data_dir: Path) -> list[str]:
    alpaca = [json.loads(line)["instruction"] for line in (data_dir / "alpaca_eval" / "alpaca_eval_805_prompts.jsonl").open()]
    with (data_dir / "routellm" / "gsm8k" / "gsm8k_responses.csv").open(newline="") as fh:
        gsm8k = [row["prompt"] for row in csv.DictReader(fh)]
    return alpaca[:20] + gsm8k[:20]


def _policy(cloud_url: str, threshold: float, min_mean_logprob: float) -> dict:
    return {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 64,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "${FAKE_CLOUD_KEY:-sk-test}", "api_base": cloud_url},
        },
        "routing": {"classifier": {"threshold": threshold}},
        "escalation": {"enabled": True, "min_mean_logprob": min_mean_logprob},
    }


@pytest.fixture(scope="module")
def prompts(data_dir):
    return _prompts(data_dir)


@pytest.fixture(scope="module")
def threshold(prompts):
    """The median classifier score of the test prompts, so both tiers get traffic."""
    scores = sorted(EmbeddingClassifier().score(prompts))
    return (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2


@pytest.fixture(scope="module")
def proxy(cloud, threshold, tmp_path_factory):
    # Lenient escalation here; test_escalation_* uses a strict one.
    p = ProxyProcess(_policy(cloud.url, threshold, -50.0), tmp_path_factory.mktemp("proxy")).start()
    yield p
    p.stop()


def _client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def _send(proxy, prompt: str, stream: bool, model: str = "auto"):
    """Returns (headers, text, finish_reason, usage) from the SDK, streaming or not."""
    proxy.sent += 1
    client = _client(proxy)
    kwargs = dict(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS)
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        completion = raw.parse()
        assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
        choice = completion.choices[0]
        assert choice.message.role == "assistant"
        return raw.headers, choice.message.content, choice.finish_reason, completion.usage
    raw = client.chat.completions.with_raw_response.create(**kwargs, stream=True, stream_options={"include_usage": True})
    ids, parts, finish, usage = set(), [], None, None
    for ch in raw.parse():
        assert ch.object == "chat.completion.chunk"
        ids.add(ch.id)
        if ch.usage:
            usage = ch.usage
        for c in ch.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert len(ids) == 1, "every chunk carries the same id"
    return raw.headers, "".join(parts), finish, usage


def _db(proxy) -> sqlite3.Connection:
    return sqlite3.connect(proxy.log_path)


def _wait_rows(proxy, query: str, n: int, timeout_s: float = 10.0) -> list:
    """Rows of ``query`` once there are ``n`` (a streamed request is logged just after its
    last byte, so a test may look a moment before the write lands)."""

    deadline = time.time() + timeout_s
    while True:
        rows = _db(proxy).execute(query).fetchall()
        if len(rows) >= n or time.time() > deadline:
            return rows
        time.sleep(0.1)


def test_routes_real_prompts_to_both_tiers(proxy, prompts, cloud, threshold):
    seen = []
    for i, prompt in enumerate(prompts):
        headers, text, finish, usage = _send(proxy, prompt, stream=i % 2 == 1)
        tier = headers["x-router-tier"]
        score = float(headers["x-router-score"])
        assert tier in ("local", "cloud")
        assert (score >= threshold) == (tier == "cloud"), (score, threshold, tier)
        assert headers["x-router-escalated"] == "false"
        assert headers["x-router-reason"]
        assert headers["x-router-degraded"] == "false"
        assert finish in ("stop", "length")
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        if tier == "cloud":
            assert text.strip() == ANSWER
        else:
            assert text.strip() and text.strip() != ANSWER
            assert usage.completion_tokens <= MAX_TOKENS
        seen.append(tier)
    assert seen.count("local") >= 5 and seen.count("cloud") >= 5, seen
    # The cloud stand-in received exactly the cloud-routed requests, via litellm's OpenAI client.
    assert len(cloud.received) == seen.count("cloud")
    assert all(body["model"] == "gpt-4o-mini" for body in cloud.received)


def test_forced_tiers(proxy):
    h, text, _, _ = _send(proxy, "What is the capital of Japan?", stream=False, model="local")
    assert h["x-router-tier"] == "local" and h["x-router-score"] == "none" and "forced" in h["x-router-reason"]
    assert "Tokyo" in text
    h, text, _, _ = _send(proxy, "What is the capital of Japan?", stream=True, model="cloud")
    assert h["x-router-tier"] == "cloud" and text.strip() == ANSWER


def test_models_and_health(proxy):
    models = _client(proxy).models.list()
    assert {m.id for m in models.data} == {"auto", "local", "cloud"}
    health = httpx.get(proxy.url + "/healthz").json()
    assert health["status"] == "ok" and health["tiers"]["cloud"]["available"] is True


@pytest.mark.parametrize("body,status,code", [
    (b'{"model": "auto", "messages": [', 400, "invalid_json"),
    (b'{"model": "auto"}', 400, "invalid_request"),
    (b'{"model": "gpt-17", "messages": [{"role": "user", "content": "hi"}]}', 404, "model_not_found"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": ""}]}', 400, "empty_content"),
])
def test_bad_input_gets_openai_error_and_is_logged(proxy, body, status, code):
    proxy.sent += 1
    r = httpx.post(proxy.url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["type"] == "invalid_request_error"
    rid = r.headers["x-request-id"]
    row = _db(proxy).execute("SELECT status, http_status, error FROM requests WHERE id = ?", (rid,)).fetchone()
    assert row[0] == "error" and row[1] == status and code in row[2]


def test_sdk_raises_for_unknown_model(proxy):
    proxy.sent += 1
    with pytest.raises(openai.NotFoundError) as e:
        _client(proxy).chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "model_not_found"


def test_log_and_report_match(proxy):
    """Runs last in this module: every request sent is one row, and report sums the calls."""
    _wait_rows(proxy, "SELECT id FROM requests", proxy.sent)
    db = _db(proxy)
    n = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    assert n == proxy.sent
    ok, local, escalated = db.execute(
        "SELECT COUNT(*), SUM(local), SUM(escalated) FROM requests WHERE status = 'ok'").fetchone()
    actual = db.execute("SELECT SUM(cost_usd) FROM calls").fetchone()[0]
    all_cloud = db.execute("SELECT SUM(counterfactual_usd) FROM requests WHERE status = 'ok'").fetchone()[0]
    n_calls = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert n_calls >= ok
    # Cloud calls are priced from litellm's map for gpt-4o-mini; local calls at $0 from the YAML.
    assert db.execute("SELECT COUNT(*) FROM calls WHERE tier = 'cloud' AND cost_usd > 0").fetchone()[0] > 0
    assert db.execute("SELECT COUNT(*) FROM calls WHERE tier = 'local' AND cost_usd != 0").fetchone()[0] == 0
    # A locally answered request has a positive counterfactual: what gpt-4o-mini would have cost.
    assert db.execute("SELECT MIN(counterfactual_usd) FROM requests WHERE status='ok' AND local=1").fetchone()[0] > 0

    out = subprocess.run(
        [sys.executable, "-m", "router.cli", "report", "--log", str(proxy.log_path), "--json"],
        capture_output=True, text=True, check=True,
    )
    report = json.loads(out.stdout)
    assert report["requests"] == n and report["ok"] == ok and report["local"] == local
    assert report["escalated"] == escalated
    assert report["actual_usd"] == pytest.approx(actual)
    assert report["all_cloud_usd"] == pytest.approx(all_cloud)
    assert report["savings_usd"] == pytest.approx(all_cloud - actual)
    assert report["savings_pct"] == pytest.approx(100 * (all_cloud - actual) / all_cloud)
    table = subprocess.run([sys.executable, "-m", "router.cli", "report", "--log", str(proxy.log_path)],
                           capture_output=True, text=True, check=True).stdout
    assert "savings" in table and "all-cloud cost" in table


def test_escalation_on_low_logprob(cloud, tmp_path):
    """With a threshold no answer can meet (mean log-prob >= -0.001), every routed-local
    request is escalated: two calls logged, the cloud answer returned, streaming or not."""
    proxy = ProxyProcess(_policy(cloud.url, 1.0, -0.001), tmp_path).start()
    try:
        before = len(cloud.received)
        for stream in (False, True):
            h, text, _, _ = _send(proxy, "Write a short poem about the sea.", stream=stream)
            assert h["x-router-tier"] == "cloud" and h["x-router-escalated"] == "true"
            assert "mean logprob" in h["x-router-reason"]
            assert text.strip() == ANSWER
        assert len(cloud.received) == before + 2
        rows = _wait_rows(proxy, "SELECT c.tier, c.purpose, c.mean_logprob FROM calls c ORDER BY c.ts", 4)
        assert [(r[0], r[1]) for r in rows] == [("local", "primary"), ("cloud", "escalation")] * 2
        assert all(r[2] is not None and r[2] < -0.001 for r in rows if r[0] == "local")
    finally:
        proxy.stop()


def test_cloud_unavailable_degrades_to_local(tmp_path, monkeypatch):
    """No cloud key: serve starts, routed-to-cloud requests are answered locally, marked degraded."""
    monkeypatch.delenv("NO_KEY_HERE", raising=False)
    policy = _policy("", 0.0, -50.0)
    policy["tiers"]["cloud"] = {"model": "openai/gpt-4o-mini", "api_key": "${NO_KEY_HERE}"}
    proxy = ProxyProcess(policy, tmp_path).start()
    try:
        h, text, _, _ = _send(proxy, "What is the capital of Japan?", stream=False)
        assert h["x-router-tier"] == "local" and h["x-router-degraded"] == "true" and text.strip()
        assert "cloud unavailable" in h["x-router-reason"]
        assert httpx.get(proxy.url + "/healthz").json()["tiers"]["cloud"]["available"] is False
    finally:
        proxy.stop()
