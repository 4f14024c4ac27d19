"""A local disk spool: log records wait here while Redis is unreachable, then are flushed.

Each process appends to its own file ``spool-<token>.jsonl`` (one JSON line per record,
``fsync`` after each, so a record the client was answered for survives a crash of this
process) and holds an exclusive ``flock`` on ``spool-<token>.lock`` for its lifetime. A
flush first renames the file to ``spool-<token>.<n>.flushing`` (new records go to a fresh
file), writes its lines, then deletes it; a failed flush keeps it for the next try. Files
of a process that died (its lock is free) are claimed by the next flush of any process
sharing the folder, so nothing is lost across restarts. A record may be written twice when
a flush fails half-way; readers drop duplicates by request id.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from ..errors import StoreUnavailableError

__all__ = ["DiskSpool"]

log = logging.getLogger(__name__)


class DiskSpool:
    """Append-only spool of text lines in ``directory`` (created if needed).

    Args:
        directory: the spool folder; several processes may share it.

    Raises:
        StoreUnavailableError: the folder cannot be created or written (a read-only place,
            a regular file); the message names it.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.token = uuid.uuid4().hex[:12]
        self.active = self.dir / f"spool-{self.token}.jsonl"
        self._lock = threading.Lock()
        self._seq = itertools.count()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.dir / f"spool-{self.token}.lock", "w")
        except OSError as err:
            raise StoreUnavailableError(
                f"cannot use the log spool folder {self.dir} ({type(err).__name__}: {err.strerror or err}); "
                "set store.spool_dir to a writable folder") from err
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)

    def append(self, line: str) -> None:
        """Write one line durably (flush + fsync).

        Raises:
            OSError: the disk refused it.
        """
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        with self._lock, open(self.active, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def _own_files(self) -> list[Path]:
        return sorted(self.dir.glob(f"spool-{self.token}.*.flushing"))

    def has_pending(self) -> bool:
        """True when this process holds unflushed lines, or a dead process left some."""
        return self.active.exists() or bool(self._own_files()) or bool(self._orphan_locks())

    def pending(self) -> int:
        """Lines waiting in this process's files."""
        total = 0
        for path in [self.active, *self._own_files()]:
            try:
                with open(path, "rb") as fh:
                    total += sum(1 for _ in fh)
            except FileNotFoundError:
                pass
        return total

    def _orphan_locks(self) -> list[Path]:
        return [p for p in self.dir.glob("spool-*.lock") if p.name != f"spool-{self.token}.lock"]

    def _claim_orphans(self) -> None:
        """Take over the files of processes that no longer hold their lock."""
        for lock_path in self._orphan_locks():
            try:
                fh = open(lock_path, "a")
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()  # its owner is alive
                continue
            try:
                other = lock_path.name[len("spool-"):-len(".lock")]
                for path in sorted(self.dir.glob(f"spool-{other}.*")):
                    if path != lock_path:
                        path.rename(self.dir / f"spool-{self.token}.{next(self._seq):06d}o.flushing")
                lock_path.unlink(missing_ok=True)
                log.info("claimed the log spool of a stopped process (%s)", other)
            except FileNotFoundError:
                pass
            finally:
                fh.close()

    def drain(self, write: Callable[[list[str]], None], batch: int = 500) -> int:
        """Hand every waiting line to ``write`` (in batches) and delete what was written.

        Returns:
            Lines written. Raises whatever ``write`` raised (the remaining files stay).
        """
        with self._lock:
            if self.active.exists():
                self.active.rename(self.dir / f"spool-{self.token}.{next(self._seq):06d}.flushing")
        self._claim_orphans()
        written = 0
        for path in self._own_files():
            lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
            for i in range(0, len(lines), batch):
                write(lines[i:i + batch])
            path.unlink()
            written += len(lines)
        return written

    def close(self) -> None:
        """Release the lock (files stay for a later process to flush)."""
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
        except (OSError, ValueError):
            pass
        if not self.active.exists() and not self._own_files():
            (self.dir / f"spool-{self.token}.lock").unlink(missing_ok=True)
