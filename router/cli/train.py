"""The ``slm-router`` commands that train, evaluate, label and batch-score classifiers
(``calibrate`` is in :mod:`router.cli.calibrate`).

Registered on the main typer app by :mod:`router.cli`; the work is done by the ``training``
package (imported on use). Bad arguments end with a one-line message and exit code 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["train", "evaluate", "score", "label", "metrics_table"]

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors, even when piped

DEFAULT_OUT = Path("router/artifacts/difficulty")
_ROUTERS = ("router", "random", "length", "oracle")
_COLUMNS = (("apgr", "APGR [95% CI]"), ("cpt50", "CPT(50%)"), ("cpt80", "CPT(80%)"),
            ("share_for_95pct_strong", "cloud share for 95% strong"), ("auroc", "AUROC"))


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def _training():
    try:
        import training  # noqa: F401
    except ImportError as err:  # pragma: no cover - a broken install
        _fail(f"the training package is not importable ({err}); install slm-router from a checkout")


def _cell(triple, ci: bool = False) -> str:
    point, lo, hi = (triple["value"], triple["ci95_low"], triple["ci95_high"]) if isinstance(triple, dict) else triple
    if point is None or (isinstance(point, float) and math.isnan(point)):
        return "n/a"
    return f"{point:.3f} [{lo:.3f}, {hi:.3f}]" if ci else f"{point:.3f}"


def metrics_table(source: str, entry: dict, title_extra: str = "") -> Table:
    """A rich table of one dataset's metrics: one row per router, one column per metric."""
    table = Table(title=f"{source} (n={entry.get('n', entry.get('n_test'))}, weak {entry['q_weak']:.3f}, "
                        f"strong {entry['q_strong']:.3f}){title_extra}")
    table.add_column("router")
    for _, head in _COLUMNS:
        table.add_column(head, justify="right")
    for name in _ROUTERS:
        if name in entry:
            table.add_row(name, *(_cell(entry[name][k], ci=(k == "apgr")) for k, _ in _COLUMNS))
    return table


def train(
    data: str = typer.Option("mmlu,gsm8k,arc,winogrande,mbpp", "--data",
                             help="Dataset names, comma-separated (mmlu, gsm8k, arc, winogrande, mbpp, alpaca_eval), "
                                  "'all', or a .jsonl file in the toolkit's schema. The default is the shipped "
                                  "classifier's training data."),
    model: str = typer.Option("stack", "--model", help="Model kind: logistic, ridge, knn, gbm, mlp, stack."),
    label: str = typer.Option("gap", "--label", help="Training target: needs_strong, weak_wrong or gap."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Artifact directory to write."),
    embedder: str = typer.Option("minilm", "--embedder", help="minilm (torch, the default) or static (distilled, <1 ms)."),
    folds: int = typer.Option(5, "--folds", min=2, help="Cross-validation folds for the card's held-out metrics."),
    n_boot: int = typer.Option(200, "--n-boot", min=10, help="Bootstrap resamples for 95% intervals."),
    limit: Optional[int] = typer.Option(None, "--limit", min=10, help="Use only the first N prompts of each dataset."),
    seed: int = typer.Option(0, "--seed"),
    text: str = typer.Option("prompt", "--text", help="With label files: 'prompt' trains a router on the requests; "
                                                      "'answer' trains a verifier on the local answers "
                                                      "(escalation.verifier_artifact)."),
) -> None:
    """Train a classifier, cross-validate it, write the artifact and its card, print the held-out metrics."""
    _training()
    from training.datasets import parse_names
    from training.datasets.local_labels import is_label_file, load_local_labels
    from training.train import train_artifact

    if text not in ("prompt", "answer"):
        _fail(f"--text must be 'prompt' or 'answer', got {text!r}")
    examples = None
    if text == "answer":
        try:
            names = parse_names(data)
        except ValueError as err:
            _fail(str(err))
        if not all(is_label_file(Path(n)) for n in names):
            _fail("--text answer needs label files written by 'slm-router label' in --data")
        examples = [e for n in names for e in load_local_labels(Path(n), text="answer")]
    try:
        card = train_artifact(data, model, label, out, embedder=embedder, k=folds, n_boot=n_boot, seed=seed, limit=limit,
                              examples=examples)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err).strip("'\""))
    for source, entry in card["metrics"].items():
        console.print(metrics_table(source, entry, f", {folds}-fold held-out"))
    console.print(f"wrote {out} ({model} on {label}, {card['data']['n_train']} prompts, embedder {embedder})")


def evaluate(
    artifact: str = typer.Option("builtin", "--artifact", help="Artifact directory or 'builtin'."),
    data: str = typer.Option(..., "--data", help="Dataset names, comma-separated, or a .jsonl file."),
    split: str = typer.Option("kfold", "--split", help="kfold: 5 folds of prompts; group: 5 folds of whole groups "
                              "(unseen MMLU subjects); none: score with the artifact as it is (data it never saw)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG to write (one per dataset: NAME is appended); "
                                        "default runs/eval/<dataset>-<split>.png."),
    folds: int = typer.Option(5, "--folds", min=2),
    n_boot: int = typer.Option(200, "--n-boot", min=10),
    limit: Optional[int] = typer.Option(None, "--limit", min=10, help="Use only the first N prompts of each dataset."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Print the metrics table of the artifact's recipe (or the artifact itself) next to random/length/oracle; write the plot."""
    _training()
    import numpy as np
    from tqdm.auto import tqdm

    from ..scoring.artifact import load_artifact
    from training.datasets import load
    from training.evaluate import baseline_scores, cross_val_raw, evaluate_scores
    from training.metrics import quality_curve
    from training.plot import plot_quality
    from training.train import limit_per_source, prepare_inputs, recipe

    if split not in ("kfold", "group", "none"):
        _fail(f"--split must be kfold, group or none, got {split!r}")
    try:
        art = load_artifact(artifact)
        rows = limit_per_source(load(data), limit)
        kind, label, emb = recipe(art.path) if split != "none" else (None, None, None)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err).strip("'\""))
    if split == "none":
        from ..scoring.classifier import EmbeddingClassifier

        clf = EmbeddingClassifier(art.path)
        overlap = set(art.card.get("data", {}).get("datasets", [])) & {e.source for e in rows}
        if overlap:
            err_console.print(f"[yellow]note:[/] the artifact was trained on {', '.join(sorted(overlap))}; "
                              "--split none scores its own training prompts (use kfold for held-out numbers)")
        texts = [e.prompt for e in rows]
        scores = np.array([s for i in tqdm(range(0, len(texts), 256), desc="scoring")
                           for s in clf.score(texts[i:i + 256])])
        how = "artifact as is"
    else:
        x, dim = prepare_inputs(rows, emb)
        bar = tqdm(total=folds, desc=f"{split} cross-validation ({kind}, {label})", unit="fold")
        try:
            scores, _ = cross_val_raw(rows, x, kind, label, dim, split, folds, seed, on_fold=lambda f: bar.update(1))
        except ValueError as err:
            bar.close()
            _fail(str(err))
        bar.close()
        how = f"{folds}-fold {'by group' if split == 'group' else 'by prompt'}, {kind} on {label}"
    routers = {"router": scores, **baseline_scores(rows, seed)}
    results = evaluate_scores(rows, routers, n_boot=n_boot, seed=seed)
    for source, entry in results.items():
        console.print(metrics_table(source, entry, f", {how}"))
        idx = np.array([i for i, e in enumerate(rows) if e.source == source])
        weak, strong = np.array([rows[i].weak for i in idx]), np.array([rows[i].strong for i in idx])
        curves = {name: quality_curve(s[idx], weak, strong, seed) for name, s in routers.items()}
        target = (plot.with_name(f"{plot.stem}-{source}{plot.suffix or '.png'}") if plot and len(results) > 1
                  else plot or Path("runs") / "eval" / f"{source}-{split}.png")
        plot_quality(curves, target, f"{source}: {how}")
        console.print(f"plot: {target}")


def score(
    input: Path = typer.Option(..., "--input", help="JSONL, one {\"prompt\": \"...\"} per line."),
    output: Path = typer.Option(..., "--output", help="JSONL to write, one {\"score\": p} per input line, same order."),
    artifact: str = typer.Option("builtin", "--artifact", help="Artifact directory; the shipped default when omitted."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
) -> None:
    """Batch-score prompts: P(needs the cloud tier) per line, higher = more in need. A stable interface for other tools."""
    from tqdm.auto import tqdm

    from ..scoring.classifier import EmbeddingClassifier

    if not input.is_file():
        _fail(f"input file not found: {input}")
    prompts: list[str] = []
    with input.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                _fail(f"{input}:{n}: empty line; every line must be a JSON object with a 'prompt' string")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                _fail(f"{input}:{n}: not valid JSON ({err.msg})")
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                _fail(f"{input}:{n}: expected {{\"prompt\": \"...\"}} with a string prompt")
            prompts.append(row["prompt"])
    clf = EmbeddingClassifier(artifact)
    try:
        clf.artifact  # load now: a missing artifact is a usage error, not a crash mid-way
    except FileNotFoundError as err:
        _fail(str(err))
    scores: list[float] = []
    for i in tqdm(range(0, len(prompts), batch_size), desc="scoring", unit="batch", disable=len(prompts) <= batch_size):
        scores.extend(clf.score(prompts[i:i + batch_size]))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for s in scores:
            fh.write(json.dumps({"score": round(float(s), 6)}) + "\n")
    tmp.replace(output)
    err_console.print(f"scored {len(scores)} prompts -> {output}", highlight=False)


def label(
    data: str = typer.Option(..., "--data", help="Tasks, comma-separated: sst2, ag_news, trec, boolq, nq_open, xquad, "
                                                  "mmlu, arc, winogrande, bbh, gsm8k, or 'all'."),
    out: Path = typer.Option(..., "--out", help="JSONL file to append labels to (resumes: ids already there are skipped)."),
    tier: str = typer.Option("local", "--tier", help="Tier of the policy to label (its model, api_base and key)."),
    policy_path: Optional[Path] = typer.Option(None, "--policy", help="Policy YAML; the embedded default when omitted."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Items per task (a seeded shuffle, same items every run)."),
    self_check: bool = typer.Option(True, "--self-check/--no-self-check", help="Ask the model whether its answer is right (1 extra token)."),
    consistency: bool = typer.Option(True, "--consistency/--no-consistency", help="Draw a second sample at temperature 0.7."),
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="Items in flight (raise it for a server tier)."),
    seed: int = typer.Option(0, "--seed", help="Shuffle seed of the items."),
) -> None:
    """Run a tier on questions with gold answers, grade each answer, store answers,
    log-probabilities, self-check and consistency as JSON lines (the cascade's labels)."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..errors import PolicyError
    from ..policy import load_policy

    _training()
    from training.datasets import data_root
    from training.label import LabelRun, done_ids, label_items
    from training.label_tasks import TASKS, load_items

    names = list(TASKS) if data.strip() == "all" else [s.strip() for s in data.split(",") if s.strip()]
    try:
        policy = load_policy(policy_path)
        items = load_items(names, data_root(), limit=limit, seed=seed)
    except (ValueError, FileNotFoundError, PolicyError) as err:
        _fail(str(err))
    if tier not in policy.tiers:
        _fail(f"tier {tier!r} is not in the policy; tiers: {', '.join(policy.tiers)}")
    run = LabelRun(tier=tier, self_check=self_check, consistency=consistency, concurrency=concurrency)
    right = {"n": 0, "ok": 0}
    with Progress(TextColumn("[bold]label[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("acc {task.fields[acc]}"), TimeRemainingColumn(), console=err_console) as bar:
        already = done_ids(out)
        task_id = bar.add_task(f"{tier} on {','.join(names)}", total=len(items),
                               completed=sum(it.id in already for it in items), acc="-")

        def step(row: dict) -> None:
            if row.get("error") is None:
                right["n"] += 1
                right["ok"] += bool(row["correct"])
            bar.update(task_id, advance=1, acc=f"{right['ok'] / max(right['n'], 1):.2f}")

        counts = asyncio.run(label_items(policy, items, out, run, progress=step))
    console.print(f"labelled {counts['labelled']} (correct {counts['correct']}), skipped {counts['skipped']} "
                  f"already in {out}, errors {counts['errors']}")
    if counts["errors"]:
        err_console.print(f"[yellow]first error:[/] {counts['first_error']}", highlight=False)
        if not counts["labelled"]:
            raise typer.Exit(code=1)
