"""Closer-fitting learners on a ``bench/learning.py`` log, binary against three-way labels.

``learn``'s stacked learner (the prior's logit plus the embedding under an L2 offset model)
keeps the prior on most sets. Learners that follow the labels more closely would move more,
and on a set like MMLU "other", where the binary label ("the local answer is at least as
good") cannot see the questions the local model gets right and the cloud's wrong, they would
follow it the wrong way. This replays ``learn``'s decision for three learners on the same
judged samples, read as binary or as three-way labels:

- ``stacked``: :func:`router.learning.candidate.fit_candidate` on the embedding (``learn``'s);
- ``pca8``: the same, on the embedding's 8 principal components (fitted on every logged
  request of the learning period, unlabelled ones too);
- ``knn100``: the weighted mean target of the 100 nearest judged labels (cosine; a training
  label's own left out) stacked with the prior's logit (a two-column logistic fit).

Per set, labels and learner: ``learn``'s gate (:func:`router.learning.gate.gate`: the labels
after the earliest 30% by time in 4 rolling blocks, each predicted by the learner fitted on the
labels before it; the paired one-sided log-loss test against the recalibrated active router,
on ``learn``'s direction probe for ``stacked`` and on the learner's own predictions for the
others; "promote" as ``learn`` decides; "old" is the former rule, the pooled APGR difference's
paired bootstrap 95% interval above 0) and the candidate fitted on every
label scored on the later half of the set with the recorded outcomes (APGR, and the
difference to the default, paired). A learner that would promote a candidate worse on the
later half is the wrong promotion this measures.

    python bench/learning_learners.py --reuse DIR [--sets mmlu-other,mmlu-stem] [--budget 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

LEARNERS = ("stacked", "pca8", "knn100")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class KNNStack:
    """P(needs cloud) from the prior's logit and the weighted mean target of the ``k`` nearest
    training labels (cosine on the embedding columns ``[:dim]``)."""

    def __init__(self, k: int, dim: int) -> None:
        self.k, self.dim = k, dim

    def _unit(self, X: np.ndarray) -> np.ndarray:
        E = np.asarray(X[:, : self.dim], dtype=float)
        return E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-9)

    def _rate(self, E: np.ndarray, exclude_self: bool) -> np.ndarray:
        sim = E @ self.E_.T
        if exclude_self:
            np.fill_diagonal(sim, -np.inf)
        k = min(self.k, self.E_.shape[0] - int(exclude_self))
        idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        w = self.w_[idx]
        return (w * self.t_[idx]).sum(axis=1) / w.sum(axis=1)

    def fit(self, X, t, w, prior) -> "KNNStack":
        from router.learning.candidate import _fit_lr

        self.E_, self.t_, self.w_ = self._unit(X), np.asarray(t, float), np.asarray(w, float)
        Z = np.column_stack([_logit(prior), _logit(self._rate(self.E_, True))])
        self.lr_ = _fit_lr(Z, self.t_, self.w_, 1e4)
        return self

    def predict_proba(self, X, prior) -> np.ndarray:
        Z = np.column_stack([_logit(prior), _logit(self._rate(self._unit(X), False))])
        return self.lr_.predict_proba(Z)


def fit_learner(name: str, X, t, w, prior, artifact, reads, dim, pca):
    """A fitted model with ``predict_proba(rows, prior)``, and the rows it reads."""
    from router.learning.candidate import fit_candidate

    if name == "stacked":
        return fit_candidate(X, t, w, prior, artifact.estimator, reads, dim)[0], lambda R: R
    if name == "pca8":
        project = lambda R: pca.transform(R[:, :dim]).astype(np.float32)  # noqa: E731
        return fit_candidate(project(X), t, w, prior, artifact.estimator, reads, pca.n_components_)[0], project
    if name == "knn100":
        return KNNStack(100, dim).fit(X, t, w, prior), lambda R: R
    raise SystemExit(f"unknown learner {name!r}; use {', '.join(LEARNERS)}")


def load_replay(reuse: Path) -> tuple[dict, object, tuple, dict, list]:
    """An earlier ``bench/learning.py`` work folder: its windows, the replayed policy, the
    prior's ``(artifact, reads, feature names)``, the logged requests by id and the shadow
    samples oldest first."""
    from router.learning.run import _prior
    from router.policy import load_policy
    from router.store.sqlite import SQLiteStore

    windows = json.loads((reuse / "windows.json").read_text())
    policy = load_policy(reuse / "policy.yaml")
    store = SQLiteStore(reuse / "log.sqlite3")
    records, shadows = store.requests(), sorted(store.shadows(), key=lambda s: s.ts)
    store.close()
    return windows, policy, _prior(policy), {r.id: r for r in records}, shadows


def main() -> int:
    from sklearn.decomposition import PCA

    from bench.learning import load_set, paired, score_sets
    from router.learning.candidate import fit_candidate, fit_probe
    from router.learning.evaluate import time_splits
    from router.learning.gate import gate
    from router.learning.labels import build_labels
    from router.learning.run import BLOCKS, WARMUP, _rows, _traffic
    from router.scoring.prior_stack import PriorStackedModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", type=Path, required=True, help="the work folder of a bench/learning.py run")
    parser.add_argument("--sets", default=None, help="default: every set of that run")
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--max-per-set", type=int, default=2500)
    args = parser.parse_args()
    windows, policy, (artifact, reads, fnames), by_id, shadows = load_replay(args.reuse)
    names = [s for s in (args.sets or ",".join(windows)).split(",") if s]
    sets = {n: load_set(n, args.max_per_set) for n in names}
    kept_sets = score_sets(sets, args.reuse / "policy.yaml")
    print("set                  labels     learner  pooled test APGR diff [95%]  log-loss gain, p  promote "
          "(old APGR rule)   later half: APGR [95%]      vs default [95%]")
    for name in names:
        ids, rows = windows[name][2], sets[name]
        first = [by_id[i] for i in ids if i in by_id and "embedding" in (by_id[i].learning or {})]
        first_ids = {r.id for r in first}
        judged = [s for s in shadows if s.request_id in first_ids and s.judge_verdict is not None][:args.budget]
        later = rows[len(ids):]
        kept = kept_sets[name][len(ids):]
        X_later = np.stack([np.concatenate([k.embedding, np.array([k.features[n] for n in fnames], np.float32)])
                            for k in kept])
        weak, strong = np.array([e.weak for e in later]), np.array([e.strong for e in later])
        default = np.array([k.score for k in kept], dtype=float)
        dim = X_later.shape[1] - len(fnames)
        prior_later = PriorStackedModel(artifact.estimator, reads, dim).prior_proba(X_later)
        pca = PCA(8, random_state=0).fit(_rows(first, fnames, None)[:, :dim])
        for mode in ("binary", "three-way"):
            use = judged if mode == "three-way" else [replace(s, judge_outcome=None) for s in judged]
            labels = build_labels(first, use)
            X, _, w, ts = labels.arrays(fnames)
            t, gain = labels.targets(), labels.gains()
            prior = PriorStackedModel(artifact.estimator, reads, dim).prior_proba(X)
            active = np.array([lb.score for lb in labels.labels], dtype=float)
            splits = time_splits(ts, WARMUP, BLOCKS)
            share, _ = _traffic(first, policy, float(ts[splits[0][1]].min()))
            for learner in args.learners.split(","):
                def fit_predict(tr, te, learner=learner):
                    if learner == "stacked":  # learn's fit, with its inner CV's choice
                        m, choice = fit_candidate(X[tr], t[tr], w[tr], prior[tr], artifact.estimator, reads, dim)
                        return m.predict_proba(X[te], prior[te])[:, 1], choice
                    model, rows_of = fit_learner(learner, X[tr], t[tr], w[tr], prior[tr], artifact, reads, dim, pca)
                    return model.predict_proba(rows_of(X[te]), prior[te])[:, 1], None

                def probe(tr, te):  # learn's direction probe, for learn's learner
                    m = fit_probe(X[tr], t[tr], w[tr], prior[tr], artifact.estimator, reads, dim)
                    return m.predict_proba(X[te], prior[te])[:, 1], None

                g = gate(splits, fit_predict, active, t, gain, w, share, n_boot=200,
                         learned=lambda c: c is None or c.blocks != "prior",
                         probe=probe if learner == "stacked" else None)
                d = g.comparison.apgr_diff
                full, rows_of = fit_learner(learner, X, t, w, prior, artifact, reads, dim, pca)
                scored = full.predict_proba(rows_of(X_later), prior_later)[:, 1]
                a, _, diff = paired(scored, default, weak, strong)
                print(f"{name:20s} {mode:9s} {learner:8s}  {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]  "
                      f"{g.test.diff:+.4f} p={g.test.p_value:.3f} {'yes' if g.promote else 'no':>4s} (old: "
                      f"{'yes' if d[1] > 0 else 'no'})   {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}]"
                      f"   {diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
