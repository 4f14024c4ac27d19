"""Start the real ``slm-router serve`` in a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from .fake_openai import free_port


class ProxyProcess:
    """``slm-router serve`` on a free port with the given policy mapping.

    Attributes: ``url`` (``http://127.0.0.1:PORT``), ``log_path`` (its SQLite log, used
    unless the policy's ``store`` is redis; then its spool folder is ``workdir/spool``).
    ``args`` are extra ``serve`` options (e.g. ``["--workers", "2"]``).
    """

    def __init__(self, policy: dict, workdir: Path, args: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / "requests.sqlite3"
        self.args = list(args or [])
        policy = {**policy, "log": {"path": str(self.log_path)}}
        store = policy.get("store")
        if isinstance(store, dict) and store.get("backend") == "redis" and "spool_dir" not in store:
            policy["store"] = {**store, "spool_dir": str(workdir / "spool")}
        self.policy_path = workdir / "policy.yaml"
        self.write_policy(policy)
        self.stderr_path = workdir / "serve.log"
        self._proc: subprocess.Popen | None = None
        self.sent = 0  # requests a test sent to it

    def start(self, timeout_s: float = 180) -> "ProxyProcess":
        return self.launch().wait_ready(timeout_s)

    def launch(self) -> "ProxyProcess":
        """Start the process without waiting (start several, then :meth:`wait_ready` each)."""
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
        self._stderr = self.stderr_path.open("wb")
        script = Path(sys.executable).parent / "slm-router"  # the installed console script
        command = [str(script)] if script.exists() else [sys.executable, "-m", "router.cli"]
        self._proc = subprocess.Popen(
            command + ["serve", "--policy", str(self.policy_path), "--port", str(self.port), "--log-level", "warning",
                       *self.args],
            cwd=self.workdir, env=env, stdout=self._stderr, stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout_s: float = 180) -> "ProxyProcess":
        """Wait until ``/healthz`` answers 200 with the classifier loaded.

        Raises:
            RuntimeError: the process exited or did not answer in time (its log attached).
        """
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"slm-router serve exited {self._proc.returncode}:\n{self.stderr_path.read_text()}")
            try:
                health = httpx.get(self.url + "/healthz", timeout=1)
                if health.status_code == 200 and health.json().get("classifier") != "loading":
                    return self  # answering, and its classifier loaded (serve loads it after start-up)
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"slm-router serve did not answer /healthz in {timeout_s}s:\n{self.stderr_path.read_text()}")

    def write_policy(self, policy: dict | str) -> None:
        """Replace the policy file (a mapping, logged to ``log_path``, or raw YAML text) the way
        editors do: write a new file, then rename it over the old one."""
        if isinstance(policy, dict):
            policy = yaml.safe_dump({**policy, "log": {"path": str(self.log_path)}})
        tmp = self.policy_path.with_suffix(".yaml.tmp")
        tmp.write_text(policy)
        tmp.replace(self.policy_path)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the server process."""
        assert self._proc is not None
        self._proc.send_signal(sig)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if getattr(self, "_stderr", None):
            self._stderr.close()


def in_process_local_proxy(cloud_url: str, folder: Path) -> ProxyProcess:
    """A started ``slm-router serve`` whose local tier is the in-process SmolLM2 (never loaded:
    ``--no-warm-up``, for tests whose requests are refused before it), threshold 0.99 (every
    request routed locally), and ``cloud_url`` as the cloud tier."""
    policy = {"tiers": {"local": {"model": "slm-local/smollm2", "max_tokens": 16,
                                  "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-up", "api_base": cloud_url}},
              "routing": {"classifier": {"threshold": 0.99}}}
    return ProxyProcess(policy, folder, args=["--no-warm-up"]).start()
