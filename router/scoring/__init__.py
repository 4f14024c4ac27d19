"""Score stage: how likely a request needs the cloud tier.

``base.Scorer`` is the interface; ``classifier.EmbeddingClassifier`` is the default
implementation (MiniLM embedding + scikit-learn). A new signal is one new module here.
"""

from .base import Scorer

__all__ = ["Scorer"]
