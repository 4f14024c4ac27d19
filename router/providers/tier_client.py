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
from . import sse_filter
from .llama_runtime import ContextWindowExceededError
from .local_provider import IN_PROCESS_UNSENT, STREAM_LOGPROBS_FIELD
from .litellm_settings import configure_litellm
from .local_errors import LocalTierError
from .provider_text import provider_message
from .null_content import forwarded_messages
from .runtimes import Launchable, runtime_for
from .spend import current_spend
from .usage import cached_tokens, counted_usage, implausible_usage

__all__ = ["CallResult", "StreamDelta", "TierCallError", "TierClient", "logprob_entries"]


class TierCallError(Exception):
    """A tier call failed.

    Attributes:
        tier: tier name; status: HTTP-like status (400 bad request, 401 auth, 408 timeout,
            429 rate limit, 502/503 upstream); client_fault: True when the request itself is
            bad (retrying it elsewhere would fail the same way); retryable: a second attempt
            at the same tier may succeed (timeouts, rate limits, 5xx; never a 4xx or an auth
            failure); fallback: another tier may answer instead (False for a full local
            queue under ``on_queue_full: reject``); retry_after_s: when the same call may
            succeed (s; a full local queue), else None.
    """

    def __init__(self, tier: str, status: int, message: str, client_fault: bool = False,
                 retryable: bool | None = None, fallback: bool = True, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.tier = tier
        self.status = status
        self.client_fault = client_fault
        self.fallback = fallback
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
        usage_estimated: the upstream reported no usage; the token counts are litellm's
            tokenizer's count of the prompt and of every choice's text.
        usage_rejected: the upstream's usage was implausible (:func:`implausible_usage`,
            e.g. ``"prompt_tokens=-5"``) and was counted instead, as when none is reported;
            None otherwise.
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
    usage_estimated: bool = False
    usage_rejected: str | None = None

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The first choice's tool calls (OpenAI's message ``tool_calls``), empty when none."""
        choice = (self.response.get("choices") or [{}])[0]
        return list((choice.get("message") or {}).get("tool_calls") or [])


@dataclass(slots=True)
class StreamDelta:
    """One streamed piece: ``content`` text for choice ``index``, a ``finish_reason`` on the
    last piece of a choice, and ``usage`` (prompt/completion tokens, and
    ``cached_prompt_tokens`` when reported) when the tier reports it. ``logprobs``: when the
    call asked for them, one (logprob in nats, alternatives as (token, logprob)) pair per
    token behind ``content`` (from OpenAI's chunk ``logprobs`` or the in-process tier's
    ``provider_specific_fields``), else None. ``tool_calls``: the chunk's tool-call
    fragments in OpenAI's delta shape (``index``, and ``id``/``type``/``function.name`` on
    a call's first fragment, ``function.arguments`` pieces), None when it has none.
    ``logprob_entries``: the same log-probabilities as OpenAI chat entries (token text
    included), for relaying to a client that asked for them."""

    content: str = ""
    index: int = 0
    finish_reason: str | None = None
    usage: dict[str, int] | None = field(default=None)
    logprobs: list[tuple[float, list[tuple[str, float]]]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    logprob_entries: list[dict[str, Any]] | None = None


def _tool_call_fragments(raw: Any) -> list[dict[str, Any]] | None:
    """A chunk delta's ``tool_calls`` as plain OpenAI fragments without the None fields
    litellm's models add (``{"index", "id"?, "type"?, "function": {"name"?, "arguments"?}}``)."""
    if not raw:
        return None
    out = []
    for k, tc in enumerate(raw):
        tc = tc if isinstance(tc, dict) else getattr(tc, "model_dump", lambda: {})()
        fn = tc.get("function") or {}
        fragment: dict[str, Any] = {"index": int(tc.get("index") if tc.get("index") is not None else k)}
        if tc.get("id"):
            fragment["id"] = tc["id"]
            fragment["type"] = tc.get("type") or "function"
        function = {key: fn[key] for key in ("name", "arguments") if fn.get(key) is not None}
        if function:
            fragment["function"] = function
        out.append(fragment)
    return out


def _arguments(fragment: dict[str, Any]) -> str:
    """The argument text of a tool-call fragment ("" when it carries none)."""
    return (fragment.get("function") or {}).get("arguments") or ""


def logprob_entries(logprobs: Any) -> list[dict[str, Any]] | None:
    """A choice's ``logprobs`` as OpenAI chat entries (``{"token", "logprob", "top_logprobs":
    [{"token", "logprob"}]}``), from the chat shape (``{"content": [...]}``) or the legacy
    completions shape some OpenAI-compatible servers return (``{"tokens": [...],
    "token_logprobs": [...], "top_logprobs": [{token: logprob}, ...]}``); None when absent."""
    if not isinstance(logprobs, dict):
        return None
    if logprobs.get("content"):
        return list(logprobs["content"])
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not tokens or not values:
        return None
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    out = []
    for token, value, top in zip(tokens, values, tops):
        alternatives = sorted((top or {}).items(), key=lambda kv: -float(kv[1])) if isinstance(top, dict) else []
        out.append({"token": str(token), "logprob": value,
                    "top_logprobs": [{"token": str(t), "logprob": float(v)} for t, v in alternatives]})
    return out


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
                               mapped.client_fault, mapped.retryable, mapped.fallback, mapped.retry_after_s)
    return mapped


def _local_cause(err: BaseException) -> BaseException:
    """The in-process tier's own error behind litellm's wrapping (litellm re-raises a custom
    provider's exception as ``APIConnectionError``), else ``err``."""
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, (LocalTierError, ContextWindowExceededError)):
            return cur
        seen.add(id(cur))
        cur = getattr(cur, "original_exception", None) or cur.__cause__ or cur.__context__
    return err


def _classify(tier: str, err: Exception) -> TierCallError:
    err = _local_cause(err)
    if isinstance(err, ContextWindowExceededError):
        return TierCallError(tier, 400, str(err), client_fault=False, retryable=False)
    if isinstance(err, LocalTierError):  # a crashed worker is not retried: another tier answers
        return TierCallError(tier, err.status, f"tier '{tier}' failed: {err}", retryable=False, fallback=err.fallback,
                             retry_after_s=err.retry_after_s)
    import litellm

    if isinstance(err, litellm.exceptions.MidStreamFallbackError) and isinstance(err.original_exception, Exception):
        err = err.original_exception  # litellm's wrapper for a stream that broke; its name promised a fallback
    status = getattr(err, "status_code", None) or 502
    message = f"tier '{tier}' failed: {type(err).__name__}: {provider_message(str(getattr(err, 'message', None) or err))}"
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
        policy: the tiers; in-process tiers (``slm-local/...``) are registered with their
            runtime (:data:`router.providers.runtimes.RUNTIMES`).
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._runtimes = {}
        for name, tier in policy.tiers.items():
            runtime = runtime_for(tier)
            if runtime is not None:
                self._runtimes[name] = runtime
        self._configured = False

    def _configure(self) -> None:
        """Import and configure litellm once, before the first call (not when the client is
        built: in-process models start loading first, see :meth:`launch`): its settings
        (:func:`configure_litellm`), the shared HTTP client that filters event streams
        (:func:`router.providers.sse_filter.install`) and the in-process provider."""
        if self._configured:
            return
        configure_litellm()
        sse_filter.install()
        if self._runtimes:
            from .local_provider import register_provider

            register_provider()
        self._configured = True

    def launch(self) -> None:
        """Start loading in-process models in their own processes, without waiting (see
        :meth:`warm_up`); runtimes without a separate launch step are left to it."""
        for pool in self._runtimes.values():
            if isinstance(pool, Launchable):
                pool.launch()

    def warm_up(self) -> None:
        """Load in-process models now (blocking, seconds) and import litellm."""
        self._configure()  # imports litellm: its cost is paid at start-up, not on the first request

        for pool in self._runtimes.values():
            pool.start()

    def local_health(self) -> dict[str, Any]:
        """Each in-process tier's worker pool (:meth:`WorkerPool.health`), by tier name."""
        return {name: pool.health() for name, pool in self._runtimes.items()}

    def _kwargs(self, name: str, tier: TierConfig, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(params)
        for unsent in IN_PROCESS_UNSENT if tier.is_in_process else ():
            kwargs.pop(unsent, None)
        if tier.max_tokens and "max_tokens" not in kwargs and "max_completion_tokens" not in kwargs:
            kwargs["max_tokens"] = tier.max_tokens
        kwargs.update(model=tier.model, messages=forwarded_messages(messages, tier.model, tier.api_base),
                      timeout=tier.timeout_s, num_retries=0)
        if tier.api_key:
            kwargs["api_key"] = tier.api_key
        if tier.api_base:
            kwargs["api_base"] = tier.api_base
        return kwargs

    async def complete(self, name: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> CallResult:
        """Call tier ``name`` once, without streaming.

        Raises:
            TierCallError: the provider failed or refused, or answered without any choice
                (502, retried and fallen back from like any 5xx).
        """
        import litellm

        self._configure()
        tier = self.policy.tiers[name]
        start = time.perf_counter()
        try:
            response = await litellm.acompletion(**self._kwargs(name, tier, messages, params))
        except Exception as err:
            raise _map_error(name, err, tier.api_key) from err
        body = response.model_dump()
        latency_ms = (time.perf_counter() - start) * 1000
        if not body.get("choices"):  # OpenAI always answers with a choice; a client reading choices[0] would crash
            raise TierCallError(name, 502, f"tier '{name}' failed: its answer has no choices")
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        rejected = implausible_usage(usage)
        estimated = rejected is not None or (not usage.get("prompt_tokens") and not usage.get("completion_tokens"))
        if estimated:  # the upstream reported no usage: count with litellm's tokenizer for the model
            usage = counted_usage(tier.model, messages, body)
        if rejected:  # the client and the cache get the counted usage, not the broken one
            body["usage"] = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        logprobs = logprob_entries(choice.get("logprobs"))
        return CallResult(
            response=body,
            text=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_ms=latency_ms,
            token_logprobs=[float(t["logprob"]) for t in logprobs if t.get("logprob") is not None] if logprobs else None,
            cached_prompt_tokens=cached_tokens(usage),
            top_logprobs=[[(str(a.get("token", "")), float(a["logprob"])) for a in (t.get("top_logprobs") or [])
                           if a.get("logprob") is not None] for t in logprobs] if logprobs else None,
            usage_estimated=estimated,
            usage_rejected=rejected,
        )

    async def stream(self, name: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> AsyncIterator[StreamDelta]:
        """Call tier ``name`` with streaming; yields :class:`StreamDelta` pieces, usage last.
        The text and tool-call arguments received are kept on the attempt's
        :class:`~router.providers.spend.Spend` (a cancelled stream is counted from them).

        Raises:
            TierCallError: the provider failed, before or during the stream, or its stream
                carried no text, tool call or usage at all (502, before any piece is yielded).
        """
        import litellm

        self._configure()
        tier = self.policy.tiers[name]
        kwargs = self._kwargs(name, tier, messages, params)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        spend = current_spend()  # the attempt's, set while this generator takes its first step
        if spend is not None:
            spend.streamed = True
        held: list[StreamDelta] | None = []  # finishes before any answer or usage (litellm makes one up for no events)
        try:
            response = await litellm.acompletion(**kwargs)
            async for chunk in response:
                body = chunk.model_dump()
                usage = body.get("usage")
                for choice in body.get("choices") or []:
                    delta = choice.get("delta") or {}
                    content = delta.get("content") or ""
                    extra = (delta.get("provider_specific_fields") or {}).get(STREAM_LOGPROBS_FIELD)
                    entries = extra or logprob_entries(choice.get("logprobs"))
                    logprobs = _token_logprobs(entries)
                    tool_calls = _tool_call_fragments(delta.get("tool_calls"))
                    if spend is not None and (content or tool_calls):
                        spend.receive([content, *(_arguments(tc) for tc in tool_calls or ())])
                    if content or choice.get("finish_reason") or logprobs or tool_calls:
                        piece = StreamDelta(content, int(choice.get("index") or 0), choice.get("finish_reason"), None,
                                            logprobs, tool_calls, entries or None)
                        if held is not None and not (content or logprobs or tool_calls):
                            held.append(piece)
                            continue
                        for earlier in held or ():
                            yield earlier
                        held = None
                        yield piece
                if usage:
                    for earlier in held or ():
                        yield earlier
                    held = None
                if usage and usage.get("completion_tokens") is not None and implausible_usage(usage) is None:
                    yield StreamDelta(usage={
                        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                        "completion_tokens": int(usage.get("completion_tokens") or 0),
                        "cached_prompt_tokens": cached_tokens(usage),
                    })
            if held is not None:  # e.g. a provider's HTML page: no text, tool call or usage came at all
                raise TierCallError(name, 502, f"tier '{name}' failed: its stream carried no answer, tool call or usage")
        except TierCallError:
            raise
        except Exception as err:
            raise _map_error(name, err, tier.api_key) from err
