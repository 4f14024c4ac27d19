"""Client API keys as the log stores them: a non-reversible id, never the key itself.

Pure: :func:`api_key_id` takes the request's ``Authorization`` header value and returns an id
that groups a client's requests in the report (``slm-router report --by api-key``).
"""

from __future__ import annotations

import hashlib

__all__ = ["api_key_id"]


def api_key_id(authorization: str | None) -> str | None:
    """``key-`` + the first 12 hex digits of SHA-256 of the bearer token, or None when the
    header is absent or empty.

    ``Authorization: Bearer sk-abc`` and a bare ``sk-abc`` give the same id. 48 bits of a
    hash cannot be turned back into the key, yet tell thousands of keys apart.
    """
    if not authorization:
        return None
    parts = authorization.split(None, 1)
    token = parts[1].strip() if len(parts) == 2 and parts[0].lower() == "bearer" else authorization.strip()
    if not token or token.lower() == "bearer":
        return None
    return "key-" + hashlib.sha256(token.encode()).hexdigest()[:12]
