"""Hot reload: the policy in force, replaced when its file changes or on SIGHUP.

:class:`LivePolicy` holds the :class:`~router.pipeline.Router` built for the active policy.
A request takes ``live.router`` once when it starts and keeps it to the end, so a reload
never changes the policy of a request in flight. :meth:`LivePolicy.reload` checks the file
with :func:`router.policy.check.check_policy_file` (the messages of ``policy check``); a
valid new policy gets a new Router (sharing the store and, when the classifier artifact is
the same, the loaded classifier), warmed up before it is swapped in; an invalid one is
rejected, its errors logged, and the old policy stays active.

A stored policy version (``slm-router policy activate``, :mod:`router.api.version_sync`)
goes through the same swap (:meth:`LivePolicy.apply_version`); while one is active the file
is not applied, and :meth:`LivePolicy.use_file` goes back to it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..pipeline import Router
from ..policy.check import check_policy_file, check_policy_text
from ..policy.view import DEPLOYMENT_SECTIONS, changed_secrets, policy_hash
from ..store import open_store, store_location

__all__ = ["LivePolicy", "ReloadResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A policy that needs no check (the start-up policy), shaped like a check report."""

    policy: object
    errors: tuple = ()
    warnings: tuple = ()


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """Outcome of one reload: ``status`` is ``reloaded``, ``unchanged`` or ``rejected``;
    ``hash`` the policy hash in force afterwards; ``message`` the errors when rejected."""

    status: str
    hash: str
    message: str = ""


class LivePolicy:
    """The active router and the file it came from.

    Args:
        router: the router of the policy loaded at start-up.
        path: the policy file, or None for the embedded default (nothing to reload).
        warm_up: warm a new router up (classifier, local model) before swapping it in.
        on_swap: called with the new router after each successful reload.
    """

    def __init__(self, router: Router, path: str | Path | None = None, *, warm_up: bool = True,
                 on_swap: Callable[[Router], None] | None = None) -> None:
        self.router = router
        self.path = Path(path) if path is not None else None
        self.warm_up = warm_up
        self.on_swap = on_swap
        self.loaded_at = time.time()
        self.reloads = 0
        self.last_error: str | None = None
        self.file_policy = router.policy  # the file's policy: deployment sections of stored versions
        self.version: str | None = None  # the stored policy version in force; None: the file's policy
        self._retired: list[Router] = []
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task] = set()

    async def reload(self, trigger: str = "request") -> ReloadResult:
        """Re-read the policy file and swap the router if the policy is valid and changed.

        Never raises for a bad file: the errors are logged and returned, and the old
        policy stays active; an empty file is such an error (not the embedded default). While
        a stored version is active (:meth:`apply_version`) the file is not applied
        (``unchanged``, the message says why) until ``use_file``.
        """
        if self.path is None:
            return ReloadResult("unchanged", self.router.policy_hash, "no policy file (embedded default)")
        if self.version is not None:
            message = (f"policy version {self.version} from the shared state is active; the file applies again "
                       "after 'slm-router policy activate file' or a revert to it")
            log.warning("policy reload (%s) skipped: %s", trigger, message)
            return ReloadResult("unchanged", self.router.policy_hash, message)
        return await self._apply_checked(trigger, lambda: check_policy_file(self.path, empty="error"), file=True)

    async def apply_version(self, version: str, text: str) -> ReloadResult:
        """Run the stored policy ``version`` (its YAML ``text``), with this replica's own
        deployment sections (:data:`~router.policy.view.DEPLOYMENT_SECTIONS`) from its file.
        Never raises: a text that does not check is rejected and the old policy stays."""
        result = await self._apply_checked(f"version {version}", lambda: check_policy_text(text, f"version {version}"),
                                           deployment_from=self.file_policy)
        if result.status != "rejected":
            self.version = version
            if result.hash != version:
                log.warning("policy version %s resolves to %s on this replica (its environment differs)",
                            version, result.hash)
        return result

    async def use_file(self) -> ReloadResult:
        """Go back to the policy file (or the start-up policy without one) after a stored version."""
        self.version = None
        if self.path is None:
            return await self._apply_checked("policy file", lambda: _Checked(self.file_policy))
        return await self.reload("back to the policy file")

    async def _apply_checked(self, trigger: str, check, file: bool = False, deployment_from=None) -> ReloadResult:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            current = self.router
            report = await asyncio.to_thread(check)
            if report.errors or report.policy is None:
                self.last_error = report.format(include_warnings=False)
                log.error("policy reload (%s) rejected; keeping policy %s:\n%s", trigger, current.policy_hash,
                          self.last_error)
                return ReloadResult("rejected", current.policy_hash, self.last_error)
            for warning in report.warnings:
                log.warning("%s", warning)
            policy = report.policy
            if deployment_from is not None:
                policy = policy.model_copy(update={k: getattr(deployment_from, k) for k in DEPLOYMENT_SECTIONS})
            if file:
                self.file_policy = policy
            return await self._swap(current, policy, trigger)

    async def _swap(self, current: Router, policy, trigger: str) -> ReloadResult:
        new_hash = policy_hash(policy)
        # The hash leaves secrets out, so compare the resolved policies: a rotated key
        # alone must reload (and be sent from then on).
        if policy == current.policy:
            self.last_error = None
            log.info("policy reload (%s): %s unchanged", trigger, new_hash)
            return ReloadResult("unchanged", new_hash)
        secrets = changed_secrets(current.policy, policy)
        if secrets:
            log.warning("policy reload (%s): secrets changed: %s", trigger, ", ".join(secrets))
        for name, tier in policy.tiers.items():
            old = next((t for t in current.policy.tiers.values() if t.model == tier.model), None)
            if tier.is_in_process and old is not None and old.runtime != tier.runtime:
                log.warning("tier %r: runtime settings of the loaded model %s take effect at the next restart",
                            name, tier.model)
        try:
            store = current.store
            if store_location(policy) != store_location(current.policy):
                store = open_store(policy)  # the policy's backend: a Redis log stays on Redis
            fresh = current.with_policy(policy, store)
            if self.warm_up:
                await asyncio.to_thread(fresh.warm_up)
        except Exception as err:  # the file is valid but the deployment is not (model, artifact, store)
            self.last_error = f"{self.path or trigger}: cannot apply policy: {type(err).__name__}: {err}"
            log.exception("policy reload (%s) failed; keeping policy %s", trigger, current.policy_hash)
            return ReloadResult("rejected", current.policy_hash, self.last_error)
        fresh.candidate = current.candidate  # the version in shadow keeps deciding beside the new one
        self.router = fresh
        self._retired.append(current)  # requests in flight may still log through it
        self.reloads += 1
        self.loaded_at = time.time()
        self.last_error = None
        if self.on_swap:
            self.on_swap(fresh)
        log.warning("policy reloaded (%s): %s -> %s", trigger, current.policy_hash, new_hash)
        return ReloadResult("reloaded", new_hash)

    def _spawn(self, trigger: str) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(trigger))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def install_sighup(self) -> bool:
        """Reload on SIGHUP (Unix, running event loop). Returns False where unsupported."""
        if self.path is None or not hasattr(signal, "SIGHUP"):
            return False
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._spawn, "SIGHUP")
        except (NotImplementedError, RuntimeError, ValueError):
            return False
        return True

    def remove_sighup(self) -> None:
        """Undo :meth:`install_sighup`."""
        if hasattr(signal, "SIGHUP"):
            try:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever the policy file is written, replaced or re-created, until ``stop``
        is set. Watches the file's folder (editors save by renaming a new file over the old
        one) through watchfiles, which batches bursts of events."""
        if self.path is None:
            return
        from watchfiles import awatch

        folder, name = self.path.resolve().parent, self.path.name
        try:
            async for _ in awatch(folder, watch_filter=lambda _change, p: Path(p).name == name,
                                  stop_event=stop, recursive=False, debounce=400, step=50):
                await self.reload("file changed")
        except Exception:
            log.exception("watching %s stopped; SIGHUP still reloads the policy", self.path)

    async def drain(self) -> None:
        """Wait for log writes of the active and retired routers, and running reloads."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for router in [*self._retired, self.router]:
            await router.drain()
