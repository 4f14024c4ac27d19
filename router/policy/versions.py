"""Policy versions: which stored policy is active, which one is in shadow, and their history (pure).

A version is a policy registered by ``slm-router policy shadow FILE``: its id is
:func:`router.policy.view.policy_hash` of the resolved policy (16 hex digits; the same
policy always gets the same id), its YAML text is stored beside the book. The
:class:`VersionBook` says which version is ``active`` (None: every replica runs its own
policy file, as before versions were used) and which one is in ``shadow`` (decides every
request beside the active one, logged, never acting). ``activate`` pushes the active version
on a stack that ``revert`` pops, so ``revert`` always goes back to the version (or the
file) that was active before. Every change bumps ``revision`` (replicas compare it) and
appends to ``history``.

The functions here take a book and return a new one (the input is not changed) or raise
:class:`VersionError` with a message for the CLI and the API; the shared state is read and
written by :mod:`router.state.policy_versions`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["VersionBook", "VersionEntry", "VersionEvent", "VersionError", "register", "set_shadow", "activate",
           "revert", "resolve", "FILE"]

FILE = "file"
"""How the book names "no stored version": each replica's own policy file."""

HISTORY_KEPT = 200
"""Events kept in :attr:`VersionBook.history` (older ones are dropped)."""


class VersionError(ValueError):
    """A version operation that cannot be done (unknown version, nothing to revert to)."""


class VersionEntry(BaseModel):
    """A registered version: ``registered_at`` (Unix s), ``source`` (the file it came from)."""

    version: str
    registered_at: float
    source: str = ""


class VersionEvent(BaseModel):
    """One change of the book: ``action`` (``shadow``, ``shadow_stop``, ``activate``,
    ``revert``), the ``version`` it concerns (None: the policy file) and the active version
    before it (``previous``)."""

    ts: float
    action: str
    version: str | None = None
    previous: str | None = None


class VersionBook(BaseModel):
    """The versions' state, one JSON document in the shared state."""

    revision: int = 0
    active: str | None = None
    shadow: str | None = None
    stack: list[str | None] = Field(default_factory=list)
    versions: dict[str, VersionEntry] = Field(default_factory=dict)
    history: list[VersionEvent] = Field(default_factory=list)


def _changed(book: VersionBook, now: float, action: str, version: str | None, **update) -> VersionBook:
    event = VersionEvent(ts=now, action=action, version=version, previous=book.active)
    history = [*book.history, event][-HISTORY_KEPT:]
    return book.model_copy(update={**update, "revision": book.revision + 1, "history": history}, deep=True)


def resolve(book: VersionBook, ref: str) -> str | None:
    """The version id that ``ref`` names: a registered id, a unique prefix of one (at least
    4 characters), or ``file`` (None: the policy file).

    Raises:
        VersionError: no version, or several, match.
    """
    if ref == FILE:
        return None
    if ref in book.versions:
        return ref
    matches = [v for v in book.versions if len(ref) >= 4 and v.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted(book.versions)) or "none registered"
    if matches:
        raise VersionError(f"version {ref!r} is ambiguous: {', '.join(sorted(matches))}")
    raise VersionError(f"unknown policy version {ref!r} (known: {known}; 'slm-router policy shadow FILE' registers one)")


def register(book: VersionBook, version: str, source: str, now: float) -> VersionBook:
    """The book with ``version`` registered (kept as it was when already known)."""
    if version in book.versions:
        return book
    versions = {**book.versions, version: VersionEntry(version=version, registered_at=now, source=source)}
    return book.model_copy(update={"versions": versions}, deep=True)


def set_shadow(book: VersionBook, ref: str | None, now: float) -> VersionBook:
    """Put a registered version in shadow (None stops shadowing).

    Raises:
        VersionError: unknown version, or it is the active one.
    """
    if ref is None:
        return _changed(book, now, "shadow_stop", book.shadow, shadow=None)
    version = resolve(book, ref)
    if version is None or version == book.active:
        raise VersionError(f"version {ref} is the active policy; shadow a different one")
    return _changed(book, now, "shadow", version, shadow=version)


def activate(book: VersionBook, ref: str, now: float) -> VersionBook:
    """Make ``ref`` the active version (``file``: back to each replica's policy file); the
    version active before goes on the revert stack. A version in shadow stops shadowing
    when it becomes active.

    Raises:
        VersionError: unknown version, or it is already active.
    """
    version = resolve(book, ref)
    if version == book.active:
        raise VersionError(f"version {ref} is already active")
    shadow = None if book.shadow == version else book.shadow
    return _changed(book, now, "activate", version, active=version, shadow=shadow, stack=[*book.stack, book.active])


def revert(book: VersionBook, now: float) -> VersionBook:
    """Go back to the version that was active before the last ``activate``.

    Raises:
        VersionError: nothing was activated before.
    """
    if not book.stack:
        raise VersionError("nothing to revert to: no version was activated before this one")
    previous = book.stack[-1]
    shadow = None if book.shadow == previous else book.shadow
    return _changed(book, now, "revert", previous, active=previous, shadow=shadow, stack=book.stack[:-1])
