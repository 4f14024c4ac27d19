"""``content: null`` on a turn (an assistant turn that only calls tools): what a tier is sent.

The client's ``null`` cannot reach any tier as ``null``: litellm removes every None field
of every message before it dispatches to a provider. ``litellm.main.completion`` (which
``acompletion`` runs) starts with ``validate_and_fix_openai_messages``, which calls
``litellm.utils.cleanup_none_field_in_message`` on each message, for every provider and
route (``openai/`` with an ``api_base``, ``hosted_vllm/``, ``ollama_chat/``, ``anthropic/``,
``gemini/``, custom providers). No litellm setting turns it off (litellm 1.110.2; upstream
issue BerriAI/litellm#37711, fix proposed in BerriAI/litellm#39268, both open). Sending
``null`` anyway would mean patching litellm's internals, or passing the whole list again as
``extra_body={"messages": ...}``: that does reach the wire with ``null`` on the ``openai``
and ``hosted_vllm`` routes (the body is merged over litellm's), but it replaces litellm's
per-provider message transformations (images hoisted out of tool turns, list contents
joined for vLLM, ...) with the untransformed turns, behind litellm's back. The router does
neither.

So a ``null`` content becomes one of the two shapes litellm can send:

- ``""`` for a provider that forwards the OpenAI chat JSON as it is (``openai``,
  ``azure``, and litellm's OpenAI-compatible providers: ``hosted_vllm``, ``lm_studio``,
  ``llamafile``, ``groq``, ...). Without a ``content`` key strict OpenAI-compatible servers
  answer 400 (llama.cpp's and vLLM's ``content is required``; LM Studio refuses ``null``
  as well); OpenAI takes ``""`` for "no text" beside ``tool_calls``.
- no ``content`` key (litellm's own removal) for a provider whose litellm translation
  builds another format (Anthropic, Gemini/Vertex, Bedrock, Ollama, the in-process tier):
  there a missing content and ``null`` mean the same (no text block), while ``""`` could
  become an empty text part, which Gemini rejects.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["forwarded_messages", "needs_string_content"]

_OPENAI_WIRE = frozenset({"openai", "azure", "custom_openai", "openrouter"})
"""litellm providers that send the OpenAI chat body as given, besides
``litellm.openai_compatible_providers``."""


@functools.lru_cache(maxsize=256)
def needs_string_content(model: str, api_base: str | None = None) -> bool:
    """True when the tier ``model`` (a litellm model string) at ``api_base`` is sent the
    OpenAI chat JSON as given, so a ``null`` content must go out as ``""`` (see the module
    docstring). A model litellm cannot place is treated as OpenAI-shaped (``""``)."""
    import litellm

    try:
        provider = litellm.get_llm_provider(model=model, api_base=api_base)[1]
    except Exception:
        return True
    return provider in _OPENAI_WIRE or provider in litellm.openai_compatible_providers


def forwarded_messages(messages: list[dict[str, Any]], model: str, api_base: str | None = None
                       ) -> list[dict[str, Any]]:
    """``messages`` as the tier is given them: a turn with ``content: null`` gets ``""``
    when :func:`needs_string_content` says so; otherwise the list is returned as it is
    (litellm then drops the None). The list is copied only when a turn changes."""
    if not any("content" in m and m["content"] is None for m in messages):
        return messages
    if not needs_string_content(model, api_base):
        return messages
    return [{**m, "content": ""} if "content" in m and m["content"] is None else m for m in messages]
