"""The worker pool with the real SmolLM2: several workers at once, a bounded queue whose
overflow goes to the cloud tier or is refused, cancellation; end to end through
`slm-router serve` with a real HTTP server as the cloud tier."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import httpx
import openai
import pytest

from router.errors import upstream_error_for
from router.models import smollm2_gguf_path
from router.providers.tier_client import _map_error
from router.providers.worker_pool import LocalQueueFullError, WorkerPool, WorkerSpec

from .fake_openai import ANSWER
from .proxy_process import ProxyProcess

pytestmark = pytest.mark.slow
LONG = [{"role": "user", "content": "Count from 1 to 400, separated by commas."}]
SHORT = [{"role": "user", "content": "What is the capital of Japan?"}]


def _spec(**kw) -> WorkerSpec:
    return WorkerSpec(str(smollm2_gguf_path()), n_ctx=1024, extra_buffers="off", **kw)


def _wait_ready(pool: WorkerPool, n: int) -> None:
    deadline = time.time() + 60
    while sum(w["ready"] for w in pool.health()["workers"]) < n:
        assert time.time() < deadline, pool.health()
        time.sleep(0.05)


def test_two_workers_generate_at_once_and_a_full_queue_is_refused():
    pool = WorkerPool(_spec(parallel=2, queue=1, on_queue_full="reject"))
    try:
        pool.start()
        _wait_ready(pool, 2)

        async def run():
            long = [asyncio.create_task(pool.generate(LONG, {"max_tokens": 200})) for _ in range(3)]
            await asyncio.sleep(0.3)
            busy = [w["busy"] for w in pool.health()["workers"]]
            assert busy == [True, True] and pool.health()["queue"]["waiting"] == 1
            with pytest.raises(LocalQueueFullError) as refused:
                await pool.generate(SHORT, {"max_tokens": 8})
            for t in long:
                t.cancel()
            await asyncio.gather(*long, return_exceptions=True)
            return refused.value

        err = asyncio.run(run())
        assert err.status == 429 and err.fallback is False and "local_queue_full" in str(err)
        mapped = _map_error("local", err)
        assert (mapped.status, mapped.fallback, mapped.retryable) == (429, False, False)
        # the client is told when to try again: a full queue frees up within about a second
        assert mapped.retry_after_s == 1.0
        assert upstream_error_for(mapped.status, str(mapped), mapped.retry_after_s).headers == {"retry-after": "1"}
        assert upstream_error_for(mapped.status, str(mapped), mapped.retry_after_s).status_code == 429
        # cancelled generations free both workers: the next answer comes at once
        t = time.perf_counter()
        out = pool.generate_blocking(SHORT, {"max_tokens": 16}, timeout_s=30)
        assert "Tokyo" in out.text and time.perf_counter() - t < 10
    finally:
        pool.close()


def test_overflow_goes_to_the_cloud_tier(tmp_path, cloud):
    policy = {"tiers": {"local": {"model": "slm-local/smollm2",
                                  "runtime": {"n_ctx": 1024, "parallel": 1, "queue": 0, "on_queue_full": "cloud"}},
                        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url}}}
    proxy = ProxyProcess(policy, tmp_path).start()
    try:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)
        box = {}
        busy = threading.Thread(target=lambda: box.setdefault("long", client.chat.completions.with_raw_response.create(
            model="local", messages=LONG, max_tokens=300)))
        busy.start()
        deadline = time.time() + 30
        while not any(w["busy"] for w in httpx.get(proxy.url + "/healthz").json()["local"]["local"]["workers"]):
            assert time.time() < deadline
            time.sleep(0.02)
        raw = client.chat.completions.with_raw_response.create(model="local", messages=SHORT, max_tokens=8)
        assert raw.headers["x-router-tier"] == "cloud" and raw.parse().choices[0].message.content == ANSWER
        busy.join(60)
        assert box["long"].headers["x-router-tier"] == "local"
        rid = raw.headers["x-request-id"]
        time.sleep(1)
        with sqlite3.connect(proxy.log_path) as db:
            calls = db.execute("SELECT tier, purpose, status, error FROM calls WHERE request_id = ? ORDER BY ts",
                               (rid,)).fetchall()
        assert calls[0][:3] == ("local", "primary", "error") and "local_queue_full" in calls[0][3]
        assert calls[1][:3] == ("cloud", "fallback", "ok")
    finally:
        proxy.stop()
