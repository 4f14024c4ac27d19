"""The log-writer process: pricing and the SQLite write of finished requests, off the server's GIL.

Why a process (issue 17): pricing (litellm's price map and tokenizer) and the SQLite insert
are Python work on the writer thread, and every time that thread held the GIL the event
loop waited for it. With ``bench/proxy.py``'s fake backend at concurrency 1, a forced-tier
request's p50 fell from about 7.5-8.2 ms to 4.9-5.9 ms when the log write was switched
off (same process, interleaved A/B, 2-core AMD EPYC): most of it was waiting for the GIL,
not the write's own CPU. In a process of its own the write runs on another core; the server
only pickles the batch (tens of microseconds a record) and waits for the reply on the
writer thread, without the GIL.

Protocol (pickled tuples over a :class:`multiprocessing.connection.Connection`):
parent -> child ``("init", path)``, ``("policy", key, Policy)``, ``("batch", key, [Entry])``;
child -> parent ``("ready", pid)`` once litellm and the store are loaded, ``("done",
[(error text or None, Priced)])`` per batch. The child exits when the connection closes.

Nothing is lost: while the child starts, after it dies or when a batch does not pickle, the
caller writes in its own process (:meth:`LogProcess.write` returns None). A child that dies
is started again on the next batch; ``MAX_FAILURES`` deaths within ``FAILURE_WINDOW_S`` leave
the writer in-process for good (logged once). Run as ``python -m router.ledger.log_process <fd>``.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = ["LogProcess", "LogProcessError", "shared_process", "MAX_FAILURES", "FAILURE_WINDOW_S", "REPLY_TIMEOUT_S"]

log = logging.getLogger(__name__)

MAX_FAILURES = 3
"""Child deaths (or unanswered batches) within :data:`FAILURE_WINDOW_S` after which writes stay in-process."""
FAILURE_WINDOW_S = 60.0
REPLY_TIMEOUT_S = 60.0
"""Longest wait for a batch's reply (s): twice SQLite's 30 s busy timeout."""


class LogProcessError(Exception):
    """A record the log-writer process could not write (its store's error, as text)."""


class LogProcess:
    """The server's side of one log-writer process for the SQLite file ``path``.

    Thread-safe (one batch at a time); :meth:`write` blocks (call it on the writer thread).

    Args:
        path: the SQLite file the child writes (the same file the server reads).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._policies: list[tuple[Any, int]] = []  # (policy object, key) sent to this child
        self._next_key = 0
        self._failures: deque[float] = deque(maxlen=MAX_FAILURES)
        self._wanted = False  # launched and not closed: a dead child is started again on the next batch
        self.disabled_reason: str | None = None
        self.batches = 0  # batches written by the child

    # -- lifecycle ---------------------------------------------------------------------------
    def launch(self) -> None:
        """Start the child without waiting for it to load (idempotent). Until this is called
        (and again after :meth:`close`), :meth:`write` leaves every batch to the caller."""
        with self._lock:
            self._wanted = True
            if self._proc is None and self.disabled_reason is None:
                self._spawn()

    def _spawn(self) -> None:
        ours, theirs = Pipe(duplex=True)
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self._proc = subprocess.Popen([sys.executable, "-m", "router.ledger.log_process", str(theirs.fileno())],
                                      pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn, self._ready, self._policies = ours, False, []
        ours.send(("init", self.path))

    def _stop(self) -> None:
        conn, proc = self._conn, self._proc
        loading = not (self._ready or self._ready_waiting())
        self._conn = self._proc = None
        self._ready = False
        if conn is not None:
            conn.close()  # the child sees EOF and exits
        if proc is not None and loading and proc.poll() is None:
            proc.kill()  # still importing (seconds on a busy box): it holds no batch, nothing to wait for
            proc.wait()
        elif proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        """Stop the child after the batch in flight (it exits on EOF; killed after 10 s)."""
        with self._lock:
            self._wanted = False
            self._stop()

    def _failed(self, why: str) -> None:
        """The child died or stopped answering: drop it; too many deaths disable the process."""
        log.warning("the log-writer process failed (%s); writing in the server until it is restarted", why)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._stop()
        now = time.monotonic()
        self._failures.append(now)
        if len(self._failures) == MAX_FAILURES and now - self._failures[0] <= FAILURE_WINDOW_S:
            self.disabled_reason = f"{MAX_FAILURES} failures within {FAILURE_WINDOW_S:.0f} s, the last: {why}"
            log.error("the log-writer process is off: %s; the server writes the log itself", self.disabled_reason)

    def health(self) -> dict[str, Any]:
        """``{"mode", "pid", "batches", "disabled"}`` for ``/healthz``: ``mode`` is ``process``
        when the child writes, ``starting`` while it loads, ``in-process`` otherwise."""
        ready = self._ready or self._ready_waiting()
        mode = "in-process" if self.disabled_reason or not self._wanted else ("process" if ready else "starting")
        return {"mode": mode, "pid": self._proc.pid if self._proc is not None else None, "batches": self.batches,
                "disabled": self.disabled_reason}

    # -- writing -----------------------------------------------------------------------------
    def _policy_key(self, policy: Any) -> tuple[int, bool]:
        for known, key in self._policies:
            if known is policy:
                return key, False
        self._next_key += 1
        self._policies = [*self._policies[-3:], (policy, self._next_key)]  # a reload retires the old ones
        return self._next_key, True

    def _ready_waiting(self) -> bool:
        """True when the child's ``ready`` has arrived but no batch has read it yet (only
        looks: the writer thread alone receives, in :meth:`_is_ready`)."""
        conn = self._conn
        try:
            return conn is not None and not self._ready and conn.poll(0)
        except (OSError, ValueError):  # closed meanwhile
            return False

    def _is_ready(self) -> bool:
        if self._ready:
            return True
        assert self._conn is not None
        if not self._conn.poll(0):
            return False
        msg = self._conn.recv()
        if msg[0] != "ready":
            raise EOFError(f"the child could not start: {msg[1] if len(msg) > 1 else msg}")
        self._ready = True
        return True

    def write(self, policy: Any, entries: list) -> list[tuple[str | None, Any]] | None:
        """Price and write ``entries`` (:data:`router.ledger.log_batch.Entry`) in the child.

        Returns:
            Per entry (error text or None, :data:`router.ledger.log_batch.Priced`); None when
            the caller must write them itself: the child is off, still starting, died on
            this batch (then nothing of it is acknowledged) or the batch does not pickle.
        """
        with self._lock:
            if self.disabled_reason is not None or not self._wanted:
                return None
            if self._proc is None:
                self._spawn()  # after a death
            try:
                if not self._is_ready():
                    return None
                key, new = self._policy_key(policy)
                try:
                    frames = ([pickle.dumps(("policy", key, policy))] if new else []) + [
                        pickle.dumps(("batch", key, entries))]
                except Exception:
                    log.exception("a log batch does not pickle; writing it in the server")
                    if new:
                        self._policies.pop()
                    return None
                assert self._conn is not None
                for frame in frames:
                    self._conn.send_bytes(frame)
                if not self._conn.poll(REPLY_TIMEOUT_S):
                    raise TimeoutError(f"no reply within {REPLY_TIMEOUT_S:.0f} s")
                msg = self._conn.recv()
            except (OSError, EOFError, TimeoutError, pickle.UnpicklingError) as err:
                self._failed(f"{type(err).__name__}: {err}")
                return None
            self.batches += 1
            return msg[1]


_SHARED: dict[str, LogProcess] = {}
_SHARED_LOCK = threading.Lock()


def shared_process(path: str) -> LogProcess:
    """The one :class:`LogProcess` of this server for the SQLite file ``path`` (every router
    of a reloaded policy shares it; stopped at interpreter exit)."""
    key = str(Path(path).resolve())
    with _SHARED_LOCK:
        process = _SHARED.get(key)
        if process is None:
            process = _SHARED[key] = LogProcess(path)
        return process


@atexit.register
def _close_all() -> None:
    for process in list(_SHARED.values()):
        process.close()


def serve(conn: Connection) -> None:
    """The child: load the store and litellm, answer batches until the connection closes."""
    from ..store.sqlite import SQLiteStore
    from .log_batch import price_and_store, priced_fields

    kind, path = conn.recv()
    try:
        import litellm  # pricing's price map and tokenizers: loaded before 'ready', not on the first batch

        litellm.suppress_debug_info = True
        store = SQLiteStore(path)
    except Exception as err:
        conn.send(("failed", f"{type(err).__name__}: {err}"))
        return
    try:
        conn.send(("ready", os.getpid()))
    except OSError:  # the server stopped while this process was loading: nothing to write
        return
    policies: dict[int, Any] = {}
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            break
        if msg[0] == "policy":
            policies[msg[1]] = msg[2]
            continue
        _, key, entries = msg
        errors = price_and_store(entries, policies[key], store)
        conn.send(("done", [(None if e is None else f"{type(e).__name__}: {e}", priced_fields(record))
                            for (record, _, _), e in zip(entries, errors)]))
    store.close()


if __name__ == "__main__":
    import signal

    # Ctrl-C reaches the whole process group: the server drains its last batches through this
    # process at shutdown, and closing the connection is what stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:%(name)s (log writer): %(message)s")
    serve(Connection(int(sys.argv[1])))
