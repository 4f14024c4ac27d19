"""Default scorer: MiniLM embedding of the request text -> scikit-learn P(needs cloud)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .artifact import Artifact, load_artifact
from .embedder import Embedder

__all__ = ["EmbeddingClassifier"]


class EmbeddingClassifier:
    """Scores texts with a trained artifact (see :mod:`router.scoring.artifact`).

    Args:
        artifact: ``builtin`` or an artifact directory.
        embedder: shared :class:`Embedder`; a new one when None.

    The artifact and the embedder load on first use (or :meth:`warm_up`).
    """

    def __init__(self, artifact: str | Path = "builtin", embedder: Embedder | None = None) -> None:
        self._location = artifact
        self._artifact: Artifact | None = None
        self.embedder = embedder or Embedder()

    @property
    def artifact(self) -> Artifact:
        """The loaded artifact (loads it on first access)."""
        if self._artifact is None:
            self._artifact = load_artifact(self._location)
        return self._artifact

    def warm_up(self) -> None:
        """Load the artifact and the embedder now, so the first request pays nothing."""
        self.score(["warm up"])

    def score_embeddings(self, embeddings: np.ndarray) -> list[float]:
        """P(needs cloud) for embeddings of shape (n, 384)."""
        proba = self.artifact.estimator.predict_proba(embeddings)[:, 1]
        return [float(p) for p in proba]

    def score(self, texts: Sequence[str]) -> list[float]:
        """P(needs cloud) in [0, 1] for each text."""
        if not texts:
            return []
        return self.score_embeddings(self.embedder.encode(texts))
