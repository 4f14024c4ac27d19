"""A keyword and structure rule: P(needs cloud) from what the request asks, no model (0 ms).

In the spirit of LiteLLM's complexity router (weighted keyword groups plus structure), written
from scratch here. A request's points are the sum of the :data:`WEIGHTS` of the signals it
shows; the score is ``sigmoid(points - OFFSET)``, so a request with no signal scores
``sigmoid(-1.5) = 0.18`` and one with two strong signals (code and math) about 0.92.

| signal | weight | fires when the text ... |
|---|---|---|
| ``code`` | 2.0 | has a code fence, a ``def``/``class``/``#include``/``function`` line, or names a language or a programming task (python, sql, regex, compile, refactor, ...) |
| ``math`` | 2.0 | has LaTeX or math symbols, an equation (``x = 3``, ``2 + 2``), or math words (solve, integral, probability, ...) |
| ``arithmetic`` | 0.75 | has three or more numbers (word problems) |
| ``reasoning`` | 1.0 | asks for reasoning (why, prove, step by step, analyse, compare, what if, riddle, ...) |
| ``technical`` | 0.75 | uses technical vocabulary (algorithm, architecture, latency, database, ...) |
| ``constraints`` | 0.5 | sets constraints on the answer (must, exactly, at least, without using, format as, ...) |
| ``multi_part`` | 0.5 | per ask beyond the first (at most 3): asks several questions or lists numbered/bulleted items |
| ``long`` | 1.0 | times ``min(1, log(1 + words) / log(400)) - 0.5``: long texts gain up to half a point, short ones lose up to half |
| ``simple`` | -1.5 | is a greeting, a thank-you, a lookup (capital of, who is, define, translate) or a rewrite (rephrase, summarise, fix the grammar) |

The weights are round numbers set by hand from what the field reports makes a weak model fail
(code, math, multi-step reasoning, long structured asks) and what it does well (chit-chat,
lookups, rewriting); they were not fitted to any evaluation set. ``bench/quality.py``
reports the rule as a baseline under leave-one-family-out evaluation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from .artifact import CARD_FILE, Artifact
from .caseless import Caseless, lowered

__all__ = ["WEIGHTS", "OFFSET", "rule_signals", "rule_points", "rule_score", "RuleScorer", "rules_card_dir"]

WEIGHTS = {"code": 2.0, "math": 2.0, "arithmetic": 0.75, "reasoning": 1.0, "technical": 0.75,
           "constraints": 0.5, "multi_part": 0.5, "long": 1.0, "simple": -1.5}
OFFSET = 1.5

_CODE = Caseless(r"```|^\s*(def|class|import|from \w+ import|#include|function|public static|SELECT|CREATE TABLE)\b"
                 r"|\b(python|javascript|typescript|java|c\+\+|c#|golang|rust|sql|bash|regex|html|css|json|yaml|api"
                 r"|compile[rsd]?|debug|refactor|stack ?trace|exception|function|script|program(ming)?|code|coding"
                 r"|algorithm to|unit tests?)\b", re.MULTILINE)
_MATH = Caseless(r"\\frac|\\sqrt|\\int|\$[^$\n]+\$|[√∫∑≤≥≠π]|\b\d+\s*[-+*/^]\s*\d+|\b[a-z]\s*=\s*-?\d"
                 r"|\b(solve|equation|integral|derivative|calculate|compute|probability|theorem|prove that|matrix"
                 r"|polynomial|logarithm|factorial|prime numbers?|geometry|algebra|how many|how much|percent(age)?)\b")
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_REASONING = Caseless(r"\b(why|prove|step[- ]by[- ]step|reason(ing)?|analy[sz]e|compare|contrast|evaluate|justify"
                      r"|what if|implications?|trade-?offs?|deduce|infer|riddle|puzzle|logic(al)?|pros and cons"
                      r"|critique|argue)\b")
_TECHNICAL = Caseless(r"\b(algorithm|architecture|latency|throughput|database|kubernetes|docker|distributed"
                      r"|concurren\w+|optimi[sz]\w*|neural|gradient|encryption|protocol|compiler|kernel"
                      r"|asymptotic|complexity|quantum|thermodynamic\w*|molecular|statistic\w*)\b")
_CONSTRAINTS = Caseless(r"\b(must|exactly|at least|at most|no more than|without using|in the style of|format(ted)? as"
                        r"|make sure|ensure|only use|word limit|\d+ words)\b")
_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+\S", re.MULTILINE)
_SIMPLE = Caseless(r"^\s*(hi|hello|hey|thanks|thank you|good (morning|evening)|how are you)\b"
                   r"|\b(capital of|who (is|was)|what is the meaning of|define|definition of|translate|synonym"
                   r"|rephrase|paraphrase|summari[sz]e|fix the grammar|correct the grammar|proofread|tl;?dr"
                   r"|tell me a joke)\b")
"""Keyword groups: case-insensitive (:class:`~router.scoring.caseless.Caseless`: lower-cased
ASCII text is matched case-sensitively, the same matches faster)."""


def rule_signals(text: str, words: int, questions: int, low: str | None) -> dict[str, float]:
    """How strongly each signal of :data:`WEIGHTS` fires on ``text`` (0/1; the count of extra
    asks for ``multi_part``; the length term for ``long``), given its number of words
    (``len(text.split())``), of question marks (``text.count("?")``: every ``?`` ends one
    question, :data:`router.scoring.text_features` ``n_questions``) and its lowered form
    (:func:`~router.scoring.caseless.lowered`); pure."""
    asks = max(questions, len(_ITEM.findall(text)))
    return {
        "code": float(_CODE.search(text, low)),
        "math": float(_MATH.search(text, low)),
        "arithmetic": float(len(_NUMBER.findall(text)) >= 3),
        "reasoning": float(_REASONING.search(text, low)),
        "technical": float(_TECHNICAL.search(text, low)),
        "constraints": float(_CONSTRAINTS.search(text, low)),
        "multi_part": min(3.0, max(0, asks - 1)),
        "long": min(1.0, math.log1p(words) / math.log(400)) - 0.5,
        "simple": float(_SIMPLE.search(text, low)),
    }


def rule_points(text: str) -> dict[str, float]:
    """Points of each signal of :data:`WEIGHTS` for one text (0 when the signal is absent)."""
    fired = rule_signals(text, len(text.split()), text.count("?"), lowered(text))
    return {k: WEIGHTS[k] * v for k, v in fired.items()}


def rule_score(text: str) -> float:
    """P(needs cloud) in (0, 1): ``sigmoid(sum of rule_points - OFFSET)``."""
    return 1.0 / (1.0 + math.exp(-(sum(rule_points(text).values()) - OFFSET)))


def rules_card_dir() -> Path:
    """Where the rule's card lives (``router/artifacts/rules/card.json``, written by
    ``slm-router train --model rules``: its metrics and held-out score quantiles)."""
    return Path(str(resources.files("router") / "artifacts" / "rules"))


class RuleScorer:
    """The :class:`router.scoring.base.Scorer` of ``routing.classifier.kind: rules``.

    No model, no embedder: ``score(texts)`` is pure Python (tens of microseconds a text).
    ``artifact`` holds the rule's card (its ``score_quantiles`` serve ``target_cloud_share``),
    loaded on first access.

    Raises (``artifact``):
        FileNotFoundError: the card is missing.
    """

    def __init__(self) -> None:
        self._artifact: Artifact | None = None

    @property
    def artifact(self) -> Artifact:
        """The rule's card as an :class:`router.scoring.artifact.Artifact` without an estimator."""
        if self._artifact is None:
            path = rules_card_dir() / CARD_FILE
            if not path.is_file():
                raise FileNotFoundError(f"the rule's card is missing: {path}")
            self._artifact = Artifact(path.parent, None, json.loads(path.read_text()))
        return self._artifact

    def score(self, texts: Sequence[str]) -> list[float]:
        """P(needs cloud) of each text, in order."""
        return [rule_score(t) for t in texts]

    def warm_up(self) -> None:
        """Nothing to load."""
