"""What the faster routing decision costs in routing quality, on the default artifact's data.

Prints markdown tables, all on the default artifact's datasets (its card's ``data``:
RouteLLM MMLU and GSM8K, RouterBench ARC, Winogrande, MBPP, AlpacaEval) and its recipe
(:func:`training.eval_run.artifact_recipe`: kind, label, parameters, family weighting and the
families never trained on; its text features from the card; task-type centroids under each
embedder for the ``transfer`` kind):

1. embedding fidelity: cosine between ``minilm-int8`` (ONNX Runtime int8, reading all 256
   word pieces MiniLM reads, and its default: the first and last 31) and ``minilm`` (torch
   fp32) embeddings of every prompt;
2. the shipped artifact fed those instead of the ``minilm`` embeddings it was
   trained on: score differences, decisions that flip at threshold 0.5, and its APGR on
   each dataset (in-sample for both, so only the difference means something);
3. the recipe retrained on each embedder's inputs: APGR with bootstrap 95% intervals under
   5-fold cross-validation by prompt and leave-one-family-out (:func:`training.lofo.lofo_scores`
   over :func:`training.families.family_names`: MMLU's four categories, GSM8K, ARC,
   Winogrande, MBPP, AlpacaEval), per dataset, plus ``minilm-int8`` on its first 64 word
   pieces only (5-fold only);
4. the two-stage decision: ``static`` scores first and only scores within ``band`` of the
   threshold go to ``minilm-int8``; for each band, the share of requests that reach the
   second stage, decisions that differ from ``minilm-int8`` alone at thresholds 0.4/0.5/0.6,
   and the APGR of the combined scores, under both protocols.

Embeddings are cached on disk by prompt hash (``$SLM_ROUTER_CACHE``, see
``training/embedding_cache.py``); a first run embeds 17,139 prompts three times (20-40 min
on 2 busy cores). Run: ``python bench/embedder_quality.py [--quick] [--fidelity-only]``
(``--quick``: no bounded-input variants, 50 bootstrap draws; ``--fidelity-only``: tables 1-2).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from router.scoring.artifact import load_artifact  # noqa: E402
from router.scoring.routing_model import build_inputs, fit_platt  # noqa: E402

FAMILIES = ("mmlu", "gsm8k", "arc", "winogrande", "mbpp", "alpaca_eval")
BANDS = (0.0, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 1.0)
INT8 = "minilm-int8 (default: the first 256 word pieces, all MiniLM reads)"
INT8_BOUNDED = "minilm-int8, first+last 64"
BOUNDED = {"minilm-int8, first 64": ("minilm-int8-64-head", 64, None)}


def _inputs(rows, key: str, names, embedder=None) -> tuple[np.ndarray, int, np.ndarray]:
    """(inputs with the card's text features, embedding dim, task-type centroids) under one embedder."""
    from training.embedding_cache import embed_cached
    from training.task_types import prototype_centroids

    texts = [e.prompt for e in rows]
    emb = embed_cached(texts, embedder, progress=False, name=key)
    centroids = prototype_centroids(lambda t: embed_cached(t, embedder, progress=False, name=key))
    return build_inputs(emb, texts, names), emb.shape[1], centroids


def _ci(scores, rows, n_boot: int) -> str:
    from training.metrics import bootstrap_metrics

    w, s = np.array([e.weak for e in rows]), np.array([e.strong for e in rows])
    v, lo, hi = bootstrap_metrics(scores, w, s, n_boot=n_boot)["apgr"]
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _apgr(scores, rows) -> float:
    from training.metrics import router_metrics

    w, s = np.array([e.weak for e in rows]), np.array([e.strong for e in rows])
    return router_metrics(scores, w, s)["apgr"]


def _by_family(rows) -> dict[str, np.ndarray]:
    src = np.array([e.source for e in rows])
    return {f: np.flatnonzero(src == f) for f in FAMILIES if (src == f).any()}


def _protocols(recipe, rows, fams, x, dim, centroids, lofo: bool) -> dict[str, np.ndarray]:
    """Raw held-out scores of ``recipe`` on these inputs: 5-fold and (``lofo``) leave-one-family-out."""
    from training.lofo import kfold_scores, lofo_scores
    from training.protocol import fit_score_fn

    fit = fit_score_fn(recipe, x, rows, fams, dim, centroids if recipe.kind == "transfer" else None)
    out = {"5-fold": kfold_scores(len(rows), fit)}
    if lofo:
        out["leave-one-family-out"] = lofo_scores(fams, fit)
    return out


def fidelity(rows, x_torch, x_int8, dim, name: str) -> None:
    cos = (x_torch[:, :dim] * x_int8[:, :dim]).sum(1)
    print(f"\n| embeddings of the default artifact's {len(rows):,} prompts | min | 1st percentile | median |")
    print("|---|---|---|---|")
    print(f"| cosine, {name} vs minilm (torch fp32) | {cos.min():.4f} | {np.percentile(cos, 1):.4f} | {np.median(cos):.4f} |")
    art = load_artifact("builtin")
    p_t = art.estimator.predict_proba(x_torch)[:, 1]
    p_i = art.estimator.predict_proba(x_int8)[:, 1]
    d = np.abs(p_t - p_i)
    flips = np.mean((p_t >= 0.5) != (p_i >= 0.5))
    print(f"\n| shipped artifact, {name} inputs vs minilm | median abs score difference | p99 | max | decisions flipped at 0.5 |")
    print("|---|---|---|---|---|")
    print(f"| all prompts | {np.median(d):.4f} | {np.percentile(d, 99):.4f} | {d.max():.4f} | {flips:.2%} |")
    print(f"\n| dataset | shipped artifact APGR, minilm (in-sample) | with {name} | difference |")
    print("|---|---|---|---|")
    for fam, idx in _by_family(rows).items():
        sub = [rows[i] for i in idx]
        a, b = _apgr(p_t[idx], sub), _apgr(p_i[idx], sub)
        print(f"| {fam} | {a:.3f} | {b:.3f} | {b - a:+.3f} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="no bounded-input variants, 50 bootstrap draws")
    ap.add_argument("--fidelity-only", action="store_true",
                    help="only tables 1 and 2 (the shipped artifact on int8 inputs; no retraining)")
    args = ap.parse_args(argv)
    n_boot = 50 if args.quick else 200
    from router.scoring.onnx_embedder import OnnxEmbedder
    from router.scoring.text_features import FEATURE_NAMES
    from training.eval_run import artifact_recipe
    from training.families import load_with_families

    card = load_artifact("builtin").card
    recipe, _ = artifact_recipe(card)
    names = card.get("text_features") or FEATURE_NAMES
    rows, family = load_with_families(card["data"]["datasets"])
    print(f"{len(rows)} prompts; recipe {recipe.describe()}; load average {os.getloadavg()[0]:.1f}")
    inputs = {"minilm": _inputs(rows, "minilm", names),
              INT8: _inputs(rows, "minilm-int8", names),
              INT8_BOUNDED: _inputs(rows, "minilm-int8-64-h31", names, OnnxEmbedder(max_tokens=64, head=31)),
              "static": _inputs(rows, "static", names)}
    for name in (INT8, INT8_BOUNDED):
        fidelity(rows, inputs["minilm"][0], inputs[name][0], inputs["minilm"][1], name)
    if args.fidelity_only:
        return 0
    if not args.quick:
        for name, (key, n, head) in BOUNDED.items():
            inputs[name] = _inputs(rows, key, names, OnnxEmbedder(max_tokens=n, head=head))

    fams = _by_family(rows)
    scores: dict[str, dict[str, np.ndarray]] = {"5-fold": {}, "leave-one-family-out": {}}
    print("\n| inputs | protocol | " + " | ".join(f"APGR {f} [95% CI]" for f in fams) + " |")
    print("|---|---|" + "---|" * len(fams))
    for name, (x, dim, centroids) in inputs.items():
        lofo = name in ("minilm", INT8, INT8_BOUNDED, "static")  # other variants: 5-fold only (time)
        for proto, raw in _protocols(recipe, rows, family, x, dim, centroids, lofo).items():
            scores[proto][name] = raw
        for proto, by_name in scores.items():
            if name in by_name:
                cells = [_ci(by_name[name][idx], [rows[i] for i in idx], n_boot) for idx in fams.values()]
                print(f"| {name} | {proto} | " + " | ".join(cells) + " |", flush=True)

    for proto, by_name in scores.items():
        two_stage(rows, by_name["static"], by_name[INT8], fams, proto)
    return 0


def two_stage(rows, raw_static, raw_int8, fams, protocol: str) -> None:
    """Band table: static first, minilm-int8 within ``band`` of the threshold (scores of ``protocol``)."""
    from training.datasets import label_values

    y = label_values(rows, "needs_strong")
    a, b = fit_platt(raw_static, y)
    p_s = 1 / (1 + np.exp(-(a * raw_static + b)))
    a, b = fit_platt(raw_int8, y)
    p_i = 1 / (1 + np.exp(-(a * raw_int8 + b)))
    base = {f: _apgr(p_i[idx], [rows[i] for i in idx]) for f, idx in fams.items()}
    print(f"\n{protocol} scores, two-stage decision:\n")
    print("| band | to stage 2 at t=0.5 | decisions differing from minilm-int8 at t=0.4 / 0.5 / 0.6 | "
          + " | ".join(f"APGR {f} (t=0.5)" for f in fams) + " | worst APGR loss |")
    print("|---|---|---|" + "---|" * len(fams) + "---|")
    for band in BANDS:
        diffs, shares = [], []
        for t in (0.4, 0.5, 0.6):
            second = np.abs(p_s - t) < band
            p = np.where(second, p_i, p_s)
            diffs.append(np.mean((p >= t) != (p_i >= t)))
            shares.append(second.mean())
        second = np.abs(p_s - 0.5) < band
        p = np.where(second, p_i, p_s)
        got = {f: _apgr(p[idx], [rows[i] for i in idx]) for f, idx in fams.items()}
        worst = min(got[f] - base[f] for f in fams)
        print(f"| {band:.2f} | {shares[1]:.1%} | " + " / ".join(f"{d:.1%}" for d in diffs) + " | "
              + " | ".join(f"{got[f]:.3f}" for f in fams) + f" | {worst:+.3f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
