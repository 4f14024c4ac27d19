"""``learn``'s promotion test, measured: its power on real labels and its false-promotion rate
on labels shuffled within the set.

On the log of a ``bench/learning.py`` run (``--reuse DIR``), per traffic set, the first
``--budget`` judged samples of the learning period give the labels ``learn`` reads
(three-way or binary), and :func:`router.learning.gate.gate` runs on them exactly as ``learn``
runs it (the labels after the earliest ``--warmup`` share cut into ``--blocks`` rolling time
blocks, each predicted by a candidate fitted on the labels before it; the active router's
logged score recalibrated on the same labels; a paired one-sided t-test of the per-request
``--rule`` loss of the direction probe at 5%; promoted when that test says better, the inner
CV's chosen candidates have a lower pooled loss too and some block's inner CV learned more
than the prior). Then the same on the labels
shuffled within the set (``--seeds`` permutations; every label's target and gain moved to
another request, the requests, their weights, times and logged scores kept): a candidate fitted
on those cannot be better than the active router, so each promotion is a false one. With
``--null score`` the labels are shuffled only among requests of the same active-score decile,
which keeps what the active router knows and breaks only what the candidate could add.

``--learner knn100`` runs the test on ``bench/learning_learners.py``'s kNN learner instead
(the wrong promotion that bench found on MMLU "other" with binary labels).

    python bench/learning_gate.py --reuse DIR [--sets mmlu-stem,mmlu-other,alpaca_eval] [--seeds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def shuffled(n: int, seed: int, null: str, active: np.ndarray) -> np.ndarray:
    """A permutation of ``range(n)``: over every label (``set``) or within each decile of the
    active scores (``score``)."""
    rng = np.random.default_rng(seed)
    if null == "set":
        return rng.permutation(n)
    perm = np.arange(n)
    edges = np.quantile(active, np.linspace(0, 1, 11)[1:-1])
    bins = np.searchsorted(edges, active, side="right")
    for b in np.unique(bins):
        idx = np.nonzero(bins == b)[0]
        perm[idx] = idx[rng.permutation(len(idx))]
    return perm


def main() -> int:
    from bench.learning_learners import fit_learner, load_replay
    from router.learning.candidate import fit_candidate, fit_probe
    from router.learning.evaluate import time_splits
    from router.learning.gate import gate
    from router.learning.labels import build_labels
    from router.learning.run import BLOCKS, WARMUP, _traffic
    from router.scoring.prior_stack import PriorStackedModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", type=Path, required=True, help="the work folder of a bench/learning.py run")
    parser.add_argument("--sets", default=None, help="default: every set of that run")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=20, help="label shuffles per set")
    parser.add_argument("--labels", choices=("three-way", "binary"), default="three-way")
    parser.add_argument("--learner", default="stacked", help="stacked (learn's) or knn100")
    parser.add_argument("--warmup", type=float, default=None, help="learn --train-share (default: learn's)")
    parser.add_argument("--blocks", type=int, default=None, help="learn --blocks (default: learn's)")
    parser.add_argument("--rule", choices=("log", "brier"), default="log")
    parser.add_argument("--null", choices=("set", "score"), default="set",
                        help="shuffle the labels over the whole set, or within deciles of the active score")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else WARMUP
    blocks = args.blocks if args.blocks is not None else BLOCKS
    windows, policy, (artifact, reads, fnames), by_id, shadows = load_replay(args.reuse)
    names = [s for s in (args.sets or ",".join(windows)).split(",") if s]
    print(f"learner {args.learner}, {args.labels} labels, warm-up {warmup:g}, {blocks} blocks, {args.rule} loss, "
          f"null: shuffled within the {'set' if args.null == 'set' else 'active-score deciles'}, {args.seeds} seeds")
    for name in names:
        ids = windows[name][2]
        first = [by_id[i] for i in ids if i in by_id and "embedding" in (by_id[i].learning or {})]
        first_ids = {r.id for r in first}
        judged = [s for s in shadows if s.request_id in first_ids and s.judge_verdict is not None][:args.budget]
        if args.labels == "binary":
            judged = [replace(s, judge_outcome=None) for s in judged]
        labels = build_labels(first, judged)
        X, _, w, ts = labels.arrays(fnames)
        target, gain = labels.targets(), labels.gains()
        dim = X.shape[1] - len(fnames)
        prior = PriorStackedModel(artifact.estimator, reads, dim).prior_proba(X)
        active = np.array([lb.score for lb in labels.labels], dtype=float)
        splits = time_splits(ts, warmup, blocks)
        share, _ = _traffic(first, policy, float(ts[splits[0][1]].min()))

        def run(t, g):
            def fit_predict(tr, te):
                if args.learner == "stacked":  # learn's own fit, with its inner CV's choice
                    model, choice = fit_candidate(X[tr], t[tr], w[tr], prior[tr], artifact.estimator, reads, dim)
                    return model.predict_proba(X[te], prior[te])[:, 1], choice
                model, rows_of = fit_learner(args.learner, X[tr], t[tr], w[tr], prior[tr], artifact, reads, dim, None)
                return model.predict_proba(rows_of(X[te]), prior[te])[:, 1], None

            def probe(tr, te):  # learn's direction probe (router/learning/gate.py, step 5)
                model = fit_probe(X[tr], t[tr], w[tr], prior[tr], artifact.estimator, reads, dim)
                return model.predict_proba(X[te], prior[te])[:, 1], None

            return gate(splits, fit_predict, active, t, g, w, share, rule=args.rule, n_boot=100,
                        learned=lambda c: c is None or c.blocks != "prior",
                        probe=probe if args.learner == "stacked" else None)

        real = run(target, gain)
        d = real.comparison.apgr_diff
        print(f"{name}: {len(target)} labels, {len(real.pooled.test)} tested in {len(splits)} blocks "
              f"{real.pooled.blocks}; real labels: {real.test.describe('probe')}; chosen candidates' gain "
              f"{real.check.diff:+.4f} +- {real.check.se:.4f}; APGR difference "
              f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]; {'PROMOTED' if real.promote else 'refused'}", flush=True)
        if not args.seeds:
            continue
        promoted, loss_only, pvals, t1 = 0, 0, [], time.time()
        for seed in range(1, args.seeds + 1):
            perm = shuffled(len(target), seed, args.null, active)
            g = run(target[perm], gain[perm])
            promoted += g.promote
            loss_only += g.test.better
            pvals.append(g.test.p_value)
            if g.promote:
                print(f"  seed {seed} promoted: {g.test.describe('probe')}; chosen gain {g.check.diff:+.4f}", flush=True)
        print(f"  shuffled labels, {args.seeds} seeds: promoted {promoted} ({promoted / args.seeds:.0%}); the loss "
              f"test alone says better {loss_only} ({loss_only / args.seeds:.0%}); median p {np.median(pvals):.2f}, "
              f"smallest {min(pvals):.3f}; {time.time() - t1:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
