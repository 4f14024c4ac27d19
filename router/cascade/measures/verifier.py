"""The ``verifier`` measure: 1 - P(answer wrong) of a classifier artifact trained on labelled
answers (``slm-router train --text answer``), read on the answer text.

The artifact's classifier is loaded on first use (:class:`Verifiers` keeps them for the
router's lifetime) and shares the router's embedder when both artifacts read the same
embeddings; scoring runs on a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...policy import EscalationConfig
from .base import MeasureInput, Measured

__all__ = ["Verifier", "Verifiers"]


class Verifiers:
    """Verifier classifiers by artifact, loaded on first use.

    Args:
        scorer: the router's scorer; its embedder is shared when the card says the artifact
            reads the same embeddings.
    """

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self._loaded: dict[str, Any] = {}

    async def p_correct(self, artifact: str, text: str) -> float:
        """1 - P(wrong) of ``text`` under ``artifact`` (0..1).

        Raises:
            FileNotFoundError: the artifact is incomplete.
        """
        scorer = self._loaded.get(artifact)
        if scorer is None:
            from ...scoring.artifact import load_artifact
            from ...scoring.classifier import EmbeddingClassifier
            from ...scoring.embedders import embedder_key

            from ...scoring.protocols import EmbeddingScorer

            ours = self.scorer if isinstance(self.scorer, EmbeddingScorer) else None
            card = (await asyncio.to_thread(load_artifact, artifact)).card
            same = ours is not None and embedder_key(ours.artifact.card) == embedder_key(card)
            # the router's embedder is shared when both artifacts read the same embeddings
            scorer = EmbeddingClassifier(artifact, ours.embedder if same else None)
            self._loaded[artifact] = scorer
        (p_wrong,) = await asyncio.to_thread(scorer.score, [text or " "])
        return 1.0 - float(p_wrong)


class Verifier:
    """Measures ``verifier`` with the settings' ``verifier_artifact``."""

    signal = "verifier"

    def __init__(self, verifiers: Verifiers) -> None:
        self.verifiers = verifiers

    def wanted(self, escalation: EscalationConfig) -> bool:
        return bool(escalation.verifier_artifact and escalation.needs("verifier"))

    async def measure(self, given: MeasureInput) -> Measured:
        try:
            value = await self.verifiers.p_correct(given.escalation.verifier_artifact, given.text)
        except Exception as err:  # noqa: BLE001 - an unloadable verifier leaves the signal unmeasured
            return Measured(note=f"verifier failed ({type(err).__name__})")
        return Measured(value, f"verifier {value:.2f}")
