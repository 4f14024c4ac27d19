"""Client API keys as the log stores them: a non-reversible id, never the key itself.

Pure: :func:`api_key_id` takes the request's ``Authorization`` header value and returns the
id that groups a client's requests in the report (``slm-router report --by api-key``). It is
the tenant id of :mod:`router.request.tenant` (one hash of a key across the whole product), or None
for a request without a key.
"""

from __future__ import annotations

from .tenant import ANONYMOUS, tenant_id

__all__ = ["api_key_id"]


def api_key_id(authorization: str | None) -> str | None:
    """``key-`` + the first 16 hex digits of SHA-256 of the bearer token, or None when the
    header is absent or empty. ``Authorization: Bearer sk-abc`` and a bare ``sk-abc`` give
    the same id; 64 bits of a hash cannot be turned back into the key."""
    if not authorization:
        return None
    parts = authorization.split(None, 1)
    token = parts[1].strip() if len(parts) == 2 and parts[0].lower() == "bearer" else authorization.strip()
    if not token or token.lower() == "bearer":
        return None
    tenant = tenant_id(token)
    return None if tenant == ANONYMOUS else tenant
