"""Parse stage: turn a client's JSON body into a validated :class:`ChatRequest`.

Only what routing needs is typed; every other OpenAI parameter is kept in
``ChatRequest.params`` and passed to the tier unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from ..errors import InvalidRequestError
from .shapes import check_tools_and_format, check_turns

__all__ = ["Message", "ChatRequest", "SamplingParams", "SEED_RANGE", "REASONING_EFFORTS", "load_json_body", "parse_chat_request", "message_text", "ROLES",
           "CONTENT_PART_TYPES", "asking_turn"]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Parameters forwarded to a tier as given; anything else in the body is ignored.
_PASSTHROUGH = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "user",
    "tools",
    "tool_choice",
    "response_format",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "logit_bias",
    "functions",
    "function_call",
    "reasoning_effort",
)
# Read by the router itself, never forwarded.
_ROUTER_FIELDS = ("model", "messages", "stream", "stream_options", "metadata")


MAX_TOKENS_LIMIT = 2**31 - 1
"""The largest ``max_tokens`` accepted: a 32-bit signed integer, the width of the token-count
fields providers and llama.cpp use; a larger value overflows them instead of meaning "no
limit" (a client that wants no limit leaves the field out)."""

SEED_RANGE = (-(2**63), 2**63 - 1)
"""``seed`` as a signed 64-bit integer, the width OpenAI's API and llama.cpp read it in; a
larger one overflowed a provider's parser (a 500 upstream) or was silently wrapped."""

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
"""``reasoning_effort`` values: OpenAI's (API reference, Chat Completions), each of which
litellm's ``completion`` accepts and maps for other providers."""


class SamplingParams(BaseModel):
    """OpenAI's documented types and ranges of the forwarded numeric parameters, checked
    before any tier is called (API reference, Chat Completions: temperature 0-2, top_p 0-1,
    n 1-128, top_logprobs 0-20, penalties -2..2, at most 4 stop sequences, ``user`` a string;
    ``max_tokens`` and ``max_completion_tokens`` at most :data:`MAX_TOKENS_LIMIT`; ``seed`` a
    signed 64-bit integer, :data:`SEED_RANGE`; ``reasoning_effort`` one of
    :data:`REASONING_EFFORTS`). Numbers are JSON numbers: ``true`` or ``"0.5"`` is not a
    temperature. Other fields pass through unchecked."""

    model_config = ConfigDict(extra="allow")

    temperature: StrictFloat | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: StrictFloat | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    n: StrictInt | None = Field(None, ge=1, le=128)
    max_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    top_logprobs: StrictInt | None = Field(None, ge=0, le=20)
    logprobs: StrictBool | None = None
    presence_penalty: StrictFloat | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    frequency_penalty: StrictFloat | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    seed: StrictInt | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: StrictStr | list[StrictStr] | None = Field(None, max_length=4)
    user: StrictStr | None = None
    reasoning_effort: Literal[REASONING_EFFORTS] | None = None  # type: ignore[valid-type]


CONTENT_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
"""Content part types of OpenAI's chat messages; any other is a client error."""


class Message(BaseModel):
    """One chat turn. ``content`` is a string, a list of OpenAI content parts, or None."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """A validated chat-completions request.

    Attributes:
        model: ``auto`` or a tier name.
        messages: at least one turn; the asking turn (:func:`asking_turn`) has text or an image.
        stream: answer as server-sent events; stream_options: OpenAI's (``include_usage``).
        metadata: OpenAI's ``metadata`` (string keys and values); routing rules can match
            on it; not forwarded to the tier.
        params: other OpenAI parameters, forwarded to the tier unchanged.
        ignored_fields: names of body fields that were dropped, never forwarded: anything
            outside the OpenAI chat parameters above, such as ``api_base``, ``base_url`` or
            ``api_key`` (a client can never redirect the proxy or supply a provider key).
    """

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool = False
    stream_options: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    ignored_fields: list[str] = Field(default_factory=list)

    @property
    def include_usage(self) -> bool:
        """True when a streaming client asked for the final usage chunk."""
        return bool(self.stream and (self.stream_options or {}).get("include_usage"))

    def messages_as_dicts(self) -> list[dict[str, Any]]:
        """The turns as plain dicts, as litellm takes them: every field as the client sent it
        (an assistant tool-call turn keeps `content: null`; strict servers reject it missing)."""
        return [m.model_dump(exclude_unset=True) for m in self.messages]

    def asking_index(self) -> int:
        """Index in ``messages`` of the turn routing reads (:func:`asking_turn`)."""
        return asking_turn(self.messages)


def message_text(message: Message | dict[str, Any]) -> str:
    """Text of one turn: the string content, or the text parts joined by newlines."""
    content = message.content if isinstance(message, Message) else message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(
        str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
    )


def asking_turn(messages: list[Message]) -> int:
    """Index of the turn a request asks with: the last ``user`` turn; in a conversation
    without one (OpenAI's chat API accepts, e.g., a lone system prompt) the last turn holding
    text, else the last turn. Pure; ``messages`` must not be empty (IndexError otherwise)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i
    for i in range(len(messages) - 1, -1, -1):
        if message_text(messages[i]).strip():
            return i
    if not messages:
        raise IndexError("asking_turn of an empty conversation")
    return len(messages) - 1


def _validation_message(err: ValidationError, prefix: tuple = ()) -> tuple[str, str | None]:
    first = err.errors()[0]
    loc = [*prefix, *first["loc"]]
    if loc and loc[0] == "params":
        loc = loc[1:]
    # messages.0.content.str -> messages[0].content (OpenAI's own spelling of a field path)
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        elif parts and p in ("str", "list[dict[str,any]]", "none", "list[str]", "int", "float", "bool"):
            continue  # pydantic's name of a union branch, not a field
        else:
            parts.append(str(p))
    param = ".".join(parts) or None
    if first["type"] == "missing":
        return f"Missing required parameter: '{param}'.", param
    return f"Invalid value for '{param}': {first['msg']}.", param


def _lone_surrogate_path(value: Any, path: str = "") -> str | None:
    """The path (``messages[0].content``) of the first string in ``value`` that is not valid
    Unicode (a lone UTF-16 surrogate, which JSON's ``\\ud800`` escape and Python's
    ``surrogatepass`` decoding of raw bytes ``ED A0 80`` both produce), or None. Such a string
    cannot be encoded as UTF-8, so a tokenizer or a provider would fail on it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            shown = str(key).encode("utf-8", "backslashreplace").decode("utf-8")  # a bad key is named escaped
            sub = f"{path}.{shown}" if path else shown
            found = _lone_surrogate_path(key, sub) or _lone_surrogate_path(item, sub)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


_TOOL_KEYS = frozenset({"type", "function"})
_FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})


def _openai_tools(tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """``tools`` with only the keys of OpenAI's tool shape (a client-side ``api_base`` or
    ``api_key`` inside an entry is never forwarded), and the dropped keys' paths."""
    cleaned, dropped = [], []
    for i, tool in enumerate(tools):
        fn = tool["function"]
        dropped += [f"tools[{i}].{k}" for k in tool if k not in _TOOL_KEYS]
        dropped += [f"tools[{i}].function.{k}" for k in fn if k not in _FUNCTION_KEYS]
        cleaned.append({**{k: v for k, v in tool.items() if k in _TOOL_KEYS},
                        "function": {k: v for k, v in fn.items() if k in _FUNCTION_KEYS}})
    return cleaned, dropped


def load_json_body(body: bytes | str) -> Any:
    """A request body decoded as JSON, for every API the router speaks.

    Raises:
        InvalidRequestError: 400 ``invalid_json``: not JSON, not UTF-8, nested deeper than
            the decoder's recursion, or a number longer than Python converts (4,300 digits;
            its advice on ``sys.set_int_max_str_digits`` is for servers, not clients).
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = str(err).split("; use sys.set_int_max_str_digits()")[0]
        raise InvalidRequestError(f"We could not parse the JSON body of your request ({reason}).",
                                  code="invalid_json") from None


def parse_chat_request(body: bytes | str | dict[str, Any], *, require_user_turn: bool = False) -> ChatRequest:
    """Validate a chat-completions body (raw bytes or already-decoded JSON).

    A conversation without a ``user`` turn (a lone system prompt) is served, as OpenAI's chat
    API serves it; routing reads its :func:`asking_turn`. ``require_user_turn`` refuses it
    instead (the Anthropic and Responses translations keep their own APIs' rule).

    Raises:
        InvalidRequestError: the body is not JSON, holds a string that is not valid Unicode
            (a lone surrogate), lacks ``model``/``messages``, has ``stream_options`` without
            ``stream: true`` (OpenAI's 400), has an unknown role, the asking
            turn is empty, or (``require_user_turn``) no turn is a user's. ``param`` names the field.
    """
    data = load_json_body(body) if isinstance(body, (bytes, str)) else body
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    bad = _lone_surrogate_path(data)
    if bad:
        raise InvalidRequestError(
            f"Invalid value for '{bad}': the string is not valid Unicode (a lone UTF-16 surrogate); "
            "send UTF-8 text.", param=bad)

    fields = {k: data[k] for k in _ROUTER_FIELDS if data.get(k) is not None}
    fields["params"] = {k: data[k] for k in _PASSTHROUGH if k in data and data[k] is not None}
    fields["ignored_fields"] = sorted(k for k in data if k not in _ROUTER_FIELDS and k not in _PASSTHROUGH)
    try:
        SamplingParams.model_validate(fields["params"])
    except ValidationError as err:
        message, param = _validation_message(err)
        raise InvalidRequestError(message, param=param) from None
    check_tools_and_format(fields["params"])
    if fields["params"].get("tools"):
        fields["params"]["tools"], dropped = _openai_tools(fields["params"]["tools"])
        fields["ignored_fields"] = sorted(fields["ignored_fields"] + dropped)
    try:
        request = ChatRequest.model_validate(fields)
    except ValidationError as err:
        message, param = _validation_message(err)
        raise InvalidRequestError(message, param=param) from None

    for i, m in enumerate(request.messages):
        for j, part in enumerate(m.content if isinstance(m.content, list) else ()):
            if not isinstance(part.get("type"), str) or part["type"] not in CONTENT_PART_TYPES:  # [] is unhashable
                raise InvalidRequestError(
                    f"Invalid value for 'messages[{i}].content[{j}].type': {part.get('type')!r}; expected one of "
                    f"{', '.join(sorted(CONTENT_PART_TYPES))}.",
                    param=f"messages[{i}].content[{j}].type",
                )

    if request.stream_options is not None and not request.stream:  # OpenAI's rule, and its message
        raise InvalidRequestError("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                  param="stream_options")
    options = request.stream_options or {}
    if "include_usage" in options and not isinstance(options["include_usage"], bool):
        raise InvalidRequestError("Invalid value for 'stream_options.include_usage': expected a boolean.",
                                  param="stream_options.include_usage")
    check_turns(fields["messages"])
    for i, m in enumerate(request.messages):
        if m.role not in ROLES:
            raise InvalidRequestError(
                f"Invalid value for 'messages[{i}].role': {m.role!r}; expected one of "
                f"{', '.join(sorted(ROLES))}.",
                param=f"messages[{i}].role",
            )
    if require_user_turn and not any(m.role == "user" for m in request.messages):
        raise InvalidRequestError("'messages' must contain at least one user turn.", param="messages")
    last = request.asking_index()
    content = request.messages[last].content
    only_text = not isinstance(content, list) or all(isinstance(p, dict) and p.get("type") == "text" for p in content)
    if not message_text(request.messages[last]).strip() and only_text:  # [] or empty text parts too; an image is content
        raise InvalidRequestError(
            f"'messages[{last}].content' is empty; send the text to answer.",
            param=f"messages[{last}].content",
            code="empty_content",
        )
    return request
