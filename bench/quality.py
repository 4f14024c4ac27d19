"""Router quality of an artifact's recipe on the shared data, leave-one-family-out, next to the baselines.

Prints markdown tables:

1. **LOFO** (headline): each family (:mod:`training.families`) scored by the recipe fitted on all
   other families; APGR with paired bootstrap 95% intervals for the recipe and the baselines
   (random, length, the keyword rule, logistic regression on the embedding, oracle); the mean
   and the worst family; the goal check of issue 18 (:func:`training.report.goal_check`);
2. 5-fold by prompt and unseen MMLU subjects (secondary rows);
3. with ``--previous DIR``: the same protocols for another artifact's recipe (e.g. the
   previous default), side by side;
4. the chat check: what the artifact does on unlabelled real chat prompts (Arena-Hard v0.1 and
   v2.0, AlpacaEval's 805 instructions): the cloud share per task type (nearest task-type
   prototype, :mod:`training.task_types`) at threshold 0.5, and the share each threshold gives.

``--card DIR`` writes the comparison and the chat check into that artifact's card (``quality``).

Run: ``python bench/quality.py [--artifact builtin] [--previous DIR] [--card DIR]`` (a few minutes on
2 cores with cached embeddings; a ``stack`` recipe under ``--previous`` takes about 20 more).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.scoring.artifact import load_artifact  # noqa: E402
from training.assess import assess  # noqa: E402
from training.eval_run import artifact_recipe  # noqa: E402
from training.families import load_with_families  # noqa: E402
from training.report import goal_check, markdown_table  # noqa: E402
from training.train import prepare_inputs, task_centroids  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def _families_of(card: dict) -> str:
    return ",".join(card["data"]["datasets"])


def run(artifact: str, n_boot: int, protocols=("lofo", "kfold", "unseen")):
    """(card, assessment) of an artifact's recipe, refitted under the protocols."""
    card = load_artifact(artifact).card
    recipe, emb = artifact_recipe(card)
    rows, fams = load_with_families(_families_of(card))
    x, dim = prepare_inputs(rows, emb, progress=False, names=card.get("text_features"))
    cent = task_centroids(emb) if recipe.kind == "transfer" else None
    return card, recipe, assess(rows, fams, x, dim, recipe, cent, n_boot=n_boot, protocols=protocols)


def print_assessment(name: str, recipe, found) -> None:
    """Markdown tables of one assessment."""
    print(f"### {name}: {recipe.describe()}\n")
    if found.lofo is not None:
        print("leave-one-family-out (headline), APGR [95% CI]:\n")
        print("\n".join(markdown_table(found.lofo)))
        g = goal_check(found.lofo)
        print("\n| goal | met | detail |\n|---|---|---|")
        d = ", ".join(f"{b} {t[0]:+.3f} [{t[1]:+.3f}, {t[2]:+.3f}]" for b, t in g["mean"]["diff_vs"].items())
        print(f"| LOFO mean above every baseline beyond the interval | {'yes' if g['mean']['met'] else 'no'} | "
              f"router - baseline: {d} |")
        for fam, v in g["families"].items():
            t = v["diff"]
            print(f"| {fam}: not below the best baseline ({v['best_baseline']}) beyond the interval | "
                  f"{'yes' if v['met'] else 'no'} | {t[0]:+.3f} [{t[1]:+.3f}, {t[2]:+.3f}] |")
        print(f"| families where nothing beats random | | {', '.join(g['no_signal']) or 'none'} |\n")
    if found.kfold is not None:
        print("5-fold by prompt (secondary), APGR [95% CI]:\n")
        print("\n".join(markdown_table(found.kfold)))
    if found.unseen_subject is not None:
        print("\nunseen MMLU subjects (secondary), APGR [95% CI]:\n")
        print("\n".join(markdown_table(found.unseen_subject)))
    print()


def chat_prompts() -> dict[str, list[str]]:
    """Unlabelled real chat prompts of the shared data: Arena-Hard v0.1 + v2.0, AlpacaEval's instructions."""
    from training.datasets import data_root

    root = data_root()
    arena = [json.loads(line)["prompt"] for f in sorted((root / "arena_hard").glob("*/question.jsonl"))
             for line in f.open(encoding="utf-8") if line.strip()]
    alpaca = [json.loads(line)["instruction"] for line in
              (root / "alpaca_eval" / "alpaca_eval_805_prompts.jsonl").open(encoding="utf-8") if line.strip()]
    return {"arena_hard": arena, "alpaca_eval": alpaca}


def chat_check(artifacts: dict[str, str]) -> dict:
    """Cloud share by task type at 0.5 and per threshold of each artifact on the chat prompts."""
    from router.scoring.classifier import EmbeddingClassifier
    from router.scoring.embedders import embedder_key
    from router.scoring.rules import rule_score
    from training.embedding_cache import embed_cached
    from training.task_types import TYPE_NAMES

    out: dict = {}
    for set_name, texts in chat_prompts().items():
        emb = embed_cached(texts, progress=False, name="minilm")
        types = np.array(TYPE_NAMES)[np.argmax(emb @ task_centroids("minilm").T, axis=1)]
        entry: dict = {"n": len(texts), "task_types": {t: int((types == t).sum()) for t in TYPE_NAMES}}
        for name, art in artifacts.items():
            if art == "rules":
                scores = np.array([rule_score(t) for t in texts])
            else:
                clf = EmbeddingClassifier(art)
                key = embedder_key(clf.artifact.card)
                e = emb if key == "minilm" else embed_cached(texts, progress=False, name=key)
                scores = np.array(clf.score_embeddings(e, texts))
            entry[name] = {
                "share_by_threshold": {f"{t:.1f}": round(float(np.mean(scores >= t)), 3) for t in THRESHOLDS},
                "share_at_0.5_by_type": {t: round(float(np.mean(scores[types == t] >= 0.5)), 3)
                                         for t in TYPE_NAMES if (types == t).any()},
                "mean_score_by_type": {t: round(float(scores[types == t].mean()), 3)
                                       for t in TYPE_NAMES if (types == t).any()},
            }
        out[set_name] = entry
    return out


def print_chat(check: dict) -> None:
    """Markdown tables of :func:`chat_check`."""
    for set_name, entry in check.items():
        names = [k for k in entry if k not in ("n", "task_types")]
        print(f"chat check, {set_name} (n={entry['n']}, unlabelled): cloud share at threshold 0.5 by task type "
              "(nearest prototype)\n")
        print("| task type | n | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
        for t, n in entry["task_types"].items():
            if n:
                print(f"| {t} | {n} | " + " | ".join(f"{entry[a]['share_at_0.5_by_type'][t]:.2f}" for a in names) + " |")
        print(f"\n{set_name}: cloud share per threshold\n")
        print("| threshold | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
        for t in THRESHOLDS:
            print(f"| {t:.1f} | " + " | ".join(f"{entry[a]['share_by_threshold'][f'{t:.1f}']:.2f}" for a in names) + " |")
        print()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", default="builtin")
    ap.add_argument("--previous", default=None, help="another artifact whose recipe is compared (e.g. the old default)")
    ap.add_argument("--previous-protocols", default="lofo,kfold,unseen",
                    help="protocols run for --previous (a stack recipe takes minutes per fit)")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--no-chat", action="store_true", help="skip the chat check")
    ap.add_argument("--card", type=Path, default=None, help="artifact directory whose card.json gets 'quality'")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    card, recipe, found = run(args.artifact, args.n_boot)
    print_assessment(args.artifact, recipe, found)
    summary = {"this": _summary(found)}
    if args.previous:
        _, old_recipe, old = run(args.previous, args.n_boot, protocols=tuple(args.previous_protocols.split(",")))
        print_assessment(args.previous, old_recipe, old)
        summary["previous"] = {**_summary(old), "recipe": old_recipe.describe(), "artifact": args.previous}
        print("| model | LOFO mean APGR [95% CI] | LOFO worst | 5-fold mean | 5-fold MMLU (4 groups, mean) | unseen MMLU subjects |")
        print("|---|---|---|---|---|---|")
        for name, s in (("this", summary["this"]), ("previous", summary["previous"])):
            print(f"| {name} | {s['lofo_mean']} | {s['lofo_worst']} | {s['kfold_mean']} | {s['kfold_mmlu']} | {s['unseen']} |")
        print()
    check = None
    if not args.no_chat:
        arts = {"this": args.artifact, **({"previous": args.previous} if args.previous else {}), "rules": "rules"}
        check = chat_check(arts)
        print_chat(check)
    if args.card:
        path = args.card / "card.json"
        data = json.loads(path.read_text())
        data["quality"] = {"how": "bench/quality.py; APGR [point, 95% CI low, high]", "summary": summary,
                           "chat_check": check}
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"wrote 'quality' into {path}")
    print(f"<!-- {time.perf_counter() - t0:.0f} s -->", file=sys.stderr)
    return 0


def _summary(found) -> dict:
    def ci(t):
        return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"

    k = found.kfold
    out = {"kfold_mean": ci(k.mean["router"]) if k is not None else "-"}
    mmlu = [f for f in k.families if f.startswith("mmlu")] if k is not None else []
    out["kfold_mmlu"] = (f"{np.mean([k.families[f]['router']['apgr'][0] for f in mmlu]):.3f}" if mmlu else "-")
    if found.lofo is not None:
        out["lofo_mean"] = ci(found.lofo.mean["router"])
        out["lofo_worst"] = f"{found.lofo.worst['router'][0]:.3f} ({found.lofo.worst_family['router']})"
    else:
        out["lofo_mean"] = out["lofo_worst"] = "-"
    u = found.unseen_subject
    out["unseen"] = ci(u.mean["router"]) if u is not None else "-"
    return out


if __name__ == "__main__":
    sys.exit(main())
