"""Shared state on Redis (``store: redis``): one view for every replica.

Counters and the rate limiter run as Lua scripts, so each check-and-update is atomic on
the server (Redis runs one script at a time); the rate limiter reads the server's clock
(``TIME``), so replicas with skewed clocks agree. Any Redis failure raises
:class:`~router.state.base.StateUnavailable` and trips :class:`LinkHealth`: for
``retry_interval_s`` no call tries Redis (requests do not wait on a dead server), then the
next call probes it again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..policy import StoreConfig
from .base import HOLD_TTL_S, SETTLED_TTL_S, RateVerdict, StateUnavailable

__all__ = ["LinkHealth", "RedisState", "redis_client_options"]

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 16
_HOLD = "hold:"

# KEYS: the counters, then (optional) the hold key; ARGV: amount, limits, ttls, hold ttl (s).
_RESERVE = """
local amount = tonumber(ARGV[1])
local n = tonumber(ARGV[#ARGV])
local out = {1}
for i = 1, n do
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  out[i + 1] = v
  local limit = tonumber(ARGV[1 + i])
  if limit >= 0 and v + amount > limit then out[1] = 0 end
end
if out[1] == 1 then
  for i = 1, n do
    redis.call('INCRBY', KEYS[i], amount)
    if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[1 + n + i]) end
  end
  if #KEYS > n then redis.call('SET', KEYS[n + 1], amount, 'EX', ARGV[2 + 2 * n]) end
end
return out
"""

# KEYS: the counters, then the hold key; ARGV: amount, ttls, settled ttl (s). Replaces what the
# hold added by amount, once: the hold key then says "settled" for a while.
_SETTLE = """
local n = #KEYS - 1
local hold = KEYS[n + 1]
local held = redis.call('GET', hold)
if held == 'settled' then return 0 end
redis.call('SET', hold, 'settled', 'EX', ARGV[2 + n])
local delta = tonumber(ARGV[1]) - tonumber(held or '0')
for i = 1, n do
  redis.call('INCRBY', KEYS[i], delta)
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[1 + i]) end
end
return 1
"""

_ADJUST = """
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[1 + i]) end
end
return 1
"""

# GCRA, the same rule as router.guards.ratelimit.gcra, on the server's clock.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = (tonumber(ARGV[2]) - 1) * interval
local start = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
if start - now > tolerance then
  return {0, string.format('%.6f', start - now - tolerance)}
end
local tat = start + interval
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
return {1, '0'}
"""

_ADD_VECTOR = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local n = redis.call('HLEN', KEYS[1])
local keep = tonumber(ARGV[4])
if n > keep then
  local fields = redis.call('HKEYS', KEYS[1])
  table.sort(fields)
  for i = 1, n - keep do redis.call('HDEL', KEYS[1], fields[i]) end
end
return n
"""


class LinkHealth:
    """Whether Redis answered lately; a simple circuit breaker shared by one client.

    After a failure, :meth:`allow` is False for ``retry_interval_s`` seconds (calls fail
    fast), then True again so one call probes the server. Thread-safe enough for flags.
    """

    def __init__(self, retry_interval_s: float) -> None:
        self.retry_interval_s = retry_interval_s
        self.down_since: float | None = None
        self.error: str | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    @property
    def ok(self) -> bool:
        """True when the last call succeeded."""
        return self.down_since is None

    def allow(self) -> bool:
        """True when a call may try Redis now."""
        return self.down_since is None or time.monotonic() >= self._retry_at

    def failed(self, err: BaseException) -> None:
        """Record a failed call (starts or extends the outage)."""
        with self._lock:
            if self.down_since is None:
                self.down_since = time.time()
                log.warning("Redis unreachable: %s", err)
            self.error = f"{type(err).__name__}: {err}"[:300]
            self._retry_at = time.monotonic() + self.retry_interval_s

    def succeeded(self) -> None:
        """Record a successful call (ends an outage)."""
        if self.down_since is not None:
            with self._lock:
                if self.down_since is not None:
                    log.warning("Redis reachable again after %.1f s", time.time() - self.down_since)
                self.down_since, self.error = None, None

    def describe(self) -> dict[str, Any]:
        """``{"ok", "down_since"?, "error"?}`` for ``/healthz``."""
        if self.ok:
            return {"ok": True}
        return {"ok": False, "down_since": self.down_since, "error": self.error}


def redis_client_options(config: StoreConfig) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` (sync or asyncio): the policy's
    timeout for connect and commands, and no client-side retries (the breaker decides)."""
    timeout = config.timeout_ms / 1000
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry_on_timeout": False,
            "health_check_interval": 0}


class RedisState:
    """:class:`~router.state.base.SharedState` on Redis (``redis.asyncio``).

    Args:
        config: the policy's ``store`` (``url``, ``prefix``, timeouts).

    The client connects lazily inside the running event loop (a new loop gets a new client).
    """

    backend = "redis"

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.prefix = config.prefix + ":"
        self.link = LinkHealth(config.retry_interval_s)
        self._client = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}

    def _redis(self):
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import redis.asyncio as aredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # A blocking pool: a burst of concurrent requests waits (up to the timeout) for
            # one of MAX_CONNECTIONS connections instead of failing.
            pool = aredis.BlockingConnectionPool.from_url(
                self.config.url, max_connections=MAX_CONNECTIONS, timeout=self.config.timeout_ms / 1000 * 4,
                retry=Retry(NoBackoff(), 0), **redis_client_options(self.config))
            self._client = aredis.Redis(connection_pool=pool)
            self._loop = loop
            self._scripts = {name: self._client.register_script(src) for name, src in
                             (("reserve", _RESERVE), ("adjust", _ADJUST), ("settle", _SETTLE), ("gcra", _GCRA),
                              ("vector", _ADD_VECTOR))}
        return self._client

    async def _run(self, op: str, fn):
        if not self.link.allow():
            raise StateUnavailable(f"Redis unreachable ({self.link.error})")
        import redis

        try:
            result = await fn(self._redis())
        except (redis.RedisError, OSError, asyncio.TimeoutError) as err:
            self.link.failed(err)
            raise StateUnavailable(f"Redis {op} failed: {type(err).__name__}: {err}") from err
        self.link.succeeded()
        return result

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> bytes | None:
        return await self._run("GET", lambda r: r.get(self._k(key)))

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._run("SET", lambda r: r.set(self._k(key), value, px=max(1, int(ttl_s * 1000))))

    async def vectors(self, scope: str) -> list[tuple[str, bytes]]:
        raw = await self._run("HGETALL", lambda r: r.hgetall(self._k(scope)))
        return [(k.decode(), v) for k, v in raw.items()]

    async def add_vector(self, scope: str, entry: str, vector: bytes, ttl_s: float, max_entries: int) -> None:
        await self._run("add_vector", lambda r: self._scripts["vector"](
            keys=[self._k(scope)], args=[entry, vector, max(1, int(ttl_s * 1000)), max_entries]))

    async def reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int,
                      ttls_s: Sequence[float], hold: str | None = None) -> tuple[bool, list[int]]:
        hold_keys = [self._k(_HOLD + hold)] if hold is not None else []
        out = await self._run("reserve", lambda r: self._scripts["reserve"](
            keys=[self._k(k) for k in keys] + hold_keys,
            args=[int(amount), *map(int, limits), *(max(1, int(t)) for t in ttls_s), int(HOLD_TTL_S), len(keys)]))
        return bool(out[0]), [int(v) for v in out[1:]]

    async def settle(self, keys: Sequence[str], hold: str, amount: int, ttls_s: Sequence[float]) -> None:
        await self._run("settle", lambda r: self._scripts["settle"](
            keys=[self._k(k) for k in keys] + [self._k(_HOLD + hold)],
            args=[int(amount), *(max(1, int(t)) for t in ttls_s), int(SETTLED_TTL_S)]))

    async def adjust(self, keys: Sequence[str], delta: int, ttls_s: Sequence[float]) -> None:
        await self._run("adjust", lambda r: self._scripts["adjust"](
            keys=[self._k(k) for k in keys], args=[int(delta), *(max(1, int(t)) for t in ttls_s)]))

    async def counters(self, keys: Sequence[str]) -> list[int]:
        values = await self._run("MGET", lambda r: r.mget([self._k(k) for k in keys]))
        return [int(v) if v is not None else 0 for v in values]

    async def rate(self, key: str, interval_s: float, burst: int) -> RateVerdict:
        allowed, retry = await self._run("rate", lambda r: self._scripts["gcra"](
            keys=[self._k(key)], args=[repr(float(interval_s)), int(burst)]))
        return RateVerdict(bool(allowed), float(retry))

    def health(self) -> dict[str, Any]:
        return {"backend": self.backend, **self.link.describe()}

    async def probe(self) -> None:
        """One PING (skipped while the breaker waits to retry), so ``/healthz`` sees an outage
        before a request does."""
        try:
            await self._run("PING", lambda r: r.ping())
        except StateUnavailable:
            pass

    async def close(self) -> None:
        if self._client is not None:
            try:
                await self._client.aclose()
                await self._client.connection_pool.disconnect()
            except Exception:  # closing a client whose loop or server is gone
                pass
            self._client = None
