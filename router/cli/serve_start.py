"""What ``slm-router serve`` does before it imports the server: check the policy while the
models load elsewhere.

Start-up to first answer is mostly imports in one process (litellm, FastAPI, scikit-learn for
the classifier), so the work that can run in other processes starts first (issue 17): the
in-process tiers' worker processes begin loading their model as soon as the policy's schema
is valid, and the classifier artifact is loaded once in a child process to prove it loads
(the policy check's artifact step), while this process checks files and prices and imports
the server. The server then loads the classifier itself once it answers
(:meth:`router.pipeline.Router.warm_up_routing`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from ..policy import Policy
from ..policy.check import CheckReport, check_policy_file
from ..providers.runtimes import launch_runtimes

__all__ = ["checked_policy", "artifact_loads"]

_LOAD = "import os, sys; os.nice(10); from router.scoring.artifact import load_artifact; load_artifact(sys.argv[1])"


def artifact_loads(location: str) -> subprocess.Popen:
    """A child process that loads the classifier artifact at ``location`` and exits 0 when it
    loads (its output is discarded; a failure is reported by the policy check). It runs at
    nice 10: it only proves the file loads, and must not take CPU from this process's import
    of litellm and the server, which the first answer waits for."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", _LOAD, location], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def checked_policy(path: Path, launch: bool) -> CheckReport:
    """The report of ``slm-router policy check`` on ``path`` (the same findings); with
    ``launch``, the in-process tiers' workers are launched once the schema is valid and the
    artifact is loaded in a child process meanwhile (when it fails to load, the check runs
    again in this process, which names the broken file).

    Launched workers of a refused policy stop when the process exits.
    """
    if not launch:
        return check_policy_file(path)
    report = check_policy_file(path, deployment=False)
    if report.errors or report.policy is None:
        return report
    launch_runtimes(report.policy)
    probe = artifact_loads(str(report.policy.routing.classifier.artifact))
    report = check_policy_file(path, load_artifact=False)
    if report.policy is not None and probe.wait() != 0:
        report = check_policy_file(path)
    else:
        probe.kill()
        probe.wait()
    return report


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""uvicorn's log levels (``--log-level``)."""


def listen_problem(host: str, port: int, log_level: str) -> str | None:
    """Why ``serve`` could not listen on ``host:port`` with ``log_level`` (an unknown log
    level, a host that does not resolve, an address in use or not on this machine), found
    before anything loads; None when it can. The socket is bound as uvicorn binds it
    (``SO_REUSEADDR``) and closed at once."""
    if log_level.lower() not in LOG_LEVELS:
        return f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                            flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as err:
        return f"--host {host!r} does not resolve to an address of this machine ({err})"
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as err:
        return f"cannot listen on {host}:{port}: {err.strerror or err}"
    return None


def log_problem(policy: Policy) -> str | None:
    """Why ``serve`` could not write its request log: the SQLite ``log.path`` (a read-only
    place, a folder, a file that is not SQLite) or, with ``store: redis``, the spool folder
    ``store.spool_dir`` records wait in while Redis is down. Found before the server starts,
    so ``--workers N`` does not restart workers that each fail on it; None when it can be
    written. Opens and closes the file or folder (creating it, as ``serve`` would)."""
    from ..errors import StoreUnavailableError
    from ..store.spool import DiskSpool
    from ..store.sqlite import SQLiteStore

    try:
        if policy.store.backend == "sqlite":
            SQLiteStore(policy.log.path).close()
        elif policy.store.backend == "redis":
            DiskSpool(policy.store.spool_dir).close()
    except StoreUnavailableError as err:
        return err.message
    return None
