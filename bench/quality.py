"""Router quality on the shared data, next to the random, length and oracle routers.

Prints one markdown table: for each dataset and protocol, the router's APGR (and CPT(50%))
with bootstrap 95% intervals, the baselines, the issue's goal and whether it is met; then
the held-out calibration rows (realised cloud share for target shares 0.2/0.5/0.8).

Every number is on held-out prompts: 5-fold cross-validation by prompt (seed 0), or, for
"grouped", 5 folds of whole MMLU subjects (the held-out subjects are unseen in training).
The router is trained only on the dataset it is evaluated on (in-domain, as RouteLLM's
published numbers), with the recipe of the shipped artifact unless --model/--label/--embedder
say otherwise.

Run: ``python bench/quality.py`` (about 10-20 minutes on 2 cores; ``--quick`` skips the
RouterBench/AlpacaEval rows and uses 100 bootstrap resamples).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.scoring.artifact import builtin_artifact_dir  # noqa: E402
from training.datasets import load  # noqa: E402
from training.evaluate import baseline_scores, cross_val_raw, evaluate_scores, held_out_calibration  # noqa: E402
from training.train import prepare_inputs, recipe  # noqa: E402

GOALS = {  # (dataset, split) -> list of (metric, comparison, goal)
    ("mmlu", "kfold"): [("apgr", ">=", 0.70)],
    ("mmlu", "group"): [("apgr", ">=", 0.65)],
    ("gsm8k", "kfold"): [("apgr", ">=", 0.65), ("cpt50", "<=", 0.30)],
}
PUBLISHED = {("mmlu", "kfold"): "APGR ~0.60 (RouteLLM best)", ("mmlu", "group"): "",
             ("gsm8k", "kfold"): "CPT(50%) ~0.34 (RouteLLM best)"}


def _ci(t) -> str:
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"


def main(argv=None) -> int:
    kind0, label0, emb0 = recipe(builtin_artifact_dir())
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=kind0)
    ap.add_argument("--label", default=label0)
    ap.add_argument("--embedder", default=emb0)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--card", type=Path, default=None,
                    help="artifact directory whose card.json gets these results under 'targets'")
    args = ap.parse_args(argv)
    n_boot = 100 if args.quick else args.n_boot
    runs = [("mmlu", "kfold"), ("mmlu", "group"), ("gsm8k", "kfold")]
    if not args.quick:
        runs += [("arc", "kfold"), ("winogrande", "kfold"), ("mbpp", "kfold"), ("alpaca_eval", "kfold")]
    print(f"recipe: {args.model} on {args.label}, embedder {args.embedder}; in-domain training; n_boot {n_boot}\n")
    header = ("| data, protocol | n | router APGR [95% CI] | random | length APGR [95% CI] | oracle | router CPT(50%) "
              "| length CPT(50%) | AUROC | goal | met | published |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    calib_rows = []
    records: list[dict] = []
    cache: dict[str, tuple] = {}
    for name, split in runs:
        t0 = time.perf_counter()
        if name not in cache:
            rows = load(name)
            cache[name] = (rows, *prepare_inputs(rows, args.embedder, progress=False))
        rows, x, dim = cache[name]
        scores, _ = cross_val_raw(rows, x, args.model, args.label, dim, split, 5, 0)
        res = evaluate_scores(rows, {"router": scores, **baseline_scores(rows)}, n_boot=n_boot)[name]
        r, ln = res["router"], res["length"]
        goals = GOALS.get((name, split), [])
        met = all((r[m][0] >= g) if op == ">=" else (r[m][0] <= g) for m, op, g in goals) if goals else None
        goal_txt = " / ".join(f"{'APGR' if m == 'apgr' else 'CPT(50%)'} {op} {g}" for m, op, g in goals) or "beat length"
        beat = r["apgr"][1] > ln["apgr"][2]
        met_txt = ("yes" if met else "no") if goals else ("yes" if beat else "no (intervals overlap)")
        if goals:
            met_txt += "" if beat else "; intervals overlap length"
        proto = "5-fold by prompt" if split == "kfold" else "5-fold by subject (unseen subjects)"
        print(f"| {name}, {proto} | {res['n']} | {_ci(r['apgr'])} | {res['random']['apgr'][0]:.3f} | {_ci(ln['apgr'])} "
              f"| {res['oracle']['apgr'][0]:.3f} | {r['cpt50'][0]:.3f} | {ln['cpt50'][0]:.3f} | {r['auroc'][0]:.3f} "
              f"| {goal_txt} | {met_txt} | {PUBLISHED.get((name, split), '')} |", flush=True)
        records.append({
            "data": name, "protocol": proto, "n": res["n"], "goal": goal_txt, "met": met_txt,
            **{f"{router}_{m}": [round(float(v), 4) for v in res[router][m]]
               for router in ("router", "random", "length", "oracle") for m in ("apgr", "cpt50")},
            "router_auroc": round(float(r["auroc"][0]), 4),
        })
        if split == "kfold" and name in ("mmlu", "gsm8k"):
            shares = held_out_calibration(rows, x, args.model, args.label, dim, (0.2, 0.5, 0.8), 5, 0)
            calib_rows.append((name, shares))
        print(f"<!-- {name} {split}: {time.perf_counter() - t0:.0f} s -->", file=sys.stderr)
    print("\n| calibration (held-out folds) | target | realised share per fold | mean | max |error| | within 3 points |")
    print("|---|---|---|---|---|---|")
    for name, shares in calib_rows:
        for t, v in shares.items():
            err = max(abs(s - t) for s in v)
            print(f"| {name} | {t:.1f} | {', '.join(f'{s:.3f}' for s in v)} | {np.mean(v):.3f} | {err:.3f} "
                  f"| {'yes' if abs(np.mean(v) - t) <= 0.03 else 'no'} (mean){'' if err <= 0.03 else '; not every fold'} |")
    if args.card:
        import json

        path = args.card / "card.json"
        card = json.loads(path.read_text())
        card["targets"] = {
            "how": f"bench/quality.py: {args.model} on {args.label}, embedder {args.embedder}, trained in-domain on "
                   "each dataset; held-out by 5-fold cross-validation (by prompt, or by whole MMLU subject); "
                   f"[value, 95% CI low, high] from {n_boot} bootstrap resamples",
            "rows": records,
            "calibration_held_out": {name: {f"{t:.1f}": [round(x, 4) for x in v] for t, v in shares.items()}
                                     for name, shares in calib_rows},
        }
        path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        print(f"\nwrote the table into {path} under 'targets'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
