"""Does a portable llama.cpp build (the Dockerfile's) run on older x86-64 CPUs, and does a
native one not? Checked without a Docker engine, under QEMU's user-mode CPU emulation.

The Dockerfile builds llama-cpp-python with
``CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"``. This
script takes such a wheel (or an unpacked copy of it), unpacks it, and for each emulated CPU
model runs SmolLM2 for 4 tokens through this checkout's loader
(``router.providers.llama_backends``, ``LlamaRuntime``), printing which CPU backend ggml
picked, or how the process died. With ``--native`` it runs the installed (natively built)
llama-cpp-python the same way, to show what the portable build avoids.

Needs ``qemu-x86_64`` (Debian's ``qemu-user``). Build the wheel first (about 25 minutes on
2 cores: one CPU backend per instruction-set level)::

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON" \\
        pip wheel --no-cache-dir --no-deps llama-cpp-python==0.3.36 -w /tmp/portable
    python bench/portable_build.py --wheel /tmp/portable/llama_cpp_python-*.whl --native
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPUS = ["Nehalem", "SandyBridge", "Haswell", "Skylake-Server"]
"""QEMU CPU models, oldest first: SSE4.2 (2008), AVX (2011), AVX2 (2013), AVX-512 (2017)."""

CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from router.providers.llama_backends import load_cpu_variants
dirs = load_cpu_variants()
from router.models import smollm2_gguf_path
from router.providers.llama_runtime import LlamaRuntime
t = time.time()
out = LlamaRuntime(str(smollm2_gguf_path()), n_ctx=256).generate(
    [{{"role": "user", "content": "What is the capital of France?"}}], max_tokens=4)
print(f"RESULT generated {{out.completion_tokens}} tokens in {{time.time() - t:.0f}} s (emulated); "
      f"variant folders: {{len(dirs)}}")
"""


def run(cpu: str, site_dir: Path | None, timeout_s: float) -> str:
    """One emulated run; the backend line and the result, or how the process ended."""
    paths = ([str(site_dir)] if site_dir else []) + site.getsitepackages()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), HF_HUB_OFFLINE="1")
    python = os.path.realpath(sys.executable)
    try:
        done = subprocess.run(["qemu-x86_64", "-cpu", cpu, python, "-c", CHILD.format(root=str(ROOT))],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout_s:.0f} s"
    text = done.stdout + done.stderr
    backend = next((ln.split("from ")[-1].rsplit("/", 1)[-1] for ln in text.splitlines() if "loaded CPU backend" in ln),
                   "the build's own CPU backend (native)")
    result = next((ln[len("RESULT "):] for ln in text.splitlines() if ln.startswith("RESULT ")), None)
    if result:
        return f"ok: {backend}; {result}"
    code = done.returncode
    how = signal.Signals(-code).name if code < 0 else ("SIGILL (exit 132)" if code == 132 else f"exit {code}")
    lines = [ln for ln in text.strip().splitlines() if "TCG doesn't support" not in ln]
    return f"FAILED: {how}" + (f"; {lines[-1][:160]}" if lines else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a portable llama-cpp-python wheel")
    parser.add_argument("--site", type=Path, help="an unpacked portable wheel (instead of --wheel)")
    parser.add_argument("--native", action="store_true", help="also run the installed (native) build")
    parser.add_argument("--cpus", nargs="*", default=CPUS)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    if not shutil.which("qemu-x86_64"):
        sys.exit("qemu-x86_64 not found (apt-get install qemu-user)")
    tmp = None
    site_dir = args.site
    if args.wheel:
        tmp = tempfile.mkdtemp(prefix="portable-llama-")
        zipfile.ZipFile(args.wheel).extractall(tmp)
        site_dir = Path(tmp)
    if site_dir is None and not args.native:
        sys.exit("give --wheel or --site (and/or --native)")
    host = subprocess.run(["grep", "-m1", "model name", "/proc/cpuinfo"], capture_output=True, text=True).stdout.strip()
    print(f"host: {host.split(':', 1)[-1].strip()}; emulated CPUs: {', '.join(args.cpus)}")
    for cpu in args.cpus:
        if site_dir:
            print(f"portable build on {cpu:15s}: {run(cpu, site_dir, args.timeout)}")
        if args.native:
            print(f"native build   on {cpu:15s}: {run(cpu, None, args.timeout)}")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
