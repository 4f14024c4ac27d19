"""Supervised SLM worker processes: the server's side of :mod:`router.providers.llama_worker`.

A :class:`WorkerPool` runs ``size`` worker processes for one in-process model, hands each
request to an idle worker (or a bounded queue), relays its tokens and log-probabilities,
and restarts a worker that exits. A request whose worker dies gets
:class:`WorkerCrashedError` (the tier client turns it into a 503 that falls back to the
cloud tier); ``max_crashes`` deaths within ``crash_window_s`` mark the pool unavailable
(:class:`LocalTierUnavailableError`) instead of a restart loop. The pool is thread-safe and
bound to no event loop: one reader thread per worker delivers messages.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

from .extra_buffers import Resolution, resolve
from .requantize import Weights, resolve_weights
from .llama_runtime import LocalCompletion, TokenStep
from .local_errors import LocalQueueFullError, LocalTierError, LocalTierUnavailableError, WorkerCrashedError
from .worker_messages import OnEnd, deliver, exit_reason, final_count, result_of

log = logging.getLogger(__name__)

__all__ = ["WorkerSpec", "WorkerPool", "LocalTierError", "WorkerCrashedError", "LocalTierUnavailableError",
           "LocalQueueFullError"]


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """How to run one model: :class:`LlamaRuntime` arguments (``n_threads`` None = the
    cores divided among the pool's workers) and the pool's limits (see
    :class:`router.policy.LocalRuntime` for units and defaults)."""

    model_path: str
    n_ctx: int = 2048
    n_threads: int | None = None
    top_logprobs: int = 2
    repeat_penalty: float = 1.1
    extra_buffers: str = "auto"
    requantize: str = "off"
    parallel: int = 1
    queue: int = 32
    on_queue_full: str = "cloud"
    max_crashes: int = 3
    crash_window_s: float = 60.0


@dataclass(eq=False)
class _Job:
    rid: int
    payload: tuple
    sink: Callable[[tuple], None]  # called on reader threads
    worker: "_Worker | None" = None


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen
    conn: Any
    ready: bool = False
    job: _Job | None = None
    info: dict = field(default_factory=dict)
    send_lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, msg: tuple) -> None:
        with self.send_lock:
            try:
                self.conn.send(msg)
            except OSError:
                pass  # the reader thread reports the exit


class WorkerPool:
    """Worker processes for one model.

    Args:
        spec: the model and the pool's limits.
        resolver: ``(mode, model_path) -> Resolution`` deciding extra buffers (the probe).
        weights: ``(requantize, model_path) -> Weights`` choosing the file the workers load
            (:func:`router.providers.requantize.resolve_weights`).
        on_crash: ``(outcome) -> None``, called outside the lock once per worker death
            while running: ``restarted`` or ``stopped`` (``max_crashes`` reached); must not raise.
    """

    def __init__(self, spec: WorkerSpec, resolver: Callable[[str, str], Resolution] = resolve,
                 weights: Callable[[str, str], Weights] = resolve_weights,
                 on_crash: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self._on_crash = on_crash
        self._resolver = resolver
        self._weights = weights
        self.weights: Weights | None = None
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._start_lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._waiting: deque[_Job] = deque()
        self._crashes: deque[tuple[float, str]] = deque(maxlen=20)
        self._next_rid = 0
        self._closing = False
        self.restarts = 0
        self.unavailable_reason: str | None = None
        self.extra_buffers: Resolution | None = None
        _POOLS.append(self)

    # -- lifecycle ---------------------------------------------------------------------------
    def launch(self) -> None:
        """Choose the weights file (re-encoded once if the policy asks), decide extra
        buffers on it (probe or cache) and start the worker processes without waiting for
        them to load their model (idempotent; the re-encoding and the probe, when they run,
        block a few seconds). One worker starts here, the rest once it is ready: they load on
        one core while the server imports litellm on another (issue 17: start-up)."""
        with self._start_lock:
            if not self._started.is_set():
                self.weights = self._weights(self.spec.requantize, self.spec.model_path)
                self.extra_buffers = self._resolver(self.spec.extra_buffers, self.weights.path)
                with self._lock:
                    self._spawn()  # the others once it is ready (see _on_message)
                self._started.set()

    def start(self, timeout_s: float = 120.0) -> None:
        """:meth:`launch`, then wait until one worker is ready (idempotent; blocking, about
        1 s, a few more the first time the probe runs)."""
        self.launch()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self.unavailable_reason or any(w.ready for w in self._workers):
                    return
            time.sleep(0.01)

    def _spawn(self) -> None:
        """Start one worker process (call with ``_lock`` held)."""
        spec = {"model_path": self.weights.path if self.weights else self.spec.model_path, "n_ctx": self.spec.n_ctx,
                "n_threads": self.spec.n_threads or (  # one worker: llama.cpp's default, as in process
                    max(1, (os.cpu_count() or 1) // self.spec.parallel) if self.spec.parallel > 1 else None),
                "top_logprobs": self.spec.top_logprobs, "repeat_penalty": self.spec.repeat_penalty,
                "use_extra_bufts": bool(self.extra_buffers and self.extra_buffers.enabled)}
        ours, theirs = Pipe(duplex=True)
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        proc = subprocess.Popen(
            [sys.executable, "-m", "router.providers.llama_worker", str(theirs.fileno()), json.dumps(spec)],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        worker = _Worker(proc, ours)
        self._workers.append(worker)
        threading.Thread(target=self._read, args=(worker,), name=f"slm-worker-{proc.pid}", daemon=True).start()

    def close(self) -> None:
        """Stop the workers (the queued requests fail as unavailable)."""
        with self._lock:
            self._closing = True
            workers, self._workers = list(self._workers), []
        for w in workers:  # the reader threads see the pipe close and exit
            w.proc.terminate()
        for w in workers:
            try:
                w.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                w.proc.kill()

    # -- reader threads ----------------------------------------------------------------------
    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                msg = worker.conn.recv()
            except (EOFError, OSError, TypeError):  # TypeError: the pipe was closed under recv
                break
            try:
                self._on_message(worker, msg)
            except Exception:  # a bug here must not stop the worker's messages
                log.exception("SLM worker %s: message %r not handled", worker.proc.pid, msg[:2])
        worker.conn.close()
        self._on_exit(worker, worker.proc.wait())

    def _on_message(self, worker: _Worker, msg: tuple) -> None:
        kind = msg[0]
        if kind == "ready":
            with self._lock:
                worker.ready, worker.info = True, msg[1]
                while len(self._workers) < self.spec.parallel and not self._closing:
                    self._spawn()  # the rest of the pool, after the first (see launch)
                self._dispatch(worker)
            return
        job = worker.job
        if job is None or msg[1] != job.rid:
            return
        if kind in ("done", "error"):
            with self._lock:
                worker.job = None
                self._dispatch(worker)
        deliver(job, msg)

    def _on_exit(self, worker: _Worker, code: int) -> None:
        reason = f"the SLM worker (pid {worker.proc.pid}) {exit_reason(code)}"
        failed: list[tuple[_Job, tuple]] = []
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
            if self._closing:
                return
            now = time.time()
            self._crashes.append((now, reason))
            recent = [t for t, _ in self._crashes if now - t <= self.spec.crash_window_s]
            if worker.job is not None:
                failed.append((worker.job, ("crashed", reason)))
            if len(recent) >= self.spec.max_crashes:
                self.unavailable_reason = (f"{len(recent)} worker crashes within {self.spec.crash_window_s:g} s "
                                           f"(last: {reason}); not restarted")
                failed += [(j, ("unavailable", self.unavailable_reason)) for j in self._waiting]
                failed += [(w.job, ("unavailable", self.unavailable_reason)) for w in self._workers if w.job]
                self._waiting.clear()
                self._closing = True  # the other workers stop too: the tier is out until restart
                for w in self._workers:
                    w.proc.terminate()
                outcome = "stopped"
            else:
                self.restarts += 1
                self._spawn()
                outcome = "restarted"
        for job, msg in failed:
            deliver(job, msg)
        if self._on_crash is not None:
            self._on_crash(outcome)  # the server counts it (Prometheus)

    def _dispatch(self, worker: _Worker) -> None:
        """Give ``worker`` the next waiting job (call with ``_lock`` held)."""
        if worker.ready and worker.job is None and self._waiting:
            job = self._waiting.popleft()
            worker.job, job.worker = job, worker
            worker.send(job.payload)

    # -- requests ----------------------------------------------------------------------------
    def _submit(self, messages: list | None, args: dict, stream: bool, sink: Callable[[tuple], None]) -> _Job:
        with self._lock:
            if self.unavailable_reason:
                raise LocalTierUnavailableError(self.unavailable_reason)
            self._next_rid += 1
            rid = self._next_rid
            job = _Job(rid, ("gen", rid, messages, args, stream) if messages is not None else ("ping", rid), sink)
            idle = next((w for w in self._workers if w.ready and w.job is None), None)
            if idle is not None and not self._waiting:
                idle.job, job.worker = job, idle
                idle.send(job.payload)
            elif len(self._waiting) < self.spec.queue:
                self._waiting.append(job)
            else:
                raise LocalQueueFullError(
                    f"{self.spec.parallel} sequence(s) busy and {len(self._waiting)} request(s) queued "
                    f"(runtime.queue); runtime.on_queue_full is {self.spec.on_queue_full}",
                    fallback=self.spec.on_queue_full == "cloud")
        return job

    def _cancel(self, job: _Job) -> bool:
        """Stop ``job``: drop it from the queue, or ask its worker to stop. Returns True when
        a worker runs it (its final ``done``, with the tokens generated so far, follows)."""
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
                return False
            worker = job.worker if job.worker is not None and job.worker.job is job else None
        if worker is not None:
            worker.send(("cancel", job.rid))
        return worker is not None

    async def stream(self, messages: list, args: dict, steps: bool = True,
                     on_end: Callable[[int, int], None] | None = None) -> AsyncIterator[TokenStep | LocalCompletion]:
        """Generate on a worker: yields each :class:`TokenStep` as it is produced (when
        ``steps``), then the :class:`LocalCompletion` (its ``steps`` empty when streamed).
        Closing the iterator early (or cancelling its reader) cancels the generation.

        ``on_end(prompt_tokens, completion_tokens)`` is called once when the generation is
        over: with the finished completion's counts, with the counts the worker reports
        after it stopped for a cancel (a background task waits up to 5 s for that report),
        or with (0, 0) when it failed or never left the queue.

        Raises:
            WorkerCrashedError, LocalTierUnavailableError, LocalQueueFullError: see above.
            ContextWindowExceededError: the prompt does not fit ``n_ctx``.
            ValueError: the worker rejected the request (e.g. a bad grammar).
        """
        end = OnEnd(on_end)
        if not self._started.is_set():
            await asyncio.to_thread(self.start)
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[tuple] = asyncio.Queue()
        try:
            job = self._submit(messages, args, steps, lambda msg: loop.call_soon_threadsafe(inbox.put_nowait, msg))
        except BaseException:
            end(0, 0)
            raise
        finished = False
        try:
            while True:
                msg = await inbox.get()
                if msg[0] == "step":
                    yield msg[2]
                    continue
                finished = True
                end.final(msg)
                yield result_of(msg)
                return
        finally:
            if not finished:
                if self._cancel(job) and on_end is not None:
                    loop.create_task(final_count(inbox, end))
                else:
                    end(0, 0)

    async def generate(self, messages: list, args: dict,
                       on_end: Callable[[int, int], None] | None = None) -> LocalCompletion:
        """One whole generation (its steps included); ``on_end`` as in :meth:`stream`.
        Raises as :meth:`stream`."""
        async for item in self.stream(messages, args, steps=False, on_end=on_end):
            if isinstance(item, LocalCompletion):
                return item
        raise AssertionError("unreachable")

    async def round_trip_ms(self) -> float:
        """One empty message to an idle worker and its answer back, through the same queue,
        pipe, reader thread and event-loop hand-off as a generation's tokens (ms)."""
        if not self._started.is_set():
            await asyncio.to_thread(self.start)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        t = time.perf_counter()
        self._submit(None, {}, False, lambda msg: loop.call_soon_threadsafe(done.set_result, msg))
        await done
        return (time.perf_counter() - t) * 1000

    def generate_blocking(self, messages: list, args: dict, timeout_s: float | None = None) -> LocalCompletion:
        """:meth:`generate` for threads without an event loop. Raises as :meth:`stream`,
        plus ``queue.Empty`` after ``timeout_s``."""
        self.start()
        inbox: queue.Queue[tuple] = queue.Queue()
        job = self._submit(messages, args, False, inbox.put)
        try:
            return result_of(inbox.get(timeout=timeout_s))
        except BaseException:
            self._cancel(job)
            raise

    # -- health ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``ok`` (False once unavailable), ``state`` (``stopped`` before the first start,
        ``starting``, ``ready``, ``unavailable``), ``restarts``, recent ``crashes`` (Unix
        time, reason), ``unavailable_reason``, each worker's pid/ready/busy, the queue, and
        the extra-buffer decision and the weights file loaded."""
        with self._lock:
            if self.unavailable_reason:
                state = "unavailable"
            elif not self._started.is_set():
                state = "stopped"
            else:
                state = "ready" if any(w.ready for w in self._workers) else "starting"
            return {
                "ok": self.unavailable_reason is None,
                "state": state,
                "model_path": self.spec.model_path,
                "parallel": self.spec.parallel,
                "restarts": self.restarts,
                "crashes": [{"at": round(t, 3), "reason": r} for t, r in list(self._crashes)[-5:]],
                "unavailable_reason": self.unavailable_reason,
                "workers": [{"pid": w.proc.pid, "ready": w.ready, "busy": w.job is not None,
                             "load_ms": round(w.info.get("load_ms", 0.0), 1),
                             "use_extra_bufts": w.info.get("use_extra_bufts")} for w in self._workers],
                "queue": {"waiting": len(self._waiting), "limit": self.spec.queue},
                "extra_buffers": self.extra_buffers.as_dict() if self.extra_buffers else None,
                "weights": self.weights.as_dict() if self.weights else None,
            }


_POOLS: list[WorkerPool] = []


@atexit.register
def _close_all() -> None:
    for pool in list(_POOLS):
        pool.close()
