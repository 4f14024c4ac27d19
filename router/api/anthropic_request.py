"""Anthropic Messages request -> the chat request the pipeline takes (pure).

:func:`parse_messages_request` validates a ``POST /v1/messages`` (or ``count_tokens``) body
with Anthropic's types and ranges (Messages API reference: ``max_tokens`` required and >= 1,
``temperature`` 0-1, ``top_p`` 0-1, ``top_k`` >= 0; roles ``user``/``assistant``; content
blocks ``text``, ``image``, ``tool_use``, ``tool_result``) and translates it into the OpenAI
chat request of :mod:`router.request`, so the one pipeline (rules, classifier, cascade,
budgets, cache, log) serves it:

- ``system`` (string or text blocks) -> a ``system`` turn;
- ``text`` blocks -> text parts (a block's ``cache_control`` is kept: litellm forwards it to
  an Anthropic tier and strips it for others), ``image`` blocks -> ``image_url`` parts
  (base64 sources as ``data:`` URLs; a media type Anthropic does not read, data that is not
  base64 or a ``url`` source that is not http(s) is refused: :mod:`router.request.images`);
- an assistant's ``tool_use`` blocks -> ``tool_calls`` (``input`` as JSON text);
- a user's ``tool_result`` blocks -> ``tool`` turns before the rest of that user turn (text
  only: an image inside a result becomes the text ``[image not forwarded]``);
- ``tools`` -> function tools (``input_schema`` as ``parameters``), ``tool_choice``
  ``auto``/``any``/``tool``/``none`` -> ``auto``/``required``/a named function/``none``,
  ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``;
- ``stop_sequences`` -> ``stop``, ``metadata.user_id`` -> ``user`` (sessions read it),
  ``top_k`` -> forwarded as is.

Other top-level fields (``thinking``, ``service_tier``, ...) are dropped and named in the
reason, as on the chat endpoint.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError

from ..errors import InvalidRequestError
from ..request.images import ANTHROPIC_IMAGE_TYPES, base64_problem
from ..request.parse import MAX_TOKENS_LIMIT, ChatRequest, load_json_body, parse_chat_request

__all__ = ["MessagesRequest", "parse_messages_request", "to_chat_body", "MAX_STOP_SEQUENCES"]

MAX_STOP_SEQUENCES = 4
"""Stop sequences the router forwards: OpenAI's chat limit, which every tier accepts."""

_BLOCK_TYPES = ("text", "image", "tool_use", "tool_result")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what every tier takes (OpenAI's function name rule)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(BaseModel):
    """A validated Anthropic Messages body (only the fields the router translates are typed;
    other fields are kept in ``model_extra`` and reported as ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    max_tokens: StrictInt = Field(ge=1, le=MAX_TOKENS_LIMIT)
    messages: list[_Message] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = Field(None, max_length=MAX_STOP_SEQUENCES)
    temperature: StrictFloat | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    top_p: StrictFloat | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    top_k: StrictInt | None = Field(None, ge=0)
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream: StrictBool = False


class _CountRequest(MessagesRequest):
    """``count_tokens`` takes the same body without ``max_tokens``."""

    max_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)  # type: ignore[assignment]


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param)


def _validation_error(err: ValidationError) -> InvalidRequestError:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"] if p not in ("str", "list[dict[str,any]]"))
    if first["type"] == "missing":
        return _fail("Field required", path)
    return _fail(first["msg"], path)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``image_url`` part of an ``image`` block, after :mod:`router.request.images`' checks
    (a media type Anthropic reads, data that decodes, an http(s) URL), named in Anthropic's
    dotted path (``messages.0.content.1.source.data``)."""
    source = block.get("source") or {}
    if not isinstance(source, dict):
        raise _fail("an image source needs type 'base64' (media_type, data) or 'url' (url)", f"{where}.source")
    if source.get("type") == "base64" and source.get("data") and source.get("media_type"):
        if source["media_type"] not in ANTHROPIC_IMAGE_TYPES:
            raise _fail(f"Input should be {', '.join(repr(t) for t in ANTHROPIC_IMAGE_TYPES)}",
                        f"{where}.source.media_type")
        problem = base64_problem(source["data"])
        if problem:
            raise _fail(f"the image data is {problem}", f"{where}.source.data")
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif source.get("type") == "url" and source.get("url"):
        url = source["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _fail("expected an http:// or https:// URL", f"{where}.source.url")
    else:
        raise _fail("an image source needs type 'base64' (media_type, data) or 'url' (url)", f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _text_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail("a text block needs a string 'text'", f"{where}.text")
    part: dict[str, Any] = {"type": "text", "text": text}
    if block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _result_text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise _fail("tool_result content must be a string or a list of text blocks", where)
    texts = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "image":  # chat tool turns carry text only; an agent's screenshot must not fail the turn
            texts.append("[image not forwarded]")
        else:
            raise _fail("only text and image blocks are supported inside a tool_result", f"{where}.{j}.type")
    return "\n".join(texts)


def _plain(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only parts without cache markers collapse to one string (every tier takes it)."""
    if parts and all(p["type"] == "text" and "cache_control" not in p for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _turns(i: int, message: _Message, called: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The chat turns of one Anthropic message (a user message with tool results becomes
    ``tool`` turns, then a user turn with what is left); ``called`` are the ``tool_use`` ids of
    the message before it, the only ones its ``tool_result`` blocks may answer (Anthropic's rule)."""
    where = f"messages.{i}.content"
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    parts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    tool_turns: list[dict[str, Any]] = []
    for j, block in enumerate(message.content):
        kind, at = block.get("type"), f"{where}.{j}"
        if kind not in _BLOCK_TYPES:
            if message.role == "assistant" and kind in ("thinking", "redacted_thinking"):
                continue  # the model's earlier reasoning: not replayed to another tier
            raise _fail(f"unsupported content block type {kind!r}; expected one of {', '.join(_BLOCK_TYPES)}",
                        f"{at}.type")
        if kind == "text":
            parts.append(_text_part(block, at))
        elif kind == "image":
            if message.role != "user":
                raise _fail("image blocks are only accepted in user messages", f"{at}.type")
            parts.append(_image_part(block, at))
        elif kind == "tool_use":
            if message.role != "assistant":
                raise _fail("tool_use blocks are only accepted in assistant messages", f"{at}.type")
            if not block.get("id") or not block.get("name"):
                raise _fail("a tool_use block needs 'id' and 'name'", at)
            for key in ("id", "name"):
                if not isinstance(block[key], str):
                    raise _fail("Input should be a valid string", f"{at}.{key}")
            if block.get("input") is not None and not isinstance(block["input"], dict):
                raise _fail("Input should be a valid dictionary", f"{at}.input")
            tool_calls.append({"id": block["id"], "type": "function", "function": {
                "name": block["name"], "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False)}})
        else:
            if message.role != "user":
                raise _fail("tool_result blocks are only accepted in user messages", f"{at}.type")
            if not block.get("tool_use_id") or not isinstance(block["tool_use_id"], str):
                raise _fail("a tool_result block needs a string 'tool_use_id'", f"{at}.tool_use_id")
            if block["tool_use_id"] not in called:
                raise _fail(f"unexpected tool_use_id {block['tool_use_id']!r}: each tool_result block needs a "
                            "tool_use block of that id in the previous message", f"{at}.tool_use_id")
            text = _result_text(block.get("content"), f"{at}.content")
            if block.get("is_error"):
                text = f"Error: {text}"
            tool_turns.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
    turns = list(tool_turns)
    if message.role == "assistant":
        turn: dict[str, Any] = {"role": "assistant", "content": _plain(parts) if parts else None}
        if tool_calls:
            turn["tool_calls"] = tool_calls
        if parts or tool_calls:
            turns.append(turn)
    elif parts:
        turns.append({"role": "user", "content": _plain(parts)})
    return turns


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind not in (None, "custom"):
            raise _fail(f"server tool {kind!r} is not supported by this router; send client tools "
                        "(name, description, input_schema)", f"tools.{i}.type")
        if not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            raise _fail("a tool needs 'name' and an object 'input_schema'", f"tools.{i}")
        if not isinstance(tool["name"], str) or not _TOOL_NAME.match(tool["name"]):
            raise _fail("String should match pattern '^[a-zA-Z0-9_-]{1,64}$'", f"tools.{i}.name")
        function = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: dict[str, Any]) -> tuple[Any, bool]:
    """(OpenAI ``tool_choice``, parallel tool calls allowed)."""
    kind = choice.get("type")
    parallel = not choice.get("disable_parallel_tool_use", False)
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise _fail("expected {'type': 'auto' | 'any' | 'none'} or {'type': 'tool', 'name': ...}", "tool_choice")


def to_chat_body(req: MessagesRequest) -> dict[str, Any]:
    """The OpenAI chat-completions body of a validated Anthropic request.

    Raises:
        InvalidRequestError: a content block, tool or tool choice this router cannot
            translate (``param`` in Anthropic's dotted spelling, e.g. ``messages.0.content.1.type``).
    """
    messages: list[dict[str, Any]] = []
    if req.system:
        if isinstance(req.system, str):
            messages.append({"role": "system", "content": req.system})
        else:
            parts = []
            for j, block in enumerate(req.system):
                if block.get("type") != "text":
                    raise _fail("system blocks must be text blocks", f"system.{j}.type")
                parts.append(_text_part(block, f"system.{j}"))
            messages.append({"role": "system", "content": _plain(parts)})
    called: frozenset[str] = frozenset()
    for i, message in enumerate(req.messages):
        messages.extend(_turns(i, message, called))
        called = frozenset(b.get("id") for b in message.content if isinstance(message.content, list)
                           and b.get("type") == "tool_use" and isinstance(b.get("id"), str)) \
            if message.role == "assistant" else frozenset()
    body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": req.stream}
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("stop_sequences", "stop")):
        if getattr(req, ours) is not None:
            body[theirs] = getattr(req, ours)
    if req.tools:
        body["tools"] = _tools(req.tools)
    if req.tool_choice:
        body["tool_choice"], parallel = _tool_choice(req.tool_choice)
        if not parallel:
            body["parallel_tool_calls"] = False
    user_id = (req.metadata or {}).get("user_id")
    if user_id is not None:
        if not isinstance(user_id, str):
            raise _fail("must be a string", "metadata.user_id")
        body["user"] = user_id
    if req.stream:
        body["stream_options"] = {"include_usage": True}
    return body


def parse_messages_request(body: bytes | str | dict[str, Any], count_only: bool = False) -> ChatRequest:
    """Validate an Anthropic Messages body and return the chat request for the pipeline.

    Args:
        body: the raw JSON body (or decoded).
        count_only: a ``count_tokens`` body (``max_tokens`` not required).

    Returns:
        A :class:`router.request.ChatRequest`; ``top_k`` is in its ``params``; dropped
        Anthropic fields are in ``ignored_fields``.

    Raises:
        InvalidRequestError: not JSON, a missing or invalid field (``param`` names it),
            or content this router cannot translate.
    """
    if isinstance(body, (bytes, str)):
        body = load_json_body(body)
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    try:
        req = (_CountRequest if count_only else MessagesRequest).model_validate(body)
    except ValidationError as err:
        raise _validation_error(err) from None
    for i, m in enumerate(req.messages):  # Anthropic's rule: only a final assistant turn may be empty
        if m.content == [] and not (m.role == "assistant" and i == len(req.messages) - 1):
            raise InvalidRequestError(f"messages.{i}.content: a {m.role} turn needs at least one content block",
                                      param=f"messages.{i}.content")
    chat = parse_chat_request(to_chat_body(req), require_user_turn=True)
    if req.top_k is not None:
        chat.params["top_k"] = req.top_k
    chat.ignored_fields = sorted(req.model_extra or {})
    return chat
