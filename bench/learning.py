"""Learning from your own traffic, measured: replay recorded traffic through the real server,
learn from the first part, evaluate on the later part.

Traffic sets (``../shared/data``): GSM8K (Mixtral vs GPT-4 correctness), MMLU by subject
group (same pair), RouterBench ARC / Winogrande / MBPP (Mixtral-8x7B chat vs GPT-4) and
AlpacaEval (gemma-7b-it vs GPT-4-Turbo, judge preferences). Each set is shuffled (seed 0) and
subsampled to ``--max-per-set`` prompts (the traffic order). Every prompt is first scored in
this process by the server's own scorer (the same artifact and embedder,
:meth:`EmbeddingClassifier.score_kept`; what the server logs for it). The first ``--first``
share of a set is its learning period: it is sent in order through ``slm-router serve`` (a
subprocess, ``--workers`` processes, the shipped default artifact) with the threshold that
sends ``--cloud-share`` of the learning period's prompts to the cloud (the quantile of their
scores: what an operator reads off the report; no label is read), so the rest is served
locally and can be judged. The local and cloud tiers and the judge are one recorded server
(``bench/recorded_tiers.py``: the weak model's answer, the strong model's, and the recorded
three-way verdict on the weak answer, better / same / worse, from both models' outcomes). Shadow sampling (``uniform``, ``--shadow-rate``,
``judge_tier``) judges the locally served requests and, with ``--cloud-shadow-rate``
(``shadow.cloud_rate``, default 1), the cloud-routed ones (the local tier answers them in the
background: ``local_shadow`` samples), so labels exist on both sides of the threshold; the log
keeps every request's embedding (``keep_for_learning: embedding``). The later part is not replayed: its scores and inputs are
the in-process ones (2 loaded cores).

Per set, on the later part, with the recorded outcomes (APGR as ``../shared/data/README.md``,
paired bootstrap 95% intervals):

- default: the shipped artifact's logged scores;
- all labels (5-fold): the same stacked learner (:func:`router.learning.candidate.fit_candidate`)
  trained on every label of the set (the targets ``learn`` fits, ``--labels``), scored out of fold: how far the set's labels can move
  the router; the gap = its APGR - the default's;
- learned: ``slm-router learn``'s run (:func:`router.learning.run.learn`) on the logged first
  part with at most ``--budget`` judged samples: its artifact when it promoted one (the share
  of the gap it closes), or the reason it refused;
- learning curves, uniform vs uncertain sampling (:func:`router.ledger.shadow.sample_probability`
  with the logged scores and thresholds, the same hash choice as the server, over the
  learning period's judged side(s)): judged samples -> later-part APGR of the candidate
  fitted on them; ``--strategies`` adds ``uncertain@B`` (``shadow.band`` B instead of 0.05) and
  ``uncertain@B:F`` (also ``shadow.floor`` F); ``--repeats R`` averages R draws per budget
  (request ids salted), ``--fit-weights clip@K`` caps the fit's weights
  (:func:`router.learning.candidate.training_weights`), ``--curves-only`` skips ``learn`` and
  the all-labels router (with ``--reuse``: a quick comparison of sampling strategies).

Under each set a line says whether the issue's goal (two thirds of the gap) is met and, when
not, why (:func:`why_not`: no gap, the prior kept for want of labels, or the gate's resolution
against the candidate's gain). ``--print DIR/learning.json`` prints a run's tables again.

Writes ``learning.json`` (every figure and both curves) and ``report.html`` (``slm-router
report`` of the run's log with the curves in its "Learning" section) into ``--out``.
``--quick``: 3 sets of 800 prompts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.recorded_tiers import CLOUD, JUDGE, LOCAL, Recorded, RecordedTiers, outcome_of  # noqa: E402

SETS = ("gsm8k", "mmlu-stem", "mmlu-humanities", "mmlu-social_sciences", "mmlu-other", "arc", "winogrande", "mbpp",
        "alpaca_eval")
BUDGETS = (25, 50, 100, 200, 400, 800)


def load_set(name: str, max_n: int, seed: int = 0):
    """The set's examples, shuffled (the traffic order) and cut to ``max_n``."""
    from training.datasets import load
    from training.families import mmlu_group

    if name.startswith("mmlu-"):
        rows = [e for e in load("mmlu") if mmlu_group(e.group) == name.split("-", 1)[1]]
    else:
        rows = load(name)
    order = np.random.default_rng(seed).permutation(len(rows))[:max_n]
    return [rows[i] for i in order]


def policy_dict(url: str, log: Path, threshold: float, rate: float, cloud_rate: float = 0.0) -> dict:
    price = {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}
    return {
        "tiers": {
            "local": {"model": f"openai/{LOCAL}", "api_base": url, "api_key": "sk-bench", "price": price},
            "cloud": {"model": f"openai/{CLOUD}", "api_base": url, "api_key": "sk-bench",
                      "price": {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 30.0}},
            "judge": {"model": f"openai/{JUDGE}", "api_base": url, "api_key": "sk-bench",
                      "price": {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 30.0}},
        },
        "routing": {"classifier": {"threshold": round(float(threshold), 6)}},
        "escalation": {"enabled": False},
        "shadow": {"rate": rate, "cloud_rate": cloud_rate, "judge_tier": "judge", "max_in_flight": 256},
        "log": {"path": str(log), "keep_for_learning": "embedding"},
    }


def threshold_for(scores, cloud_share: float) -> float:
    """The threshold that sends the top ``cloud_share`` of ``scores`` to the cloud (scores
    only, no label: what an operator reads off the report's score distribution)."""
    if cloud_share <= 0:
        return 1.0
    return float(np.quantile(np.asarray(scores, dtype=float), 1.0 - cloud_share))


class Server:
    """``slm-router serve`` on ``policy_path`` in a subprocess (a context manager); SIGTERM on
    exit, so it drains its log writes and shadow samples."""

    def __init__(self, policy_path: Path, work: Path, workers: int, tag: str) -> None:
        self.policy_path, self.work, self.workers, self.tag = policy_path, work, workers, tag

    def __enter__(self) -> str:
        from bench.proxy import free_port, wait_http

        port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "router.cli", "serve", "--policy", str(self.policy_path), "--port", str(port),
             "--no-watch", "--log-level", "warning", "--workers", str(self.workers)],
            stdout=(self.work / f"server-{self.tag}.log").open("wb"), stderr=subprocess.STDOUT, cwd=self.work)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", self.proc)
        except BaseException:
            self.__exit__()
            raise
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)


async def replay(url: str, prompts: list[str], concurrency: int) -> list[str]:
    """Send each prompt (``model: auto``) in order, ``concurrency`` at a time; the request ids."""
    import aiohttp

    ids: list[str] = [""] * len(prompts)
    queue = list(enumerate(prompts))

    async def worker(session):
        while queue:
            i, p = queue.pop(0)
            body = {"model": "auto", "max_tokens": 64, "messages": [{"role": "user", "content": p}]}
            async with session.post(f"{url}/chat/completions", json=body) as r:
                await r.read()
                ids[i] = r.headers.get("x-request-id", "")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ids


def paired(a: np.ndarray, b: np.ndarray, weak: np.ndarray, strong: np.ndarray, n_boot: int = 200, seed: int = 0):
    """APGR of a, of b, and a - b, each (point, low, high), on the same bootstrap resamples."""
    from training.metrics import apgr, quality_curve

    def both(i):
        return apgr(quality_curve(a[i], weak[i], strong[i])), apgr(quality_curve(b[i], weak[i], strong[i]))

    pa, pb = both(np.arange(len(a)))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(a), len(a))
        try:
            boots.append(both(i))
        except ValueError:
            continue
    arr = np.array(boots)
    iv = lambda p, col: (p, *np.percentile(col, [2.5, 97.5]))  # noqa: E731
    return iv(pa, arr[:, 0]), iv(pb, arr[:, 1]), iv(pa - pb, arr[:, 0] - arr[:, 1])


def strategy_of(name: str) -> tuple[str, float, float]:
    """A curve's sampling strategy: ``uniform``, ``uncertain`` (the policy's default band 0.05,
    floor 0), ``uncertain@B`` (band B) or ``uncertain@B:F`` (band B, ``shadow.floor`` F) ->
    (``shadow.strategy``, ``shadow.band``, ``shadow.floor``)."""
    kind, _, spec = name.partition("@")
    band, _, floor = spec.partition(":")
    return kind, float(band) if band else 0.05, float(floor) if floor else 0.0


def probabilities(rate: float, scores, thresholds, strategy: str) -> list[float]:
    """Each request's sampling probability under ``strategy`` at ``rate`` (``min_rate`` 0.01, as the server)."""
    from router.ledger.shadow import sample_probability

    kind, band, floor = strategy_of(strategy)
    return [sample_probability(s, t, kind, rate, band, min(0.01, rate), floor) for s, t in zip(scores, thresholds)]


def rate_for(budget: int, scores, thresholds, strategy: str) -> float:
    """The shadow rate whose expected number of samples is ``budget`` under ``strategy``."""
    def expected(rate: float) -> float:
        return sum(probabilities(rate, scores, thresholds, strategy))

    lo, hi = 0.0, 1.0
    if expected(1.0) <= budget:
        return 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) < budget else (lo, mid)
    return hi


def score_sets(sets: dict, policy_path: Path) -> dict:
    """Every prompt of every set scored in this process by the server's scorer (the same
    artifact and embedder): set -> list of :class:`StagedScore` (score, embedding, features)."""
    from router.policy import load_policy
    from router.scoring.classifier import EmbeddingClassifier

    policy = load_policy(policy_path)
    scorer = EmbeddingClassifier(policy.routing.classifier.artifact, embedder_key=policy.routing.classifier.embedder)
    return {n: scorer.score_kept([e.prompt for e in rows]) for n, rows in sets.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--max-per-set", type=int, default=2500)
    parser.add_argument("--first", type=float, default=0.5, help="share of each set's traffic learned from")
    parser.add_argument("--cloud-share", type=float, default=0.2,
                        help="share of each set's learning period the policy sends to the cloud: its threshold is "
                             "that quantile of the default's scores there (no label read); the rest is served locally")
    parser.add_argument("--shadow-rate", type=float, default=1.0, help="shadow.rate of the replayed policy")
    parser.add_argument("--cloud-shadow-rate", type=float, default=1.0,
                        help="shadow.cloud_rate of the replayed policy: the cloud-routed requests answered by the "
                             "local tier too and judged (0: labels on the locally served side only)")
    parser.add_argument("--budget", type=int, default=1000, help="judged samples learn may use")
    parser.add_argument("--learn-blocks", type=int, default=None, help="slm-router learn --blocks (default: learn's)")
    parser.add_argument("--learn-train-share", type=float, default=None,
                        help="slm-router learn --train-share (default: learn's)")
    parser.add_argument("--strategies", default="uniform,uncertain",
                        help="learning-curve sampling strategies: uniform, uncertain (band 0.05), uncertain@B (band B)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="learning curves: draws per budget (request ids salted), sizes and APGRs averaged")
    parser.add_argument("--fit-weights", default="ipw",
                        help="learning curves: the fit's weights, ipw (1 / p) or clip@K (capped at K times their median)")
    parser.add_argument("--curves-only", action="store_true",
                        help="the learning curves only (no learn run, no all-labels router)")
    parser.add_argument("--labels", choices=("three-way", "binary"), default="three-way",
                        help="three-way: learn reads the judge's three-way verdicts (better / same / worse) and the "
                             "all-labels router fits the same targets; binary: both read only 'at least as good' "
                             "(the log's three-way verdicts ignored, as in a log written before them)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="3 sets of 800 prompts")
    parser.add_argument("--reuse", type=Path, default=None, help="the work folder of an earlier run: evaluate only")
    parser.add_argument("--replay-only", action="store_true", help="replay and stop (evaluate later with --reuse)")
    parser.add_argument("--print", dest="print_json", type=Path, default=None,
                        help="print the tables of a run's learning.json again (no evaluation)")
    args = parser.parse_args()
    from router.learning.run import BLOCKS, WARMUP

    args.learn_blocks = BLOCKS if args.learn_blocks is None else args.learn_blocks
    args.learn_train_share = WARMUP if args.learn_train_share is None else args.learn_train_share
    if args.print_json is not None:
        print_results(json.loads(args.print_json.read_text()), 0.0, 0.0, {})
        return 0
    if args.quick:
        args.sets, args.max_per_set = "gsm8k,mmlu-humanities,alpaca_eval", 800
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    if args.reuse is not None:  # only the sets that run replayed
        replayed = json.loads((args.reuse / "windows.json").read_text()) if (args.reuse / "windows.json").exists() else {}
        if skipped := [n for n in names if n not in replayed]:
            print(f"--reuse {args.reuse}: not replayed there, skipped: {', '.join(skipped)}", file=sys.stderr)
        names = [n for n in names if n in replayed]
        if not names:
            print(f"--reuse {args.reuse}: no windows.json with any of these sets", file=sys.stderr)
            return 2
    work = args.reuse or Path(tempfile.mkdtemp(prefix="slm-router-learning-"))
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    sets = {n: load_set(n, args.max_per_set) for n in names}
    import yaml

    log = work / "log.sqlite3"
    base_policy = work / "policy.yaml"
    if args.reuse is None:
        base_policy.write_text(yaml.safe_dump(policy_dict("http://127.0.0.1:9/v1", log, 0.5, args.shadow_rate)))
    kept = score_sets(sets, base_policy)
    print(f"scored {sum(len(v) for v in kept.values())} prompts in this process in {time.time() - t_start:.0f}s",
          flush=True)
    if args.reuse is not None:  # evaluate the log of an earlier run again (its windows.json), no replay
        windows = {k: tuple(v) for k, v in json.loads((work / "windows.json").read_text()).items()}
        results = evaluate(sets, kept, windows, log, base_policy, args.budget, out, args.learn_blocks,
                           args.learn_train_share, args.strategies.split(","), args.labels, args.repeats,
                           args.fit_weights, args.curves_only)
        print_results(results, 0.0, time.time() - t_start, {})
        (out / "learning.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
        write_report(log, results, out)
        return 0
    items = [Recorded(e.prompt, f"(recorded {e.weak_model} answer)", f"(recorded {e.strong_model} answer)",
                      outcome != "worse", outcome)
             for rows in sets.values() for e in rows for outcome in (outcome_of(e.weak, e.strong),)]
    tiers = RecordedTiers(items).start()
    windows: dict[str, tuple] = {}
    t_replay = time.time()
    try:
        for n, rows in sets.items():
            cut = int(len(rows) * args.first)
            threshold = threshold_for([k.score for k in kept[n][:cut]], args.cloud_share)
            policy_path = work / f"policy-{n}.yaml"
            policy_path.write_text(yaml.safe_dump(policy_dict(tiers.url, log, threshold, args.shadow_rate, args.cloud_shadow_rate)))
            t0 = time.time()
            with Server(policy_path, work, args.workers, n) as url:
                ids = asyncio.run(replay(url, [e.prompt for e in rows[:cut]], args.concurrency))
            windows[n] = (t0, time.time(), ids, threshold)
            (work / "windows.json").write_text(json.dumps(windows))
            print(f"replayed {n}: the first {cut} of {len(rows)} requests (threshold {threshold:.4f}) in "
                  f"{time.time() - t0:.0f}s", flush=True)
    finally:
        tiers.stop()
    t_replayed = time.time()
    print(f"log and windows in {work} (--reuse {work} evaluates them again)", flush=True)
    if args.replay_only:
        return 0
    results = evaluate(sets, kept, windows, log, base_policy, args.budget, out, args.learn_blocks,
                       args.learn_train_share, args.strategies.split(","), args.labels, args.repeats,
                           args.fit_weights, args.curves_only)
    print_results(results, t_replayed - t_replay, time.time() - t_replayed, tiers.received)
    (out / "learning.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    write_report(log, results, out)
    print(f"wrote {out / 'learning.json'} and {out / 'report.html'}")
    return 0


def targets_of(examples, labels: str) -> np.ndarray:
    """The all-labels and curve routers' targets from the recorded outcomes, as ``learn`` reads
    the judge's verdicts: ``three-way``: ``(1 + gain) / 2`` with gain +1 / 0 / -1 for the
    local answer worse / same / better (:func:`bench.recorded_tiers.outcome_of`); ``binary``:
    1 when it is worse, else 0."""
    from router.ledger.judge import outcome_gain

    gain = np.array([outcome_gain(outcome_of(e.weak, e.strong)) for e in examples], float)
    return (1.0 + gain) / 2.0 if labels == "three-way" else (gain > 0).astype(float)


def evaluate(sets, kept_sets, windows, log: Path, policy_path: Path, budget: int, out: Path,
             learn_blocks: int = 1, train_share: float = 0.7, strategies=("uniform", "uncertain"),
             labels: str = "three-way", repeats: int = 1, fit_weights: str = "ipw", curves_only: bool = False) -> dict:
    """Every figure of every set (see the module docstring); ``curves_only``: the default's APGR
    and the learning curves only (no ``learn`` run, no all-labels router)."""
    from router.learning.candidate import fit_candidate
    from router.learning.run import _prior, _rows, learn
    from router.policy import load_policy
    from router.store.sqlite import SQLiteStore

    store = SQLiteStore(log)
    records, shadows = store.requests(), sorted(store.shadows(), key=lambda s: s.ts)
    store.close()
    if labels == "binary":  # as a log written before the three-way verdict: "at least as good" only
        for s in shadows:
            s.judge_outcome = None
    policy = load_policy(policy_path)
    artifact, reads, names = _prior(policy)
    by_id = {r.id: r for r in records}
    results: dict = {"sets": {}, "curves": {}}
    from router.scoring.prior_stack import PriorStackedModel

    for name, rows in sets.items():
        t0, t_cut, ids = windows[name][:3]
        threshold = windows[name][3] if len(windows[name]) > 3 else None
        first = [by_id[i] for i in ids if i in by_id and "embedding" in (by_id[i].learning or {})]
        truth = {i: e for i, e in zip(ids, rows)}
        later_rows = rows[len(ids):]
        first_ids = {r.id for r in first}
        judged = [s for s in shadows if s.request_id in first_ids and s.judge_verdict is not None][:budget]
        t_learn = time.time()
        res = None if curves_only else learn(first, judged, [], policy, train_share=train_share, n_boot=200,
                                             blocks=learn_blocks)
        t_learn = time.time() - t_learn
        # the later part: scored in this process by the server's scorer (same artifact, same embedder)
        kept = kept_sets[name][len(ids):]
        X_later = np.stack([np.concatenate([k.embedding, np.array([k.features[n] for n in names], np.float32)])
                            for k in kept])
        X = np.vstack([_rows(first, names, None), X_later]).astype(np.float32)
        dim = X.shape[1] - len(names)
        prior = PriorStackedModel(artifact.estimator, reads, dim).prior_proba(X)
        examples = [truth[r.id] for r in first] + later_rows
        y_all = targets_of(examples, labels)
        weak = np.array([e.weak for e in examples])
        strong = np.array([e.strong for e in examples])
        is_later = np.array([False] * len(first) + [True] * len(later_rows))
        default = np.array([r.score for r in first] + [k.score for k in kept], dtype=float)
        recs = first
        L = is_later
        if curves_only:
            entry = {"curves_only": True, "n": len(examples), "n_first": len(first), "judged_first": len(judged),
                     "threshold": threshold,
                     "default": paired(default[L], default[L], weak[L], strong[L], n_boot=50)[0]}
        else:
            entry = _learn_entry(res, X, y_all, prior, L, weak, strong, default, fit_candidate, artifact, reads, dim)
            entry.update({"judged_first": len(judged), "judged_cloud_routed": sum(s.kind == "local_shadow" for s in judged),
                          "labels_mode": labels, "threshold": threshold, "local_first": int(sum(r.local for r in first)),
                          "learn_s": round(t_learn, 1), "n": len(examples), "n_first": len(first)})
        # learning curves: which first-part answers each strategy would have judged (the locally
        # served ones, and the cloud-routed ones when the replay shadowed those with the local tier)
        cloud_side = any(s.kind == "local_shadow" for s in judged)
        local_first = [i for i, r in enumerate(recs) if r.local or (cloud_side and r.routed_tier == "cloud")]
        curves, by_budget = learning_curves(recs, local_first, X, y_all, prior, L, weak, strong,
                                            (artifact.estimator, reads, dim), strategies, repeats, fit_weights)
        entry["curves"], entry["by_budget"] = curves, by_budget
        results["sets"][name] = entry
        for strategy, pts in curves.items():
            results["curves"][f"{name} {strategy}"] = pts
        print_set(name, entry)  # as soon as it is known (the whole table is printed again at the end)
        (out / "learning.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    return results


def _learn_entry(res, X, y_all, prior, L, weak, strong, default, fit_candidate, artifact, reads, dim) -> dict:
    """A set's figures besides the curves: the all-labels router (5-fold, scored out of fold),
    ``learn``'s result ``res`` and its candidate, on the later part (rows ``L``)."""
    from sklearn.model_selection import StratifiedKFold

    oof = np.zeros(len(y_all))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(X, (y_all > 0.5).astype(int)):
        m, _ = fit_candidate(X[tr], y_all[tr], np.ones(len(tr)), prior[tr], artifact.estimator, reads, dim,
                             inner_folds=3)
        oof[te] = m.predict_proba(X[te], prior[te])[:, 1]
    full_iv, default_iv, gap_iv = paired(oof[L], default[L], weak[L], strong[L])
    entry = {"n_later": int(L.sum()),
             "labels_needing_cloud": sum(lb.needs_cloud for lb in res.labels.labels),
             "labels_used": len(res.labels.labels),
             "labels_local_better": sum(lb.cloud_gain < 0 for lb in res.labels.labels),
             "default": default_iv, "all_labels": full_iv, "gap": gap_iv, "learn": res.reason,
             "promoted": res.promote, "label_sources": res.labels.by_source,
             "learn_choice": None if res.choice is None else {"blocks": res.choice.blocks, "C": res.choice.C,
                                                               "losses": res.choice.losses},
             "learn_test": None if res.comparison is None else {
                 "n": res.comparison.n, "apgr_candidate": res.comparison.apgr_candidate,
                 "apgr_active": res.comparison.apgr_active, "apgr_diff": res.comparison.apgr_diff,
                 **({} if res.loss_test is None else {
                     "probe_gain": res.loss_test.diff, "probe_se": res.loss_test.se,
                     "probe_p": res.loss_test.p_value, "chosen_gain": res.loss_check.diff})}}
    if res.candidate is not None:  # learn's candidate on every judged label, promoted or not
        learned = res.candidate.predict_proba(X[L], prior[L])[:, 1]
        learned_iv, _, diff_iv = paired(learned, default[L], weak[L], strong[L])
        entry["learned"], entry["learned_vs_default"] = learned_iv, diff_iv
        entry["closed"] = (learned_iv[0] - default_iv[0]) / gap_iv[0] if gap_iv[0] > 0 else None
    return entry


def learning_curves(recs, local_first, X, y_all, prior, L, weak, strong, prior_model, strategies, repeats: int = 1,
                    fit_weights: str = "ipw") -> tuple[dict, dict]:
    """Per strategy: for each budget of :data:`BUDGETS`, the learning-period requests
    ``recs[local_first]`` the strategy would have judged (:func:`probabilities` at the rate of
    :func:`rate_for`, the server's hash choice :func:`~router.ledger.shadow.is_sampled`), the
    candidate fitted on them (:func:`~router.learning.candidate.fit_candidate`, weights ``1 / p``
    or, with ``fit_weights`` ``clip@K``, those capped by :func:`~router.learning.candidate.training_weights`)
    and its APGR on the later part (rows ``L``). ``repeats`` > 1 draws the sample again with
    the request ids salted (``id#r``: other hash choices, the same probabilities) and averages
    the sample sizes and APGRs, so a curve shows the strategy rather than one draw.

    Returns:
        ({strategy: [(mean judged samples, mean APGR), ...]}, {strategy: {budget: mean APGR}}).
    """
    from router.learning.candidate import fit_candidate, training_weights
    from router.ledger.shadow import is_sampled
    from training.metrics import apgr, quality_curve

    estimator, reads, dim = prior_model
    cap = float(fit_weights.partition("@")[2]) if fit_weights.startswith("clip@") else None
    scores = [recs[i].score for i in local_first]
    thresholds = [recs[i].threshold for i in local_first]
    curves, by_budget = {}, {}
    for strategy in strategies:
        points, by_budget[strategy], saturated = [], {}, False
        for b in BUDGETS:
            if b > len(local_first) or saturated:
                break
            rate = rate_for(b, scores, thresholds, strategy)
            saturated = rate >= 1.0  # the strategy's largest sample: later budgets would repeat it
            ps = probabilities(rate, scores, thresholds, strategy)
            sizes, values = [], []
            for r in range(repeats):
                salt = "" if r == 0 else f"#{r}"
                pick = [(i, p) for i, p in zip(local_first, ps) if is_sampled(recs[i].id + salt, p)]
                idx = np.array([i for i, _ in pick])
                if len(idx) < 10 or len(set(y_all[idx])) < 2:
                    continue
                w = training_weights(np.array([1.0 / p for _, p in pick]), cap)
                m, _ = fit_candidate(X[idx], y_all[idx], w, prior[idx], estimator, reads, dim, inner_folds=3)
                sizes.append(len(idx))
                values.append(apgr(quality_curve(m.predict_proba(X[L], prior[L])[:, 1], weak[L], strong[L])))
            if values:
                points.append((round(float(np.mean(sizes))), float(np.mean(values))))
                by_budget[strategy][b] = float(np.mean(values))
        curves[strategy] = points
    return curves, by_budget


def _iv(t) -> str:
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"


def _set_line(name: str, e: dict) -> str:
    closed = "n/a" if e.get("closed") is None else f"{100 * e['closed']:.0f}% of the gap"
    if e["promoted"]:
        learned = f"promoted {_iv(e['learned'])}, closes {closed}"
    else:
        learned = "learn refused: " + e["learn"]
        if "learned" in e:
            learned += f" [its candidate would score {_iv(e['learned'])}, {closed}]"
    return (f"{name:22s} {e['n']:5d} {e['judged_first']:6d} {_iv(e['default']):>22s} {_iv(e['all_labels']):>22s} "
            f"{_iv(e['gap']):>24s}  {learned}")


def _detail(e: dict) -> str:
    thr = "?" if e.get("threshold") is None else f"{e['threshold']:.4f}"
    out = (f"  threshold {thr}: {e.get('local_first', '?')} of {e['n_first']} learning-period requests local, "
           f"{e.get('judged_cloud_routed', 0)} cloud-routed ones judged; "
           f"{e.get('labels_needing_cloud', '?')} of the judged labels say the cloud was needed"
           + (f", {e['labels_local_better']} that the local answer was better ({e['labels_mode']} labels)"
              if "labels_mode" in e else ""))
    if e.get("learn_choice"):
        c = e["learn_choice"]
        out += f"; learn's CV chose {c['blocks']}" + ("" if c["C"] is None else f" C={c['C']:g}")
    if e.get("learn_test"):
        t = e["learn_test"]
        out += f"; its test: {t['n']} labels, APGR difference {_iv(t['apgr_diff'])}"
        if t.get("probe_p") is not None:
            out += (f", probe log-loss gain {t['probe_gain']:+.4f} +- {t['probe_se']:.4f} (p = {t['probe_p']:.3f}), "
                    f"chosen {t['chosen_gain']:+.4f}")
    return out + f"; learn took {e.get('learn_s', 0):.0f}s"


def why_not(e: dict) -> str:
    """Per set, in words: is the goal (two thirds of the gap) testable, met, or why not. The
    gate's resolution is the half-width of the paired interval of ``learn``'s test; it shrinks
    as 1 / sqrt(test labels), so ``n (half-width / gain)^2`` test labels would resolve a gain."""
    gap = e["gap"]
    if not gap[1] > 0:
        return ("no gap: the router trained with every label does not beat the default beyond its interval; "
                + ("refusing is right" if not e["promoted"] else "promoted anyway"))
    if e["promoted"]:
        ok = e.get("closed") is not None and e["closed"] >= 2 / 3
        return f"goal {'met' if ok else 'not met'}: promoted, closes {100 * (e.get('closed') or 0):.0f}% of the gap"
    t = e.get("learn_test")
    if t is None:
        return "goal not met: learn had too few labels to test"
    lo, hi = t["apgr_diff"][1], t["apgr_diff"][2]
    if t.get("probe_p") is not None and abs(hi - lo) >= 1e-9:  # the gate's log-loss test (router/learning/gate.py)
        gain = e.get("learned_vs_default", (float("nan"),))[0]
        if (e.get("learn_choice") or {}).get("blocks") == "prior":
            return (f"goal not met: the inner CV kept the prior on all {e.get('labels_used', '?')} labels, so there is "
                    f"nothing learned to promote (the direction probe: p = {t['probe_p']:.3f})")
        if t["probe_p"] < 0.05:
            return (f"goal not met: the direction probe is better (p = {t['probe_p']:.3f}) but the inner CV's chosen "
                    f"strength gains {t['chosen_gain']:+.4f} in log loss out of time, so it is not promoted")
        return (f"goal not met: the direction probe's log-loss gain {t['probe_gain']:+.4f} +- {t['probe_se']:.4f} on "
                f"{t['n']} later labels has p = {t['probe_p']:.3f}; the candidate gains {gain:+.3f} APGR on later "
                f"traffic" + ("; refusing is right" if not gain > 0 else ""))
    if abs(hi - lo) < 1e-9:
        n = e.get("labels_used", e.get("judged_first", 0))
        k = e.get("labels_needing_cloud")
        rarer = "?" if k is None else (f"{k} that say the cloud was needed" if k <= n - k
                                       else f"{n - k} that say the local answer was enough")
        return ("goal not met: the inner CV kept the prior on the earlier labels, so the test compares the "
                f"prior with itself: {n} labels, {rarer}, are too few for the embedding's signal to show")
    half = (hi - lo) / 2
    gain = e.get("learned_vs_default", (float("nan"),))[0]
    if not np.isfinite(gain) or gain <= 0:
        return f"goal not met: the candidate is no better on later traffic ({gain:+.3f}); refusing is right"
    if half < gain:
        return (f"goal not met: the gate's test on {t['n']} labels resolves +-{half:.3f}, enough for the "
                f"{gain:+.3f} the candidate refitted on every label gains on later traffic, but the test's "
                f"candidates (trained on the earlier labels only) gained {t['apgr_diff'][0]:+.3f} there")
    need = t["n"] * (half / gain) ** 2
    return (f"goal not met: the gate's test on {t['n']} labels resolves +-{half:.3f}; the candidate gains "
            f"{gain:+.3f} on later traffic, so about {need:.0f} test labels would be needed")


def print_set(name: str, e: dict) -> None:
    """One set's line and curves, printed as soon as it is evaluated."""
    if not e.get("curves_only"):
        print(_set_line(name, e), flush=True)
        print(_detail(e), flush=True)
    for strategy, pts in e["curves"].items():
        print(f"  {strategy:9s} " + "  ".join(f"{n}:{a:.3f}" for n, a in pts), flush=True)


def print_results(results: dict, replay_s: float, eval_s: float, received) -> None:
    print(f"\nreplay {replay_s:.0f}s, evaluation {eval_s:.0f}s; recorded tiers answered {dict(received)}")
    print("\nper traffic set, APGR on the later part (95% paired bootstrap intervals):")
    head = f"{'set':22s} {'n':>5s} {'judged':>6s} {'default':>22s} {'all labels 5-fold':>22s} {'gap':>24s}  learned"
    print(head)
    for name, e in results["sets"].items():
        if e.get("curves_only"):
            print(f"{name:22s} {e['n']:5d} {e['judged_first']:6d} {_iv(e['default']):>22s}  (--curves-only)")
            continue
        print(_set_line(name, e))
        print(_detail(e))
        print("  " + why_not(e))
    print("\nlearning curves (judged samples -> later-part APGR):")
    for name, e in results["sets"].items():
        for strategy, pts in e["curves"].items():
            print(f"  {name:22s} {strategy:9s} " + "  ".join(f"{n}:{a:.3f}" for n, a in pts))
        uni = e["curves"].get("uniform", [])
        for strategy, unc in e["curves"].items():
            if strategy == "uniform" or not uni or not unc:
                continue
            target = uni[-1][1]
            gained = target - e["default"][0]
            reach = next((n for n, a in unc if a >= target - 1e-9), None)
            print(f"  {'':22s} {strategy} reaches uniform's {target:.3f} (at {uni[-1][0]} samples; the default "
                  f"{e['default'][0]:.3f}, so uniform gained {gained:+.3f}) "
                  + (f"with {reach} samples ({reach / uni[-1][0]:.0%})" if reach else "within its budgets: no")
                  + ("" if gained > 1e-9 else "; uniform learned nothing here, so this is no test"))


def write_report(log: Path, results: dict, out: Path) -> None:
    from router.analysis.render import build_report, render
    from router.store.sqlite import SQLiteStore

    store = SQLiteStore(log)
    try:
        curves = {}
        for strategy in sorted({k for e in results["sets"].values() for k in e["by_budget"]}):  # mean over sets, budgets all reached
            per = [{int(k): v for k, v in e["by_budget"].get(strategy, {}).items()} for e in results["sets"].values()]
            common = [b for b in BUDGETS if per and all(b in p for p in per)]
            curves[f"{strategy} (mean over sets)"] = [(b, float(np.mean([p[b] for p in per]))) for b in common]
        for name, e in results["sets"].items():  # and each set's own
            for strategy, pts in e["curves"].items():
                curves[f"{name} {strategy}"] = [tuple(x) for x in pts]
        data = build_report(store.requests(), store.shadows(), source=str(log), feedback=store.feedback(), curves=curves)
    finally:
        store.close()
    (out / "report.html").write_text(render(data, "html"))


if __name__ == "__main__":
    sys.exit(main())
