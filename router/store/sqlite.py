"""SQLite request log (the embedded default store). Tables ``requests`` and ``calls``."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import astuple, fields
from pathlib import Path

from ..records import CallRecord, RequestRecord

__all__ = ["SQLiteStore"]

_REQUEST_COLUMNS = [f.name for f in fields(RequestRecord) if f.name != "calls"]
_CALL_COLUMNS = [f.name for f in fields(CallRecord)]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, ts REAL NOT NULL, requested_model TEXT, routed_tier TEXT, tier TEXT,
    local INTEGER NOT NULL, score REAL, reason TEXT, escalated INTEGER NOT NULL,
    degraded INTEGER NOT NULL, stream INTEGER NOT NULL, status TEXT NOT NULL,
    http_status INTEGER NOT NULL, error TEXT, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL, cost_usd REAL,
    counterfactual_usd REAL, policy_hash TEXT, rules TEXT, api_key_name TEXT, tenant TEXT, cache TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);
CREATE TABLE IF NOT EXISTS calls (
    request_id TEXT NOT NULL REFERENCES requests(id), ts REAL NOT NULL, tier TEXT NOT NULL,
    model TEXT NOT NULL, purpose TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL,
    cost_usd REAL, mean_logprob REAL
);
CREATE INDEX IF NOT EXISTS calls_request ON calls(request_id);
"""



class SQLiteStore:
    """Request log in one SQLite file (WAL mode, so ``report`` can read while ``serve`` writes).

    Args:
        path: database file; parent folders are created; ``:memory:`` works for tests.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Logs written by an older version lack newer (nullable) columns: add them."""
        for table, columns in (("requests", _REQUEST_COLUMNS), ("calls", _CALL_COLUMNS)):
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        self._db.commit()

    def health(self) -> dict:
        """``{"backend": "sqlite", "ok": True}`` (a local file has no outage to report)."""
        return {"backend": "sqlite", "ok": True}

    def record(self, request: RequestRecord) -> None:
        """Insert the request row and its call rows in one transaction."""
        row = [getattr(request, name) for name in _REQUEST_COLUMNS]
        with self._lock, self._db:
            self._db.execute(
                f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(_REQUEST_COLUMNS))})",
                row,
            )
            self._db.executemany(
                f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES ({', '.join('?' * len(_CALL_COLUMNS))})",
                [astuple(c) for c in request.calls],
            )

    def requests(self, since: float | None = None, until: float | None = None) -> list[RequestRecord]:
        """Requests in ``[since, until)`` (Unix seconds), oldest first, with their calls."""
        lo = since if since is not None else float("-inf")
        hi = until if until is not None else float("inf")
        with self._lock:
            req_rows = self._db.execute(
                f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests WHERE ts >= ? AND ts < ? ORDER BY ts",
                (lo, hi),
            ).fetchall()
            call_rows = self._db.execute(
                f"SELECT {', '.join('c.' + c for c in _CALL_COLUMNS)} FROM calls c JOIN requests r "
                "ON r.id = c.request_id WHERE r.ts >= ? AND r.ts < ? ORDER BY c.ts",
                (lo, hi),
            ).fetchall()
        bool_cols = {"local", "escalated", "degraded", "stream"}
        records = {}
        for row in req_rows:
            values = {k: (bool(v) if k in bool_cols else v) for k, v in zip(_REQUEST_COLUMNS, row)}
            records[values["id"]] = RequestRecord(**values)
        for row in call_rows:
            call = CallRecord(*row)
            records[call.request_id].calls.append(call)
        return list(records.values())

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
