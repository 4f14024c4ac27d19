"""Policy versions: the pure book, the book in the shared state (memory and a real Redis),
the shadow-vs-active comparison, and through the real server: one server on its memory
reached by the admin endpoints, and two replicas on Redis that shadow, activate and revert
together while a request in flight finishes under the version it started with."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from router.analysis.policy_compare import compare_shadow_policies
from router.cli import app
from router.policy import StoreConfig, policy_from_dict
from router.policy.versions import VersionBook, VersionError, activate, register, resolve, revert, set_shadow
from router.policy.view import policy_hash
from router.state.memory import MemoryState
from router.state.policy_versions import PolicyVersions
from router.state.redis import RedisState
from router.store.records import RequestRecord

from .fake_openai import FakeOpenAI
from .proxy_process import ProxyProcess

A, B = "a" * 16, "b" * 16


def test_book_shadow_activate_revert():
    book = register(register(VersionBook(), A, "a.yaml", 1.0), B, "b.yaml", 2.0)
    assert register(book, A, "other.yaml", 3.0).versions[A].source == "a.yaml"  # same content, same version
    book = set_shadow(book, "aaaa", 3.0)  # a unique prefix names a version
    assert (book.shadow, book.active, book.revision) == (A, None, 1)
    book = activate(book, A, 4.0)
    assert (book.active, book.shadow, book.stack) == (A, None, [None])  # the shadowed version left shadow
    book = activate(book, B, 5.0)
    assert book.stack == [None, A]
    book = revert(book, 6.0)
    assert (book.active, book.stack) == (A, [None])
    book = revert(book, 7.0)
    assert (book.active, book.stack) == (None, [])  # back to each replica's policy file
    with pytest.raises(VersionError, match="nothing to revert"):
        revert(book, 8.0)
    assert [e.action for e in book.history] == ["shadow", "activate", "activate", "revert", "revert"]
    assert book.history[-1].previous == A and book.revision == 5
    with pytest.raises(VersionError, match="unknown policy version"):
        activate(book, "cafe", 9.0)
    with pytest.raises(VersionError, match="already active"):
        activate(activate(book, B, 9.0), B, 10.0)
    assert resolve(book, "file") is None
    twins = register(register(VersionBook(), "abcd1111", "", 0), "abcd2222", "", 0)
    with pytest.raises(VersionError, match="ambiguous"):
        resolve(twins, "abcd")


def test_book_in_memory_and_on_redis(redis_url, redis_prefix):
    async def run(state):
        versions = PolicyVersions(state)
        assert (await versions.book()).revision == 0
        await versions.shadow(A, "tiers: {}\n", "a.yaml")
        book = await versions.activate(A)
        assert book.active == A and await versions.text(A) == "tiers: {}\n"
        book = await versions.revert()
        assert book.active is None and (await versions.book()).revision == 3
        await state.close()

    asyncio.run(run(MemoryState()))
    asyncio.run(run(RedisState(StoreConfig(backend="redis", url=redis_url, prefix=redis_prefix))))


def test_shadow_comparison_on_the_same_requests():
    def rec(i, routed, shadow, cost, cf):
        return RequestRecord(f"r{i}", float(i), routed_tier=routed, tier=routed, local=routed == "local", cost_usd=cost,
                             counterfactual_usd=cf, policy_hash="h0", shadow_policy_version="h1", shadow_tier=shadow)

    records = [rec(0, "cloud", "cloud", 0.01, 0.01), rec(1, "cloud", "local", 0.02, 0.02),
               rec(2, "local", "cloud", 0.0, 0.03), rec(3, "local", "local", 0.002, 0.01),
               rec(4, "local", "error:tier_forbidden", 0.0, 0.01),
               RequestRecord("r5", 5.0, routed_tier="local", tier="local", cost_usd=0.004)]  # no shadow then
    (c,) = compare_shadow_policies(records, "local", "cloud")
    assert (c.version, c.requests, c.agree, c.refused) == ("h1", 5, 2, 1)
    assert c.active_cloud_share == pytest.approx(0.4) and c.shadow_cloud_share == pytest.approx(0.4)
    assert c.active_usd == pytest.approx(0.032)
    local_mean = (0.0 + 0.002 + 0.0 + 0.004) / 4  # what a locally routed request cost in the window
    assert c.shadow_usd == pytest.approx(0.01 + local_mean + 0.03 + 0.002 + 0.0)


# -- through the real server ----------------------------------------------------------------

ADMIN_KEY = "sk-versions-admin"


def _policy(local_url: str, cloud_url: str, threshold: float, store: dict | None = None) -> dict:
    """Routing by the keyword rule (no model to load): threshold 0 sends everything to the
    cloud, 1 everything to the local tier (a stand-in server here)."""
    out = {
        "tiers": {"local": {"model": "openai/local-model", "api_key": "sk-test", "api_base": local_url,
                            "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud_url}},
        "routing": {"classifier": {"kind": "rules", "threshold": threshold}},
        "escalation": {"enabled": False},
        "api_keys": [{"name": "ops", "key": ADMIN_KEY, "admin": True}],
    }
    if store is not None:
        out["store"] = store
    return out


@pytest.fixture(scope="module")
def tiers():
    local, cloud = FakeOpenAI(answer="local answer").start(), FakeOpenAI(answer="cloud answer").start()
    yield local, cloud
    local.stop()
    cloud.stop()


def _ask(proxy: ProxyProcess, text: str = "What is the capital of France?") -> httpx.Response:
    r = httpx.post(proxy.url + "/v1/chat/completions", timeout=60,
                   json={"model": "auto", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return r


def _versions(proxy: ProxyProcess) -> dict:
    return httpx.get(proxy.url + "/v1/policy", timeout=10).json()["versions"]


def _wait(proxies, check, timeout_s: float = 10.0) -> float:
    """Seconds until ``check(versions)`` holds on every proxy (fails after ``timeout_s``)."""
    t0 = time.perf_counter()
    while not all(check(_versions(p)) for p in proxies):
        assert time.perf_counter() - t0 < timeout_s, [_versions(p) for p in proxies]
        time.sleep(0.05)
    return time.perf_counter() - t0


def _cli(*args: str, env: dict | None = None) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_one_server_in_memory_through_the_admin_endpoints(tiers, tmp_path):
    local, cloud = tiers
    proxy = ProxyProcess(_policy(local.url, cloud.url, 0.0), tmp_path).start()
    try:
        cand = tmp_path / "candidate.yaml"
        cand.write_text(yaml.safe_dump(_policy(local.url, cloud.url, 1.0)))
        h0 = policy_hash(policy_from_dict(_policy(local.url, cloud.url, 0.0)))
        h1 = policy_hash(policy_from_dict(_policy(local.url, cloud.url, 1.0)))
        # without the admin key: refused in the API's error shape
        r = httpx.post(proxy.url + "/v1/policy/versions/activate", json={"version": h1}, timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required"
        env = {"SLM_ROUTER_ADMIN_KEY": ADMIN_KEY}
        assert h1 in _cli("policy", "shadow", str(cand), "--url", proxy.url, env=env)
        assert _versions(proxy)["shadow"] == h1  # applied before the call returned
        r = _ask(proxy)
        assert r.headers["x-router-tier"] == "cloud" and r.headers["x-router-policy"] == h0
        _cli("policy", "activate", h1[:6], "--url", proxy.url, env=env)
        v = _versions(proxy)
        assert (v["active"], v["active_hash"], v["shadow"]) == (h1, h1, None)
        r = _ask(proxy)
        assert r.headers["x-router-tier"] == "local" and r.headers["x-router-policy"] == h1
        _cli("policy", "revert", "--url", proxy.url, env=env)
        assert _versions(proxy)["active"] == "file"
        assert _ask(proxy).headers["x-router-policy"] == h0
        listing = json.loads(_cli("policy", "versions", "--json", "--url", proxy.url, env=env))
        assert [e["action"] for e in listing["history"]] == ["shadow", "activate", "revert"]
        bad = CliRunner().invoke(app, ["policy", "activate", "feedbeef", "--url", proxy.url], env=env)
        assert bad.exit_code == 2 and "unknown policy version" in bad.output
    finally:
        proxy.stop()


@pytest.mark.slow
def test_two_replicas_on_redis_shadow_activate_revert_together(tiers, tmp_path_factory, redis_url, redis_prefix):
    local, cloud = tiers
    store = {"backend": "redis", "url": redis_url, "prefix": redis_prefix}
    base = _policy(local.url, cloud.url, 0.0, store)
    replicas = [ProxyProcess(base, tmp_path_factory.mktemp(f"replica-{n}")).launch() for n in "ab"]
    work = tmp_path_factory.mktemp("versions-cli")
    try:
        for p in replicas:
            p.wait_ready()
        cli_policy, cand = work / "ops.yaml", work / "candidate.yaml"
        cli_policy.write_text(yaml.safe_dump(base))
        cand.write_text(yaml.safe_dump(_policy(local.url, cloud.url, 1.0)))
        h0, h1 = policy_hash(policy_from_dict(base)), policy_hash(policy_from_dict(_policy(local.url, cloud.url, 1.0)))
        assert all(r.headers["x-router-policy"] == h0 for r in (_ask(p) for p in replicas))

        # shadow: every replica decides beside the active policy, never acting
        assert h1 in _cli("policy", "shadow", str(cand), "--policy", str(cli_policy))
        lag_shadow = _wait(replicas, lambda v: v["shadow"] == h1)
        shadowed = [_ask(p, f"Question {i} for replica {n}?") for n, p in enumerate(replicas) for i in range(3)]
        assert all(r.headers["x-router-tier"] == "cloud" for r in shadowed)

        # activate while a request is in flight on replica a (a slow cloud answer)
        cloud.delay_s = 3.0
        in_flight: dict = {}
        thread = threading.Thread(target=lambda: in_flight.update(r=_ask(replicas[0], "Slow one?")))
        thread.start()
        time.sleep(0.8)
        _cli("policy", "activate", h1, "--policy", str(cli_policy))
        lag_activate = _wait(replicas, lambda v: v["active"] == h1 and v["active_hash"] == h1)
        cloud.delay_s = 0.0
        after = [_ask(p) for p in replicas]
        thread.join(timeout=30)
        assert in_flight["r"].headers["x-router-policy"] == h0 and in_flight["r"].headers["x-router-tier"] == "cloud"
        assert all(r.headers["x-router-policy"] == h1 and r.headers["x-router-tier"] == "local" for r in after)

        # revert: every replica back to its file
        assert "file active again" in _cli("policy", "revert", "--policy", str(cli_policy))
        lag_revert = _wait(replicas, lambda v: v["active"] == "file" and v["active_hash"] == h0)
        assert all(_ask(p).headers["x-router-policy"] == h0 for p in replicas)
        print(f"\nreplicas switched after the CLI returned: shadow {lag_shadow:.2f} s, activate {lag_activate:.2f} s, "
              f"revert {lag_revert:.2f} s")
        assert max(lag_shadow, lag_activate, lag_revert) < 3.0

        # the report compares the shadow with the active policy on the same requests
        time.sleep(1.0)  # log records are written after the answers
        report = json.loads(_cli("report", "--policy", str(cli_policy), "--format", "json"))
        (cmp,) = report["shadow_policies"]
        assert cmp["version"] == h1 and cmp["active_versions"] == [h0]
        assert cmp["requests"] >= 6 and cmp["agree"] == 0
        assert cmp["active_cloud_share"] == 1.0 and cmp["shadow_cloud_share"] == 0.0
        assert cmp["shadow_usd"] < cmp["active_usd"]
        md = _cli("report", "--policy", str(cli_policy), "--format", "md")
        assert "## Shadow policy vs active (same requests)" in md
        listing = _cli("policy", "versions", "--policy", str(cli_policy))
        assert h1 in listing and "revert" in listing
    finally:
        cloud.delay_s = 0.0
        for p in replicas:
            p.stop()
