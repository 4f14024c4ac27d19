"""``slm-router policy versions | shadow FILE | activate VERSION | revert``.

Two ways to reach the replicas, the same operations (:mod:`router.policy.versions`):

- ``--policy P`` whose ``store`` is ``redis``: the CLI writes the version book on that
  Redis directly (:mod:`router.state.policy_versions`); every replica on it follows within
  about a second (:mod:`router.api.version_sync`). No server needs to be up.
- ``--url http://host:port``: the admin endpoints of one server
  (:mod:`router.api.admin_routes`), with the admin key from ``--admin-key-env``
  (default ``SLM_ROUTER_ADMIN_KEY``). This is the way for one server on ``store: sqlite``,
  whose versions live in its memory.

Errors (an invalid policy file, an unknown version, nothing to revert to, the store or
server unreachable) end with a message and exit code 2.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["register"]

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

ADMIN_KEY_ENV = "SLM_ROUTER_ADMIN_KEY"

_POLICY = typer.Option(None, "--policy", "-p", help="Policy whose store (redis) holds the versions.")
_URL = typer.Option(None, "--url", help="A server's base URL: use its admin endpoints instead of Redis.")
_KEY_ENV = typer.Option(ADMIN_KEY_ENV, "--admin-key-env", help="Environment variable holding the admin key (--url).")


def _fail(message: str) -> None:
    _err.print(f"error: {message}", markup=False)
    raise typer.Exit(code=2)


class _Direct:
    """The versions on the policy's Redis."""

    def __init__(self, policy_path: Optional[Path]) -> None:
        from ..errors import PolicyError
        from ..policy import load_policy

        try:
            policy = load_policy(policy_path)
        except PolicyError as err:
            _fail(str(err))
        if policy.store.backend != "redis":
            _fail("this policy keeps its shared state in the server's memory (store: sqlite); reach the server "
                  f"with --url http://HOST:PORT (admin key in ${ADMIN_KEY_ENV}), or use a policy with store: redis")
        self.store = policy.store

    async def run(self, op):
        import logging

        from ..state.policy_versions import PolicyVersions
        from ..state.redis import RedisState

        # The state's own "Redis unreachable" warning is for servers; this command reports
        # the outage itself, in one line (the warning came out as a second, bare one).
        logging.getLogger("router.state.redis").setLevel(logging.ERROR)
        state = RedisState(self.store)
        try:
            return await op(PolicyVersions(state))
        finally:
            await state.close()

    def call(self, action: str, **kw):
        ops = {"book": lambda v: v.book(), "shadow": lambda v: v.shadow(kw["version"], kw["text"], kw["source"]),
                 "stop": lambda v: v.stop_shadow(), "activate": lambda v: v.activate(kw["ref"]),
                 "revert": lambda v: v.revert()}
        return asyncio.run(self.run(ops[action]))


class _Http:
    """The versions through a server's admin endpoints."""

    def __init__(self, url: str, key_env: str) -> None:
        self.url = url.rstrip("/")
        if self.url.endswith("/v1"):
            self.url = self.url[:-3]
        key = os.environ.get(key_env, "")
        if not key:
            _fail(f"--url needs an admin key in ${key_env} (an api_keys entry with admin: true)")
        self.headers = {"authorization": f"Bearer {key}"}

    def call(self, action: str, **kw):
        import httpx

        from ..policy.versions import VersionBook

        routes = {"book": ("GET", "", None), "stop": ("POST", "/shadow", {"stop": True}),
                  "shadow": ("POST", "/shadow", {"policy": kw.get("text"), "source": kw.get("source")}),
                  "activate": ("POST", "/activate", {"version": kw.get("ref")}), "revert": ("POST", "/revert", {})}
        method, path, body = routes[action]
        try:
            r = httpx.request(method, f"{self.url}/v1/policy/versions{path}", json=body, headers=self.headers,
                              timeout=120)
        except httpx.HTTPError as err:
            _fail(f"cannot reach {self.url}: {err}")
        if r.status_code != 200:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:300]
            _fail(f"{self.url} answered {r.status_code}: {message}")
        from pydantic import ValidationError

        try:
            data = r.json()
            if not isinstance(data, dict) or data.get("object") != "policy.versions":
                raise ValueError("not policy.versions")
            return VersionBook.model_validate({k: v for k, v in data.items() if k not in ("object", "replica")})
        except (ValueError, ValidationError):  # JSONDecodeError is a ValueError: an HTML page, another API
            _fail(f"{self.url} answered {r.status_code} with a body that is not slm-router's book of policy versions "
                  f"({r.headers.get('content-type') or 'no content type'}); is --url an slm-router server?")


def _backend(policy: Optional[Path], url: Optional[str], key_env: str):
    return _Http(url, key_env) if url else _Direct(policy)


def _do(backend, action: str, **kw):
    from ..policy.versions import VersionError
    from ..state.base import StateUnavailable

    try:
        return backend.call(action, **kw)
    except VersionError as err:
        _fail(str(err))
    except StateUnavailable as err:
        _fail(f"the shared state is unreachable: {err}")


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def versions(policy: Optional[Path] = _POLICY, url: Optional[str] = _URL, key_env: str = _KEY_ENV,
             as_json: bool = typer.Option(False, "--json", help="The version book as JSON.")) -> None:
    """List the registered policy versions, which is active and which in shadow, and the history."""
    book = _do(_backend(policy, url, key_env), "book")
    if as_json:
        _out.print(json.dumps(book.model_dump(mode="json"), indent=2), markup=False)
        return
    _out.print(f"active: {book.active or 'file (each replica its policy file)'}; shadow: {book.shadow or 'none'}; "
               f"revision {book.revision}", markup=False)
    table = Table(title="policy versions")
    for h in ("version", "state", "registered", "source"):
        table.add_column(h)
    for v in sorted(book.versions.values(), key=lambda e: e.registered_at):
        state = "active" if v.version == book.active else "shadow" if v.version == book.shadow else ""
        table.add_row(v.version, state, _when(v.registered_at), v.source)
    _out.print(table)
    for e in book.history[-20:]:
        _out.print(f"{_when(e.ts)}  {e.action:11s} {e.version or 'file'} (active before: {e.previous or 'file'})",
                   markup=False)


def shadow(file: Optional[Path] = typer.Argument(None, help="The candidate policy YAML."),
           stop: bool = typer.Option(False, "--stop", help="Stop shadowing (no FILE)."),
           policy: Optional[Path] = _POLICY, url: Optional[str] = _URL, key_env: str = _KEY_ENV) -> None:
    """Register FILE as a version and put it in shadow: it decides every request beside the
    active policy (logged as shadow_policy_version, shadow_tier), never acting."""
    backend = _backend(policy, url, key_env)
    if stop:
        book = _do(backend, "stop")
        _out.print(f"no version in shadow (revision {book.revision})", markup=False)
        return
    if file is None:
        _fail("give the candidate policy FILE, or --stop")
    from ..policy.check import check_policy_file
    from ..policy.view import policy_hash

    report = check_policy_file(file)
    if report.errors or report.policy is None:
        _fail(report.format())
    version = policy_hash(report.policy)
    book = _do(backend, "shadow", version=version, text=file.read_text(encoding="utf-8"), source=str(file))
    _out.print(f"{book.shadow} in shadow (revision {book.revision}); active: {book.active or 'file'}", markup=False)


def activate(version: str = typer.Argument(..., help="Version id (or a unique prefix, or 'file')."),
             policy: Optional[Path] = _POLICY, url: Optional[str] = _URL, key_env: str = _KEY_ENV) -> None:
    """Make VERSION the active policy on every replica ('file': back to each one's policy file)."""
    book = _do(_backend(policy, url, key_env), "activate", ref=version)
    _out.print(f"{book.active or 'file'} active (revision {book.revision}); revert goes back to "
               f"{book.stack[-1] or 'file'}", markup=False)


def revert(policy: Optional[Path] = _POLICY, url: Optional[str] = _URL, key_env: str = _KEY_ENV) -> None:
    """Go back to the version that was active before the last activate."""
    book = _do(_backend(policy, url, key_env), "revert")
    _out.print(f"{book.active or 'file'} active again (revision {book.revision})", markup=False)


def register(app: typer.Typer) -> None:
    """Add the version commands to the ``policy`` group."""
    app.command("versions")(versions)
    app.command("shadow")(shadow)
    app.command("activate")(activate)
    app.command("revert")(revert)
