"""The keyword rule's card (``router/artifacts/rules/card.json``): its weights, its per-family metrics
next to the untrained baselines, and the score quantiles that serve ``target_cloud_share``.

The rule is not trained, so every family is unseen by it; the card is written by
``slm-router train --model rules --out router/artifacts/rules``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from .calibrate import threshold_for_share
from .families import load_with_families
from .lofo import family_table
from .protocol import fixed_baselines, order_families
from .report import table_json

__all__ = ["write_rules_card"]


def write_rules_card(data: str, out: str | Path, n_boot: int = 200, seed: int = 0,
                     exclude: tuple[str, ...] = ("alpaca_eval",)) -> dict[str, Any]:
    """Score ``data`` with the rule, write ``out/card.json`` and return the card.

    Args:
        exclude: families left out of the score quantiles (still in the metrics).
    Raises:
        ValueError, FileNotFoundError: as :func:`training.families.load_with_families`.
    """
    from router.scoring.rules import OFFSET, WEIGHTS

    rows, fams = load_with_families(data)
    scores = fixed_baselines(rows, seed)
    table = family_table(rows, fams, {"router": scores["rules"], **{k: v for k, v in scores.items() if k != "rules"}},
                         n_boot=n_boot, seed=seed)
    table.families = {f: table.families[f] for f in order_families(table.families)}
    pooled = scores["rules"][~np.isin(fams, exclude)]
    card = {
        "name": "rules",
        "kind": "rules",
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "output": f"sigmoid(sum of keyword/structure weights - {OFFSET}); see router/scoring/rules.py",
        "weights": WEIGHTS,
        "offset": OFFSET,
        "metrics": table_json(table, "the rule is not trained: every family is unseen"),
        "score_quantiles": {
            "meaning": f"threshold giving this cloud share on {', '.join(sorted(set(fams[~np.isin(fams, exclude)])))} "
                       "pooled (the rule's scores take few distinct values, so shares are approximate)",
            **{f"{q:.1f}": round(threshold_for_share(pooled, q), 4) for q in np.arange(0.1, 1.0, 0.1)},
        },
    }
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return card
