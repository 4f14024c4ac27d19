"""Environment references in policy strings: ``${VAR}`` and ``${VAR:-default}``."""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["ENV_PATTERN", "interpolate_env"]


ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
"""``${VAR}`` or ``${VAR:-default}`` in a policy string."""


def interpolate_env(value: Any, environ: dict[str, str] | None = None) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree.

    Args:
        value: a parsed YAML value (dicts, lists, scalars), walked recursively.
        environ: the environment to read; ``os.environ`` when None.

    Returns:
        The same tree with references substituted; an unset (or empty) variable with no
        default becomes ``""``.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        return ENV_PATTERN.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: interpolate_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, env) for v in value]
    return value
