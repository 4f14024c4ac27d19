"""Loaders for every labelled routing set into one schema (:class:`Example`).

``load("mmlu,gsm8k")`` reads the named sets from the shared data folder; a name that is a
path to a ``.jsonl`` file loads the user's own data (format in :mod:`.jsonl`) or a label
file of the local tier written by ``slm-router label`` (:mod:`.local_labels`). One file per
source; a new source is one new module plus a line in :data:`DATASETS`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .alpaca_eval import load_alpaca_eval
from .base import LABELS, Example, label_values, with_pair
from .jsonl import load_jsonl
from .local_labels import is_label_file, load_local_labels
from .routellm import load_gsm8k, load_mmlu
from .routerbench import load_routerbench

__all__ = ["Example", "LABELS", "DATASETS", "data_root", "load", "parse_names", "label_values", "with_pair", "load_jsonl"]

DATASETS: dict[str, Callable[[Path], list[Example]]] = {
    "mmlu": load_mmlu,
    "gsm8k": load_gsm8k,
    "arc": lambda root: load_routerbench("arc", root),
    "winogrande": lambda root: load_routerbench("winogrande", root),
    "mbpp": lambda root: load_routerbench("mbpp", root),
    "alpaca_eval": load_alpaca_eval,
}
"""Name -> loader(root). ``all`` in :func:`parse_names` means every one of them."""


def data_root() -> Path:
    """``$SLM_ROUTER_DATA`` or ``../shared/data`` beside the repository.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    env = os.environ.get("SLM_ROUTER_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}; set SLM_ROUTER_DATA to the shared data folder")
    return root


def parse_names(spec: str) -> list[str]:
    """Split ``"mmlu,gsm8k"`` (or ``all``) into names; paths to JSONL files are kept as given.

    Raises:
        ValueError: empty, or a name that is neither a known set nor a ``.jsonl`` path.
    """
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ValueError("no dataset named; use e.g. --data mmlu,gsm8k or --data my.jsonl")
    if names == ["all"]:
        return list(DATASETS)
    for n in names:
        if n not in DATASETS and not n.endswith(".jsonl"):
            raise ValueError(f"unknown dataset {n!r}; expected one of {', '.join(DATASETS)}, 'all' or a .jsonl file")
    return names


def load(spec: str | list[str], root: Path | None = None) -> list[Example]:
    """Load the named sets (``"mmlu,gsm8k"``, ``["arc"]``, ``"my.jsonl"``), in the order given.

    Raises:
        ValueError: an unknown name or a malformed JSONL line.
        FileNotFoundError: the data folder or a file is missing.
    """
    names = parse_names(spec) if isinstance(spec, str) else list(spec)
    out: list[Example] = []
    for n in names:
        if n in DATASETS:
            out.extend(DATASETS[n](root or data_root()))
        elif is_label_file(Path(n)):
            out.extend(load_local_labels(Path(n)))
        else:
            out.extend(load_jsonl(Path(n)))
    return out
