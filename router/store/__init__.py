"""Request-log stores. ``base.RequestStore`` is the interface; ``sqlite.SQLiteStore`` the
embedded default, ``redis.RedisStore`` the log shared by replicas (a Redis stream with a
disk spool). A new store is one new module here plus a line in :func:`open_store`."""

from __future__ import annotations

from ..policy import LogConfig, Policy
from .base import RequestStore

__all__ = ["RequestStore", "open_store"]


def open_store(config: Policy | LogConfig, reader: bool = False) -> RequestStore:
    """Open the request log a policy names: ``store.backend`` ``redis`` -> the Redis stream,
    ``sqlite`` -> the SQLite file ``log.path``. A bare :class:`LogConfig` opens SQLite.

    Args:
        reader: for tools that only read the log (``report``, ``replay``): no disk spool and
            no flusher thread on Redis.
    """
    if isinstance(config, Policy):
        if config.store.backend == "redis":
            from .redis import RedisStore

            return RedisStore(config.store, writer=not reader)
        config = config.log
    from .sqlite import SQLiteStore

    return SQLiteStore(config.path)
