"""Load llama.cpp's CPU backend variants of a portable build (runtime CPU dispatch).

A llama.cpp built with ``-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON``
(the Dockerfile's build) ships one CPU backend per instruction-set level
(``libggml-cpu-x64.so``, ``-sse42``, ``-haswell``, ``-skylakex``, ``-sapphirerapids``, ...)
and picks the best one this CPU can run when the backends are loaded. llama-cpp-python
0.3 never loads them (model loading then fails with "no backends are loaded"), so
:func:`load_cpu_variants` calls ggml's ``ggml_backend_load_all_from_path`` on the folder
that holds them. A native build has no variant files and nothing is done.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

__all__ = ["variant_dirs", "load_cpu_variants"]

_lock = threading.Lock()
_loaded: list[str] | None = None


def variant_dirs(package_dir: Path) -> list[Path]:
    """Folders under llama-cpp-python's package (``lib``, ``bin``) holding
    ``libggml-cpu-*.so`` variant files (none for a native build)."""
    return [d for d in (package_dir / "lib", package_dir / "bin", package_dir)
            if d.is_dir() and any(d.glob("libggml-cpu-*.so"))]


def load_cpu_variants() -> list[str]:
    """Register the CPU backend variants with ggml (once per process); the folders loaded.

    Raises:
        OSError: ``libggml.so`` cannot be opened (a broken install).
    """
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        import llama_cpp

        package = Path(llama_cpp.__file__).parent
        dirs = variant_dirs(package)
        if dirs:
            ggml = ctypes.CDLL(str(next((package / "lib").glob("libggml.so*"))), mode=ctypes.RTLD_GLOBAL)
            load = ggml.ggml_backend_load_all_from_path
            load.argtypes, load.restype = [ctypes.c_char_p], None
            for d in dirs:
                load(str(d).encode())
        _loaded = [str(d) for d in dirs]
        return _loaded
