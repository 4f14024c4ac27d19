"""Default scorer: embedding of the request text (+ its text features) -> scikit-learn P(needs cloud)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import Artifact, load_artifact
from .card import ArtifactCard
from .embedders import embedder_key
from .embedding_cache import CachedEmbedder
from .registry import new_embedder, resolve_embedder
from .routing_model import build_inputs
from .text_features import EXTRA_FEATURE_NAMES, FEATURE_NAMES

__all__ = ["EmbeddingClassifier"]


class EmbeddingClassifier:
    """Scores texts with a trained artifact (see :mod:`router.scoring.artifact`).

    Args:
        artifact: ``builtin`` or an artifact directory.
        embedder: an embedder with ``encode(texts) -> (n, dim)``; when None, the one the
            artifact's card names (``embedder_key``: ``minilm``, ``minilm-int8`` or ``static``).
        threads: intra-op threads for that embedder (torch's or ONNX Runtime's; None = its default).
        precision: ``fp32``, ``bf16`` or ``auto`` for that embedder (MiniLM on torch only).
        embedder_key: the embedder to build instead of the card's when both compute the same
            vectors (:func:`~router.scoring.registry.resolve_embedder`: ``minilm-int8`` for
            an artifact trained on ``minilm`` and back; see ``bench/embedder_quality.py``).
        max_tokens: word pieces ``minilm-int8`` reads (None: its default, the first 256).
        cache_size: embeddings of recent texts kept in memory
            (:class:`~router.scoring.embedding_cache.CachedEmbedder`); 0 = none.
        part_cache_size: per-turn word-piece sums the static embedder keeps
            (:mod:`~router.scoring.part_cache`; exact reuse of a conversation's earlier turns); 0 = none.

    The artifact and the embedder load on first use (or :meth:`warm_up`). Artifacts whose
    card lists ``"text_features"`` under ``inputs`` get the embedding followed by
    :func:`router.scoring.text_features.text_features`; older ones get the embedding only.
    """

    def __init__(self, artifact: str | Path = "builtin", embedder: Any | None = None, threads: int | None = None,
                 precision: str = "fp32", embedder_key: str | None = None, cache_size: int = 0,
                 max_tokens: int | None = None, part_cache_size: int = 0) -> None:
        self._location = artifact
        self._embedder_key = embedder_key
        self._cache_size = cache_size
        self._max_tokens = max_tokens
        self._part_cache_size = part_cache_size
        self._artifact: Artifact | None = None
        self._embedder = embedder
        self._threads = threads
        self._precision = precision
        self._inputs: _Inputs | None = None

    @property
    def artifact(self) -> Artifact:
        """The loaded artifact (loads it on first access)."""
        if self._artifact is None:
            artifact = load_artifact(self._location)
            self._inputs = _Inputs.of(artifact.card)
            self._artifact = artifact
        return self._artifact

    @property
    def inputs(self) -> "_Inputs":
        """What the artifact reads, from its card (read once, with the artifact)."""
        if self._artifact is None:
            self.artifact  # noqa: B018 (loads it)
        return self._inputs

    @property
    def embedder_name(self) -> str:
        """The key of the embedder this classifier reads (``minilm``, ``minilm-int8``, ``static``)."""
        return resolve_embedder(embedder_key(self.artifact.card), self._embedder_key)

    @property
    def embedder(self) -> Any:
        """The embedder (the artifact's own when none was given)."""
        if self._embedder is None:
            embedder = new_embedder(self.embedder_name, threads=self._threads, precision=self._precision,
                                    max_tokens=self._max_tokens, part_cache_size=self._part_cache_size)
            self._embedder = CachedEmbedder(embedder, self._cache_size) if self._cache_size else embedder
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
        if self.inputs.text_features:
            if texts is None:
                raise ValueError("this artifact also needs the texts (text features)")
            inputs = build_inputs(embeddings, texts, self.inputs.names)
        proba = self.artifact.estimator.predict_proba(inputs)[:, 1]
        return [float(p) for p in proba]

    def score_kept(self, texts: Sequence[str]) -> list[Any]:
        """:class:`~router.scoring.two_stage.StagedScore` per text with the inputs it scored:
        the embedding (float32, (dim,)), the text features (name -> value: the card's
        ``text_features``, or every feature when the model reads none) and the embedder key."""
        from .two_stage import StagedScore

        if not texts:
            return []
        embeddings = np.asarray(self.embedder.encode(texts), dtype=np.float32)
        names = self.inputs.kept_names
        rows = build_inputs(embeddings, texts, names)
        proba = self.artifact.estimator.predict_proba(rows if self.inputs.text_features else embeddings)[:, 1]
        dim = embeddings.shape[1]
        key = self.embedder_name
        return [StagedScore(float(p), None, row[:dim].copy(), dict(zip(names, row[dim:].tolist())), key)
                for p, row in zip(proba, rows)]

    def score(self, texts: Sequence[str]) -> list[float]:
        """P(needs cloud) in [0, 1] for each text."""
        if not texts:
            return []
        return self.score_embeddings(self.embedder.encode(texts), texts)


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What an artifact's card says its model reads: ``text_features`` (True when the text
    features follow the embedding), ``names`` (those features, in order) and ``kept_names``
    (the features a kept score carries: ``names``, or all of them when the model reads none)."""

    text_features: bool
    names: tuple[str, ...]
    kept_names: tuple[str, ...]

    @classmethod
    def of(cls, card: dict[str, Any]) -> "_Inputs":
        names = tuple(card.get("text_features") or FEATURE_NAMES)
        kept = tuple(card.get("text_features") or (FEATURE_NAMES + EXTRA_FEATURE_NAMES))
        return cls(ArtifactCard.read(card).needs_text_features, names, kept)
