"""What several commands share in reading their arguments: the exit-2 error and ISO times."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console

__all__ = ["fail", "open_sqlite_log", "parse_time"]

err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 2 (bad input)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def parse_time(value: Optional[str], option: str) -> Optional[float]:
    """An ISO date or time (``2026-11-29``, ``2026-11-29T10:00``; UTC when it names no zone)
    as Unix seconds; None for None. Exits 2 naming ``option`` when it is not one."""
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} must be an ISO date or time such as 2026-11-29 or 2026-11-29T10:00, got {value!r}")
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


_SQLITE_MAGIC = b"SQLite format 3\x00"


def open_sqlite_log(path: Path, hint: str = ""):
    """The request log at ``path`` opened for reading (a
    :class:`router.store.sqlite.SQLiteStore`). Exits 2 naming the path when it is missing, not
    a file, or not an SQLite database (a policy YAML given as ``--log``, an empty file), before
    SQLite would turn it into a traceback or write a new log's tables into it; ``hint`` is
    added to the "no request log" message."""
    from ..store.sqlite import SQLiteStore

    if not path.exists():
        fail(f"no request log at {path}{hint}")
    if not path.is_file():
        fail(f"--log {path} is a directory, not a request log (an SQLite file such as slm-router.sqlite3)")
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as err:
        fail(f"cannot read the request log {path} ({err.strerror or err})")
    if head != _SQLITE_MAGIC:
        fail(f"{path} is not a request log (not an SQLite database)")
    try:
        return SQLiteStore(path)
    except Exception as err:  # noqa: BLE001 - a damaged or locked database is the user's input too
        fail(f"cannot open the request log {path} ({type(err).__name__}: {err})")
