"""Tokens a tier call has spent, readable after the call was cancelled.

A cancelled call returns nothing, so the tokens it spent cannot come back in its result.
The attempts layer gives each call a :class:`Spend` and makes it the current one
(:func:`metering`, a context variable, so it follows the call into litellm and the
in-process provider without new parameters); the in-process tier
(:mod:`router.providers.local_provider`) adds each generation's final count to it, the
count a worker reports after it stopped for a cancel included. A streamed call of any other
tier (which reports its usage only at the end) keeps the text it has received
(:meth:`Spend.receive`, from :meth:`router.providers.tier_client.TierClient.stream`), so a
stream cancelled while its prefix is held back for checking can still be counted. The
pipeline waits for a cancelled call's spend to settle (:meth:`Spend.settled`) before it
logs the request.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Spend", "current_spend", "metering"]


@dataclass(eq=False)
class Spend:
    """What one tier call spent, summed over its generations (``n > 1`` samples).

    Attributes:
        prompt_tokens: the prompt's tokens, counted once (as ``n > 1`` is billed).
        completion_tokens: completion tokens of every generation, finished or stopped.
        generations: generations started; ``reported`` of them have reported their count.
        streamed: the call was a stream (its text arrives piece by piece); ``received``: the
            text and tool-call argument pieces it has delivered so far, every choice.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    generations: int = 0
    reported: int = 0
    streamed: bool = False
    received: list[str] = field(default_factory=list, repr=False)
    _done: asyncio.Event | None = field(default=None, repr=False)

    def begin(self) -> None:
        """A generation started (its count is now awaited)."""
        self.generations += 1

    def end(self, prompt_tokens: int, completion_tokens: int) -> None:
        """A generation ended (finished, stopped by a cancel, or failed with 0, 0)."""
        self.prompt_tokens = max(self.prompt_tokens, int(prompt_tokens))
        self.completion_tokens += int(completion_tokens)
        self.reported += 1
        if self._done is not None and self.reported >= self.generations:
            self._done.set()

    def receive(self, pieces: Iterable[str]) -> None:
        """A streamed call delivered ``pieces`` (text and tool-call arguments)."""
        self.received.extend(p for p in pieces if p)

    @property
    def received_text(self) -> str:
        """Everything the streamed call delivered so far, concatenated."""
        return "".join(self.received)

    @property
    def metered(self) -> bool:
        """True when a generation of this call reported (an in-process tier's exact count)."""
        return self.generations > 0

    async def settled(self, timeout_s: float = 2.0) -> bool:
        """Wait until every started generation reported its count, at most ``timeout_s``
        seconds. Returns True when all did (a worker reports within one token of a cancel)."""
        if self.reported >= self.generations:
            return True
        if self._done is None:
            self._done = asyncio.Event()
        try:
            await asyncio.wait_for(self._done.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True


_CURRENT: contextvars.ContextVar[Spend | None] = contextvars.ContextVar("slm_router_spend", default=None)


def current_spend() -> Spend | None:
    """The spend of the tier call running in this context, or None (outside the pipeline)."""
    return _CURRENT.get()


@contextmanager
def metering(spend: Spend) -> Iterator[Spend]:
    """Make ``spend`` the current one while a tier call is started and awaited."""
    token = _CURRENT.set(spend)
    try:
        yield spend
    finally:
        _CURRENT.reset(token)
