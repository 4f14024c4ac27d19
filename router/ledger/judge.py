"""The judge of shadow samples: is the local answer better than, as good as, or worse than the cloud's?

A judge model sees the request and both answers and replies one word, BETTER, SAME or WORSE,
to "is the local answer better than, as good as, or worse than the cloud answer for this
request?" (the three-way verdict: ``better`` / ``same`` / ``worse``, always about the local
answer). LLM judges favour an answer for its position (Zheng et al. 2023, "Judging
LLM-as-a-judge with MT-Bench and Chatbot Arena", section 3.3: GPT-4 keeps its verdict under a
position swap in 65% of pairs), so with ``shadow.judge_swap`` (the default) the judge is asked
twice, the answers in both orders:

- order 1: answer 1 = the cloud answer, answer 2 = the local answer; "Is answer 2 better
  than, as good as, or worse than answer 1?"
- order 2: answer 1 = the local answer, answer 2 = the cloud answer; "Is answer 1 better
  than, as good as, or worse than answer 2?"

The reply is about the local answer in both. :func:`swap_outcome` gives a three-way verdict
only when both orders give the same one; :func:`swap_verdict` gives the binary verdict "the
local answer is at least as good" (``better`` or ``same``: True, ``worse``: False) when both
orders agree on that, so a BETTER and a SAME still say "at least as good" while the three-way
verdict is unsure. Otherwise the sample is ``unsure`` (no verdict, so the sample falls back to
the embedding agreement). A judge that replies YES or NO (the earlier binary prompt) is read
as "at least as good" (no three-way verdict) and ``worse``. The pure parts
(:func:`judge_messages`, :func:`parse_outcome`, :func:`parse_verdict`, :func:`swap_verdict`,
:func:`swap_outcome`, :func:`decide_verdict`) take data and return data; :class:`Judge` makes
the calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .cost import price_call

if TYPE_CHECKING:  # annotations only
    from ..policy import TierConfig
    from ..providers.tier_client import TierClient

__all__ = ["ORDERS", "OUTCOMES", "Judge", "JudgeOutcome", "JudgeVerdict", "judge_messages", "parse_outcome",
           "parse_verdict", "swap_verdict", "swap_outcome", "decide_verdict", "outcome_gain"]

ORDERS = ("cloud_first", "local_first")
"""The two positions of the answers: order 1 shows the cloud answer first, order 2 the local one."""

OUTCOMES = ("better", "same", "worse")
"""The three-way verdict on the local answer, compared with the cloud answer."""

_AS_GOOD = "as_good"  # a YES reply: at least as good, which of better / same unknown
_WORDS = {"BETTER": "better", "SAME": "same", "TIE": "same", "EQUAL": "same", "WORSE": "worse",
          "YES": _AS_GOOD, "NO": "worse"}

_SYSTEM = ("You are a strict judge of answer quality. You read a request and two answers to it. "
           "Reply with one word: BETTER, SAME or WORSE.")


def judge_messages(question: str, local: str, cloud: str, order: str = "cloud_first") -> list[dict[str, str]]:
    """Chat turns asking whether ``local`` is better than, as good as, or worse than ``cloud``
    for ``question``, with the answers in ``order`` (one of :data:`ORDERS`); the judge is told
    to reply BETTER, SAME or WORSE (about the local answer, whichever its position).

    Raises:
        ValueError: unknown order.
    """
    if order == "cloud_first":
        first, second, asked, other = cloud, local, 2, 1
    elif order == "local_first":
        first, second, asked, other = local, cloud, 1, 2
    else:
        raise ValueError(f"unknown judge order {order!r}; use one of {', '.join(ORDERS)}")
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": (
            f"Request:\n{question}\n\nAnswer 1:\n{first}\n\nAnswer 2:\n{second}\n\n"
            f"Is answer {asked} better than, as good as, or worse than answer {other} for this request (as correct, "
            "helpful and complete)? Reply BETTER, SAME or WORSE.")},
    ]


def _first_word(text: str) -> str:
    words = text.strip().strip("*\"'`.").split()
    return words[0].strip(".,:;!*\"'`").upper() if words else ""


def parse_outcome(text: str) -> str | None:
    """One judge reply's three-way verdict on the local answer: ``better``, ``same`` (also TIE,
    EQUAL) or ``worse`` (also NO); None for YES (at least as good, not which) or an
    unparseable reply."""
    found = _WORDS.get(_first_word(text))
    return None if found == _AS_GOOD else found


def parse_verdict(text: str) -> bool | None:
    """One judge reply's binary verdict: True (the local answer is at least as good: BETTER,
    SAME, YES), False (WORSE, NO), else None."""
    found = _WORDS.get(_first_word(text))
    return None if found is None else found != "worse"


def _agreed(first, second):
    """``first`` when both orders gave it, else None (tie/unsure)."""
    return first if first is not None and first == second else None


def swap_verdict(first: bool | None, second: bool | None) -> bool | None:
    """The verdict of two orders: True (local at least as good) or False only when both
    orders say so; None (tie/unsure) when they disagree or either gave no verdict."""
    return _agreed(first, second)


def swap_outcome(first: str | None, second: str | None) -> str | None:
    """The three-way verdict of two orders (:data:`OUTCOMES`): the one both orders gave; None
    (tie/unsure) when they differ or either gave none."""
    return _agreed(first, second)


def outcome_gain(outcome: str) -> int:
    """What sending the request to the cloud gains over the local answer: ``worse`` +1,
    ``same`` 0, ``better`` -1.

    Raises:
        ValueError: not one of :data:`OUTCOMES`.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown judge outcome {outcome!r}; use one of {', '.join(OUTCOMES)}")
    return {"better": -1, "same": 0, "worse": 1}[outcome]


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    """What the judge said about one sample.

    Attributes:
        replies: the raw reply per order asked (text, one per entry of ``orders``).
        orders: the orders asked (:data:`ORDERS`), one or two.
        per_order: the parsed binary verdict of each reply (True: local at least as good; None: unparseable).
        verdict: the final binary verdict (True, False, or None = tie/unsure).
        per_order_outcome: the parsed three-way verdict of each reply (:data:`OUTCOMES`; None:
            YES or unparseable).
        outcome: the final three-way verdict (``better``, ``same``, ``worse``, or None = tie/unsure).
    """

    replies: tuple[str, ...]
    orders: tuple[str, ...]
    per_order: tuple[bool | None, ...]
    verdict: bool | None
    per_order_outcome: tuple[str | None, ...] = ()
    outcome: str | None = None

    @property
    def label(self) -> str:
        """``local`` (as good), ``cloud`` (the cloud answer is better) or ``unsure``."""
        return {True: "local", False: "cloud", None: "unsure"}[self.verdict]


def decide_verdict(replies: Sequence[str], orders: Sequence[str] = ORDERS) -> JudgeVerdict:
    """The judge's decision from its replies (pure): one reply is its own verdict; two
    replies (both orders) give :func:`swap_verdict` of their binary verdicts and
    :func:`swap_outcome` of their three-way ones.

    Raises:
        ValueError: not one or two replies, or replies and orders of different lengths.
    """
    if len(replies) not in (1, 2) or len(replies) != len(orders):
        raise ValueError("the judge decides on one reply or on one reply per order (two)")
    parsed = tuple(parse_verdict(r) for r in replies)
    outcomes = tuple(parse_outcome(r) for r in replies)
    final = parsed[0] if len(parsed) == 1 else swap_verdict(*parsed)
    outcome = outcomes[0] if len(outcomes) == 1 else swap_outcome(*outcomes)
    return JudgeVerdict(tuple(replies), tuple(orders), parsed, final, outcomes, outcome)


@dataclass(slots=True)
class JudgeOutcome:
    """A judged sample with what the judge cost: the verdict (None when every call failed),
    the prompt and completion tokens of its calls, their cost (USD; None when a call's price
    is unknown) and the errors of failed calls."""

    verdict: JudgeVerdict | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    errors: list[str] = field(default_factory=list)


class Judge:
    """Asks the judge tier about a sample, in one or both orders (concurrently).

    Args:
        client: calls the judge tier (:meth:`TierClient.complete`: a result with ``text``,
            ``prompt_tokens``, ``completion_tokens``, ``cached_prompt_tokens``, ``latency_ms``).
        tier_name: the judge tier; tier: its config (for the price).
        swap: ask both orders (:data:`ORDERS`); else only ``cloud_first``.
        max_tokens: the reply cap (tokens); BETTER/SAME/WORSE needs one or two.
    """

    def __init__(self, client: "TierClient", tier_name: str, tier: "TierConfig", swap: bool = True,
                 max_tokens: int = 4) -> None:
        self.client = client
        self.tier_name = tier_name
        self.tier = tier
        self.orders = ORDERS if swap else ORDERS[:1]
        self.params = {"max_tokens": max_tokens, "temperature": 0}

    async def judge(self, question: str, local: str, cloud: str) -> JudgeOutcome:
        """Ask the judge; never raises for a failed call (the outcome lists the errors and,
        when a call failed, its order counts as no verdict)."""
        from ..providers.tier_client import TierCallError

        async def ask(order: str):
            try:
                return await self.client.complete(self.tier_name, judge_messages(question, local, cloud, order),
                                                  dict(self.params))
            except TierCallError as err:
                return err

        results = await asyncio.gather(*(ask(o) for o in self.orders))
        outcome = JudgeOutcome(None)
        replies = []
        for result in results:
            if isinstance(result, Exception):
                outcome.errors.append(str(result)[:300])
                replies.append("")
                continue
            replies.append(result.text)
            outcome.prompt_tokens += result.prompt_tokens
            outcome.completion_tokens += result.completion_tokens
            cost, _ = await asyncio.to_thread(price_call, self.tier, result.prompt_tokens, result.completion_tokens,
                                              result.cached_prompt_tokens, result.latency_ms)
            outcome.cost_usd = None if cost is None or outcome.cost_usd is None else outcome.cost_usd + cost
        if len(outcome.errors) < len(results):
            outcome.verdict = decide_verdict(replies, self.orders)
        return outcome
