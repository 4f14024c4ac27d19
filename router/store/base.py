"""The request-log store interface."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .records import FeedbackRecord, RequestRecord, ShadowRecord

__all__ = ["BatchStore", "FeedbackStore", "RequestStore"]


class RequestStore(Protocol):
    """Durable log of requests and their model calls. Methods are synchronous (blocking I/O);
    the server calls them from a worker thread."""

    def record(self, request: RequestRecord) -> None:
        """Write one request and its ``calls`` atomically."""
        ...

    def requests(self, since: float | None = None, until: float | None = None) -> list[RequestRecord]:
        """Requests with ``since <= ts < until`` (Unix seconds), oldest first, calls attached."""
        ...

    def record_shadow(self, shadow: ShadowRecord) -> None:
        """Write one quality sample (written after its request, from a background task)."""
        ...

    def shadows(self, since: float | None = None, until: float | None = None) -> list[ShadowRecord]:
        """Quality samples of the requests with ``since <= ts < until`` (the request's
        arrival time, Unix seconds), oldest request first."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def health(self) -> dict:
        """``{"backend", "ok", ...}`` for ``/healthz``; ``ok`` False while records cannot
        reach the store (they are kept elsewhere until it returns)."""
        ...


@runtime_checkable
class BatchStore(Protocol):
    """A store that also writes several requests in one transaction or round trip (the log
    writer uses it for its batches, checked with ``isinstance``)."""

    def record_many(self, requests: list[RequestRecord]) -> None:
        """Write ``requests`` (with their calls) atomically."""
        ...


@runtime_checkable
class FeedbackStore(Protocol):
    """A store that also keeps explicit feedback on logged requests (``POST /v1/feedback``,
    checked with ``isinstance``; both shipped stores have it)."""

    def has_request(self, request_id: str) -> bool:
        """True when the request is in the log."""
        ...

    def record_feedback(self, feedback: FeedbackRecord) -> None:
        """Write one feedback row."""
        ...

    def feedback(self, since: float | None = None, until: float | None = None) -> list[FeedbackRecord]:
        """Feedback on the requests with ``since <= ts < until`` (the request's arrival, Unix s)."""
        ...
