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


class MemoryGuardError(RuntimeError):
    """Raised instead of letting the OS kill the process when memory runs out."""


class Preempted(Exception):
    """Training stopped on SIGTERM/SIGUSR1 after saving `checkpoint`; exit with EXIT_PREEMPTED."""

    def __init__(self, step: int, checkpoint: Optional[str], signals: str, restore: Optional[Callable] = None):
        self.step, self.checkpoint, self.signals = step, checkpoint, signals
        self.restore = restore  # puts the previous signal handlers back
        super().__init__(f"preempted ({signals}) after step {step}; saved {checkpoint}")
