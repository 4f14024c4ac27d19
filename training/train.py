"""Train a classifier artifact: cross-validate the recipe, fit it on all rows, write the card.

Steps for ``train_artifact("mmlu,gsm8k", kind="stack", label="gap", out=DIR)``:

1. load the named sets (:mod:`training.datasets`) and embed every prompt (cached on disk);
2. 5-fold cross-validation (by prompt, seed 0): out-of-fold raw scores for every prompt;
3. metrics per dataset on those held-out scores next to random/length/oracle, with
   bootstrap 95% intervals; realised cloud share on held-out folds for target shares
   0.2/0.5/0.8 (:func:`training.evaluate.held_out_calibration`);
4. a Platt mapping from raw score to P(needs cloud) fitted on the out-of-fold scores;
5. the model refitted on all rows, wrapped in :class:`router.scoring.routing_model.RoutingModel`,
   saved with its card and the out-of-fold scores (``oof_scores.npz``, keyed by a prompt hash,
   so ``calibrate`` uses held-out scores for prompts the model was trained on).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router.scoring.artifact import load_artifact, save_artifact
from router.scoring.embedders import EMBEDDER_IDS
from router.scoring.routing_model import RoutingModel, build_inputs, fit_platt
from router.scoring.text_features import FEATURE_NAMES

from .calibrate import threshold_for_share
from .datasets import Example, label_values, load
from .embedding_cache import embed_cached
from .evaluate import baseline_scores, cross_val_raw, evaluate_scores, group_names, held_out_calibration
from .models import MODEL_KINDS, fit_model, make_model

__all__ = ["prepare_inputs", "train_artifact", "prompt_key", "OOF_FILE", "load_oof", "limit_per_source"]

OOF_FILE = "oof_scores.npz"
CALIBRATION_TARGETS = (0.2, 0.5, 0.8)


def prompt_key(text: str) -> str:
    """16-hex-digit SHA-256 prefix of a prompt (the key of ``oof_scores.npz``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def limit_per_source(examples: Sequence[Example], limit: int | None) -> list[Example]:
    """The first ``limit`` prompts of each dataset (all when None)."""
    if not limit:
        return list(examples)
    counts: dict[str, int] = {}
    kept = []
    for e in examples:
        if counts.get(e.source, 0) < limit:
            kept.append(e)
            counts[e.source] = counts.get(e.source, 0) + 1
    return kept


def prepare_inputs(examples: Sequence[Example], embedder: str = "minilm", progress: bool = True,
                   names: Sequence[str] = FEATURE_NAMES) -> tuple[np.ndarray, int]:
    """Model inputs for ``examples``: (array of shape (n, dim + len(names)), dim); ``names`` are
    the text features (``ALL_FEATURE_NAMES`` for the ``transfer`` kind)."""
    texts = [e.prompt for e in examples]
    emb = embed_cached(texts, progress=progress, name=embedder)
    return build_inputs(emb, texts, names), emb.shape[1]


def task_centroids(embedder: str = "minilm") -> np.ndarray:
    """Task-type prototype centroids (:mod:`training.task_types`) under ``embedder``, shape (t, dim)."""
    from .task_types import prototype_centroids

    return prototype_centroids(lambda texts: embed_cached(texts, progress=False, name=embedder))


def _fmt(triple) -> dict[str, float]:
    return {"value": round(float(triple[0]), 4), "ci95_low": round(float(triple[1]), 4), "ci95_high": round(float(triple[2]), 4)}


def card_metrics(results: dict[str, dict]) -> dict[str, dict]:
    """:func:`training.evaluate.evaluate_scores` output in the card's JSON shape."""
    out = {}
    for source, entry in results.items():
        m: dict[str, Any] = {"n_test": entry["n"], "q_weak": round(entry["q_weak"], 4), "q_strong": round(entry["q_strong"], 4)}
        for name, metrics in entry.items():
            if isinstance(metrics, dict):
                m[name] = {k: _fmt(v) for k, v in metrics.items()}
        out[source] = m
    return out


def train_artifact(data: str | Sequence[str], kind: str, label: str, out: str | Path, embedder: str = "minilm",
                   k: int = 5, n_boot: int = 200, seed: int = 0, limit: int | None = None,
                   progress: bool = True, examples: Sequence[Example] | None = None,
                   check_calibration: bool = True) -> dict[str, Any]:
    """Train, cross-validate and write an artifact; return its card.

    Args:
        data: dataset names (``"mmlu,gsm8k"``, ``"all"``, a ``.jsonl`` path) unless ``examples`` is given.
        kind: one of :data:`training.models.MODEL_KINDS`.
        label: ``needs_strong``, ``weak_wrong`` or ``gap``.
        embedder: ``minilm`` or ``static``.
        limit: keep only the first ``limit`` prompts of each dataset (quick runs).
        check_calibration: also measure held-out calibration (``k`` more fits).
    Raises:
        ValueError: unknown kind/label/dataset, or too few prompts for ``k`` folds.
        FileNotFoundError: missing data.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
    if embedder not in EMBEDDER_IDS:
        raise ValueError(f"unknown embedder {embedder!r}; expected one of {', '.join(EMBEDDER_IDS)}")
    rows = limit_per_source(examples if examples is not None else load(data), limit)
    make_model(kind, label, 1)  # fail fast on a kind/label mismatch
    x, dim = prepare_inputs(rows, embedder, progress)
    y = label_values(rows, label)

    bar = _progress(progress, k + 1, f"training {kind} on {label}")
    raw, fold_of = cross_val_raw(rows, x, kind, label, dim, "kfold", k, seed, on_fold=lambda f: bar.update(1))
    platt = fit_platt(raw, label_values(rows, "needs_strong"))
    model = RoutingModel(fit_model(make_model(kind, label, dim, seed), x, y, group_names(rows)), kind, label, platt)
    bar.update(1)
    bar.close()
    held_out = model.predict_proba_from_raw(raw)

    results = evaluate_scores(rows, {"router": raw, **baseline_scores(rows, seed)}, n_boot=n_boot, seed=seed)
    sources = list(dict.fromkeys(e.source for e in rows))
    calibration = {}
    if check_calibration:
        bar = _progress(progress, k, "calibration check")
        shares = held_out_calibration(rows, x, kind, label, dim, CALIBRATION_TARGETS, k, seed, lambda f: bar.update(1))
        bar.close()
        calibration = {f"{t:.1f}": [round(s, 4) for s in v] for t, v in shares.items()}
    card = {
        "name": Path(out).name,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "embedder": EMBEDDER_IDS[embedder],
        "embedder_key": embedder,
        "embedding_dim": int(dim),
        "inputs": ["embedding", "text_features"],
        "text_features": list(FEATURE_NAMES),
        "model": {"kind": kind, "label": label, "estimator": repr(model.model)[:600], "platt": list(platt)},
        "label": label,
        "output": "P(needs the cloud tier) in [0, 1]: Platt mapping of the raw score, balanced classes "
                  "(label 'strong right and weak wrong'); ranking as the raw score",
        "data": {
            "datasets": sources,
            "n_train": len(rows),
            "per_dataset": {s: sum(e.source == s for e in rows) for s in sources},
            "pairs": {s: {"weak": next(e.weak_model for e in rows if e.source == s),
                          "strong": next(e.strong_model for e in rows if e.source == s)} for s in sources},
            "positive_rate": round(float(label_values(rows, "needs_strong").mean()), 4),
            "source": "../shared/data (see its README); RouteLLM contaminated prompts dropped",
        },
        "split": f"{k}-fold cross-validation by prompt (seed {seed}); every metric is on held-out "
                 "(out-of-fold) scores; the shipped model is then refitted on all rows",
        "metrics_protocol": "../shared/data/README.md: PGR over cloud share k/n, APGR by trapezoid, "
                            "CPT first crossing; bootstrap 95% intervals over prompts",
        "n_bootstrap": n_boot,
        "metrics": card_metrics(results),
        "calibration_held_out": {
            "meaning": "cloud share realised on each held-out fold (all datasets pooled) by the threshold "
                       "set on a calibration 20% of the other folds, model fitted on the remaining 80%",
            **calibration,
        },
        "score_quantiles": {
            "meaning": "threshold giving this cloud share on held-out prompts (all datasets pooled)",
            **{f"{q:.1f}": round(threshold_for_share(held_out, q), 4) for q in np.arange(0.1, 1.0, 0.1)},
        },
        "cloud_share_at_0.5": round(float(np.mean(held_out >= 0.5)), 4),
    }
    path = save_artifact(out, model, card)
    np.savez_compressed(path / OOF_FILE, keys=np.array([prompt_key(e.prompt) for e in rows]),
                        scores=held_out.astype(np.float32))
    return card


def load_oof(artifact_dir: str | Path) -> dict[str, float]:
    """Held-out scores saved with an artifact: prompt key -> P(needs cloud); empty when absent."""
    path = Path(artifact_dir) / OOF_FILE
    if not path.is_file():
        return {}
    with np.load(path) as z:
        return dict(zip(z["keys"].tolist(), z["scores"].astype(float).tolist()))


def _progress(enabled: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="fit")


def recipe(artifact_dir: str | Path) -> tuple[str, str, str]:
    """(kind, label, embedder key) of an artifact made by :func:`train_artifact`.

    Raises:
        ValueError: the card does not record a recipe (an older artifact).
    """
    from router.scoring.embedders import embedder_key

    card = load_artifact(artifact_dir).card
    model = card.get("model")
    if not isinstance(model, dict) or "kind" not in model:
        raise ValueError(f"{artifact_dir}: the card records no model kind; retrain it with 'slm-router train'")
    return model["kind"], model["label"], embedder_key(card)
