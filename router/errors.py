"""Exception hierarchy of slm-router.

Every error a client can see maps to OpenAI's error JSON shape
(``{"error": {"message", "type", "param", "code"}}``) through :meth:`RouterError.to_openai`,
so the server turns any of them into a proper HTTP answer in one handler.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RouterError",
    "PolicyError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "TierUnavailableError",
    "TierForbiddenError",
    "PermissionDeniedError",
    "UpstreamError",
    "PayloadTooLargeError",
    "AuthenticationError",
    "upstream_error_for",
    "RateLimitError",
    "BudgetExceededError",
    "StoreUnavailableError",
]


class RouterError(Exception):
    """Base class of every error slm-router raises on purpose.

    Attributes:
        status_code: HTTP status the server answers with.
        error_type: OpenAI ``error.type`` (e.g. ``invalid_request_error``).
        code: OpenAI ``error.code``, a short machine-readable reason, or None.
        param: the request field at fault, or None.
        retry_after_s: when the client may try again (s), sent as ``Retry-After``
            (:attr:`headers`); None: no such header.
    """

    status_code = 500
    error_type = "server_error"
    default_code: str | None = "internal_error"
    retry_after_s: float | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        if status_code is not None:
            self.status_code = status_code

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers of the error response: ``Retry-After`` when :attr:`retry_after_s` is set."""
        return retry_after_header(self.retry_after_s) if self.retry_after_s is not None else {}

    def to_openai(self) -> dict[str, Any]:
        """Return the error as OpenAI's JSON body: ``{"error": {...}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class PolicyError(RouterError):
    """The policy file is missing, unreadable or invalid; the message names file and field."""

    error_type = "policy_error"
    default_code = "invalid_policy"


class InvalidRequestError(RouterError):
    """The client's request is malformed (HTTP 400); fix the field named in ``param``."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class ModelNotFoundError(InvalidRequestError):
    """The requested ``model`` is neither ``auto`` nor a tier name (HTTP 404, as OpenAI answers)."""

    status_code = 404
    default_code = "model_not_found"


class TierUnavailableError(RouterError):
    """A tier cannot be called (no API key, unreachable) and the policy forbids a fallback (HTTP 503)."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "tier_unavailable"


class TierForbiddenError(RouterError):
    """The policy forbids the tier this request would need (a rule's ``forbid`` or the
    caller's ``allowed_tiers``), HTTP 403; the message names the rule or overlay."""

    status_code = 403
    error_type = "permission_error"
    default_code = "tier_forbidden"


class PermissionDeniedError(RouterError):
    """The caller's key is valid but may not use this endpoint (``GET /v1/policy`` needs an
    ``admin: true`` key when ``server.require_api_key`` is on), HTTP 403."""

    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class UpstreamError(RouterError):
    """The model behind a tier failed (HTTP 502); the message says which tier and why."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"


class AuthenticationError(RouterError):
    """The request carries no API key, or one this proxy does not know (HTTP 401, OpenAI's
    ``invalid_request_error`` / ``invalid_api_key``). The message never echoes the key."""

    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class PayloadTooLargeError(InvalidRequestError):
    """The request body is larger than the server accepts (HTTP 413)."""

    status_code = 413
    default_code = "request_too_large"


def upstream_error_for(status: int, message: str, retry_after_s: float | None = None) -> RouterError:
    """The client-visible error for a tier failure with HTTP-like ``status``: timeouts become
    504 ``upstream_timeout``, rate limits 429 ``upstream_rate_limited``, an unreachable or
    unauthorised tier 503 ``tier_unavailable``, a prompt over the tier's context window (the
    only 400 that is not the request's fault elsewhere: another tier may hold it) 400
    ``context_length_exceeded``, anything else 502 ``upstream_error``. With ``retry_after_s``
    (a busy tier that will have room soon, e.g. a full local queue) a 429 or 503 carries
    ``Retry-After`` (:func:`retry_after_header`)."""
    err = _upstream_error(status, message)
    if retry_after_s is not None and err.status_code in (429, 503):
        err.retry_after_s = retry_after_s
    return err


def retry_after_header(seconds: float) -> dict[str, str]:
    """``{"retry-after": N}``: ``seconds`` rounded up to whole seconds, at least 1 (RFC 9110's
    delay-seconds form)."""
    return {"retry-after": str(max(1, int(-(-seconds // 1))))}


def _upstream_error(status: int, message: str) -> RouterError:
    if status == 400:
        return InvalidRequestError(message, code="context_length_exceeded", param="messages")
    if status in (408, 504):
        return UpstreamError(message, code="upstream_timeout", status_code=504)
    if status == 429:
        return UpstreamError(message, code="upstream_rate_limited", status_code=429)
    if status == 503:
        return TierUnavailableError(message)
    return UpstreamError(message)
class RateLimitError(RouterError):
    """Too many requests for this API key (HTTP 429, ``Retry-After`` set); slow down and retry."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class BudgetExceededError(RouterError):
    """This API key's cloud budget is spent and the policy says ``budgets.on_exhausted: reject``
    (HTTP 429, OpenAI's ``insufficient_quota`` shape); wait for the next day/month or raise the limit."""

    status_code = 429
    error_type = "insufficient_quota"
    default_code = "budget_exceeded"


class StoreUnavailableError(RouterError):
    """Shared state (Redis) is unreachable and the policy says fail closed (HTTP 503)."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "store_unavailable"
