"""Cascade building blocks: answer signals, self-check reading, graders, label tasks on the
real shared data, the combiner's formula and the cost/quality simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from router.cascade.verdict import p_correct, should_escalate
from router.policy import EscalationConfig, EscalationOverride
from router.cascade.measures.self_check import CHECK_QUESTION, p_yes, self_check_messages
from router.cascade.signals import AnswerSignals, agreement, extract, is_refusal, quantile, repetition_share


def test_extract_logprob_statistics_and_margins():
    lps = [-0.1, -2.0, -0.5, -0.3]
    top = [[("a", -0.1), ("b", -2.4)], [("c", -1.5), ("d", -2.0)], [("e", -0.5), ("f", -1.0)], [("g", -0.3)]]
    s = extract("Paris is the capital", lps, "stop", None, top)
    assert s.n_tokens == 4
    assert s.mean_logprob == pytest.approx(-0.725)
    assert s.min_logprob == -2.0 and s.first_logprob == -0.1
    assert s.p50_logprob == pytest.approx(float(np.quantile(lps, 0.5)))
    assert s.p10_logprob == pytest.approx(float(np.quantile(lps, 0.1)))
    # margins only over tokens with two alternatives: 2.3, 0.5, 0.5
    assert s.mean_margin == pytest.approx((2.3 + 0.5 + 0.5) / 3)
    assert s.min_margin == pytest.approx(0.5)
    assert not s.finish_length and not s.empty and not s.refusal and s.format_error is None


def test_extract_flags_and_missing_logprobs():
    loop = "the cat sat down " * 12
    s = extract(loop, None, "length", {"type": "json_object"})
    assert s.mean_logprob is None and s.n_tokens == 0
    assert s.finish_length and s.repetition > 0.8
    assert s.format_error == "answer is not valid JSON"
    assert s.value("mean_logprob") == -0.75  # neutral stand-in for an unmeasured signal
    assert s.value("finish_length") == 1.0 and s.value("format_error") == 1.0
    assert extract("   ", [], "stop").empty
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("I don't know the answer.")
    assert not is_refusal("The answer is 42.")
    assert repetition_share("one two three four five six") == 0.0
    assert quantile([1.0, 2.0, 3.0], 0.5) == 2.0
    with pytest.raises(KeyError):
        s.value("nonsense")


def test_agreement_is_squad_f1():
    assert agreement("The Eiffel Tower.", "eiffel tower") == 1.0
    assert agreement("Paris", "London") == 0.0
    assert agreement("New York City", "New York") == pytest.approx(0.8)
    assert agreement("", "") == 1.0 and agreement("", "x") == 0.0


def test_p_yes_normalises_yes_and_no_variants():
    top = [("Yes", math.log(0.5)), (" yes", math.log(0.1)), ("No", math.log(0.2)), ("The", math.log(0.15))]
    assert p_yes(top) == pytest.approx(0.6 / 0.8)
    assert p_yes([("Maybe", -0.1)]) is None
    assert p_yes(None) is None
    turns = self_check_messages([{"role": "user", "content": "2+2?"}], "4")
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == "4" and turns[2]["content"] == CHECK_QUESTION


def _signals(**kw) -> AnswerSignals:
    base = extract("Paris", [-0.2, -0.3], "stop", None, [[("a", -0.2), ("b", -1.0)], [("c", -0.3), ("d", -2.0)]])
    return base.with_extra(**kw)


def test_should_escalate_thresholds_flags_and_combiner():
    ok = _signals(self_check=0.9)
    cfg = EscalationConfig()
    assert not should_escalate(ok, cfg).escalate
    assert should_escalate(ok, EscalationConfig(min={"self_check": 0.95})).reason == "self_check 0.90 < 0.95"
    assert should_escalate(ok, EscalationConfig(max={"log_tokens": 0.5})).escalate
    # an unmeasured signal breaks no threshold
    assert not should_escalate(_signals(), EscalationConfig(min={"self_check": 0.95})).escalate
    refusal = extract("I'm sorry, I cannot answer that.", [-0.1], "stop")
    assert not should_escalate(refusal, cfg).escalate
    assert should_escalate(refusal, EscalationConfig(escalate_on=["refusal"])).escalate
    assert not should_escalate(refusal, EscalationConfig(enabled=False, escalate_on=["refusal"])).escalate
    combiner = {"signals": ["self_check", "router_score"], "weights": [4.0, -4.0], "intercept": 0.0,
                "min_p_correct": 0.5}
    with_comb = EscalationConfig(combiner=combiner)
    keep = should_escalate(ok, with_comb, router_score=0.2)
    assert not keep.escalate and keep.p_correct == pytest.approx(1 / (1 + math.exp(-(3.6 - 0.8))))
    esc = should_escalate(_signals(self_check=0.1), with_comb, router_score=0.9)
    assert esc.escalate and esc.reason.startswith("P(correct) ")


def test_override_merges_onto_policy_escalation():
    base = EscalationConfig(min={"self_check": 0.5}, combiner={"signals": ["mean_logprob"], "weights": [1.0],
                                                               "min_p_correct": 0.4})
    merged = EscalationOverride(min={"consistency": 0.3}, min_p_correct=0.7, max_share=0.2).apply(base)
    assert merged.min == {"self_check": 0.5, "consistency": 0.3}
    assert merged.combiner.min_p_correct == 0.7 and merged.max_share == 0.2
    assert base.combiner.min_p_correct == 0.4  # the policy itself is unchanged
    with pytest.raises(ValueError, match="did you mean 'self_check'"):
        EscalationConfig(min={"self_chek": 0.5})
    with pytest.raises(ValueError, match="weights has 1 values for 2 signals"):
        EscalationConfig(combiner={"signals": ["mean_logprob", "self_check"], "weights": [1.0]})


def test_fitted_combiner_config_reproduces_the_sklearn_model():
    from training.cascade import _model, fit_combiner

    rng = np.random.default_rng(0)
    names = ["mean_logprob", "self_check", "router_score"]
    X = np.column_stack([rng.normal(-1, 0.5, 400), rng.uniform(0, 1, 400), rng.uniform(0, 1, 400)])
    y = (X[:, 0] + X[:, 1] - X[:, 2] + rng.normal(0, 0.3, 400) > -0.9).astype(int)
    cfg = fit_combiner(X, y, names)
    reference = _model().fit(X, y).predict_proba(X)[:, 1]
    for i in range(0, 400, 37):
        sig = extract("x", [X[i, 0]], "stop").with_extra(self_check=X[i, 1])
        assert p_correct(cfg, sig, router_score=X[i, 2]) == pytest.approx(reference[i], abs=1e-4)
    assert cfg.weights[0] > 0 and cfg.weights[2] < 0  # signs follow the data


def test_simulation_counts_cost_and_quality():
    from training.cascade import Costs, best_point, simulate

    local_ok = np.array([1, 0, 1, 0], float)
    cloud_ok = np.ones(4)
    costs = Costs(local=np.full(4, 0.001), check=np.full(4, 0.0005), cloud=np.full(4, 0.01))
    router = np.array([0.1, 0.9, 0.2, 0.3])
    p = np.array([0.9, 0.5, 0.8, 0.2])
    point = simulate(router, p, local_ok, cloud_ok, costs, t_router=0.5, t_escalate=0.5)
    # request 1 goes to the cloud; request 3 is escalated (p 0.2 < 0.5) after a local answer + checks
    assert point.quality == 1.0 and point.cloud_share == 0.5 and point.escalated_share == 0.25
    assert point.cost_usd == pytest.approx(0.01 + 3 * 0.0015 + 0.01)
    best = best_point(router, p, local_ok, cloud_ok, costs, target=0.95)
    assert best is not None and best.quality_vs_cloud >= 0.95 and best.cost_usd <= point.cost_usd


def test_graders():
    from training.label_tasks import LabelItem, extract_letter, grade, last_number

    assert extract_letter("B") == "B" and extract_letter("(C) because") == "C"
    assert extract_letter("The answer is D.") == "D" and extract_letter("A. Iron") == "A"
    assert extract_letter("I think so") is None
    assert last_number("so 3 + 4 = 7.\n#### 1,234") == "1234" and last_number("12.50 dollars") == "12.5"
    choice = LabelItem("t:1", "t", [], ("negative",), "choice", choices={"positive": ("positive",),
                                                                          "negative": ("negative",)})
    assert grade(choice, "Negative. Not positive at all")
    assert not grade(choice, "It is positive, not negative")
    qa = LabelItem("t:2", "t", [], ("Bobby Scott", "Bob Russell"), "contains")
    assert grade(qa, "The lyrics were written by Bob Russell.") and not grade(qa, "Bob")


def test_label_tasks_load_real_data_and_grade_their_gold(data_dir):
    from training.label_tasks import TASKS, grade, load_items

    for name in TASKS:
        items = load_items([name], data_dir, limit=30)
        assert len(items) == 30, name
        assert len({it.id for it in items}) == 30
        for it in items:
            assert it.messages[-1]["role"] == "user" and it.gold and all(it.gold)
            if it.grader != "contains":  # the gold answer itself is graded right
                answer = {"letter": f"({it.gold[0]})", "choice": (it.choices.get(it.gold[0]) or ("",))[0].title()
                          }.get(it.grader, it.gold[0])
                assert grade(it, answer), (name, it.gold)
    again = load_items(["mmlu"], data_dir, limit=5)
    assert [i.id for i in again] == [i.id for i in load_items(["mmlu"], data_dir, limit=5)]  # seeded
    recorded = [i.recorded for i in load_items(["mmlu", "arc", "winogrande", "gsm8k"], data_dir, limit=20)]
    assert sum(r is not None for r in recorded) >= 75
    with pytest.raises(ValueError, match="unknown label task"):
        load_items(["nope"], data_dir)


def test_read_labels_skips_an_interrupted_last_line_and_names_a_broken_one(tmp_path):
    import json

    from training.label import done_ids, read_labels

    good = {"id": "t:1", "task": "t", "correct": True, "messages": []}
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "t:2"})[:25])  # cut mid-write
    assert [r["id"] for r in read_labels([path])] == ["t:1"] and done_ids(path) == {"t:1"}
    path.write_text(json.dumps(good) + "\n{broken\n" + json.dumps({**good, "id": "t:3"}) + "\n")
    with pytest.raises(ValueError, match=r"labels.jsonl:2: not a JSON label row"):
        read_labels([path])
