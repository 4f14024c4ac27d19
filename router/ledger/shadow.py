"""Shadow sampling: measure how often a locally served answer is as good as the cloud's.

After a request answered by the local tier has been logged, :class:`ShadowSampler` sends a
``shadow.rate`` share of them (chosen by a hash of the request id, so the choice is
reproducible) to the cloud tier as well, on a background task: the client already has its
answer and never waits for this. Both answers are stored as a
:class:`~router.store.records.ShadowRecord` with their agreement: the cosine similarity of their
MiniLM embeddings (``router.scoring.embedder``) and, when ``shadow.judge_tier`` names a
tier, that model's three-way verdict on the local answer (better / as good / worse than the
cloud's; :mod:`router.ledger.judge`) and the binary one it implies (at least as good). Escalated
requests already hold both answers (the local attempt and the cloud's), so they are scored
too, with no extra call. With ``shadow.cloud_rate`` the other side is sampled as well: a
request the classifier sent to the cloud tier is answered again by the local tier in the
background, and the judge compares that local answer with the cloud answer the client got
(kind ``local_shadow``), so labels exist on both sides of the threshold. The report turns the samples into an estimated quality retention
(:mod:`router.analysis.quality`).

Which requests are sampled is ``shadow.strategy`` (:func:`sample_probability`): each with
probability ``rate`` (``uniform``), or more often where the decision was close
(``uncertain``); that probability is stored with the sample (``sample_p``), with ``rate`` for
locally served requests and ``cloud_rate`` for cloud-routed ones.

The pure parts (:func:`is_sampled`, :func:`sample_probability`, :func:`agreement`, and the
judge's :func:`~router.ledger.judge.decide_verdict`) take data and return data;
:class:`ShadowSampler` does the I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time

import numpy as np

from .cost import price_call
from .judge import Judge, judge_messages, parse_verdict
from ..policy import Policy
from ..providers.tier_client import TierCallError, TierClient
from ..store.records import RequestRecord, ShadowRecord
from ..request.parse import ChatRequest, message_text
from ..scoring.embedder import Embedder
from ..store.base import RequestStore

__all__ = ["ShadowSampler", "is_sampled", "sample_probability", "judge_messages", "parse_verdict", "agreement"]

log = logging.getLogger(__name__)

# OpenAI parameters not sent with a shadow call: log-probabilities and extra choices are
# not needed to compare answers and would only cost more.
_DROPPED_PARAMS = ("logprobs", "top_logprobs", "n", "stream_options")


def is_sampled(request_id: str, rate: float) -> bool:
    """True for a ``rate`` share of request ids (SHA-256 of the id read as a number in [0, 1))."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    h = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big")
    return h / 2**64 < rate


def sample_probability(score: float | None, threshold: float | None, strategy: str, rate: float,
                       band: float = 0.05, min_rate: float = 0.01, floor: float = 0.0) -> float:
    """The probability that a locally served request is shadow-sampled (0..1).

    ``uniform``: ``rate``. ``uncertain``: ``rate * (floor + (1 - floor) * exp(-|score - threshold| / band))``,
    at least ``min_rate``, capped at ``rate`` and 1: ``rate`` for a score at the threshold (the
    closest decisions, whose labels move a router most: uncertainty sampling, Lewis and Gale
    1994), falling off with the distance in score units. ``floor`` is a uniform share of the
    rate every request keeps whatever its distance (a mixture of uniform and uncertainty
    sampling, as importance-weighted active learning keeps a minimum query probability:
    Beygelzimer, Dasgupta and Langford 2009, "Importance weighted active learning", ICML): it
    keeps labels across the whole score range, which a ranking over every cloud share (APGR)
    needs, and bounds the inverse-probability weights ``1 / p`` at ``1 / (rate * floor)``;
    ``min_rate`` keeps every request sampleable when ``floor`` is 0. A request without a score
    or threshold (a forced tier) gets ``rate``.

    Raises:
        ValueError: ``floor`` outside [0, 1].
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be between 0 and 1, got {floor}")
    if rate <= 0:
        return 0.0
    if strategy == "uniform" or score is None or threshold is None:
        return min(1.0, rate)
    near = rate * (floor + (1.0 - floor) * math.exp(-abs(score - threshold) / band))
    return min(1.0, rate, max(min_rate, near))


def agreement(similarity: float | None, verdict: bool | None, agree_at: float) -> bool | None:
    """Whether the local answer counts as as good as the cloud's: the judge's verdict when
    there is one, else ``similarity >= agree_at``; None when neither is known."""
    if verdict is not None:
        return verdict
    if similarity is None:
        return None
    return similarity >= agree_at


def _similarity(embedder: Embedder, a: str, b: str) -> float:
    if not a.strip() or not b.strip():
        return 1.0 if not a.strip() and not b.strip() else 0.0
    vectors = embedder.encode([a, b])
    return float(np.dot(vectors[0], vectors[1]))


class ShadowSampler:
    """Takes quality samples of logged requests in the background.

    Args:
        policy: its ``shadow`` section (rate, agree_at, judge_tier, max_in_flight) and tiers.
        client: calls the cloud and judge tiers.
        store: where samples are written (``record_shadow``).
        embedder: MiniLM encoder for the similarity; a new lazily loaded one when None.

    Attributes:
        skipped: samples not taken because ``max_in_flight`` were already running.
    """

    def __init__(self, policy: Policy, client: TierClient, store: RequestStore, embedder: Embedder | None = None) -> None:
        self.policy = policy
        self.client = client
        self.store = store
        self._embedder = embedder
        self._tasks: set[asyncio.Task] = set()
        self._shadow_calls = 0
        self.skipped = 0

    @property
    def embedder(self) -> Embedder:
        """The encoder used for agreement (created on first use)."""
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    def consider(self, record: RequestRecord, request: ChatRequest, answer_text: str, local_text: str | None = None) -> None:
        """Schedule the samples a just-logged request calls for; returns at once.

        Args:
            record: the logged request; only ``ok`` ones are sampled.
            request: its parsed body (turns and parameters are resent to the cloud tier).
            answer_text: the answer the client got.
            local_text: the local attempt's answer when the request was escalated.
        """
        cfg = self.policy.shadow
        if cfg.rate <= 0 or record.status != "ok":
            return
        if record.escalated and local_text is not None:
            self._spawn(self._score_escalation(record, request, local_text, answer_text))
            return
        if record.local:
            p = sample_probability(record.score, record.threshold, cfg.strategy, cfg.rate, cfg.band, cfg.min_rate,
                                   cfg.floor)
            if self.policy.cloud.available and is_sampled(record.id, p) and self._room(record):
                self._spawn(self._shadow(record, request, answer_text, p))
        elif self._cloud_routed(record):
            p = sample_probability(record.score, record.threshold, cfg.strategy, cfg.cloud_rate, cfg.band,
                                   min(cfg.min_rate, cfg.cloud_rate), cfg.floor)
            if is_sampled(record.id, p) and self._room(record):
                self._spawn(self._local_shadow(record, request, answer_text, p))

    def _cloud_routed(self, record: RequestRecord) -> bool:
        """A request the classifier sent to the cloud tier, which answered it: a ``local_shadow`` candidate."""
        cfg, routing = self.policy.shadow, self.policy.routing
        return (cfg.cloud_rate > 0 and cfg.judge_tier is not None and record.score is not None
                and not record.escalated and record.routed_tier == routing.cloud_tier
                and record.tier == routing.cloud_tier and routing.local_tier in self.policy.tiers)

    def _room(self, record: RequestRecord) -> bool:
        """False (and counted in ``skipped``) when ``max_in_flight`` samples are already running."""
        if self._shadow_calls < self.policy.shadow.max_in_flight:
            return True
        self.skipped += 1
        log.warning("shadow sample of %s skipped: %d already running", record.id, self._shadow_calls)
        return False

    async def drain(self) -> None:
        """Wait for the samples still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- background work -----------------------------------------------------------------
    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(self, record: RequestRecord, request: ChatRequest, local_text: str, p: float) -> None:
        """The cloud tier answers a locally served request; the judge compares the two answers."""
        await self._sample("shadow", self.policy.routing.cloud_tier, record, request, p, local_text=local_text)

    async def _local_shadow(self, record: RequestRecord, request: ChatRequest, cloud_text: str, p: float) -> None:
        """The local tier answers a cloud-routed request; the judge compares it with the cloud answer."""
        await self._sample("local_shadow", self.policy.routing.local_tier, record, request, p, cloud_text=cloud_text)

    async def _sample(self, kind: str, name: str, record: RequestRecord, request: ChatRequest, p: float,
                      local_text: str = "", cloud_text: str = "") -> None:
        """Call tier ``name`` for the answer the client did not get (the other side of
        ``local_text`` / ``cloud_text``), price it, judge the pair and store the sample (kind
        ``shadow`` or ``local_shadow``, inverse-probability weight from ``p``). Never raises."""
        self._shadow_calls += 1
        try:
            tier = self.policy.tiers[name]
            sample = ShadowRecord(record.id, time.time(), kind, name, tier.model, local_text=local_text,
                                  cloud_text=cloud_text, sample_p=p)
            params = {k: v for k, v in request.params.items() if k not in _DROPPED_PARAMS}
            try:
                result = await self.client.complete(name, request.messages_as_dicts(), params)
            except TierCallError as err:
                sample.status, sample.error = "error", str(err)[:500]
            else:
                if kind == "shadow":
                    sample.cloud_text = result.text
                else:
                    sample.local_text = result.text
                sample.prompt_tokens, sample.completion_tokens = result.prompt_tokens, result.completion_tokens
                sample.cached_prompt_tokens, sample.latency_ms = result.cached_prompt_tokens, result.latency_ms
                sample.cost_usd, sample.price_source = await asyncio.to_thread(
                    price_call, tier, result.prompt_tokens, result.completion_tokens, result.cached_prompt_tokens,
                    result.latency_ms)
                await self._agree(sample, request)
            await asyncio.to_thread(self.store.record_shadow, sample)
        except Exception:
            log.exception("%s sample of request %s failed", kind.replace("_", " "), record.id)
        finally:
            self._shadow_calls -= 1

    async def _score_escalation(self, record: RequestRecord, request: ChatRequest, local_text: str, cloud_text: str) -> None:
        try:
            name = self.policy.routing.cloud_tier
            sample = ShadowRecord(record.id, time.time(), "escalation", name, self.policy.tiers[name].model,
                                  local_text=local_text, cloud_text=cloud_text, cost_usd=0.0, sample_p=1.0)
            await self._agree(sample, request)
            await asyncio.to_thread(self.store.record_shadow, sample)
        except Exception:
            log.exception("escalation sample of request %s failed", record.id)

    async def _agree(self, sample: ShadowRecord, request: ChatRequest) -> None:
        """Fill similarity, judge fields and ``agrees`` of a sample holding both answers."""
        sample.similarity = await asyncio.to_thread(_similarity, self.embedder, sample.local_text, sample.cloud_text)
        judge = self.policy.shadow.judge_tier
        if judge is not None:
            await self._judge(sample, request, judge)
        sample.agrees = agreement(sample.similarity, sample.judge_verdict, self.policy.shadow.agree_at)

    async def _judge(self, sample: ShadowRecord, request: ChatRequest, judge: str) -> None:
        tier = self.policy.tiers[judge]
        sample.judge_model = tier.model
        question = message_text(request.messages[request.asking_index()])
        outcome = await Judge(self.client, judge, tier, swap=self.policy.shadow.judge_swap).judge(
            question, sample.local_text, sample.cloud_text)
        for err in outcome.errors:
            log.warning("judge %s failed on request %s: %s", judge, sample.request_id, err)
        sample.judge_prompt_tokens, sample.judge_completion_tokens = outcome.prompt_tokens, outcome.completion_tokens
        sample.judge_cost_usd = outcome.cost_usd
        if outcome.verdict is not None:
            v = outcome.verdict
            sample.judge_verdict, sample.judge_outcome = v.verdict, v.outcome
            sample.judge_replies = [{"order": o, "reply": r[:200], "verdict": p, "outcome": t}
                                    for o, r, p, t in zip(v.orders, v.replies, v.per_order, v.per_order_outcome)]
