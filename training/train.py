"""Train a classifier artifact: evaluate the recipe held out, fit it on all rows, write the card.

Steps for ``train_artifact("mmlu,gsm8k,arc", kind="transfer", label="needs_strong", out=DIR)``:

1. load the named sets and name each row's family (:mod:`training.families`); embed every
   prompt (cached on disk);
2. :func:`training.assess.assess`: leave-one-family-out (the headline), 5-fold by prompt and
   unseen MMLU subjects, each next to the baselines (random, length, keyword rule, plain
   logistic regression on the embedding, oracle), with paired bootstrap 95% intervals;
3. a Platt mapping from raw score to P(needs cloud) fitted on the LOFO held-out scores (5-fold
   ones when there is one family); realised cloud share on held-out folds for target shares
   0.2/0.5/0.8 (:func:`training.evaluate.held_out_calibration`);
4. the model refitted on all rows of the families it trains on, wrapped in
   :class:`router.scoring.routing_model.RoutingModel`, saved with its card and the held-out
   scores (``oof_scores.npz``, keyed by a prompt hash, so ``calibrate`` uses held-out scores
   for prompts the model was trained on).
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
from .datasets.base import LABELS
from .embedding_cache import embed_cached
from .evaluate import baseline_scores, evaluate_scores, group_names, held_out_calibration
from .models import MODEL_KINDS, fit_model, make_model
from .protocol import fit_score_fn

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
                   check_calibration: bool = True, params: dict[str, Any] | None = None,
                   exclude: Sequence[str] = (), balance_families: bool = True,
                   chosen_because: str | None = None, min_group_strong: float = 0.0) -> dict[str, Any]:
    """Train, evaluate (LOFO, 5-fold, unseen subjects; :mod:`training.assess`) and write an artifact;
    return its card.

    The Platt mapping and the score quantiles are fitted on held-out scores: LOFO ones when
    the data has two families or more (what new traffic looks like), else 5-fold ones; both
    over the rows of the families trained on.

    Args:
        data: dataset names (``"mmlu,gsm8k"``, ``"all"``, a ``.jsonl`` path) unless ``examples`` is given.
        kind: one of :data:`training.models.MODEL_KINDS`.
        label: ``needs_strong``, ``weak_wrong`` or ``gap``.
        embedder: a key of :data:`router.scoring.embedders.EMBEDDER_IDS`.
        limit: keep only the first ``limit`` prompts of each dataset (quick runs).
        check_calibration: also measure held-out calibration (``k`` more fits).
        params: ``transfer``'s parameters (``C``, ``embedding_weight``, ...).
        exclude: families scored but never trained on (e.g. ``alpaca_eval``).
        balance_families: give every training family the same total weight (``transfer``).
        chosen_because: a sentence for the card on why this recipe (model selection).
        min_group_strong: groups whose strong model's mean outcome is below this are not trained on
            (:func:`training.protocol.trusted_rows`; still scored).
    Raises:
        ValueError: unknown kind/label/dataset/embedder, or too few prompts for ``k`` folds.
        FileNotFoundError: missing data.
    """
    from router.scoring.text_features import ALL_FEATURE_NAMES

    from .assess import assess
    from .families import family_names, load_with_families
    from .protocol import Recipe, trusted_rows
    from .report import goal_check, table_json

    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")
    if embedder not in EMBEDDER_IDS:
        raise ValueError(f"unknown embedder {embedder!r}; expected one of {', '.join(EMBEDDER_IDS)}")
    if label not in LABELS:  # before the data is read and embedded, not after
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")
    rows, fams = (examples, family_names(examples)) if examples is not None else load_with_families(data)
    keep = limit_indices(rows, limit)
    rows, fams = [rows[i] for i in keep], fams[keep]
    present = set(fams.tolist())
    recipe_ = Recipe(kind, label, dict(params or {}), balance_families and kind == "transfer",
                     tuple(f for f in exclude if f in present), min_group_strong=min_group_strong)
    names = ALL_FEATURE_NAMES if kind == "transfer" else FEATURE_NAMES
    centroids = task_centroids(embedder) if kind == "transfer" else None
    make_model(kind, label, 1, params={"centroids": np.zeros((1, 1))} if kind == "transfer" else None)  # fail fast
    x, dim = prepare_inputs(rows, embedder, progress, names)
    trained = ~np.isin(fams, recipe_.exclude)
    fitted_rows = trained & trusted_rows(rows, min_group_strong)
    if not trained.any():
        raise ValueError("every family is excluded from training")

    bar = _progress(progress, 5, f"training {kind} on {label}")
    found = assess(rows, fams, x, dim, recipe_, centroids, k, n_boot, seed, on_step=lambda name: bar.update(1))
    held_raw = found.lofo_raw if found.lofo_raw is not None else found.kfold_raw
    platt = fit_platt(held_raw[trained], label_values(rows, "needs_strong")[trained])
    from .protocol import family_weights

    weights = family_weights(fams[fitted_rows]) if balance_families and kind == "transfer" else None
    params_full = {**recipe_.params, "centroids": centroids} if kind == "transfer" else None
    fitted = fit_model(make_model(kind, label, dim, seed, params_full), x[fitted_rows],
                       label_values(rows, label)[fitted_rows], group_names(rows)[fitted_rows], sample_weight=weights)
    model = RoutingModel(fitted, kind, label, platt)
    bar.update(1)
    bar.close()
    held_out = model.predict_proba_from_raw(held_raw)

    results = evaluate_scores(rows, {"router": found.kfold_raw, **baseline_scores(rows, seed)}, n_boot=n_boot, seed=seed)
    sources = list(dict.fromkeys(e.source for e in rows))
    calibration = {}
    if check_calibration:
        shares = held_out_calibration(rows, x, kind, label, dim, CALIBRATION_TARGETS, k, seed,
                                      fit_score=fit_score_fn(recipe_, x, rows, fams, dim, centroids, seed))
        calibration = {f"{t:.1f}": [round(s, 4) for s in v] for t, v in shares.items()}
    lofo = ({**table_json(found.lofo, "leave-one-family-out: each family scored by a model fitted on all other "
                                      "families"), "goal": goal_check(found.lofo)}
            if found.lofo is not None else {"skipped": "the data has one family; LOFO needs two or more"})
    held_name = "leave-one-family-out" if found.lofo_raw is not None else f"{k}-fold"
    card = {
        "name": Path(out).name,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "embedder": EMBEDDER_IDS[embedder],
        "embedder_key": embedder,
        "embedding_dim": int(dim),
        "inputs": ["embedding", "text_features"],
        "text_features": list(names),
        "model": {"kind": kind, "label": label, "estimator": repr(model.model)[:600], "platt": list(platt),
                  "params": recipe_.params, "balance_families": balance_families, "exclude": list(recipe_.exclude),
                  "min_group_strong": min_group_strong,
                  "not_trained_on_groups": sorted({f"{e.source}/{e.group}" for e, t, f in zip(rows, trained, fitted_rows)
                                                   if t and not f}),
                  "recipe": recipe_.describe()},
        "label": label,
        "output": f"P(needs the cloud tier) in [0, 1]: Platt mapping of the raw score fitted on {held_name} "
                  "held-out scores, balanced classes (label 'strong right and weak wrong'); ranking as the raw score",
        "data": {
            "datasets": sources,
            "families": sorted(set(fams.tolist())),
            "trained_on_families": sorted(set(fams[trained].tolist())),
            "n_train": int(fitted_rows.sum()),
            "per_dataset": {s: sum(e.source == s for e in rows) for s in sources},
            "pairs": {s: {"weak": next(e.weak_model for e in rows if e.source == s),
                          "strong": next(e.strong_model for e in rows if e.source == s)} for s in sources},
            "positive_rate": round(float(label_values(rows, "needs_strong")[trained].mean()), 4),
            "source": "../shared/data (see its README); RouteLLM contaminated prompts dropped",
        },
        "split": f"headline: leave-one-family-out (lofo); secondary: {k}-fold cross-validation by prompt (seed {seed}, "
                 "metrics) and folds of whole MMLU subjects (unseen_subject); every metric is on held-out scores; "
                 "the shipped model is then refitted on all rows of the families trained on",
        "metrics_protocol": "../shared/data/README.md: PGR over cloud share k/n, APGR by trapezoid, "
                            "CPT first crossing; bootstrap 95% intervals over prompts (paired across routers)",
        "n_bootstrap": n_boot,
        "lofo": lofo,
        "kfold": table_json(found.kfold, f"{k}-fold by prompt over all families pooled"),
        "unseen_subject": table_json(found.unseen_subject, f"{k} folds of whole MMLU subjects")
        if found.unseen_subject is not None else None,
        "metrics": card_metrics(results),
        "calibration_held_out": {
            "meaning": "cloud share realised on each held-out fold (all datasets pooled) by the threshold "
                       "set on a calibration 20% of the other folds, model fitted on the remaining 80%",
            **calibration,
        },
        "score_quantiles": {
            "meaning": f"threshold giving this cloud share on {held_name} held-out prompts (families trained on, pooled)",
            **{f"{q:.1f}": round(threshold_for_share(held_out[trained], q), 4) for q in np.arange(0.1, 1.0, 0.1)},
        },
        "cloud_share_at_0.5": round(float(np.mean(held_out[trained] >= 0.5)), 4),
    }
    if chosen_because:
        card["chosen_because"] = chosen_because
    path = save_artifact(out, model, card)
    np.savez_compressed(path / OOF_FILE, keys=np.array([prompt_key(e.prompt) for e in rows]),
                        scores=held_out.astype(np.float32))
    return card


def limit_indices(examples: Sequence[Example], limit: int | None) -> np.ndarray:
    """Indices of the first ``limit`` prompts of each dataset (all when None)."""
    counts: dict[str, int] = {}
    kept = []
    for i, e in enumerate(examples):
        if not limit or counts.get(e.source, 0) < limit:
            kept.append(i)
            counts[e.source] = counts.get(e.source, 0) + 1
    return np.array(kept, dtype=int)


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
