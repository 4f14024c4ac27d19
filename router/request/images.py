"""Checks of inline images before any tier sees them (pure).

A provider refuses an image whose bytes do not decode, or whose media type it does not read,
with a 400 of its own after the router already chose (and, with a cascade, maybe paid for) a
tier; a local OpenAI-compatible server may answer as if no image had been sent. So the router
refuses them itself, naming the field:

- Anthropic ``image`` blocks: ``source.media_type`` one of :data:`ANTHROPIC_IMAGE_TYPES`
  (Messages API reference, "Vision": JPEG, PNG, GIF, WebP), ``source.data`` standard base64
  (RFC 4648 section 4, with padding), a ``url`` source an ``http(s)://`` URL;
- OpenAI ``image_url`` parts given as a ``data:`` URL (RFC 2397): ``data:<type>;base64,<data>``
  whose data is standard base64.
"""

from __future__ import annotations

import binascii

__all__ = ["ANTHROPIC_IMAGE_TYPES", "base64_problem", "data_url_problem"]

ANTHROPIC_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
"""The ``media_type`` values Anthropic's Messages API accepts for a base64 image source."""


def base64_problem(data: object) -> str | None:
    """Why ``data`` is not standard base64 (RFC 4648 section 4: the 64-letter alphabet, ``=``
    padding to a multiple of 4 characters, no blanks), or None when it decodes. Linear in its
    length (the decode is :func:`binascii.a2b_base64` in strict mode)."""
    if not isinstance(data, str) or not data:
        return "expected a non-empty base64 string"
    if not data.isascii():
        return "not valid base64 (a character outside the base64 alphabet)"
    try:
        binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except binascii.Error as err:
        return f"not valid base64 ({err})"
    return None


def data_url_problem(url: str) -> str | None:
    """Why the ``data:`` URL ``url`` is not an inline image OpenAI reads
    (``data:<media type>;base64,<base64 data>``), or None when it is one. ``url`` starts with
    ``data:`` (other URLs are not checked here)."""
    head, comma, data = url[len("data:"):].partition(",")
    if not comma or not head.lower().endswith(";base64"):
        return "expected a data URL of the form data:<media type>;base64,<data>"
    return base64_problem(data)
