"""What the fresh8 break test found (a new user installing from the README, pointing the real
``openai`` and ``anthropic`` SDKs at ``slm-router serve``, running the CLI on odd files and
editing the policy while serving), each pinned through the real CLI, server or SDK."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml


def _tiers(url: str) -> dict:
    return {"local": {"model": "openai/local-sim", "api_key": "sk-up", "api_base": url,
                      "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": url}}


def _ask(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=30,
                      json={"model": "cloud", "messages": [{"role": "user", "content": "Hi"}]})


# -- 1. a reload that changes a log setting keeps a Redis log on Redis --------------------------

def test_a_reload_of_log_settings_keeps_the_redis_log(tmp_path, good_up, redis_url, redis_prefix):
    """Before: with ``store: redis``, a reload that changed anything under ``log`` (here
    ``keep_for_learning: text``) opened the SQLite file ``log.path`` instead, so from then on
    the replica wrote its request log to a local file nobody reads (``/healthz`` said
    ``store.backend: sqlite``), silently."""
    import redis

    from .proxy_process import ProxyProcess

    store = {"backend": "redis", "url": redis_url, "prefix": redis_prefix, "spool_dir": str(tmp_path / "spool")}
    policy = {"tiers": _tiers(good_up.url), "store": store}
    proxy = ProxyProcess(policy, tmp_path, args=["--no-warm-up"]).start()
    try:
        assert _ask(proxy.url).status_code == 200
        proxy.write_policy(yaml.safe_dump({**policy, "log": {"path": str(proxy.log_path), "keep_for_learning": "text"}}))
        deadline = time.time() + 20
        while httpx.get(proxy.url + "/v1/policy", timeout=10).json()["reloads"] < 1 and time.time() < deadline:
            time.sleep(0.1)
        assert httpx.get(proxy.url + "/v1/policy", timeout=10).json()["reloads"] == 1
        assert all(_ask(proxy.url).status_code == 200 for _ in range(3))
        assert httpx.get(proxy.url + "/healthz", timeout=10).json()["store"]["backend"] == "redis"
        stream = f"{redis_prefix}:requests"
        client = redis.Redis.from_url(redis_url)
        deadline = time.time() + 10
        while client.xlen(stream) < 4 and time.time() < deadline:
            time.sleep(0.1)
        rows = [json.loads(fields[b"r"]) for _, fields in client.xrange(stream)]
        assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), rows
        assert not proxy.log_path.exists()
    finally:
        proxy.stop()


def test_store_location_names_what_a_reload_must_reopen():
    """The pure rule behind the reload: only the log's place (the SQLite file, or the Redis
    settings) opens a new store; ``keep_for_learning`` or ``writer`` keep the open one."""
    from router.policy import Policy
    from router.store import store_location

    base = Policy.model_validate({})
    learn = Policy.model_validate({"log": {"keep_for_learning": "text", "writer": "thread"}})
    moved = Policy.model_validate({"log": {"path": "elsewhere.sqlite3"}})
    on_redis = Policy.model_validate({"store": "redis"})
    on_redis_learn = Policy.model_validate({"store": "redis", "log": {"path": "x.sqlite3", "keep_for_learning": "text"}})
    assert store_location(base) == store_location(learn) != store_location(moved)
    assert store_location(on_redis) == store_location(on_redis_learn) != store_location(base)
    assert store_location(on_redis)[0] == "redis"
