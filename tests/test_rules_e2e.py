"""Rules, aliases, API keys and overlays through the real server: each rule kind decides as
documented through ``POST /v1/route`` and through real chat requests (the OpenAI SDK ->
``slm-router serve`` -> SmolLM2 in-process or the HTTP cloud stand-in).

The escalation threshold here (mean log-probability >= -0.001) fails every local answer's
check, so a local answer that is not escalated shows that a rule prevented it.
"""

from __future__ import annotations

import sqlite3
import time

import httpx
import openai
import pytest

from router.policy import hash_api_key

from .fake_openai import ANSWER
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow

HR_KEY, BATCH_KEY = "sk-hr-test-key", "sk-batch-test-key"
LONG = "Please summarise the following notes. " + " ".join(f"Item {i}: the shipment arrived on time." for i in range(40))


def _policy(cloud_url: str) -> dict:
    return {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 12,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-provider-secret", "api_base": cloud_url},
        },
        "routing": {"classifier": {"threshold": 0.5}},
        "escalation": {"enabled": True, "min_mean_logprob": -0.001},
        "aliases": {"gpt-4o": "auto", "fast": "local"},
        "api_keys": [
            {"name": "hr", "sha256": hash_api_key(HR_KEY), "group": "private"},
            {"name": "batch", "key": "${BATCH_KEY_FOR_TEST:-" + BATCH_KEY + "}", "overlay": "thrifty"},
        ],
        "overlays": {"thrifty": {"allowed_tiers": ["local"], "escalation": {"enabled": False}}},
        "rules": [
            {"name": "private-stays-local", "match": {"groups": ["private"]}, "action": {"forbid": ["cloud"]}},
            {"name": "secrets-stay-local", "match": {"last_user_regex": r"(?i)\bpassword\b"},
             "action": {"forbid": ["cloud"]}},
            {"name": "premium-header", "match": {"headers": {"X-Route": "premium"}}, "action": {"tier": "cloud"}},
            {"name": "eval-metadata", "match": {"metadata": {"purpose": "eval"}}, "action": {"tier": "local"}},
            {"name": "french", "match": {"languages": ["fr"]}, "action": {"tier": "cloud"}},
            {"name": "tools", "match": {"needs": ["tools"]}, "action": {"tier": "cloud"}},
            {"name": "long", "match": {"min_prompt_tokens": 200}, "action": {"tier": "cloud"}},
            {"name": "legacy-model", "match": {"models": ["gpt-4o"]}, "action": {"threshold": 0.0}},
            {"name": "quick", "match": {"headers": {"x-priority": "batch"}},
             "action": {"disable_escalation": True, "threshold": 1.0}},
        ],
    }


TOOLS = [{"type": "function", "function": {"name": "get_time", "description": "Current time",
                                           "parameters": {"type": "object", "properties": {}}}}]

# name: (request, expected route tier, expected matching rules)
CASES = {
    "private key": (dict(key=HR_KEY, prompt="What is the capital of France?"), "local", ["private-stays-local"]),
    "regex on last user turn": (dict(prompt="My password is hunter2, is it strong?"), "local", ["secrets-stay-local"]),
    "header": (dict(prompt="Hi there", headers={"x-route": "premium"}), "cloud", ["premium-header"]),
    "metadata": (dict(prompt="Name a color.", metadata={"purpose": "eval"}), "local", ["eval-metadata"]),
    "language": (dict(prompt="Quelle est la capitale de la France et pourquoi ?"), "cloud", ["french"]),
    "capability needed": (dict(prompt="What time is it?", tools=TOOLS), "cloud", ["tools"]),
    "prompt length": (dict(prompt=LONG), "cloud", ["long"]),
    "requested model + threshold": (dict(prompt="Say hi.", model="gpt-4o"), "cloud", ["legacy-model"]),
    "alias to a tier": (dict(prompt="Say hi.", model="fast"), "local", []),
    "disable escalation": (dict(prompt="Say hi.", headers={"x-priority": "batch"}), "local", ["quick"]),
    "overlay allowed_tiers beats a forced tier": (dict(key=BATCH_KEY, prompt="Hi", headers={"x-route": "premium"}),
                                                  "local", ["premium-header"]),
    "forbid beats force": (dict(key=HR_KEY, prompt="Hi", headers={"x-route": "premium"}),
                           "local", ["private-stays-local", "premium-header"]),
}


@pytest.fixture(scope="module")
def proxy(cloud, tmp_path_factory):
    p = ProxyProcess(_policy(cloud.url), tmp_path_factory.mktemp("rules")).start()
    yield p
    p.stop()


def _body(req: dict) -> dict:
    body = {"model": req.get("model", "auto"), "messages": [{"role": "user", "content": req["prompt"]}]}
    if "tools" in req:
        body["tools"] = req["tools"]
    if "metadata" in req:
        body["metadata"] = req["metadata"]
    return body


def _headers(req: dict) -> dict:
    h = dict(req.get("headers", {}))
    if "key" in req:
        h["authorization"] = f"Bearer {req['key']}"
    return h


@pytest.mark.parametrize("case", list(CASES))
def test_route_endpoint_decides_each_rule_kind(proxy, cloud, case):
    req, tier, rules = CASES[case]
    before = len(cloud.received)
    r = httpx.post(proxy.url + "/v1/route", json=_body(req), headers=_headers(req), timeout=60)
    assert r.status_code == 200, r.text
    route = r.json()
    assert route["tier"] == tier and route["rules"] == rules, route
    for name in rules:
        assert name in route["reason"]
    assert len(cloud.received) == before  # /v1/route calls no model
    if case == "language":
        assert route["language"] == "fr"
    if case == "capability needed":
        assert route["needs"] == ["tools"]
    if case == "prompt length":
        assert route["prompt_tokens"] >= 200
    if case == "requested model + threshold":
        assert route["resolved_model"] == "auto" and route["threshold"] == 0.0 and route["score"] is not None
    if case == "alias to a tier":
        assert route["resolved_model"] == "local" and route["score"] is None and route["escalation"] is None
    if case in ("private key", "forbid beats force"):
        assert route["caller"] == {"name": "hr", "group": "private", "overlay": None}
        assert route["forbidden"] == {"cloud": "rule private-stays-local"}
    if case == "overlay allowed_tiers beats a forced tier":
        assert route["caller"]["overlay"] == "thrifty" and route["forbidden"] == {"cloud": "overlay thrifty"}
        assert route["escalation"]["enabled"] is False


def _logged(proxy, request_id: str, columns: str, wait_s: float = 10.0):
    """The request's log row (streamed requests are logged just after their last byte)."""
    deadline = time.time() + wait_s
    while True:
        row = sqlite3.connect(proxy.log_path).execute(
            f"SELECT {columns} FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row is not None or time.time() > deadline:
            return row
        time.sleep(0.1)


def _chat(proxy, req: dict, stream: bool = False):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=req.get("key", "anonymous"), max_retries=0, timeout=120)
    body = _body(req)
    kwargs = dict(model=body["model"], messages=body["messages"], max_tokens=12,
                  extra_headers=req.get("headers") or None)
    if "tools" in body:
        kwargs["tools"] = body["tools"]
    if "metadata" in body:
        kwargs["metadata"] = body["metadata"]
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**kwargs)
        return raw.headers, raw.parse().choices[0].message.content or ""
    raw = client.chat.completions.with_raw_response.create(**kwargs, stream=True)
    return raw.headers, "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)


@pytest.mark.parametrize("case", list(CASES))
def test_real_requests_follow_each_rule_kind(proxy, cloud, case):
    req, tier, rules = CASES[case]
    before = len(cloud.received)
    headers, text = _chat(proxy, req)
    assert headers["x-router-rules"] == ",".join(rules)
    assert text.strip()
    if tier == "cloud":
        assert headers["x-router-tier"] == "cloud" and text.strip() == ANSWER
        assert len(cloud.received) == before + 1
    else:
        # Local answers either skip the check (forced) or fail it; none may reach the cloud here.
        assert headers["x-router-tier"] == "local" and headers["x-router-escalated"] == "false", dict(headers)
        assert text.strip() != ANSWER and len(cloud.received) == before


@pytest.mark.parametrize("stream", [False, True])
def test_private_key_is_never_escalated_even_when_every_check_fails(proxy, cloud, stream):
    before = len(cloud.received)
    headers, text = _chat(proxy, dict(key=HR_KEY, prompt="Write a short poem about the sea."), stream=stream)
    assert headers["x-router-tier"] == "local" and headers["x-router-escalated"] == "false"
    reason = headers["x-router-reason"]
    assert "cloud forbidden (rule private-stays-local)" in reason
    if not stream:
        assert "mean logprob" in reason and "< -0.00" in reason  # the check failed...
        assert "kept local answer" in reason  # ...and nothing left the machine
    # A stream that can never be escalated is relayed as generated (no buffering for a check).
    assert text.strip() and len(cloud.received) == before
    row = _logged(proxy, headers["x-request-id"], "api_key_name, rules, escalated, tier, policy_hash")
    assert row[:4] == ("hr", "private-stays-local", 0, "local") and row[4] == headers["x-router-policy"]
    calls = sqlite3.connect(proxy.log_path).execute(
        "SELECT tier, purpose FROM calls WHERE request_id = ?", (headers["x-request-id"],)).fetchall()
    assert calls == [("local", "primary")]


def test_forbidden_tier_named_by_the_client_is_403_and_logged(proxy, cloud):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=HR_KEY, max_retries=0)
    before = len(cloud.received)
    with pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model="cloud", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "tier_forbidden" and "private-stays-local" in e.value.body["message"]
    assert len(cloud.received) == before
    row = sqlite3.connect(proxy.log_path).execute(
        "SELECT status, http_status, api_key_name FROM requests WHERE requested_model = 'cloud' "
        "ORDER BY ts DESC LIMIT 1").fetchone()
    assert row == ("error", 403, "hr")


def test_escalation_still_happens_without_a_rule(proxy, cloud):
    """Control: the same failing check escalates an anonymous local answer."""
    headers, text = _chat(proxy, dict(prompt="Write a haiku about autumn.", model="auto", headers={"x-unrelated": "1"}))
    if headers["x-router-tier"] == "cloud" and headers["x-router-escalated"] == "false":
        pytest.skip("the classifier routed the control prompt to the cloud directly")
    assert headers["x-router-escalated"] == "true" and text.strip() == ANSWER


def test_policy_endpoint_redacts_and_models_list_aliases(proxy):
    info = httpx.get(proxy.url + "/v1/policy").json()
    text = str(info)
    assert "sk-provider-secret" not in text and BATCH_KEY not in text and hash_api_key(HR_KEY) not in text
    assert info["policy"]["tiers"]["cloud"]["api_key"] == "***"
    assert [r["name"] for r in info["policy"]["rules"]][:2] == ["private-stays-local", "secrets-stay-local"]
    assert info["capabilities"]["local"] == {"context_window": 2048, "vision": False, "tools": False,
                                             "json_schema": True, "source": "runtime"}  # llama.cpp grammar
    assert info["capabilities"]["cloud"]["tools"] is True and info["capabilities"]["cloud"]["source"] == "litellm"
    assert len(info["hash"]) == 16 and info["source"].endswith("policy.yaml")
    assert httpx.get(proxy.url + "/healthz").json()["policy_hash"] == info["hash"]
    ids = {m["id"] for m in httpx.get(proxy.url + "/v1/models").json()["data"]}
    assert ids == {"auto", "local", "cloud", "gpt-4o", "fast"}
    # Every logged request carries the hash of the policy that routed it.
    hashes = {h for (h,) in sqlite3.connect(proxy.log_path).execute("SELECT DISTINCT policy_hash FROM requests")}
    assert hashes == {info["hash"]}
