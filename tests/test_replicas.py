"""Two real `slm-router serve` processes on one real Redis: shared cache (exact and
semantic, per tenant), a budget that holds under 200 concurrent requests split across both,
shared rate limits, and one request log that `report` reads for both replicas.

The figures the issue asks for (requests, cache hits, budget spent vs limit, log rows) are
printed by the last test of this module.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest

from router.guards.budget import NANO_PER_USD, windows
from router.policy import BudgetLimit, StoreConfig
from router.store.redis import RedisStore
from router.request.tenant import tenant_id

from .fake_openai import ANSWER
from .proxy_process import ProxyProcess
from .redis_server import delete_prefix, unique_prefix

pytestmark = pytest.mark.slow

BUDGET_KEY, RATE_KEY = "sk-replica-budget", "sk-replica-rate"
CACHE_KEY_A, CACHE_KEY_B = "sk-replica-cache-a", "sk-replica-cache-b"
LIMIT_USD = 0.0001
RATE_PER_MINUTE = 5
CONCURRENT = 200
FIGURES: dict[str, object] = {}
SEEN_IDS: set[str] = set()


@pytest.fixture(scope="module")
def prefix(redis_url):
    p = unique_prefix()
    yield p
    delete_prefix(redis_url, p)


@pytest.fixture(scope="module")
def policy(cloud, redis_url, prefix) -> dict:
    return {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 16,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url},
        },
        "store": {"backend": "redis", "url": redis_url, "prefix": prefix},
        "cache": {"enabled": True, "semantic": {"enabled": True, "min_similarity": 0.95}},
        # closed: a Redis timeout under this load refuses a call rather than letting it through unmetered
        "budgets": {"enabled": True, "on_exhausted": "reject", "on_store_down": "closed",
                    "tenants": {tenant_id(BUDGET_KEY): {"daily_usd": LIMIT_USD}}},
        "rate_limits": {"enabled": True, "requests_per_minute": 100000,
                        "tenants": {tenant_id(RATE_KEY): RATE_PER_MINUTE}},
    }


@pytest.fixture(scope="module")
def replicas(policy, tmp_path_factory):
    a = ProxyProcess(policy, tmp_path_factory.mktemp("replica-a")).launch()
    b = ProxyProcess(policy, tmp_path_factory.mktemp("replica-b")).launch()
    try:
        a.wait_ready()
        b.wait_ready()
    except Exception:
        a.stop()
        b.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


async def _post(client: httpx.AsyncClient, proxy: ProxyProcess, content: str, key: str, model: str = "cloud",
                headers: dict | None = None, **params) -> httpx.Response:
    proxy.sent += 1
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 16, **params}
    r = await client.post(proxy.url + "/v1/chat/completions", json=body,
                          headers={"authorization": f"Bearer {key}", **(headers or {})})
    SEEN_IDS.add(r.headers["x-request-id"])
    return r


def _run(coro):
    return asyncio.run(coro)


def test_cache_is_shared_across_replicas_and_scoped_per_tenant(replicas, cloud):
    a, b = replicas
    france = "What is the capital of France?"

    async def run():
        async with httpx.AsyncClient(timeout=120) as c:
            return [
                await _post(c, a, france, CACHE_KEY_A, temperature=0),                    # miss, stored by A
                await _post(c, b, france, CACHE_KEY_A, temperature=0),                    # exact hit on B
                await _post(c, b, "What's the capital of France?", CACHE_KEY_A, temperature=0),  # semantic hit
                await _post(c, b, france, CACHE_KEY_B, temperature=0),                    # other tenant: miss
                await _post(c, a, france, CACHE_KEY_B, temperature=0),                    # its own entry: hit
                await _post(c, a, france, CACHE_KEY_A, temperature=0, headers={"cache-control": "no-cache"}),
                await _post(c, a, "What is the capital of Germany?", CACHE_KEY_A, temperature=0),  # not close
                await _post(c, b, france, CACHE_KEY_A),                                   # temperature 1: never cached
            ]

    before = len(cloud.received)
    responses = _run(run())
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert all(r.json()["choices"][0]["message"]["content"] == ANSWER for r in responses)
    kinds = [r.headers.get("x-router-cache") for r in responses]
    assert kinds == [None, "exact", "semantic", None, "exact", None, None, None]
    assert "similarity 0.99" in responses[2].headers["x-router-reason"]
    assert responses[1].headers["x-router-tenant"] == tenant_id(CACHE_KEY_A) != responses[3].headers["x-router-tenant"]
    cloud_calls = len(cloud.received) - before
    assert cloud_calls == kinds.count(None) == 5
    FIGURES["cache"] = {"requests": len(responses), "exact_hits": kinds.count("exact"),
                        "semantic_hits": kinds.count("semantic"), "cloud_calls": cloud_calls}


def test_rate_limit_is_shared_across_replicas(replicas):
    a, b = replicas

    async def run():
        async with httpx.AsyncClient(timeout=120) as c:
            limited = [await _post(c, (a, b)[i % 2], f"Rate question {i}?", RATE_KEY) for i in range(8)]
            other = await _post(c, a, "Rate question from another key?", "sk-replica-unlimited")
            return limited, other

    limited, other = _run(run())
    statuses = [r.status_code for r in limited]
    assert statuses == [200] * RATE_PER_MINUTE + [429] * (8 - RATE_PER_MINUTE)
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" and int(r.headers["retry-after"]) >= 1
               for r in limited[RATE_PER_MINUTE:])
    assert other.status_code == 200
    FIGURES["rate_limit"] = {"requests": 8, "admitted": statuses.count(200), "limited": statuses.count(429)}


def test_budget_never_exceeded_under_200_concurrent_requests(replicas, cloud, redis_url, prefix):
    a, b = replicas
    tenant = tenant_id(BUDGET_KEY)

    async def run():
        limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
        async with httpx.AsyncClient(timeout=300, limits=limits) as c:
            return await asyncio.gather(*(
                _post(c, (a, b)[i % 2], f"Budget request {i}: reply with one word.", BUDGET_KEY)
                for i in range(CONCURRENT)))

    before = len(cloud.received)
    responses = _run(run())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert all(r.json()["error"]["code"] == "budget_exceeded" for r in responses if r.status_code == 429)
    ok = statuses.count(200)
    cloud_calls = len(cloud.received) - before
    assert cloud_calls == ok  # every admitted request is exactly one cloud call
    assert ok >= 5, "the budget should admit a fair number of calls"
    assert statuses.count(429) > 0, "the limit should bind"

    # What was spent, from the shared counter and from the log's priced calls.
    import redis

    (day,) = windows(tenant, BudgetLimit(daily_usd=LIMIT_USD), __import__("time").time())
    counter = int(redis.Redis.from_url(redis_url).get(f"{prefix}:{day.key}") or 0)
    ids = {r.headers["x-request-id"] for r in responses}
    reader = RedisStore(StoreConfig(backend="redis", url=redis_url, prefix=prefix), writer=False)
    try:
        rows = [r for r in reader.requests() if r.id in ids]
    finally:
        reader.close()
    spent_usd = sum(c.cost_usd for r in rows for c in r.calls if c.tier == "cloud")
    assert len(rows) == CONCURRENT
    assert spent_usd <= LIMIT_USD
    assert counter <= day.limit
    assert abs(counter - spent_usd * NANO_PER_USD) <= ok  # settled to the real cost (1 nano-USD rounding per call)
    store_down = sum(1 for r in responses if r.status_code == 429 and "store down" in r.json()["error"]["message"])
    FIGURES["budget"] = {"requests": CONCURRENT, "on_a": sum(1 for i in range(CONCURRENT) if i % 2 == 0),
                         "admitted": ok, "rejected_429": statuses.count(429), "of_which_redis_timeout": store_down,
                         "cloud_calls": cloud_calls,
                         "spent_usd": round(spent_usd, 9), "counter_usd": counter / NANO_PER_USD, "limit_usd": LIMIT_USD}


def test_report_reads_both_replicas_logs(replicas, capsys):
    """Runs last: every request sent to either replica is one row of the shared log."""
    a, b = replicas
    import time

    time.sleep(0.5)
    out = subprocess.run([sys.executable, "-m", "router.cli", "report", "--policy", str(a.policy_path), "--json"],
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    sent = a.sent + b.sent
    assert report["requests"] == sent == len(SEEN_IDS)
    cache = FIGURES["cache"]
    assert report["cache_hits"] == cache["exact_hits"] + cache["semantic_hits"]
    budget = FIGURES["budget"]
    assert report["failed"] == FIGURES["rate_limit"]["limited"] + budget["rejected_429"]
    reader = RedisStore(StoreConfig(**{**a_policy_store(a)}), writer=False)
    try:
        rows = reader.requests()
    finally:
        reader.close()
    assert {r.id for r in rows} == SEEN_IDS
    FIGURES["log"] = {"rows": len(rows), "sent_to_a": a.sent, "sent_to_b": b.sent,
                      "report_requests": report["requests"], "report_cache_hits": report["cache_hits"]}
    with capsys.disabled():
        print("\n[two-replica figures] " + json.dumps(FIGURES))


def a_policy_store(proxy: ProxyProcess) -> dict:
    import yaml

    return yaml.safe_load(proxy.policy_path.read_text())["store"]
