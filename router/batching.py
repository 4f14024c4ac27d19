"""Micro-batching of blocking work off the event loop (embeddings, log writes).

:class:`MicroBatcher` runs a blocking ``fn(items) -> results`` on one worker thread of its
own, for items submitted one by one from the event loop. It batches like a database group
commit: an item submitted while the worker is idle starts a batch at once (no waiting
window, so one request at a time pays nothing), and items submitted while a batch runs
wait for the next one, which takes everything queued (at most ``max_batch``). Under
concurrency, 16 requests that need an embedding become one or two forward passes instead
of 16 queued ones; and 16 finished requests become one SQLite transaction.

The worker thread is the only one that runs ``fn``, so ``fn`` needs no lock against
itself and batches run in submission order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _resolve(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    """Settle ``future`` unless it is done or its loop has closed (a caller that went away)."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except RuntimeError:  # the loop of an earlier asyncio.run is closed
        pass


class MicroBatcher(Generic[T, R]):
    """Runs ``fn`` over batches of submitted items on one worker thread.

    Args:
        fn: blocking; takes a non-empty list of items, returns one result per item, in order.
            When a batch of several items raises, each item is run alone, so an exception
            fails only the items that raise it (one bad input never fails its neighbours).
        max_batch: most items per call of ``fn``.
        name: worker thread name (shows in profilers and thread dumps).

    Raises (from :meth:`submit`'s awaitable): whatever ``fn`` raised for the item's batch;
    ValueError when ``fn`` returned a wrong number of results.
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], max_batch: int = 64, name: str = "slm-router-batch") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._fn = fn
        self.max_batch = max_batch
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._queue: list[tuple[T, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        self.batches = 0  # calls of fn so far
        self.items = 0  # items through fn so far

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        return self._executor

    def submit(self, item: T) -> asyncio.Future:
        """Queue ``item``; returns a future of its result (call from the event loop)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._run())
        return future

    async def run(self, item: T) -> R:
        """``await submit(item)``: the result of ``fn`` for ``item``."""
        return await self.submit(item)

    async def call(self, work: Callable[[], R]) -> R:
        """Run ``work()`` on the worker thread (loading what ``fn`` needs): batches started
        after it wait for it, as the thread runs one thing at a time in order."""
        return await asyncio.get_running_loop().run_in_executor(self._pool(), work)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: len(batch)]
            items = [item for item, _ in batch]
            try:
                results = await loop.run_in_executor(self._pool(), self._fn, items)
                if len(results) != len(items):
                    raise ValueError(f"{self._name}: {len(results)} results for {len(items)} items")
            except asyncio.CancelledError:
                # The loop is shutting down; the worker still finishes this batch. Items
                # left queued are run by the next submit (or drain) on a running loop.
                for _, future in batch:
                    _resolve(future, error=asyncio.CancelledError())
                raise
            except Exception as err:
                if len(batch) == 1:
                    _resolve(batch[0][1], error=err)
                else:
                    # One bad item must not fail its neighbours: run each alone, so only
                    # the item that raises gets the error.
                    await self._run_one_by_one(loop, batch)
            else:
                self.batches += 1
                self.items += len(items)
                for (_, future), result in zip(batch, results):
                    _resolve(future, result)

    async def _run_one_by_one(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future]]) -> None:
        for item, future in batch:
            try:
                results = await loop.run_in_executor(self._pool(), self._fn, [item])
                if len(results) != 1:
                    raise ValueError(f"{self._name}: {len(results)} results for 1 item")
            except asyncio.CancelledError:
                _resolve(future, error=asyncio.CancelledError())
                raise
            except Exception as err:
                _resolve(future, error=err)
            else:
                self.batches += 1
                self.items += 1
                _resolve(future, results[0])

    async def drain(self) -> None:
        """Wait until every item submitted so far has been through ``fn``."""
        while self._queue or (self._task is not None and not self._task.done()):
            task = self._task
            if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
                self._task = task = asyncio.get_running_loop().create_task(self._run())
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():
                    continue
                raise

    def close(self) -> None:
        """Stop the worker thread once its current batch is done."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
