"""Cascade benchmark: how well the local SmolLM2's own answers can be checked, and what
router + cascade saves, on labels written by ``slm-router label``.

    slm-router label --data sst2,boolq,mmlu,arc,winogrande,trec,ag_news,nq_open,bbh,xquad \\
        --limit 300 --out .cache/labels/smollm2.jsonl      # about an hour on 2 cores
    python bench/cascade.py --labels .cache/labels/smollm2.jsonl

Prints four tables:

1. **Signals**: per dataset, local accuracy and the held-out AUROC (bootstrap 95% interval)
   of each signal, of the verifier (a classifier of the answer text trained on the labels),
   of the router trained on local labels, and of the combiner (logistic regression over the
   signals and the verifier, with and without the router score) for "local answer
   correct". Verifier, router and combiner scores are out-of-fold (5 folds).
2. **Router training data**: AUROC for "local answer correct" of the router trained on local
   labels, of the strong-vs-weak artifact shipped in the package, and of both stacked.
3. **Mixed workload** (equal parts of each dataset with >= 100 labels): local-only,
   cloud-only, router-only (strong-vs-weak artifact), router trained on local labels,
   cascade-only, router + cascade. Each line's thresholds are chosen on one half (the
   cheapest point reaching 95% of cloud quality) and measured on the other half. Costs: the
   cloud tier is priced as gpt-4-1106-preview (litellm's price map) at the local token
   counts; the local tier at $0.10/hour at 50% utilisation over its measured latency;
   self-check and consistency calls and the wasted local tokens of escalated requests are
   counted. Cloud quality: recorded GPT-4 outcomes for MMLU/GSM8K/ARC/Winogrande, else the
   cloud answer is treated as correct.
4. **Consistency cascade on RouterBench** (recorded answers and USD costs of 11 models):
   accept when two cheap models give the same letter, else pay GPT-4; the pair is chosen on
   the train split (cheapest reaching 95% of GPT-4's accuracy) and measured on test.

``--speed`` adds local tokens/s with signals extracted vs plain llama.cpp generation.
"""

from __future__ import annotations

import argparse
import ast
import csv
import itertools
import math
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from training.cascade import (  # noqa: E402
    COMBINER_SIGNALS, Costs, auroc_ci, best_point, cloud_outcomes, oof_probabilities, row_costs,
    signal_matrix, simulate,
)
from training.label import read_labels  # noqa: E402

console = Console(width=200)
CLOUD_MODEL = "gpt-4-1106-preview"
LOCAL_USD_PER_HOUR, LOCAL_UTILIZATION = 0.10, 0.5
SHOWN_SIGNALS = ("mean_logprob", "min_logprob", "p10_logprob", "first_logprob", "mean_margin", "log_tokens",
                 "self_check", "consistency")


def _fmt(triple: tuple[float, float, float], ci: bool = True) -> str:
    point, lo, hi = triple
    if math.isnan(point):
        return "n/a"
    return f"{point:.2f} [{lo:.2f},{hi:.2f}]" if ci else f"{point:.2f}"


def router_scores(rows: list[dict], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(out-of-fold P(local wrong) of a router trained on the local labels, builtin
    strong-vs-weak artifact score, out-of-fold verifier P(correct) from the answer text),
    each shape (n,)."""
    from router.scoring.classifier import EmbeddingClassifier
    from training.datasets.local_labels import CLOUD, LOCAL, prompt_text
    from training.datasets.base import Example
    from training.evaluate import cross_val_raw
    from training.train import prepare_inputs

    examples = [Example(prompt_text(r["messages"]), r["task"], r["task"],
                        {LOCAL: float(bool(r["correct"])), CLOUD: 1.0}, LOCAL, CLOUD) for r in rows]
    inputs, dim = prepare_inputs(examples, progress=False)
    local, _ = cross_val_raw(examples, inputs, "logistic", "weak_wrong", dim, seed=seed)
    answers = [Example(r.get("answer") or " ", e.source, e.group, e.outcomes, LOCAL, CLOUD) for r, e in zip(rows, examples)]
    a_inputs, a_dim = prepare_inputs(answers, progress=False)
    wrong, _ = cross_val_raw(answers, a_inputs, "logistic", "weak_wrong", a_dim, seed=seed)
    clf = EmbeddingClassifier("builtin")
    builtin = np.array(clf.score([e.prompt for e in examples]))
    return local, builtin, 1.0 - wrong


def signals_table(rows: list[dict], X: np.ndarray, p_sig: np.ndarray, p_all: np.ndarray, local_router: np.ndarray,
                  verifier: np.ndarray, n_boot: int) -> None:
    y = np.array([int(bool(r["correct"])) for r in rows])
    tasks = np.array([r["task"] for r in rows])
    table = Table(title="1. Held-out AUROC for 'local answer correct' [bootstrap 95% CI]")
    for head in ("dataset", "n", "local acc", *SHOWN_SIGNALS, "verifier (answer text)", "router (local labels)",
                 "combiner: signals + verifier", "combiner: + router"):
        table.add_column(head, justify="right")
    for name in [*sorted(set(tasks)), "pooled"]:
        m = np.ones(len(y), bool) if name == "pooled" else tasks == name
        cells = [_fmt(auroc_ci(X[m, COMBINER_SIGNALS.index(s)], y[m], 0), ci=False) for s in SHOWN_SIGNALS]
        table.add_row(name, str(int(m.sum())), f"{y[m].mean():.2f}", *cells,
                      _fmt(auroc_ci(verifier[m], y[m], 0), ci=False),
                      _fmt(auroc_ci(-local_router[m], y[m], 0), ci=False),
                      _fmt(auroc_ci(p_sig[m], y[m], n_boot)), _fmt(auroc_ci(p_all[m], y[m], n_boot)))
    console.print(table)
    mid = [t for t in sorted(set(tasks)) if 0.2 <= y[tasks == t].mean() <= 0.8]
    reached = [t for t in mid if auroc_ci(p_all[tasks == t], y[tasks == t], 0)[0] >= 0.75]
    console.print(f"goal: pooled combiner AUROC >= 0.80 -> {auroc_ci(p_all, y, 0)[0]:.3f}; >= 0.75 on every "
                  f"dataset with local accuracy 20-80% ({', '.join(mid) or 'none'}): met on "
                  f"{len(reached)}/{len(mid)} ({', '.join(reached) or 'none'})")


def training_data_table(rows: list[dict], local_router: np.ndarray, builtin: np.ndarray, n_boot: int) -> None:
    y = np.array([int(bool(r["correct"])) for r in rows])
    tasks = np.array([r["task"] for r in rows])
    stacked = oof_probabilities(np.column_stack([local_router, builtin]), y, strata=tasks)
    table = Table(title="2. Which training data predicts this SLM's right answers (held-out AUROC, pre-routing only)")
    for head in ("dataset", "router on local labels", "strong-vs-weak artifact", "both, stacked"):
        table.add_column(head, justify="right")
    for name in [*sorted(set(tasks)), "pooled"]:
        m = np.ones(len(y), bool) if name == "pooled" else tasks == name
        table.add_row(name, _fmt(auroc_ci(-local_router[m], y[m], n_boot)), _fmt(auroc_ci(-builtin[m], y[m], n_boot)),
                      _fmt(auroc_ci(stacked[m], y[m], n_boot)))
    console.print(table)


def _cloud_prices() -> tuple[float, float]:
    import litellm

    info = litellm.model_cost[CLOUD_MODEL]
    return float(info["input_cost_per_token"]), float(info["output_cost_per_token"])


def mixed_workload(rows: list[dict], local_router: np.ndarray, builtin: np.ndarray, p_sig: np.ndarray,
                   p_all: np.ndarray, seed: int = 0) -> None:
    tasks = np.array([r["task"] for r in rows])
    counts = {t: int((tasks == t).sum()) for t in set(tasks)}
    kept = sorted(t for t, c in counts.items() if c >= 100)
    per = min(counts[t] for t in kept)
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.permutation(np.flatnonzero(tasks == t))[:per] for t in kept])
    halves = [idx[rng.permutation(len(idx))[: len(idx) // 2]]]
    halves.append(np.setdiff1d(idx, halves[0]))
    cin, cout = _cloud_prices()
    sub = [rows[i] for i in range(len(rows))]
    costs_all = row_costs(sub, LOCAL_USD_PER_HOUR, LOCAL_UTILIZATION, cin, cout)
    local_ok = np.array([float(bool(r["correct"])) for r in rows])
    cloud_ok = cloud_outcomes(rows)

    def part(a: np.ndarray | None, ix: np.ndarray) -> np.ndarray | None:
        return None if a is None else a[ix]

    def costs(ix: np.ndarray) -> Costs:
        return Costs(costs_all.local[ix], costs_all.check[ix], costs_all.cloud[ix])

    lines = [
        ("local-only", None, None, "fixed"), ("cloud-only", None, None, "fixed"),
        ("router-only (strong-vs-weak artifact)", builtin, None, "tune"),
        ("router trained on local labels", local_router, None, "tune"),
        ("cascade-only (signals + verifier combiner)", None, p_sig, "tune"),
        ("router (local labels) + cascade", local_router, p_all, "tune"),
    ]
    fit, test = halves
    table = Table(title=f"3. Mixed workload: {len(kept)} datasets x {per} labels ({', '.join(kept)}); thresholds "
                        f"chosen on one half for 95% of cloud quality, measured on the other ({len(test)} requests)")
    for head in ("line", "quality", "vs cloud", "cloud calls", "escalated", "cost USD", "cost vs cloud",
                 "check tokens", "wasted local tokens", "thresholds (router, P(correct))"):
        table.add_column(head, justify="right")
    all_cloud = float(costs(test).cloud.sum())
    check_tokens = np.array([sum((r.get(k) or {}).get("prompt_tokens", 0) + (r.get(k) or {}).get("completion_tokens", 0)
                                 for k in ("self_check", "sample")) for r in rows])
    local_tokens = np.array([r["prompt_tokens"] + r["completion_tokens"] for r in rows])
    for name, router, pc, mode in lines:
        if name == "local-only":
            point = simulate(None, None, local_ok[test], cloud_ok[test], costs(test), math.inf, 0.0)
        elif name == "cloud-only":
            point = simulate(np.zeros(len(test)), None, local_ok[test], cloud_ok[test], costs(test), -math.inf, 0.0)
        else:
            chosen = best_point(part(router, fit), part(pc, fit), local_ok[fit], cloud_ok[fit], costs(fit))
            t_r, t_e = (chosen.t_router, chosen.t_escalate) if chosen else (-math.inf, 0.0)
            point = simulate(part(router, test), part(pc, test), local_ok[test], cloud_ok[test], costs(test), t_r, t_e)
        n = len(test)
        local_mask = np.ones(n, bool) if router is None else part(router, test) < point.t_router
        if name == "cloud-only":
            local_mask = np.zeros(n, bool)
        esc_mask = local_mask & (part(pc, test) < point.t_escalate) if pc is not None else np.zeros(n, bool)
        checks = int(check_tokens[test][local_mask].sum()) if pc is not None else 0
        wasted = int(local_tokens[test][esc_mask].sum())
        thresholds = "-" if mode == "fixed" else f"{point.t_router:.3g}, {point.t_escalate:.3g}"
        table.add_row(name, f"{point.quality:.3f}", f"{point.quality_vs_cloud:.1%}", f"{point.cloud_share:.1%}",
                      f"{point.escalated_share:.1%}", f"{point.cost_usd:.4f}", f"{point.cost_usd / all_cloud:.1%}",
                      str(checks), str(wasted), thresholds)
    console.print(table)


def _letter(raw: str) -> str | None:
    from training.label_tasks import extract_letter

    try:
        parsed = ast.literal_eval(raw)
        raw = " ".join(map(str, parsed)) if isinstance(parsed, list) else str(parsed)
    except (ValueError, SyntaxError):
        pass
    return extract_letter(raw or "")


def _routerbench(task: str, split: str, root: Path) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray],
                                                          dict[str, list]]:
    csv.field_size_limit(10_000_000)
    with (root / f"routerbench/{task}_{split}.csv").open(encoding="utf-8", newline="") as fh:
        data = list(csv.DictReader(fh))
    models = [k.split("|")[0] for k in data[0] if k.endswith("|total_cost")]
    data = [r for r in data if all(str(r.get(m, "")).strip() != "" for m in models)]
    ok = {m: np.array([float(r[m]) for r in data]) for m in models}
    cost = {m: np.array([float(r[f"{m}|total_cost"] or 0) for r in data]) for m in models}
    letters = {m: [_letter(r.get(f"{m}|model_response") or "") for r in data] for m in models}
    return models, ok, cost, letters


def consistency_cascade(root: Path) -> None:
    table = Table(title="4. Consistency cascade on RouterBench (recorded answers and costs): accept when two cheap "
                        "models agree, else GPT-4; pair chosen on train, measured on test")
    for head in ("task", "GPT-4 acc", "GPT-4 cost USD", "pair (chosen on train)", "agree share", "cascade acc",
                 "vs GPT-4", "cascade cost USD", "cost vs GPT-4", "best single cheap model (acc, cost)"):
        table.add_column(head, justify="right")
    for task in ("arc_challenge", "winograde"):
        results = {}
        for split in ("train", "test"):
            models, ok, cost, letters = _routerbench(task, split, root)
            cheap = [m for m in models if m != CLOUD_MODEL]
            gpt4_ok, gpt4_cost = ok[CLOUD_MODEL], cost[CLOUD_MODEL]
            rows = {}
            for a, b in itertools.combinations(cheap, 2):
                agree = np.array([la is not None and la == lb for la, lb in zip(letters[a], letters[b])])
                acc = float(np.where(agree, ok[a], gpt4_ok).mean())
                total = float((cost[a] + cost[b]).sum() + gpt4_cost[~agree].sum())
                rows[(a, b)] = (acc, total, float(agree.mean()))
            results[split] = (rows, float(gpt4_ok.mean()), float(gpt4_cost.sum()), ok, cost, cheap)
        train_rows, train_q, *_ = results["train"]
        ok_pairs = [(p, v) for p, v in train_rows.items() if v[0] >= 0.95 * train_q]
        pair = min(ok_pairs, key=lambda pv: pv[1][1])[0] if ok_pairs else max(train_rows, key=lambda p: train_rows[p][0])
        test_rows, q4, c4, ok, cost, cheap = results["test"]
        acc, total, agree = test_rows[pair]
        single = max(cheap, key=lambda m: ok[m].mean())
        table.add_row(task, f"{q4:.3f}", f"{c4:.4f}", f"{pair[0]} + {pair[1]}", f"{agree:.1%}", f"{acc:.3f}",
                      f"{acc / q4:.1%}", f"{total:.4f}", f"{total / c4:.1%}",
                      f"{single}: {ok[single].mean():.3f}, {cost[single].sum():.4f}")
    console.print(table)


def speed() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from local_tier import bench_generation  # noqa: E402 - bench/local_tier.py

    console.print("5. Local tokens/s with per-token log-probabilities and top-2 (signals) vs plain llama.cpp:")
    bench_generation()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", nargs="+", default=[".cache/labels/smollm2.jsonl"], help="label files")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--speed", action="store_true", help="also measure local tokens/s (about 1 minute)")
    args = parser.parse_args()
    from training.datasets import data_root

    rows = read_labels(args.labels)
    if not rows:
        sys.exit(f"no labelled rows in {args.labels}; run `slm-router label` first")
    tasks = sorted({r["task"] for r in rows})
    console.print(f"{len(rows)} labelled local answers over {len(tasks)} datasets ({', '.join(tasks)}); "
                  f"model {rows[0].get('model')}")
    y = np.array([int(bool(r["correct"])) for r in rows])
    strata = [r["task"] for r in rows]
    local_router, builtin, verifier = router_scores(rows)
    X = signal_matrix(rows, COMBINER_SIGNALS)
    p_sig = oof_probabilities(np.column_stack([X, verifier]), y, strata=strata)
    p_all = oof_probabilities(np.column_stack([X, verifier, local_router]), y, strata=strata)
    signals_table(rows, X, p_sig, p_all, local_router, verifier, args.n_boot)
    training_data_table(rows, local_router, builtin, args.n_boot)
    mixed_workload(rows, local_router, builtin, p_sig, p_all)
    consistency_cascade(data_root())
    if args.speed:
        speed()


if __name__ == "__main__":
    main()
