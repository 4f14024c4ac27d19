"""Request-log stores. ``base.RequestStore`` is the interface; ``sqlite.SQLiteStore`` the
embedded default. A new store is one new module here plus a line in :func:`open_store`."""

from __future__ import annotations

from ..policy import LogConfig
from .base import RequestStore

__all__ = ["RequestStore", "open_store"]


def open_store(config: LogConfig) -> RequestStore:
    """Open the store the policy's ``log`` section names."""
    if config.store == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(config.path)
    raise ValueError(f"unknown store {config.store!r}")
