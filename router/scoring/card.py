"""The artifact card as a typed contract: what ``slm-router train`` writes into ``card.json``
beside a classifier and what the runtime reads back.

:class:`ArtifactCard` types the fields the runtime reads (the embedder, the model's inputs,
the held-out score quantiles ``target_cloud_share`` derives a threshold from); every other
field a card holds (metrics, data provenance, calibration) is kept as it is
(``extra="allow"``) for reports and training tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ArtifactCard"]


class ArtifactCard(BaseModel):
    """One classifier artifact's card.

    Attributes:
        name, created: the artifact's name and when it was trained (ISO 8601).
        model: what was trained (the estimator's description, as training writes it).
        embedder: the embedding model's full name (older cards name only this).
        embedder_key: the short key of :data:`router.scoring.registry.EMBEDDERS`.
        embedding_dim: dimensions of the embedding.
        inputs: the model's inputs in order (``embedding``, ``text_features``).
        score_quantiles: cloud share (a decimal string, ``"0.3"``) -> the threshold that
            sends that share of held-out prompts to the cloud (and a ``meaning`` text).
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str | None = None
    model: dict[str, Any] | str | None = None
    created: str | None = None
    embedder: str | None = None
    embedder_key: str | None = None
    embedding_dim: int | None = None
    inputs: list[str] = Field(default_factory=lambda: ["embedding"])
    score_quantiles: dict[str, float | str] = Field(default_factory=dict)

    @classmethod
    def read(cls, card: Mapping[str, Any] | "ArtifactCard") -> "ArtifactCard":
        """The typed card of a card mapping (an :class:`ArtifactCard` is returned as is).

        Raises:
            pydantic.ValidationError: a typed field has the wrong type.
        """
        return card if isinstance(card, ArtifactCard) else cls.model_validate(dict(card))

    @property
    def has_quantiles(self) -> bool:
        """True when ``score_quantiles`` can derive a threshold (some key is a decimal share)."""
        return any(k.replace(".", "", 1).isdigit() for k in self.score_quantiles)

    def quantiles(self) -> dict[str, float]:
        """The numeric points of ``score_quantiles`` (share -> threshold)."""
        return {k: float(v) for k, v in self.score_quantiles.items() if not isinstance(v, str)}

    @property
    def needs_text_features(self) -> bool:
        """True when the model also reads the text features of the prompt."""
        return "text_features" in self.inputs
