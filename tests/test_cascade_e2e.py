"""The cascade through the real server: the OpenAI SDK -> ``slm-router serve`` (subprocess)
-> SmolLM2 in-process (answers, self-checks, consistency samples) or litellm -> the HTTP
cloud stand-in (escalations).

One policy, with escalation off at the top and one rule per case that turns it on with the
settings under test (so the same file also shows rules switching escalation on and off):
a self-check threshold no answer can pass (P(yes) >= 1.01), a combiner whose cut-off no
answer reaches, checks that pass, a share cap of 0, and streamed prefix checks that fail
(mean log-probability >= 0.1 is impossible) or pass.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import httpx
import openai
import pytest

from .fake_openai import ANSWER
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow
PROMPT = "What is the capital of France?"
MAX_TOKENS = 24
PREFIX = 4


def _case(name: str, escalation: dict) -> dict:
    return {"name": name, "match": {"metadata": {"case": name}}, "action": {"escalation": escalation}}


def _policy(cloud_url: str) -> dict:
    return {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 64,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud_url},
        },
        "routing": {"classifier": {"threshold": 1.0}},  # every text request is routed to the local tier
        "escalation": {
            "enabled": False,
            # P(correct) = 0.5 for every answer: passes the default cut-off 0.5, fails 0.99
            "combiner": {"signals": ["mean_logprob"], "weights": [0.0], "intercept": 0.0, "min_p_correct": 0.5},
            # any artifact works as a verifier: P(correct) = 1 - its score of the answer text
            "verifier_artifact": "builtin",
        },
        "rules": [
            _case("self-check", {"enabled": True, "min_mean_logprob": -100, "self_check": True,
                                 "min": {"self_check": 1.01}}),
            _case("combiner", {"enabled": True, "min_mean_logprob": -100, "min_p_correct": 0.99}),
            _case("keep", {"enabled": True, "min_mean_logprob": -100, "self_check": True, "consistency_samples": 1}),
            _case("capped", {"enabled": True, "min": {"mean_logprob": 0.1}, "max_share": 0.0}),
            _case("off", {"enabled": False, "min": {"mean_logprob": 0.1}}),
            _case("stream-fail", {"enabled": True, "min": {"mean_logprob": 0.1}, "stream_check_tokens": PREFIX}),
            _case("stream-pass", {"enabled": True, "min_mean_logprob": -100, "stream_check_tokens": PREFIX}),
            _case("verifier", {"enabled": True, "min_mean_logprob": -100, "min": {"verifier": 1.01}}),
        ],
    }


@pytest.fixture(scope="module")
def proxy(cloud, tmp_path_factory):
    p = ProxyProcess(_policy(cloud.url), tmp_path_factory.mktemp("cascade")).start()
    yield p
    p.stop()


def _send(proxy, case: str | None, stream: bool, model: str = "auto"):
    """(headers, text, completion or None) through the SDK."""
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=180)
    kwargs = dict(model=model, messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS, temperature=0)
    if case:
        kwargs["metadata"] = {"case": case}
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        completion = raw.parse()
        return raw.headers, completion.choices[0].message.content, completion
    raw = client.chat.completions.with_raw_response.create(**kwargs, stream=True)
    ids, parts = set(), []
    for ch in raw.parse():
        ids.add(ch.id)
        for c in ch.choices:
            parts.append(c.delta.content or "")
    assert len(ids) == 1
    return raw.headers, "".join(parts), None


def _calls(proxy, request_id: str, timeout_s: float = 15.0) -> list[dict]:
    """The logged calls of a request (waits for a streamed request's write to land)."""
    deadline = time.time() + timeout_s
    while True:
        db = sqlite3.connect(proxy.log_path)
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM calls WHERE request_id = ? ORDER BY ts", (request_id,))]
        db.close()
        if rows or time.time() > deadline:
            return rows
        time.sleep(0.1)


@pytest.mark.parametrize("stream", [False, True])
def test_failed_self_check_escalates_to_the_cloud(proxy, cloud, stream):
    headers, text, completion = _send(proxy, "self-check", stream)
    assert headers["x-router-tier"] == "cloud" and headers["x-router-escalated"] == "true"
    assert text == ANSWER
    assert "self-check" in headers["x-router-reason"] and "< 1.01" in headers["x-router-reason"]
    calls = _calls(proxy, headers["x-request-id"])
    assert [(c["purpose"], c["tier"]) for c in calls] == [("primary", "local"), ("self_check", "local"),
                                                          ("escalation", "cloud")]
    check = calls[1]
    assert check["prompt_tokens"] > 0 and check["completion_tokens"] == 1 and check["status"] == "ok"
    signals = json.loads(calls[0]["signals"])
    assert 0.0 <= signals["self_check"] <= 1.0 and signals["mean_logprob"] < 0
    assert signals["mean_margin"] is not None  # the check asked the tier for top_logprobs: 2
    assert signals["p_correct"] == pytest.approx(0.5)
    assert calls[0]["completion_tokens"] == signals["n_tokens"]


def test_combiner_below_its_cut_off_escalates(proxy, cloud):
    headers, text, _ = _send(proxy, "combiner", stream=False)
    assert headers["x-router-escalated"] == "true" and text == ANSWER
    assert "P(correct) 0.50 < 0.99" in headers["x-router-reason"]
    assert [c["purpose"] for c in _calls(proxy, headers["x-request-id"])] == ["primary", "escalation"]


def test_passing_checks_keep_the_local_answer_and_are_reported(proxy, tmp_path):
    headers, text, completion = _send(proxy, "keep", stream=False)
    assert headers["x-router-tier"] == "local" and headers["x-router-escalated"] == "false"
    assert text and text != ANSWER
    assert completion.choices[0].logprobs is None  # asked of the tier for the check, never returned
    reason = headers["x-router-reason"]
    assert "self-check" in reason and "consistency" in reason and "P(correct) 0.50 ok" in reason
    calls = _calls(proxy, headers["x-request-id"])
    assert [c["purpose"] for c in calls] == ["primary", "self_check", "consistency"]
    assert all(c["tier"] == "local" and c["completion_tokens"] > 0 for c in calls)
    signals = json.loads(calls[0]["signals"])
    assert 0.0 <= signals["consistency"] <= 1.0 and signals["self_check"] is not None

    out = subprocess.run([sys.executable, "-m", "router.cli", "report", "--log", str(proxy.log_path),
                          "--format", "json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["self_check_calls"] >= 1 and summary["self_check_tokens"] > 0
    assert summary["consistency_calls"] >= 1 and summary["consistency_tokens"] > 0
    text_report = subprocess.run([sys.executable, "-m", "router.cli", "report", "--log", str(proxy.log_path)],
                                 capture_output=True, text=True, timeout=120).stdout
    assert "self-check calls" in text_report and "consistency samples" in text_report


def test_max_share_zero_never_escalates(proxy):
    for stream in (False, True, False):
        headers, text, _ = _send(proxy, "capped", stream)
        assert headers["x-router-tier"] == "local" and headers["x-router-escalated"] == "false"
        assert "mean logprob" in headers["x-router-reason"] and "escalation capped" in headers["x-router-reason"]
        assert "max_share 0" in headers["x-router-reason"] and text != ANSWER
    metrics = httpx.get(proxy.url + "/metrics").text
    capped = [line for line in metrics.splitlines() if line.startswith("slm_router_escalations_capped_total")]
    assert capped and float(capped[0].split()[-1]) >= 3


def test_rules_turn_escalation_on_and_off(proxy):
    headers, _, _ = _send(proxy, "off", stream=False)
    assert headers["x-router-tier"] == "local" and headers["x-router-escalated"] == "false"
    assert "escalation off by rule off" in headers["x-router-reason"]
    headers, _, _ = _send(proxy, None, stream=False)  # no rule: the policy's escalation is off
    assert headers["x-router-tier"] == "local" and "escalation disabled" in headers["x-router-reason"]
    body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}], "metadata": {"case": "self-check"}}
    route = httpx.post(proxy.url + "/v1/route", json=body).json()
    esc = route["escalation"]
    assert esc["enabled"] and esc["self_check"] and esc["min"] == {"self_check": 1.01}
    assert esc["combiner"]["min_p_correct"] == 0.5 and esc["max_share"] == 1.0 and esc["stream_check_tokens"] is None
    assert route["rules"] == ["self-check"]
    policy = httpx.get(proxy.url + "/v1/policy").json()["policy"]
    assert policy["rules"][0]["action"]["escalation"]["min"] == {"self_check": 1.01}
    assert policy["escalation"]["combiner"]["signals"] == ["mean_logprob"]


def test_streamed_prefix_check_fails_and_the_client_gets_only_the_cloud_answer(proxy, cloud):
    headers, text, _ = _send(proxy, "stream-fail", stream=True)
    assert headers["x-router-tier"] == "cloud" and headers["x-router-escalated"] == "true"
    assert text == ANSWER  # no local piece before or after it
    assert f"checked the first {PREFIX} streamed tokens" in headers["x-router-reason"]
    calls = _calls(proxy, headers["x-request-id"])
    assert [(c["purpose"], c["tier"]) for c in calls] == [("primary", "local"), ("escalation", "cloud")]
    local = calls[0]
    signals = json.loads(local["signals"])
    assert signals["prefix_tokens"] >= PREFIX and signals["n_tokens"] == signals["prefix_tokens"]
    assert PREFIX <= local["completion_tokens"] < MAX_TOKENS and local["prompt_tokens"] > 0
    assert calls[1]["completion_tokens"] == len(ANSWER.split())


def test_streamed_prefix_check_passes_and_the_local_answer_streams_whole(proxy):
    _, whole, _ = _send(proxy, None, stream=False, model="local")  # the same greedy answer, unchecked
    headers, text, _ = _send(proxy, "stream-pass", stream=True)
    assert headers["x-router-tier"] == "local" and headers["x-router-escalated"] == "false"
    assert text == whole and len(text) > 0
    assert f"checked the first {PREFIX} streamed tokens" in headers["x-router-reason"]
    calls = _calls(proxy, headers["x-request-id"])
    assert [c["purpose"] for c in calls] == ["primary"]
    signals = json.loads(calls[0]["signals"])
    assert signals["prefix_tokens"] >= PREFIX and signals["mean_logprob"] < 0
    assert calls[0]["completion_tokens"] > signals["prefix_tokens"]  # the rest was streamed live


def test_verifier_reads_the_answer_and_escalates_below_its_threshold(proxy, cloud):
    headers, text, _ = _send(proxy, "verifier", stream=False)
    assert headers["x-router-escalated"] == "true" and text == ANSWER
    assert "verifier" in headers["x-router-reason"] and "< 1.01" in headers["x-router-reason"]
    calls = _calls(proxy, headers["x-request-id"])
    assert [c["purpose"] for c in calls] == ["primary", "escalation"]  # no model call for the verifier
    signals = json.loads(calls[0]["signals"])
    assert 0.0 < signals["verifier"] < 1.0
