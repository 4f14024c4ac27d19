"""Cheap text features of a request, computed the same way at training and at serving time.

Each text becomes :data:`N_FEATURES` floats (names in :data:`FEATURE_NAMES`): length (log
characters, words, question stem), digits and numbers, math and code markers, question type
(multiple choice, negated "NOT/EXCEPT" stems, "Statement 1 |" pairs, roman-numeral
options), sentence and line counts. Pure Python, about 50 µs per 1,000 characters.

:data:`ALL_FEATURE_NAMES` adds features meant to travel across domains (issue 18):
``n_questions`` (how many asks: the larger of the questions ending in "?" and the numbered or
bulleted items),
``numbered_items``, ``paragraphs`` (blank-line separated blocks), ``non_ascii_share`` and
``non_latin_share`` (the language: share of characters outside ASCII / letters outside the
Latin script), ``code_fence`` and ``imperative`` (the text opens with a verb of making:
write, create, implement, ...), and ``rule_<signal>`` for each keyword group of the rule scorer
(:mod:`router.scoring.rules`: code, math, reasoning markers, ...; 0/1, or the count of extra
asks for ``multi_part``). An artifact's card lists the names it was trained on, and
:func:`text_features` computes exactly those (older cards list :data:`FEATURE_NAMES`).
The pipeline joins the last user turn and its context turns with newlines before scoring,
so the number of turns is not visible here (``paragraphs`` is the nearest proxy).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["FEATURE_NAMES", "N_FEATURES", "ALL_FEATURE_NAMES", "EXTRA_FEATURE_NAMES", "text_features"]

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
RULE_SIGNALS = ("code", "math", "arithmetic", "reasoning", "technical", "constraints", "multi_part", "simple")
EXTRA_FEATURE_NAMES = ("n_questions", "numbered_items", "paragraphs", "non_ascii_share", "non_latin_share",
                       "code_fence", "imperative") + tuple(f"rule_{n}" for n in RULE_SIGNALS)
ALL_FEATURE_NAMES = FEATURE_NAMES + EXTRA_FEATURE_NAMES

_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+\S")
_QUESTION = re.compile(r"[^.!?\n]*\?")
_IMPERATIVE = re.compile(r"(?i)^\s*(?:please\s+)?(write|create|implement|build|design|generate|develop|code|make|"
                         r"compose|draft|construct|program)\b")


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


def _extra(text: str) -> list[float]:
    from .rules import WEIGHTS, rule_points

    points = rule_points(text)
    lines = text.split("\n")
    items = sum(1 for ln in lines if _ITEM.match(ln))
    letters = [c for c in text if c.isalpha()]
    n = max(1, len(text))
    return [
        float(max(len(_QUESTION.findall(text)), items)),
        float(items),
        float(len([b for b in re.split(r"\n\s*\n", text) if b.strip()])),
        sum(ord(c) > 127 for c in text) / n,
        sum(ord(c) > 0x24F for c in letters) / max(1, len(letters)),
        float("```" in text),
        float(bool(_IMPERATIVE.search(text))),
    ] + [points[n] / WEIGHTS[n] for n in RULE_SIGNALS]


def text_features(texts: Sequence[str], names: Sequence[str] = FEATURE_NAMES) -> np.ndarray:
    """Features ``names`` (a subset of :data:`ALL_FEATURE_NAMES`, in any order) of each text.

    Returns:
        float32 array of shape (len(texts), len(names)).
    Raises:
        ValueError: an unknown feature name.
    """
    unknown = [n for n in names if n not in ALL_FEATURE_NAMES]
    if unknown:
        raise ValueError(f"unknown text feature(s) {', '.join(unknown)}; known: {', '.join(ALL_FEATURE_NAMES)}")
    if not texts:
        return np.zeros((0, len(names)), dtype=np.float32)
    extra = any(n in EXTRA_FEATURE_NAMES for n in names)
    rows = np.array([_one(t) + (_extra(t) if extra else [0.0] * len(EXTRA_FEATURE_NAMES)) for t in texts],
                    dtype=np.float32)
    if tuple(names) == ALL_FEATURE_NAMES:
        return rows
    return rows[:, [ALL_FEATURE_NAMES.index(n) for n in names]]
