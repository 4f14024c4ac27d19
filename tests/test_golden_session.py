"""Golden session: a fixed sequence of requests through the real server (``slm-router
serve`` in a subprocess, the local and cloud tiers as real OpenAI-compatible HTTP stand-ins
called through litellm) whose response headers, answers and log rows must stay exactly as
recorded in ``tests/golden/session.json``.

It pins the behaviour of the whole request path (rules, overlays, aliases, forced tiers,
the cascade with its self-check / consistency calls and share cap, streamed prefix checks,
the response cache, budgets, retries and fallbacks, client errors) so that moving code
around cannot change what a client or the log sees. What legitimately varies between runs
is replaced by placeholders: request ids, timestamps, latencies, the stand-ins' ports, the
policy hash (it covers those ports) and the classifier's score (an artifact or embedder
change moves it; the policy's thresholds 0 and 1 make the routed tier independent of it).

After an intended change, regenerate with ``SLM_ROUTER_UPDATE_GOLDEN=1 python -m pytest
tests/test_golden_session.py`` and review the diff of the golden file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.policy import hash_api_key
from router.store.sqlite import SQLiteStore

from .fake_local import FakeLocal
from .fake_openai import FakeOpenAI
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).parent / "golden" / "session.json"
THRIFTY_KEY, BROKE_KEY = "sk-golden-thrifty", "sk-golden-broke"
EASY = "What is the capital of France?"
HARD = "This is a hard question: why is the sky blue?"


def _case_rule(name: str, escalation: dict) -> dict:
    return {"name": name, "match": {"metadata": {"case": name}}, "action": {"escalation": escalation}}


def _policy(local_url: str, cloud_url: str) -> dict:
    return {
        "tiers": {
            "local": {"model": "openai/golden-slm", "api_base": local_url, "api_key": "sk-local-fake",
                      "max_tokens": 32, "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0},
                      "capabilities": {"context_window": 4096, "vision": False, "tools": False, "json_schema": False}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-cloud-fake", "api_base": cloud_url,
                      "max_retries": 1},
        },
        "routing": {"classifier": {"threshold": 1.0}, "on_cloud_unavailable": "local"},
        "escalation": {"enabled": True, "min_mean_logprob": -1.0},
        "aliases": {"gpt-4o": "auto", "fast": "local"},
        "api_keys": [
            {"name": "thrifty", "sha256": hash_api_key(THRIFTY_KEY), "overlay": "thrifty"},
            {"name": "broke", "sha256": hash_api_key(BROKE_KEY)},
        ],
        "overlays": {"thrifty": {"allowed_tiers": ["local"], "escalation": {"enabled": False}}},
        "rules": [
            {"name": "premium-header", "match": {"headers": {"X-Route": "premium"}}, "action": {"tier": "cloud"}},
            {"name": "legacy-model", "match": {"models": ["gpt-4o"]}, "action": {"threshold": 0.0}},
            _case_rule("extras", {"self_check": True, "consistency_samples": 1}),
            _case_rule("capped", {"max_share": 0.0}),
            _case_rule("prefix", {"stream_check_tokens": 2}),
            _case_rule("off", {"enabled": False}),
        ],
        "cache": {"enabled": True},
        "budgets": {"enabled": True, "threshold_shift": None,
                    "tenants": {"key-" + hash_api_key(BROKE_KEY)[:16]: {"daily_usd": 0.0}}},
        "rate_limits": {"enabled": True, "requests_per_minute": 6000},
    }


def _chat(prompt: str = EASY, **fields: Any) -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}], **fields}


# (name, path, body, extra headers, cloud failure status during the request)
SESSION: list[tuple[str, str, dict, dict, int | None]] = [
    ("easy", "/v1/chat/completions", _chat(temperature=0), {}, None),
    ("hard escalates", "/v1/chat/completions", _chat(HARD), {}, None),
    ("exact cache hit", "/v1/chat/completions", _chat(temperature=0), {}, None),
    ("rule forces cloud", "/v1/chat/completions", _chat("Hello there"), {"x-route": "premium"}, None),
    ("overlay keeps local", "/v1/chat/completions", _chat(HARD), {"authorization": f"Bearer {THRIFTY_KEY}"}, None),
    ("forced tier", "/v1/chat/completions", _chat("Name a colour.", model="cloud"), {}, None),
    ("alias to a tier", "/v1/chat/completions", _chat("Name a fruit.", model="fast"), {}, None),
    ("alias + rule threshold", "/v1/chat/completions", _chat("Name a tree.", model="gpt-4o"), {}, None),
    ("ignored fields", "/v1/chat/completions", _chat("Name a river.", api_base="http://elsewhere"), {}, None),
    ("self-check and consistency", "/v1/chat/completions", _chat("Name a city.", metadata={"case": "extras"}), {}, None),
    ("share cap", "/v1/chat/completions", _chat(HARD + " capped", metadata={"case": "capped"}), {}, None),
    ("escalation off by rule", "/v1/chat/completions", _chat(HARD + " off", metadata={"case": "off"}), {}, None),
    ("budget refused", "/v1/chat/completions", _chat("Hi", temperature=0.5),
     {"authorization": f"Bearer {BROKE_KEY}", "x-route": "premium"}, None),
    ("cloud down falls back", "/v1/chat/completions", _chat("Hello again"), {"x-route": "premium"}, 503),
    ("escalation fails", "/v1/chat/completions", _chat(HARD + " again"), {}, 503),
    ("stream checked", "/v1/chat/completions", _chat("Name a mountain.", stream=True, temperature=0), {}, None),
    ("stream escalates", "/v1/chat/completions", _chat(HARD + " stream", stream=True,
                                                       stream_options={"include_usage": True}), {}, None),
    ("stream prefix keeps", "/v1/chat/completions",
     _chat("Name a lake.", stream=True, metadata={"case": "prefix"}), {}, None),
    ("stream prefix escalates", "/v1/chat/completions",
     _chat(HARD + " prefix", stream=True, metadata={"case": "prefix"}), {}, None),
    ("stream cloud relay", "/v1/chat/completions",
     _chat("Name a sea.", model="cloud", stream=True, stream_options={"include_usage": True}), {}, None),
    ("stream cloud down falls back", "/v1/chat/completions",
     _chat("Name a bird.", stream=True), {"x-route": "premium"}, 503),
    ("stream cache hit", "/v1/chat/completions", _chat("Name a mountain.", stream=True, temperature=0), {}, None),
    ("invalid parameter", "/v1/chat/completions", _chat("Hi", temperature=5), {}, None),
    ("unknown model", "/v1/chat/completions", _chat("Hi", model="no-such-model"), {}, None),
    ("route only", "/v1/route", _chat("Hi", metadata={"case": "extras"}), {"x-route": "premium"}, None),
]

_PORT = re.compile(r"127\.0\.0\.1:\d+")
_SCORE = re.compile(r"score \d\.\d+")
ROUTER_HEADERS = ("x-router-tier", "x-router-score", "x-router-escalated", "x-router-degraded", "x-router-reason",
                  "x-router-rules", "x-router-cache", "x-router-tenant", "content-type")


def _text(value: str) -> str:
    return _SCORE.sub("score <score>", _PORT.sub("127.0.0.1:<port>", value))


def _clean(value: Any) -> Any:
    """Placeholders for what varies between runs; floats rounded to 9 significant digits."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return float(f"{value:.9g}")
    return value


def _headers(response: httpx.Response) -> dict[str, Any]:
    out = {h: _text(response.headers[h]) for h in ROUTER_HEADERS if h in response.headers}
    if "x-router-score" in out and out["x-router-score"] != "none":
        out["x-router-score"] = "<score>"
    out["has request id"] = bool(response.headers.get("x-request-id"))
    return out


def _sse(text: str) -> dict[str, Any]:
    """The parts of an SSE stream a client reads: content per choice, finish reasons, usage,
    error events and whether it ended with [DONE]; plus the chunk ids seen (one expected)."""
    content: dict[str, str] = {}
    finishes, ids, usage, errors, done = [], set(), None, [], False
    for line in text.splitlines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        event = json.loads(data)
        if "error" in event:
            errors.append(event["error"])
            continue
        ids.add(event["id"])
        if event.get("usage"):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            i = str(choice["index"])
            content[i] = content.get(i, "") + (choice["delta"].get("content") or "")
            if choice.get("finish_reason"):
                finishes.append(choice["finish_reason"])
    return {"content": content, "finish_reasons": finishes, "usage": usage, "errors": errors, "done": done,
            "one id": len(ids) == 1}


def _body(response: httpx.Response, path: str) -> Any:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return _sse(response.text)
    body = response.json()
    if path == "/v1/route":
        body.pop("policy_hash", None)
        body["score"] = None if body.get("score") is None else "<score>"
        return body
    if "error" in body:
        return body
    return {"model": body["model"], "id is ours": body["id"].startswith("chatcmpl-"),
            "choices": [{"content": c["message"]["content"], "finish_reason": c["finish_reason"],
                         "logprobs": c.get("logprobs")} for c in body["choices"]],
            "usage": {k: body["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}}


_VARYING = {"id", "ts", "latency_ms", "request_id", "policy_hash"}


def _row(record) -> dict[str, Any]:
    row = {k: v for k, v in dataclasses.asdict(record).items() if k not in _VARYING and k != "calls"}
    row["score"] = None if row["score"] is None else "<score>"
    if row.get("learning"):  # the kept embedding varies with the embedder build; its shape and features do not
        kept = row["learning"]
        row["learning"] = {**kept, "embedding": f"<{len(kept['embedding'])} base64 chars>",
                           "features": sorted(kept.get("features") or {})}
    row["calls"] = [{k: v for k, v in dataclasses.asdict(c).items() if k not in _VARYING} for c in record.calls]
    return row


def _run_session(tmp_path: Path) -> tuple[dict[str, Any], list, dict]:
    local, cloud = FakeLocal().start(), FakeOpenAI().start()
    policy = _policy(local.url, cloud.url)
    proxy = ProxyProcess(policy, tmp_path)
    responses: dict[str, Any] = {}
    ids: dict[str, str] = {}
    try:
        proxy.start()
        with httpx.Client(base_url=proxy.url, timeout=60) as client:
            hash_ = client.get("/healthz").json()["policy_hash"]
            for name, path, body, headers, fail in SESSION:
                cloud.fail_with = fail
                try:
                    response = client.post(path, json=body, headers=headers)
                finally:
                    cloud.fail_with = None
                responses[name] = {"status": response.status_code, "headers": _headers(response),
                                   "body": _body(response, path)}
                if response.headers.get("x-router-policy"):
                    assert response.headers["x-router-policy"] == hash_
                if response.headers.get("x-request-id"):
                    ids[response.headers["x-request-id"]] = name
    finally:
        proxy.stop()
        local.stop()
        cloud.stop()
    store = SQLiteStore(proxy.log_path)
    try:
        records = store.requests()
    finally:
        store.close()
    assert all(r.policy_hash == hash_ for r in records)
    rows = {ids.get(r.id, f"unanswered {i}"): _row(r) for i, r in enumerate(records)}
    chat_cases = [name for name, path, *_ in SESSION if path == "/v1/chat/completions"]
    assert sorted(rows) == sorted(chat_cases), "every chat request is logged once"
    named = {ids.get(r.id): r for r in records}
    return _clean({"responses": responses, "log": {name: rows[name] for name in chat_cases}}), named, policy


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> tuple[dict[str, Any], dict, dict]:
    """The session's cleaned responses and log rows, its log records by case name, and the
    policy mapping it ran under."""
    return _run_session(tmp_path_factory.mktemp("golden"))


def test_golden_session(session) -> None:
    got = session[0]
    if os.environ.get("SLM_ROUTER_UPDATE_GOLDEN") == "1" or not GOLDEN.exists():
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        if os.environ.get("SLM_ROUTER_UPDATE_GOLDEN") != "1":
            pytest.fail(f"no golden file yet: wrote {GOLDEN}; review it and commit it")
    want = json.loads(GOLDEN.read_text())
    for name in want["responses"]:
        assert got["responses"].get(name) == want["responses"][name], f"response of {name!r} changed"
    for name in want["log"]:
        assert got["log"].get(name) == want["log"][name], f"log row of {name!r} changed"
    assert got == want


def test_replay_decides_like_the_live_router(session) -> None:
    """``replay`` under the policy that served the session re-decides every routed request
    as the live router did: the rules (a header, metadata, a model name), the overlay of a
    key (cloud forbidden, escalation off), forced tiers and aliases, the escalation verdict
    with the rules' settings, and the share cap (``max_share: 0``)."""
    from router.analysis.replay import replay
    from router.policy import policy_from_dict

    _, records, policy = session
    result = replay(list(records.values()), [], policy_from_dict(policy))
    by_id = {p.request_id: p for p in result.projections}
    routed = {name: r for name, r in records.items() if r.status == "ok" and not r.cache}
    assert {"rule forces cloud", "overlay keeps local", "share cap", "alias + rule threshold"} <= set(routed)
    for name, r in routed.items():
        projected = by_id[r.id]
        assert projected.tier == r.routed_tier, f"{name}: replay routes to {projected.tier}, live to {r.routed_tier}"
        assert projected.escalation_p == (1.0 if r.escalated else 0.0), f"{name}: escalation differs"
    assert result.decisions_changed == 0 and result.escalations_changed == 0 and result.would_fail == 0
    # the share-capped answer failed its check: only the replayed cap keeps it local
    assert records["share cap"].escalated is False and "escalation capped" in records["share cap"].reason
