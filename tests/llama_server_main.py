"""``python -m llama_cpp.server`` with llama.cpp's extra buffer types off (test helper).

llama-cpp-python's server has no setting for ``use_extra_bufts``; on AMX CPUs its default
(on) faults on the first token (see ``router/providers/llama_load.py``). This launcher sets
the default model parameters the server's ``Llama`` reads, then runs the server's own main.
"""

from __future__ import annotations

import llama_cpp.llama as llama_module
from llama_cpp.server.__main__ import main

_original = llama_module.llama_cpp.llama_model_default_params


def _params_without_extra_buffers():
    params = _original()
    params.use_extra_bufts = False
    return params


llama_module.llama_cpp.llama_model_default_params = _params_without_extra_buffers

if __name__ == "__main__":
    main()
