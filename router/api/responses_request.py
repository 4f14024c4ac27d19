"""OpenAI Responses request -> the chat request the pipeline takes (pure).

The stateless subset of ``POST /v1/responses`` (OpenAI API reference, "Responses"):
``input`` as a string or a list of items (messages with ``input_text``/``input_image``/
``output_text`` parts, ``function_call`` and ``function_call_output`` items), ``instructions``
(a system turn first), function ``tools``, ``tool_choice``, ``text.format`` (``text``,
``json_object``, ``json_schema``: becomes ``response_format``), ``max_output_tokens``,
``temperature``, ``top_p``, ``parallel_tool_calls``, ``user``, ``metadata``, ``stream`` and
``store`` (nothing is ever stored; answers say ``store: false``).

Anything that needs server-side state (``previous_response_id``, ``conversation``,
``background``, ``item_reference`` items) gets a 400 naming the field: this router keeps no
responses. Other fields (``reasoning``, ``include``, ``truncation``, ...) are dropped and
named in the reason, as on the chat endpoint.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError

from ..errors import InvalidRequestError
from ..request.parse import MAX_TOKENS_LIMIT, ChatRequest, load_json_body, parse_chat_request

__all__ = ["ResponsesRequest", "ParsedResponses", "parse_responses_request", "STATEFUL_FIELDS"]

STATEFUL_FIELDS = ("previous_response_id", "conversation", "background")
"""Fields that need responses kept on the server; refused with 400 naming the field."""


class ResponsesRequest(BaseModel):
    """A validated Responses body (typed fields are translated, others reported ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    max_output_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: StrictFloat | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: StrictFloat | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    parallel_tool_calls: StrictBool | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    stream: StrictBool = False
    store: StrictBool | None = None


@dataclass(frozen=True, slots=True)
class ParsedResponses:
    """The chat request for the pipeline and what the answer must echo back."""

    chat: ChatRequest
    request: ResponsesRequest


_MESSAGES_PARAM = re.compile(r"'messages(\[\d+\]|\.\w+)*'")  # the whole chat path: 'messages[1].tool_calls[0].id'


def _fail(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid value for '{param}': {message}", param=param)


def _part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _fail(f"expected a content part object such as {{'type': 'input_text', 'text': ...}}, got "
                    f"{type(part).__name__}", where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text", "refusal"):
        key = "refusal" if kind == "refusal" else "text"
        if not isinstance(part.get(key), str):
            raise _fail("expected a string", f"{where}.{key}")
        return {"type": "text", "text": part[key]}
    if kind == "input_image":
        if not part.get("image_url"):
            raise _fail("only image_url images are supported (file_id needs stored files)", f"{where}.image_url")
        if not isinstance(part["image_url"], str):
            raise _fail("expected a URL string (http(s):// or data:)", f"{where}.image_url")
        image = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise _fail(f"unsupported content part type {kind!r}; expected input_text, input_image or output_text",
                f"{where}.type")


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise _fail(f"{role!r}; expected user, system, developer or assistant", f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _fail("content must be a string or a list of parts", f"{where}.content")
    parts = [_part(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _turns(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where, kind = f"input[{i}]", item.get("type", "message")
        if kind == "message":
            turns.append(_message(item, where))
        elif kind == "function_call":
            if not item.get("call_id") or not item.get("name"):
                raise _fail("a function_call needs call_id and name", where)
            for key in ("call_id", "name", "arguments"):
                if item.get(key) is not None and not isinstance(item[key], str):
                    raise _fail("expected a string" + (" of JSON" if key == "arguments" else ""), f"{where}.{key}")
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"}}
            last = turns[-1] if turns else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                turns.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not item.get("call_id") or not isinstance(item["call_id"], str):
                raise _fail("a function_call_output needs a string call_id", f"{where}.call_id")
            if not any(c["id"] == item["call_id"] for t in turns for c in t.get("tool_calls") or ()):
                raise _fail(f"no function_call item before it has call_id {item['call_id']!r}", f"{where}.call_id")
            output = item.get("output")
            turns.append({"role": "tool", "tool_call_id": item["call_id"],
                          "content": output if isinstance(output, str) else json.dumps(output)})
        elif kind == "reasoning":
            continue  # a reasoning model's earlier summary: not replayed to another tier
        elif kind == "item_reference":
            raise _fail("item references need stored responses, which this router does not keep", f"{where}.type")
        else:
            raise _fail(f"unsupported item type {kind!r}", f"{where}.type")
    return turns


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise _fail(f"{tool.get('type')!r}; only function tools are supported by this router", f"tools[{i}].type")
        if not tool.get("name"):
            raise _fail("a function tool needs a name", f"tools[{i}].name")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: str | dict[str, Any]) -> Any:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):  # else the chat check names the chat shape
            raise _fail("expected auto, none, required or {'type': 'function', 'name': ...}", "tool_choice")
        return choice
    if choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _fail("expected auto, none, required or {'type': 'function', 'name': ...}", "tool_choice")


def _response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    fmt = text.get("format")
    if fmt is not None and not isinstance(fmt, dict):
        raise _fail("expected an object such as {'type': 'json_object'}", "text.format")
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        if not fmt.get("name") or not isinstance(fmt.get("schema"), dict):
            raise _fail("a json_schema format needs name and schema", "text.format")
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise _fail(f"{fmt.get('type')!r}; expected text, json_object or json_schema", "text.format.type")


def parse_responses_request(body: bytes | str | dict[str, Any]) -> ParsedResponses:
    """Validate a Responses body and build the chat request for the pipeline.

    Raises:
        InvalidRequestError: not JSON, a missing or invalid field, a stateful field
            (``param`` names it, e.g. ``previous_response_id``) or an unsupported item.
    """
    if isinstance(body, (bytes, str)):
        body = load_json_body(body)
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    for name in STATEFUL_FIELDS:
        if body.get(name):
            raise InvalidRequestError(
                f"'{name}' is not supported: this router is stateless and keeps no responses; send the whole "
                "conversation in 'input' instead.", param=name, code="unsupported_parameter")
    try:
        req = ResponsesRequest.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if p not in ("str", "list[dict[str,any]]")) or None
        raise InvalidRequestError(f"Invalid value for '{param}': {first['msg']}.", param=param) from None
    messages = [{"role": "system", "content": req.instructions}] if req.instructions else []
    messages += [{"role": "user", "content": req.input}] if isinstance(req.input, str) else _turns(req.input)
    chat_body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": req.stream}
    if req.stream:
        chat_body["stream_options"] = {"include_usage": True}
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p"),
                         ("parallel_tool_calls", "parallel_tool_calls"), ("user", "user"), ("metadata", "metadata")):
        if getattr(req, ours) is not None:
            chat_body[theirs] = getattr(req, ours)
    if req.tools:
        chat_body["tools"] = _tools(req.tools)
    if req.tool_choice is not None:
        chat_body["tool_choice"] = _tool_choice(req.tool_choice)
    fmt = _response_format(req.text or {})
    if fmt is not None:
        chat_body["response_format"] = fmt
    try:
        chat = parse_chat_request(chat_body, require_user_turn=True)
    except InvalidRequestError as err:  # the chat turns are built from 'input': name it, not 'messages'
        if not (err.param or "").startswith("messages"):
            raise
        raise InvalidRequestError(_MESSAGES_PARAM.sub("'input'", err.message), param="input", code=err.code) from None
    chat.ignored_fields = sorted(req.model_extra or {})
    return ParsedResponses(chat, req)
