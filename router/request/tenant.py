"""Who is calling: a stable tenant id from the request's API key, and the caller's cache
directives. Pure; the raw key is never stored, logged or returned.

Tenant id: ``key-`` + the first 16 hex digits (64 bits) of SHA-256 of the bearer token;
``anonymous`` without one. Budgets, rate limits and cache entries are scoped by it, the log
keeps it, and answers carry it as ``x-router-tenant`` so an operator can name a tenant in
the policy (``budgets.tenants``, ``rate_limits.tenants``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Tenant", "tenant_id", "tenant_from_headers"]

ANONYMOUS = "anonymous"


def tenant_id(api_key: str | None) -> str:
    """``key-<16 hex>`` for a non-empty key (SHA-256 prefix), else ``anonymous``."""
    key = (api_key or "").strip()
    if not key:
        return ANONYMOUS
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Tenant:
    """Who one request is for, as shared state scopes it (its identity within the policy's
    ``api_keys`` is :class:`router.request.identity.Caller`).

    Attributes:
        tenant: tenant id (see :func:`tenant_id`).
        no_cache: ``Cache-Control: no-cache``: do not answer from the cache (a fresh answer
            is still stored).
        no_store: ``Cache-Control: no-store``: neither read nor write the cache.
    """

    tenant: str = ANONYMOUS
    no_cache: bool = False
    no_store: bool = False


def tenant_from_headers(authorization: str | None, cache_control: str | None) -> Tenant:
    """Build a :class:`Tenant` from the ``Authorization`` and ``Cache-Control`` header values.

    ``Authorization: Bearer <key>`` (scheme case-insensitive) gives the key; any other
    value is hashed whole, so a malformed header still maps to one stable tenant.
    """
    auth = (authorization or "").strip()
    scheme, _, rest = auth.partition(" ")
    key = rest.strip() if scheme.lower() == "bearer" else auth
    directives = {d.strip().split("=", 1)[0].lower() for d in (cache_control or "").split(",") if d.strip()}
    return Tenant(tenant=tenant_id(key), no_cache="no-cache" in directives or "no-store" in directives,
                  no_store="no-store" in directives)
