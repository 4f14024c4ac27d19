"""The log-writer process (router.ledger.log_process): records priced and written by a child
process, the same as in the server, and nothing lost while it starts, after it dies or when
it is switched off; through the real ``slm-router serve`` the default SQLite log uses it."""

from __future__ import annotations

import copy
import time

import httpx
import pytest

from router.ledger.log_batch import price_and_store, priced_fields
from router.ledger.log_process import MAX_FAILURES, LogProcess
from router.ledger.writer import process_for
from router.policy import policy_from_dict
from router.store.records import CallRecord, RequestRecord
from router.store.sqlite import SQLiteStore

from .app_thread import sim_tiers
from .proxy_process import ProxyProcess


def _policy(url: str = "http://127.0.0.1:9/v1", **log) -> object:
    return policy_from_dict({"tiers": sim_tiers(url), "escalation": {"enabled": False},
                             "log": {"path": "unused.sqlite3", **log}})


def _record(i: int, tier: str) -> RequestRecord:
    r = RequestRecord(f"req-{i}", ts=1000.0 + i, tier=tier, local=tier == "local", prompt_tokens=12,
                      completion_tokens=7)
    r.calls.append(CallRecord(r.id, r.ts, tier=tier, model="openai/gpt-4o-mini" if tier == "cloud" else "openai/local-sim",
                              prompt_tokens=12, completion_tokens=7, latency_ms=3.0))
    return r


def _entries(n: int) -> list:
    return [(_record(i, "cloud" if i % 2 else "local"), [{"role": "user", "content": f"question {i}?"}], f"answer {i}")
            for i in range(n)]


@pytest.fixture
def process(tmp_path):
    """A log-writer process for ``tmp_path/log.sqlite3`` (not launched), stopped after the test."""
    writer = LogProcess(str(tmp_path / "log.sqlite3"))
    yield writer
    writer.close()


def _ready(process: LogProcess, policy, timeout_s: float = 120.0) -> None:
    """Launch the child and write empty batches until it answers (it loads litellm first)."""
    process.launch()
    deadline = time.time() + timeout_s
    while process.write(policy, []) is None:
        assert time.time() < deadline, f"the log-writer process did not start: {process.health()}"
        time.sleep(0.2)


def test_the_child_prices_and_writes_like_the_server(process, tmp_path):
    policy = _policy()
    _ready(process, policy)
    entries = _entries(6)
    expected = copy.deepcopy(entries)
    replies = process.write(policy, entries)
    assert replies is not None and [error for error, _ in replies] == [None] * 6
    here = SQLiteStore(tmp_path / "here.sqlite3")
    assert price_and_store(expected, policy, here) == [None] * 6
    assert [priced for _, priced in replies] == [priced_fields(r) for r, _, _ in expected]
    assert any(priced[0] and priced[0] > 0 for _, priced in replies)  # the cloud calls cost something
    rows = SQLiteStore(process.path).requests()
    assert [r.id for r in rows] == [f"req-{i}" for i in range(6)]
    assert [(r.cost_usd, r.counterfactual_usd) for r in rows] == [(r.cost_usd, r.counterfactual_usd)
                                                                  for r in here.requests()]
    assert process.health()["mode"] == "process" and process.health()["batches"] == 2


def test_a_store_error_in_the_child_comes_back_per_record(process):
    policy = _policy()
    _ready(process, policy)
    assert process.write(policy, _entries(1))[0][0] is None
    again = process.write(policy, _entries(2))  # req-0 is already there: the primary key refuses it
    assert again[0][0] is not None and "UNIQUE" in again[0][0]
    assert again[1][0] is None
    assert len(SQLiteStore(process.path).requests()) == 2


def test_while_starting_or_after_a_death_the_caller_writes_itself(process):
    policy = _policy()
    assert process.write(policy, _entries(1)) is None  # not launched: the caller writes
    assert process.health()["mode"] == "in-process"
    process.launch()
    assert process.write(policy, _entries(1)) is None  # just started: litellm is still loading
    assert process.health()["mode"] == "starting"
    _ready(process, policy)
    for death in range(MAX_FAILURES):
        process._proc.kill()
        process._proc.wait()
        assert process.write(policy, _entries(1)) is None  # the batch is not acknowledged
        if death < MAX_FAILURES - 1:
            assert process.disabled_reason is None
            _ready(process, policy)  # started again on the next batch
    assert process.disabled_reason is not None and "3 failures" in process.disabled_reason
    assert process.health()["mode"] == "in-process"
    assert process.write(policy, _entries(1)) is None


def test_health_says_process_once_the_child_is_ready_before_any_batch(process):
    process.launch()
    deadline = time.time() + 120
    while process.health()["mode"] == "starting":  # no write polls the child here: health looks itself
        assert time.time() < deadline, "the log-writer process did not start"
        time.sleep(0.2)
    assert process.health()["mode"] == "process" and process.health()["batches"] == 0
    assert process.write(_policy(), _entries(1))[0][0] is None  # the 'ready' it saw is still there to read


def test_closing_a_child_still_loading_does_not_wait_for_its_import(process):
    process.launch()
    child = process._proc
    started = time.monotonic()
    process.close()  # litellm's import takes seconds; the child holds nothing yet
    assert time.monotonic() - started < 2.0
    assert child.poll() is not None and process.health()["mode"] == "in-process"


def test_closed_means_the_caller_writes_until_launched_again(process):
    policy = _policy()
    _ready(process, policy)
    process.close()
    assert process.write(policy, _entries(1)) is None and process.health()["mode"] == "in-process"
    _ready(process, policy)
    assert process.write(policy, _entries(1))[0][0] is None


def test_a_batch_that_does_not_pickle_stays_in_the_server(process):
    policy = _policy()
    _ready(process, policy)
    record, messages, answer = _entries(1)[0]
    record.calls[0].signals = {"unpicklable": lambda: None}
    assert process.write(policy, [(record, messages, answer)]) is None
    assert process.disabled_reason is None and process.write(policy, _entries(1))[0][0] is None


@pytest.mark.parametrize("path, writer, expected", [
    ("log.sqlite3", "process", True), ("log.sqlite3", "thread", False), (":memory:", "process", False)])
def test_which_logs_get_a_process(tmp_path, path, writer, expected):
    store = SQLiteStore(path if path == ":memory:" else tmp_path / path)
    assert (process_for(_policy(writer=writer), store) is not None) is expected


def test_serve_logs_through_the_process_and_prices_every_request(cloud, tmp_path):
    proxy = ProxyProcess({"tiers": sim_tiers(cloud.url), "escalation": {"enabled": False}}, tmp_path).start()
    try:
        deadline = time.time() + 120
        sent = 0
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            while True:
                answer = client.post("/v1/chat/completions", json={
                    "model": "cloud", "messages": [{"role": "user", "content": f"Say hello {sent}."}]})
                assert answer.status_code == 200, answer.text
                sent += 1
                health = client.get("/healthz").json()["log_writer"]
                if health["mode"] == "process" and health["batches"] >= 3:
                    break
                assert time.time() < deadline, health
                time.sleep(0.1)
        rows = []
        while len(rows) < sent and time.time() < deadline:
            rows = SQLiteStore(proxy.log_path).requests()
            time.sleep(0.1)
        assert len(rows) == sent  # the ones written before the child was ready too
        assert all(r.status == "ok" and r.tier == "cloud" and r.cost_usd and r.cost_usd > 0 for r in rows)
        assert all(r.counterfactual_usd == r.cost_usd for r in rows)
        assert all(c.price_source == "litellm" for r in rows for c in r.calls)
    finally:
        proxy.stop()
