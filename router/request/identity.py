"""Who is calling: the proxy API key in ``Authorization: Bearer <key>`` (or Anthropic's
``x-api-key``) looked up among the policy's ``api_keys`` (by SHA-256, so the policy holds no
key in clear), with the tenant id
and the logged key id derived from the same hash: :meth:`Identity.parse` reads the
credential headers once per request.

Identification never rejects a request: an absent or unknown key gives an anonymous caller
(None), which rules on ``keys``/``groups`` do not match and no overlay applies to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..policy import Overlay, Policy, hash_api_key
from .api_keys import api_key_id
from .tenant import ANONYMOUS, Tenant, tenant_from_headers

__all__ = ["Caller", "CallerIndex", "Identity", "bearer_token", "rule_headers"]


@dataclass(frozen=True, slots=True)
class Caller:
    """A known caller: its ``api_keys`` entry's name, group and overlay (name and settings),
    and whether it may read the policy (``admin``)."""

    name: str
    group: str | None = None
    overlay_name: str | None = None
    overlay: Overlay | None = None
    admin: bool = False


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
            k.sha256: Caller(k.name, k.group, k.overlay, policy.overlays.get(k.overlay) if k.overlay else None,
                             k.admin)
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

    def by_name(self, name: str | None) -> Caller | None:
        """The enabled caller named ``name`` (an ``api_keys`` entry), or None (``replay``
        identifies logged callers by name)."""
        return next((c for c in self._by_hash.values() if c.name == name), None) if name else None

    def by_hash(self, digest: str) -> Caller | None:
        """The caller whose key has SHA-256 ``digest`` (hex), or None."""
        return self._by_hash.get(digest)

    def admits_hash(self, digest: str | None, extra_hashes: frozenset[str] = frozenset()) -> bool:
        """:meth:`admits` for a key already hashed (None: no bearer key)."""
        return digest is not None and (digest in self._by_hash or digest in extra_hashes)

    def identify(self, authorization: str | None) -> Caller | None:
        """The caller whose key is in ``authorization`` (a header value), or None."""
        token = bearer_token(authorization)
        if token is None or not self._by_hash:
            return None
        return self._by_hash.get(hash_api_key(token))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who one request is from, parsed once from its headers.

    Attributes:
        tenant: the tenant (``key-`` + 16 hex of SHA-256 of the key, or ``anonymous``) and its
            cache directives (:func:`router.request.tenant.tenant_from_headers`).
        api_key_id: the key id the log keeps (:func:`router.request.api_keys.api_key_id`: the
            tenant id, or that of an ``api-key`` header without ``Authorization``), or None.
        caller: the ``api_keys`` entry of the bearer key, or None.
        key_sha256: SHA-256 (hex) of the bearer key, or None without one (authorization).
        presented: an ``Authorization`` (or ``x-api-key``) header was sent (a missing key is a
            different 401).
    """

    tenant: Tenant = Tenant()
    api_key_id: str | None = None
    caller: Caller | None = None
    key_sha256: str | None = None
    presented: bool = False

    @classmethod
    def parse(cls, headers: Mapping[str, str] | None, callers: "CallerIndex | None" = None) -> "Identity":
        """The identity in ``headers`` (``Authorization``, or Anthropic's ``x-api-key`` as its
        bearer key when no ``Authorization`` is sent; ``api-key``; ``Cache-Control``);
        ``callers`` looks the bearer key up (no caller when None). Never raises."""
        headers = headers or {}
        authorization = headers.get("authorization")
        if not authorization and headers.get("x-api-key"):  # Anthropic's SDKs send the key there
            authorization = f"Bearer {headers.get('x-api-key').strip()}"
        tenant = tenant_from_headers(authorization, headers.get("cache-control"))
        token = bearer_token(authorization)
        digest = hash_api_key(token) if token is not None else None
        if authorization:
            key_id = None if tenant.tenant == ANONYMOUS else tenant.tenant
        else:
            key_id = api_key_id(headers.get("api-key"))
        caller = callers.by_hash(digest) if callers is not None and digest is not None else None
        return cls(tenant, key_id, caller, digest, bool(authorization))
