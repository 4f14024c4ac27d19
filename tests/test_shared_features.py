"""Cache, budgets, rate limits, /metrics and /healthz through the app in-process (real
HTTP client over ASGI, real SmolLM2 and MiniLM, a real HTTP server as the cloud tier)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from router.guards.budget import NANO_PER_USD, windows
from router.pipeline import Router
from router.policy import BudgetLimit, policy_from_dict
from router.analysis.report import summarize
from router.api.app import create_app
from router.state.memory import MemoryState
from router.store.sqlite import SQLiteStore
from router.request.tenant import tenant_id

from .fake_openai import ANSWER, free_port

pytestmark = pytest.mark.slow


def _policy(cloud_url: str, **sections) -> dict:
    return {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 8,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud_url},
        },
        **sections,
    }


def _chat(content: str, model: str = "cloud", **params) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 8, **params}


def _serve(policy: dict, tmp_path, state=None):
    """(app, router, store) for a policy, logging to SQLite in tmp_path."""
    active = policy_from_dict(policy)
    store = SQLiteStore(tmp_path / "log.sqlite3")
    router = Router(active, store, state=state)
    return create_app(active, router=router, warm_up=False), router, store


async def _post(app, body: dict, key: str | None = None, **headers) -> httpx.Response:
    if key:
        headers["authorization"] = f"Bearer {key}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy", timeout=120) as client:
        return await client.post("/v1/chat/completions", json=body, headers=headers)


async def _get(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as client:
        return await client.get(path)


def test_budget_exhausted_degrades_to_local_or_answers_429(cloud, tmp_path):
    key = "sk-tenant-small-budget"
    tiny = {"enabled": True, "tenants": {tenant_id(key): {"daily_usd": 0.0000001}}}
    app, _, store = _serve(_policy(cloud.url, budgets={**tiny, "on_exhausted": "local"}), tmp_path / "a")
    before = len(cloud.received)
    r = asyncio.run(_post(app, _chat("Say hello."), key))
    assert r.status_code == 200, r.text
    assert r.headers["x-router-tier"] == "local" and r.headers["x-router-degraded"] == "true"
    # nothing is spent yet: the budget is smaller than one call's worst case, and says so
    assert "budget left cannot hold this call's worst-case cost of $" in r.headers["x-router-reason"]
    assert "(day $0.000000 of $0.000000 spent or held; a lower max_tokens holds less)" in r.headers["x-router-reason"]
    assert r.headers["x-router-tenant"] == tenant_id(key)
    assert len(cloud.received) == before  # the cloud was never called
    # another tenant (no limit) still reaches the cloud
    r = asyncio.run(_post(app, _chat("Say hello."), "sk-other"))
    assert r.headers["x-router-tier"] == "cloud" and r.json()["choices"][0]["message"]["content"] == ANSWER
    row = store.requests()[0]
    assert row.degraded and row.tier == "local" and row.tenant == tenant_id(key)
    assert [c.purpose for c in row.calls] == ["fallback"]

    app, _, store = _serve(_policy(cloud.url, budgets={**tiny, "on_exhausted": "reject"}), tmp_path / "b")
    r = asyncio.run(_post(app, _chat("Say hello.", stream=True), key))
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "insufficient_quota" and r.json()["error"]["code"] == "budget_exceeded"
    assert r.json()["error"]["message"].startswith("The cloud budget of this API key refused the call: budget left "
                                                   "cannot hold this call's worst-case cost")
    logged = store.requests()
    assert len(logged) == 1 and logged[0].http_status == 429 and logged[0].status == "error"


def test_threshold_rises_as_the_budget_burns(cloud, tmp_path):
    state = MemoryState()
    limit = BudgetLimit(daily_usd=0.01)
    policy = _policy(cloud.url, budgets={"enabled": True, "default": limit.model_dump(),
                                         "threshold_shift": {"start_fraction": 0.5, "max_threshold": 0.9}},
                     routing={"classifier": {"threshold": 0.5}})
    _, router, _ = _serve(policy, tmp_path, state=state)
    request = __import__("router.request.parse", fromlist=["x"]).parse_chat_request(_chat("What is 2+2?", model="auto"))
    tenant = tenant_id("sk-burning")

    async def run():
        fresh = (await router.route(request, tenant=tenant)).decision
        assert "budget" not in fresh.reason
        (day,) = windows(tenant, limit, __import__("time").time())
        await state.adjust([day.key], int(0.0075 * NANO_PER_USD), [day.ttl_s])  # 75% spent
        burnt = (await router.route(request, tenant=tenant)).decision
        assert "budget 75% spent, threshold 0.700" in burnt.reason
        assert re.search(r"(>=|<) threshold 0\.700", burnt.reason)

    asyncio.run(run())


def test_rate_limit_answers_429_with_retry_after_and_logs_it(cloud, tmp_path):
    key = "sk-chatty"
    policy = _policy(cloud.url, rate_limits={"enabled": True, "requests_per_minute": 1000,
                                             "tenants": {tenant_id(key): 2}})
    app, _, store = _serve(policy, tmp_path)

    async def run():
        return [await _post(app, _chat(f"Question {i}?"), key) for i in range(3)] + [await _post(app, _chat("Q?"))]

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200, 200, 429, 200]
    err = responses[2].json()["error"]
    assert err["code"] == "rate_limit_exceeded" and int(responses[2].headers["retry-after"]) >= 1
    assert [r.http_status for r in store.requests()] == [200, 200, 429, 200]


def test_cache_hits_are_logged_free_and_streamed_too(cloud, tmp_path):
    policy = _policy(cloud.url, cache={"enabled": True})
    app, _, store = _serve(policy, tmp_path)
    before = len(cloud.received)

    async def run():
        first = await _post(app, _chat("Name the largest planet.", temperature=0), "sk-a")
        second = await _post(app, _chat("Name the largest planet.", temperature=0), "sk-a")
        streamed = await _post(app, _chat("Name the largest planet.", temperature=0, stream=True), "sk-a")
        fresh = await _post(app, _chat("Name the largest planet.", temperature=0), "sk-a", **{"cache-control": "no-cache"})
        warm = await _post(app, _chat("Name the largest planet.", temperature=0.8), "sk-a")
        warm_again = await _post(app, _chat("Name the largest planet.", temperature=0.8), "sk-a")
        metrics = await _get(app, "/metrics")
        return first, second, streamed, fresh, warm, warm_again, metrics

    first, second, streamed, fresh, warm, warm_again, metrics = asyncio.run(run())
    assert "x-router-cache" not in first.headers
    assert second.headers["x-router-cache"] == "exact" and second.headers["x-router-tier"] == "cloud"
    assert second.json()["choices"][0]["message"]["content"] == ANSWER
    assert second.json()["id"] == f"chatcmpl-{second.headers['x-request-id']}" != first.json()["id"]
    assert streamed.headers["x-router-cache"] == "exact"
    text = "".join(re.findall(r'"content":"([^"]*)"', streamed.text))
    assert text == ANSWER and streamed.text.rstrip().endswith("data: [DONE]")
    assert "x-router-cache" not in fresh.headers and "x-router-cache" not in warm_again.headers
    # cloud calls: first, no-cache, two at temperature 0.8
    assert len(cloud.received) - before == 4
    rows = store.requests()
    assert [r.cache for r in rows] == [None, "exact", "exact", None, None, None]
    hit = rows[1]
    assert hit.calls == [] and hit.cost_usd == 0 and hit.counterfactual_usd > 0
    assert summarize(rows).cache_hits == 2
    assert re.search(r'slm_router_cache_hits_total\{kind="exact"\} [1-9]', metrics.text)
    assert re.search(r'slm_router_requests_total\{status="ok",tier="cloud"\} [1-9]', metrics.text)
    assert "slm_router_request_latency_seconds_bucket" in metrics.text


def test_serves_when_redis_is_unreachable_at_start(cloud, tmp_path):
    """store: redis with nothing listening: requests are answered, logged to the spool, and
    /healthz says degraded."""
    policy = _policy(cloud.url, store={"backend": "redis", "url": f"redis://127.0.0.1:{free_port()}/0",
                                       "spool_dir": str(tmp_path / "spool"), "timeout_ms": 200},
                     cache={"enabled": True}, budgets={"enabled": True, "default": {"daily_usd": 1.0}},
                     rate_limits={"enabled": True})
    active = policy_from_dict(policy)
    app = create_app(active, warm_up=False)

    async def run():
        answers = [await _post(app, _chat("Name a colour.", temperature=0), "sk-x") for _ in range(3)]
        return answers, await _get(app, "/healthz")

    answers, health = asyncio.run(run())
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert all("x-router-cache" not in r.headers for r in answers)  # caching paused
    body = health.json()
    assert body["status"] == "degraded"
    assert body["store"]["ok"] is False and body["store"]["spooled"] == 3
    assert body["state"]["ok"] is False and body["state"]["backend"] == "redis"
    app.state.router.store.close()


def test_streamed_cloud_answer_is_cached_and_its_budget_settled(cloud, tmp_path):
    """A live-relayed cloud stream: its reservation settles to the call's real cost, and the
    whole answer is cached for the next request (streaming or not)."""
    state = MemoryState()
    key = "sk-streamer"
    policy = _policy(cloud.url, cache={"enabled": True},
                     budgets={"enabled": True, "default": {"daily_usd": 1.0}})
    app, router, store = _serve(policy, tmp_path, state=state)

    async def run():
        streamed = await _post(app, _chat("Describe the sea in one line.", temperature=0, stream=True), key)
        await router.drain()  # the cache write runs on its own task after the last byte
        again = await _post(app, _chat("Describe the sea in one line.", temperature=0), key)
        (day,) = windows(tenant_id(key), BudgetLimit(daily_usd=1.0), __import__("time").time())
        return streamed, again, (await state.counters([day.key]))[0]

    streamed, again, counter = asyncio.run(run())
    assert streamed.status_code == 200 and "x-router-cache" not in streamed.headers
    assert again.headers["x-router-cache"] == "exact"
    assert again.json()["choices"][0]["message"]["content"].strip() == ANSWER
    first = store.requests()[0]
    assert first.stream and first.calls[0].tier == "cloud" and first.calls[0].cost_usd > 0
    assert counter == round(first.calls[0].cost_usd * NANO_PER_USD)
