"""Shared state: the pure rules (tenant, cache plan, fingerprints, GCRA, budget windows
and threshold shift) and one contract run against both backends, in-process memory and a
real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pytest

from router.guards.budget import (
    Budget,
    Reservation,
    burn_fraction,
    completion_cap,
    reserve_tokens,
    shifted_threshold,
    to_nano,
    windows,
)
from router.guards.cache import ResponseCache, cache_plan, fingerprint, semantic_scope
from router.errors import RateLimitError, StoreUnavailableError
from router.policy import (
    BudgetLimit,
    BudgetsConfig,
    CacheConfig,
    RateLimitsConfig,
    StoreConfig,
    ThresholdShift,
    TierConfig,
    policy_from_dict,
)
from router.guards.ratelimit import RateLimiter, gcra, limit_for
from router.request.parse import parse_chat_request
from router.state.base import NO_LIMIT, StateUnavailable
from router.state.memory import MemoryState
from router.state.redis import RedisState
from router.request.tenant import Tenant, tenant_from_headers, tenant_id


def _req(content="What is 2+2?", **params):
    return parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": content}], **params})


# -- pure rules ------------------------------------------------------------------------------
def test_tenant_id_hashes_the_key_and_never_contains_it():
    t = tenant_id("sk-secret-123")
    assert t.startswith("key-") and len(t) == 20 and "secret" not in t
    assert t == tenant_id("  sk-secret-123 ") and t != tenant_id("sk-secret-124")
    assert tenant_id(None) == tenant_id("") == "anonymous"
    c = tenant_from_headers("Bearer sk-secret-123", "no-cache, max-age=0")
    assert c.tenant == t and c.no_cache and not c.no_store
    assert tenant_from_headers("bearer sk-secret-123", None).tenant == t
    assert tenant_from_headers(None, "no-store") == Tenant("anonymous", True, True)


def test_cache_plan_rules():
    on = CacheConfig(enabled=True)
    assert cache_plan(_req(temperature=0), Tenant(), on).read
    assert not cache_plan(_req(temperature=0), Tenant(), CacheConfig()).write  # disabled
    plan = cache_plan(_req(), Tenant(), on)  # no temperature = OpenAI's default 1.0
    assert not plan.read and not plan.write and "temperature" in plan.reason
    assert not cache_plan(_req(temperature=0.7), Tenant(), on).write
    assert cache_plan(_req(temperature=0.7), Tenant(), CacheConfig(enabled=True, allow_nonzero_temperature=True)).read
    no_cache = cache_plan(_req(temperature=0), Tenant(no_cache=True), on)
    assert not no_cache.read and no_cache.write
    no_store = cache_plan(_req(temperature=0), Tenant(no_cache=True, no_store=True), on)
    assert not no_store.read and not no_store.write


def test_fingerprint_covers_tenant_model_messages_and_every_parameter():
    tiers = {"local": "slm-local/smollm2", "cloud": "openai/gpt-4o-mini"}
    base = fingerprint(_req(temperature=0), "t1", tiers)
    assert base == fingerprint(_req(temperature=0), "t1", tiers)
    assert base == fingerprint(_req(temperature=0, stream=True), "t1", tiers)  # transport, not generation
    others = [
        fingerprint(_req(temperature=0), "t2", tiers),
        fingerprint(_req("What is 2+3?", temperature=0), "t1", tiers),
        fingerprint(_req(temperature=0, max_tokens=5), "t1", tiers),
        fingerprint(_req(temperature=0, seed=1), "t1", tiers),
        fingerprint(_req(temperature=0), "t1", {**tiers, "cloud": "openai/gpt-4o"}),
        fingerprint(parse_chat_request({"model": "cloud", "messages": [{"role": "user", "content": "What is 2+2?"}],
                                        "temperature": 0}), "t1", tiers),
    ]
    assert len({base, *others}) == 7
    scope_a, text_a = semantic_scope(_req("What is 2+2?", temperature=0), "t1", tiers)
    scope_b, text_b = semantic_scope(_req("what's two plus two", temperature=0), "t1", tiers)
    assert scope_a == scope_b and (text_a, text_b) == ("What is 2+2?", "what's two plus two")
    assert semantic_scope(_req(temperature=0), "t2", tiers)[0] != scope_a


def test_gcra_bursts_then_steady_rate():
    interval, burst, now, tat = 1.0, 3, 1000.0, None
    results = []
    for _ in range(5):
        verdict, tat = gcra(tat, now, interval, burst)
        results.append(verdict.allowed)
    assert results == [True, True, True, False, False]
    verdict, _ = gcra(tat, now, interval, burst)
    assert verdict.retry_after_s == pytest.approx(1.0)
    assert gcra(tat, now + 1.0, interval, burst)[0].allowed  # one more after one interval
    assert limit_for("x", RateLimitsConfig(requests_per_minute=30)) == (2.0, 30)
    assert limit_for("x", RateLimitsConfig(requests_per_minute=30, burst=2, tenants={"x": 6})) == (10.0, 2)


def test_budget_windows_caps_and_threshold_shift():
    now = dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.timezone.utc).timestamp()
    ws = windows("t", BudgetLimit(daily_usd=1.5, monthly_usd=20), now)
    assert [w.key for w in ws] == ["budget:t:day:2026-12-31", "budget:t:month:2026-12"]
    assert [w.limit for w in ws] == [1_500_000_000, 20_000_000_000]
    assert ws[0].ttl_s == pytest.approx(3600 + 86400) and ws[1].ttl_s == pytest.approx(3600 + 86400)
    assert windows("t", BudgetLimit(), now) == []
    cfg = BudgetsConfig(reserve_completion_tokens=500)
    cloud = TierConfig(model="openai/gpt-4o-mini")
    assert completion_cap({"max_tokens": 20}, cloud, cfg) == (20, False)
    assert completion_cap({"max_completion_tokens": 30}, cloud, cfg) == (30, False)
    assert completion_cap({}, TierConfig(model="x", max_tokens=64), cfg) == (64, False)
    assert completion_cap({}, cloud, cfg) == (500, True)
    assert reserve_tokens(100, 20, n=2) == (118, 40)
    assert burn_fraction([50, 10], [100, 1000]) == 0.5 and burn_fraction([], []) == 0.0
    assert burn_fraction([5], [NO_LIMIT]) == 0.0 and burn_fraction([0], [0]) == 1.0
    shift = ThresholdShift(start_fraction=0.5, max_threshold=0.9)
    assert shifted_threshold(0.5, 0.4, shift) == 0.5
    assert shifted_threshold(0.5, 0.75, shift) == pytest.approx(0.7)
    assert shifted_threshold(0.5, 2.0, shift) == pytest.approx(0.9)
    assert shifted_threshold(0.95, 0.9, shift) == 0.95 and shifted_threshold(0.5, 0.9, None) == 0.5
    assert to_nano(1e-9 * 2.2, round_up=True) == 3 and to_nano(1e-9 * 2.2) == 2


def test_store_choice_in_yaml(monkeypatch):
    monkeypatch.setenv("TEST_REDIS_URL", "redis://cache.internal:6380/2")
    p = policy_from_dict({"store": {"backend": "redis", "url": "${TEST_REDIS_URL}"}})
    assert p.store.backend == "redis" and p.store.url == "redis://cache.internal:6380/2"
    assert policy_from_dict({"store": "redis"}).store.backend == "redis"
    assert policy_from_dict({}).store.backend == "sqlite"


# -- one contract, two backends --------------------------------------------------------------
@pytest.fixture(params=["memory", "redis"])
def state(request):
    if request.param == "memory":
        yield MemoryState()
        return
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    yield RedisState(StoreConfig(backend="redis", url=url, prefix=prefix))


def test_state_contract(state):
    async def run():
        assert await state.get("k") is None
        await state.set("k", b"v", 60)
        assert await state.get("k") == b"v"
        await state.set("short", b"v", 0.05)
        await asyncio.sleep(0.15)
        assert await state.get("short") is None

        for i in range(5):
            await state.add_vector("scope", f"{i:03d}", np.full(4, i, np.float32).tobytes(), 60, max_entries=3)
        entries = dict(await state.vectors("scope"))
        assert sorted(entries) == ["002", "003", "004"]  # oldest dropped
        assert np.frombuffer(entries["004"], np.float32).tolist() == [4.0] * 4

        keys, ttls = ["b:day", "b:month"], [60, 60]
        assert await state.reserve(keys, [100, 1000], 60, ttls) == (True, [0, 0])
        assert await state.reserve(keys, [100, 1000], 60, ttls) == (False, [60, 60])  # would pass 100
        assert await state.counters(keys) == [60, 60]
        await state.adjust(keys, -20, ttls)
        assert await state.reserve(keys, [100, NO_LIMIT], 60, ttls) == (True, [40, 40])
        assert await state.counters(keys + ["absent"]) == [100, 100, 0]

        verdicts = [(await state.rate("r", 60.0, 2)).allowed for _ in range(3)]
        assert verdicts == [True, True, False]
        blocked = await state.rate("r", 60.0, 2)
        assert 0 < blocked.retry_after_s <= 60
        assert state.health()["ok"] is True
        await state.close()

    asyncio.run(run())


def test_reservations_are_atomic_under_concurrency(state):
    """200 concurrent reservations of 7 against a limit of 100: exactly 14 succeed."""

    async def run():
        results = await asyncio.gather(*(state.reserve(["c"], [100], 7, [60]) for _ in range(200)))
        assert sum(ok for ok, _ in results) == 14
        assert await state.counters(["c"]) == [98]
        await state.close()

    asyncio.run(run())


def test_a_settlement_applies_once_whatever_was_lost(state):
    """A settlement replaces its reservation's hold exactly once: settling again (a retry after
    a lost reply) changes nothing, and a hold the store made while the caller saw the call fail
    (reply lost, the budget treated it as unmetered) is replaced, not charged on top."""

    async def run():
        keys, ttls = ["s:day", "s:month"], [600, 600]
        assert (await state.reserve(keys, [NO_LIMIT, NO_LIMIT], 50, ttls, hold="h1"))[0]
        await state.settle(keys, "h1", 20, ttls)
        await state.settle(keys, "h1", 20, ttls)  # the same settlement, retried
        assert await state.counters(keys) == [20, 20]
        # a reservation applied by the store whose reply was lost: the budget settles it with the
        # real cost as if nothing were held, and the store replaces what it holds
        assert (await state.reserve(keys, [NO_LIMIT, NO_LIMIT], 50, ttls, hold="h2"))[0]
        await state.settle(keys, "h2", 30, ttls)
        assert await state.counters(keys) == [50, 50]
        # a reservation that never reached the store: settling adds the whole cost
        await state.settle(keys, "h3", 5, ttls)
        await state.settle(keys, "h3", 5, ttls)
        assert await state.counters(keys) == [55, 55]
        await state.close()

    asyncio.run(run())


def test_budget_settles_once_when_the_store_loses_replies():
    """Through :class:`Budget`: the store applies a reservation and a settlement but both
    replies are lost (raised as StateUnavailable). The call is let through unmetered
    (``on_store_down: open``), its settlement is owed and retried; the counter ends at the
    call's cost, not at cost + hold or twice the cost."""
    from router.state.base import StateUnavailable

    class LosesReplies(MemoryState):
        lose = 0

        async def reserve(self, *args, **kwargs):
            out = await super().reserve(*args, **kwargs)
            if self.lose:
                self.lose -= 1
                raise StateUnavailable("reply lost")
            return out

        async def settle(self, *args, **kwargs):
            await super().settle(*args, **kwargs)
            if self.lose:
                self.lose -= 1
                raise StateUnavailable("reply lost")

    cfg = BudgetsConfig(enabled=True, default=BudgetLimit(daily_usd=1.0), on_store_down="open")

    async def run():
        store = LosesReplies()
        budget = Budget(store, cfg)
        store.lose = 2  # the reservation's reply, then the settlement's
        r, why = await budget.reserve("t", 0.0006)
        assert r is not None and r.metered is False and why == ""
        await budget.settle(r, 0.0002)
        assert budget._owed  # the settlement's reply was lost: owed, retried
        await budget._pay_owed()
        assert not budget._owed
        assert (await budget.spent("t"))["day"] == pytest.approx(0.0002)

    asyncio.run(run())


def test_budget_reserve_settle_and_shift(state):
    cfg = BudgetsConfig(enabled=True, default=BudgetLimit(daily_usd=0.001), on_exhausted="reject")

    async def run():
        budget = Budget(state, cfg)
        r, why = await budget.reserve("t", 0.0006)
        assert r is not None and r.metered and why == ""
        assert (await budget.threshold("t", 0.5))[0] == pytest.approx(0.5 + 0.4 * 0.2)  # 60% spent
        refused, why = await budget.reserve("t", 0.0006)  # $0.0004 left: room, but not for this call
        assert refused is None and why == ("budget left cannot hold this call's worst-case cost of $0.000600 "
                                           "(day $0.000600 of $0.001000 spent or held; a lower max_tokens holds less)")
        full, _ = await budget.reserve("t", 0.0004)
        refused, why = await budget.reserve("t", 0.000001)
        assert refused is None and why == "budget exhausted (day $0.001000 of $0.001000)"
        await budget.settle(full, 0.0)
        await budget.settle(r, 0.0001)  # the call cost less than held
        assert (await budget.spent("t"))["day"] == pytest.approx(0.0001)
        again, _ = await budget.reserve("t", 0.0006)
        assert again is not None
        assert (await Budget(state, BudgetsConfig(enabled=True)).reserve("t", 5.0))[0].metered is False  # no limit
        await state.close()

    asyncio.run(run())


def test_cache_exact_and_semantic_are_tenant_scoped(state):
    vectors = {"What is the capital of France?": [1, 0, 0], "What's the capital of France?": [0.99, 0.141, 0],
               "Name a prime number.": [0, 0, 1]}

    def embed(text):
        v = np.asarray(vectors[text], np.float32)
        return v / np.linalg.norm(v)

    config = CacheConfig(enabled=True, semantic={"enabled": True, "min_similarity": 0.95})
    cache = ResponseCache(state, config, {"cloud": "openai/gpt-4o-mini"}, embed)
    a, b = Tenant("tenant-a"), Tenant("tenant-b")
    ask = lambda text: _req(text, temperature=0)  # noqa: E731

    async def run():
        hit, probe = await cache.lookup(ask("What is the capital of France?"), a)
        assert hit is None
        await cache.store(probe, "cloud", {"choices": [{"message": {"content": "Paris"}}]})
        hit, _ = await cache.lookup(ask("What is the capital of France?"), a)
        assert hit.kind == "exact" and hit.body["choices"][0]["message"]["content"] == "Paris"
        hit, _ = await cache.lookup(ask("What's the capital of France?"), a)
        assert hit.kind == "semantic" and hit.similarity == pytest.approx(0.99, abs=1e-3)
        assert (await cache.lookup(ask("Name a prime number."), a))[0] is None
        assert (await cache.lookup(ask("What is the capital of France?"), b))[0] is None  # other tenant
        assert (await cache.lookup(ask("What's the capital of France?"), b))[0] is None
        assert (await cache.lookup(ask("What is the capital of France?"), Tenant("tenant-a", no_cache=True)))[0] is None
        await state.close()

    asyncio.run(run())


# -- Redis unreachable -----------------------------------------------------------------------
def test_unreachable_redis_degrades_each_feature():
    """Nothing listens on the port: the state fails fast and each feature follows its policy."""
    from .fake_openai import free_port

    state = RedisState(StoreConfig(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0",
                                   timeout_ms=200, retry_interval_s=30))

    async def run():
        with pytest.raises(StateUnavailable):
            await state.get("k")
        assert state.health()["ok"] is False and "error" in state.health()
        with pytest.raises(StateUnavailable, match="unreachable"):  # breaker open: no new attempt
            await state.get("k")
        cache = ResponseCache(state, CacheConfig(enabled=True), {"cloud": "m"})
        hit, probe = await cache.lookup(_req(temperature=0), Tenant())
        assert hit is None
        await cache.store(probe, "cloud", {"choices": []})  # paused, no error
        await RateLimiter(state, RateLimitsConfig(enabled=True)).admit("t")  # fail open
        with pytest.raises(StoreUnavailableError):
            await RateLimiter(state, RateLimitsConfig(enabled=True, on_store_down="closed")).admit("t")
        limit = BudgetLimit(daily_usd=1.0)
        r, _ = await Budget(state, BudgetsConfig(enabled=True, default=limit)).reserve("t", 0.5)
        assert isinstance(r, Reservation) and not r.metered
        r, why = await Budget(state, BudgetsConfig(enabled=True, default=limit, on_store_down="closed")).reserve("t", 0.5)
        assert r is None and "store down" in why
        await state.close()

    asyncio.run(run())


def test_rate_limiter_raises_429_with_retry_after():
    limiter = RateLimiter(MemoryState(), RateLimitsConfig(enabled=True, requests_per_minute=2))

    async def run():
        await limiter.admit("t")
        await limiter.admit("t")
        with pytest.raises(RateLimitError) as e:
            await limiter.admit("t")
        assert e.value.status_code == 429 and int(e.value.headers["retry-after"]) >= 1
        await limiter.admit("other")

    asyncio.run(run())
