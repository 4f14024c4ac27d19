"""Compatibility names for the first issue's loader; the loaders live in :mod:`training.datasets`.

``load_routellm(("mmlu", "gsm8k"))`` returns RouteLLM's MMLU and GSM8K outcomes
(contaminated prompts dropped) as :class:`training.datasets.Example` rows, weak = Mixtral,
strong = GPT-4.
"""

from __future__ import annotations

from pathlib import Path

from .datasets import Example, data_root, load
from .datasets.routellm import STRONG_MODEL, WEAK_MODEL

__all__ = ["Example", "data_root", "load_routellm", "WEAK_MODEL", "STRONG_MODEL"]


def load_routellm(names: tuple[str, ...] = ("mmlu", "gsm8k"), root: Path | None = None) -> list[Example]:
    """RouteLLM MMLU and/or GSM8K, contaminated prompts dropped.

    Raises:
        FileNotFoundError: the data folder is missing.
        ValueError: a name other than ``mmlu`` or ``gsm8k``.
    """
    for n in names:
        if n not in ("mmlu", "gsm8k"):
            raise ValueError(f"unknown RouteLLM dataset {n!r}; expected 'mmlu' or 'gsm8k'")
    return load(list(names), root)
