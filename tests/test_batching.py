"""Micro-batching (router.batching) and the batched, after-the-answer log writer."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from router.batching import MicroBatcher
from router.pipeline import Router
from router.policy import policy_from_dict
from router.request.parse import parse_chat_request
from router.store.sqlite import SQLiteStore


def _gated(log: list[list[int]], gate: threading.Event):
    def fn(items: list[int]) -> list[int]:
        log.append(list(items))
        gate.wait(5)
        return [i * 10 for i in items]
    return fn


def test_items_submitted_while_a_batch_runs_share_the_next_batch():
    batches: list[list[int]] = []
    gate = threading.Event()
    batcher = MicroBatcher(_gated(batches, gate), max_batch=8)

    async def run():
        first = batcher.submit(0)  # starts at once, alone: no waiting window
        await asyncio.sleep(0.05)
        rest = [batcher.submit(i) for i in range(1, 12)]
        gate.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(run())
    assert first == 0 and rest == [i * 10 for i in range(1, 12)]
    assert batches == [[0], list(range(1, 9)), list(range(9, 12))]  # at most max_batch each, in order
    assert batcher.batches == 3 and batcher.items == 12
    batcher.close()


def test_a_failing_batch_fails_its_items_only():
    calls = []

    def fn(items):
        calls.append(items)
        if "bad" in items:
            raise ZeroDivisionError("boom")
        return [s.upper() for s in items]

    batcher = MicroBatcher(fn)

    async def run():
        with pytest.raises(ZeroDivisionError):
            await batcher.run("bad")
        return await batcher.run("good")

    assert asyncio.run(run()) == "GOOD"
    batcher.close()


def test_wrong_result_count_is_an_error():
    batcher = MicroBatcher(lambda items: [])

    async def run():
        with pytest.raises(ValueError, match="0 results for 1 items"):
            await batcher.run("x")

    asyncio.run(run())
    batcher.close()


def test_batcher_survives_successive_event_loops():
    batcher = MicroBatcher(lambda items: [i + 1 for i in items])
    assert asyncio.run(batcher.run(1)) == 2
    assert asyncio.run(batcher.run(2)) == 3  # a new loop, as each asyncio.run in a test
    batcher.close()


@pytest.mark.slow
def test_minilm_embeddings_batched_match_one_by_one():
    from router.scoring.embedder import Embedder

    embedder = Embedder()
    texts = ["Hi.", "What is the capital of France?",
             "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. " * 4,
             "Write a Python function that reverses a linked list, and explain its complexity."]
    alone = np.vstack([embedder.encode([t]) for t in texts])
    gate = threading.Event()
    seen: list[int] = []

    def fn(batch):
        seen.append(len(batch))
        gate.wait(5)
        return list(embedder.encode(batch))

    batcher = MicroBatcher(fn)

    async def run():
        futures = [batcher.submit(t) for t in texts]
        gate.set()
        return await asyncio.gather(*futures)

    batched = np.vstack(asyncio.run(run()))
    assert seen == [4]  # one forward pass for the four (padded to the longest)
    assert batched.shape == (4, 384)
    assert np.allclose(batched, alone, atol=1e-5)
    batcher.close()


def _bench_like_policy(cloud_url: str, log_path) -> dict:
    return policy_from_dict({
        "tiers": {
            "local": {"model": "openai/bench-local", "api_key": "sk-test", "api_base": cloud_url,
                      "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0}},
            "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud_url},
        },
        "escalation": {"enabled": False},
        # the writer thread itself: these tests hold up or refuse the store object they hand in
        "log": {"path": str(log_path), "writer": "thread"},
    })


class _Never:
    def score(self, texts):
        raise AssertionError("a forced tier is never scored")


def _chat(i: int):
    return parse_chat_request({"model": "cloud", "messages": [{"role": "user", "content": f"Question {i}?"}],
                               "max_tokens": 8})


def test_answers_return_before_their_log_write_and_shutdown_drains_every_one(cloud, tmp_path):
    """log_later: the answer is back while the write is still held up; Router.close (the
    server's lifespan shutdown) waits for it, so no request goes unlogged."""
    store = SQLiteStore(tmp_path / "log.sqlite3")
    slow = threading.Event()
    write_many = store.record_many

    def held_up(records):
        slow.wait(5)
        write_many(records)

    store.record_many = held_up
    store.record = lambda r: held_up([r])
    router = Router(_bench_like_policy(cloud.url, tmp_path / "log.sqlite3"), store, scorer=_Never())

    async def run():
        answers = await asyncio.gather(*(
            router.complete(_chat(i), router.new_record(f"req-{i:02d}", time.time()), log_later=True)
            for i in range(12)))
        assert all(a.body["choices"][0]["message"]["content"] for a in answers)
        assert all(a.logged is not None and not a.logged.done() for a in answers)
        assert store.requests() == []  # answered, not yet written
        slow.set()
        await router.close()
        assert all(a.logged.done() for a in answers)

    asyncio.run(run())
    rows = store.requests()
    assert sorted(r.id for r in rows) == [f"req-{i:02d}" for i in range(12)]
    assert all(r.status == "ok" and r.tier == "cloud" and r.cost_usd and r.cost_usd > 0 for r in rows)
    assert all(len(r.calls) == 1 for r in rows)
    assert router.writer.batches < 12  # the writes were batched (the first alone, the rest together)


def test_a_batch_the_store_refuses_is_written_one_by_one(cloud, tmp_path):
    store = SQLiteStore(tmp_path / "log.sqlite3")

    def refuse(records):
        raise OSError("disk hiccup")

    store.record_many = refuse
    router = Router(_bench_like_policy(cloud.url, tmp_path / "log.sqlite3"), store, scorer=_Never())
    records = [router.new_record(f"r{i}", time.time()) for i in range(3)]
    for r in records:
        r.status, r.http_status = "ok", 200
    errors = router.writer.write_batch([(r, None, None) for r in records])
    assert errors == [None, None, None]
    assert [r.id for r in store.requests()] == ["r0", "r1", "r2"]


def test_one_bad_item_fails_only_itself_not_its_batch():
    """A batch that raises is rerun item by item: the bad item gets the error, the others
    their results (a tokenizer that chokes on one input must not fail its neighbours)."""
    calls: list[list[int]] = []
    gate = threading.Event()

    def fn(items: list[int]) -> list[int]:
        calls.append(list(items))
        gate.wait(5)
        if 13 in items:
            raise TypeError("cannot tokenize item 13")
        return [i * 10 for i in items]

    batcher = MicroBatcher(fn, max_batch=8)

    async def main():
        first = batcher.submit(1)  # runs alone while the next ones queue behind it
        await asyncio.sleep(0.05)
        rest = [batcher.submit(i) for i in (2, 13, 4)]
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(main())
    batcher.close()
    assert results[0] == 10 and results[1] == 20 and results[3] == 40
    assert isinstance(results[2], TypeError)
    assert [2, 13, 4] in calls and [13] in calls
