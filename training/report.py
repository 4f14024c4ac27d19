"""The protocol's family tables as JSON (artifact cards) and as markdown rows (benches, README).

One shape everywhere: a row per family (then ``mean`` and ``worst``), a column per router
(the recipe first, then :data:`training.protocol.BASELINES`), each cell ``APGR [95% CI]``;
the goal of issue 18 is checked by :func:`goal_check`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .lofo import FamilyTable
from .protocol import BASELINES

__all__ = ["table_json", "markdown_table", "goal_check", "TRAINED_BASELINES"]

TRAINED_BASELINES = ("length", "rules", "logreg")
"""The baselines the goal compares against (random and oracle are floor and ceiling)."""


def _r(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)


def _triple(t) -> list[float | None]:
    return [_r(x) for x in t]


def table_json(table: FamilyTable, protocol: str) -> dict[str, Any]:
    """The table in the card's JSON shape: ``{"protocol", "n_bootstrap", "families": {family:
    {"n", "q_weak", "q_strong", router: {"apgr": [point, lo, hi], "auroc": [...], "cpt50": x}}},
    "mean": {router: [...]}, "worst": {router: {"apgr": [...], "family": name}},
    "diff_vs": {router: {other: [point, lo, hi]}}}``."""
    fams = {}
    for fam, e in table.families.items():
        out: dict[str, Any] = {"n": e["n"], "q_weak": _r(e["q_weak"]), "q_strong": _r(e["q_strong"])}
        for name, m in e.items():
            if isinstance(m, dict):
                out[name] = {"apgr": _triple(m["apgr"]), "auroc": _triple(m["auroc"]), "cpt50": _r(m["cpt50"])}
        fams[fam] = out
    diff: dict[str, dict[str, list]] = {}
    for (r, o), t in table.diff.items():
        diff.setdefault(r, {})[o] = _triple(t)
    return {
        "protocol": protocol,
        "n_bootstrap": table.n_boot,
        "families": fams,
        "mean": {r: _triple(t) for r, t in table.mean.items()},
        "worst": {r: {"apgr": _triple(t), "family": table.worst_family[r]} for r, t in table.worst.items()},
        "diff_vs": diff,
    }


def _cell(t, ci: bool = True) -> str:
    if t is None or t[0] is None or (isinstance(t[0], float) and math.isnan(t[0])):
        return "n/a"
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]" if ci else f"{t[0]:.3f}"


def markdown_table(table: FamilyTable, routers: Sequence[str] | None = None, ci: bool = True) -> list[str]:
    """Markdown lines: header, a row per family with n and each router's APGR, then mean and worst."""
    names = list(routers) if routers else [r for r in table.mean if r not in BASELINES] + [
        b for b in BASELINES if b in table.mean]
    lines = ["| family | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for fam, e in table.families.items():
        lines.append(f"| {fam} | {e['n']} | " + " | ".join(_cell(e[r]["apgr"], ci) for r in names if r in e) + " |")
    lines.append("| **mean** | | " + " | ".join(_cell(table.mean[r], ci) for r in names) + " |")
    lines.append("| **worst** | | " + " | ".join(f"{_cell(table.worst[r], False)} ({table.worst_family[r]})"
                                                 for r in names) + " |")
    return lines


def goal_check(table: FamilyTable, router: str = "router") -> dict[str, Any]:
    """Issue 18's goal for ``router`` against :data:`TRAINED_BASELINES`, from paired bootstrap differences.

    - per family: met when the router is not below the best baseline beyond the interval
      (the upper end of the paired 95% interval of router - best baseline is >= 0);
    - mean: met when the router is above every baseline beyond the interval (the lower end of
      each paired interval of the mean difference is > 0);
    - ``no_signal``: families where no router (nor baseline) has an APGR interval above 0.5
      (nothing beats random there).

    Returns:
        ``{"families": {family: {"best_baseline", "diff": [point, lo, hi], "met"}}, "mean": {"diff_vs":
        {baseline: [point, lo, hi]}, "met"}, "no_signal": [families], "met": bool}``.
    """
    fams = {}
    for fam, e in table.families.items():
        base = [b for b in TRAINED_BASELINES if b in e]
        best = max(base, key=lambda b: e[b]["apgr"][0])
        d = table.family_diff.get((fam, router, best))
        fams[fam] = {"best_baseline": best, "diff": _triple(d) if d else None, "met": bool(d and d[2] >= 0)}
    mean = {b: _triple(table.diff[(router, b)]) for b in TRAINED_BASELINES if (router, b) in table.diff}
    mean_met = bool(mean) and all(t[1] is not None and t[1] > 0 for t in mean.values())
    no_signal = [f for f, e in table.families.items()
                 if not any(e[r]["apgr"][1] > 0.5 for r in e if isinstance(e[r], dict) and r != "oracle")]
    return {"families": fams, "mean": {"diff_vs": mean, "met": mean_met}, "no_signal": no_signal,
            "met": mean_met and all(v["met"] for v in fams.values())}
