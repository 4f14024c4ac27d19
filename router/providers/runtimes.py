"""Tier runtimes this process runs itself, by model prefix (``slm-local/<gguf>``).

A runtime is a litellm custom provider plus the object that loads its model; the tier
client registers one per in-process tier (:class:`router.providers.tier_client.TierClient`)
and warms it up at start-up. A new runtime is one module in this folder plus its line in
:data:`RUNTIMES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..policy import Policy, TierConfig

__all__ = ["RUNTIMES", "Launchable", "runtime_for", "launch_runtimes"]


@runtime_checkable
class Launchable(Protocol):
    """A runtime that can start loading its model without waiting for it (``launch()``; its
    ``start()`` then only waits), e.g. :class:`~router.providers.worker_pool.WorkerPool`."""

    def launch(self) -> None: ...


def _slm_local(tier: TierConfig) -> Any:
    from .local_provider import register_local_tier

    return register_local_tier(tier)


RUNTIMES: dict[str, Callable[[TierConfig], Any]] = {"slm-local": _slm_local}
"""Model prefix -> ``register(tier) -> runtime`` (an object with ``start()``, blocking: load
its model(s), and ``health()``, a dict with at least ``ok``; e.g. :class:`WorkerPool`)."""


def runtime_for(tier: TierConfig) -> Any | None:
    """The registered runtime of an in-process tier, or None for a tier litellm reaches over
    the network."""
    register = RUNTIMES.get(tier.model.split("/", 1)[0]) if "/" in tier.model else None
    return None if register is None else register(tier)


def launch_runtimes(policy: Policy) -> int:
    """Start loading the models of ``policy``'s in-process tiers now, without waiting (each
    runtime is the registered one the tier client picks up later, so nothing loads twice).
    ``slm-router serve`` calls this before it imports the rest of the server, so the workers
    load on another core meanwhile (issue 17: start to first answer). A tier whose runtime
    cannot be built (a missing GGUF file) is skipped: the policy check reports it.

    Returns:
        how many runtimes were launched.
    """
    launched = 0
    for tier in policy.tiers.values():
        try:
            runtime = runtime_for(tier)
        except FileNotFoundError:
            continue
        if isinstance(runtime, Launchable):
            runtime.launch()
            launched += 1
    return launched
