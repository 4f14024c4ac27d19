"""The log writer: price finished requests, write them in batches, then run the post-log hooks.

Every request ends here, answered or failed: :meth:`LogWriter.log` prices it (call costs,
request cost and the all-cloud counterfactual, :func:`router.ledger.cost.price_request`)
and writes it, batched with concurrent ones into one transaction
(:class:`router.batching.MicroBatcher`): on the writer's thread, which hands the batch to the
log-writer process when ``log.writer`` is ``process`` (:mod:`router.ledger.log_process`, the
default for a SQLite file) and prices and writes it itself otherwise; then it settles the
request's budget reservations to the priced cost and offers the answer to the shadow
sampler. :meth:`LogWriter.log_soon` does the same on a task (after an answer was sent, or
from a stream's ``finally``), which :meth:`LogWriter.drain` waits for at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from ..batching import MicroBatcher
from ..guards.budget import Reservation
from ..policy import Policy
from ..request.parse import ChatRequest
from ..store.base import RequestStore
from ..store.records import RequestRecord
from . import metrics
from .log_batch import Entry, apply_priced, price_and_store
from .log_process import LogProcess, LogProcessError, shared_process
from .shadow import ShadowSampler

__all__ = ["LogWriter", "process_for"]

log = logging.getLogger(__name__)

Item = tuple[RequestRecord, ChatRequest | None, str | None]
"""(record, its request or None for a request that was never parsed, the answer text or None)."""


def process_for(policy: Policy, store: RequestStore) -> LogProcess | None:
    """The log-writer process for ``store``: the server's shared one for its SQLite file when
    ``log.writer`` is ``process`` and the store is a SQLite file (not ``:memory:``), else None
    (the writer thread prices and writes)."""
    from ..store.sqlite import SQLiteStore

    if policy.log.writer != "process" or not isinstance(store, SQLiteStore) or store.path in ("", ":memory:"):
        return None
    return shared_process(store.path)


class LogWriter:
    """Writes one policy's request records.

    Args:
        policy: prices and the counterfactual's cloud tier.
        store: the request log.
        shadow: the shadow sampler (offered every answered request).
        settle: coroutine settling a request's budget reservations, or None (budgets off).
        remember: coroutine run with each record before it is written (the sessions
            remember the tier that answered, so a session's next turn sees it), or None.
    """

    def __init__(self, policy: Policy, store: RequestStore, shadow: ShadowSampler,
                 settle: Callable[[Iterable[Reservation]], Awaitable[None]] | None = None,
                 remember: Callable[[RequestRecord], Awaitable[None]] | None = None) -> None:
        self.policy = policy
        self.store = store
        self.shadow = shadow
        self._settle = settle
        self._remember = remember
        self._batches: MicroBatcher[Item, Exception | None] = MicroBatcher(self.write_batch, max_batch=256,
                                                                          name="slm-router-log")
        self._pending: set[asyncio.Task] = set()
        self._process: LogProcess | None = process_for(policy, store)

    @property
    def batches(self) -> int:
        """Batches written so far."""
        return self._batches.batches

    def write_batch(self, items: list[Item]) -> list[Exception | None]:
        """Price finished requests and write them to the store (blocking; the writer's
        thread): in the log-writer process when there is one and it answers
        (:mod:`router.ledger.log_process`), else here (:func:`router.ledger.log_batch.price_and_store`).
        Returns, per item, the exception that kept it out of the log, or None."""
        entries: list[Entry] = [(record, request.messages_as_dicts() if request is not None else None, answer_text)
                                for record, request, answer_text in items]
        replies = self._process.write(self.policy, entries) if self._process is not None else None
        errors: list[Exception | None]
        if replies is None:
            errors = price_and_store(entries, self.policy, self.store)
        else:
            errors = []
            for (record, _, _), (error, priced) in zip(entries, replies):
                apply_priced(record, priced)
                errors.append(None if error is None else LogProcessError(error))
        for (record, _, _), err in zip(entries, errors):
            if err is None:
                metrics.observe(record)
        return errors

    def launch(self) -> None:
        """Start the log-writer process, when this writer has one, without waiting for it."""
        if self._process is not None:
            self._process.launch()

    def health(self) -> dict[str, Any]:
        """How the log is written: ``{"mode": "thread"}``, or the process's
        :meth:`router.ledger.log_process.LogProcess.health`."""
        return self._process.health() if self._process is not None else {"mode": "thread"}

    def write(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None) -> None:
        """Price and write one request now, on the calling thread.

        Raises:
            Exception: the store's, when the record could not be written.
        """
        error = self.write_batch([(record, request, answer_text)])[0]
        if error is not None:
            raise error

    async def log(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None,
                    reservations: Iterable[Reservation] = (), local_text: str | None = None) -> None:
        """Log one request (``remember`` it, then write it batched on the writer's thread),
        settle its ``reservations``, then offer it to the shadow sampler (``local_text``: the
        local answer of an escalated request).

        Raises:
            Exception: the store's, when the record could not be written (reservations are
                settled anyway).
        """
        if self._remember is not None:
            await self._remember(record)  # before the log write, so a session's next turn sees it
        try:
            error = await self._batches.run((record, request, answer_text))
            if error is not None:
                raise error
        finally:
            if self._settle is not None:
                await self._settle(reservations)
        if request is not None and answer_text is not None:
            self.shadow.consider(record, request, answer_text, local_text)

    def log_soon(self, record: RequestRecord, request: ChatRequest | None, answer_text: str | None = None,
                   reservations: Iterable[Reservation] = (), local_text: str | None = None) -> asyncio.Task | None:
        """:meth:`log` on a task of its own, which :meth:`drain` waits for; returns it.
        Writes synchronously and returns None when no event loop runs (a generator closed by
        the GC; its reservations then expire unsettled)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.write(record, request, answer_text)
            return None
        return self.spawn(self.log(record, request, answer_text, reservations, local_text))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``work`` on a task that :meth:`drain` waits for."""
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def flush(self) -> None:
        """Wait for the log writes in flight (not the shadow samples)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self._batches.drain()

    async def drain(self) -> None:
        """Wait for log writes and shadow samples still in flight (call before shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self._batches.drain()
        await self.shadow.drain()

    def close(self) -> None:
        """Stop the writer's thread and the log-writer process (after :meth:`drain`)."""
        self._batches.close()
        if self._process is not None:
            self._process.close()
