"""The request log on a real Redis stream, its disk spool through an outage, and the SQLite
log's upgrade of older files."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from router.policy import StoreConfig
from router.store.records import CallRecord, RequestRecord
from router.analysis.report import summarize
from router.store.codec import record_from_json, record_to_json
from router.store.redis import RedisStore
from router.store.sqlite import SQLiteStore

from .fake_openai import free_port
from .redis_server import REDIS_SERVER, RedisServer


def _record(i: int, ts: float | None = None) -> RequestRecord:
    rid = f"req-{i:04d}"
    return RequestRecord(rid, ts=1000.0 + i if ts is None else ts, requested_model="auto", tier="cloud",
                         tenant="key-0123456789abcdef", cost_usd=0.001 * i, counterfactual_usd=0.002 * i,
                         calls=[CallRecord(rid, 1000.0 + i, "cloud", "openai/gpt-4o-mini", cost_usd=0.001 * i,
                                           prompt_tokens=i, completion_tokens=2 * i)])


def _wait(condition, timeout_s: float = 15.0, what: str = "condition"):
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_codec_roundtrip_ignores_unknown_fields():
    r = _record(3)
    assert record_from_json(record_to_json(r)) == r
    data = json.loads(record_to_json(r))
    data["added_by_a_newer_version"] = 1
    data["calls"][0]["also_new"] = True
    assert record_from_json(json.dumps(data)) == r
    with pytest.raises(ValueError):
        record_from_json("[1, 2]")


def test_stream_roundtrip_window_and_duplicates(redis_url, redis_prefix, tmp_path):
    store = RedisStore(StoreConfig(backend="redis", url=redis_url, prefix=redis_prefix, spool_dir=str(tmp_path / "spool")))
    try:
        records = [_record(i) for i in range(1, 6)]
        for r in reversed(records):
            store.record(r)
        store.record(records[0])  # written twice (as after a cut-short flush): read once
        got = store.requests()
        assert [r.id for r in got] == [r.id for r in records]
        assert got == records
        assert [r.id for r in store.requests(since=1002, until=1004)] == ["req-0002", "req-0003"]
        assert summarize(got) == summarize(records)
        assert store.health() == {"backend": "redis", "ok": True, "spooled": 0}
    finally:
        store.close()


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server binary not installed")
def test_records_spool_while_redis_is_down_and_flush_when_it_returns(tmp_path):
    server = RedisServer(tmp_path / "redis", durable=True).start()
    config = StoreConfig(backend="redis", url=server.url, prefix="log", spool_dir=str(tmp_path / "spool"),
                         timeout_ms=200, retry_interval_s=0.2)
    store = RedisStore(config)
    try:
        for i in range(1, 4):
            store.record(_record(i))
        server.kill()
        for i in range(4, 9):
            store.record(_record(i))  # never raises: spooled
        health = store.health()
        assert health["ok"] is False and health["spooled"] == 5 and "error" in health
        assert store.spooled == 5
        server.start()  # same port and folder: the append-only file brings back records 1-3
        _wait(lambda: store.health()["spooled"] == 0, what="the spool to flush")
        assert [r.id for r in store.requests()] == [f"req-{i:04d}" for i in range(1, 9)]
        assert store.flushed == 5 and store.health()["ok"] is True
    finally:
        store.close()
        server.stop()


def test_spool_of_a_stopped_process_is_flushed_by_the_next(redis_url, redis_prefix, tmp_path):
    spool = str(tmp_path / "spool")
    down = StoreConfig(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", prefix=redis_prefix,
                       spool_dir=spool, timeout_ms=200, retry_interval_s=60)
    first = RedisStore(down)
    for i in range(1, 4):
        first.record(_record(i))
    first.close()  # Redis never came back: its spool files stay on disk, unlocked
    assert len(list((tmp_path / "spool").glob("spool-*.jsonl"))) == 1

    second = RedisStore(StoreConfig(backend="redis", url=redis_url, prefix=redis_prefix, spool_dir=spool))
    try:
        assert second.flush() == 3
        assert [r.id for r in second.requests()] == ["req-0001", "req-0002", "req-0003"]
        assert list((tmp_path / "spool").glob("spool-*.jsonl")) == []
    finally:
        second.close()


def test_sqlite_log_from_an_older_version_gains_new_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE requests (id TEXT PRIMARY KEY, ts REAL NOT NULL, requested_model TEXT, routed_tier TEXT,
            tier TEXT, local INTEGER NOT NULL, score REAL, reason TEXT, escalated INTEGER NOT NULL,
            degraded INTEGER NOT NULL, stream INTEGER NOT NULL, status TEXT NOT NULL, http_status INTEGER NOT NULL,
            error TEXT, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_ms REAL NOT NULL,
            cost_usd REAL, counterfactual_usd REAL);
        INSERT INTO requests VALUES ('old', 1.0, 'auto', 'local', 'local', 1, 0.1, '', 0, 0, 0, 'ok', 200, NULL,
            3, 4, 5.0, 0.0, 0.001);
    """)
    db.close()
    store = SQLiteStore(path)
    store.record(_record(7))
    rows = store.requests()
    assert [r.id for r in rows] == ["old", "req-0007"]
    assert rows[0].tenant is None and rows[1].tenant == "key-0123456789abcdef"
    store.close()
