"""Errors a user can act on, and the exit codes they end a run with.

Every entry point turns these into one line on stderr and an exit code (never a traceback):

    DataError          bad input: a file, a line, a flag value          -> EXIT_BAD_INPUT (2)
    MemoryGuardError   memory nearly exhausted, stopped before the OS kills the run -> EXIT_MEMORY_GUARD (3)
    Preempted          SIGTERM/SIGUSR1: a complete checkpoint was saved  -> EXIT_PREEMPTED (143)

2 and 3 are errors a restart would repeat, so the launcher tells torchrun not to restart; 143
(128 + SIGTERM, what schedulers read as "terminated") means "preempted, run the same command again".
"""

from __future__ import annotations

from typing import Callable, Optional

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_MEMORY_GUARD = 3
EXIT_PREEMPTED = 143


class DataError(ValueError):
    """Bad input data or settings. The message names the file (and line, where there is one) and the fix."""


def write_failure(exc: BaseException, path: str, what: str, needed: Optional[int] = None) -> Optional[DataError]:
    """A DataError naming `path` and the cause when `exc` is a failed write for a reason the user can fix
    (disk full, no permission, read-only filesystem); None for anything else. Torch reports a full disk
    as a RuntimeError without errno, so a write that fails while the filesystem has less than 64 MB free
    counts as a full disk too."""
    import errno
    import os
    import shutil

    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    while folder and not os.path.exists(folder):
        folder = os.path.dirname(folder)
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    code = getattr(exc, "errno", None)
    full = code in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc) or (
        free is not None and free < (64 << 20) and isinstance(exc, (OSError, RuntimeError))
        and ("iostream" in str(exc) or "write" in str(exc).lower()))
    if full:
        space = f"{free / 2**20:,.1f} MB free there" if free is not None else "the free space is unknown"
        need = f"; about {needed / 2**20:,.0f} MB more are needed" if needed else ""
        return DataError(f"{what}: the disk is full while writing {path} ({space}{need}). Free space on that "
                         "filesystem or choose another directory; nothing half-written is trusted by a later run")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DataError(f"{what}: cannot write {path} ({os.strerror(code)}). Choose a directory you can write to")
    return None


class MemoryGuardError(RuntimeError):
    """Raised instead of letting the OS kill the process when memory runs out."""


class Preempted(Exception):
    """Training stopped on SIGTERM/SIGUSR1 after saving `checkpoint`; exit with EXIT_PREEMPTED."""

    def __init__(self, step: int, checkpoint: Optional[str], signals: str, restore: Optional[Callable] = None):
        self.step, self.checkpoint, self.signals = step, checkpoint, signals
        self.restore = restore  # puts the previous signal handlers back
        super().__init__(f"preempted ({signals}) after step {step}; saved {checkpoint}")
