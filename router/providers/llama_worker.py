"""The SLM worker process: one :class:`LlamaRuntime` serving generation requests over a
pipe, so that a crash of llama.cpp (SIGSEGV, SIGILL, abort) kills this process, never the
server. :mod:`router.providers.worker_pool` starts, feeds and restarts it.

Messages are tuples pickled through a :class:`multiprocessing.connection.Connection`:

- server -> worker: ``("gen", rid, messages, args, stream)``, ``("cancel", rid)``,
  ``("ping", rid)`` (answered ``("done", rid, None)`` at once);
- worker -> server: ``("ready", info)`` once the model is loaded (``info``: pid, load_ms,
  use_extra_bufts, system_info); per token while ``stream``: ``("step", rid, step)`` (a
  :class:`TokenStep`); at the end ``("done", rid, completion)`` (a :class:`LocalCompletion`,
  its steps included unless they were streamed) or ``("error", rid, kind, message)`` with
  ``kind`` ``context_window`` or ``bad_request``.

Run as ``python -m router.providers.llama_worker <fd> <json spec>``; the worker exits when
the server's end of the pipe closes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["serve"]


def serve(conn: Connection, spec: dict[str, Any]) -> None:
    """Load the model described by ``spec`` (``LlamaRuntime`` keyword arguments plus
    ``model_path``) and answer requests until the pipe closes."""
    from .llama_runtime import ContextWindowExceededError, LlamaRuntime

    started = time.perf_counter()
    runtime = LlamaRuntime(**spec)
    runtime.load()
    runtime.generate([{"role": "user", "content": "Hi"}], max_tokens=1)  # first decode's one-off costs, before "ready"
    from .extra_buffers import system_info

    conn.send(("ready", {"pid": os.getpid(), "load_ms": (time.perf_counter() - started) * 1000,
                         "use_extra_bufts": runtime.use_extra_bufts, "system_info": system_info()}))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "ping":  # the pipe's round trip, as the server sees it (bench/local_tier.py)
            conn.send(("done", msg[1], None))
            continue
        if msg[0] != "gen":
            continue  # a cancel for a request that already ended
        _, rid, messages, args, stream = msg
        cancel = threading.Event()

        def on_step(step, rid=rid, stream=stream, cancel=cancel) -> None:
            try:
                if stream:
                    conn.send(("step", rid, step))
                while conn.poll():
                    late = conn.recv()
                    if late[0] == "cancel" and late[1] == rid:
                        cancel.set()
            except (EOFError, OSError):  # the server is gone: so is this worker
                os._exit(0)

        try:
            out = runtime.generate(messages, cancel=cancel, on_step=on_step, **args)
        except ContextWindowExceededError as err:
            conn.send(("error", rid, "context_window", str(err)))
            continue
        except (ValueError, TypeError) as err:  # e.g. a grammar llama.cpp cannot parse
            conn.send(("error", rid, "bad_request", f"{type(err).__name__}: {err}"))
            continue
        if stream:
            out.steps = []
        conn.send(("done", rid, out))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])), json.loads(sys.argv[2]))
