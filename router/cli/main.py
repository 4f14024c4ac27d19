"""The ``slm-router`` command line: ``serve``, ``report``, ``replay``, ``policy``, ``doctor``, and ``train``,
``eval``, ``calibrate``, ``score`` (from :mod:`router.cli.train`).

Bad arguments and invalid policies end with a one-line message and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .args import fail as _fail, parse_time as _parse_time, read_curves
from .policy import policy_app
from ..errors import PolicyError, StoreUnavailableError
from ..policy import Policy, load_policy

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Route chat requests between a local SLM and a cloud LLM.")
app.add_typer(policy_app, name="policy")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors, even when piped

__all__ = ["app"]




def _policy(path: Optional[Path]) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as err:
        _fail(str(err))
        raise  # unreachable


@app.command()
def serve(
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy YAML; the embedded default when omitted."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0 = any free one)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    watch: bool = typer.Option(True, "--watch/--no-watch", help="Reload the policy when its file changes (SIGHUP always reloads)."),
    workers: int = typer.Option(1, min=1, help="Worker processes (use store: redis to share caches and budgets)."),
    warm_up: bool = typer.Option(True, "--warm-up/--no-warm-up",
                                 help="Load the classifier and in-process models at start (else on first use)."),
    access_log: bool = typer.Option(False, "--access-log/--no-access-log",
                                    help="Log one line per HTTP request (uvicorn's access log; off by default: "
                                         "every request is in the request log already)."),
) -> None:
    """Run the OpenAI-compatible proxy (POST /v1/chat/completions, /v1/route, GET /v1/models,
    /v1/policy, /healthz, /metrics). Refuses an invalid policy with the messages of 'policy check'."""
    import logging
    import os

    from .serve_start import listen_problem

    if (problem := listen_problem(host, port, log_level)) is not None:
        _fail(problem)  # before anything loads
    log_level = log_level.lower()
    # In-process models start loading in their worker processes first, on another core, while
    # this process checks the policy and imports the server and litellm (see serve_start).
    launch = warm_up and workers == 1
    if policy is None:
        active = _policy(None)
        if launch:
            from ..providers.runtimes import launch_runtimes

            launch_runtimes(active)
    else:
        from .serve_start import checked_policy

        report = checked_policy(policy, launch)
        if report.errors or report.policy is None:
            err_console.print(report.format(), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code=2)  # launched workers stop at exit
        for warning in report.warnings:
            err_console.print(f"[yellow]note:[/] {escape(str(warning))}", highlight=False, soft_wrap=True)
        active = report.policy
    from .serve_start import log_problem

    if (problem := log_problem(active)) is not None:
        _fail(problem)  # before the workers start, each of which would fail to open it
    import uvicorn

    from ..api.http_errors import PROTOCOL as HTTP_PROTOCOL

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
        from ..api.app import POLICY_ENV, WARM_UP_ENV

        if active.store.backend != "redis":
            err_console.print("[yellow]note:[/] with several workers and store: sqlite, each worker keeps its own "
                              "caches, budgets and rate limits; use store: redis to share them.", highlight=False)
        if policy is not None:
            os.environ[POLICY_ENV] = str(policy.resolve())
        else:
            os.environ.pop(POLICY_ENV, None)
        os.environ[WARM_UP_ENV] = "1" if warm_up else "0"
        uvicorn.run("router.api.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                    log_level=log_level, access_log=access_log, http=HTTP_PROTOCOL)
        return
    from ..errors import RouterError
    from ..api.app import create_app

    try:
        app_ = create_app(active, warm_up=warm_up, policy_path=policy, watch=watch)
    except RouterError as err:
        _fail(err.message)
    uvicorn.run(app_, host=host, port=port, log_level=log_level, access_log=access_log, http=HTTP_PROTOCOL)


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


def _window(since: Optional[str], until: Optional[str]) -> tuple[Optional[float], Optional[float]]:
    lo, hi = _parse_time(since, "--since"), _parse_time(until, "--until")
    if lo is not None and hi is not None and hi <= lo:
        _fail("--until must be later than --since")
    return lo, hi


def _open_log(active: Policy, log: Optional[Path]):
    """(a description of the log, the store to read it from): ``--log`` or the policy's
    SQLite file, or its Redis stream when the policy's store is redis."""
    if log is None and active.store.backend == "redis":
        from ..store import open_store

        return f"{active.store.url} stream {active.store.prefix}:requests", open_store(active, reader=True)
    from .args import open_sqlite_log

    path = log or Path(active.log.path)
    return path, open_sqlite_log(path, "; run 'slm-router serve' first or pass --log")


def _read_log(active: Policy, log: Optional[Path], lo: float | None, hi: float | None, feedback: bool = False):
    """(where the log is, its requests and its shadow samples in ``[lo, hi)``), plus its
    feedback when ``feedback``. Exits 2 with one line when the policy's Redis is unreachable."""
    from ..store.base import FeedbackStore

    path, store = _open_log(active, log)
    try:
        out = path, store.requests(lo, hi), store.shadows(lo, hi)
        if feedback:
            return out + (store.feedback(lo, hi) if isinstance(store, FeedbackStore) else [],)
        return out
    except StoreUnavailableError as err:  # the policy's Redis does not answer
        _fail(str(err))
    finally:
        store.close()


def _write_out(text: str, out: Optional[Path]) -> None:
    if out is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        _fail(f"cannot write {out}: {err.strerror}")
    err_console.print(f"wrote {out}", highlight=False, markup=False)


@app.command()
def report(
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy whose log to read."),
    log: Optional[Path] = typer.Option(None, "--log", help="SQLite log file; overrides the policy's store."),
    since: Optional[str] = typer.Option(None, help="Start (ISO date/time, UTC when no zone)."),
    until: Optional[str] = typer.Option(None, help="End, exclusive (ISO date/time)."),
    by: Optional[str] = typer.Option(None, "--by", help="Group by: tier, route, model, api-key, day or session."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="md, html, json or csv; a table on the terminal when omitted."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the report to this file instead of stdout."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    learning: Optional[Path] = typer.Option(None, "--learning", help="learning.json of 'slm-router learn': plot its curve."),
) -> None:
    """Costs, savings, escalation tax, shadow spend, estimated quality retention, feedback per
    tier and what the log keeps for learning."""
    from ..analysis.report import GROUPINGS
    from ..analysis.render import FORMATS, build_report, render

    if as_json:
        fmt = fmt or "json"
    if fmt is not None and fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if by is not None and by not in GROUPINGS:
        _fail(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    lo, hi = _window(since, until)
    active = _policy(policy)
    path, records, shadows, feedback = _read_log(active, log, lo, hi, feedback=True)
    data = build_report(records, shadows, source=str(path), since=lo, until=hi, by=by,
                        tiers=(active.routing.local_tier, active.routing.cloud_tier), feedback=feedback,
                        curves=read_curves(learning))
    if fmt is not None:
        _write_out(render(data, fmt), out)
        return
    _print_table(data)
    if by == "session":
        _print_sessions(records)


def _print_sessions(records) -> None:
    from ..analysis.session_report import SESSION_HEADER_ROW, session_rows, session_table_rows

    table = Table(title="sessions: tier switches and what stickiness cost or saved")
    for h in SESSION_HEADER_ROW:
        table.add_column(h, overflow="fold")
    for row in session_table_rows(session_rows(records)):
        table.add_row(*row)
    console.print(table)


def _print_learning(data) -> None:
    from ..analysis.learning_report import FEEDBACK_HEADER, feedback_rows
    from ..analysis.render.text import learning_lines

    if data.learning is None:
        return
    for line in learning_lines(data.learning):
        console.print(line, highlight=False)
    if data.learning.feedback:
        table = Table(title="feedback by tier")
        for h in FEEDBACK_HEADER:
            table.add_column(h)
        for row in feedback_rows(data.learning):
            table.add_row(*row)
        console.print(table)


def _print_table(data) -> None:
    from ..analysis.render.text import GROUP_HEADER, cost_lines, flags, group_rows, headline_rows

    summary = data.summary
    table = Table(title=f"slm-router savings report ({escape(str(data.source))})", show_header=False)
    for k, v in headline_rows(summary):
        table.add_row(k, v)
    header, rows = cost_lines(summary)
    for row in rows:
        tokens = f"; {row[2]} prompt + {row[3]} completion tokens" if row[3] != "-" and row[2].isdigit() else ""
        table.add_row(row[0], f"{row[4]}; {row[1]} calls{tokens}" + (f"; {row[5]}" if row[5] != "-" else ""))
    for w in flags(summary):
        table.add_row("[yellow]flag[/]", w)
    console.print(table)
    if data.shadow_policies:
        from ..analysis.render.text import SHADOW_POLICY_HEADER, shadow_policy_rows

        compared = Table(title="shadow policy vs active (same requests)")
        for h in SHADOW_POLICY_HEADER:
            compared.add_column(h, overflow="fold")
        for row in shadow_policy_rows(data.shadow_policies):
            compared.add_row(*row)
        console.print(compared)
    _print_learning(data)
    if data.by:
        grouped = Table(title=f"by {data.by}")
        for h in GROUP_HEADER:
            grouped.add_column(h, overflow="fold")
        for row in group_rows(data.groups):
            grouped.add_row(*row)
        console.print(grouped)


@app.command()
def replay(
    policy: Path = typer.Option(..., "--policy", "-p", help="The policy to replay the log under (YAML)."),
    log: Optional[Path] = typer.Option(None, "--log", help="SQLite log file; the new policy's log.path when omitted."),
    since: Optional[str] = typer.Option(None, help="Start (ISO date/time, UTC when no zone)."),
    until: Optional[str] = typer.Option(None, help="End, exclusive (ISO date/time)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="md or json; a table on the terminal when omitted."),
) -> None:
    """Re-decide every logged request under another policy, calling no model, and print the
    projected cost, local share, escalation rate and quality beside the actual ones."""
    from ..analysis.render.replay_view import replay_json, replay_markdown, replay_rows
    from ..analysis.replay import replay as run_replay

    if fmt is not None and fmt not in ("md", "json"):
        _fail(f"--format must be md or json, got {fmt!r}")
    lo, hi = _window(since, until)
    active = _policy(policy)
    path, records, shadows = _read_log(active, log, lo, hi)
    cfg = active.routing.classifier
    base = None
    if cfg.target_cloud_share is not None:
        from ..routing.threshold import threshold_for_artifact

        base = threshold_for_artifact(cfg.artifact, cfg.target_cloud_share)
    result = run_replay(records, shadows, active, base)
    if fmt == "json":
        _write_out(replay_json(result), None)
        return
    if fmt == "md":
        _write_out(replay_markdown(result, str(policy), str(path)), None)
        return
    table = Table(title=f"replay of {escape(str(path))} under {escape(str(policy))}")
    for h in ("", "actual", "projected"):
        table.add_column(h)
    for row in replay_rows(result):
        table.add_row(*row)
    console.print(table)


@app.command()
def doctor(
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy YAML; the embedded default when omitted."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object (checks and exit code) for machines."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail too (exit 1)."),
    timeout: float = typer.Option(3.0, min=0.1, help="Seconds per network check (api_base, Redis)."),
    no_models: bool = typer.Option(False, "--no-models", help="Skip the local generation and the embedder."),
) -> None:
    """Check this machine and policy: versions, CPU and llama.cpp build, extra-buffer probe,
    a local generation, the embedder, the artifact, the policy, each tier, Redis, the log.
    Exit 0 = fine, 1 = warnings with --strict, 2 = errors."""
    import json

    from . import doctor as checks

    colour = {"ok": "green", "warning": "yellow", "error": "bold red"}

    def show(c: "checks.Check") -> None:
        console.print(f"[{colour[c.status]}]{c.status:7s}[/] {escape(c.name)}: {escape(c.detail)}", highlight=False, markup=True,
                      soft_wrap=True)
        if c.fix:
            console.print(f"        -> {c.fix}", highlight=False, markup=False, soft_wrap=True)

    found = checks.run(policy, timeout_s=timeout, models=not no_models, on_check=None if as_json else show)
    code = checks.exit_code(found, strict)
    if as_json:
        sys.stdout.write(json.dumps({"exit_code": code, "checks": [c.as_dict() for c in found]}, indent=2) + "\n")
    raise typer.Exit(code=code)


# Training, evaluation, calibration and batch scoring live in their own module.
from . import calibrate as calibrate_cli  # noqa: E402
from . import learn as learn_cli  # noqa: E402
from . import train as training_cli  # noqa: E402

app.command("train")(training_cli.train)
app.command("eval")(training_cli.evaluate)
app.command("calibrate")(calibrate_cli.calibrate)
app.command("score")(training_cli.score)
app.command("label")(training_cli.label)
app.command("learn")(learn_cli.learn)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
