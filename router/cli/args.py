"""What several commands share in reading their arguments: the exit-2 error, ISO times, the
request log to read and the folder or file to write."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["fail", "open_sqlite_log", "parse_time", "out_problem", "require_out", "read_curves"]

err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 2 (bad input)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # a path may hold [tags]
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
    SQLite would turn it into a traceback or write a new log's tables into it (an SQLite
    database without a ``requests`` table, another program's, is refused too); ``hint`` is
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
    tables = _sqlite_tables(path)
    if "requests" not in tables:  # another program's database: never write the log's tables into it
        fail(f"{path} is not a request log (an SQLite database without a 'requests' table"
             + (f"; its tables: {', '.join(sorted(tables)[:8])})" if tables else ")"))
    try:
        return SQLiteStore(path)
    except Exception as err:  # noqa: BLE001 - a damaged or locked database is the user's input too
        fail(f"cannot open the request log {path} ({type(err).__name__}: {err})")


def _sqlite_tables(path: Path) -> set[str]:
    """Names of the tables in the SQLite file ``path``, read without writing to it (an
    unreadable file reads as none: opening it as the store then names the problem)."""
    import sqlite3

    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error:
        return {"requests"}  # let SQLiteStore report it


def out_problem(path: Path, *, is_file: bool = False) -> str | None:
    """Why ``path`` (a folder to write in, or with ``is_file`` a file to write) could not be
    created or written, or None when it could: a folder that is a file; a file that is a
    folder; the nearest existing ancestor not a folder (``--out`` under a regular file) or
    not writable. Nothing is created (a command that fails later leaves no empty folder)."""
    if path.exists():
        if is_file and path.is_dir():
            return f"{path} is a directory, not a file"
        if not is_file and not path.is_dir():
            return f"{path} exists and is not a directory"
        target = path if not is_file else path.parent
        return None if os.access(target if str(target) else ".", os.W_OK | os.X_OK) else f"{target} is not writable"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"cannot create {path}: {ancestor} is a file, not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create {path}: {ancestor} is not writable"
    return None


def require_out(path: Path, option: str, *, is_file: bool = False) -> None:
    """Exit 2 with one line naming ``option`` when :func:`out_problem` finds one; call it
    before any work, so a long run does not fail at its last step."""
    problem = out_problem(path, is_file=is_file)
    if problem:
        fail(f"{option} {path}: {problem}")


def read_curves(path: Optional[Path]) -> dict | None:
    """Learning curves from a ``learning.json`` (``slm-router learn``) or a bench's JSON
    (``{"curves": {name: [[labels, apgr], ...]}}``)."""
    import json

    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        fail(f"cannot read learning curves from {path}: {err}")
    try:
        if not isinstance(data, dict):
            raise TypeError(f"a JSON object expected, got {type(data).__name__}")
        if "curves" in data:
            return {str(k): [(int(n), float(a)) for n, a in v] for k, v in data["curves"].items()}
        return {"candidate": [(int(p["labels"]), float(p["apgr_candidate"])) for p in data.get("curve", [])],
                "active": [(int(p["labels"]), float(p["apgr_active"])) for p in data.get("curve", [])]}
    except (TypeError, ValueError, KeyError, AttributeError) as err:  # JSON, but not curves
        fail(f"{path} holds no learning curves ({type(err).__name__}: {err}); pass the learning.json "
              "'slm-router learn' wrote, or {\"curves\": {NAME: [[labels, apgr], ...]}}")
