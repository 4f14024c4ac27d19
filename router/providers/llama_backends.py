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
    """Folders holding ``libggml-cpu-*.so`` variant files (none for a native build): under
    llama-cpp-python's package (``lib``, ``bin``), and ``bin`` beside it, where the wheel of
    llama-cpp-python 0.3.36 built with ``GGML_BACKEND_DL`` puts them (``site-packages/bin``;
    found by building the Dockerfile's wheel and listing it)."""
    return [d for d in (package_dir / "lib", package_dir / "bin", package_dir, package_dir.parent / "bin")
            if d.is_dir() and any(d.glob("libggml-cpu-*.so"))]


def _loaded_ggml(package: Path) -> ctypes.CDLL:
    """The ``libggml`` that llama-cpp-python's ``libllama`` already uses.

    A wheel holds no symlinks, so ``lib/libggml.so``, ``libggml.so.0`` and
    ``libggml.so.0.25.3`` are three copies of one library; opening another copy than the one
    ``libllama`` linked (its ``NEEDED`` soname ``libggml.so.0``) gives a second ggml whose
    backend registry llama.cpp never sees ("no backends are loaded"). A bare soname makes
    the dynamic loader return the copy already loaded.
    """
    for soname in ("libggml.so.0", "libggml.so"):
        try:
            return ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
    return ctypes.CDLL(str(next((package / "lib").glob("libggml.so*"))), mode=ctypes.RTLD_GLOBAL)


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
            ggml = _loaded_ggml(package)
            load = ggml.ggml_backend_load_all_from_path
            load.argtypes, load.restype = [ctypes.c_char_p], None
            for d in dirs:
                load(str(d).encode())
        _loaded = [str(d) for d in dirs]
        return _loaded
