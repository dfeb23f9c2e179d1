"""Fault injectors for tests: kill or signal a process at a training step, slow down a store build.

In-process: `faults.install(KillAtStep(4, signal="SIGTERM"))`. In subprocesses: set the variables
read by `install_from_env` (sitecustomize.py in this directory installs it at start-up):

    MEDTRAIN_TEST_KILL_AT_STEP=<step>  MEDTRAIN_TEST_KILL_RANK=<rank> (default 0)
    MEDTRAIN_TEST_KILL_SIGNAL=SIGKILL|SIGTERM|SIGUSR1 (default SIGKILL)
    MEDTRAIN_TEST_KILL_TARGET=self|agent|launcher (this rank, its torchrun agent, the agent's parent)
    MEDTRAIN_TEST_KILL_WHEN=step|save (end of the step, or inside the save before the completion barrier)
    MEDTRAIN_TEST_SLOW_UNIT_SECONDS=<s>  MEDTRAIN_TEST_SLOW_RANK=<rank> (default: every rank)
    MEDTRAIN_TEST_SLOW_UNITS=<n> (only the first n units of each process; default: every unit)
    MEDTRAIN_TEST_WAIT_LOG_SECONDS=<s>   interval of the "waiting" log lines

Kills act on the first torchrun attempt only (TORCHELASTIC_RESTART_COUNT unset or 0).
"""

import logging
import os
import signal
import time

logger = logging.getLogger("medtrain.test_faults")


def _parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class KillAtStep:
    """Send `signal` to `target` when rank `rank` reaches `step` (at the step's end, or in its save)."""

    def __init__(self, step, rank=0, signal="SIGKILL", target="self", when="step"):
        self.step, self.rank, self.signal, self.target, self.when = int(step), int(rank), signal, target, when

    def __call__(self, name, step=None, received=None, **info):
        point = {"step_end": "step", "checkpoint_save": "save"}.get(name)
        if point != self.when or step != self.step:
            return
        if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0"):
            return
        me = int(os.environ.get("RANK", "0"))
        if me != self.rank:
            return
        sig = getattr(signal, self.signal)
        pid = os.getpid()
        if self.target in ("agent", "launcher"):
            pid = os.getppid()
        if self.target == "launcher":
            pid = _parent_of(pid) or pid
        logger.warning("test hook: rank %d sends %s to %s (pid %d) at step %d (%s)", me, sig.name, self.target, pid,
                       step, self.when)
        for h in logging.getLogger().handlers:
            h.flush()
        os.kill(pid, sig)
        if sig == signal.SIGKILL and self.target == "self":
            time.sleep(60)
        if received is not None and self.target != "self":
            deadline = time.time() + 60  # the signal comes back to this rank through the agent
            while not received and time.time() < deadline:
                time.sleep(0.01)


class SlowUnits:
    """Sleep `seconds` before each token-store unit this rank builds (all ranks, or only `rank`), or only
    before the first `at_most` units of this process."""

    def __init__(self, seconds, rank=None, at_most=None):
        self.seconds, self.rank = float(seconds), rank
        self.left = None if at_most is None else int(at_most)

    def __call__(self, name, **info):
        if name == "unit_build" and (self.rank is None or int(os.environ.get("RANK", "0")) == int(self.rank)):
            if self.left is not None:
                if self.left <= 0:
                    return
                self.left -= 1
            time.sleep(self.seconds)


class Several:
    def __init__(self, *injectors):
        self.injectors = injectors

    def __call__(self, name, **info):
        for i in self.injectors:
            i(name, **info)


def install_from_env(env=os.environ):
    from medtrain.resilience import barriers, faults

    injectors = []
    if env.get("MEDTRAIN_TEST_KILL_AT_STEP"):
        injectors.append(KillAtStep(env["MEDTRAIN_TEST_KILL_AT_STEP"], env.get("MEDTRAIN_TEST_KILL_RANK", "0"),
                                    env.get("MEDTRAIN_TEST_KILL_SIGNAL", "SIGKILL"),
                                    env.get("MEDTRAIN_TEST_KILL_TARGET", "self"), env.get("MEDTRAIN_TEST_KILL_WHEN", "step")))
    if env.get("MEDTRAIN_TEST_SLOW_UNIT_SECONDS"):
        injectors.append(SlowUnits(env["MEDTRAIN_TEST_SLOW_UNIT_SECONDS"], env.get("MEDTRAIN_TEST_SLOW_RANK"),
                                   env.get("MEDTRAIN_TEST_SLOW_UNITS")))
    if env.get("MEDTRAIN_TEST_WAIT_LOG_SECONDS"):
        barriers.WAIT_LOG_SECONDS = float(env["MEDTRAIN_TEST_WAIT_LOG_SECONDS"])
    if injectors:
        faults.install(Several(*injectors))
