"""Train the difficulty classifier that ships with the router, and write its card.

Data: RouteLLM MMLU + GSM8K outcomes (``training.data.load_routellm``), contaminated
prompts dropped. Label: ``needs_strong`` = GPT-4 right and Mixtral wrong. Split: a fixed
random 80/20 split of prompts within each dataset (seed 0); the model is fitted on the 80%
only and every metric in the card is on the held-out 20%, computed by
``training.metrics`` exactly as ``../shared/data/README.md`` defines them.

Run: ``python -m training.train_difficulty --out router/artifacts/difficulty``
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import sklearn

from router.scoring.artifact import save_artifact
from router.scoring.embedder import EMBEDDER_NAME

from .data import STRONG_MODEL, WEAK_MODEL, Example, load_routellm
from .embedding_cache import embed_cached
from .metrics import bootstrap_metrics, router_metrics

__all__ = ["split_indices", "fit_logistic", "train", "main"]


def split_indices(examples: list[Example], test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random train/test split within each source; returns (train_idx, test_idx)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for source in sorted({e.source for e in examples}):
        idx = np.array([i for i, e in enumerate(examples) if e.source == source])
        rng.shuffle(idx)
        cut = int(round(len(idx) * test_fraction))
        test.extend(idx[:cut])
        train.extend(idx[cut:])
    return np.array(sorted(train)), np.array(sorted(test))


def _first_per_source(examples: list[Example], limit: int) -> list[Example]:
    counts: Counter[str] = Counter()
    kept = []
    for e in examples:
        if counts[e.source] < limit:
            kept.append(e)
            counts[e.source] += 1
    return kept


C_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def _logistic(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))


def fit_logistic(x: np.ndarray, examples: list[Example], seed: int = 0) -> tuple[object, dict[str, float]]:
    """Standardised, class-balanced logistic regression on embeddings, label ``needs_strong``.

    C is chosen on a validation split carved from these (training) rows: for each C in
    :data:`C_GRID`, fit on 80% and take the mean over datasets of the APGR on the other 20%
    (routing ranks prompts within a workload, so a pooled AUROC would reward telling the
    datasets apart). The chosen C is refitted on all rows.

    Returns:
        (fitted pipeline, {C: mean validation APGR}).
    """
    y = np.array([e.needs_strong for e in examples])
    fit_idx, val_idx = split_indices(examples, test_fraction=0.2, seed=seed + 1)
    sources = sorted({e.source for e in examples})
    scores: dict[str, float] = {}
    for c in C_GRID:
        proba = _logistic(c).fit(x[fit_idx], y[fit_idx]).predict_proba(x[val_idx])[:, 1]
        per_source = []
        for source in sources:
            rows = [k for k, i in enumerate(val_idx) if examples[i].source == source]
            ex = [examples[val_idx[k]] for k in rows]
            per_source.append(router_metrics(proba[rows], [e.weak for e in ex], [e.strong for e in ex], seed)["apgr"])
        scores[f"{c:g}"] = round(float(np.mean(per_source)), 4)
    best = max(C_GRID, key=lambda c: scores[f"{c:g}"])
    return _logistic(best).fit(x, y), scores


def _fmt(m: tuple[float, float, float]) -> dict[str, float]:
    return {"value": round(m[0], 4), "ci95_low": round(m[1], 4), "ci95_high": round(m[2], 4)}


def train(out: Path, n_boot: int = 200, seed: int = 0, limit: int | None = None) -> dict:
    """Train, evaluate on the held-out split, write the artifact; return its card.

    Args:
        out: artifact directory.
        n_boot: bootstrap resamples for the 95% intervals.
        limit: keep only the first ``limit`` prompts of each source (for quick checks).
    """
    examples = load_routellm()
    if limit:
        examples = _first_per_source(examples, limit)
    x = embed_cached([e.prompt for e in examples])
    y = np.array([e.needs_strong for e in examples])
    tr, te = split_indices(examples, seed=seed)
    model, c_search = fit_logistic(x[tr], [examples[i] for i in tr], seed)

    metrics: dict[str, dict] = {}
    test_scores = model.predict_proba(x[te])[:, 1]
    rng = np.random.default_rng(seed)
    for source in sorted({examples[i].source for i in te}):
        rows = np.array([k for k, i in enumerate(te) if examples[i].source == source])
        ex = [examples[te[k]] for k in rows]
        weak = np.array([e.weak for e in ex])
        strong = np.array([e.strong for e in ex])
        entry = {}
        for name, s in (
            ("router", test_scores[rows]),
            ("random", rng.random(len(rows))),
            ("length", np.array([len(e.prompt) for e in ex], dtype=float)),
        ):
            b = bootstrap_metrics(s, weak, strong, n_boot=n_boot, seed=seed)
            entry[name] = {k: _fmt(v) for k, v in b.items() if k not in ("n", "q_weak", "q_strong")}
        entry["n_test"] = len(rows)
        entry["q_weak"] = round(float(weak.mean()), 4)
        entry["q_strong"] = round(float(strong.mean()), 4)
        metrics[source] = entry

    quantiles = {f"{q:.1f}": round(float(np.quantile(test_scores, 1 - q)), 4) for q in np.arange(0.1, 1.0, 0.1)}
    card = {
        "name": "difficulty",
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "embedder": EMBEDDER_NAME,
        "model": f"StandardScaler + LogisticRegression(class_weight=balanced, C={model[-1].C:g})",
        "model_selection": {"C_validation_mean_apgr": c_search,
                            "how": "80/20 split of the training rows; mean over datasets of validation APGR"},
        "sklearn_version": sklearn.__version__,
        "label": f"needs_strong: {STRONG_MODEL} correct and {WEAK_MODEL} wrong",
        "output": "P(needs the cloud tier), in [0, 1]",
        "data": {
            "source": "../shared/data/routellm (github lm-sys/RouteLLM 0b64fda), contaminated prompts dropped",
            "datasets": sorted({e.source for e in examples}),
            "n_train": int(len(tr)),
            "n_test": int(len(te)),
            "positive_rate_train": round(float(y[tr].mean()), 4),
        },
        "split": "random 80/20 within each dataset, seed 0; metrics on the held-out 20%",
        "metrics_protocol": "../shared/data/README.md: PGR over cloud share k/n, APGR by trapezoid, "
        "CPT first crossing; bootstrap 95% intervals over prompts",
        "n_bootstrap": n_boot,
        "metrics": metrics,
        "score_quantiles": {
            "meaning": "threshold giving this cloud share on the held-out prompts",
            **quantiles,
        },
    }
    save_artifact(out, model, card)
    return card


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m training.train_difficulty --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("router/artifacts/difficulty"))
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    card = train(args.out, n_boot=args.n_boot, limit=args.limit)
    for source, m in card["metrics"].items():
        for name in ("router", "random", "length"):
            r = m[name]
            print(f"{source:6s} {name:7s} APGR {r['apgr']['value']:.3f} [{r['apgr']['ci95_low']:.3f}, {r['apgr']['ci95_high']:.3f}]"
                  f"  CPT50 {r['cpt50']['value']:.3f}  AUROC {r['auroc']['value']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
