"""Cost of model calls in USD, and the counterfactual cloud cost of a request.

Prices, in order:

1. the tier's ``price`` in the policy: USD per million prompt, cached-prompt and completion
   tokens, plus (optionally) a hardware price per hour spread over the calls by the time
   each held the hardware (:class:`router.policy.Price`);
2. litellm's model price map (``litellm.cost_per_token``; with
   ``LITELLM_LOCAL_MODEL_COST_MAP=True`` the copy bundled with litellm), which prices
   prompt, cached-prompt (``cache_read_input_token_cost``) and completion tokens separately.

An unknown price is ``None``, never a silent $0; the report flags such calls.

Counterfactual (what a request would have cost on the cloud tier):

- answered by a cloud-tier call: that call's cost and token counts;
- otherwise: prompt tokens counted with the cloud model's tokenizer
  (``litellm.token_counter``; litellm uses tiktoken's cl100k for models it has no tokenizer
  for); completion tokens estimated by :func:`estimate_cloud_completion_tokens` (the
  returned answer's text counted with the cloud tokenizer, capped at the request's
  ``max_tokens``: the assumption is that the cloud model answers at the same length).
  No prompt caching is assumed for the counterfactual.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..policy import Policy, Price, TierConfig
from ..store.records import RequestRecord

__all__ = [
    "call_cost",
    "price_call",
    "policy_price",
    "count_prompt_tokens",
    "count_text_tokens",
    "estimate_cloud_completion_tokens",
    "price_request",
    "PRICE_SOURCES",
]

log = logging.getLogger(__name__)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

#: Values of ``CallRecord.price_source``: the tier's per-token price, its hourly price, litellm's map.
PRICE_SOURCES = ("policy", "hourly", "litellm")

_MS_PER_HOUR = 3_600_000.0
_warned: set[str] = set()  # models already warned about, so a log is not flooded


def policy_price(price: Price, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0,
                 latency_ms: float = 0.0) -> float:
    """USD of one call under a policy :class:`Price` (pure).

    ``cached_prompt_tokens`` is the part of ``prompt_tokens`` served from the provider's
    cache (OpenAI's ``usage.prompt_tokens_details.cached_tokens``); it is charged at
    ``cached_input_usd_per_mtok`` (the input rate when unset). The hourly part is
    ``usd_per_hour * latency_ms / 3.6e6 / utilization``.
    """
    cached = min(max(cached_prompt_tokens, 0), prompt_tokens)
    cached_rate = price.input_usd_per_mtok if price.cached_input_usd_per_mtok is None else price.cached_input_usd_per_mtok
    usd = ((prompt_tokens - cached) * price.input_usd_per_mtok + cached * cached_rate
           + completion_tokens * price.output_usd_per_mtok) / 1e6
    if price.usd_per_hour:
        usd += price.usd_per_hour * max(latency_ms, 0.0) / _MS_PER_HOUR / price.utilization
    return usd


def price_call(tier: TierConfig, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0,
               latency_ms: float = 0.0) -> tuple[float | None, str | None]:
    """(USD, price source) of one call of ``tier``; ``(None, None)`` when no price is known.

    The source is ``hourly`` when the tier's price has ``usd_per_hour``, ``policy`` for a
    per-token YAML price, ``litellm`` for the price map.
    """
    if tier.price is not None:
        source = "hourly" if tier.price.usd_per_hour else "policy"
        return policy_price(tier.price, prompt_tokens, completion_tokens, cached_prompt_tokens, latency_ms), source
    import litellm

    litellm.suppress_debug_info = True  # else litellm prints a banner to stdout for unmapped models
    try:
        prompt_usd, completion_usd = litellm.cost_per_token(
            model=tier.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            cache_read_input_tokens=min(max(cached_prompt_tokens, 0), prompt_tokens),
        )
    except Exception as err:  # litellm raises a plain Exception for unmapped models
        if tier.model not in _warned:
            _warned.add(tier.model)
            log.warning("no price for model %s (calls are logged unpriced): %s", tier.model, str(err).splitlines()[0])
        return None, None
    return float(prompt_usd) + float(completion_usd), "litellm"


def call_cost(tier: TierConfig, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0,
              latency_ms: float = 0.0) -> float | None:
    """USD for one call of ``tier``; None when neither the policy nor litellm knows a price."""
    return price_call(tier, prompt_tokens, completion_tokens, cached_prompt_tokens, latency_ms)[0]


def count_prompt_tokens(tier: TierConfig, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of ``messages`` as ``tier``'s model would count them (litellm tokenizer)."""
    import litellm

    return int(litellm.token_counter(model=tier.model, messages=messages))


def count_text_tokens(tier: TierConfig, text: str) -> int:
    """Tokens of a plain text under ``tier``'s model tokenizer (litellm)."""
    import litellm

    return int(litellm.token_counter(model=tier.model, text=text)) if text else 0


def estimate_cloud_completion_tokens(answer_tokens: int, max_tokens: int | None) -> int:
    """Completion tokens the cloud tier is assumed to have produced for a request it did not
    answer: the returned answer's length in cloud tokens, capped at the request's
    ``max_tokens`` (a cloud model obeys the same cap). Pure."""
    return min(answer_tokens, max_tokens) if max_tokens else answer_tokens


def price_request(record: RequestRecord, policy: Policy, messages: list[dict[str, Any]] | None,
                  answer_text: str | None = None) -> None:
    """Price a finished request in place (blocking: tokenizer, price map).

    Sets each call's ``cost_usd``/``price_source`` (calls of a tier the policy does not
    define are unpriced), the request's ``cost_usd`` (None when any call is unpriced) and,
    for ok or partial requests whose turns are known (``messages``), the counterfactual as
    this module's docstring defines it, with ``cloud_prompt_tokens`` and
    ``cloud_completion_tokens``. Failed requests get a counterfactual of $0 (nothing would
    have been served).

    Args:
        record: the request, its calls' token counts and latencies filled in.
        policy: tiers and prices; messages: the request's turns (OpenAI dicts);
        answer_text: the answer returned (for the completion-token estimate); the answer's
            own completion-token count is used when None.
    """
    for c in record.calls:
        tier = policy.tiers.get(c.tier)
        c.cost_usd, c.price_source = (
            price_call(tier, c.prompt_tokens, c.completion_tokens, c.cached_prompt_tokens, c.latency_ms)
            if tier is not None else (None, None)
        )
    costs = [c.cost_usd for c in record.calls]
    record.cost_usd = None if any(x is None for x in costs) else sum(costs)
    if record.status not in ("ok", "partial") or messages is None:
        record.counterfactual_usd = 0.0
        return
    cloud, cloud_name = policy.cloud, policy.routing.cloud_tier
    cloud_calls = [c for c in record.calls if c.tier == cloud_name and c.status == "ok"]
    if record.tier == cloud_name and cloud_calls:
        answered = cloud_calls[-1]
        record.cloud_prompt_tokens, record.cloud_completion_tokens = answered.prompt_tokens, answered.completion_tokens
        record.counterfactual_usd = answered.cost_usd
        return
    try:
        record.cloud_prompt_tokens = count_prompt_tokens(cloud, messages)
    except Exception:  # tokenizer unavailable: fall back to the answering tier's count
        log.warning("cloud tokenizer failed for request %s; using the answering tier's prompt count", record.id)
        record.cloud_prompt_tokens = record.prompt_tokens
    try:
        answer_tokens = record.completion_tokens if answer_text is None else count_text_tokens(cloud, answer_text)
    except Exception:
        answer_tokens = record.completion_tokens
    record.cloud_completion_tokens = estimate_cloud_completion_tokens(answer_tokens, record.max_tokens or cloud.max_tokens)
    record.counterfactual_usd = price_call(cloud, record.cloud_prompt_tokens, record.cloud_completion_tokens)[0]
