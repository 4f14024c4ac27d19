import pytest

from router.store.records import CallRecord, RequestRecord
from router.analysis.report import summarize
from router.store.sqlite import SQLiteStore


def _records():
    a = RequestRecord("a", ts=100.0, requested_model="auto", tier="local", local=True, score=0.1,
                      cost_usd=0.0, counterfactual_usd=0.002,
                      calls=[CallRecord("a", 100.0, "local", "slm-local/smollm2", cost_usd=0.0, prompt_tokens=10, completion_tokens=5)])
    b = RequestRecord("b", ts=200.0, requested_model="auto", tier="cloud", escalated=True, score=0.2,
                      cost_usd=0.003, counterfactual_usd=0.003,
                      calls=[CallRecord("b", 200.0, "local", "slm-local/smollm2", cost_usd=0.0, prompt_tokens=7, completion_tokens=3),
                             CallRecord("b", 201.0, "cloud", "openai/gpt-4o-mini", "escalation", cost_usd=0.003, prompt_tokens=7, completion_tokens=9)])
    c = RequestRecord("c", ts=300.0, requested_model="nope", status="error", http_status=404, error="model_not_found",
                      cost_usd=0.0, counterfactual_usd=0.0)
    d = RequestRecord("d", ts=400.0, requested_model="cloud", tier="cloud", cost_usd=None, counterfactual_usd=None,
                      calls=[CallRecord("d", 400.0, "cloud", "custom/x", cost_usd=None, prompt_tokens=1, completion_tokens=1)])
    return [a, b, c, d]


def test_summary_sums():
    s = summarize(_records())
    assert (s.requests, s.ok, s.failed) == (4, 3, 1)
    assert (s.local, s.escalated) == (1, 1)
    assert s.local_share == pytest.approx(1 / 3) and s.escalation_rate == pytest.approx(1 / 3)
    assert s.actual_usd == pytest.approx(0.003)
    assert s.all_cloud_usd == pytest.approx(0.005)
    assert s.savings_usd == pytest.approx(0.002) and s.savings_pct == pytest.approx(40.0)
    assert s.unpriced_calls == 1
    assert (s.prompt_tokens, s.completion_tokens) == (25, 18)


def test_sqlite_roundtrip_and_window(tmp_path):
    store = SQLiteStore(tmp_path / "log.sqlite3")
    for r in _records():
        store.record(r)
    rows = store.requests()
    assert [r.id for r in rows] == ["a", "b", "c", "d"]
    assert rows[1].escalated is True and [c.purpose for c in rows[1].calls] == ["primary", "escalation"]
    assert rows[3].cost_usd is None and rows[3].calls[0].cost_usd is None
    assert [r.id for r in store.requests(since=150, until=300)] == ["b"]
    assert summarize(store.requests()) == summarize(_records())
    store.close()


def test_log_from_before_policy_hash_gains_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE requests (
            id TEXT PRIMARY KEY, ts REAL NOT NULL, requested_model TEXT, routed_tier TEXT, tier TEXT,
            local INTEGER NOT NULL, score REAL, reason TEXT, escalated INTEGER NOT NULL,
            degraded INTEGER NOT NULL, stream INTEGER NOT NULL, status TEXT NOT NULL,
            http_status INTEGER NOT NULL, error TEXT, prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL, cost_usd REAL,
            counterfactual_usd REAL);
        INSERT INTO requests VALUES ('old', 1.0, 'auto', 'local', 'local', 1, 0.1, 'r', 0, 0, 0, 'ok', 200, NULL,
                                     1, 1, 1.0, 0.0, 0.0);
    """)
    db.close()
    store = SQLiteStore(path)
    store.record(RequestRecord("new", ts=2.0, policy_hash="0123456789abcdef", rules="a,b", api_key_name="hr"))
    old, new = store.requests()
    assert (old.policy_hash, old.rules, old.api_key_name) == (None, None, None)
    assert (new.policy_hash, new.rules, new.api_key_name) == ("0123456789abcdef", "a,b", "hr")
    store.close()


def test_sqlite_read_while_another_connection_writes_sees_whole_requests(tmp_path):
    """``serve`` writes while ``report`` reads the same file through its own connection: each
    read is one snapshot, so a request inserted between its two queries never shows calls
    without their request (a KeyError before) nor a request missing its calls."""
    import threading

    path = tmp_path / "log.sqlite3"
    writer, reader = SQLiteStore(path), SQLiteStore(path)
    stop, errors, reads = threading.Event(), [], []

    def write() -> None:
        i = 0
        while not stop.is_set():
            rid = f"r{i}"
            writer.record(RequestRecord(rid, ts=1000.0 + i, tier="local", calls=[
                CallRecord(rid, 1000.0 + i, "local", "slm-local/smollm2", prompt_tokens=3, completion_tokens=2),
                CallRecord(rid, 1000.5 + i, "cloud", "openai/gpt-4o-mini", "escalation", prompt_tokens=3)]))
            i += 1

    import time

    thread = threading.Thread(target=write)
    thread.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                rows = reader.requests()
            except Exception as err:  # noqa: BLE001 - the failure under test
                errors.append(err)
                break
            reads.append(len(rows))
            assert all(len(r.calls) == 2 for r in rows), [r.id for r in rows if len(r.calls) != 2]
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[0]
    assert reads[-1] > reads[0] >= 0  # the writer was writing during the reads
    assert len(reader.requests()) == len(writer.requests())
    writer.close()
    reader.close()
