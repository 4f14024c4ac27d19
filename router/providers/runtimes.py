"""Tier runtimes this process runs itself, by model prefix (``slm-local/<gguf>``).

A runtime is a litellm custom provider plus the object that loads its model; the tier
client registers one per in-process tier (:class:`router.providers.tier_client.TierClient`)
and warms it up at start-up. A new runtime is one module in this folder plus its line in
:data:`RUNTIMES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..policy import TierConfig

__all__ = ["RUNTIMES", "runtime_for"]


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
