"""Who is calling: the proxy API key in ``Authorization: Bearer <key>`` looked up among the
policy's ``api_keys`` (by SHA-256, so the policy holds no key in clear).

Identification never rejects a request: an absent or unknown key gives an anonymous caller
(None), which rules on ``keys``/``groups`` do not match and no overlay applies to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..policy import Overlay, Policy, hash_api_key

__all__ = ["Caller", "CallerIndex", "bearer_token", "rule_headers"]


@dataclass(frozen=True, slots=True)
class Caller:
    """A known caller: its ``api_keys`` entry's name, group and overlay (name and settings)."""

    name: str
    group: str | None = None
    overlay_name: str | None = None
    overlay: Overlay | None = None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def rule_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Request headers as rules see them: names lower-case, credentials left out."""
    hidden = {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"}
    return {k.lower(): v for k, v in (headers or {}).items() if k.lower() not in hidden}


class CallerIndex:
    """The policy's enabled keys, indexed by SHA-256.

    Args:
        policy: its ``api_keys`` and ``overlays``.
    """

    def __init__(self, policy: Policy) -> None:
        self._by_hash = {
            k.sha256: Caller(k.name, k.group, k.overlay, policy.overlays.get(k.overlay) if k.overlay else None)
            for k in policy.api_keys if k.enabled
        }

    def admits(self, authorization: str | None, extra_hashes: frozenset[str] = frozenset()) -> bool:
        """True when the Bearer key in ``authorization`` is an enabled ``api_keys`` entry or
        one whose SHA-256 is in ``extra_hashes`` (keys from the environment)."""
        token = bearer_token(authorization)
        if token is None:
            return False
        digest = hash_api_key(token)
        return digest in self._by_hash or digest in extra_hashes

    def identify(self, authorization: str | None) -> Caller | None:
        """The caller whose key is in ``authorization`` (a header value), or None."""
        token = bearer_token(authorization)
        if token is None or not self._by_hash:
            return None
        return self._by_hash.get(hash_api_key(token))
