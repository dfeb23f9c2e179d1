"""Preemption: SIGTERM / SIGUSR1 during training end with a complete checkpoint and exit code 143.

`PreemptionCallback` turns the signal into a request; at the end of every step the ranks all-reduce it
(one float), so all of them stop after the same step even if only some got the signal; that step is
saved as a complete checkpoint, `training()` raises `Preempted`, and `exit_preempted` returns
EXIT_PREEMPTED (143) after telling the launcher and this node's torchrun agent not to restart the
workers. The rerun (`--resume_from_checkpoint auto`) continues at the next step with the same data
position. A signal before training starts, or after it ended, acts as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Optional

from transformers import TrainerCallback

from medtrain.errors import EXIT_PREEMPTED, Preempted
from medtrain.resilience import faults
from medtrain.resilience.barriers import group_size, rank as _rank
from medtrain.resilience.checkpoints import check_same_checkpoint
from medtrain.resilience.exit_protocol import stop_agent, tell_launcher
from medtrain.runtime.distributed import finish

logger = logging.getLogger(__name__)

PREEMPTION_SIGNALS = ("SIGTERM", "SIGUSR1")


class PreemptionCallback(TrainerCallback):
    """SIGTERM/SIGUSR1 during training: finish the step, agree with every rank (all-reduce of a stop
    flag at each step end), save a complete checkpoint of that step, stop. Also checks at the start of
    training that every rank resumes from the same checkpoint."""

    def __init__(self, resume_checkpoint: Optional[str] = None):
        self.resume_checkpoint = resume_checkpoint
        self.received: list[str] = []
        self.stopped_at: Optional[int] = None
        self.checkpoint: Optional[str] = None
        self._previous: dict = {}
        self._announced = False

    # -- signals ------------------------------------------------------------------------------------
    def _handler(self, signum, frame):
        self.received.append(signal.Signals(signum).name)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("not in the main thread: SIGTERM/SIGUSR1 will not save a checkpoint before exiting")
            return
        for name in PREEMPTION_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None and sig not in self._previous:
                self._previous[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            try:
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            except (ValueError, TypeError):  # pragma: no cover - not the main thread
                pass
        self._previous = {}

    # -- callback -----------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kw):
        check_same_checkpoint(self.resume_checkpoint)
        self.install()

    def on_step_end(self, args, state, control, **kw):
        faults.point("step_end", step=state.global_step, received=self.received)
        local = bool(self.received)
        if local and not self._announced:
            logger.warning("rank %d received %s: every rank stops after step %d, saves a checkpoint, and the run "
                           "exits with code %d (preempted; rerun the same command to resume)", _rank(),
                           "+".join(sorted(set(self.received))), state.global_step, EXIT_PREEMPTED)
            self._announced = True
        if not stop_requested_anywhere(local, args.device):
            return
        self.stopped_at = state.global_step
        self.checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        control.should_save = True
        control.should_training_stop = True
        control.should_evaluate = False  # no time for it: the scheduler is about to kill the job
        if state.is_world_process_zero:
            logger.warning("Preemption requested: all ranks stop after step %d and save %s", state.global_step,
                           self.checkpoint)

    def on_train_end(self, args, state, control, **kw):
        if self.stopped_at is None:
            self.restore()  # a signal after training (final save, evaluation) acts as usual

    @contextlib.contextmanager
    def training(self):
        """Around `trainer.train()`: raises Preempted after a preemption stop (its checkpoint saved);
        puts the previous signal handlers back when training fails."""
        try:
            yield self
        except BaseException:
            self.restore()
            raise
        if self.stopped_at is not None:
            raise Preempted(self.stopped_at, self.checkpoint, "+".join(sorted(set(self.received))) or "another rank",
                            self.restore)
        self.restore()


def stop_requested_anywhere(local: bool, device=None) -> bool:
    """All-reduce (max) of this rank's stop request: the same answer on every rank, at the same step."""
    if group_size() <= 1:
        return local
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if local else 0.0], device=device if device is not None else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def exit_preempted(e: Preempted) -> int:
    """End a preempted run: leave the process group cleanly, tell the launcher (MEDTRAIN_EXIT_FILE)
    and this node's torchrun agent (so it does not restart the workers), and return the exit code."""
    if _rank() == 0:
        logger.warning("Preempted (%s) after step %d: %s is complete. Exiting with code %d; rerun the same command "
                       "(--resume_from_checkpoint auto) to continue at step %d with the same data.", e.signals,
                       e.step, e.checkpoint, EXIT_PREEMPTED, e.step + 1)
    elastic = bool(os.environ.get("TORCHELASTIC_RUN_ID"))
    if elastic and threading.current_thread() is threading.main_thread():
        # the torchrun agent sends SIGTERM to the workers when it stops: this process is exiting anyway
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif e.restore is not None:
        e.restore()
    try:
        finish()
    except Exception as err:  # pragma: no cover - a rank already gone
        logger.warning("leaving the process group after preemption: %s", err)
    tell_launcher(EXIT_PREEMPTED, f"preempted, {e.checkpoint} saved", step=e.step, checkpoint=e.checkpoint,
                   signals=e.signals)
    if os.environ.get("LOCAL_RANK", "0") == "0":
        stop_agent("--max-restarts is for crashes, not preemption")
    return EXIT_PREEMPTED
