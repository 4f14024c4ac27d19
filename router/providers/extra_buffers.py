"""Whether in-process models may use llama.cpp's extra (repacking) buffer types.

llama.cpp repacks weights into CPU-specific layouts ("extra buffer types": AMX tiles,
AVX-512/AVX2 interleaved blocks) when the build saw those features. On some CPUs that path
crashes: a natively built llama.cpp on an AMX Xeon dies with SIGSEGV in
``ggml_backend_amx_mul_mat`` at the first generated token. The policy's
``runtime.extra_buffers`` decides:

- ``off``: never (always safe); ``on``: always (your machine, your risk);
- ``auto`` (default): a probe in a child process loads the model with extra buffers on and
  generates a few tokens; the verdict is cached per (llama.cpp build, CPU flags, model file) in the
  user's cache folder (``$XDG_CACHE_HOME/slm-router``, default ``~/.cache/slm-router``) so
  it runs once per machine and build.

:func:`decide` is the pure choice; :func:`resolve` does the I/O around it (cache, probe).
``python -m router.providers.extra_buffers <gguf>`` is the probe's child.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Mode", "Verdict", "Resolution", "decide", "resolve", "build_key", "probe_key", "cache_dir", "cache_file",
           "run_probe", "cpu_flags", "system_info", "read_cache", "write_cache"]

Mode = Literal["auto", "on", "off"]
PROBE_TOKENS = 4
"""Tokens the probe generates: the AMX crash hits the first one; 4 leave a margin."""
PROBE_TIMEOUT_S = 120.0
"""Seconds before a probe is abandoned (a load + 4 tokens takes about 1 s here)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The probe's result on one (llama.cpp build, CPU flags) pair.

    Attributes:
        works: True when generation with extra buffers on succeeded.
        reason: what happened, in words (the signal that killed the child, its error).
        probed_at: when the probe ran, Unix seconds.
        probe_ms: the probe's wall time (ms), child start-up included.
        key: :func:`build_key` of the build and CPU it ran on.
    """

    works: bool
    reason: str
    probed_at: float
    probe_ms: float
    key: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a model loads with, and why: ``enabled`` (extra buffers on), the policy's
    ``mode``, ``source`` (``policy`` when the mode decided, ``probe`` when a probe ran now,
    ``cache`` when a cached verdict was read) and the ``verdict`` (None with on/off)."""

    enabled: bool
    mode: str
    source: str
    verdict: Verdict | None = None

    def as_dict(self) -> dict:
        """JSON-ready form (for ``/healthz`` and ``doctor``)."""
        out = {"enabled": self.enabled, "mode": self.mode, "source": self.source}
        if self.verdict is not None:
            out.update(works=self.verdict.works, reason=self.verdict.reason,
                       probed_at=self.verdict.probed_at, probe_ms=round(self.verdict.probe_ms, 1))
        return out


def decide(mode: Mode, verdict: Verdict | None) -> bool:
    """Extra buffers on? ``on``/``off`` decide alone; ``auto`` follows the verdict (off
    when there is none).

    Raises:
        ValueError: an unknown mode.
    """
    if mode == "on":
        return True
    if mode == "off":
        return False
    if mode == "auto":
        return bool(verdict and verdict.works)
    raise ValueError(f"runtime.extra_buffers must be auto, on or off, got {mode!r}")


# -- identity of the build and the CPU ---------------------------------------------------
def cpu_flags() -> list[str]:
    """The CPU's feature flags (``/proc/cpuinfo`` on Linux; the processor name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return sorted(set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return [platform.processor() or platform.machine()]


def system_info() -> str:
    """llama.cpp's own report of the CPU features it was built for (``llama_print_system_info``)."""
    import llama_cpp

    from .llama_backends import load_cpu_variants

    load_cpu_variants()  # a portable build reports the features of the variant it picked
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def _library_digest() -> str:
    """SHA-256 (16 hex) of llama-cpp-python's version and its shared libraries' names and
    sizes: a rebuild with other CMake flags changes them."""
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    parts = [llama_cpp.__version__]
    if lib.is_dir():
        parts += [f"{p.name}:{p.stat().st_size}" for p in sorted(lib.iterdir()) if p.is_file()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def build_key() -> str:
    """The cache key: SHA-256 (16 hex) of the llama.cpp build (:func:`_library_digest`,
    :func:`system_info`) and the CPU flags."""
    blob = json.dumps([_library_digest(), system_info(), cpu_flags()])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def probe_key(model_path: str | Path) -> str:
    """The verdict's cache key for one model file: :func:`build_key` and the file's name
    (the weights' type picks llama.cpp's kernels: a Q8_0 copy is probed apart from the Q4_1
    file it came from)."""
    return hashlib.sha256(f"{build_key()}|{Path(model_path).name}".encode()).hexdigest()[:16]


# -- cache ---------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/slm-router``, or ``~/.cache/slm-router``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slm-router"


def cache_file() -> Path:
    """The verdict cache: a JSON object, build key -> :class:`Verdict` fields."""
    return cache_dir() / "extra_buffers.json"


def read_cache(key: str, path: Path | None = None) -> Verdict | None:
    """The cached verdict for ``key``; None when absent or the file is unreadable."""
    try:
        entry = json.loads((path or cache_file()).read_text()).get(key)
        return Verdict(**entry) if isinstance(entry, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def write_cache(verdict: Verdict, path: Path | None = None) -> None:
    """Add ``verdict`` to the cache (atomically: a temporary file then a rename). A cache
    that cannot be written is skipped: the probe then runs again at the next start."""
    path = path or cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(path.read_text())
            entries = entries if isinstance(entries, dict) else {}
        except (OSError, ValueError):
            entries = {}
        entries[verdict.key] = asdict(verdict)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        tmp.replace(path)
    except OSError:
        pass


# -- the probe -----------------------------------------------------------------------------
def run_probe(model_path: str | Path, key: str, timeout_s: float = PROBE_TIMEOUT_S) -> Verdict:
    """Load ``model_path`` with extra buffers on in a child process and generate
    :data:`PROBE_TOKENS` tokens; a child that dies (signal, error, timeout) means they do
    not work here. Blocking; about 1 s."""
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "router.providers.extra_buffers", str(model_path)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_package_root(), os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return Verdict(False, f"the probe did not finish within {timeout_s:.0f} s", time.time(),
                       (time.perf_counter() - started) * 1000, key)
    ms = (time.perf_counter() - started) * 1000
    if done.returncode == 0:
        return Verdict(True, f"generated {PROBE_TOKENS} tokens with extra buffers on", time.time(), ms, key)
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        why = (f"the probe process died with {name} generating with extra buffers on "
               "(llama.cpp's repacked/AMX kernels crash on this CPU and build)")
    else:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        why = f"the probe process exited with {done.returncode}: {tail[0][:300]}"
    return Verdict(False, why, time.time(), ms, key)


def _package_root() -> str:
    """The directory holding the ``router`` package (so the child imports this code)."""
    return str(Path(__file__).resolve().parents[2])


Probe = Callable[[str | Path, str], Verdict]


def resolve(mode: Mode, model_path: str | Path, probe: Probe = run_probe, cache: Path | None = None) -> Resolution:
    """What ``model_path`` loads with under ``mode``: with ``auto`` the cached verdict for
    this build and CPU, else a probe (blocking, about 1 s) whose verdict is cached.

    Raises:
        ValueError: an unknown mode.
    """
    if mode != "auto":
        return Resolution(decide(mode, None), mode, "policy")
    key = probe_key(model_path)
    verdict = read_cache(key, cache)
    source = "cache"
    if verdict is None:
        verdict, source = probe(model_path, key), "probe"
        write_cache(verdict, cache)
    return Resolution(decide(mode, verdict), mode, source, verdict)


def _probe_child(model_path: str) -> None:
    from .llama_runtime import LlamaRuntime

    runtime = LlamaRuntime(model_path, n_ctx=256, use_extra_bufts=True)
    out = runtime.generate([{"role": "user", "content": "What is 2 + 2?"}], max_tokens=PROBE_TOKENS)
    print(json.dumps({"completion_tokens": out.completion_tokens}))


if __name__ == "__main__":
    _probe_child(sys.argv[1])
