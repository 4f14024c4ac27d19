"""Rich tables of the held-out protocols (leave-one-family-out, 5-fold, unseen subjects) for the CLI.

:func:`family_table_rich` renders a :class:`training.lofo.FamilyTable`, :func:`json_table` a card
section (:func:`training.report.table_json`); :func:`print_goal` prints issue 18's goal check
(:func:`training.report.goal_check`).
"""

from __future__ import annotations

import math

from rich.table import Table

__all__ = ["family_table_rich", "json_table", "print_goal"]


def _cell(triple, ci: bool = False) -> str:
    point, lo, hi = triple
    if point is None or (isinstance(point, float) and math.isnan(point)):
        return "n/a"
    return f"{point:.3f} [{lo:.3f}, {hi:.3f}]" if ci else f"{point:.3f}"


def family_table_rich(table, title: str) -> Table:
    """A rich table of one protocol (:class:`training.lofo.FamilyTable`): a row per family, then the
    mean and the worst family; the router's APGR [95% CI], CPT(50%) and AUROC, then each
    baseline's APGR."""
    from training.protocol import BASELINES

    routers = [r for r in table.mean if r not in BASELINES]
    out = Table(title=title)
    out.add_column("family")
    out.add_column("n", justify="right")
    for r in routers:
        out.add_column(f"{r} APGR [95% CI]", justify="right")
        out.add_column(f"{r} CPT(50%)", justify="right")
        out.add_column(f"{r} AUROC", justify="right")
    for b in BASELINES:
        if b in table.mean:
            out.add_column(b, justify="right")
    for fam, e in table.families.items():
        cells = []
        for r in routers:
            cells += [_cell(e[r]["apgr"], ci=True), f"{e[r]['cpt50']:.3f}", _cell(e[r]["auroc"])]
        out.add_row(fam, str(e["n"]), *cells, *(_cell(e[b]["apgr"]) for b in BASELINES if b in e))
    for name, agg in (("mean", table.mean), ("worst", table.worst)):
        cells = []
        for r in routers:
            cells += [_cell(agg[r], ci=True) + (f" ({table.worst_family[r]})" if name == "worst" else ""), "", ""]
        out.add_row(f"[bold]{name}[/]", "", *cells, *(_cell(agg[b]) for b in BASELINES if b in agg))
    return out


def print_goal(console, table, goal: dict | None = None) -> None:
    """Print the goal check of ``table`` (or an already computed ``goal``): the LOFO mean against
    each baseline, the families below the best baseline, and those where nothing beats random."""
    from training.report import goal_check

    g = goal or goal_check(table)
    below = [f for f, v in g["families"].items() if not v["met"]]
    diffs = ", ".join(f"{b} {t[0]:+.3f} [{t[1]:+.3f}, {t[2]:+.3f}]" for b, t in g["mean"]["diff_vs"].items())
    console.print(f"LOFO mean, router minus baseline (paired 95% CI): {diffs}; "
                  f"above every baseline beyond the interval: {'yes' if g['mean']['met'] else 'no'}")
    console.print("families where the router is below the best baseline beyond the interval: "
                  + (", ".join(below) if below else "none"))
    if g["no_signal"]:
        console.print("families where nothing beats random (no APGR interval above 0.5): " + ", ".join(g["no_signal"]))


def json_table(section: dict, title: str, baselines) -> Table:
    """A card section (:func:`training.report.table_json`) as a rich table."""
    out = Table(title=f"{title}: APGR [95% CI]")
    routers = [r for r in section["mean"] if r not in baselines] + [b for b in baselines if b in section["mean"]]
    out.add_column("family")
    out.add_column("n", justify="right")
    for r in routers:
        out.add_column(r, justify="right")
    for fam, e in section["families"].items():
        out.add_row(fam, str(e["n"]), *(_cell(e[r]["apgr"], ci=(r == routers[0])) for r in routers))
    out.add_row("[bold]mean[/]", "", *(_cell(section["mean"][r], ci=(r == routers[0])) for r in routers))
    out.add_row("[bold]worst[/]", "", *(f"{_cell(section['worst'][r]['apgr'])} ({section['worst'][r]['family']})"
                                        for r in routers))
    return out
