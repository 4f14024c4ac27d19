"""The ``slm-router`` command line: ``serve``, ``report``, and ``train``, ``eval``, ``calibrate``,
``score`` (from :mod:`router.training_cli`).

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

from .errors import PolicyError
from .policy import Policy, load_policy

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Route chat requests between a local SLM and a cloud LLM.")
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
) -> None:
    """Run the OpenAI-compatible proxy (POST /v1/chat/completions, GET /v1/models, GET /healthz)."""
    import uvicorn

    from .server import create_app

    active = _policy(policy)
    if not active.cloud.available:
        err_console.print(
            f"[yellow]note:[/] cloud tier '{active.routing.cloud_tier}' ({active.cloud.model}) has no API key; "
            f"requests routed to it are answered by '{active.routing.local_tier}' "
            "(x-router-degraded: true). Set OPENAI_API_KEY or edit the policy.",
            highlight=False,
        )
    uvicorn.run(create_app(active), host=host, port=port, log_level=log_level)


@app.command()
def report(
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy whose log to read."),
    log: Optional[Path] = typer.Option(None, "--log", help="SQLite log file; overrides the policy's log.path."),
    since: Optional[str] = typer.Option(None, help="Start (ISO date/time, UTC when no zone)."),
    until: Optional[str] = typer.Option(None, help="End, exclusive (ISO date/time)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print requests, local share, escalation rate, actual and all-cloud cost, and savings."""
    from .report import summarize
    from .store.sqlite import SQLiteStore

    active = _policy(policy)
    path = log or Path(active.log.path)
    if not path.exists():
        _fail(f"no request log at {path}; run 'slm-router serve' first or pass --log")
    store = SQLiteStore(path)
    try:
        summary = summarize(store.requests(_parse_time(since, "--since"), _parse_time(until, "--until")))
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


# Training, evaluation, calibration and batch scoring live in their own module.
from . import training_cli  # noqa: E402

app.command("train")(training_cli.train)
app.command("eval")(training_cli.evaluate)
app.command("calibrate")(training_cli.calibrate)
app.command("score")(training_cli.score)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
