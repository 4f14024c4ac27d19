"""Direct calls to OpenAI-compatible servers (vLLM, llama.cpp server, Ollama, TGI, a gateway).

A tier whose model is ``openai/<name>`` with an ``api_base`` speaks OpenAI's chat-completions
protocol as is; :class:`OpenAIHTTP` posts the body there over one pooled aiohttp session per
event loop (keep-alive connections reused across requests) and returns the JSON unchanged.
Through ``litellm.acompletion`` the same call cost about 5 ms of CPU on the 2-core
benchmark box (logging objects, a thread hop, cost calculation, response re-validation),
which was most of this proxy's added latency; here it is about 0.3 ms. Providers that need
translation (Anthropic, Gemini, Bedrock...), OpenAI itself (no ``api_base``: litellm maps
parameters per model family) and tiers with ``transport: litellm`` stay on litellm.

Failures become :class:`~router.providers.tier_client.TierCallError` with the statuses the
litellm path gives: 400/422 the request's fault (a context-length error is not), 401/403
an unavailable tier (503, not retried), 408 timeouts, 429, 5xx, 503 when nothing answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["OpenAIHTTP", "speaks_openai"]

_CONTEXT_MARKERS = ("context_length_exceeded", "maximum context length", "context length", "context window")


def speaks_openai(model: str, api_base: str | None, transport: str = "auto") -> bool:
    """True when a tier is called directly: ``openai/<model>`` at an ``api_base``, transport auto."""
    return transport == "auto" and bool(api_base) and model.startswith("openai/")


def _error_message(text: str) -> str:
    try:
        data = json.loads(text)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except (ValueError, AttributeError):
        pass
    return text[:500]


def http_error(tier: str, status: int, text: str):
    """The TierCallError for an HTTP error answer (``text``: its body)."""
    from .tier_client import TierCallError

    message = f"tier '{tier}' failed: HTTP {status}: {_error_message(text)}"
    lowered = text.lower()
    if status in (400, 413, 422) and any(m in lowered for m in _CONTEXT_MARKERS):
        return TierCallError(tier, 400, message, client_fault=False, retryable=False)
    if status in (400, 422):
        return TierCallError(tier, 400, message, client_fault=True)
    if status in (401, 403):
        return TierCallError(tier, 503, message, retryable=False)
    return TierCallError(tier, status if status >= 400 else 502, message)


class OpenAIHTTP:
    """POSTs chat-completions bodies to OpenAI-compatible servers; one session per event loop.

    Raises (from its calls): TierCallError for HTTP errors, timeouts (408), unreachable
    servers (503) and unreadable answers (502).
    """

    def __init__(self) -> None:
        self._session = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self):
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            old = self._session
            if old is not None and not old.closed and self._loop is not None and self._loop.is_closed():
                old.connector.close()  # its loop is gone: nothing to await, just mark it closed
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                                                  skip_auto_headers=("User-Agent",))
            self._loop = loop
        return self._session

    @staticmethod
    def _request(api_base: str, api_key: str | None) -> tuple[str, dict[str, str]]:
        url = api_base.rstrip("/") + "/chat/completions"
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return url, headers

    async def complete(self, tier: str, api_base: str, api_key: str | None, body: dict[str, Any],
                       timeout_s: float) -> dict[str, Any]:
        """The chat-completion JSON for ``body`` (``stream`` false)."""
        import aiohttp

        from .tier_client import TierCallError

        url, headers = self._request(api_base, api_key)
        try:
            async with self._client().post(url, data=json.dumps(body), headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                text = await response.text()
                if response.status >= 400:
                    raise http_error(tier, response.status, text)
        except TierCallError:
            raise
        except asyncio.TimeoutError as err:
            raise TierCallError(tier, 408, f"tier '{tier}' failed: timed out after {timeout_s:g} s") from err
        except (aiohttp.ClientError, OSError) as err:
            raise TierCallError(tier, 503, f"tier '{tier}' failed: {type(err).__name__}: {err}") from err
        try:
            data = json.loads(text)
        except ValueError as err:
            raise TierCallError(tier, 502, f"tier '{tier}' failed: the answer is not JSON: {text[:200]!r}") from err
        if not isinstance(data, dict) or "error" in data and not data.get("choices"):
            raise http_error(tier, 502, text)
        return data

    async def stream(self, tier: str, api_base: str, api_key: str | None, body: dict[str, Any],
                     timeout_s: float) -> AsyncIterator[dict[str, Any]]:
        """The chunks of a streamed answer (``stream`` true), as dicts, until ``[DONE]`` or
        the end of the body. ``timeout_s`` bounds the wait for the answer's headers and
        for each chunk."""
        import aiohttp

        from .tier_client import TierCallError

        url, headers = self._request(api_base, api_key)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        answered = False
        try:
            async with self._client().post(url, data=json.dumps(body), headers=headers, timeout=timeout) as response:
                if response.status >= 400:
                    raise http_error(tier, response.status, await response.text())
                answered = True
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    try:
                        chunk = json.loads(data)
                    except ValueError as err:
                        raise TierCallError(tier, 502, f"tier '{tier}' failed: unreadable stream chunk {data[:200]!r}") from err
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise http_error(tier, 502, json.dumps(chunk))
                    yield chunk
        except TierCallError:
            raise
        except asyncio.TimeoutError as err:
            raise TierCallError(tier, 408, f"tier '{tier}' failed: no data for {timeout_s:g} s") from err
        except (aiohttp.ClientError, OSError) as err:
            where = "mid-stream" if answered else "before answering"
            raise TierCallError(tier, 502 if answered else 503,
                                f"tier '{tier}' failed {where}: {type(err).__name__}: {err}") from err

    async def close(self) -> None:
        """Close this loop's session (its pooled connections)."""
        if self._session is not None and not self._session.closed:
            if self._loop is asyncio.get_running_loop():
                await self._session.close()
            elif self._loop is not None and self._loop.is_closed():
                self._session.connector.close()
        self._session = None
