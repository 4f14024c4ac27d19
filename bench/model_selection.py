"""Which model family and which label route best: 5-fold APGR on RouteLLM MMLU and GSM8K.

Every model kind of ``training.models`` with every label it accepts (``needs_strong`` =
strong right and weak wrong, ``weak_wrong``, ``gap`` = strong - weak outcome), trained
in-domain on MiniLM embeddings + text features, scored on held-out folds (5-fold by prompt,
seed 0). Prints a markdown table of APGR and CPT(50%), best first per dataset.

Run: ``python bench/model_selection.py [--embedder minilm|static] [--data mmlu,gsm8k]``
(about 20 minutes on 2 cores, most of it gradient boosting on MMLU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.datasets import LABELS, load  # noqa: E402
from training.evaluate import cross_val_raw  # noqa: E402
from training.metrics import router_metrics  # noqa: E402
from training.models import MODEL_KINDS, make_model  # noqa: E402
from training.train import prepare_inputs  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--data", default="mmlu,gsm8k")
    ap.add_argument("--kinds", default=",".join(MODEL_KINDS))
    args = ap.parse_args(argv)
    print(f"embedder {args.embedder}; 5-fold by prompt, in-domain\n")
    print("| data | model | label | APGR | CPT(50%) | AUROC | fit+score s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.data.split(","):
        rows = load(name)
        w, s = np.array([e.weak for e in rows]), np.array([e.strong for e in rows])
        x, dim = prepare_inputs(rows, args.embedder, progress=False)
        results = []
        for kind in args.kinds.split(","):
            for label in LABELS:
                try:
                    make_model(kind, label, dim)
                except ValueError:
                    continue
                t = time.perf_counter()
                m = router_metrics(cross_val_raw(rows, x, kind, label, dim)[0], w, s)
                results.append((m["apgr"], kind, label, m["cpt50"], m["auroc"], time.perf_counter() - t))
                print(f"<!-- {name} {kind} {label} {m['apgr']:.4f} -->", file=sys.stderr, flush=True)
        for apgr, kind, label, cpt50, auc, secs in sorted(results, reverse=True):
            print(f"| {name} | {kind} | {label} | {apgr:.3f} | {cpt50:.3f} | {auc:.3f} | {secs:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
