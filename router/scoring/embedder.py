"""Sentence embeddings with all-MiniLM-L6-v2 loaded from site-packages (offline)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from ..models import minilm_dir

__all__ = ["Embedder", "EMBEDDER_NAME"]

EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder:
    """Lazily loaded MiniLM encoder; thread-safe. ``threads``: torch intra-op threads,
    set for the whole process when the model loads (None leaves torch's default).

    ``encode(texts)`` returns a float32 array of shape (len(texts), 384), L2-normalised.
    Loading sets ``HF_HUB_OFFLINE=1`` so nothing is ever downloaded.
    """

    dimension = 384

    def __init__(self, batch_size: int = 32, device: str = "cpu", threads: int | None = None) -> None:
        self._model = None
        self._lock = threading.Lock()
        self.batch_size = batch_size
        self.device = device
        self.threads = threads  # torch intra-op threads, set process-wide at load; None = torch's default

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                if self.threads:
                    import torch

                    torch.set_num_threads(self.threads)

                self._model = SentenceTransformer(str(minilm_dir()), device=self.device)
        return self._model

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts; shape (n, 384), float32, unit norm."""
        model = self._load()
        return model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress_bar,
        ).astype(np.float32)
