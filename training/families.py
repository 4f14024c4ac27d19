"""Families of prompts for leave-one-family-out (LOFO) evaluation.

A family is a kind of traffic a router may meet without having seen it in training: each
MMLU subject group (the four categories of Hendrycks et al., 2021, "Measuring Massive
Multitask Language Understanding", their ``categories.py``: STEM, humanities, social
sciences, other), GSM8K, ARC, Winogrande, MBPP, AlpacaEval, and each user file (a label
file of the local tier or a JSONL in the toolkit's schema) as one family named by its stem.

:func:`family_names` gives each :class:`training.datasets.Example` its family; pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .datasets import DATASETS, Example, load, parse_names

__all__ = ["MMLU_GROUPS", "mmlu_group", "family_names", "load_with_families", "FAMILY_ORDER"]

MMLU_GROUPS: dict[str, tuple[str, ...]] = {
    "stem": ("abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
             "college_computer_science", "college_mathematics", "college_physics", "computer_security",
             "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
             "high_school_chemistry", "high_school_computer_science", "high_school_mathematics",
             "high_school_physics", "high_school_statistics", "machine_learning"),
    "humanities": ("formal_logic", "high_school_european_history", "high_school_us_history",
                   "high_school_world_history", "international_law", "jurisprudence", "logical_fallacies",
                   "moral_disputes", "moral_scenarios", "philosophy", "prehistory", "professional_law",
                   "world_religions"),
    "social_sciences": ("econometrics", "high_school_geography", "high_school_government_and_politics",
                        "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology",
                        "human_sexuality", "professional_psychology", "public_relations", "security_studies",
                        "sociology", "us_foreign_policy"),
    "other": ("business_ethics", "clinical_knowledge", "college_medicine", "global_facts", "human_aging",
              "management", "marketing", "medical_genetics", "miscellaneous", "nutrition",
              "professional_accounting", "professional_medicine", "virology"),
}
"""MMLU's 57 subjects in their four categories (the shared data holds 49 of them)."""

FAMILY_ORDER = ("mmlu-stem", "mmlu-humanities", "mmlu-social_sciences", "mmlu-other", "gsm8k", "arc",
                "winogrande", "mbpp", "alpaca_eval")
"""The built-in families, in the order tables print them (user files follow)."""

_SUBJECT_GROUP = {s: g for g, subjects in MMLU_GROUPS.items() for s in subjects}


def mmlu_group(subject: str) -> str:
    """The category of an MMLU subject (``stem``, ``humanities``, ``social_sciences``, ``other``).

    Raises:
        KeyError: not an MMLU subject.
    """
    return _SUBJECT_GROUP[subject]


def family_names(examples: Sequence[Example], file_family: Sequence[str | None] | None = None) -> np.ndarray:
    """The family of each example: ``mmlu-<category>`` for RouteLLM MMLU rows, the source
    otherwise, or ``file_family[i]`` where given (a user file's stem).

    Returns:
        array of str, shape (n,).
    """
    out = []
    for i, e in enumerate(examples):
        given = file_family[i] if file_family is not None else None
        if given:
            out.append(given)
        elif e.source == "mmlu" and e.group in _SUBJECT_GROUP:
            out.append(f"mmlu-{_SUBJECT_GROUP[e.group]}")
        else:
            out.append(e.source)
    return np.array(out)


def load_with_families(spec: str | list[str]) -> tuple[list[Example], np.ndarray]:
    """Load the named sets (as :func:`training.datasets.load`) and name each row's family;
    every file in ``spec`` (``.jsonl``) is one family named by its stem.

    Raises:
        ValueError, FileNotFoundError: as :func:`training.datasets.load`.
    """
    names = parse_names(spec) if isinstance(spec, str) else list(spec)
    rows: list[Example] = []
    given: list[str | None] = []
    for name in names:
        part = load([name])
        rows.extend(part)
        given.extend([None if name in DATASETS else Path(name).stem] * len(part))
    return rows, family_names(rows, given)
