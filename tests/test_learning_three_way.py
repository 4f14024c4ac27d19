"""The judge's three-way verdict as a label (pure): better / same / worse become a gain of
-1 / 0 / +1 and a fit target of (1 + gain) / 2, old binary logs still read as before, the
candidate fits the ranking APGR on outcomes rewards (where the binary label misleads it),
and the recorded judge of the benches answers the three-way prompt from recorded outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from bench.recorded_tiers import Recorded, RecordedTiers, outcome_of, question_of
from router.learning.candidate import fit_candidate
from router.learning.evaluate import weighted_apgr
from router.learning.labels import build_labels
from router.ledger.judge import ORDERS, decide_verdict, judge_messages
from router.store.records import RequestRecord, ShadowRecord


def _record(i: int, ts: float, local: bool = True) -> RequestRecord:
    v = np.random.default_rng(i).normal(size=8).astype(np.float32)
    from router.learning.keep import kept_inputs

    return RequestRecord(f"r{i}", ts, requested_model="auto", routed_tier="local" if local else "cloud",
                         tier="local" if local else "cloud", local=local, score=0.3, threshold=0.5,
                         learning=kept_inputs("embedding", v, {"f": 1.0}, "e", None))


def test_three_way_verdicts_are_gains_and_targets_and_old_binary_logs_read_as_before():
    records = [_record(i, float(i), local=i != 3) for i in range(5)]
    shadows = [ShadowRecord("r0", 0.1, "shadow", judge_verdict=True, judge_outcome="better", sample_p=0.5),
               ShadowRecord("r1", 1.1, "shadow", judge_verdict=True, judge_outcome="same", sample_p=1.0),
               ShadowRecord("r2", 2.1, "shadow", judge_verdict=False, judge_outcome="worse", sample_p=1.0),
               ShadowRecord("r3", 3.1, "local_shadow", judge_verdict=True, judge_outcome="better", sample_p=0.25),
               ShadowRecord("r4", 4.1, "shadow", judge_verdict=True, sample_p=1.0)]  # BETTER and SAME: binary only
    labels = build_labels(records, shadows)
    got = {lb.request_id: (lb.needs_cloud, lb.cloud_gain, lb.three_way, lb.weight) for lb in labels.labels}
    assert got == {"r0": (0, -1, True, 2.0), "r1": (0, 0, True, 1.0), "r2": (1, 1, True, 1.0),
                   "r3": (0, -1, True, 4.0), "r4": (0, 0, False, 1.0)}
    assert labels.three_way and list(labels.gains()) == [-1, 0, 1, -1, 0]
    assert list(labels.targets()) == [0.0, 0.5, 1.0, 0.0, 0.5]  # a binary "as good" beside three-way ones: 0.5
    old = [ShadowRecord(s.request_id, s.ts, s.kind, judge_verdict=s.judge_verdict, sample_p=s.sample_p)
           for s in shadows]  # a log written before the three-way verdict
    old_labels = build_labels(records, old)
    assert not old_labels.three_way
    assert list(old_labels.targets()) == [0.0, 0.0, 1.0, 0.0, 0.0] == list(old_labels.arrays(["f"])[1])
    assert list(old_labels.gains()) == [0.0, 0.0, 1.0, 0.0, 0.0]


class _Blind:
    """A prior that knows nothing (P = 0.5 for every row)."""

    def predict_proba(self, rows):
        return np.column_stack([np.full(len(rows), 0.5), np.full(len(rows), 0.5)])


def _two_topics(n: int, seed: int):
    """Topic 1: the local answer worse 45%, better 45%, as good 10% (the cloud gains 0 on
    average); topic 0: worse 30%, as good 70% (the cloud gains +0.3). The binary label
    (worse or not) says topic 1 needs the cloud more; the outcomes say topic 0 does."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, n)
    dim = 16
    X = np.hstack([rng.normal(size=(n, dim)) + 2.0 * topic[:, None] * np.eye(dim)[0],
                   rng.normal(size=(n, 2))]).astype(np.float32)
    u = rng.uniform(size=n)
    gain = np.where(topic == 1, np.where(u < 0.45, 1, np.where(u < 0.9, -1, 0)), np.where(u < 0.3, 1, 0))
    return X, gain.astype(float), topic, dim


def test_the_three_way_target_ranks_as_apgr_on_outcomes_and_the_binary_one_does_not():
    X, gain, topic, dim = _two_topics(1200, seed=0)
    prior = np.full(len(gain), 0.5)
    three, choice3 = fit_candidate(X, (1 + gain) / 2, np.ones(len(gain)), prior, _Blind(), True, dim)
    binary, choice2 = fit_candidate(X, (gain > 0).astype(float), np.ones(len(gain)), prior, _Blind(), True, dim)
    assert choice3.blocks == "all" and choice2.blocks == "all"
    Xt, gt, tt, _ = _two_topics(2000, seed=1)  # later traffic
    p3 = three.predict_proba(Xt, np.full(len(gt), 0.5))[:, 1]
    p2 = binary.predict_proba(Xt, np.full(len(gt), 0.5))[:, 1]
    assert p3[tt == 0].mean() > p3[tt == 1].mean()  # sends the topic where the cloud gains first
    assert p2[tt == 1].mean() > p2[tt == 0].mean()  # follows "worse" and sends the other one first
    w = np.ones(len(gt))
    assert weighted_apgr(p3, gt, w) > weighted_apgr(p2, gt, w) + 0.1  # APGR on the outcomes (gains)
    # three-way noise: the prior is kept (the noise property of the binary labels holds)
    noise = np.random.default_rng(2).integers(-1, 2, len(gain)).astype(float)
    _, noise_choice = fit_candidate(X, (1 + noise) / 2, np.ones(len(gain)), prior, _Blind(), True, dim)
    assert noise_choice.blocks == "prior"
    _, few = fit_candidate(X[:30], (1 + gain[:30]) / 2, np.ones(30), prior[:30], _Blind(), True, dim)
    assert few.blocks == "prior" and "too few" in few.why


@pytest.mark.parametrize("weak,strong,outcome", [
    (0.0, 1.0, "worse"), (1.0, 0.0, "better"), (1.0, 1.0, "same"), (0.0, 0.0, "same"),  # correctness
    (0.02, 0.5, "worse"), (0.95, 0.5, "better"), (0.45, 0.5, "same"),  # AlpacaEval: preference vs 0.5
])
def test_recorded_outcomes_give_the_three_way_verdict(weak, strong, outcome):
    assert outcome_of(weak, strong) == outcome


def test_recorded_judge_reads_the_request_its_prompt_quotes_and_answers_three_way():
    short, longer = "What is 2+2?", "What is 2+2? Explain each step."
    # the shorter prompt is a substring of the longer one: only reading the quoted request finds the right item
    tiers = RecordedTiers([Recorded(short, "4", "4", True, "same"), Recorded(longer, "5", "4", False, "worse"),
                           Recorded("Name a prime.", "2", "9", True, "better"), Recorded("Hi", "a", "b", False)])
    for order in ORDERS:
        prompt = judge_messages(longer, local="5", cloud="4", order=order)
        assert question_of(prompt[1]["content"]) == longer
        assert tiers.answer("openai/judge-recorded", prompt) == "WORSE"
        assert tiers.answer("openai/judge-recorded", judge_messages(short, "4", "4", order)) == "SAME"
        assert tiers.answer("openai/judge-recorded", judge_messages("Name a prime.", "2", "9", order)) == "BETTER"
        assert tiers.answer("openai/judge-recorded", judge_messages("Hi", "a", "b", order)) == "NO"  # binary item
        assert tiers.answer("openai/judge-recorded", judge_messages("Unknown?", "a", "b", order)) == "UNSURE"
    replies = [tiers.answer("judge-recorded", judge_messages("Name a prime.", "2", "9", o)) for o in ORDERS]
    v = decide_verdict(replies)
    assert (v.outcome, v.verdict) == ("better", True)
    assert question_of("no request here") is None


def test_report_counts_the_three_way_verdicts_on_the_judge_line():
    from router.analysis.render import build_report, render
    from router.analysis.report import summarize

    records = [RequestRecord(f"r{i}", 1.0 + i, requested_model="auto", routed_tier="local", tier="local", local=True,
                             counterfactual_usd=0.001) for i in range(4)]
    one = [{"order": "cloud_first", "reply": "x"}]
    shadows = [ShadowRecord("r0", 1.0, judge_model="j", judge_verdict=True, judge_outcome="better", judge_replies=one),
               ShadowRecord("r1", 2.0, judge_model="j", judge_verdict=False, judge_outcome="worse", judge_replies=one),
               ShadowRecord("r2", 3.0, judge_model="j", judge_verdict=True, judge_outcome="better", judge_replies=one),
               ShadowRecord("r3", 4.0, judge_model="j", judge_verdict=None, judge_replies=one)]
    assert summarize(records, shadows).judge_outcomes == {"better": 2, "worse": 1}
    line = next(l for l in render(build_report(records, shadows, source="t"), "md").splitlines()
                if l.startswith("| judge |"))
    assert "4 samples, 1 tie/unsure; local better 2 / as good 0 / worse 1" in line
    old = [ShadowRecord(s.request_id, s.ts, judge_model="j", judge_verdict=s.judge_verdict, judge_replies=one)
           for s in shadows]  # a log written before the three-way verdict: the line as before
    line = next(l for l in render(build_report(records, old, source="t"), "md").splitlines()
                if l.startswith("| judge |"))
    assert line.rstrip(" |").endswith("4 samples, 1 tie/unsure")
