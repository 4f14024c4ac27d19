"""Which labels to ask the judge for, simulated offline: stream-based active sampling against
uniform (issue 19, goal b: reach uniform's APGR with at most half the judged samples).

No server: each traffic set (``bench/learning.py``'s :func:`~bench.learning.load_set`, the
same shuffle and cut) is scored in this process by the server's scorer (the shipped artifact
and embedder, what the server logs); its first half is the learning period, a stream in that
order whose every request could be judged (``bench/learning.py`` replays with ``rate`` and
``cloud_rate`` 1), and the label of a judged request is the recorded three-way verdict
(``(1 + gain) / 2``, :func:`bench.learning.targets_of`). A strategy walks the stream and asks
for each request's label with probability ``p``; the candidate that ``learn`` would fit
(:func:`router.learning.candidate.fit_candidate`, 3 inner folds, weights ``1 / p``) on the
labels asked for is scored on the later half with the recorded outcomes (APGR).

Strategies (``--strategies``):

- ``uniform``: ``p = B / N`` (``B`` the budget, ``N`` the stream's length);
- ``uncertain``: the server's rule (:func:`router.ledger.shadow.sample_probability`, band
  0.05, floor 0, at the rate whose expected sample is ``B``: :func:`bench.learning.rate_for`)
  on the active router's score; ``uncertain@B:F`` band B, floor F;
- ``learner``: the *learner's* uncertainty, ``q (1 - q)`` with ``q`` the sampler's current
  model's P(needs cloud) (uncertainty sampling, Lewis and Gale 1994);
- ``committee``: the disagreement of ``--committee`` bootstrap refits of the sampler's model,
  the standard deviation of their logits (query by committee, Seung, Opper and Sompolinsky
  1992; bootstrap committees, Abe and Mamitsuka 1998);
- ``learner:F`` / ``committee:F``: the same with floor F (default 0.3).

The adaptive ones are importance-weighted active learning (Beygelzimer, Dasgupta and
Langford 2009): ``p = min(1, pace x (F + (1 - F) x u / mean u))``, ``u`` the request's
uncertainty under the sampler's model, ``mean u`` its mean over the last 200 requests of the
stream (whatever was asked), ``pace`` the remaining budget over the remaining stream (so the
expected number of labels is ``B``), and the label weighted ``1 / p``. The sampler's model is
the prior until the first ``K`` labels (a committee without members samples uniformly), then
refitted every ``K = max(25, B / 8)`` labels: :func:`router.learning.candidate.fit_probe` at
``--sampler-C`` (the stack at a fixed L2 strength; the committee's members are the same fit
on bootstrap resamples of the labels).

Prints, per set and budget, each strategy's mean APGR over ``--seeds`` draws (its standard
error), the mean number of labels, and whether a strategy at ``B`` <= 400 reaches uniform's
APGR at the largest budget (within one standard error of the difference).

    python bench/active_sampling.py [--sets mmlu-stem,mmlu-other] [--budgets 100,200,400,800] [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

WINDOW = 200


@dataclass
class TrafficSet:
    """One set's rows, in traffic order: inputs ``X`` (n, dim + f), the prior's P(needs cloud)
    ``prior`` (n,), the active router's logged score ``score`` (n,), the three-way targets
    ``y`` (n,), the weak and strong models' outcomes (n,), the learning period's length
    ``n_first`` and its threshold (the 80th percentile of its scores: 20% to the cloud)."""

    name: str
    X: np.ndarray
    prior: np.ndarray
    score: np.ndarray
    y: np.ndarray
    weak: np.ndarray
    strong: np.ndarray
    n_first: int
    threshold: float
    prior_model: tuple


def prepare(names: list[str], max_n: int, first: float, cloud_share: float, work: Path) -> dict[str, TrafficSet]:
    """Every set scored by the server's scorer (``bench/learning.py``'s policy and sets)."""
    import yaml

    from bench.learning import load_set, policy_dict, score_sets, targets_of, threshold_for
    from router.learning.run import _prior
    from router.policy import load_policy
    from router.scoring.prior_stack import PriorStackedModel

    policy_path = work / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy_dict("http://127.0.0.1:9/v1", work / "log.sqlite3", 0.5, 1.0)))
    artifact, reads, feature_names = _prior(load_policy(policy_path))
    sets = {n: load_set(n, max_n) for n in names}
    kept = score_sets(sets, policy_path)
    out = {}
    for n, rows in sets.items():
        X = np.stack([np.concatenate([k.embedding, np.array([k.features[f] for f in feature_names], np.float32)])
                      for k in kept[n]]).astype(np.float32)
        dim = X.shape[1] - len(feature_names)
        score = np.array([k.score for k in kept[n]], float)
        cut = int(len(rows) * first)
        out[n] = TrafficSet(n, X, PriorStackedModel(artifact.estimator, reads, dim).prior_proba(X), score,
                            targets_of(rows, "three-way"), np.array([e.weak for e in rows], float),
                            np.array([e.strong for e in rows], float), cut,
                            threshold_for(score[:cut], cloud_share), (artifact.estimator, reads, dim))
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class Sampler:
    """The sampler's view of the stream: its current model (the prior until refitted) and the
    uncertainty ``u`` it gives a request (``kind`` ``learner`` or ``committee``)."""

    def __init__(self, ts: TrafficSet, kind: str, C: float, members: int, rng: np.random.Generator) -> None:
        self.ts, self.kind, self.C, self.members, self.rng = ts, kind, C, members, rng
        self.models: list = []

    def refit(self, idx: np.ndarray, w: np.ndarray) -> None:
        """Refit on the labels so far (rows ``idx``, weights ``w``); keeps the old models when
        the labels have one class only."""
        from router.learning.candidate import fit_probe

        ts = self.ts
        estimator, reads, dim = ts.prior_model
        draws = [np.arange(len(idx))] if self.kind == "learner" else [
            self.rng.integers(0, len(idx), len(idx)) for _ in range(self.members)]
        models = []
        for d in draws:
            j = idx[d]
            if len(np.unique(ts.y[j])) < 2:
                return
            models.append(fit_probe(ts.X[j], ts.y[j], w[d], ts.prior[j], estimator, reads, dim, C=self.C))
        self.models = models

    def uncertainty(self, i: int) -> float:
        ts = self.ts
        x, pr = ts.X[i:i + 1], ts.prior[i:i + 1]
        if self.kind == "learner" or not self.models:
            q = float(self.models[0].predict_proba(x, pr)[0, 1]) if self.models else float(pr[0])
            if self.kind == "learner":
                return q * (1 - q)
            return 1.0  # a committee with no members yet: uniform
        logits = [float(_logit(m.predict_proba(x, pr)[:, 1])[0]) for m in self.models]
        return float(np.std(logits))


def _floor_of(spec: str, default: float = 0.3) -> float:
    return float(spec.partition(":")[2]) if ":" in spec else default


def draw(ts: TrafficSet, strategy: str, budget: int, seed: int, C: float,
         members: int) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the learning period under ``strategy`` with ``budget`` expected labels:
    (rows asked for, their sampling probabilities)."""
    from bench.learning import probabilities, rate_for

    rng = np.random.default_rng(seed)
    n = ts.n_first
    coins = rng.random(n)
    if strategy == "uniform" or strategy.startswith("uncertain"):
        scores, thr = list(ts.score[:n]), [ts.threshold] * n
        ps = np.array(probabilities(rate_for(budget, scores, thr, strategy), scores, thr, strategy))
        pick = np.nonzero(coins < ps)[0]
        return pick, ps[pick]
    kind = strategy.partition(":")[0]
    floor = _floor_of(strategy)
    sampler = Sampler(ts, kind, C, members, rng)
    K = max(25, budget // 8)
    idx, ps, recent = [], [], []
    next_fit = K
    for i in range(n):
        pace = (budget - len(idx)) / (n - i)
        if pace <= 0:
            break
        u = sampler.uncertainty(i)
        recent = (recent + [u])[-WINDOW:]
        mean = float(np.mean(recent))
        g = u / mean if mean > 0 else 1.0
        p = min(1.0, pace * (floor + (1 - floor) * g))
        if p > 0 and coins[i] < p:
            idx.append(i)
            ps.append(p)
            if len(idx) >= next_fit:
                sampler.refit(np.array(idx), 1.0 / np.array(ps))
                next_fit += K
    return np.array(idx, int), np.array(ps, float)


def score_candidate(ts: TrafficSet, idx: np.ndarray, ps: np.ndarray) -> float:
    """APGR on the later half of ``learn``'s candidate fitted on rows ``idx`` weighted ``1 / ps``
    (the prior's APGR when the labels have one class only)."""
    from router.learning.candidate import fit_candidate
    from training.metrics import apgr, quality_curve

    L = np.arange(ts.n_first, len(ts.y))
    estimator, reads, dim = ts.prior_model
    if len(idx) < 10 or len(np.unique(ts.y[idx])) < 2:
        pred = ts.score[L]
    else:
        m, _ = fit_candidate(ts.X[idx], ts.y[idx], 1.0 / ps, ts.prior[idx], estimator, reads, dim, inner_folds=3)
        pred = m.predict_proba(ts.X[L], ts.prior[L])[:, 1]
    return apgr(quality_curve(pred, ts.weak[L], ts.strong[L]))


def run(ts: TrafficSet, strategies: list[str], budgets: list[int], seeds: int, C: float, members: int,
        log=print) -> dict:
    """{(strategy, budget): (APGRs per seed, labels per seed)}; seed ``s`` gives every strategy
    the same coins (common random numbers)."""
    out = {}
    for b in budgets:
        for strategy in strategies:
            t0 = time.time()
            vals, sizes = [], []
            for s in range(seeds):
                idx, ps = draw(ts, strategy, b, 1000 * s + b, C, members)
                vals.append(score_candidate(ts, idx, ps))
                sizes.append(len(idx))
            out[(strategy, b)] = (np.array(vals), np.array(sizes))
            log(f"  {ts.name:12s} B={b:4d} {strategy:16s} labels {np.mean(sizes):6.1f}  APGR {np.mean(vals):.3f} "
                f"+- {np.std(vals, ddof=1) / np.sqrt(len(vals)):.3f}  ({time.time() - t0:.0f}s)", flush=True)
    return out


def table(ts: TrafficSet, res: dict, strategies: list[str], budgets: list[int]) -> list[str]:
    """The printed table of one set, and the goal's verdict per strategy."""
    from training.metrics import apgr, quality_curve

    L = slice(ts.n_first, len(ts.y))
    default = apgr(quality_curve(ts.score[L], ts.weak[L], ts.strong[L]))
    lines = [f"{ts.name}: {ts.n_first} in the stream, {len(ts.y) - ts.n_first} later; default APGR {default:.3f}; "
             f"mean APGR over {len(res[(strategies[0], budgets[0])][0])} seeds (SE), mean labels"]
    lines.append(f"  {'strategy':16s} " + "  ".join(f"{'B=' + str(b):>19s}" for b in budgets))
    for s in strategies:
        cells = []
        for b in budgets:
            v, n = res[(s, b)]
            cells.append(f"{v.mean():.3f} ({v.std(ddof=1) / np.sqrt(len(v)):.3f}) {n.mean():4.0f}")
        lines.append(f"  {s:16s} " + "  ".join(f"{c:>19s}" for c in cells))
    top = max(budgets)
    target = res[("uniform", top)][0]
    if target.mean() <= default + 1e-9:
        return lines + [f"  uniform learned nothing here ({target.mean():.3f} at B={top}, the default {default:.3f}): "
                        "no test of reaching it"]
    for s in strategies:
        if s == "uniform":
            continue
        hit = None
        for b in budgets:
            if b > top // 2:
                break
            v = res[(s, b)][0]
            se = np.sqrt(v.var(ddof=1) / len(v) + target.var(ddof=1) / len(target))
            if v.mean() >= target.mean() - se:
                hit = b
                break
        lines.append(f"  {s} reaches uniform's {target.mean():.3f} at B={top} with <= {top // 2} labels: "
                     + (f"yes, at B={hit}" if hit else "no"))
    return lines


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="mmlu-stem,mmlu-other")
    parser.add_argument("--budgets", default="100,200,400,800")
    parser.add_argument("--strategies", default="uniform,uncertain,uncertain@0.15:0.3,learner,committee")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-per-set", type=int, default=2500)
    parser.add_argument("--sampler-C", type=float, default=0.001, help="L2 strength of the sampler's model")
    parser.add_argument("--committee", type=int, default=5, help="bootstrap members of the committee")
    args = parser.parse_args()
    names = [s for s in args.sets.split(",") if s]
    budgets = [int(b) for b in args.budgets.split(",")]
    strategies = [s for s in args.strategies.split(",") if s]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="slm-router-active-") as work:
        sets = prepare(names, args.max_per_set, 0.5, 0.2, Path(work))
    print(f"scored {sum(len(t.y) for t in sets.values())} prompts in {time.time() - t0:.0f}s", flush=True)
    lines = []
    for ts in sets.values():
        res = run(ts, strategies, budgets, args.seeds, args.sampler_C, args.committee)
        lines += table(ts, res, strategies, budgets)
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
