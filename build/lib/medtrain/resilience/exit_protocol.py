"""The exit-file protocol between a rank and the launcher (`python -m medtrain.resilience`).

The launcher sets MEDTRAIN_EXIT_FILE to a file; a rank that ends with an exit code a restart would not
change (143 preempted, 2 bad input, 3 memory guard) writes `{"exit_code", "why", "rank", ...}` there,
and the launcher exits with that code (torchrun itself exits 1 whenever its workers fail). The rank
also asks its torchrun agent to stop rather than restart the workers (`--max-restarts` is for
crashes, not for preemption or bad input).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from typing import Optional

from medtrain.errors import EXIT_BAD_INPUT, EXIT_MEMORY_GUARD
from medtrain.resilience.barriers import rank as _rank

logger = logging.getLogger(__name__)

EXIT_FILE_ENV = "MEDTRAIN_EXIT_FILE"


def parent_of(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def tell_launcher(code: int, why: str, **more) -> None:
    path = os.environ.get(EXIT_FILE_ENV)
    if not path:
        return
    try:
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump({"exit_code": code, "why": why, "rank": _rank(), **more}, fh)
        os.replace(tmp, path)
    except OSError as err:
        logger.warning("could not write %s=%s: %s", EXIT_FILE_ENV, path, err)


def stop_agent(why: str) -> None:
    """Under torchrun with restarts left, ask this node's agent (our parent) to stop instead of
    restarting the workers: it then stops them and exits (status 1, a SignalException traceback)."""
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0)
    if not os.environ.get("TORCHELASTIC_RUN_ID") or restarts <= 0:
        return
    agent = os.getppid()
    logger.warning("rank %d: asking the torchrun agent (pid %d) to stop rather than restart the workers (%s)",
                   _rank(), agent, why)
    try:
        os.kill(agent, signal.SIGTERM)
    except OSError:
        pass


def no_restart(code: int) -> int:
    """For errors that a restart repeats (bad input, the memory guard): no restart; returns `code`."""
    tell_launcher(code, "bad input" if code == EXIT_BAD_INPUT else "memory guard" if code == EXIT_MEMORY_GUARD else "error")
    stop_agent("a restart would fail the same way")
    return code
