"""Cheap text features of a request, computed the same way at training and at serving time.

Each text becomes :data:`N_FEATURES` floats (names in :data:`FEATURE_NAMES`): length (log
characters, words, question stem), digits and numbers, math and code markers, question type
(multiple choice, negated "NOT/EXCEPT" stems, "Statement 1 |" pairs, roman-numeral
options), sentence and line counts. Pure Python, about 50 µs per 1,000 characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["FEATURE_NAMES", "N_FEATURES", "text_features"]

_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_CHOICE = re.compile(r"^\s*\(?[A-Ea-e][.)]\s")
_MATH = re.compile(r"\\frac|\\sqrt|\$[^$]+\$|\^|√|∫|≤|≥|\bsin\b|\bcos\b|\blog\b")
_OPS = re.compile(r"[=+\-*/^<>]")
_NEGATED = re.compile(r"\b(NOT|EXCEPT|LEAST|FALSE|INCORRECT)\b")
_ROMAN = re.compile(r"\bI+V?\.|\bI and II\b|\bI only\b|\bII only\b")
_WHICH = re.compile(r"(?i)\bwhich of the following\b")
_CODE = re.compile(r"\bdef |\breturn\b|\{|\};|\bprint\(|\bfunction\b|\bclass \w+|```|#include|\bimport ")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_WH = re.compile(r"(?i)\b(how many|how much|what|why|how|explain|write|list|calculate|prove)\b")

FEATURE_NAMES = (
    "log_chars", "log_words", "log_stem_chars", "numbers", "log_number_chars", "digit_share",
    "operator_density", "math_markup", "choices", "mean_choice_chars", "max_choice_chars",
    "negated_stem", "statement_pair", "roman_options", "which_of_following", "code",
    "percent_signs", "lines", "question_marks", "sentences", "capitalised_share", "mean_word_chars",
    "wh_words",
)
N_FEATURES = len(FEATURE_NAMES)


def _one(text: str) -> list[float]:
    lines = text.split("\n")
    choices = [ln for ln in lines if _CHOICE.match(ln)]
    stem = "\n".join(ln for ln in lines if not _CHOICE.match(ln) and ln.strip() != "Answer:")
    words = text.split()
    nums = _NUM.findall(text)
    n = max(1, len(text))
    choice_lens = [len(c) for c in choices]
    return [
        math.log1p(len(text)),
        math.log1p(len(words)),
        math.log1p(len(stem)),
        float(len(nums)),
        math.log1p(sum(len(x) for x in nums)),
        sum(c.isdigit() for c in text) / n,
        100.0 * len(_OPS.findall(text)) / n,
        float(bool(_MATH.search(text))),
        float(len(choices)),
        float(np.mean(choice_lens)) if choices else 0.0,
        float(max(choice_lens, default=0)),
        float(bool(_NEGATED.search(text))),
        float("Statement 1" in text),
        float(bool(_ROMAN.search(text))),
        float(bool(_WHICH.search(text))),
        float(bool(_CODE.search(text))),
        float(text.count("%")),
        float(len(lines)),
        float(text.count("?")),
        float(len(_SENTENCE_END.findall(stem))),
        sum(1 for w in words if w[:1].isupper()) / max(1, len(words)),
        float(np.mean([len(w) for w in words])) if words else 0.0,
        float(len(_WH.findall(text))),
    ]


def text_features(texts: Sequence[str]) -> np.ndarray:
    """Features of each text: float32 array of shape (len(texts), N_FEATURES)."""
    if not texts:
        return np.zeros((0, N_FEATURES), dtype=np.float32)
    return np.array([_one(t) for t in texts], dtype=np.float32)
