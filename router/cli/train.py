"""The ``slm-router`` commands that train, evaluate, label and batch-score classifiers
(``calibrate`` is in :mod:`router.cli.calibrate`).

Registered on the main typer app by :mod:`router.cli`; the work is done by the ``training``
package (imported on use). Bad arguments end with a one-line message and exit code 2.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .args import require_out

__all__ = ["train", "evaluate", "score", "label", "metrics_table"]

console = Console(width=None if sys.stdout.isatty() else 200)  # piped: wide enough for the family tables
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors, even when piped

DEFAULT_OUT = Path("router/artifacts/difficulty")
_ROUTERS = ("router", "random", "length", "rules", "logreg", "oracle")
_COLUMNS = (("apgr", "APGR [95% CI]"), ("cpt50", "CPT(50%)"), ("cpt80", "CPT(80%)"),
            ("share_for_95pct_strong", "cloud share for 95% strong"), ("auroc", "AUROC"))


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
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


DEFAULT_TRAIN_DATA = "mmlu,gsm8k,arc,winogrande,mbpp,alpaca_eval"


def train(
    data: str = typer.Option(DEFAULT_TRAIN_DATA, "--data",
                             help="Dataset names, comma-separated (mmlu, gsm8k, arc, winogrande, mbpp, alpaca_eval), "
                                  "'all', label files or .jsonl files in the toolkit's schema (each file is one "
                                  "family). The default is the shipped classifier's data."),
    model: str = typer.Option("transfer", "--model", help="Model kind: transfer, logistic, ridge, knn, gbm, mlp, stack; "
                                                          "or rules: write the keyword rule's card (no training)."),
    label: str = typer.Option("gap", "--label", help="Training target: gap (strong - weak outcome), needs_strong or weak_wrong."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Artifact directory to write."),
    embedder: str = typer.Option("minilm", "--embedder", help="Embedder key (router/scoring/registry.py): minilm "
                                                              "(torch, the default), minilm-int8 (ONNX Runtime int8, what "
                                                              "serving runs), static (distilled, <1 ms)."),
    c: float = typer.Option(0.1, "--C", min=1e-6, help="transfer: inverse L2 penalty (chosen by LOFO in bench/model_selection.py)."),
    embedding_weight: float = typer.Option(0.0, "--embedding-weight", min=0.0,
                                           help="transfer: weight of the raw embedding block (0 = task-type similarities and text features only)."),
    trees: int = typer.Option(100, "--trees", min=0, help="transfer: trees of the small boosted ensemble added on the "
                                                          "task-type and text features (0 = linear only)."),
    prior_weight: float = typer.Option(0.0, "--prior-weight", min=0.0,
                                       help="transfer: weight of the keyword rule's points as a fixed prior (0 = none)."),
    type_prior: float = typer.Option(0.0, "--type-prior", min=0.0,
                                     help="transfer: weight of a fixed task-type prior: similarity to the code, math and "
                                          "reasoning prototypes minus that to writing, chit-chat and knowledge (0 = none)."),
    clip: float = typer.Option(5.0, "--clip", min=0.1, help="transfer: standardised inputs are clipped to [-clip, clip]."),
    min_support: float = typer.Option(0.0, "--min-support", min=0.0, max=1.0,
                                      help="transfer: leave out features that differ from their training median on fewer "
                                           "than this share of the training rows (0 = keep all)."),
    embedding_logreg: float = typer.Option(0.0, "--embedding-logreg", min=0.0,
                                           help="transfer: weight of a plain logistic regression on the raw embedding "
                                                "(label gap > 0, C = 0.1) added to the score (0 = none)."),
    min_group_strong: float = typer.Option(0.0, "--min-group-strong", min=0.0, max=1.0,
                                           help="Groups (dataset/subject) whose strong model's mean outcome is below this "
                                                "are not trained on (still scored); 0.25 = chance on four options."),
    drop: str = typer.Option("", "--drop", help="transfer: text features left out, comma-separated (names of "
                                                "router/scoring/text_features.py, or 'multiple_choice' for the answer-"
                                                "option features)."),
    exclude: str = typer.Option("alpaca_eval", "--exclude", help="Families scored but never trained on, comma-separated "
                                                                 "('' for none); AlpacaEval's judge preferences by default."),
    balance: bool = typer.Option(True, "--balance-families/--no-balance-families",
                                 help="transfer: every training family weighs the same in the fit."),
    folds: int = typer.Option(5, "--folds", min=2, help="Folds of the 5-fold and unseen-subject protocols."),
    n_boot: int = typer.Option(200, "--n-boot", min=10, help="Bootstrap resamples for 95% intervals."),
    limit: Optional[int] = typer.Option(None, "--limit", min=10, help="Use only the first N prompts of each dataset."),
    seed: int = typer.Option(0, "--seed"),
    text: str = typer.Option("prompt", "--text", help="With label files: 'prompt' trains a router on the requests; "
                                                      "'answer' trains a verifier on the local answers "
                                                      "(escalation.verifier_artifact)."),
    because: Optional[str] = typer.Option(None, "--because", help="A sentence for the card on why this recipe was chosen."),
) -> None:
    """Train a classifier, evaluate it leave-one-family-out (and 5-fold, unseen subjects) next to the
    baselines, write the artifact and its card, print the tables."""
    require_out(out, "--out")
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
    if model == "rules":
        from training.rules_card import write_rules_card

        try:
            write_rules_card(data, out, n_boot=n_boot, seed=seed)
        except (ValueError, FileNotFoundError, KeyError) as err:
            _fail(str(err).strip("'\""))
        console.print(f"wrote {out / 'card.json'} (the keyword rule: metrics per family, score quantiles)", markup=False)
        return
    params = ({"C": c, "embedding_weight": embedding_weight, "trees": trees, "prior_weight": prior_weight}
              if model == "transfer" else {})
    if model == "transfer" and type_prior:
        params["type_prior_weight"] = type_prior
    if model == "transfer":
        extra = {"clip": (clip, 5.0), "min_support": (min_support, 0.0), "embedding_logreg_weight": (embedding_logreg, 0.0)}
        params.update({k: v for k, (v, default) in extra.items() if v != default})
    if model == "transfer" and drop.strip():
        from ..scoring.transfer import expand_drop

        try:
            params["drop"] = expand_drop(drop)
        except ValueError as err:
            _fail(str(err))
    try:
        card = train_artifact(data, model, label, out, embedder=embedder, k=folds, n_boot=n_boot, seed=seed, limit=limit,
                              examples=examples, params=params, balance_families=balance,
                              exclude=tuple(x.strip() for x in exclude.split(",") if x.strip()), chosen_because=because,
                              min_group_strong=min_group_strong)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err).strip("'\""))
    from training.protocol import BASELINES

    from .train_tables import json_table, print_goal

    for key, title in (("lofo", "leave-one-family-out (headline)"), ("kfold", f"{folds}-fold by prompt (secondary)"),
                       ("unseen_subject", "unseen MMLU subjects (secondary)")):
        section = card.get(key)
        if section and "families" in section:
            console.print(json_table(section, title, BASELINES))
    if "goal" in card["lofo"]:
        print_goal(console, None, card["lofo"]["goal"])
    console.print(f"wrote {out} ({model} on {label}, {card['data']['n_train']} prompts, embedder {embedder})", markup=False)


def evaluate(
    artifact: str = typer.Option("builtin", "--artifact", help="Artifact directory, 'builtin', or 'rules' (the keyword rule)."),
    data: str = typer.Option(..., "--data", help="Dataset names, comma-separated, or .jsonl files (each file one family)."),
    split: str = typer.Option("auto", "--split", help="auto: lofo when the data has two families or more, else none; "
                              "lofo: refit the artifact's recipe leaving each family out; kfold: 5 folds of prompts; "
                              "group: 5 folds of whole groups; unseen: 5 folds of whole MMLU subjects; none: score "
                              "with the artifact as it is (data it never saw)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG to write (one per family: NAME is appended); "
                                        "default runs/eval/<family>-<split>.png."),
    folds: int = typer.Option(5, "--folds", min=2),
    n_boot: int = typer.Option(200, "--n-boot", min=10),
    limit: Optional[int] = typer.Option(None, "--limit", min=10, help="Use only the first N prompts of each dataset."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Print the per-family table (mean, worst) of the artifact or its recipe next to random, length,
    the keyword rule, logistic regression on the embedding and the oracle; write the plots."""
    _training()
    from training.eval_run import EvalError, run_eval

    if split not in ("auto", "lofo", "kfold", "group", "unseen", "none"):
        _fail(f"--split must be auto, lofo, kfold, group, unseen or none, got {split!r}")
    try:
        result = run_eval(artifact, data, split, folds, n_boot, limit, seed, plot=plot,
                          note=lambda m: err_console.print(f"[yellow]note:[/] {escape(m)}", highlight=False))
    except (EvalError, ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err).strip("'\""))
    from .train_tables import family_table_rich, print_goal

    console.print(family_table_rich(result.table, result.how))
    if result.split == "lofo":
        print_goal(console, result.table)
    for target in result.plots:
        console.print(f"plot: {target}")


def score(
    input: Path = typer.Option(..., "--input", help="JSONL, one {\"prompt\": \"...\"} per line."),
    output: Path = typer.Option(..., "--output", help="JSONL to write, one {\"score\": p} per input line, same order."),
    artifact: str = typer.Option("builtin", "--artifact", help="Artifact directory; the shipped default when omitted."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
) -> None:
    """Batch-score prompts: P(needs the cloud tier) per line, higher = more in need. A stable interface for other tools."""
    require_out(output, "--output", is_file=True)
    from tqdm.auto import tqdm

    from ..scoring.classifier import EmbeddingClassifier

    if not input.is_file():
        _fail(f"input file not found: {input}")
    from training.datasets.jsonl import text_lines

    prompts: list[str] = []
    try:
        lines = list(text_lines(input))
    except ValueError as err:
        _fail(str(err))
    for n, line in lines:
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
        clf.artifact  # load now: a missing or unreadable artifact is a usage error, not a crash mid-way
    except (FileNotFoundError, ValueError) as err:  # ArtifactError is a ValueError
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
    require_out(out, "--out", is_file=True)
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
        err_console.print(f"[yellow]first error:[/] {escape(str(counts['first_error']))}", highlight=False)
        if not counts["labelled"]:
            raise typer.Exit(code=1)
