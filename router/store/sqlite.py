"""SQLite request log (the embedded default store). Tables ``requests``, ``calls``,
``shadows`` (quality samples) and ``feedback`` (``POST /v1/feedback``). Columns added after the first release are added to an
existing file on open (``ALTER TABLE ... ADD COLUMN``), so older logs stay readable."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import astuple, fields
from collections.abc import Sequence
from pathlib import Path

from ..errors import StoreUnavailableError
from .records import CallRecord, FeedbackRecord, RequestRecord, ShadowRecord

__all__ = ["SQLiteStore"]

_REQUEST_COLUMNS = [f.name for f in fields(RequestRecord) if f.name != "calls"]
_CALL_COLUMNS = [f.name for f in fields(CallRecord)]
_SHADOW_COLUMNS = [f.name for f in fields(ShadowRecord)]
_FEEDBACK_COLUMNS = [f.name for f in fields(FeedbackRecord)]
_BOOL_COLUMNS = {"local", "escalated", "degraded", "stream", "cloud_available", "empty_answer", "agrees",
                 "judge_verdict"}

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
CREATE TABLE IF NOT EXISTS shadows (
    request_id TEXT NOT NULL REFERENCES requests(id), ts REAL NOT NULL, kind TEXT NOT NULL,
    tier TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL, error TEXT, local_text TEXT NOT NULL,
    cloud_text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cached_prompt_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL, cost_usd REAL, price_source TEXT,
    similarity REAL, agrees INTEGER, judge_model TEXT, judge_verdict INTEGER, judge_cost_usd REAL
);
CREATE INDEX IF NOT EXISTS shadows_request ON shadows(request_id);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT NOT NULL REFERENCES requests(id), ts REAL NOT NULL, score REAL, thumbs TEXT, comment TEXT,
    api_key_id TEXT
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback(request_id);
"""

# Columns added after the first schema: (table, column, SQL type and default).
_ADDED_COLUMNS = [
    ("calls", "cached_prompt_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("calls", "price_source", "TEXT"),
    ("calls", "empty_answer", "INTEGER"),
    ("requests", "api_key_id", "TEXT"),
    ("requests", "needs", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "prompt_chars", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "cloud_available", "INTEGER"),
    ("requests", "max_tokens", "INTEGER"),
    ("requests", "cloud_prompt_tokens", "INTEGER"),
    ("requests", "cloud_completion_tokens", "INTEGER"),
    ("calls", "signals", "TEXT"),
    ("requests", "rule_facts", "TEXT"),
    ("requests", "shadow_policy_version", "TEXT"),
    ("requests", "shadow_tier", "TEXT"),
    ("shadows", "judge_replies", "TEXT"),
    ("shadows", "judge_prompt_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("shadows", "judge_completion_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "threshold", "REAL"),
    ("requests", "learning", "TEXT"),
    ("shadows", "sample_p", "REAL"),
    ("shadows", "judge_outcome", "TEXT"),
    ("requests", "prompt_messages", "INTEGER"),
]
_JSON_COLUMNS = {"signals", "rule_facts", "judge_replies", "learning"}
"""Columns holding a dict, stored as JSON text (NULL when None)."""


_INSERT_REQUEST = f"INSERT INTO requests ({', '.join(_REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(_REQUEST_COLUMNS))})"
_INSERT_CALL = f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES ({', '.join('?' * len(_CALL_COLUMNS))})"


def _from_row(columns: list[str], row: tuple) -> dict:
    out = {}
    for k, v in zip(columns, row):
        if k in _BOOL_COLUMNS:
            v = None if v is None else bool(v)
        elif k in _JSON_COLUMNS:
            v = None if v is None else json.loads(v)
        out[k] = v
    return out


def _json_row(record: object, columns: list[str]) -> list:
    """A record's column values, dicts as JSON text."""
    return [json.dumps(v, separators=(",", ":")) if k in _JSON_COLUMNS and v is not None else v
            for k, v in ((name, getattr(record, name)) for name in columns)]


def _call_row(call: CallRecord) -> list:
    return _json_row(call, _CALL_COLUMNS)



class SQLiteStore:
    """Request log in one SQLite file (WAL mode, so ``report`` can read while ``serve`` writes).

    Args:
        path: database file; parent folders are created; ``:memory:`` works for tests.

    Raises:
        StoreUnavailableError: the file cannot be created, opened or written (a read-only
            place, a folder, a file that is not SQLite); the message names the path.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL: a commit no longer waits for fsync (the WAL is synced
            # at checkpoints); the file stays consistent, a power cut may lose the last commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
        except (OSError, sqlite3.Error) as err:
            raise StoreUnavailableError(
                f"cannot open the request log {self.path} ({type(err).__name__}: {err}); "
                "set log.path to a writable SQLite file") from err

    def _add_missing_columns(self) -> None:
        """Logs written by an older version lack newer columns: add them, typed and with
        defaults where :data:`_ADDED_COLUMNS` says, as nullable columns otherwise."""
        with self._db:
            for table, column, decl in _ADDED_COLUMNS:
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            for table, columns in (("requests", _REQUEST_COLUMNS), ("calls", _CALL_COLUMNS),
                                   ("shadows", _SHADOW_COLUMNS)):
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    def health(self) -> dict:
        """``{"backend": "sqlite", "ok": True}`` (a local file has no outage to report)."""
        return {"backend": "sqlite", "ok": True}

    def record(self, request: RequestRecord) -> None:
        """Insert the request row and its call rows in one transaction."""
        self._insert([request])

    def record_many(self, requests: list[RequestRecord]) -> None:
        """Insert several requests and their calls in one transaction (all or none)."""
        self._insert(requests)

    def _insert(self, requests: list[RequestRecord]) -> None:
        with self._lock, self._db:
            self._db.executemany(_INSERT_REQUEST, [_json_row(r, _REQUEST_COLUMNS) for r in requests])
            self._db.executemany(_INSERT_CALL, [_call_row(c) for r in requests for c in r.calls])

    def requests(self, since: float | None = None, until: float | None = None) -> list[RequestRecord]:
        """Requests in ``[since, until)`` (Unix seconds), oldest first, with their calls.

        Both queries run in one read transaction, so they see the same snapshot of the file
        (WAL): a request another connection (``serve`` while ``report`` reads) commits
        between them is either wholly in the result or not at all."""
        lo = since if since is not None else float("-inf")
        hi = until if until is not None else float("inf")
        with self._lock:
            self._db.execute("BEGIN")  # deferred: the snapshot starts at the first SELECT
            try:
                req_rows = self._db.execute(
                    f"SELECT {', '.join(_REQUEST_COLUMNS)} FROM requests WHERE ts >= ? AND ts < ? ORDER BY ts",
                    (lo, hi),
                ).fetchall()
                call_rows = self._db.execute(
                    f"SELECT {', '.join('c.' + c for c in _CALL_COLUMNS)} FROM calls c JOIN requests r "
                    "ON r.id = c.request_id WHERE r.ts >= ? AND r.ts < ? ORDER BY c.ts",
                    (lo, hi),
                ).fetchall()
            finally:
                self._db.commit()  # ends the read transaction
        records = {}
        for row in req_rows:
            values = _from_row(_REQUEST_COLUMNS, row)
            records[values["id"]] = RequestRecord(**values)
        for row in call_rows:
            call = CallRecord(**_from_row(_CALL_COLUMNS, row))
            records[call.request_id].calls.append(call)
        return list(records.values())

    def record_shadow(self, shadow: ShadowRecord) -> None:
        """Insert one quality sample."""
        with self._lock, self._db:
            self._db.execute(
                f"INSERT INTO shadows ({', '.join(_SHADOW_COLUMNS)}) VALUES ({', '.join('?' * len(_SHADOW_COLUMNS))})",
                _json_row(shadow, _SHADOW_COLUMNS),
            )

    def shadows(self, since: float | None = None, until: float | None = None) -> list[ShadowRecord]:
        """Quality samples of the requests that arrived in ``[since, until)`` (Unix s)."""
        rows = self._rows_of_requests_in("shadows", _SHADOW_COLUMNS, since, until)
        return [ShadowRecord(**_from_row(_SHADOW_COLUMNS, row)) for row in rows]

    def has_request(self, request_id: str) -> bool:
        """True when a request with this id is in the log."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM requests WHERE id = ?", (request_id,)).fetchone() is not None

    def record_feedback(self, feedback: FeedbackRecord) -> None:
        """Insert one feedback row."""
        with self._lock, self._db:
            self._db.execute(
                f"INSERT INTO feedback ({', '.join(_FEEDBACK_COLUMNS)}) VALUES ({', '.join('?' * len(_FEEDBACK_COLUMNS))})",
                astuple(feedback),
            )

    def feedback(self, since: float | None = None, until: float | None = None) -> list[FeedbackRecord]:
        """Feedback on the requests that arrived in ``[since, until)`` (Unix s), oldest request first."""
        return [FeedbackRecord(*row) for row in self._rows_of_requests_in("feedback", _FEEDBACK_COLUMNS, since, until)]

    def _rows_of_requests_in(self, table: str, columns: Sequence[str], since: float | None,
                             until: float | None) -> list[tuple]:
        """Rows of ``table`` (keyed by ``request_id``, ordered by ``ts``) whose request arrived
        in ``[since, until)`` (Unix s), oldest request first."""
        lo = since if since is not None else float("-inf")
        hi = until if until is not None else float("inf")
        with self._lock:
            return self._db.execute(
                f"SELECT {', '.join('t.' + c for c in columns)} FROM {table} t JOIN requests r "
                "ON r.id = t.request_id WHERE r.ts >= ? AND r.ts < ? ORDER BY r.ts, t.ts",
                (lo, hi),
            ).fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
