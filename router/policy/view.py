"""What the outside sees of a policy: a redacted copy and a hash.

:func:`redacted_policy` is what ``GET /v1/policy`` shows: tier ``api_key`` values and
``api_keys`` digests are replaced by ``"***"`` and passwords in URLs by ``***``.
:func:`policy_hash` identifies the policy in force; every logged request stores it, and it
is the version id of ``slm-router policy versions`` (:mod:`router.policy.versions`). It is
the SHA-256 of the redacted policy as canonical JSON (sorted keys) without the deployment
sections :data:`DEPLOYMENT_SECTIONS` (``store``, ``log``: where this replica's log and shared
state live, which differ between replicas of one policy), cut to 16 hex characters: rotating
a secret does not change it, any routing change does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .model import Policy

__all__ = ["REDACTED", "DEPLOYMENT_SECTIONS", "redacted_policy", "policy_hash", "changed_secrets"]

REDACTED = "***"

DEPLOYMENT_SECTIONS = ("store", "log")
"""Sections that say where a replica keeps its log and shared state, not how it routes: left
out of :func:`policy_hash`, and kept from each replica's own file when a stored version is
applied (:mod:`router.api.version_sync`)."""

# Query parameters that carry credentials in provider URLs (Google's ``?key=``, SAS
# ``sig``, presigned ``token``/``X-Amz-Signature``, ...): their values are redacted.
_SECRET_QUERY = ("key", "token", "secret", "password", "sig", "signature", "auth", "credential")


def _redact_url(url: str | None) -> str | None:
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if parts.query:
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(any(word in k.lower() for word in _SECRET_QUERY) for k, _ in query):
            safe = [(k, REDACTED if any(word in k.lower() for word in _SECRET_QUERY) else v) for k, v in query]
            parts = parts._replace(query=urlencode(safe, safe="*"))
    if parts.password is None:
        return urlunsplit(parts)
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
    data = {k: v for k, v in redacted_policy(policy).items() if k not in DEPLOYMENT_SECTIONS}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def changed_secrets(old: Policy, new: Policy) -> list[str]:
    """Names (never values) of the secrets that differ between two policies: tier
    ``api_key``s and ``api_base`` URLs with credentials, as ``tiers.<name>.api_key``, and
    ``api_keys`` entries as ``api_keys.<name>``. Empty when no secret changed."""
    out = []
    for name in sorted(set(old.tiers) | set(new.tiers)):
        a, b = old.tiers.get(name), new.tiers.get(name)
        if a is None or b is None:
            continue
        if a.api_key != b.api_key:
            out.append(f"tiers.{name}.api_key")
        if a.api_base != b.api_base and _redact_url(a.api_base) == _redact_url(b.api_base):
            out.append(f"tiers.{name}.api_base")
    old_keys = {k.name: (k.sha256, k.key) for k in old.api_keys}
    for k in new.api_keys:
        if k.name in old_keys and old_keys[k.name] != (k.sha256, k.key):
            out.append(f"api_keys.{k.name}")
    return out
