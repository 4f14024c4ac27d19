"""A routed json_schema request whose answer is prose goes to the next untried tier of
``routing.escalation_order`` (three scripted OpenAI-compatible tiers, the real server); it is
marked "returned anyway" only when no tier is left."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from .proxy_process import ProxyProcess
from .scripted_upstream import ScriptedUpstream, completion

pytestmark = pytest.mark.slow

USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
FMT = {"type": "json_schema", "json_schema": {"name": "city", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
JSON_ANSWER = '{"city": "Tokyo"}'


@pytest.fixture(scope="module")
def tiers():
    ups = {name: ScriptedUpstream().start() for name in ("local", "cloud", "cloud2")}
    yield ups
    for up in ups.values():
        up.stop()


@pytest.fixture(scope="module")
def proxy(tiers, tmp_path_factory):
    def tier(name: str, model: str) -> dict:
        return {"model": model, "api_base": tiers[name].url, "api_key": f"sk-{name}", "max_retries": 0,
                "capabilities": {"json_schema": True}}

    policy = {"tiers": {"local": {**tier("local", "openai/smollm2"),
                                  "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                        "cloud": tier("cloud", "openai/gpt-4o-mini"),
                        "cloud2": tier("cloud2", "openai/gpt-4o")},
              "routing": {"classifier": {"threshold": 1.0}, "escalation_order": ["cloud2"]}}
    proc = ProxyProcess(policy, tmp_path_factory.mktemp("format-escalation")).start()
    yield proc
    proc.stop()


def _script(tiers, local: str, cloud: str, cloud2: str) -> None:
    logprobs = {"content": [{"token": "x", "logprob": -0.01, "top_logprobs": []}]}
    tiers["local"].reply = lambda body: completion(local, usage=USAGE, logprobs=logprobs)
    tiers["cloud"].reply = lambda body: completion(cloud, usage=USAGE)
    tiers["cloud2"].reply = lambda body: completion(cloud2, usage=USAGE)


def _row(proc: ProxyProcess, request_id: str) -> dict:
    deadline = time.time() + 10
    while True:
        con = sqlite3.connect(proc.log_path)
        con.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in con.execute("SELECT * FROM requests WHERE id = ?", (request_id,))]
            calls = [dict(r) for r in con.execute("SELECT tier, purpose FROM calls WHERE request_id = ? ORDER BY ts",
                                                  (request_id,))]
        finally:
            con.close()
        if rows or time.time() > deadline:
            assert rows, "not logged"
            return {**rows[0], "calls": calls}
        time.sleep(0.1)


def _ask(proc: ProxyProcess, question: str, **extra) -> httpx.Response:
    return httpx.post(proc.url + "/v1/chat/completions", timeout=60, json={
        "model": "auto", "response_format": FMT, "messages": [{"role": "user", "content": question}], **extra})


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "stream"])
def test_cloud_prose_goes_to_the_next_tier(proxy, tiers, stream):
    _script(tiers, local='{"city": "Tok', cloud="Tokyo is the capital of Japan.", cloud2=JSON_ANSWER)
    r = _ask(proxy, f"The capital of Japan, as JSON ({stream})", stream=stream)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-tier"] == "cloud2" and r.headers["x-router-escalated"] == "true"
    reason = r.headers["x-router-reason"]
    assert "cloud's answer broke response_format (answer is not valid JSON), escalated to cloud2" in reason
    assert "returned anyway" not in reason
    if stream:
        text = "".join(ch["delta"].get("content") or "" for line in r.text.splitlines() if line.startswith("data: {")
                       for ch in json.loads(line[6:]).get("choices") or [])
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert json.loads(text) == {"city": "Tokyo"}
    row = _row(proxy, r.headers["x-request-id"])
    assert row["tier"] == "cloud2" and "returned anyway" not in row["reason"]
    assert [(c["tier"], c["purpose"]) for c in row["calls"]] == [
        ("local", "primary"), ("cloud", "escalation"), ("cloud2", "escalation")]


def test_marked_only_when_no_tier_is_left(proxy, tiers):
    _script(tiers, local='{"city": "Tok', cloud="Tokyo.", cloud2="It is Tokyo.")
    r = _ask(proxy, "The capital of Japan as JSON, nobody can")
    assert r.status_code == 200 and r.headers["x-router-tier"] == "cloud2"
    assert "returned anyway: answer is not valid JSON" in r.headers["x-router-reason"]
    row = _row(proxy, r.headers["x-request-id"])
    assert "returned anyway: answer is not valid JSON" in row["reason"]
    assert [c["tier"] for c in row["calls"]] == ["local", "cloud", "cloud2"]


def test_a_forced_tier_is_not_replaced(proxy, tiers):
    _script(tiers, local="{}", cloud="Tokyo.", cloud2=JSON_ANSWER)
    r = httpx.post(proxy.url + "/v1/chat/completions", timeout=60, json={
        "model": "cloud", "response_format": FMT, "messages": [{"role": "user", "content": "forced cloud JSON"}]})
    assert r.headers["x-router-tier"] == "cloud"
    assert "returned anyway: answer is not valid JSON" in r.headers["x-router-reason"]
