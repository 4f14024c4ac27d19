"""Policy sections ``api_keys`` and ``overlays``: proxy keys and their per-key changes."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from .base import _NAME, _SHA256_HEX, _Strict, hash_api_key
from .escalation import EscalationOverride
from .guards import BudgetLimit

__all__ = ["ApiKey", "Overlay"]


class ApiKey(_Strict):
    """A proxy API key (what clients send as ``Authorization: Bearer <key>``).

    Give ``sha256`` (the key's SHA-256 hex digest, so the file holds no secret) or ``key``
    (normally ``${ENV_VAR}``; only its hash is kept after loading). A ``key`` whose variable
    is unset disables the entry (``policy check`` warns).
    """

    name: str = Field(pattern=_NAME, description="caller name, logged with each request")
    sha256: str | None = Field(None, description="hex SHA-256 of the key")
    key: str | None = Field(None, description="the key itself (use ${ENV_VAR}); hashed at load")
    group: str | None = Field(None, pattern=_NAME, description="group name rules can match")
    overlay: str | None = Field(None, description="name of an entry under overlays")
    admin: bool = Field(False, description="may read GET /v1/policy when server.require_api_key is on")

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex_digest(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if not _SHA256_HEX.match(value):
                raise ValueError("sha256 must be 64 hex characters (see: slm-router policy hash-key)")
        return value

    @model_validator(mode="after")
    def _hash_plain_key(self) -> "ApiKey":
        if self.sha256 is not None and self.key is not None:
            raise ValueError("give either sha256 or key, not both")
        if self.key is not None:
            if self.key.strip():
                self.sha256 = hash_api_key(self.key.strip())
            self.key = None
        elif self.sha256 is None and "key" not in self.model_fields_set:
            raise ValueError("an api_keys entry needs sha256 (hex digest) or key (${ENV_VAR})")
        return self

    @property
    def enabled(self) -> bool:
        """False when the key came from an unset environment variable."""
        return self.sha256 is not None


class Overlay(_Strict):
    """Per-key changes to the policy; unset fields keep the policy's values."""

    threshold: float | None = Field(None, ge=0, le=1, description="classifier threshold for this key")
    allowed_tiers: list[str] | None = Field(None, description="tiers this key may use; others are forbidden")
    escalation: EscalationOverride | None = None
    budgets: "BudgetLimit | None" = Field(
        None, description="this key's cloud budget (enforced when budgets.enabled; overrides budgets.default)")
