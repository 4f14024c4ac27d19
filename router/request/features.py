"""Features stage: what the router looks at in a request before choosing a tier.

Pure: takes a :class:`~router.request.parse.ChatRequest`, returns :class:`Features`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .parse import ChatRequest, message_text

__all__ = ["Features", "extract_features"]


@dataclass(frozen=True, slots=True)
class Features:
    """What routing decides on.

    Attributes:
        text: the text embedded for the classifier: the last user turn preceded by up to
            ``context_turns`` earlier turns, cut to the last ``max_chars`` characters; empty
            when the last user turn has no text (an image only).
        prompt_chars: characters in all turns.
        approx_prompt_tokens: ``prompt_chars / 4``, OpenAI's rule of thumb for English.
        needs: capabilities the request needs: ``vision``, ``tools``, ``json``.
    """

    text: str
    prompt_chars: int
    approx_prompt_tokens: int
    needs: frozenset[str]


def extract_features(request: ChatRequest, *, context_turns: int = 2, max_chars: int = 2000) -> Features:
    """Compute :class:`Features` for one request (no I/O, no model)."""
    turns = [m for m in request.messages if m.role in ("user", "assistant", "system", "developer")]
    last_user = max(i for i, m in enumerate(turns) if m.role == "user")
    window = turns[max(0, last_user - context_turns) : last_user + 1]
    text = "\n".join(message_text(m) for m in window if message_text(m))[-max_chars:]
    if not message_text(turns[last_user]).strip():
        text = ""  # e.g. an image-only turn: earlier turns must not decide its route

    prompt_chars = sum(len(message_text(m)) for m in request.messages)
    needs = set()
    for m in request.messages:
        if isinstance(m.content, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "input_image") for p in m.content
        ):
            needs.add("vision")
    if request.params.get("tools"):
        needs.add("tools")
    if request.params.get("response_format", {}).get("type") in ("json_object", "json_schema"):
        needs.add("json")
    return Features(
        text=text,
        prompt_chars=prompt_chars,
        approx_prompt_tokens=max(1, prompt_chars // 4),
        needs=frozenset(needs),
    )
