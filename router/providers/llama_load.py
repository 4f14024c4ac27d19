"""Load a llama-cpp-python model with llama.cpp's extra (repacking) buffer types on or off.

llama.cpp picks "extra buffer types" (weights repacked for AMX tiles or other CPU kernels)
when the build saw the feature in the CPU flags. On some machines with AMX
(``amx_tile amx_int8 amx_bf16``) the AMX path faults in ``ggml_backend_amx_mul_mat``
(``ldtilecfg``; SIGSEGV on the first generated token, reproduced with plain
llama-cpp-python 0.3.36 and SmolLM2-135M). The model parameter ``use_extra_bufts`` of
``llama_model_params`` turns the path off; ``llama_cpp.Llama`` does not take it as an
argument, so :func:`load_llama` sets it on the default parameters the constructor reads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

__all__ = ["load_llama"]

_PATCH_LOCK = threading.Lock()


def load_llama(model_path: str | Path, *, extra_buffers: bool = False, **kwargs: Any) -> Any:
    """A ``llama_cpp.Llama`` for ``model_path`` with ``use_extra_bufts = extra_buffers``.

    ``kwargs`` go to ``llama_cpp.Llama`` unchanged (``n_ctx``, ``n_threads``, ...).
    Thread-safe: the default-parameter hook is in place only while this call loads.

    Raises:
        ValueError: llama.cpp could not load the file (as ``llama_cpp.Llama`` raises it).
    """
    import llama_cpp
    from llama_cpp import llama as llama_module

    with _PATCH_LOCK:
        original = llama_module.llama_cpp.llama_model_default_params

        def params_with_choice() -> Any:
            params = original()
            if hasattr(params, "use_extra_bufts"):
                params.use_extra_bufts = bool(extra_buffers)
            return params

        llama_module.llama_cpp.llama_model_default_params = params_with_choice
        try:
            return llama_cpp.Llama(model_path=str(model_path), **kwargs)
        finally:
            llama_module.llama_cpp.llama_model_default_params = original
