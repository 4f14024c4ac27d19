"""In-process llama.cpp generation with per-token log-probabilities at little cost.

llama-cpp-python only returns log-probabilities with ``logits_all=True``, which keeps the
logits of every position and made generation about 6x slower here. This runtime keeps
``logits_all=False`` and, after each sampled token, reads the one row of logits the
context holds (the position that produced the token) and takes its log-softmax.

One model instance is not thread-safe, so all generation runs on one dedicated worker
thread (:attr:`LlamaRuntime.executor`); callers on an event loop submit to it. The server
runs this class inside a supervised worker process (:mod:`router.providers.worker_pool`),
so a crash of llama.cpp never takes the server down.

llama.cpp's "extra" (repacking) buffer types, e.g. the AMX kernels picked when a native
build sees AMX, crash some CPUs (SIGSEGV in ``ggml_backend_amx_mul_mat``); models load with
them off unless ``use_extra_bufts`` is True (:mod:`router.providers.extra_buffers` decides).
"""

from __future__ import annotations

import codecs
import secrets
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TokenStep", "LocalCompletion", "LlamaRuntime", "ContextWindowExceededError"]


class ContextWindowExceededError(ValueError):
    """The prompt does not fit the local model's context window (``n_ctx`` tokens)."""


@dataclass(frozen=True, slots=True)
class TokenStep:
    """One generated token: ``text`` (may be "" while a UTF-8 character is incomplete),
    ``logprob`` (nats), ``top`` (the ``top_logprobs`` most likely tokens and their
    log-probabilities), ``token`` (the token's own text)."""

    text: str
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]


@dataclass(slots=True)
class LocalCompletion:
    """A finished local generation.

    Attributes:
        text: the answer; finish_reason: ``stop`` or ``length``.
        prompt_tokens, completion_tokens: token counts.
        steps: one :class:`TokenStep` per completion token.
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    steps: list[TokenStep] = field(default_factory=list)


class LlamaRuntime:
    """A GGUF chat model run in this process.

    Args:
        model_path: GGUF file.
        n_ctx: context window (tokens).
        n_threads: CPU threads (None = llama.cpp's default).
        top_logprobs: alternatives recorded per token.
        repeat_penalty: llama.cpp repetition penalty (1.0 = off); small models loop without it.
        use_extra_bufts: load with llama.cpp's extra (repacking, e.g. AMX) buffer types;
            off by default because they crash some CPUs.
    """

    def __init__(
        self,
        model_path: str | Path,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        top_logprobs: int = 2,
        repeat_penalty: float = 1.1,
        use_extra_bufts: bool = False,
    ) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.top_logprobs = top_logprobs
        self.repeat_penalty = repeat_penalty
        self.use_extra_bufts = use_extra_bufts
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._llm: Any = None
        self._formatter: Any = None
        self._eog: set[int] = set()
        self._load_lock = threading.Lock()

    # -- loading -------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model and its chat template (idempotent)."""
        with self._load_lock:
            if self._llm is not None:
                return
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            from .llama_backends import load_cpu_variants
            from .llama_load import load_llama

            load_cpu_variants()  # a portable build's per-CPU backends (no-op for a native build)

            kwargs: dict[str, Any] = {"n_ctx": self.n_ctx, "logits_all": False, "verbose": False}
            if self.n_threads:
                kwargs["n_threads"] = self.n_threads
            llm = load_llama(self.model_path, extra_buffers=self.use_extra_bufts, **kwargs)
            meta = llm.metadata
            template = meta.get("tokenizer.chat_template")
            if not template:
                raise ValueError(f"{self.model_path} has no chat template (tokenizer.chat_template)")

            def token_text(key: str) -> str:
                tid = meta.get(key)
                return llm.detokenize([int(tid)], special=True).decode("utf-8", "ignore") if tid is not None else ""

            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=token_text("tokenizer.ggml.eos_token_id"),
                bos_token=token_text("tokenizer.ggml.bos_token_id"),
            )
            eog = {llm.token_eos()}
            for marker in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
                ids = llm.tokenize(marker.encode(), add_bos=False, special=True)
                if len(ids) == 1:
                    eog.add(ids[0])
            self._eog = eog
            self._llm = llm

    # -- generation ----------------------------------------------------------------------
    def format_prompt(self, messages: Sequence[dict[str, Any]]) -> str:
        """The prompt text the model reads: the GGUF's chat template applied to the turns."""
        self.load()
        return self._formatter(messages=_plain_messages(messages)).prompt

    def prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """Tokens of the chat-formatted prompt, generation prompt included."""
        return self._llm.tokenize(self.format_prompt(messages).encode("utf-8"), add_bos=False, special=True)

    def generate(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
        seed: int | None = None,
        cancel: threading.Event | None = None,
        on_text: Callable[[str], None] | None = None,
        on_step: Callable[[TokenStep], None] | None = None,
        grammar: str | None = None,
        top_logprobs: int | None = None,
    ) -> LocalCompletion:
        """Generate an answer; blocking (call it on :attr:`executor`).

        Args:
            messages: OpenAI-style turns (text parts of list contents are joined).
            max_tokens: completion-token cap, also cut to what the context window leaves.
            temperature: 0 = greedy; top_p: nucleus sampling; seed: sampler seed (a random
                one when None, so samples differ as OpenAI's do without a seed).
            stop: strings that end the answer (not included in it).
            cancel: when set, generation stops at the next token (finish_reason ``cancelled``).
            on_text: called with each new piece of answer text as it is produced (streaming).
            on_step: called with each token's :class:`TokenStep` as it is produced, before
                ``on_text`` gets that token's text (streamed log-probabilities).
            grammar: a GBNF grammar the answer must follow (e.g. JSON), or None.
            top_logprobs: alternatives recorded per token; the runtime's default when None.
        Raises:
            ContextWindowExceededError: the prompt leaves no room in ``n_ctx``.
        """
        import llama_cpp

        self.load()
        llm = self._llm
        prompt = self.prompt_tokens(messages)
        room = self.n_ctx - len(prompt)
        if room < 1:
            raise ContextWindowExceededError(
                f"prompt is {len(prompt)} tokens; the local model's context window is {self.n_ctx}"
            )
        max_tokens = min(max_tokens, room)
        # A fresh sampler seed per generation unless the request gave one: llama.cpp's dist
        # sampler would otherwise repeat the worker's sequence, so two requests (or two of
        # n choices) on one worker got the same "sampled" answer at temperature > 0.
        llm.set_seed(int(seed) if seed is not None else secrets.randbits(32))
        n_vocab = llm.n_vocab()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text, pending = "", ""
        steps: list[TokenStep] = []
        hold = max((len(s) for s in stop), default=0)
        finish = "length"
        k = self.top_logprobs if top_logprobs is None else max(int(top_logprobs), 0)
        constraint = None
        if grammar:
            from llama_cpp.llama_grammar import LlamaGrammar

            constraint = LlamaGrammar.from_string(grammar, verbose=False)
        for token in llm.generate(
            prompt, temp=temperature, top_p=top_p, top_k=0 if temperature > 0 else 40,
            min_p=0.0, repeat_penalty=self.repeat_penalty, reset=True, grammar=constraint,
        ):
            if cancel is not None and cancel.is_set():
                finish = "cancelled"
                break
            if token in self._eog:
                finish = "stop"
                break
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            peak = float(logits.max())
            lse = peak + float(np.log(np.exp(logits - peak).sum()))
            top: tuple[tuple[str, float], ...] = ()
            if k:
                top = tuple((self._piece(t), float(logits[t]) - lse) for t in _top_k(logits, k))
            piece = llm.detokenize([token], special=False)
            pending += decoder.decode(piece)
            # Hold back text that might be the start of a stop string.
            cut = _find_stop(pending, stop)
            if cut is not None:
                step_text, pending = pending[:cut], ""
            else:
                safe = max(0, len(pending) - max(hold - 1, 0))
                step_text, pending = pending[:safe], pending[safe:]
            step = TokenStep(step_text, self._piece(token), float(logits[token]) - lse, top)
            steps.append(step)
            if on_step:
                on_step(step)
            text += step_text
            if on_text and step_text:
                on_text(step_text)
            if cut is not None:
                finish = "stop"
                break
            if len(steps) >= max_tokens:
                break
        # Bytes of a character cut off by max_tokens are dropped, never sent as U+FFFD.
        tail = pending
        cut = _find_stop(tail, stop)
        tail = tail if cut is None else tail[:cut]
        if tail:
            text += tail
            if on_text:
                on_text(tail)
        return LocalCompletion(text, finish, len(prompt), len(steps), steps)

    def _piece(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", "replace")


def _top_k(logits: np.ndarray, k: int) -> list[int]:
    """Token ids of the ``k`` largest logits, largest first.

    For the few alternatives a check reads (``k`` <= 4) repeated ``argmax`` over a masked copy
    costs about 0.05 ms on SmolLM2's 49,152-token vocabulary, against 0.4 ms for
    ``argpartition`` plus ``argsort`` (measured in one process; 2-3% of a generated token's
    time on 2 cores). Larger ``k`` uses ``argpartition``.
    """
    if k > 4:
        best = np.argpartition(-logits, k)[:k]
        return [int(t) for t in best[np.argsort(-logits[best])]]
    masked = logits.copy()
    out = []
    for _ in range(min(k, masked.shape[0])):
        t = int(masked.argmax())
        out.append(t)
        masked[t] = -np.inf
    return out


def _find_stop(text: str, stop: Sequence[str]) -> int | None:
    hits = [text.find(s) for s in stop if s and s in text]
    return min(hits) if hits else None


def _plain_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI turns as the text-only system/user/assistant turns a chat template takes:
    ``developer`` becomes ``system``; content parts are joined; an assistant tool call and a
    ``tool`` result become text, so replayed agent turns still reach the model."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        content = content or ""
        role = m.get("role", "user")
        if role == "developer":
            role = "system"
        elif role in ("tool", "function"):
            role, content = "user", f"Tool result ({m.get('name') or m.get('tool_call_id') or 'tool'}): {content}"
        elif role == "assistant" and m.get("tool_calls"):
            calls = "; ".join(
                f"{c.get('function', {}).get('name')}({c.get('function', {}).get('arguments', '')})" for c in m["tool_calls"]
            )
            content = (content + "\n" if content else "") + f"Called tools: {calls}"
        out.append({"role": role, "content": content})
    return out
