"""Cheap text features of a request, computed the same way at training and at serving time.

Each text becomes :data:`N_FEATURES` floats (names in :data:`FEATURE_NAMES`): length (log
characters, words, question stem), digits and numbers, math and code markers, question type
(multiple choice, negated "NOT/EXCEPT" stems, "Statement 1 |" pairs, roman-numeral
options), sentence and line counts. Pure Python, one pass (:func:`_row`): about 0.35 ms for a
~500-character prompt and 1.3-1.7 ms for 2,000 characters on 2 loaded cores, most of it the
keyword groups' regexes (issue 17 profile; the first version took 2-2.5x that).

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
The pipeline joins the last user turn and the context turns it reads with a blank line before
scoring (:func:`router.request.features.extract_features`), so the number of turns is not
visible here (``paragraphs`` is the nearest proxy).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Sequence

import numpy as np

from .caseless import Caseless, lowered
from .rules import rule_signals

__all__ = ["FEATURE_NAMES", "N_FEATURES", "ALL_FEATURE_NAMES", "EXTRA_FEATURE_NAMES", "text_features"]

_NUM = re.compile(r"\d+(?:[.,]\d+)*")
_CHOICE = re.compile(r"^\s*\(?[A-Ea-e][.)]\s")
_MATH = re.compile(r"\\frac|\\sqrt|\$[^$]+\$|\^|√|∫|≤|≥|\bsin\b|\bcos\b|\blog\b")
_OPS = re.compile(r"[=+\-*/^<>]")
_NEGATED = re.compile(r"\b(NOT|EXCEPT|LEAST|FALSE|INCORRECT)\b")
_ROMAN = re.compile(r"\bI+V?\.|\bI and II\b|\bI only\b|\bII only\b")
_WHICH = Caseless(r"\bwhich of the following\b")
_CODE = re.compile(r"\bdef |\breturn\b|\{|\};|\bprint\(|\bfunction\b|\bclass \w+|```|#include|\bimport ")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_WH = Caseless(r"\b(how many|how much|what|why|how|explain|write|list|calculate|prove)\b")

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
_IMPERATIVE = Caseless(r"^\s*(?:please\s+)?(write|create|implement|build|design|generate|develop|code|make|"
                       r"compose|draft|construct|program)\b")


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASCII_DIGITS = b"0123456789"
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_FIRST = operator.itemgetter(0)


def _row(text: str) -> list[float]:
    """All of :data:`ALL_FEATURE_NAMES` for one text, in that order, in one pass over its lines
    and words (each regex runs once; counts over characters run in C).

    Equal, float for float, to the definitions in the module docstring as first written
    (``tests/reference_scoring.py`` keeps that first version; ``tests/test_fast_decision.py``
    compares the two on real prompts). The rewrites that keep them equal: ``n_questions``'s
    ``[^.!?\\n]*\\?`` matches end at each ``?`` and nowhere else, so its count is
    ``text.count("?")``; ASCII digits and letters are counted on the UTF-8 bytes (``str.isdigit``
    and ``str.isalpha`` are ``0-9`` and ``A-Za-z`` on ASCII) and the non-ASCII characters one by
    one; means of integer lengths are integer sums over counts (numpy's mean of integers is
    the same correctly rounded quotient); the keyword groups read the lowered text
    (:mod:`router.scoring.caseless`).
    """
    lines = text.split("\n")
    choice = [bool(_CHOICE.match(ln)) for ln in lines]
    choice_lens = [len(ln) for ln, c in zip(lines, choice) if c]
    stem = "\n".join(ln for ln, c in zip(lines, choice) if not c and ln.strip() != "Answer:")
    words = text.split()
    n_words = len(words)
    nums = _NUM.findall(text)
    n = max(1, len(text))
    raw = text.encode("utf-8", "surrogatepass")
    others = _NON_ASCII.findall(text) if not text.isascii() else []
    digits = len(raw) - len(raw.translate(None, _ASCII_DIGITS)) + sum(c.isdigit() for c in others)
    letters = len(raw) - len(raw.translate(None, _ASCII_LETTERS)) + sum(c.isalpha() for c in others)
    non_latin = sum(c.isalpha() and ord(c) > 0x24F for c in others)
    low = lowered(text)
    questions = text.count("?")
    items = sum(1 for ln in lines if _ITEM.match(ln))
    fired = rule_signals(text, n_words, questions, low)
    return [
        math.log1p(len(text)),
        math.log1p(n_words),
        math.log1p(len(stem)),
        float(len(nums)),
        math.log1p(sum(map(len, nums))),
        digits / n,
        100.0 * len(_OPS.findall(text)) / n,
        float(bool(_MATH.search(text))),
        float(len(choice_lens)),
        sum(choice_lens) / len(choice_lens) if choice_lens else 0.0,
        float(max(choice_lens, default=0)),
        float(bool(_NEGATED.search(text))),
        float("Statement 1" in text),
        float(bool(_ROMAN.search(text))),
        float(_WHICH.search(text, low)),
        float(bool(_CODE.search(text))),
        float(text.count("%")),
        float(len(lines)),
        float(questions),
        float(len(_SENTENCE_END.findall(stem))),
        sum(map(str.isupper, map(_FIRST, words))) / max(1, n_words),
        sum(map(len, words)) / n_words if words else 0.0,
        float(_WH.count(text, low)),
        # the extra (cross-domain) features
        float(max(questions, items)),
        float(items),
        float(len([b for b in _PARAGRAPH_BREAK.split(text) if b.strip()])),
        len(others) / n,
        non_latin / max(1, letters),
        float("```" in text),
        float(_IMPERATIVE.match(text, low)),
    ] + [fired[s] for s in RULE_SIGNALS]


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
    rows = np.array([_row(t) for t in texts], dtype=np.float32)
    names = tuple(names)
    if names == ALL_FEATURE_NAMES:
        return rows
    return rows[:, [ALL_FEATURE_NAMES.index(n) for n in names]]
