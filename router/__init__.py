"""slm-router: an OpenAI-compatible proxy that answers each chat request with the
cheapest tier that can answer it well.

Public API::

    from router import Policy, load_policy, Router, create_app

Heavy libraries (torch, litellm, llama.cpp) are imported only when first used.
"""

from __future__ import annotations

import os

# litellm fetches its price map from the network at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# llama.cpp (and torch) run on OpenMP, whose idle threads spin by default. On a shared box
# (the server's own event loop, the embedder, other processes) spinning threads steal the
# cores the work needs: measured here with 2 cores under load, SmolLM2 read a 16-token
# prompt in 4.7 s (1.6 s of CPU) with spinning and in 0.22 s (0.12 s) with passive waits.
# Read once when the OpenMP runtime starts, so it is set before llama_cpp or torch load.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import (  # noqa: E402
    InvalidRequestError,
    ModelNotFoundError,
    PolicyError,
    RouterError,
    TierUnavailableError,
    UpstreamError,
)
from .policy import Policy, load_policy  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Policy",
    "load_policy",
    "Router",
    "create_app",
    "RouterError",
    "PolicyError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "TierUnavailableError",
    "UpstreamError",
    "__version__",
]


def __getattr__(name: str):
    if name == "Router":
        from .pipeline import Router

        return Router
    if name == "create_app":
        from .api.app import create_app

        return create_app
    raise AttributeError(f"module 'router' has no attribute {name!r}")
