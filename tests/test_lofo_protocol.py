"""Leave-one-family-out: families, the out-of-family scores, the paired tables, the goal check,
the transfer model and the protocol on real data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from training.datasets import Example
from training.families import MMLU_GROUPS, family_names, mmlu_group
from training.lofo import family_table, fast_auroc, kfold_scores, lofo_scores
from training.protocol import BASELINES, Recipe, family_weights
from training.report import goal_check, markdown_table, table_json


def _rows(n: int, source: str, rng, signal: float = 1.0) -> tuple[list[Example], np.ndarray]:
    """Synthetic prompts whose first feature predicts that the weak model fails."""
    x = rng.normal(size=n)
    weak = (rng.random(n) > 1 / (1 + np.exp(-signal * x))).astype(float)
    strong = np.maximum(weak, (rng.random(n) < 0.8).astype(float))
    rows = [Example("p" * (5 + i % 50), source, "g", {"w": w, "s": s}, "w", "s") for i, (w, s) in enumerate(zip(weak, strong))]
    return rows, x


def test_mmlu_subjects_fall_in_four_groups_and_families_name_them():
    assert mmlu_group("college_mathematics") == "stem" and mmlu_group("philosophy") == "humanities"
    assert mmlu_group("econometrics") == "social_sciences" and mmlu_group("virology") == "other"
    every = [s for group in MMLU_GROUPS.values() for s in group]
    assert len(every) == len(set(every)) == 57
    rows = [Example("q", "mmlu", "anatomy", {"a": 1, "b": 1}, "a", "b"), Example("q", "gsm8k", "gsm8k", {"a": 1, "b": 1}, "a", "b"),
            Example("q", "sst2", "sst2", {"a": 1, "b": 1}, "a", "b")]
    assert family_names(rows, [None, None, "labels"]).tolist() == ["mmlu-stem", "gsm8k", "labels"]


def test_lofo_never_trains_on_the_family_it_scores():
    fams = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 4)
    seen = []

    def fit_score(train, test):
        assert not set(fams[train]) & set(fams[test]) and len(set(fams[test])) == 1
        assert len(train) + len(test) == len(fams)
        seen.append(fams[test][0])
        return np.full(len(test), float(len(train)))

    out = lofo_scores(fams, fit_score)
    assert seen == ["a", "b", "c"] and out[0] == 7 and out[5] == 9 and out[-1] == 8
    assert kfold_scores(12, lambda tr, te: np.full(len(te), 1.0), k=3).tolist() == [1.0] * 12


def test_family_weights_give_each_family_the_same_total():
    fams = np.array(["a"] * 90 + ["b"] * 10)
    w = family_weights(fams)
    assert w[fams == "a"].sum() == pytest.approx(w[fams == "b"].sum()) and w.mean() == pytest.approx(1.0)


def test_auroc_by_rank_sum_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    s, y = rng.normal(size=300).round(1), rng.random(300) < 0.3
    assert fast_auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(fast_auroc(s, np.zeros(300)))


def test_family_table_pairs_routers_and_the_goal_reads_the_paired_intervals():
    rng = np.random.default_rng(0)
    a, xa = _rows(600, "a", rng, 2.0)
    b, xb = _rows(600, "b", rng, 2.0)
    rows, x = a + b, np.concatenate([xa, xb])
    fams = np.array(["a"] * 600 + ["b"] * 600)
    scores = {"router": x, "random": rng.random(1200), "length": np.array([len(e.prompt) for e in rows], float),
              "rules": rng.random(1200), "logreg": -x, "oracle": np.array([e.gap for e in rows])}
    t = family_table(rows, fams, scores, n_boot=60, compare=["router"])
    for r in scores:
        points = [t.families[f][r]["apgr"][0] for f in ("a", "b")]
        assert t.mean[r][0] == pytest.approx(np.mean(points)) and t.worst[r][0] == min(points)
        lo, hi = t.mean[r][1], t.mean[r][2]
        assert lo <= t.mean[r][0] <= hi
    assert t.families["a"]["router"]["apgr"][0] > 0.6 > t.families["a"]["logreg"]["apgr"][0]
    assert t.families["a"]["oracle"]["apgr"][0] > t.families["a"]["router"]["apgr"][0]
    assert t.diff[("router", "logreg")][1] > 0  # paired interval of the difference above 0
    g = goal_check(t)
    assert g["mean"]["met"] and g["met"] and set(g["families"]) == {"a", "b"}
    assert all(v["best_baseline"] in ("length", "rules", "logreg") for v in g["families"].values())
    worse = goal_check(family_table(rows, fams, {**scores, "router": -x}, n_boot=40, compare=["router"]))
    assert not worse["mean"]["met"] and not worse["families"]["a"]["met"]
    card = table_json(t, "lofo")
    assert card["families"]["a"]["router"]["apgr"][0] == round(t.families["a"]["router"]["apgr"][0], 4)
    assert card["worst"]["router"]["family"] in ("a", "b") and "logreg" in card["diff_vs"]["router"]
    lines = markdown_table(t)
    assert lines[0].startswith("| family | n | router | random") and lines[-1].startswith("| **worst**")


def test_transfer_model_is_linear_in_travelling_features_and_pickles():
    from router.scoring.text_features import ALL_FEATURE_NAMES, FEATURE_NAMES, text_features
    from router.scoring.transfer import TransferRouter

    rng = np.random.default_rng(3)
    texts = ["Write a Python function to sort a list." if i % 2 else "hi there" for i in range(200)]
    emb = rng.normal(size=(200, 8)).astype(np.float32)
    x = np.hstack([emb, text_features(texts, ALL_FEATURE_NAMES)])
    y = np.array([i % 2 for i in range(200)], dtype=float)
    cent = np.eye(3, 8, dtype=np.float32)
    model = TransferRouter(8, cent, ALL_FEATURE_NAMES, C=1.0).fit(x, y)
    s = model.predict(x)
    assert s[1] > s[0] and s.shape == (200,)
    assert len(model.coef_) == 3 + len(ALL_FEATURE_NAMES) and not hasattr(model, "group_means")
    again = pickle.loads(pickle.dumps(model))
    assert np.allclose(again.predict(x[:5]), s[:5])
    assert np.allclose(text_features(texts[:3], FEATURE_NAMES), text_features(texts[:3], ALL_FEATURE_NAMES)[:, :len(FEATURE_NAMES)])
    with pytest.raises(ValueError, match="unknown text feature"):
        text_features(["x"], ["nope"])
    ridge = TransferRouter(8, cent, ALL_FEATURE_NAMES, regression=True, embedding_weight=0.5).fit(x, y)
    assert len(ridge.coef_) == 3 + len(ALL_FEATURE_NAMES) + 8


def test_type_prior_ranks_hard_task_types_above_easy_ones_and_drop_names_features():
    from router.scoring.text_features import ALL_FEATURE_NAMES
    from router.scoring.transfer import EASY_TYPES, HARD_TYPES, MULTIPLE_CHOICE, TransferRouter, expand_drop
    from training.task_types import TYPE_NAMES

    # the prior's rows of the centroids are the types training.task_types names hard and easy
    assert [TYPE_NAMES[i] for i in HARD_TYPES] == ["code", "math", "reasoning"]
    assert [TYPE_NAMES[i] for i in EASY_TYPES] == ["writing", "chit_chat", "knowledge"]
    rng = np.random.default_rng(4)
    cent = np.eye(len(TYPE_NAMES), 16, dtype=np.float32)
    emb = np.zeros((40, 16), dtype=np.float32)
    emb[:20, HARD_TYPES[0]] = 1.0  # nearest "code"
    emb[20:, EASY_TYPES[1]] = 1.0  # nearest "chit_chat"
    x = np.hstack([emb, rng.normal(size=(40, len(ALL_FEATURE_NAMES))).astype(np.float32)])
    y = rng.normal(size=40)  # nothing to learn: the prior decides
    # the learned part has unit spread on the training rows; the prior adds its weight in standard deviations
    plain = TransferRouter(16, cent, ALL_FEATURE_NAMES, regression=True, C=0.01, use_task_type=False).fit(x, y)
    typed = TransferRouter(16, cent, ALL_FEATURE_NAMES, regression=True, C=0.01, use_task_type=False,
                           type_prior_weight=10.0).fit(x, y)
    assert typed.predict(x)[:20].min() > typed.predict(x)[20:].max()
    assert np.allclose(typed.predict(x) - plain.predict(x), np.where(np.arange(40) < 20, 10.0, -10.0))
    assert np.allclose(pickle.loads(pickle.dumps(typed)).predict(x), typed.predict(x))
    assert expand_drop("multiple_choice, log_chars") == [*MULTIPLE_CHOICE, "log_chars"]
    with pytest.raises(ValueError, match="unknown text feature"):
        expand_drop("choices,nope")
    dropped = TransferRouter(16, cent, ALL_FEATURE_NAMES, C=1.0, drop=MULTIPLE_CHOICE)
    assert not set(MULTIPLE_CHOICE) & set(dropped.input_names())


def test_bounded_inputs_support_and_embedding_logreg():
    """Issue 18d: inputs clipped at ``clip``; a feature the training rows almost never vary on gets no
    say; the embedding logistic regression adds its standardised decision value at its weight."""
    from router.scoring.text_features import ALL_FEATURE_NAMES
    from router.scoring.transfer import TransferRouter

    rng = np.random.default_rng(7)
    cent = np.eye(3, 8, dtype=np.float32)
    n = 400
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    text = rng.normal(size=(n, len(ALL_FEATURE_NAMES))).astype(np.float32)
    rare = ALL_FEATURE_NAMES.index("mean_word_chars")
    text[:, rare] = 0.0
    text[:2, rare] = 1.0  # varies on 0.5% of the rows
    x = np.hstack([emb, text])
    y = emb[:, 0] + 0.1 * rng.normal(size=n)  # the gap follows the first embedding dimension
    plain = TransferRouter(8, cent, ALL_FEATURE_NAMES, regression=True, C=1.0, use_task_type=False).fit(x, y)
    bounded = TransferRouter(8, cent, ALL_FEATURE_NAMES, regression=True, C=1.0, use_task_type=False, clip=2.0,
                             min_support=0.01).fit(x, y)
    assert plain.support_ is None and not bounded.support_[rare] and bounded.support_.sum() == len(ALL_FEATURE_NAMES) - 1
    far = x[:1].copy()
    far[0, 8 + rare] = 1e6  # a chat prompt far outside the training range on the rare feature
    assert bounded.predict(far) == pytest.approx(bounded.predict(x[:1]))
    assert abs(bounded._standardise(bounded._features(far * 1e3))).max() <= 2.0
    with_lr = TransferRouter(8, cent, ALL_FEATURE_NAMES, regression=True, C=1.0, use_task_type=False,
                             embedding_logreg_weight=2.0).fit(x, y)
    d = (x[:, :8].astype(np.float64) @ with_lr.elr_coef_ - with_lr.elr_mean_) / with_lr.elr_scale_
    assert np.allclose(with_lr.predict(x) - plain.predict(x), 2.0 * d)
    assert np.corrcoef(d, emb[:, 0])[0, 1] > 0.9  # it learned "gap > 0" from the embedding
    assert np.allclose(pickle.loads(pickle.dumps(with_lr)).predict(x), with_lr.predict(x))


def test_groups_graded_below_chance_are_not_trained_on_but_still_scored():
    from training.protocol import fit_score_fn, trusted_rows

    rng = np.random.default_rng(3)
    good, _ = _rows(200, "a", rng)
    broken = [Example(f"q{i}", "a", "broken", {"w": float(i % 3 == 0), "s": 0.0}, "w", "s") for i in range(60)]
    rows = good + broken
    keep = trusted_rows(rows, 0.25)
    assert keep[:200].all() and not keep[200:].any() and trusted_rows(rows, 0.0).all()
    seen = []
    import training.protocol as protocol
    from router.scoring.text_features import ALL_FEATURE_NAMES

    real = protocol.fit_model

    def spy(model, inputs, y, groups, sample_weight=None):
        seen.append(set(groups.tolist()))
        return real(model, inputs, y, groups, sample_weight)

    protocol.fit_model = spy
    try:
        x = rng.normal(size=(len(rows), 4 + len(ALL_FEATURE_NAMES)))
        fams = np.array(["f"] * len(rows))
        fn = fit_score_fn(Recipe("transfer", "gap", {"C": 1.0}, min_group_strong=0.25), x, rows, fams, 4,
                          np.eye(3, 4, dtype=np.float32))
        scores = fn(np.arange(len(rows)), np.arange(len(rows)))
    finally:
        protocol.fit_model = real
    assert seen == [{"a/g"}] and len(scores) == len(rows)  # fitted without the broken group, scored on it
    assert "below 0.25 not trained on" in Recipe(min_group_strong=0.25).describe()


def test_recipe_says_what_it_trains():
    r = Recipe(params={"C": 0.1}, exclude=("alpaca_eval",))
    assert r.describe() == "transfer on needs_strong (C=0.1), families weighted equally, not trained on alpaca_eval"
    assert BASELINES == ("random", "length", "rules", "logreg", "oracle")


def test_protocol_on_real_families_scores_every_family_out_of_family(data_dir, tmp_path, monkeypatch):
    from router.scoring.text_features import ALL_FEATURE_NAMES
    from training.assess import assess
    from training.families import load_with_families
    from training.train import prepare_inputs, task_centroids

    monkeypatch.setenv("SLM_ROUTER_CACHE", str(tmp_path))
    monkeypatch.setenv("SLM_ROUTER_DATA", str(data_dir))

    rows, fams = load_with_families("gsm8k,arc,winogrande,mbpp")
    keep = np.concatenate([np.nonzero(fams == f)[0][:150] for f in ("gsm8k", "arc", "winogrande", "mbpp")])
    rows, fams = [rows[i] for i in keep], fams[keep]
    x, dim = prepare_inputs(rows, "static", progress=False, names=ALL_FEATURE_NAMES)  # the sub-ms embedder
    cent = task_centroids("static")
    found = assess(rows, fams, x, dim, Recipe(params={"C": 0.1}), cent, k=3, n_boot=30, protocols=("lofo", "kfold"))
    assert list(found.lofo.families) == ["gsm8k", "arc", "winogrande", "mbpp"]
    assert not np.isnan(found.lofo_raw).any() and found.unseen_subject is None
    for fam, e in found.lofo.families.items():
        assert e["n"] == 150 and set(BASELINES) | {"router"} <= set(e)
        assert e["oracle"]["apgr"][0] > 1.0 > e["random"]["apgr"][0]
