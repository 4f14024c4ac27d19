"""Shared state for caches, budgets and rate limits. ``base.SharedState`` is the interface;
``memory.MemoryState`` serves one process (``store: sqlite``), ``redis.RedisState`` every
replica (``store: redis``). A new backend is one new module here plus a line in
:func:`open_state`."""

from __future__ import annotations

from ..policy import StoreConfig
from .base import SharedState, StateUnavailable

__all__ = ["SharedState", "StateUnavailable", "open_state"]


def open_state(config: StoreConfig) -> SharedState:
    """The shared state the policy's ``store`` names (connections open lazily)."""
    if config.backend == "redis":
        from .redis import RedisState

        return RedisState(config)
    from .memory import MemoryState

    return MemoryState()
