"""Kill Redis (one this test owns) while requests flow through a real `slm-router serve`:
every request is answered (caching pauses, budgets and rate limits fail open as the policy
says), /healthz reports the degradation, and once Redis is back the shared log holds every
request (spooled records flushed)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from router.policy import StoreConfig
from router.store.redis import RedisStore

from .fake_openai import FakeOpenAI
from .proxy_process import ProxyProcess
from .redis_server import REDIS_SERVER, RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server binary not installed")]

N_REQUESTS, KILL_AFTER, RESTART_AFTER, CONCURRENCY = 80, 20, 50, 4


def test_redis_killed_mid_run_loses_no_request(tmp_path, capsys):
    server = RedisServer(tmp_path / "redis", durable=True).start()
    cloud = FakeOpenAI().start()
    policy = {
        "tiers": {
            "local": {"model": "slm-local/smollm2", "max_tokens": 8,
                      "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url},
        },
        "store": {"backend": "redis", "url": server.url, "prefix": "outage", "timeout_ms": 300,
                  "retry_interval_s": 0.3},
        "cache": {"enabled": True},
        "budgets": {"enabled": True, "default": {"daily_usd": 10.0}, "on_store_down": "open"},
        "rate_limits": {"enabled": True, "requests_per_minute": 100000, "on_store_down": "open"},
    }
    (tmp_path / "proxy").mkdir()
    proxy = ProxyProcess(policy, tmp_path / "proxy").start()
    figures = {"requests": N_REQUESTS, "answered_200": 0, "sent_while_redis_down": 0, "max_spooled": 0}
    try:
        responses: list[httpx.Response] = []
        down = asyncio.Event()

        async def health(client) -> dict:
            return (await client.get(proxy.url + "/healthz")).json()

        async def worker(client, queue: asyncio.Queue):
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if i % 5 == 0:  # routed by the classifier (SmolLM2 or the cloud)
                    body = {"model": "auto", "messages": [{"role": "user", "content": f"Give a word for number {i}."}],
                            "max_tokens": 8}
                else:  # cloud, cacheable: repeats hit the cache while Redis is up
                    body = {"model": "cloud", "messages": [{"role": "user", "content": f"Outage question {i % 30}?"}],
                            "max_tokens": 8, "temperature": 0}
                if down.is_set():
                    figures["sent_while_redis_down"] += 1
                r = await client.post(proxy.url + "/v1/chat/completions", json=body,
                                      headers={"authorization": "Bearer sk-outage-tenant"})
                responses.append(r)
                if len(responses) == KILL_AFTER:
                    await asyncio.to_thread(server.kill)
                    down.set()
                elif len(responses) == RESTART_AFTER:
                    h = await health(client)
                    assert h["status"] == "degraded" and h["store"]["ok"] is False, h
                    figures["max_spooled"] = max(figures["max_spooled"], h["store"]["spooled"])
                    await asyncio.to_thread(server.start)
                    down.clear()
                elif down.is_set():
                    h = await health(client)
                    figures["max_spooled"] = max(figures["max_spooled"], h["store"].get("spooled", 0))

        async def run():
            queue: asyncio.Queue = asyncio.Queue()
            for i in range(N_REQUESTS):
                queue.put_nowait(i)
            async with httpx.AsyncClient(timeout=120) as client:
                await asyncio.gather(*(worker(client, queue) for _ in range(CONCURRENCY)))
                deadline = time.time() + 30
                while True:  # the spool drains once Redis answers again
                    h = await health(client)
                    if h["status"] == "ok" and h["store"]["spooled"] == 0:
                        return h
                    assert time.time() < deadline, f"still degraded: {h}"
                    await asyncio.sleep(0.2)

        final_health = asyncio.run(run())
        assert len(responses) == N_REQUESTS
        for r in responses:  # an answer, or a clean OpenAI error: never a bare failure
            assert r.status_code == 200 or ("error" in r.json() and r.json()["error"]["code"]), r.text
        figures["answered_200"] = sum(r.status_code == 200 for r in responses)
        assert figures["answered_200"] == N_REQUESTS  # fail open: every request answered
        assert figures["sent_while_redis_down"] > 0 and figures["max_spooled"] > 0
        assert final_health["state"]["ok"] is True

        reader = RedisStore(StoreConfig(backend="redis", url=server.url, prefix="outage"), writer=False)
        try:
            rows = reader.requests()
        finally:
            reader.close()
        ids = {r.headers["x-request-id"] for r in responses}
        assert {r.id for r in rows} == ids and len(rows) == N_REQUESTS
        figures["log_rows_after_restart"] = len(rows)
        # Budget: calls made while Redis was down were charged once it came back.
        import redis

        from router.guards.budget import NANO_PER_USD, windows
        from router.policy import BudgetLimit
        from router.request.tenant import tenant_id

        (day,) = windows(tenant_id("sk-outage-tenant"), BudgetLimit(daily_usd=10.0), time.time())
        cloud_calls = [c for r in rows for c in r.calls if c.tier == "cloud"]
        spent = sum(c.cost_usd for c in cloud_calls)
        # A request is settled just after its log row is written, and settlements owed from the
        # outage are retried every 0.5 s: wait (up to 10 s) for the last ones to land.
        deadline = time.time() + 10
        while True:
            counter = int(redis.Redis.from_url(server.url).get(f"outage:{day.key}") or 0)
            if abs(counter - spent * NANO_PER_USD) <= len(cloud_calls) or time.time() > deadline:
                break
            time.sleep(0.2)
        assert abs(counter - spent * NANO_PER_USD) <= len(cloud_calls), (counter, spent)
        figures["budget_counter_usd"] = counter / NANO_PER_USD
        figures["logged_cloud_cost_usd"] = round(spent, 9)
        figures["cache_hits"] = sum(1 for r in rows if r.cache)
        figures["cloud_calls"] = len(cloud.received)
        with capsys.disabled():
            print("\n[redis outage figures] " + json.dumps(figures))
    finally:
        proxy.stop()
        cloud.stop()
        server.stop()
