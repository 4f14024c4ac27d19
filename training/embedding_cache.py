"""On-disk cache of prompt embeddings keyed by the SHA-256 of each text.

A second training run over the same prompts embeds nothing; several processes may share the
cache (each writes its own temporary file and merges what is on disk). The cache is one ``.npz`` file
per embedder (``embeddings-<name>.npz``: keys and a float32 matrix of shape (n, dim)), under
``$SLM_ROUTER_CACHE`` or ``.cache/`` in the working directory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["embed_cached", "cache_dir"]


def cache_dir() -> Path:
    """The cache folder (created on demand)."""
    return Path(os.environ.get("SLM_ROUTER_CACHE", ".cache"))


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path) as z:
        return dict(zip(z["keys"].tolist(), z["vectors"]))


def embed_cached(texts: Sequence[str], embedder=None, progress: bool = True, name: str = "minilm") -> np.ndarray:
    """Embed ``texts`` with the embedder called ``name`` (``minilm`` or ``static``), reading and
    extending the on-disk cache.

    Args:
        embedder: an object with ``encode(texts, show_progress_bar=...)``; built from ``name`` when None.
        progress: show a progress bar while embedding texts not in the cache.
    Returns:
        float32 array of shape (len(texts), dim), in the order of ``texts``.
    """
    path = cache_dir() / f"embeddings-{name}.npz"
    known = _read(path)
    keys = [_key(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts) if k not in known}.items())
    if missing:
        if embedder is None:
            from router.scoring.embedders import make_embedder

            embedder = make_embedder(name)
        vectors = embedder.encode([t for _, t in missing], show_progress_bar=progress)
        fresh = {k: v for (k, _), v in zip(missing, vectors)}
        known.update(fresh)
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {**_read(path), **fresh}  # another process may have extended the file meanwhile
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # one temporary file per writer
        np.savez(tmp, keys=np.array(list(merged)), vectors=np.stack(list(merged.values())))
        os.replace(tmp, path)
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([known[k] for k in keys]).astype(np.float32)
