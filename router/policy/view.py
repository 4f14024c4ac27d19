"""What the outside sees of a policy: a redacted copy and a hash.

:func:`redacted_policy` is what ``GET /v1/policy`` shows: tier ``api_key`` values and
``api_keys`` digests are replaced by ``"***"`` and passwords in URLs by ``***``.
:func:`policy_hash` identifies the policy in force; every logged request stores it. It is
the SHA-256 of the redacted policy as canonical JSON (sorted keys), cut to 16 hex
characters: rotating a secret does not change it, any routing change does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .model import Policy

__all__ = ["REDACTED", "redacted_policy", "policy_hash"]

REDACTED = "***"


def _redact_url(url: str | None) -> str | None:
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}"))


def redacted_policy(policy: Policy) -> dict[str, Any]:
    """The policy as JSON-ready data with secrets replaced (see the module docstring)."""
    data = policy.model_dump(mode="json")
    for tier in data["tiers"].values():
        if tier.get("api_key"):
            tier["api_key"] = REDACTED
        tier["api_base"] = _redact_url(tier.get("api_base"))
    for key in data["api_keys"]:
        if key.get("sha256"):
            key["sha256"] = REDACTED
        key.pop("key", None)
    return data


def policy_hash(policy: Policy) -> str:
    """16 hex characters identifying the policy (see the module docstring)."""
    canonical = json.dumps(redacted_policy(policy), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
