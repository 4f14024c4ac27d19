"""Loading a policy: YAML mapping or file -> :class:`~router.policy.model.Policy` with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import PolicyError

from .env import interpolate_env
from .model import Policy

__all__ = ["policy_from_dict", "load_policy"]


def _format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid policy"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def policy_from_dict(data: dict[str, Any], *, source: str = "<policy>", environ: dict[str, str] | None = None) -> Policy:
    """Build a policy from a parsed YAML mapping after environment interpolation.

    Messages carry dotted paths but no line numbers (use :func:`load_policy` for files).

    Raises:
        PolicyError: a field is unknown, of the wrong type, or a reference is undefined.
    """
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: the policy must be a YAML mapping, got {type(data).__name__}")
    try:
        return Policy.model_validate(interpolate_env(data, environ))
    except ValidationError as err:
        raise PolicyError(_format_validation_error(source, err)) from None


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Load a policy YAML file, or return the embedded default when ``path`` is None.

    Raises:
        PolicyError: the file is missing, is not YAML, or fails validation; the message
            lists every problem as ``FILE:LINE:COLUMN: error: ...`` with hints
            (:func:`router.policy.check.check_policy_file`).
    """
    if path is None:
        return Policy()
    from .check import check_policy_file

    report = check_policy_file(Path(path))
    if report.errors or report.policy is None:
        raise PolicyError(report.format(include_warnings=False))
    return report.policy
