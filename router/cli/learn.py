"""``slm-router learn``: learn a candidate router from the log's own labels (arguments and tables only).

The work is :func:`router.learning.run.learn`; this module reads the log (a SQLite file, or
the policy's Redis stream), prints the labels, the comparison with its intervals and the
learning curve, and writes the outputs. A candidate that its test does not find better
is not written: the reason is printed and the exit code is 0. Bad input (a missing log, bad
dates, a log whose embeddings do not fit the prior) ends with a message and exit code 2.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["learn"]

console = Console(width=None if sys.stdout.isatty() else 160)
from .args import fail as _fail, parse_time as _time, require_out


def _iv(t, digits: int = 3) -> str:
    if t is None or t[0] is None or (isinstance(t[0], float) and math.isnan(t[0])):
        return "n/a"
    return f"{t[0]:.{digits}f} [{t[1]:.{digits}f}, {t[2]:.{digits}f}]"


def _read(policy, log: Optional[Path], lo, hi):
    from ..errors import StoreUnavailableError
    from ..store import open_store
    from ..store.base import FeedbackStore
    from .args import open_sqlite_log

    if log is not None:
        store, where = open_sqlite_log(log), str(log)
    elif policy.store.backend == "redis":
        store, where = open_store(policy, reader=True), f"{policy.store.url} stream {policy.store.prefix}:requests"
    else:
        path = Path(policy.log.path)
        store, where = open_sqlite_log(path, "; pass --log"), str(path)
    try:
        feedback = store.feedback(lo, hi) if isinstance(store, FeedbackStore) else []
        return where, store.requests(lo, hi), store.shadows(lo, hi), feedback
    except StoreUnavailableError as err:  # the policy's Redis does not answer
        _fail(str(err))
    finally:
        store.close()


def learn(
    log: Optional[Path] = typer.Option(None, "--log", help="SQLite request log; the policy's store when omitted."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for learning.json and, when promoted, the artifact and policy."),
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="The active policy (its artifact is the prior)."),
    since: Optional[str] = typer.Option(None, help="Start (ISO date/time, UTC when no zone)."),
    until: Optional[str] = typer.Option(None, help="End, exclusive (ISO date/time)."),
    train_share: float = typer.Option(0.3, min=0.1, max=0.9, help="Earliest share of the labels only trained on (the "
                                                                   "warm-up); the rest tests."),
    bootstrap: int = typer.Option(200, min=20, help="Bootstrap resamples of the 95% intervals."),
    blocks: int = typer.Option(4, min=1, max=10, help="Rolling time blocks of the test part, each scored by candidates "
                                                      "fitted on every label before it; all pooled in one test."),
) -> None:
    """Learn a candidate router from the log's labels (judged shadow samples, escalations,
    feedback), stacked on the active artifact; write it only when it beats the active router
    on later traffic: a one-sided paired log-loss test at 5% on out-of-time predictions."""
    require_out(out, "--out")
    from ..errors import PolicyError
    from ..learning.run import learn as run_learn, write_outputs
    from ..policy import load_policy

    lo, hi = _time(since, "--since"), _time(until, "--until")
    if lo is not None and hi is not None and hi <= lo:
        _fail("--until must be later than --since")
    try:
        active = load_policy(policy)
    except PolicyError as err:
        _fail(str(err))
        raise
    where, records, shadows, feedback = _read(active, log, lo, hi)
    try:
        result = run_learn(records, shadows, feedback, active, train_share=train_share, n_boot=bootstrap, blocks=blocks)
    except ValueError as err:
        _fail(str(err))
        raise
    ls = result.labels
    console.print(f"log {where}: {len(records)} requests; labels used {len(ls.labels)} "
                  f"(shadow {ls.by_source['shadow']}, escalation {ls.by_source['escalation']}, "
                  f"cloud-routed judged {ls.by_source['local_shadow']}, "
                  f"feedback {ls.by_source['feedback']}); "
                  + (f"three-way verdicts {sum(lb.three_way for lb in ls.labels)} (local better "
                     f"{sum(lb.cloud_gain < 0 for lb in ls.labels)}); " if ls.three_way else "")
                  + f"labelled without a kept embedding {ls.without_inputs}; "
                  f"train {result.n_train} earlier, test {result.n_test} later", highlight=False, markup=False)
    c = result.comparison
    if c is not None:
        table = Table(title=f"candidate vs active on the later {c.n} labelled requests (95% bootstrap intervals)")
        for h in ("", "candidate", "active"):
            table.add_column(h)
        table.add_row("APGR", _iv(c.apgr_candidate), _iv(c.apgr_active))
        table.add_row("APGR difference", _iv(c.apgr_diff), "")
        for label, t in (("direction probe", result.loss_test), ("chosen strength", result.loss_check)):
            if t is not None:  # the promotion test (router/learning/gate.py)
                table.add_row(f"mean log loss, {label} (one-sided p = {t.p_value:.3f})", f"{t.loss_candidate:.4f}",
                              f"{t.loss_active:.4f} recalibrated")
        table.add_row(f"quality retention at the active cloud share {c.cloud_share:.1%}", _iv(c.retention_candidate),
                      _iv(c.retention_active))
        table.add_row("cloud share for the active router's quality", _iv(c.share_candidate), _iv(c.share_active))
        if c.cost_candidate_usd is not None:
            table.add_row("cloud cost per 1k requests at that quality (USD)",
                          _iv(tuple(1000 * x for x in c.cost_candidate_usd), 4),
                          _iv(tuple(1000 * x for x in c.cost_active_usd), 4))
        console.print(table)
    if result.curve:
        curve = Table(title="learning curve: labels used -> held-out APGR")
        for h in ("labels", "candidate APGR", "active APGR"):
            curve.add_column(h, justify="right")
        for n, cand, act in result.curve:
            curve.add_row(str(n), f"{cand:.3f}", f"{act:.3f}")
        console.print(curve)
    for path in write_outputs(result, out, active, policy):
        console.print(f"wrote {path}", highlight=False, markup=False)
    console.print(result.reason, highlight=False, markup=False)
    if result.verifier is not None:
        console.print(result.verifier.reason, highlight=False)
