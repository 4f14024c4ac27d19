"""Policy sections ``server``, ``log`` and ``store``: the HTTP edge and where requests are logged."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import _Strict

__all__ = ["ServerConfig", "LogConfig", "StoreConfig"]


class ServerConfig(_Strict):
    """HTTP surface of the proxy itself: limits and client authentication."""

    max_request_bytes: int = Field(
        4_000_000, ge=1024, description="largest accepted request body (bytes); larger gets 413"
    )
    require_api_key: bool = Field(
        False,
        description="answer 401 to /v1/* requests whose Bearer key is neither in api_keys nor in "
        "the environment variable named by api_keys_env",
    )
    api_keys_env: str = Field(
        "SLM_ROUTER_API_KEYS", description="environment variable holding extra proxy keys, comma-separated"
    )
    strict_requests: bool = Field(
        False, description="answer 400 naming the field to a request with fields this router does not forward "
                           "(api_base, api_key, unknown ones, extra keys inside tools[]); false drops them and "
                           "names them in x-router-reason"
    )


class LogConfig(_Strict):
    """Where every request and model call is recorded (``path`` is used by the sqlite store)."""

    store: Literal["sqlite", "redis"] | None = Field(
        None, description="older spelling of the top-level 'store' choice; must agree with it when both are set"
    )
    path: str = Field("slm-router.sqlite3", description="SQLite file, relative to the working dir")
    writer: Literal["process", "thread"] = Field(
        "process",
        description="who prices and writes finished requests to a SQLite log: 'process' (default) = a log-writer "
        "process of its own, so the server's event loop never waits for that work; 'thread' = a thread of the "
        "server. A Redis log, or SQLite ':memory:', is always written by the thread",
    )
    keep_for_learning: Literal["none", "embedding", "text"] = Field(
        "embedding",
        description="what each request row keeps for 'slm-router learn': 'none'; 'embedding' (default) = the "
        "request's embedding vector as the scorer computed it and its text features, no text; 'text' = also the "
        "scored text and the answers (verifier training)",
    )


class StoreConfig(_Strict):
    """Where shared state lives: the request log, caches, budgets and rate limits.

    ``sqlite`` (embedded default): the log in ``log.path``, the rest in process memory (one
    process). ``redis``: everything on the Redis at ``url``, shared by every replica. The
    YAML may say just ``store: sqlite`` or ``store: redis``.
    """

    backend: Literal["sqlite", "redis"] = "sqlite"
    url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL (redis://, rediss://, unix://)")
    prefix: str = Field("slm-router", min_length=1, description="prefix of every Redis key")
    spool_dir: str = Field(
        "slm-router-spool", description="log records wait here on local disk while Redis is unreachable"
    )
    timeout_ms: float = Field(
        1000, gt=0, description="Redis connect and command timeout (ms); a timeout counts as an outage"
    )
    retry_interval_s: float = Field(
        1.0, gt=0, description="after a Redis failure, seconds before it is tried again (meanwhile: degraded)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"backend": value} if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        """A URL redis-py can open: scheme redis, rediss or unix, a numeric port (checked
        here, so ``policy check`` names it; ``serve`` died on it with a ValueError). The value
        is never echoed: it may hold a password."""
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
        except ValueError:
            raise ValueError("the port of the Redis URL is not a number from 0 to 65535") from None
        return value
