"""On-disk cache of MiniLM embeddings keyed by the SHA-256 of each text.

A second training run over the same prompts embeds nothing. The cache is one ``.npz``
file per embedder (keys and a float32 matrix of shape (n, 384)), under
``$SLM_ROUTER_CACHE`` or ``.cache/`` in the working directory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from router.scoring.embedder import Embedder

__all__ = ["embed_cached", "cache_dir"]


def cache_dir() -> Path:
    """The cache folder (created on demand)."""
    return Path(os.environ.get("SLM_ROUTER_CACHE", ".cache"))


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_cached(texts: Sequence[str], embedder: Embedder | None = None, progress: bool = True) -> np.ndarray:
    """Embed ``texts`` (shape (n, 384)), reading and extending the on-disk cache."""
    path = cache_dir() / "embeddings-minilm.npz"
    known: dict[str, np.ndarray] = {}
    if path.is_file():
        with np.load(path) as z:
            known = dict(zip(z["keys"].tolist(), z["vectors"]))
    keys = [_key(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in known}.items())
    if missing:
        embedder = embedder or Embedder()
        vectors = embedder.encode([t for _, t in missing], show_progress_bar=progress)
        known.update({k: v for (k, _), v in zip(missing, vectors)})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
        os.replace(tmp, path)
    return np.stack([known[k] for k in keys]).astype(np.float32)
