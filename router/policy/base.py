"""Shared pieces of the policy schema: the strict base model, name and hash patterns."""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ConfigDict

__all__ = ["AUTO", "NEEDS", "hash_api_key"]

AUTO = "auto"
NEEDS = ("vision", "tools", "json")
"""Capabilities a request can need (see :mod:`router.request.features`): ``vision`` (an image part),
``tools`` (``tools`` given), ``json`` (``response_format`` json_object or json_schema)."""

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]*$"


def hash_api_key(key: str) -> str:
    """The at-rest form of a proxy API key: SHA-256 of its UTF-8 bytes, 64 lowercase hex
    characters (what ``api_keys[].sha256`` holds; ``slm-router policy hash-key`` prints it)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{what} is not a valid regular expression: {err}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
