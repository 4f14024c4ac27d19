"""The one call path: every tier, local or cloud, is called with ``litellm.acompletion``.

:class:`TierClient` turns a tier name, turns and parameters into a :class:`CallResult`
(or a stream of OpenAI-shaped deltas) and maps provider failures to
:class:`TierCallError`, which says whether another tier may answer instead.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..policy import Policy, TierConfig
from .llama_runtime import ContextWindowExceededError
from .local_provider import STREAM_LOGPROBS_FIELD

__all__ = ["CallResult", "StreamDelta", "TierCallError", "TierClient"]


class TierCallError(Exception):
    """A tier call failed.

    Attributes:
        tier: tier name; status: HTTP-like status (400 bad request, 401 auth, 408 timeout,
            429 rate limit, 502/503 upstream); client_fault: True when the request itself is
            bad (retrying it elsewhere would fail the same way); retryable: a second attempt
            at the same tier may succeed (timeouts, rate limits, 5xx; never a 4xx or an auth
            failure).
    """

    def __init__(self, tier: str, status: int, message: str, client_fault: bool = False,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        self.tier = tier
        self.status = status
        self.client_fault = client_fault
        self.retryable = (status in (408, 429, 500, 502, 503, 504) and not client_fault) if retryable is None else retryable


@dataclass(slots=True)
class CallResult:
    """A finished tier call.

    Attributes:
        response: the OpenAI chat-completion object as a dict (litellm's shape).
        text: first choice's content; finish_reason: its finish reason.
        prompt_tokens, completion_tokens: reported usage (tokens).
        latency_ms: wall time of the call (ms).
        token_logprobs: per-token log-probabilities (nats) of the first choice, if returned.
        cached_prompt_tokens: prompt tokens served from the provider's cache (OpenAI's
            ``usage.prompt_tokens_details.cached_tokens``), 0 when not reported.
        top_logprobs: per completion token, the returned alternatives as (token, logprob),
            best first (OpenAI's ``top_logprobs``); None when not returned.
    """

    response: dict[str, Any]
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    token_logprobs: list[float] | None = None
    cached_prompt_tokens: int = 0
    top_logprobs: list[list[tuple[str, float]]] | None = None


def cached_tokens(usage: dict[str, Any] | None) -> int:
    """Cached prompt tokens in an OpenAI ``usage`` dict (0 when absent)."""
    details = (usage or {}).get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0


@dataclass(slots=True)
class StreamDelta:
    """One streamed piece: ``content`` text for choice ``index``, a ``finish_reason`` on the
    last piece of a choice, and ``usage`` (prompt/completion tokens, and
    ``cached_prompt_tokens`` when reported) when the tier reports it. ``logprobs``: when the
    call asked for them, one (logprob in nats, alternatives as (token, logprob)) pair per
    token behind ``content`` (from OpenAI's chunk ``logprobs`` or the in-process tier's
    ``provider_specific_fields``), else None. ``tool_calls``: OpenAI's streamed tool-call
    pieces (``index``, then ``id``/``function.name`` once and ``function.arguments`` in
    fragments), else None."""

    content: str = ""
    index: int = 0
    finish_reason: str | None = None
    usage: dict[str, int] | None = field(default=None)
    logprobs: list[tuple[float, list[tuple[str, float]]]] | None = None
    tool_calls: list[dict[str, Any]] | None = None


def _token_logprobs(content: list[dict[str, Any]] | None) -> list[tuple[float, list[tuple[str, float]]]] | None:
    """OpenAI ``logprobs.content`` entries as (logprob, alternatives) pairs; None when absent."""
    if not content:
        return None
    return [(float(t["logprob"]), [(str(a.get("token", "")), float(a["logprob"])) for a in (t.get("top_logprobs") or [])
                                   if a.get("logprob") is not None])
            for t in content if isinstance(t, dict) and t.get("logprob") is not None]


def _map_error(tier: str, err: Exception, secret: str | None = None) -> TierCallError:
    mapped = err if isinstance(err, TierCallError) else _classify(tier, err)
    if secret and secret in str(mapped):  # a provider key must never reach a log or a client
        mapped = TierCallError(tier, mapped.status, str(mapped).replace(secret, "***"),
                               mapped.client_fault, mapped.retryable)
    return mapped


def _classify(tier: str, err: Exception) -> TierCallError:
    if isinstance(err, ContextWindowExceededError):
        return TierCallError(tier, 400, str(err), client_fault=False, retryable=False)
    import litellm

    status = getattr(err, "status_code", None) or 502
    message = f"tier '{tier}' failed: {type(err).__name__}: {getattr(err, 'message', None) or err}"
    if isinstance(err, litellm.exceptions.ContextWindowExceededError):
        return TierCallError(tier, 400, message, client_fault=False, retryable=False)
    if isinstance(err, (litellm.exceptions.AuthenticationError, litellm.exceptions.PermissionDeniedError)):
        return TierCallError(tier, 503, message, retryable=False)
    if isinstance(err, litellm.exceptions.Timeout):
        return TierCallError(tier, 408, message)
    if isinstance(err, (litellm.exceptions.BadRequestError, litellm.exceptions.UnprocessableEntityError)):
        return TierCallError(tier, 400, message, client_fault=True)
    if isinstance(err, litellm.exceptions.APIConnectionError):
        return TierCallError(tier, 503, message)
    return TierCallError(tier, int(status) if int(status) >= 400 else 502, message)


class TierClient:
    """Calls tiers of a policy through litellm.

    Args:
        policy: the tiers; ``slm-local/...`` tiers are registered with the local provider.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._runtimes = {}
        for name, tier in policy.tiers.items():
            if tier.is_in_process:
                from .local_provider import register_local_tier

                self._runtimes[name] = register_local_tier(tier)

    def warm_up(self) -> None:
        """Load in-process models now (blocking, seconds) and import litellm."""
        import litellm  # noqa: F401 - import cost paid at start-up, not on the first request

        for runtime in self._runtimes.values():
            runtime.load()

    def _kwargs(self, name: str, tier: TierConfig, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(params)
        if tier.max_tokens and "max_tokens" not in kwargs and "max_completion_tokens" not in kwargs:
            kwargs["max_tokens"] = tier.max_tokens
        kwargs.update(model=tier.model, messages=messages, timeout=tier.timeout_s, num_retries=0)
        if tier.api_key:
            kwargs["api_key"] = tier.api_key
        if tier.api_base:
            kwargs["api_base"] = tier.api_base
        return kwargs

    async def complete(self, name: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> CallResult:
        """Call tier ``name`` once, without streaming.

        Raises:
            TierCallError: the provider failed or refused.
        """
        import litellm

        tier = self.policy.tiers[name]
        start = time.perf_counter()
        try:
            response = await litellm.acompletion(**self._kwargs(name, tier, messages, params))
        except Exception as err:
            raise _map_error(name, err, tier.api_key) from err
        body = response.model_dump()
        latency_ms = (time.perf_counter() - start) * 1000
        choice = (body.get("choices") or [{}])[0]
        usage = body.get("usage") or {}
        logprobs = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
        return CallResult(
            response=body,
            text=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=latency_ms,
            token_logprobs=[float(t["logprob"]) for t in logprobs] if logprobs else None,
            cached_prompt_tokens=cached_tokens(usage),
            top_logprobs=[[(str(a.get("token", "")), float(a["logprob"])) for a in (t.get("top_logprobs") or [])
                           if a.get("logprob") is not None] for t in logprobs] if logprobs else None,
        )

    async def stream(self, name: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> AsyncIterator[StreamDelta]:
        """Call tier ``name`` with streaming; yields :class:`StreamDelta` pieces, usage last.

        Raises:
            TierCallError: the provider failed, before or during the stream.
        """
        import litellm

        tier = self.policy.tiers[name]
        kwargs = self._kwargs(name, tier, messages, params)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        try:
            response = await litellm.acompletion(**kwargs)
            async for chunk in response:
                body = chunk.model_dump()
                usage = body.get("usage")
                for choice in body.get("choices") or []:
                    delta = choice.get("delta") or {}
                    content = delta.get("content") or ""
                    lp = choice.get("logprobs")
                    extra = (delta.get("provider_specific_fields") or {}).get(STREAM_LOGPROBS_FIELD)
                    logprobs = _token_logprobs(extra or (lp.get("content") if isinstance(lp, dict) else None))
                    tool_calls = delta.get("tool_calls") or None
                    if content or choice.get("finish_reason") or logprobs or tool_calls:
                        yield StreamDelta(content, int(choice.get("index") or 0), choice.get("finish_reason"), None, logprobs,
                                          tool_calls)
                if usage and usage.get("completion_tokens") is not None:
                    yield StreamDelta(usage={
                        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                        "completion_tokens": int(usage.get("completion_tokens") or 0),
                        "cached_prompt_tokens": cached_tokens(usage),
                    })
        except TierCallError:
            raise
        except Exception as err:
            raise _map_error(name, err, tier.api_key) from err
