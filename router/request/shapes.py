"""Shape checks of a chat request's structured fields, after its types were validated (pure).

OpenAI's API reference (Chat Completions) gives each of these a 400 ``invalid_request_error``
naming the field; a proxy that forwards them unchecked lets a provider answer 400 (or, worse,
an OpenAI-compatible local server answer 200 to a request OpenAI would refuse). Checked here:

- ``tools``: a list of ``{"type": "function", "function": {"name", "parameters"?}}``, names of
  1-64 letters, digits, ``_`` or ``-`` and unique, ``parameters`` a JSON Schema object;
- ``tool_choice``: ``none``/``auto``/``required`` or a named function; ``required`` and a named
  function need ``tools``, and the name must be one of them;
- ``functions`` (the deprecated form of ``tools``): a list of ``{"name", "parameters"?}``
  under the same name rules; ``function_call``: ``none``/``auto`` or ``{"name"}`` naming one;
- ``response_format``: ``type`` one of text/json_object/json_schema; ``json_schema`` an object
  whose ``schema``, when given, is an object;
- ``top_logprobs`` only with ``logprobs: true``; ``logit_bias`` an object of token ids
  (decimal keys) to biases from -100 to 100;
  ``parallel_tool_calls`` a boolean;
- turns: ``name`` a string; an assistant's ``tool_calls`` a list of calls with a function
  name (a call's ``id`` and ``function.arguments``, when given, strings); a ``tool`` turn's ``tool_call_id``,
  answering a call of the assistant turn with ``tool_calls`` before it (only ``tool`` turns between,
  OpenAI's rule); ``text`` parts with string text; ``image_url`` parts
  with an ``http(s)://`` URL or a ``data:`` URL holding base64 (:mod:`router.request.images`)
  and a ``detail`` of auto/low/high.

Each check raises :class:`router.errors.InvalidRequestError` with ``param`` set.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidRequestError
from .images import data_url_problem

__all__ = ["RESPONSE_FORMAT_TYPES", "check_tools_and_format", "check_turns"]

RESPONSE_FORMAT_TYPES = frozenset({"text", "json_object", "json_schema"})
"""OpenAI's ``response_format.type`` values."""

IMAGE_DETAILS = ("auto", "low", "high")
"""OpenAI's ``image_url.detail`` values."""

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's function name rule


def _bad(param: str, expected: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid value for '{param}': expected {expected}.", param=param)


def _check_tools(tools: Any) -> list[str]:
    """The tool names, after checking ``tools``' shape."""
    if not isinstance(tools, list):
        raise InvalidRequestError(f"Invalid type for 'tools': expected an array of tools, got {type(tools).__name__}.",
                                  param="tools")
    names: list[str] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(fn, dict) \
                or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _bad(f"tools[{i}]", '{"type": "function", "function": {"name": ..., "parameters": ...}}')
        if not _TOOL_NAME.match(fn["name"]):
            raise _bad(f"tools[{i}].function.name", "1 to 64 letters, digits, underscores or dashes")
        if fn["name"] in names:
            raise InvalidRequestError(f"Invalid value for 'tools[{i}].function.name': {fn['name']!r} is defined twice.",
                                      param=f"tools[{i}].function.name")
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            raise _bad(f"tools[{i}].function.parameters", "a JSON Schema object")
        names.append(fn["name"])
    return names


def _check_tool_choice(choice: Any, names: list[str] | None) -> None:
    if choice is None:
        return
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if not isinstance(name, str):
            raise _bad("tool_choice", "'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}")
        if names is None or name not in names:
            raise InvalidRequestError(f"Invalid value for 'tool_choice': no tool named {name!r} in 'tools'.",
                                      param="tool_choice.function.name")
        return
    if choice not in ("none", "auto", "required"):
        raise _bad("tool_choice", "'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}")
    if choice == "required" and not names:
        raise InvalidRequestError("Invalid value for 'tool_choice': 'required' needs 'tools'.", param="tool_choice")


def _check_functions(functions: Any, call: Any) -> None:
    """The deprecated ``functions`` / ``function_call`` pair: each entry is what a tool's
    ``function`` is, and ``function_call`` names one of them (or is ``none``/``auto``)."""
    names = None
    if functions is not None:
        if not isinstance(functions, list):
            raise _bad("functions", "an array of functions")
        for i, fn in enumerate(functions):
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise _bad(f"functions[{i}]", '{"name": ..., "parameters": ...}')
        tools = [{"type": "function", "function": fn} for fn in functions]
        try:
            names = _check_tools(tools)
        except InvalidRequestError as err:  # the same rule, named as the client sent it
            where = (err.param or "tools").replace("tools", "functions", 1).replace(".function", "", 1)
            raise InvalidRequestError(err.message.replace(err.param or "", where), param=where) from None
    if call is None or call in ("none", "auto"):
        return
    name = call.get("name") if isinstance(call, dict) else None
    if not isinstance(name, str):
        raise _bad("function_call", "'none', 'auto' or {\"name\": ...}")
    if names is None or name not in names:
        raise InvalidRequestError(f"Invalid value for 'function_call': no function named {name!r} in 'functions'.",
                                  param="function_call.name")


def _check_format(fmt: Any) -> None:
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if not isinstance(kind, str) or kind not in RESPONSE_FORMAT_TYPES:  # a list type is unhashable
        raise InvalidRequestError(
            f"Invalid value for 'response_format.type': {kind!r}; expected one of "
            f"{', '.join(sorted(RESPONSE_FORMAT_TYPES))}.", param="response_format.type")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise InvalidRequestError("Missing required parameter: 'response_format.json_schema'.",
                                      param="response_format.json_schema")
        if "schema" in spec and not isinstance(spec["schema"], dict):
            raise _bad("response_format.json_schema.schema", "a JSON Schema object")


def check_tools_and_format(params: dict[str, Any]) -> None:
    """Check ``tools``, ``tool_choice``, ``response_format``, ``top_logprobs``, ``logit_bias``
    and ``parallel_tool_calls`` (see the module docstring).

    Raises:
        InvalidRequestError: naming the first bad field.
    """
    names = _check_tools(params["tools"]) if params.get("tools") is not None else None
    _check_tool_choice(params.get("tool_choice"), names)
    _check_functions(params.get("functions"), params.get("function_call"))
    _check_format(params.get("response_format"))
    if params.get("top_logprobs") is not None and params.get("logprobs") is not True:
        raise InvalidRequestError("Invalid value for 'top_logprobs': it needs 'logprobs' set to true.",
                                  param="top_logprobs")
    if params.get("logit_bias") is not None:
        _check_logit_bias(params["logit_bias"])
    if "parallel_tool_calls" in params and not isinstance(params["parallel_tool_calls"], bool):
        raise _bad("parallel_tool_calls", "a boolean")


def _check_logit_bias(bias: Any) -> None:
    """OpenAI's ``logit_bias``: token ids (as JSON object keys: decimal integers) mapped to
    biases from -100 to 100."""
    if not isinstance(bias, dict):
        raise _bad("logit_bias", "an object of token ids to biases")
    for token, value in bias.items():
        if not token.isdigit():
            raise _bad(f"logit_bias.{token}", "a token id (a non-negative integer) as the key")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -100 <= value <= 100:
            raise _bad(f"logit_bias.{token}", "a number from -100 to 100")


def _check_part(part: dict[str, Any], where: str) -> None:
    kind = part.get("type")
    if kind == "text" and not isinstance(part.get("text"), str):
        raise _bad(f"{where}.text", "a string")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:")):
            raise _bad(f"{where}.image_url.url", "an http(s):// or data: URL")
        detail = image.get("detail") if isinstance(image, dict) else None
        if detail is not None and detail not in IMAGE_DETAILS:
            raise _bad(f"{where}.image_url.detail", "'auto', 'low' or 'high'")
        problem = data_url_problem(url) if url.startswith("data:") else None
        if problem:
            raise InvalidRequestError(f"Invalid value for '{where}.image_url.url': {problem}.",
                                      param=f"{where}.image_url.url")


def _answered_calls(messages: list[dict[str, Any]], i: int) -> tuple[set[str], bool]:
    """(the call ids, found) of the assistant turn with ``tool_calls`` that the ``tool`` turn
    ``messages[i]`` answers: the nearest one before it with only ``tool`` turns between
    (OpenAI's rule); ``found`` is False when there is none. Calls without an ``id`` add none."""
    for j in range(i - 1, -1, -1):
        m = messages[j]
        if m.get("role") == "tool":
            continue
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        if not calls:
            return set(), False
        return {c["id"] for c in calls if isinstance(c.get("id"), str)}, True
    return set(), False


def check_turns(messages: list[dict[str, Any]]) -> None:
    """Check each turn's ``name``, ``tool_calls``, ``tool_call_id`` and content parts.

    Raises:
        InvalidRequestError: naming the first bad field (``messages[i]...``).
    """
    for i, m in enumerate(messages):
        at = f"messages[{i}]"
        if "name" in m and m["name"] is not None and not isinstance(m["name"], str):
            raise _bad(f"{at}.name", "a string")
        calls = m.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise _bad(f"{at}.tool_calls", "an array of tool calls")
            for j, call in enumerate(calls):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    raise _bad(f"{at}.tool_calls[{j}]", '{"id": ..., "type": "function", "function": {"name": ..., '
                                                       '"arguments": ...}}')
                if "id" in call and not isinstance(call["id"], str):
                    raise _bad(f"{at}.tool_calls[{j}].id", "a string")
                if fn.get("arguments") is not None and not isinstance(fn["arguments"], str):
                    raise _bad(f"{at}.tool_calls[{j}].function.arguments", "a string of JSON")
        if m.get("role") == "tool" and not isinstance(m.get("tool_call_id"), str):
            raise InvalidRequestError(f"Missing required parameter: '{at}.tool_call_id'.", param=f"{at}.tool_call_id")
        answering = _answered_calls(messages, i) if m.get("role") == "tool" else None
        if answering is not None and (not answering[1] or (answering[0] and m["tool_call_id"] not in answering[0])):
            why = ("must be a response to a preceding message with 'tool_calls'" if not answering[1] else
                   f"answers tool call {m['tool_call_id']!r}, which the preceding message with 'tool_calls' "
                   "did not make")
            raise InvalidRequestError(f"Invalid parameter: '{at}' (role 'tool') {why}.", param=f"{at}.tool_call_id")
        for j, part in enumerate(m["content"] if isinstance(m.get("content"), list) else ()):
            _check_part(part, f"{at}.content[{j}]")
