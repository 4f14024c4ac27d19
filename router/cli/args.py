"""What several commands share in reading their arguments: the exit-2 error and ISO times."""

from __future__ import annotations

import datetime as dt
from typing import NoReturn, Optional

import typer
from rich.console import Console

__all__ = ["fail", "parse_time"]

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
