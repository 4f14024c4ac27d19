"""Request-log stores. ``base.RequestStore`` is the interface; ``sqlite.SQLiteStore`` the
embedded default, ``redis.RedisStore`` the log shared by replicas (a Redis stream with a
disk spool). A new store is one new module here plus its line in :data:`STORES` (and its
name in ``store.backend``, :class:`router.policy.StoreConfig`)."""

from __future__ import annotations

from collections.abc import Callable

from ..policy import LogConfig, Policy
from .base import BatchStore, RequestStore

__all__ = ["BatchStore", "RequestStore", "STORES", "open_store", "store_location"]


def _sqlite(policy: Policy | LogConfig, reader: bool) -> RequestStore:
    from .sqlite import SQLiteStore

    return SQLiteStore((policy if isinstance(policy, LogConfig) else policy.log).path)


def _redis(policy: Policy, reader: bool) -> RequestStore:
    from .redis import RedisStore

    return RedisStore(policy.store, writer=not reader)


STORES: dict[str, Callable[[Policy, bool], RequestStore]] = {"sqlite": _sqlite, "redis": _redis}
"""``store.backend`` -> opener ``(policy, reader) -> store`` (modules imported on use)."""


def open_store(config: Policy | LogConfig, reader: bool = False) -> RequestStore:
    """Open the request log a policy names (:data:`STORES` by ``store.backend``: ``redis`` ->
    the Redis stream, ``sqlite`` -> the SQLite file ``log.path``). A bare :class:`LogConfig`
    opens SQLite.

    Args:
        reader: for tools that only read the log (``report``, ``replay``): no disk spool and
            no flusher thread on Redis.
    """
    if isinstance(config, LogConfig):
        return _sqlite(config, reader)
    return STORES[config.store.backend](config, reader)


def store_location(policy: Policy) -> tuple:
    """Where ``policy``'s request log is written (pure): the Redis settings for ``store:
    redis``, the SQLite file ``log.path`` otherwise. A reload opens a new store exactly when
    this changes; other ``log`` settings (``keep_for_learning``, ``writer``) keep the store."""
    if policy.store.backend == "sqlite":
        return ("sqlite", policy.log.path)
    return (policy.store.backend, policy.store.model_dump_json())
