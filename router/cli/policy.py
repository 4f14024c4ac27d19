"""``slm-router policy ...``: check a policy file, print its JSON Schema, hash an API key, and
the policy versions (``versions``, ``shadow``, ``activate``, ``revert``: :mod:`.policy_versions`).

Registered on the main CLI by :mod:`router.cli`. A policy with errors ends with exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .args import fail

__all__ = ["policy_app", "schema_json", "SCHEMA_PATH"]

policy_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Check policy files, print the policy JSON Schema, hash proxy API keys, "
                              "shadow / activate / revert policy versions.")
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

SCHEMA_PATH = Path("policies") / "policy.schema.json"


def schema_json() -> str:
    """The JSON Schema of :class:`router.policy.Policy`, as committed in
    ``policies/policy.schema.json`` (2-space indent, trailing newline)."""
    from ..policy import Policy

    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "slm-router policy"
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


@policy_app.command("check")
def check(
    files: list[Path] = typer.Argument(..., help="Policy YAML files."),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print errors only."),
) -> None:
    """Report every problem as FILE:LINE:COLUMN with a hint; exit 2 when any file has errors."""
    from ..policy.check import check_policy_file

    failed = False
    for path in files:
        report = check_policy_file(path)
        bad = bool(report.errors) or (strict and bool(report.warnings))
        failed = failed or bad
        text = report.format(include_warnings=not quiet)
        (_err if bad else _out).print(text, markup=False)
    if failed:
        raise typer.Exit(code=2)


@policy_app.command("schema")
def schema(out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write here instead of stdout.")) -> None:
    """Print the policy JSON Schema (the committed copy is policies/policy.schema.json)."""
    text = schema_json()
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as err:
            fail(f"cannot write {out}: {err.strerror or err}")


@policy_app.command("hash-key")
def hash_key(key: Optional[str] = typer.Argument(None, help="The key; read from stdin when omitted.")) -> None:
    """Print the sha256 to put under api_keys[].sha256 for a proxy API key."""
    from ..policy import hash_api_key

    value = key if key is not None else sys.stdin.readline().strip()
    if not value:
        _err.print("error: no key given", markup=False)
        raise typer.Exit(code=2)
    _out.print(hash_api_key(value), markup=False)


from .policy_versions import register as _register_versions  # noqa: E402

_register_versions(policy_app)
