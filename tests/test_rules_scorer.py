"""The keyword/structure rule: its scores, its documented weights, and ``routing.classifier.kind: rules``."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from router.scoring import SCORER_KINDS, make_scorer
from router.scoring import rules
from router.scoring.rules import OFFSET, WEIGHTS, RuleScorer, rule_points, rule_score


def test_hard_asks_score_above_easy_ones():
    hard = ["Write a Python function that merges two sorted lists and add unit tests.",
            "Solve for x: 3x^2 - 12x + 9 = 0 and explain why step by step.",
            "A shop sells 12 pens for $3 and 5 books for $40. How much do 7 pens and 2 books cost?"]
    easy = ["hi!", "Thanks a lot", "What is the capital of France?", "Rephrase this sentence to sound friendlier."]
    assert min(rule_score(t) for t in hard) > 0.6 > 0.5 > 0.1 > max(rule_score(t) for t in easy)  # one strong signal is enough at 0.5
    assert rule_score("Why is the sky blue?") > rule_score("Tell me a joke")
    assert rule_points("1. What is X?\n2. What is Y?\n3. Why?")["multi_part"] == 2 * WEIGHTS["multi_part"]
    # no signal at all: sigmoid(-OFFSET) less the half point a short text loses
    assert rule_score("ok") < 1 / (1 + 2.718281828 ** OFFSET)


def test_documented_weights_are_the_weights():
    """The module docstring's table names every weight the code uses, with its value."""
    table = dict(re.findall(r"^\| ``(\w+)`` \| (-?[\d.]+)", rules.__doc__, re.MULTILINE))
    assert set(table) == set(WEIGHTS)
    assert all(float(table[k]) == WEIGHTS[k] for k in WEIGHTS)


def test_rule_scorer_is_fast_and_needs_no_model():
    scorer = RuleScorer()
    texts = ["Implement quicksort in C++ and analyse its complexity."] * 200
    t = time.perf_counter()
    scores = scorer.score(texts)
    per_text_ms = (time.perf_counter() - t) * 1000 / len(texts)
    assert len(scores) == 200 and per_text_ms < 1.0
    assert not hasattr(scorer, "embedder")
    card = scorer.artifact.card
    q = [card["score_quantiles"][f"{s:.1f}"] for s in (0.1, 0.5, 0.9)]
    assert q[0] >= q[1] >= q[2] and card["weights"] == WEIGHTS


def test_policy_kind_rules_routes_with_the_rule():
    from router.pipeline import Router
    from router.policy import policy_from_dict
    from router.request.parse import parse_chat_request
    from router.store.sqlite import SQLiteStore

    assert set(SCORER_KINDS) == {"embedding", "rules"}
    policy = policy_from_dict({
        "tiers": {"local": {"model": "openai/small", "api_key": "sk-test", "api_base": "http://127.0.0.1:9",
                            "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test"}},
        "routing": {"classifier": {"kind": "rules", "threshold": 0.5}},
        "escalation": {"enabled": False},
    })
    assert isinstance(make_scorer(policy.routing.classifier), RuleScorer)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        router = Router(policy, SQLiteStore(Path(tmp) / "log.sqlite3"))
        assert isinstance(router.scorer, RuleScorer)

        async def tiers():
            out = []
            for text in ("hello there", "Write a Python function to solve x^2 = 2 with Newton's method."):
                req = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": text}]})
                out.append((await router.decide(req)).tier)
            await router.close()
            return out

        assert asyncio.run(tiers()) == ["local", "cloud"]


def test_rules_card_matches_the_code():
    card = RuleScorer().artifact.card
    assert card["kind"] == "rules" and card["offset"] == OFFSET
    fams = card["metrics"]["families"]
    assert {"gsm8k", "mmlu-stem"} <= set(fams) and all("router" in e and "length" in e for e in fams.values())


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_text_scores_low(bad):
    assert 0.0 < rule_score(bad) < 0.2
