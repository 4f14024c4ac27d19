"""The decision path as it was before issue 17's fast path (main at 84f27c6), kept verbatim as the
reference the fast path must equal, score for score (``tests/test_fast_decision.py``).

- :func:`reference_text_features`: the text features as first written (``_one`` and ``_extra`` of
  ``router/scoring/text_features.py``, the keyword rule of ``router/scoring/rules.py``);
- :func:`reference_embeddings`: the static embedder through model2vec's ``StaticModel.encode``;
- :func:`reference_scores`: the transfer model's linear part, its trees walked level by level in
  numpy (``router/scoring/flat_trees.py``) and the Platt mapping, on those inputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

WEIGHTS = {"code": 2.0, "math": 2.0, "arithmetic": 0.75, "reasoning": 1.0, "technical": 0.75,
           "constraints": 0.5, "multi_part": 0.5, "long": 1.0, "simple": -1.5}

_I = re.IGNORECASE
_R_CODE = re.compile(r"```|^\s*(def|class|import|from \w+ import|#include|function|public static|SELECT|CREATE TABLE)\b"
                   r"|\b(python|javascript|typescript|java|c\+\+|c#|golang|rust|sql|bash|regex|html|css|json|yaml|api"
                   r"|compile[rsd]?|debug|refactor|stack ?trace|exception|function|script|program(ming)?|code|coding"
                   r"|algorithm to|unit tests?)\b", _I | re.MULTILINE)
_R_MATH = re.compile(r"\\frac|\\sqrt|\\int|\$[^$\n]+\$|[√∫∑≤≥≠π]|\b\d+\s*[-+*/^]\s*\d+|\b[a-z]\s*=\s*-?\d"
                   r"|\b(solve|equation|integral|derivative|calculate|compute|probability|theorem|prove that|matrix"
                   r"|polynomial|logarithm|factorial|prime numbers?|geometry|algebra|how many|how much|percent(age)?)\b",
                   _I)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_REASONING = re.compile(r"\b(why|prove|step[- ]by[- ]step|reason(ing)?|analy[sz]e|compare|contrast|evaluate|justify"
                        r"|what if|implications?|trade-?offs?|deduce|infer|riddle|puzzle|logic(al)?|pros and cons"
                        r"|critique|argue)\b", _I)
_TECHNICAL = re.compile(r"\b(algorithm|architecture|latency|throughput|database|kubernetes|docker|distributed"
                        r"|concurren\w+|optimi[sz]\w*|neural|gradient|encryption|protocol|compiler|kernel"
                        r"|asymptotic|complexity|quantum|thermodynamic\w*|molecular|statistic\w*)\b", _I)
_CONSTRAINTS = re.compile(r"\b(must|exactly|at least|at most|no more than|without using|in the style of|format(ted)? as"
                          r"|make sure|ensure|only use|word limit|\d+ words)\b", _I)
_R_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+\S", re.MULTILINE)
_R_QUESTION = re.compile(r"[^.!?\n]*\?")
_SIMPLE = re.compile(r"^\s*(hi|hello|hey|thanks|thank you|good (morning|evening)|how are you)\b"
                     r"|\b(capital of|who (is|was)|what is the meaning of|define|definition of|translate|synonym"
                     r"|rephrase|paraphrase|summari[sz]e|fix the grammar|correct the grammar|proofread|tl;?dr"
                     r"|tell me a joke)\b", _I)


def reference_rule_points(text: str) -> dict[str, float]:
    """Points of each signal of :data:`WEIGHTS` for one text (0 when the signal is absent)."""
    words = len(text.split())
    asks = max(len(_R_QUESTION.findall(text)), len(_R_ITEM.findall(text)))
    fired = {
        "code": float(bool(_R_CODE.search(text))),
        "math": float(bool(_R_MATH.search(text))),
        "arithmetic": float(len(_NUMBER.findall(text)) >= 3),
        "reasoning": float(bool(_REASONING.search(text))),
        "technical": float(bool(_TECHNICAL.search(text))),
        "constraints": float(bool(_CONSTRAINTS.search(text))),
        "multi_part": min(3.0, max(0, asks - 1)),
        "long": min(1.0, math.log1p(words) / math.log(400)) - 0.5,
        "simple": float(bool(_SIMPLE.search(text))),
    }
    return {k: WEIGHTS[k] * v for k, v in fired.items()}



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
    points = reference_rule_points(text)
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


def reference_text_features(texts: Sequence[str], names: Sequence[str] = ALL_FEATURE_NAMES) -> np.ndarray:
    """float32 (len(texts), len(names)), as ``text_features`` computed them before the fast path."""
    extra = any(n in EXTRA_FEATURE_NAMES for n in names)
    rows = np.array([_one(t) + (_extra(t) if extra else [0.0] * len(EXTRA_FEATURE_NAMES)) for t in texts],
                    dtype=np.float32)
    return rows[:, [ALL_FEATURE_NAMES.index(n) for n in names]]


def reference_embeddings(texts: Sequence[str]) -> np.ndarray:
    """The static embedding of each text through model2vec (float32 (n, dim), unit norm)."""
    from model2vec import StaticModel

    from router.scoring.static_embedder import static_model_dir

    global _MODEL
    if _MODEL is None:
        _MODEL = StaticModel.from_pretrained(str(static_model_dir()))
    v = np.asarray(_MODEL.encode(list(texts), show_progress_bar=False), dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


_MODEL = None


def _tree_walk(flat, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    rows = np.arange(len(X))[:, None]
    at = np.broadcast_to(flat.roots, (len(X), len(flat.roots))).copy()
    for _ in range(flat.depth):
        x = X[rows, flat.feature[at]]
        go_left = (x <= flat.threshold[at]) | (np.isnan(x) & flat.missing_left[at])
        at = np.where(go_left, flat.left[at], flat.right[at])
    return flat.baseline + flat.value[at].sum(axis=1)


def _transfer_raw(m, X: np.ndarray) -> np.ndarray:
    """``TransferRouter.predict`` before the fast path (the keyword prior left out: the shipped model has none)."""
    from router.scoring.flat_trees import FlatTrees
    from router.scoring.transfer import LOG_FEATURES

    X = np.asarray(X, dtype=np.float32)
    emb = X[:, : m.dim]
    cols = []
    if m.use_task_type:
        cols.append(emb @ m.centroids.T)
    if m.use_text:
        keep = [i for i, n in enumerate(m.feature_names) if n not in m.drop]
        text = X[:, m.dim:][:, keep].astype(np.float64)
        logs = [j for j, i in enumerate(keep) if m.feature_names[i] in LOG_FEATURES]
        text[:, logs] = np.log1p(np.maximum(text[:, logs], 0.0))
        cols.append(text)
    if m.embedding_weight > 0:
        cols.append(emb)
    F = np.hstack(cols).astype(np.float64)
    Z = np.clip((F - m.mean_) / m.scale_, -m.clip, m.clip)
    if m.support_ is not None:  # issue 18d: features the training rows almost never vary on are left out
        Z[:, ~m.support_] = 0.0
    if m.embedding_weight > 0:
        Z[:, -m.dim:] *= m.embedding_weight
    out = (Z @ m.coef_ + m.intercept_) / m.linear_scale_
    if m.embedding_logreg_weight:  # issue 18d: the embedding logistic regression beside the linear model
        d = emb.astype(np.float64) @ m.elr_coef_
        out = out + m.embedding_logreg_weight * (d - m.elr_mean_) / m.elr_scale_
    assert not m.prior_weight
    if m.type_prior_weight:  # issue 18: the fixed task-type prior (hard types minus easy ones)
        from router.scoring.transfer import EASY_TYPES, HARD_TYPES

        sims = emb @ m.centroids.T
        prior = sims[:, list(HARD_TYPES)].mean(axis=1) - sims[:, list(EASY_TYPES)].mean(axis=1)
        out = out + m.type_prior_weight * (prior - m.type_prior_mean_) / m.type_prior_scale_
    if m.trees_ is not None:
        small = Z[:, : Z.shape[1] - (m.dim if m.embedding_weight > 0 else 0)]
        out = out + _tree_walk(FlatTrees.of(m.trees_), small) / m.trees_scale_
    return out


def reference_scores(artifact, texts: Sequence[str]) -> np.ndarray:
    """P(needs cloud) of each text under ``artifact`` (a static-embedder transfer artifact), float64 (n,)."""
    names = artifact.card["text_features"]
    inputs = np.hstack([reference_embeddings(texts), reference_text_features(texts, names)])
    est = artifact.estimator
    raw = _transfer_raw(est.model, inputs)
    a, b = est.platt
    z = np.clip(a * np.asarray(raw, dtype=float) + b, -50, 50)
    return 1.0 / (1.0 + np.exp(-z))


def reference_strip_router_directives(text: str) -> str:
    """``router.request.features.strip_router_directives`` before issue 17 (the full pattern searched)."""
    from router.request.features import ROUTER_DIRECTIVE

    if not text or not ROUTER_DIRECTIVE.search(text):
        return text
    kept = []
    for line in text.split("\n"):
        left = ROUTER_DIRECTIVE.sub("", line)
        if left.strip() or not line.strip():
            kept.append(left)
    return "\n".join(kept)
