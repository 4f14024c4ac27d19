"""Default scorer: embedding of the request text (+ its text features) -> scikit-learn P(needs cloud)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import Artifact, load_artifact
from .embedders import embedder_key
from .card import ArtifactCard
from .registry import new_embedder

__all__ = ["EmbeddingClassifier"]


class EmbeddingClassifier:
    """Scores texts with a trained artifact (see :mod:`router.scoring.artifact`).

    Args:
        artifact: ``builtin`` or an artifact directory.
        embedder: an embedder with ``encode(texts) -> (n, dim)``; when None, the one the
            artifact's card names (``embedder_key``: ``minilm`` or ``static``).
        threads: torch intra-op threads for that embedder (None = torch's default).
        precision: ``fp32``, ``bf16`` or ``auto`` for that embedder (MiniLM only).

    The artifact and the embedder load on first use (or :meth:`warm_up`). Artifacts whose
    card lists ``"text_features"`` under ``inputs`` get the embedding followed by
    :func:`router.scoring.text_features.text_features`; older ones get the embedding only.
    """

    def __init__(self, artifact: str | Path = "builtin", embedder: Any | None = None, threads: int | None = None,
                 precision: str = "fp32") -> None:
        self._location = artifact
        self._artifact: Artifact | None = None
        self._embedder = embedder
        self._threads = threads
        self._precision = precision

    @property
    def artifact(self) -> Artifact:
        """The loaded artifact (loads it on first access)."""
        if self._artifact is None:
            self._artifact = load_artifact(self._location)
        return self._artifact

    @property
    def embedder(self) -> Any:
        """The embedder (the artifact's own when none was given)."""
        if self._embedder is None:
            self._embedder = new_embedder(embedder_key(self.artifact.card), threads=self._threads,
                                           precision=self._precision)
        return self._embedder

    def warm_up(self) -> None:
        """Load the artifact and the embedder now, so the first request pays nothing."""
        self.score(["warm up"])

    def score_embeddings(self, embeddings: np.ndarray, texts: Sequence[str] | None = None) -> list[float]:
        """P(needs cloud) for embeddings of shape (n, dim) of ``texts``.

        Raises:
            ValueError: the artifact needs text features and ``texts`` is None.
        """
        inputs = embeddings
        if ArtifactCard.read(self.artifact.card).needs_text_features:
            if texts is None:
                raise ValueError("this artifact also needs the texts (text features)")
            from .routing_model import build_inputs
            from .text_features import FEATURE_NAMES

            inputs = build_inputs(embeddings, texts, self.artifact.card.get("text_features") or FEATURE_NAMES)
        proba = self.artifact.estimator.predict_proba(inputs)[:, 1]
        return [float(p) for p in proba]

    def score(self, texts: Sequence[str]) -> list[float]:
        """P(needs cloud) in [0, 1] for each text."""
        if not texts:
            return []
        return self.score_embeddings(self.embedder.encode(texts), texts)
