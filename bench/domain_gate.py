"""Do calibrated combinations or an out-of-domain gate of the transfer router's parts meet issue 18's per-family goal?

The shipped score is ``ridge + 0.5 elr + 0.1 type`` (:mod:`bench.gated_blend`'s parts: the ridge on the
task-type and text features, the embedding logistic regression and the fixed task-type prior, each
standardised on its training rows). Three ideas are measured here, all leave-one-family-out (LOFO)
on the parts of :func:`gated_blend.all_parts` (fitted without the family scored, AlpacaEval never
trained on, groups graded below chance not trained on):

- **rank / normal-score combination**: each part replaced by its empirical CDF over the training
  rows (``rank``) or that CDF's normal quantile (``nscore``) before the same weighted sum, so no part's
  tail decides a prompt far from the training range;
- **an out-of-domain gate**: a logistic regression on the embedding (C = 0.1, balanced classes) tells
  the training rows (label 1) from Arena-Hard v0.1's 500 unlabelled chat prompts (label 0, no outcome
  is read); its probability ``g`` (the prompt looks like the training data) multiplies the ridge,
  centred on its training mean, so out of domain the score falls back on the embedding logreg and the
  prior (``gate``). ``gate, uncentred`` multiplies the ridge as the parts store it (with its intercept,
  about 1.9 training standard deviations): that is the gate plus about 1.9 ``g``, i.e. "looks like a
  benchmark" becomes part of the score; it is printed so that the effect is not mistaken for the
  gate's;
- **``g`` as a part, weights by nested LOFO**, two forms (:data:`FORMS`): ``gated`` = ``gate·ridge +
  e·elr + t·type + w·g`` and ``ungated`` = ``ridge + e·elr + 0.1 type + w·g`` (``g`` standardised on the
  training rows), the weights picked, for each family F left out, on the training families' own
  out-of-family scores (parts and gate fitted without F and that family) by their mean APGR
  (``mean``) or by the lowest APGR minus that family's best baseline (``margin``); F's labels never
  choose the weights.
  One ungated weighting read off this table (``ridge + 2 elr + 0.1 type + 2 g``) is printed beside
  them, to show what selection on the reported folds finds and nested LOFO does not.

Last, the **trade-off between MMLU STEM and social sciences** (``--frontier``): the weight of an
embedding part added to a ridge, swept, for two ridges (the shipped one and one fitted on the gap
centred per subject, which keeps only what ranks prompts within a subject) and two embedding parts
(the shipped embedding logreg on "strong right and weak wrong", and one on "weak wrong" alone),
with STEM's margin over length and social sciences' over logreg; and the two halves of the label
as embedding logregs on their own ("strong right", "weak wrong"). These weights are read off the
table they are reported on: they map the trade-off, they choose nothing.

Chat order (as ``bench/model_selection.py --chat``): parts and gate fitted on every family they train
on; the AUROC with which the score puts Arena-Hard v2.0 prompts (not the gate's v0.1 reference)
nearest the code, math and reasoning prototypes above those nearest writing, chit-chat and knowledge.

Run: ``python bench/domain_gate.py [--n-boot 200] [--frontier]`` (1-2 minutes on 2 busy cores with
``bench/gated_blend.py``'s part cache, ``/tmp/gated_parts_static.npz``, which a first run fits; 4 more
with ``--frontier``). The gates and the frontier's parts are cached in ``/tmp/domain_gates_static.npz``
and ``/tmp/domain_extra_static.npz``: delete the three after changing the parts or the data.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gated_blend import DATA, NO_ALPACA, PARTS, all_parts, below_best, fit_parts  # noqa: E402
from router.scoring.text_features import ALL_FEATURE_NAMES  # noqa: E402
from training.families import load_with_families  # noqa: E402
from training.lofo import family_table, fast_auroc  # noqa: E402
from training.metrics import apgr, quality_curve  # noqa: E402
from training.protocol import fixed_baselines, order_families  # noqa: E402
from training.train import prepare_inputs, task_centroids  # noqa: E402

K = {n: i for i, n in enumerate(PARTS)}
FORMS = {"gated": {"elr": (0.25, 0.5, 1.0), "type": (0.0, 0.1), "g": (0.0, 0.5, 1.0, 2.0)},
         "ungated": {"elr": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0), "type": (0.1,), "g": (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)}}
"""The weights searched by the nested LOFO of each form (module docstring): (elr, type, g) grids."""


def arena(version: str) -> list[str]:
    """Arena-Hard prompts of one version folder (``arena-hard-v0.1`` or ``arena-hard-v2.0``)."""
    from training.datasets import data_root

    path = data_root() / "arena_hard" / version / "question.jsonl"
    return [json.loads(line)["prompt"] for line in path.open(encoding="utf-8") if line.strip()]


def domain_gate(emb: np.ndarray, train: np.ndarray, reference: np.ndarray):
    """The fitted domain classifier: training rows ``emb[train]`` (label 1) against ``reference`` (m, dim)
    (label 0); returns ``f(E) -> P(training-like)`` of shape (len(E),)."""
    from sklearn.linear_model import LogisticRegression

    X = np.vstack([emb[train], reference])
    y = np.r_[np.ones(len(train)), np.zeros(len(reference))]
    m = LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000).fit(X, y)
    return lambda E: m.predict_proba(E)[:, 1]


def all_gates(emb, fams, sets, reference, cache: Path) -> dict:
    """``g`` on every row for each left-out set of :func:`gated_blend.all_parts`: {frozenset: (n,)}."""
    key = lambda s: "|".join(sorted(s)) or "-"  # noqa: E731
    if cache.exists():
        z = np.load(cache)
        if all(key(s) in z.files for s in sets):
            return {s: z[key(s)] for s in sets}
    out = {s: domain_gate(emb, np.nonzero(~np.isin(fams, list(s | {NO_ALPACA})))[0], reference)(emb) for s in sets}
    np.savez(cache, **{key(s): v for s, v in out.items()})
    return out


def _cdf(P: np.ndarray, ref: np.ndarray, normal: bool) -> np.ndarray:
    from scipy.stats import norm

    out = np.empty_like(P)
    for k in range(len(P)):
        r = np.sort(P[k, ref])
        out[k] = (np.searchsorted(r, P[k], side="right") + 0.5) / (len(r) + 1)
    return norm.ppf(out) if normal else out


def combos(P: np.ndarray, g: np.ndarray, ref: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed combinations of parts ``P`` (parts, n) and gate ``g`` (n,); ``ref`` = training rows (bool)."""
    ridge_c = P[K["ridge"]] - P[K["ridge"], ref].mean()
    out = {"shipped (ridge + 0.5 elr + 0.1 type)": P[K["ridge"]] + 0.5 * P[K["elr"]] + 0.1 * P[K["type"]]}
    for name, normal in (("rank", False), ("nscore", True)):
        Q = _cdf(P, ref, normal)
        out[f"shipped weights, {name}"] = Q[K["ridge"]] + 0.5 * Q[K["elr"]] + 0.1 * Q[K["type"]]
    for e in (0.5, 1.0):
        out[f"gate: g*ridge + {e:g} elr + 0.1 type"] = g * ridge_c + e * P[K["elr"]] + 0.1 * P[K["type"]]
    out["gate, uncentred: g*(ridge + intercept) + 0.5 elr + 0.1 type"] = (g * P[K["ridge"]] + 0.5 * P[K["elr"]]
                                                                         + 0.1 * P[K["type"]])
    out["g alone (P(looks like the training data))"] = g
    gz = (g - g[ref].mean()) / (g[ref].std() or 1.0)
    out["ridge + 2 elr + 0.1 type + 2 g (weights read off this table)"] = (P[K["ridge"]] + 2 * P[K["elr"]]
                                                                          + 0.1 * P[K["type"]] + 2 * gz)
    return out


def searched(P: np.ndarray, g: np.ndarray, ref: np.ndarray, form: str):
    """(weighting, score) of every weighting ``(e, t, w)`` of ``form`` (:data:`FORMS`)."""
    ridge = P[K["ridge"]] - P[K["ridge"], ref].mean()
    ridge = g * ridge if form == "gated" else ridge
    gz = (g - g[ref].mean()) / (g[ref].std() or 1.0)
    for e, t, w in itertools.product(*FORMS[form].values()):
        yield (e, t, w), ridge + e * P[K["elr"]] + t * P[K["type"]] + w * gz


def _train_rows(fams, s) -> np.ndarray:
    return ~np.isin(fams, list(s | {NO_ALPACA}))


def nested(rows, fams, names, parts, gates, form: str, objective: str):
    """Nested LOFO of :func:`searched` under ``objective`` (``mean`` or ``margin``, module docstring):
    (scores (n,), {left-out family: weighting})."""
    w, s = np.array([e.weak for e in rows]), np.array([e.strong for e in rows])
    fixed = fixed_baselines(rows)
    out, info = np.full(len(rows), np.nan), {}
    for F in names:
        inner = [f for f in names if f not in (F, NO_ALPACA)]
        per: dict = {}
        for f in inner:
            key = frozenset({F, f} - {NO_ALPACA})
            idx = np.nonzero(fams == f)[0]
            best_base = max(apgr(quality_curve(b[idx], w[idx], s[idx]))
                            for b in (fixed["length"], fixed["rules"], parts[key][K["logreg"]]))
            for combo, sc in searched(parts[key], gates[key], _train_rows(fams, key), form):
                per.setdefault(combo, []).append(apgr(quality_curve(sc[idx], w[idx], s[idx]))
                                                 - (best_base if objective == "margin" else 0.0))
        best = max(per, key=lambda c: np.mean(per[c]) if objective == "mean" else min(per[c]))
        key = frozenset({F} - {NO_ALPACA})
        te = fams == F
        out[te] = dict(searched(parts[key], gates[key], _train_rows(fams, key), form))[best][te]
        info[F] = best
    return out, info


def chat_order(rows, fams, x, dim, cent, reference, picks: dict) -> dict[str, float]:
    """Chat order (module docstring) of every combination, fitted on all families they train on."""
    from router.scoring.routing_model import build_inputs
    from router.scoring.rules import rule_score
    from training.embedding_cache import embed_cached
    from training.task_types import TYPE_NAMES

    texts = arena("arena-hard-v2.0")
    types = np.array(TYPE_NAMES)[np.argmax(embed_cached(texts, progress=False, name="minilm")
                                           @ task_centroids("minilm").T, axis=1)]
    keep = np.isin(types, ("code", "math", "reasoning", "writing", "chit_chat", "knowledge"))
    hard = np.isin(types[keep], ("code", "math", "reasoning"))
    cx = build_inputs(embed_cached(texts, progress=False, name="static"), texts, ALL_FEATURE_NAMES)
    both = np.vstack([x, cx])
    fams_both = np.concatenate([fams, np.array(["chat"] * len(texts))])
    p = fit_parts([*rows, *[rows[0]] * len(texts)], fams_both, both, dim, cent, frozenset({"chat"}))
    P = np.stack([p[k] for k in PARTS])
    ref = _train_rows(fams_both, frozenset({"chat"}))
    g = domain_gate(both[:, :dim].astype(np.float64), np.nonzero(ref)[0], reference)(both[:, :dim].astype(np.float64))
    chat = np.arange(len(rows), len(both))
    out = {n: fast_auroc(v[chat][keep], hard) for n, v in combos(P, g, ref).items()}
    for name, (form, pick) in picks.items():
        out[name] = fast_auroc(dict(searched(P, g, ref, form))[pick][chat][keep], hard)
    out["logreg"] = fast_auroc(P[K["logreg"]][chat][keep], hard)
    out["length"] = fast_auroc(np.array([len(t) for t in texts], float)[keep], hard)
    out["rules"] = fast_auroc(np.array([rule_score(t) for t in texts])[keep], hard)
    return out


def extra_parts(rows, fams, x, dim, cent, cache: Path) -> dict[str, np.ndarray]:
    """Out-of-family parts of the frontier, each standardised on its training rows: name -> (n,).

    ``ridge, subject-centred``: the shipped ridge fitted on the gap minus its subject's (group's) mean;
    ``strong right``, ``weak wrong``: embedding logregs (C = 0.1, balanced classes, families weighted
    equally) on those halves of the label. AlpacaEval never trained on, groups graded below chance left out.
    """
    from sklearn.linear_model import LogisticRegression

    from router.scoring.transfer import MULTIPLE_CHOICE, TransferRouter
    from training.datasets import label_values
    from training.protocol import centred, family_weights, trusted_rows

    if cache.exists():
        return dict(np.load(cache))
    gap = label_values(rows, "gap")
    labels = {"strong right": np.array([e.strong >= 0.5 for e in rows]),
              "weak wrong": np.array([e.weak < 0.5 for e in rows])}
    groups = np.array([f"{e.source}/{e.group}" for e in rows])
    emb = x[:, :dim].astype(np.float64)
    out = {n: np.full(len(rows), np.nan) for n in ("ridge, subject-centred", *labels)}
    trusted = trusted_rows(rows, 0.25)
    for F in dict.fromkeys(fams.tolist()):
        tr = np.nonzero(~np.isin(fams, [F, NO_ALPACA]) & trusted)[0]
        te, w = fams == F, family_weights(fams[tr])
        m = TransferRouter(dim, cent, ALL_FEATURE_NAMES, regression=True, clip=2.0, min_support=0.01,
                           drop=MULTIPLE_CHOICE, C=0.01).fit(x[tr], centred(gap[tr], groups[tr]), sample_weight=w)
        scores = {"ridge, subject-centred": m.predict(x)}
        for n, y in labels.items():
            lr = LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000).fit(emb[tr], y[tr], sample_weight=w)
            scores[n] = lr.decision_function(emb)
        for n, v in scores.items():
            out[n][te] = (v[te] - v[tr].mean()) / (v[tr].std() or 1.0)
    np.savez(cache, **out)
    return out


def frontier(rows, fams, outer: np.ndarray, extra: dict, base: dict, n_boot: int) -> None:
    """Print the STEM / social sciences trade-off (module docstring) of ``outer`` (parts, n) and ``extra``."""
    ridges = {"ridge": outer[K["ridge"]], "ridge, subject-centred": extra["ridge, subject-centred"]}
    embs = {"elr": outer[K["elr"]], "weak wrong": extra["weak wrong"]}
    routers = {n: extra[n] for n in ("strong right", "weak wrong")}
    for (rn, r), (en, e), a in itertools.product(ridges.items(), embs.items(), (0.25, 0.5, 1.0, 1.5, 2.0)):
        routers[f"{rn} + {a:g} {en} + 0.1 type"] = r + a * e + 0.1 * outer[K["type"]]
    t = family_table(rows, fams, {**routers, **base}, n_boot=n_boot, compare=list(routers))
    print("\n| blend | MMLU STEM: APGR, - length [95% CI] | MMLU social sciences: APGR, - logreg [95% CI] | "
          "AlpacaEval: APGR, - logreg [95% CI] | LOFO mean | families below the best baseline beyond the interval |")
    print("|---|---|---|---|---|---|")
    for r in routers:
        cells = []
        for f, b in (("mmlu-stem", "length"), ("mmlu-social_sciences", "logreg"), ("alpaca_eval", "logreg")):
            d = t.family_diff[(f, r, b)]
            cells.append(f"{t.families[f][r]['apgr'][0]:.3f}, {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
        best = {f: max(base, key=lambda b: t.families[f][b]["apgr"][0]) for f in t.families}
        fails = [f for f in t.families if t.family_diff[(f, r, best[f])][2] < 0]
        print(f"| {r} | " + " | ".join(cells) + f" | {t.mean[r][0]:.3f} | {', '.join(fails) or 'none'} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--frontier", action="store_true", help="also print the MMLU STEM / social sciences trade-off")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    from training.embedding_cache import embed_cached

    rows, fams = load_with_families(DATA)
    x, dim = prepare_inputs(rows, "static", progress=False, names=ALL_FEATURE_NAMES)
    cent = task_centroids("static")
    names, parts = all_parts(rows, fams, x, dim, cent, Path("/tmp/gated_parts_static.npz"))
    reference = embed_cached(arena("arena-hard-v0.1"), progress=False, name="static").astype(np.float64)
    gates = all_gates(x[:, :dim].astype(np.float64), fams, list(parts), reference, Path("/tmp/domain_gates_static.npz"))
    routers: dict[str, np.ndarray] = {}
    for F in names:
        key, te = frozenset({F} - {NO_ALPACA}), fams == F
        for n, v in combos(parts[key], gates[key], _train_rows(fams, key)).items():
            routers.setdefault(n, np.full(len(rows), np.nan))[te] = v[te]
    picks = {}
    for form, objective in itertools.product(FORMS, ("mean", "margin")):
        name = f"{form}, weights by nested LOFO ({objective})"
        routers[name], picks[name] = nested(rows, fams, names, parts, gates, form, objective)
    fixed = fixed_baselines(rows)
    logreg = np.full(len(rows), np.nan)
    for F in names:
        logreg[fams == F] = parts[frozenset({F} - {NO_ALPACA})][K["logreg"], fams == F]
    base = {"length": fixed["length"], "rules": fixed["rules"], "logreg": logreg}
    t = family_table(rows, fams, {**routers, **base}, n_boot=args.n_boot, compare=list(routers))
    fo = order_families(t.families)
    print(f"static embedder; leave-one-family-out; APGR, paired bootstrap 95% intervals ({args.n_boot} resamples); "
          "gate reference: Arena-Hard v0.1 (500 unlabelled prompts)\n")
    print("| router | " + " | ".join(fo) + " | mean [95% CI] |\n|---" + "|---" * (len(fo) + 1) + "|")
    for r in [*routers, *base]:
        m = t.mean[r]
        print(f"| {r} | " + " | ".join(f"{t.families[f][r]['apgr'][0]:.3f}" for f in fo)
              + f" | {m[0]:.3f} [{m[1]:.3f}, {m[2]:.3f}] |")
    # for the chat order, each form's weighting with the best LOFO mean over all families (as a shipped recipe)
    w, s = np.array([e.weak for e in rows]), np.array([e.strong for e in rows])
    full = {}
    for form in FORMS:
        total: dict = {}
        for F in (f for f in names if f != NO_ALPACA):
            key, idx = frozenset({F}), np.nonzero(fams == F)[0]
            for combo, sc in searched(parts[key], gates[key], _train_rows(fams, key), form):
                total[combo] = total.get(combo, 0.0) + apgr(quality_curve(sc[idx], w[idx], s[idx]))
        full[form] = max(total, key=total.get)
    pick = {name: (name.split(",")[0], full[name.split(",")[0]]) for name in picks}
    chat = chat_order(rows, fams, x, dim, cent, reference, pick)
    print("\n| router | families below the best baseline beyond the interval (router - best [95% CI]) | "
          "mean - length / rules / logreg [95% CI] | goal met | chat order (Arena-Hard v2.0) |\n|---|---|---|---|---|")
    for r in routers:
        fails = below_best(t, r, base, fo)
        diffs = [t.diff[(r, b)] for b in base]
        met = all(d[1] > 0 for d in diffs) and not fails
        print(f"| {r} | {'; '.join(fails) or 'none'} | " + " / ".join(f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
                                                                      for d in diffs)
              + f" | {'yes' if met else 'no'} | {chat[r]:.3f} |")
    print("| " + " | ".join(f"{b}: {chat[b]:.3f}" for b in base) + " |")
    print("\nweighting (elr, type, g) picked per left-out family:")
    for name, per in picks.items():
        print(f"- {name}: " + ", ".join(f"{f} {c}" for f, c in per.items()))
    print("- by the LOFO mean over all families (the chat order's fit): "
          + ", ".join(f"{form} {c}" for form, c in full.items()))
    if args.frontier:
        outer = np.full((len(PARTS), len(rows)), np.nan)
        for F in names:
            outer[:, fams == F] = parts[frozenset({F} - {NO_ALPACA})][:, fams == F]
        extra = extra_parts(rows, fams, x, dim, cent, Path("/tmp/domain_extra_static.npz"))
        frontier(rows, fams, outer, extra, base, args.n_boot)
    print(f"\n<!-- {time.perf_counter() - t0:.0f} s -->", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
