"""The server's reading of an SLM worker's messages (:mod:`router.providers.llama_worker`
describes them): a job's last message as a result or an error, its token counts for the
pool's ``on_end`` report, and their delivery from the pool's reader threads."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from .llama_runtime import ContextWindowExceededError, LocalCompletion
from .local_errors import LocalRequestError, LocalTierUnavailableError, WorkerCrashedError

__all__ = ["OnEnd", "final_count", "deliver", "result_of", "exit_reason"]


class OnEnd:
    """``on_end`` of :meth:`WorkerPool.stream`, called at most once."""

    def __init__(self, on_end: Callable[[int, int], None] | None) -> None:
        self._on_end = on_end

    def __call__(self, prompt_tokens: int, completion_tokens: int) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(prompt_tokens, completion_tokens)

    def final(self, msg: tuple) -> None:
        """Report the counts of a worker's last message for a job (0, 0 unless ``done``)."""
        result = msg[2] if msg[0] == "done" and isinstance(msg[2], LocalCompletion) else None
        if result is None:
            self(0, 0)
        else:
            self(result.prompt_tokens, result.completion_tokens)


async def final_count(inbox: "asyncio.Queue[tuple]", end: OnEnd, timeout_s: float = 5.0) -> None:
    """Wait for the last message of a cancelled job (the worker stops within one token) and
    report its counts; (0, 0) when none comes in ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            while (msg := await inbox.get())[0] == "step":
                pass
    except (TimeoutError, asyncio.CancelledError):
        end(0, 0)
        return
    end.final(msg)


def deliver(job: Any, msg: tuple) -> None:
    """Hand ``msg`` to the job's consumer; one that has gone away (its event loop closed)
    must not stop the reader thread."""
    try:
        job.sink(msg)
    except RuntimeError:
        pass


def result_of(msg: tuple) -> LocalCompletion:
    """A job's last message as its completion, or the error it stands for.

    Raises:
        WorkerCrashedError, LocalTierUnavailableError, ContextWindowExceededError, LocalRequestError (a request
        the runtime cannot serve as asked, e.g. a grammar llama.cpp cannot parse).
    """
    kind = msg[0]
    if kind == "done":
        return msg[2]
    if kind == "crashed":
        raise WorkerCrashedError(f"{msg[1]} while generating (the worker restarts; a routed request falls back to "
                                 "another tier when one can serve it)")
    if kind == "unavailable":
        raise LocalTierUnavailableError(msg[1])
    if kind == "error" and msg[2] == "context_window":
        raise ContextWindowExceededError(msg[3])
    raise LocalRequestError(msg[3])


def exit_reason(code: int | None) -> str:
    """How a worker process ended, from its return code: ``killed by SIGSEGV`` (a negative
    code is the signal, as :mod:`subprocess` reports it) or ``exited with code N``."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"
