"""Request log on Redis: one stream, ``<prefix>:requests``, shared by every replica.

Each request is one stream entry with a single field ``r``: the record as one JSON line
(:mod:`.codec`), calls included. ``report`` (and any other reader) reads the stream with
``XRANGE``. While Redis is unreachable, records go to a local :class:`~.spool.DiskSpool`
and a background thread flushes them to the stream once Redis answers again, so no
request goes unlogged. A record written twice (a flush cut short) is read once: readers
keep the first entry per request id.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, fields
from typing import Any

from ..errors import StoreUnavailableError
from ..policy import StoreConfig
from .records import FeedbackRecord, RequestRecord, ShadowRecord
from ..state.redis import LinkHealth, redis_client_options
from .codec import record_from_json, record_to_json
from .spool import DiskSpool

__all__ = ["RedisStore"]

log = logging.getLogger(__name__)

_PAGE = 1000


class RedisStore:
    """:class:`~router.store.base.RequestStore` on a Redis stream with a disk spool.

    Args:
        config: the policy's ``store`` (url, prefix, spool_dir, timeouts).
        flush_interval_s: how often the spool is retried; ``config.retry_interval_s`` when None.
        writer: False for a reader (``report``): no spool folder, no flusher thread;
            :meth:`record` then raises when Redis is down.
    """

    def __init__(self, config: StoreConfig, flush_interval_s: float | None = None, writer: bool = True) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.config = config
        self.stream = f"{config.prefix}:requests"
        self.shadow_stream = f"{config.prefix}:shadows"
        self.feedback_stream = f"{config.prefix}:feedback"
        self._redis = redis.Redis.from_url(config.url, retry=Retry(NoBackoff(), 0), **redis_client_options(config))
        self._errors = (redis.RedisError, OSError)
        self.link = LinkHealth(config.retry_interval_s)
        self.spool = DiskSpool(config.spool_dir) if writer else None
        self.spooled = 0  # records this process sent to the spool
        self.flushed = 0  # spooled records written to Redis later
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._interval = flush_interval_s or config.retry_interval_s
        self._thread = threading.Thread(target=self._flush_loop, name="slm-router-spool", daemon=True)
        if writer:
            self._thread.start()

    # -- writing -------------------------------------------------------------------------
    def record(self, request: RequestRecord) -> None:
        """Append the record to the stream, or to the disk spool when Redis is unreachable.

        Raises:
            OSError: Redis is down and the spool cannot be written either.
            StoreUnavailableError: Redis is down and this store is a reader.
        """
        self._append([request])

    def record_many(self, requests: list[RequestRecord]) -> None:
        """Append several records in one round trip (a pipeline), or spool them all when
        Redis is unreachable. Raises as :meth:`record`."""
        self._append(requests)

    def _append(self, requests: list[RequestRecord]) -> None:
        lines = [record_to_json(r) for r in requests]
        if self.link.allow():
            try:
                self._write_lines(lines)
            except self._errors as err:
                self.link.failed(err)
            else:
                self.link.succeeded()
                if self.spooled > self.flushed:
                    self._wake.set()
                return
        if self.spool is None:
            raise StoreUnavailableError(f"Redis at {self.config.url} is unreachable: {self.link.error}")
        for line in lines:
            self.spool.append(line)
            self.spooled += 1

    def _write_lines(self, lines: list[str]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for line in lines:
            pipe.xadd(self.stream, {"r": line})
        pipe.execute()

    def flush(self) -> int:
        """Write spooled records to Redis now; returns how many (0 when Redis is still down)."""
        with self._flush_lock:
            if self.spool is None or not self.spool.has_pending() or not self.link.allow():
                return 0
            try:
                n = self.spool.drain(self._write_lines)
            except self._errors as err:
                self.link.failed(err)
                return 0
            self.link.succeeded()
        if n:
            self.flushed += n
            log.warning("flushed %d spooled log records to Redis", n)
        return n

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the flusher die
                log.exception("spool flush failed")

    def record_shadow(self, shadow: ShadowRecord) -> None:
        """Append a quality sample to the ``<prefix>:shadows`` stream. Samples are best
        effort: while Redis is down one is dropped with a warning (requests are never)."""
        try:
            self._redis.xadd(self.shadow_stream, {"s": json.dumps(asdict(shadow), ensure_ascii=False)})
        except self._errors as err:
            log.warning("quality sample of request %s dropped: Redis unreachable (%s)", shadow.request_id, err)

    def shadows(self, since: float | None = None, until: float | None = None) -> list[ShadowRecord]:
        """Quality samples taken in ``[since, until)`` (Unix s), oldest first.

        Raises:
            StoreUnavailableError: Redis is unreachable.
        """
        lo = since if since is not None else float("-inf")
        hi = until if until is not None else float("inf")
        known = {f.name for f in fields(ShadowRecord)}
        try:
            entries = self._redis.xrange(self.shadow_stream, min="-", max="+")
        except self._errors as err:
            raise StoreUnavailableError(f"cannot read quality samples from Redis at {self.config.url}: {err}") from err
        out = []
        for _, entry in entries:
            data = json.loads(entry[b"s"])
            sample = ShadowRecord(**{k: v for k, v in data.items() if k in known})
            if lo <= sample.ts < hi:
                out.append(sample)
        return sorted(out, key=lambda x: x.ts)

    def has_request(self, request_id: str) -> bool:
        """True when the request is in the stream (read newest first, a page at a time:
        feedback usually follows its request closely; an unknown id reads the whole stream).

        Raises:
            StoreUnavailableError: Redis is unreachable.
        """
        end = "+"
        try:
            while True:
                page = self._redis.xrevrange(self.stream, max=end, min="-", count=_PAGE)
                for _, entry in page:
                    line = entry.get(b"r", b"")
                    if request_id.encode() in line and json.loads(line).get("id") == request_id:
                        return True
                if len(page) < _PAGE:
                    return False
                end = "(" + page[-1][0].decode()
        except self._errors as err:
            raise StoreUnavailableError(f"cannot read the request log from Redis at {self.config.url}: {err}") from err

    def record_feedback(self, feedback: FeedbackRecord) -> None:
        """Append feedback to the ``<prefix>:feedback`` stream.

        Raises:
            StoreUnavailableError: Redis is unreachable (the caller gets a 503 and may retry).
        """
        try:
            self._redis.xadd(self.feedback_stream, {"f": json.dumps(asdict(feedback), ensure_ascii=False)})
        except self._errors as err:
            raise StoreUnavailableError(f"cannot write feedback to Redis at {self.config.url}: {err}") from err

    def feedback(self, since: float | None = None, until: float | None = None) -> list[FeedbackRecord]:
        """Feedback on the requests that arrived in ``[since, until)`` (Unix s), oldest first.

        Raises:
            StoreUnavailableError: Redis is unreachable.
        """
        known = {f.name for f in fields(FeedbackRecord)}
        try:
            entries = self._redis.xrange(self.feedback_stream, min="-", max="+")
        except self._errors as err:
            raise StoreUnavailableError(f"cannot read feedback from Redis at {self.config.url}: {err}") from err
        ids = {r.id for r in self.requests(since, until)} if since is not None or until is not None else None
        out = []
        for _, entry in entries:
            data = json.loads(entry[b"f"])
            item = FeedbackRecord(**{k: v for k, v in data.items() if k in known})
            if ids is None or item.request_id in ids:
                out.append(item)
        return out

    # -- reading -------------------------------------------------------------------------
    def requests(self, since: float | None = None, until: float | None = None) -> list[RequestRecord]:
        """Requests in ``[since, until)`` (Unix s), oldest first, one per request id.

        Raises:
            StoreUnavailableError: Redis is unreachable.
        """
        lo = since if since is not None else float("-inf")
        hi = until if until is not None else float("inf")
        seen: dict[str, RequestRecord] = {}
        start = "-"
        try:
            while True:
                page = self._redis.xrange(self.stream, min=start, max="+", count=_PAGE)
                for entry_id, fields in page:
                    try:
                        record = record_from_json(fields[b"r"])
                    except (KeyError, ValueError) as err:
                        log.warning("skipping unreadable log entry %s: %s", entry_id, err)
                        continue
                    if lo <= record.ts < hi and record.id not in seen:
                        seen[record.id] = record
                if len(page) < _PAGE:
                    break
                start = "(" + page[-1][0].decode()
        except self._errors as err:
            raise StoreUnavailableError(f"cannot read the request log from Redis at {self.config.url}: {err}") from err
        return sorted(seen.values(), key=lambda r: r.ts)

    # -- lifecycle -----------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``{"backend": "redis", "ok", "spooled"}``: ``spooled`` records wait on local disk."""
        out: dict[str, Any] = {"backend": "redis", **self.link.describe()}
        if not self.link.ok:
            out["ok"] = False
        pending = self.spool.pending() if self.spool is not None else 0
        out["spooled"] = pending
        if pending:
            out["ok"] = False
        return out

    def close(self) -> None:
        """Stop the flusher, try a last flush, release the spool (unflushed files stay on
        disk for the next process) and the connection."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.spool is not None:
            try:
                self.flush()
            except Exception:
                log.exception("final spool flush failed")
            self.spool.close()
        self._redis.close()
