"""The scorer interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Scorer"]


@runtime_checkable
class Scorer(Protocol):
    """Gives each text P(needs the cloud tier) in [0, 1].

    ``score`` is synchronous and may be slow (an embedding model); callers run it off the
    event loop.
    """

    def score(self, texts: Sequence[str]) -> list[float]:
        """Return one probability per text, in order."""
        ...
