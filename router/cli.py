"""The ``slm-router`` command line: ``serve``, ``report``, ``train``, ``policy``.

Bad arguments and invalid policies end with a one-line message and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .cli_policy import policy_app
from .errors import PolicyError
from .policy import Policy, load_policy

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Route chat requests between a local SLM and a cloud LLM.")
app.add_typer(policy_app, name="policy")
console = Console()
err_console = Console(stderr=True)

__all__ = ["app"]


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def _policy(path: Optional[Path]) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as err:
        _fail(str(err))
        raise  # unreachable


def _parse_time(value: Optional[str], option: str) -> Optional[float]:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option} must be an ISO date or time such as 2026-11-29 or 2026-11-29T10:00, got {value!r}")
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


@app.command()
def serve(
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy YAML; the embedded default when omitted."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    watch: bool = typer.Option(True, "--watch/--no-watch", help="Reload the policy when its file changes (SIGHUP always reloads)."),
    workers: int = typer.Option(1, min=1, help="Worker processes (use store: redis to share caches and budgets)."),
    warm_up: bool = typer.Option(True, "--warm-up/--no-warm-up",
                                 help="Load the classifier and in-process models at start (else on first use)."),
) -> None:
    """Run the OpenAI-compatible proxy (POST /v1/chat/completions, /v1/route, GET /v1/models,
    /v1/policy, /healthz, /metrics). Refuses an invalid policy with the messages of 'policy check'."""
    import logging
    import os

    import uvicorn

    if policy is None:
        active = _policy(None)
    else:
        from .policy_check import check_policy_file

        report = check_policy_file(policy)
        if report.errors or report.policy is None:
            err_console.print(report.format(), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2)
        for warning in report.warnings:
            err_console.print(f"[yellow]note:[/] {warning}", highlight=False, soft_wrap=True)
        active = report.policy
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    router_log = logging.getLogger("router")
    router_log.addHandler(handler)
    router_log.setLevel(log_level.upper() if log_level.upper() in logging.getLevelNamesMapping() else "INFO")
    if not active.cloud.available:
        err_console.print(
            f"[yellow]note:[/] cloud tier '{active.routing.cloud_tier}' ({active.cloud.model}) has no API key; "
            f"requests routed to it are answered by '{active.routing.local_tier}' "
            "(x-router-degraded: true). Set OPENAI_API_KEY or edit the policy.",
            highlight=False,
        )
    if workers > 1:
        _prepare_multiprocess_metrics()  # before anything imports prometheus-client's metrics
        from .server import POLICY_ENV, WARM_UP_ENV

        if active.store.backend != "redis":
            err_console.print("[yellow]note:[/] with several workers and store: sqlite, each worker keeps its own "
                              "caches, budgets and rate limits; use store: redis to share them.", highlight=False)
        if policy is not None:
            os.environ[POLICY_ENV] = str(policy.resolve())
        else:
            os.environ.pop(POLICY_ENV, None)
        os.environ[WARM_UP_ENV] = "1" if warm_up else "0"
        uvicorn.run("router.server:app_from_env", factory=True, workers=workers, host=host, port=port,
                    log_level=log_level)
        return
    from .errors import RouterError
    from .server import create_app

    try:
        app_ = create_app(active, warm_up=warm_up, policy_path=policy, watch=watch)
    except RouterError as err:
        _fail(err.message)
    uvicorn.run(app_, host=host, port=port, log_level=log_level)


def _prepare_multiprocess_metrics() -> None:
    """Point prometheus-client's multiprocess mode at an empty folder before workers start
    (a fresh temporary one unless ``PROMETHEUS_MULTIPROC_DIR`` is set; stale files from an
    earlier run are removed, as prometheus-client requires)."""
    import os
    import tempfile

    MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # not imported from .metrics: that would create metrics here

    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        folder = tempfile.mkdtemp(prefix="slm-router-metrics-")
        os.environ[MULTIPROC_ENV] = folder
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink()


@app.command()
def report(
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy whose log to read."),
    log: Optional[Path] = typer.Option(None, "--log", help="SQLite log file; overrides the policy's store."),
    since: Optional[str] = typer.Option(None, help="Start (ISO date/time, UTC when no zone)."),
    until: Optional[str] = typer.Option(None, help="End, exclusive (ISO date/time)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print requests, local share, escalation rate, actual and all-cloud cost, and savings."""
    from .errors import RouterError
    from .report import summarize

    active = _policy(policy)
    lo, hi = _parse_time(since, "--since"), _parse_time(until, "--until")
    if log is None and active.store.backend == "redis":
        from .store import open_store

        path = f"{active.store.url} stream {active.store.prefix}:requests"
        store = open_store(active, reader=True)
    else:
        from .store.sqlite import SQLiteStore

        path = log or Path(active.log.path)
        if not path.exists():
            _fail(f"no request log at {path}; run 'slm-router serve' first or pass --log")
        store = SQLiteStore(path)
    try:
        summary = summarize(store.requests(lo, hi))
    except RouterError as err:
        _fail(err.message)
    finally:
        store.close()
    if as_json:
        console.print_json(json.dumps(asdict(summary)))
        return
    table = Table(title=f"slm-router savings report ({path})", show_header=False)
    pct = "n/a" if summary.savings_pct is None else f"{summary.savings_pct:.1f}%"
    rows = [
        ("requests", f"{summary.requests} ({summary.ok} ok, {summary.failed} failed)"),
        ("served locally", f"{summary.local} ({summary.local_share:.1%} of ok)"),
        ("escalated", f"{summary.escalated} ({summary.escalation_rate:.1%} of ok)"),
        ("answered from cache", str(summary.cache_hits)),
        ("degraded (cloud unavailable)", str(summary.degraded)),
        ("prompt / completion tokens", f"{summary.prompt_tokens} / {summary.completion_tokens}"),
        ("actual cost", f"${summary.actual_usd:.6f}"),
        ("all-cloud cost", f"${summary.all_cloud_usd:.6f}"),
        ("savings", f"${summary.savings_usd:.6f} ({pct})"),
    ]
    if summary.unpriced_calls:
        rows.append(("[yellow]unpriced calls[/]", f"{summary.unpriced_calls} (no known price; excluded from costs)"))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@app.command()
def train(
    out: Path = typer.Option(Path("router/artifacts/difficulty"), help="Artifact directory to write."),
    n_boot: int = typer.Option(200, help="Bootstrap resamples for 95% intervals."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N prompts of each dataset (quick runs)."),
) -> None:
    """Train the difficulty classifier on RouteLLM's MMLU+GSM8K outcomes and write its card."""
    try:
        from training.train_difficulty import main as train_main
    except ImportError as err:
        _fail(f"the training package is not importable ({err})")
    args = ["--out", str(out), "--n-boot", str(n_boot)] + (["--limit", str(limit)] if limit else [])
    try:
        code = train_main(args)
    except FileNotFoundError as err:
        _fail(str(err))
    raise typer.Exit(code=code)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
