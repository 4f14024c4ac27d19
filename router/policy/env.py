"""Environment references in policy strings: ``${VAR}`` and ``${VAR:-default}``."""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["ENV_PATTERN", "LITELLM_ENV", "interpolate_env"]


ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
"""``${VAR}`` or ``${VAR:-default}`` in a policy string."""

LITELLM_ENV = re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$")
"""LiteLLM's config form for a secret from the environment (``api_key: os.environ/OPENAI_API_KEY``)."""


def interpolate_env(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree, and a whole
    string ``os.environ/VAR`` (the form LiteLLM proxy configs use) by ``VAR``'s value.

    Args:
        value: a parsed YAML value (dicts, lists, scalars), walked recursively.
        environ: the environment to read; ``os.environ`` when None.

    Returns:
        The same tree with references substituted; an unset (or empty) variable with no
        default becomes ``""``.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        litellm_form = LITELLM_ENV.match(value)
        if litellm_form:
            return env.get(litellm_form.group(1)) or ""
        return ENV_PATTERN.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: interpolate_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, env) for v in value]
    return value
