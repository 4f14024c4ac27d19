"""Shared state for caches, budgets and rate limits. ``base.SharedState`` is the interface;
``memory.MemoryState`` serves one process (``store: sqlite``), ``redis.RedisState`` every
replica (``store: redis``). A new backend is one new module here plus its line in
:data:`STATES`."""

from __future__ import annotations

from collections.abc import Callable

from ..policy import StoreConfig
from .base import SharedState, StateUnavailable

__all__ = ["SharedState", "StateUnavailable", "STATES", "open_state"]


def _memory(config: StoreConfig) -> SharedState:
    from .memory import MemoryState

    return MemoryState()


def _redis(config: StoreConfig) -> SharedState:
    from .redis import RedisState

    return RedisState(config)


STATES: dict[str, Callable[[StoreConfig], SharedState]] = {"sqlite": _memory, "redis": _redis}
"""``store.backend`` -> opener of its shared state (one process's memory for ``sqlite``)."""


def open_state(config: StoreConfig) -> SharedState:
    """The shared state the policy's ``store`` names (connections open lazily)."""
    return STATES[config.backend](config)
