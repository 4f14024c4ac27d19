"""Failures of the in-process tier itself (not of the request), raised by
:class:`router.providers.worker_pool.WorkerPool` and mapped by the tier client to a
:class:`TierCallError` that falls back to another tier (or not: ``fallback``); and
:class:`LocalRequestError`, a request the in-process tier cannot serve as asked."""

from __future__ import annotations

__all__ = ["LocalTierError", "WorkerCrashedError", "LocalTierUnavailableError", "LocalQueueFullError",
           "LocalRequestError"]


class LocalTierError(RuntimeError):
    """A failure of the local tier itself (not of the request): ``code`` names it,
    ``status`` is the HTTP-like status, ``fallback`` says whether another tier may answer,
    ``retry_after_s`` when the same call may succeed (s; None: not known)."""

    code = "local_tier_error"
    status = 503
    fallback = True
    retry_after_s: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(f"{self.code}: {message}")


class WorkerCrashedError(LocalTierError):
    """The worker process generating the request died (signal or exit)."""

    code = "local_worker_crashed"


class LocalTierUnavailableError(LocalTierError):
    """The pool stopped restarting workers after repeated crashes, or could not start."""

    code = "local_tier_unavailable"


class LocalQueueFullError(LocalTierError):
    """Every sequence is busy and the queue is full; ``fallback`` per ``on_queue_full``.
    ``retry_after_s`` (1 s): when a client that gets this error may try again; a local answer
    takes about a second on the default model (README, "Local tier speed")."""

    code = "local_queue_full"
    retry_after_s = 1.0

    def __init__(self, message: str, fallback: bool) -> None:
        super().__init__(message)
        self.fallback = fallback
        self.status = 503 if fallback else 429


class LocalRequestError(ValueError):
    """The in-process tier cannot serve this request as asked: a ``response_format`` schema
    llama.cpp's converter cannot turn into a grammar (e.g. a ``pattern`` without ``^...$``),
    or a grammar llama.cpp cannot parse. ``status_code`` 400 makes litellm raise it as its
    ``BadRequestError``, which the tier client reads as the request's fault: a routed request
    goes to the cloud tier instead, a request naming the local tier gets a 400."""

    status_code = 400
