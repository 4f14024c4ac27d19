"""Real redis-server processes for tests, and the shared Redis URL fixture's logic.

Tests that need Redis use a real server: the one on 127.0.0.1:6379 when it answers (CI's
``.ci/run`` starts it), else one started here on a free port; they skip only when no
``redis-server`` binary exists. Each test run uses its own key prefix, so parallel runs on
one server never see each other's keys.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import redis

from .fake_openai import free_port

REDIS_SERVER = shutil.which("redis-server")


def answers(url: str) -> bool:
    """True when a Redis at ``url`` answers PING within half a second."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


class RedisServer:
    """A redis-server this test owns, on a free port, with its data in ``workdir``.

    ``durable=True`` turns on the append-only file with an fsync per write, so a server
    killed with SIGKILL and restarted keeps everything it acknowledged.
    """

    def __init__(self, workdir: Path, durable: bool = False) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.durable = durable
        self._proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10) -> "RedisServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                "--save", "", "--logfile", str(self.workdir / "redis.log")]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout_s
        while not answers(self.url):
            if self._proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; as a crash or a lost network would look."""
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()


def unique_prefix() -> str:
    """A key prefix of its own for one test run."""
    return f"slm-router-test-{uuid.uuid4().hex[:10]}"


def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key under ``prefix`` (cleanup on the shared server)."""
    r = redis.Redis.from_url(url)
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i:i + 500])
