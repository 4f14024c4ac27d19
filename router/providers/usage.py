"""A tier's reported token usage, read defensively: counted with litellm's tokenizer when
the upstream reports none, refused when it reports something no model can have spent."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_REPORTED_TOKENS", "cached_tokens", "counted_usage", "implausible_usage"]


def counted_usage(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, int]:
    """Prompt and completion tokens of an answer whose upstream sent no ``usage``, counted
    with ``litellm.token_counter`` (the model's tokenizer where litellm knows it, else tiktoken's
    cl100k), completion over the text and tool-call arguments of every choice."""
    import litellm

    texts = []
    for choice in body.get("choices") or []:
        message = choice.get("message") or {}
        texts.append(message.get("content") or "")
        texts += [(tc.get("function") or {}).get("arguments") or "" for tc in message.get("tool_calls") or []]
    try:
        prompt = litellm.token_counter(model=model, messages=messages)
        completion = litellm.token_counter(model=model, text="".join(texts)) if any(texts) else 0
    except Exception:  # a message shape the counter does not know: count nothing rather than fail the answer
        return {"prompt_tokens": 0, "completion_tokens": 0}
    return {"prompt_tokens": int(prompt), "completion_tokens": int(completion)}


MAX_REPORTED_TOKENS = 100_000_000
"""The most tokens a tier may report for one call's prompt or completion (ten times the
largest context window on offer); a count above it, negative or not a number is a broken
upstream's, never billed or logged (an integer over 2**63 could not even be stored)."""


def implausible_usage(usage: dict[str, Any] | None) -> str | None:
    """What is wrong with an OpenAI ``usage`` dict's ``prompt_tokens`` / ``completion_tokens``
    / cached tokens (e.g. ``"prompt_tokens=10**30"``), or None when every count present is a
    whole number in 0..:data:`MAX_REPORTED_TOKENS` (absent counts are fine)."""
    if not usage:
        return None
    details = usage.get("prompt_tokens_details")
    counts = {"prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
              "cached_tokens": details.get("cached_tokens") if isinstance(details, dict) else None}
    for name, value in counts.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= MAX_REPORTED_TOKENS or value != int(value):  # range first: int(inf) raises
            shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:21] + "..."
            return f"{name}={shown}"
    return None


def cached_tokens(usage: dict[str, Any] | None) -> int:
    """Cached prompt tokens in an OpenAI ``usage`` dict (0 when absent)."""
    details = (usage or {}).get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
