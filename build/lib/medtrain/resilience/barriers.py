"""Barriers that say what they wait for: a collective of all ranks, logged every minute while it waits.

`waiting(what, why)` logs (a warning, so every rank shows it) which rank waits, for what, why and for
how long so far; `barrier(what, why)` is a `torch.distributed` barrier inside it, whose failure names
the wait and the --ddp_timeout. Without a process group both do nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Optional

logger = logging.getLogger(__name__)

WAIT_LOG_SECONDS = 60.0  # interval of the "waiting" log lines


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def waiting(what: str, why: str, every: Optional[float] = None):
    """Logs every minute (a warning, so every rank shows it) while the block waits: which rank, for
    what, why, and for how long so far."""
    every = every or WAIT_LOG_SECONDS
    done = threading.Event()
    t0 = time.time()
    me = rank()

    def report():
        while not done.wait(every):
            logger.warning("rank %d has waited %.0f s %s: %s", me, time.time() - t0, what, why)

    thread = threading.Thread(target=report, name="medtrain-wait-log", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def group_size() -> int:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def barrier(what: str, why: str, timeout_s: Optional[float] = None) -> None:
    """A barrier of all ranks (nothing without a process group), logged while it waits; its timeout
    is the process group's (--ddp_timeout)."""
    if group_size() <= 1:
        return
    import torch.distributed as dist

    t0 = time.time()
    try:
        with waiting(what, why):
            dist.barrier()
    except Exception as e:
        limit = f" (--ddp_timeout {timeout_s:.0f} s)" if timeout_s else ""
        raise RuntimeError(f"rank {rank()}: {what} failed after {time.time() - t0:.0f} s{limit}: {e}. {why}") from e
