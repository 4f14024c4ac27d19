"""What the log holds: one :class:`RequestRecord` per client request, one
:class:`CallRecord` per model call made for it (the local attempt and the escalation of a
cascaded request are two calls) and one :class:`ShadowRecord` per quality sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallRecord", "RequestRecord", "ShadowRecord", "FeedbackRecord"]


@dataclass(slots=True)
class CallRecord:
    """One call to a tier.

    Attributes:
        request_id: the request it served.
        ts: start time, Unix seconds.
        tier, model: tier name and litellm model string.
        purpose: ``primary`` (first tier tried), ``escalation`` (after a failed check),
            ``fallback`` (after an error or unavailable tier), ``retry`` (a repeated attempt),
            ``self_check`` (the local model judging its own answer) or ``consistency`` (an
            extra local sample whose agreement with the answer is a check signal).
        status: ``ok`` or ``error``; ``error`` holds the message then.
        prompt_tokens, completion_tokens: as the tier reported (tokens).
        latency_ms: wall time of the call (ms).
        cost_usd: price of the call (USD); None when no price is known (flagged, never $0).
        mean_logprob: mean token log-probability of the answer (nats), when available.
        cached_prompt_tokens: prompt tokens the provider served from its prompt cache (a
            subset of prompt_tokens, priced at the cached-input rate).
        price_source: where cost_usd came from: ``policy`` (the tier's per-token price),
            ``hourly`` (the tier's hardware price per hour), ``litellm`` (litellm's model
            price map); None when no price is known.
        empty_answer: the answer had no visible text (an escalation input); None when not
            checked.
        signals: the checked answer's confidence signals
            (:meth:`router.cascade.signals.AnswerSignals.as_dict`, plus ``p_correct`` when a combiner
            ran and ``prefix_tokens`` when only a streamed prefix was checked), so ``replay``
            can re-evaluate another policy's thresholds; None on calls that were not checked
            and in logs written before signals were kept.
    """

    request_id: str
    ts: float
    tier: str
    model: str
    purpose: str = "primary"
    status: str = "ok"
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = 0.0
    mean_logprob: float | None = None
    cached_prompt_tokens: int = 0
    price_source: str | None = None
    empty_answer: bool | None = None
    signals: dict[str, Any] | None = None


@dataclass(slots=True)
class RequestRecord:
    """One client request, successful or not.

    Attributes:
        id: request id (also the response ``id`` suffix and ``x-request-id``).
        ts: arrival time, Unix seconds.
        requested_model: the client's ``model`` field (None when unparseable).
        routed_tier: tier the policy chose first; tier: tier whose answer was returned.
        local: True when the returned answer came from the policy's local tier.
        score: classifier P(needs cloud); None when not scored.
        reason: why (the ``x-router-reason`` text).
        escalated, degraded, stream: flags.
        status: ``ok`` or ``error``; http_status and error describe failures.
        prompt_tokens, completion_tokens: of the returned answer (tokens).
        latency_ms: request wall time (ms).
        cost_usd: sum of its calls' cost (USD); None if any call's price is unknown.
        counterfactual_usd: what it would have cost on the cloud tier (USD); None if unknown.
        policy_hash: :func:`router.policy.view.policy_hash` of the policy that routed it.
        rules: names of the routing rules that matched, comma-separated; None when none did.
        api_key_name: the caller's ``api_keys`` entry name; None for an unknown caller.
        tenant: who asked (:func:`router.request.tenant.tenant_id`: a key hash or ``anonymous``).
        cache: ``exact`` or ``semantic`` when answered from the response cache, else None.
        calls: the model calls made for it.
        api_key_id: a non-reversible id of the client's API key (``key-`` + 16 hex of its
            SHA-256), None when the request carried none; never the key itself.
        needs: capabilities the request needs, comma-separated (``json,tools,vision``).
        prompt_chars: characters in all turns.
        prompt_messages: how many turns the request held (the context-window estimate,
            :func:`router.request.features.approx_tokens`, reads it); None in logs written
            before it was kept (replay then estimates as the router did then: characters alone).
        cloud_available: whether the cloud tier was available when the request was decided
            (a decision input; None when not decided).
        max_tokens: the completion-token cap the request asked for (None = none).
        cloud_prompt_tokens: the prompt counted with the cloud model's tokenizer (tokens).
        cloud_completion_tokens: completion tokens of the cloud answer: the real count when the
            cloud tier answered, else the estimate used for the counterfactual (see
            :func:`router.ledger.cost.estimate_cloud_completion_tokens`).
        rule_facts: what the routing rules read that the fields above do not hold
            (:func:`router.routing.rules.logged_facts`: the headers and metadata entries rules
            name, the last user turn when a regex rule reads it, language, prompt tokens);
            None when the request was not routed.
        session_id: the conversation's session (:func:`router.routing.session.session_id`),
            None without one; session_prev_tier: the tier of the session's previous turn (None
            on its first); session_per_turn_tier: the tier the turn's own decision chose, before
            the session kept its tier (:func:`router.routing.session.choose_tier`).
        shadow_policy_version: the policy version in shadow when the request was routed
            (:mod:`router.pipeline.candidate`), None without one; shadow_tier: the tier that
            version would have chosen first (``error:<code>`` when it would have refused the
            request). It never acted.
        threshold: the classifier threshold the score was compared with (None when not
            compared); shadow sampling's ``uncertain`` strategy reads the distance to it.
        learning: what ``log.keep_for_learning`` keeps for ``slm-router learn``
            (:func:`router.learning.keep.kept_inputs`): ``{"embedder", "embedding"}`` (the
            vector the scorer computed, float16 base64) and ``features`` (text feature name ->
            value), plus ``text``, ``answer`` and ``local_answer`` with ``text``; None with
            ``none`` or when the request was not scored.

    The fields after ``calls`` are decision and pricing inputs kept so that ``replay`` can
    re-decide and re-price a request from the log alone.
    """

    id: str
    ts: float
    requested_model: str | None = None
    routed_tier: str | None = None
    tier: str | None = None
    local: bool = False
    score: float | None = None
    reason: str = ""
    escalated: bool = False
    degraded: bool = False
    stream: bool = False
    status: str = "ok"
    http_status: int = 200
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = 0.0
    counterfactual_usd: float | None = 0.0
    policy_hash: str | None = None
    rules: str | None = None
    api_key_name: str | None = None
    tenant: str | None = None
    cache: str | None = None
    calls: list[CallRecord] = field(default_factory=list)
    api_key_id: str | None = None
    needs: str = ""
    prompt_chars: int = 0
    cloud_available: bool | None = None
    max_tokens: int | None = None
    cloud_prompt_tokens: int | None = None
    cloud_completion_tokens: int | None = None
    rule_facts: dict[str, Any] | None = None
    session_id: str | None = None
    session_prev_tier: str | None = None
    session_per_turn_tier: str | None = None
    shadow_policy_version: str | None = None
    shadow_tier: str | None = None
    threshold: float | None = None
    learning: dict[str, Any] | None = None
    prompt_messages: int | None = None


@dataclass(slots=True)
class ShadowRecord:
    """A quality sample: a locally served answer beside the cloud tier's answer to the same
    request, with their agreement.

    ``kind`` is ``shadow`` (the request was answered locally and, by ``shadow.rate``, also
    sent to the cloud tier in the background; that extra call costs ``cost_usd``) or
    ``escalation`` (the request was escalated, so both answers already existed; no extra
    call, cost 0) or ``local_shadow`` (the classifier sent the request to the cloud tier and,
    by ``shadow.cloud_rate``, the local tier answered it too in the background; ``tier``,
    ``model`` and the call's tokens and cost are then the local tier's).

    Attributes:
        request_id, ts: the request and the time the sample was taken (Unix s).
        kind: ``shadow``, ``escalation`` or ``local_shadow``.
        tier, model: the tier of the extra call (the cloud tier; the local tier for
            ``local_shadow``) and its litellm model string.
        status: ``ok`` or ``error`` (``error`` holds the message; no agreement then).
        local_text, cloud_text: the two answers.
        prompt_tokens, completion_tokens, cached_prompt_tokens, latency_ms: of the shadow call.
        cost_usd, price_source: its price (USD), as for :class:`CallRecord`.
        similarity: cosine similarity of the two answers' MiniLM embeddings (-1..1).
        agrees: the local answer counts as as good as the cloud's: the judge's verdict when a
            judge ran, else ``similarity >= shadow.agree_at``; None when unknown.
        judge_model: the judge tier's model when an LLM judge ran; judge_verdict its final
            verdict (True: the local answer is at least as good; None: tie/unsure, the orders
            disagreed, or no verdict); judge_cost_usd the cost of its calls (USD).
        judge_outcome: the judge's three-way verdict on the local answer compared with the
            cloud's: ``better``, ``same`` or ``worse`` (both orders gave it); None: tie/unsure,
            no judge, or a log written before it was kept (then ``judge_verdict`` alone says
            whether the local answer was at least as good).
        judge_replies: the judge's raw replies, one per order asked, as a JSON list of
            ``{"order", "reply", "verdict", "outcome"}`` (:mod:`router.ledger.judge`); None without a judge.
        judge_prompt_tokens, judge_completion_tokens: tokens of the judge's calls (both orders).
        sample_p: the probability with which the request was chosen for this sample
            (``shadow.rate`` under ``uniform``, higher near the threshold under ``uncertain``,
            ``shadow.cloud_rate`` for ``local_shadow``, 1 for escalation samples); estimates weight each sample by ``1 / sample_p``.
            None in logs written before it was kept (read as ``shadow.rate``).
    """

    request_id: str
    ts: float
    kind: str = "shadow"
    tier: str = ""
    model: str = ""
    status: str = "ok"
    error: str | None = None
    local_text: str = ""
    cloud_text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = 0.0
    price_source: str | None = None
    similarity: float | None = None
    agrees: bool | None = None
    judge_model: str | None = None
    judge_verdict: bool | None = None
    judge_cost_usd: float | None = None
    judge_replies: list[dict[str, Any]] | None = None
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    sample_p: float | None = None
    judge_outcome: str | None = None


@dataclass(slots=True)
class FeedbackRecord:
    """Explicit feedback on one logged request (``POST /v1/feedback``).

    Attributes:
        request_id: the request it is about (its ``x-request-id``).
        ts: when the feedback arrived (Unix s).
        score: the caller's rating in [0, 1] (1 = the answer was good), or None.
        thumbs: ``up`` or ``down``, or None (exactly one of score and thumbs is set).
        comment: free text (at most 2,000 characters), or None.
        api_key_id: the id of the key that sent it (``key-`` + 16 hex), None without one.
    """

    request_id: str
    ts: float
    score: float | None = None
    thumbs: str | None = None
    comment: str | None = None
    api_key_id: str | None = None

    @property
    def good(self) -> bool:
        """True when the feedback says the answer was good (thumbs up, or score >= 0.5)."""
        return self.thumbs == "up" if self.thumbs is not None else (self.score or 0.0) >= 0.5
