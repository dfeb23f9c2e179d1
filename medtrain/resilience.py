"""Runs that survive: checkpoints that are complete or ignored, resuming from the latest complete one,
and preemption (SIGTERM / SIGUSR1) that ends with a checkpoint and a distinct exit code.

Complete checkpoints. The Trainer writes `checkpoint-N/` in place, each rank its own part (rank 0
the model, optimizer and trainer state; every rank its RNG state, DeepSpeed shards and our streaming
position `data_state/rank<r>.pt`). `MedTrainer._save_checkpoint` brackets that with

    begin_checkpoint()     the saving rank removes a stale `checkpoint-N/` left by an earlier attempt;
                           barrier (nobody writes into it before that)
    ... the Trainer's save, and the streaming position ...
    complete_checkpoint()  barrier: every rank has written its part; then the saving rank writes
                           `checkpoint-N/checkpoint_complete.json` (under a temporary name, fsynced,
                           renamed): the step and every file of the checkpoint with its size

A checkpoint is complete when that marker is there, parses, names its own step, and every file it
lists exists with the listed size. Anything else (a save cut short by a crash, a file removed or
truncated later, a checkpoint from another tool) is incomplete: `--resume_from_checkpoint auto`
skips it with a warning naming it and takes the one before. The Trainer's own rotation
(`save_total_limit`) is replaced by `rotate_checkpoints`, which keeps the newest `save_total_limit`
complete checkpoints, never the last complete one, and removes incomplete ones only when they are
older than the newest complete one.

Preemption. `PreemptionCallback` turns SIGTERM and SIGUSR1 during training into a request; at the end
of every step the ranks all-reduce it (one float), so all of them stop after the same step even if
only some got the signal; that step is saved as a complete checkpoint, `run_training` raises
`Preempted`, and `run_main` exits with PREEMPTED_EXIT_CODE (143) after telling the torchrun agent of
this node to stop instead of restarting the workers (torchrun restarts workers that exit non-zero,
up to --max-restarts, and exits 1 itself). The rerun (`--resume_from_checkpoint auto`) continues at
the next step with the same data position. A signal before training starts, or after it ended,
acts as usual (the process ends; nothing is lost that a checkpoint had).

The launcher. `python -m medtrain.resilience torchrun ...` (what run_pt.sh and run_sft.sh exec) runs
torchrun, passes SIGTERM/SIGUSR1/SIGINT/SIGHUP on to it (torchrun passes them on to the workers with
--signals-to-handle), and exits with 143 when the workers stopped for preemption (they write the file
named by MEDTRAIN_EXIT_FILE), or when it was sent SIGTERM/SIGUSR1 and the run failed before a
checkpoint could be saved; with 2 (bad input) or 3 (memory guard) when a rank stopped for those, and
told torchrun not to restart (a restart would fail the same way); otherwise with torchrun's status.

Test hooks (environment, first torchrun attempt only, i.e. TORCHELASTIC_RESTART_COUNT unset or 0):
MEDTRAIN_TEST_KILL_AT_STEP=<step>, MEDTRAIN_TEST_KILL_RANK=<rank> (default 0),
MEDTRAIN_TEST_KILL_SIGNAL=SIGKILL|SIGTERM|SIGUSR1 (default SIGKILL),
MEDTRAIN_TEST_KILL_TARGET=self|agent|launcher (this rank, its torchrun agent, the agent's parent:
the launcher),
MEDTRAIN_TEST_KILL_WHEN=step|save (at the end of the step, or inside the save of that step before the
completion barrier). MEDTRAIN_WAIT_LOG_SECONDS changes the 60 s interval of the "waiting" log lines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from typing import Optional

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
MARKER_FORMAT = 1
# The exit code of a run stopped by SIGTERM/SIGUSR1 after saving its checkpoint: "preempted, resume
# me" (128 + SIGTERM, what schedulers already read as "terminated"; the launcher maps torchrun's own
# exit status to it). Resume with the same command (--resume_from_checkpoint auto).
PREEMPTED_EXIT_CODE = 143
PREEMPTION_SIGNALS = ("SIGTERM", "SIGUSR1")
# The launcher sets this to a file; a rank that ends with an exit code a restart would not change
# (143 preempted, 2 bad input, 3 memory guard) writes it there, and the launcher exits with it (torchrun
# itself exits 1 when its workers fail or it is signalled).
EXIT_FILE_ENV = "MEDTRAIN_EXIT_FILE"
AUTO = "auto"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _wait_log_seconds() -> float:
    return float(os.environ.get("MEDTRAIN_WAIT_LOG_SECONDS", "60") or 60)


# ---------------------------------------------------------------------------------------------------
# complete checkpoints
# ---------------------------------------------------------------------------------------------------
def checkpoint_step(path: str) -> Optional[int]:
    m = _CHECKPOINT_RE.match(os.path.basename(os.path.normpath(str(path))))
    return int(m.group(1)) if m else None


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """(step, path) of every `checkpoint-N` directory in output_dir, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        step = checkpoint_step(name)
        path = os.path.join(output_dir, name)
        if step is not None and os.path.isdir(path):
            found.append((step, path))
    return sorted(found)


def _manifest(folder: str) -> dict:
    files = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if rel == COMPLETE_MARKER or not os.path.isfile(path):
                continue
            files[rel] = os.path.getsize(path)
    return files


def write_complete_marker(folder: str, step: int, world_size: int = 1, **extra) -> dict:
    """Mark `folder` complete: the list of its files with their sizes, written atomically, last."""
    files = _manifest(folder)
    marker = {"format": MARKER_FORMAT, "step": step, "world_size": world_size, "files": files,
              "bytes": sum(files.values()), "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "host": socket.gethostname(), **extra}
    path = os.path.join(folder, COMPLETE_MARKER)
    tmp = f"{path}.tmp.{socket.gethostname()}.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(marker, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return marker


def checkpoint_problem(folder: str) -> Optional[str]:
    """None if `folder` is a complete checkpoint, else why it is not (for the log)."""
    path = os.path.join(folder, COMPLETE_MARKER)
    if not os.path.isdir(folder):
        return "it is not a directory"
    if not os.path.exists(path):
        return (f"it has no completion marker ({COMPLETE_MARKER}): its save was cut short (the run stopped "
                "while writing it) or another tool wrote it")
    try:
        with open(path) as fh:
            marker = json.load(fh)
        files = marker["files"]
        step = marker["step"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"its completion marker is unreadable ({type(e).__name__}: {e})"
    own = checkpoint_step(folder)
    if own is not None and step != own:
        return f"its completion marker is for step {step}, not {own}"
    if not files:
        return "its completion marker lists no files"
    for rel, size in files.items():
        full = os.path.join(folder, rel)
        try:
            actual = os.path.getsize(full)
        except OSError:
            return f"{rel} is missing (listed in its completion marker)"
        if actual != size:
            return f"{rel} has {actual:,} bytes, its completion marker says {size:,} (cut short or rewritten)"
    return None


def is_complete(folder: str) -> bool:
    return checkpoint_problem(folder) is None


def latest_complete_checkpoint(output_dir: str, warn: bool = True) -> Optional[str]:
    """The newest complete checkpoint in output_dir; newer incomplete ones are skipped, each with a
    warning that names it and says why."""
    for step, path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if warn:
            logger.warning("Skipping %s for --resume_from_checkpoint: %s. Trying the checkpoint before it (to use "
                           "this one anyway, pass its path to --resume_from_checkpoint).", path, problem)
    return None


def resolve_resume(resume, output_dir: str, rank: int = 0):
    """What `--resume_from_checkpoint` means for this run, as a path or None (start fresh):
    `auto`: the latest complete checkpoint in output_dir, or none; True (true/latest): the latest
    complete one, an error if there is none; a path: that checkpoint (a warning if it is not marked
    complete). Reads the filesystem only (no collective: this runs before data preparation)."""
    main = rank == 0
    if resume is None or resume is False:
        existing = list_checkpoints(output_dir)
        if existing and main:
            logger.warning("%s already holds checkpoints up to %s, and --resume_from_checkpoint is not set: "
                           "starting fresh (checkpoints of the same steps will be overwritten). Pass "
                           "--resume_from_checkpoint auto to continue from the latest complete one.",
                           output_dir, os.path.basename(existing[-1][1]))
        return None
    if resume is True or str(resume).lower() == AUTO:
        found = latest_complete_checkpoint(output_dir, warn=main)
        if found is not None:
            if main:
                logger.info("Resuming from %s (the latest complete checkpoint in %s; --resume_from_checkpoint %s)",
                            found, output_dir, "auto" if resume is not True else "true")
            return found
        if resume is True:
            raise ValueError(f"--resume_from_checkpoint true: no complete checkpoint in {output_dir} (see the "
                             "warnings above for those skipped); pass `auto` to start fresh when there is none, "
                             "or the path of a checkpoint")
        if main:
            logger.info("No complete checkpoint in %s: starting fresh (--resume_from_checkpoint auto)", output_dir)
        return None
    path = str(resume)
    if not os.path.isdir(path):
        raise ValueError(f"--resume_from_checkpoint {path}: no such checkpoint directory")
    problem = checkpoint_problem(path)
    if main:
        if problem is None:
            logger.info("Resuming from %s (--resume_from_checkpoint)", path)
        else:
            logger.warning("Resuming from %s as asked, although %s", path, problem)
    return path


# ---------------------------------------------------------------------------------------------------
# waiting, visibly
# ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def waiting(what: str, why: str, every: Optional[float] = None):
    """Logs every minute (a warning, so every rank shows it) while the block waits: which rank, for
    what, why, and for how long so far."""
    every = every or _wait_log_seconds()
    done = threading.Event()
    t0 = time.time()
    rank = _rank()

    def report():
        while not done.wait(every):
            logger.warning("rank %d has waited %.0f s %s: %s", rank, time.time() - t0, what, why)

    thread = threading.Thread(target=report, name="medtrain-wait-log", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def _group_size() -> int:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def barrier(what: str, why: str, timeout_s: Optional[float] = None) -> None:
    """A barrier of all ranks (nothing without a process group), logged while it waits; its timeout
    is the process group's (--ddp_timeout)."""
    if _group_size() <= 1:
        return
    import torch.distributed as dist

    t0 = time.time()
    try:
        with waiting(what, why):
            dist.barrier()
    except Exception as e:
        limit = f" (--ddp_timeout {timeout_s:.0f} s)" if timeout_s else ""
        raise RuntimeError(f"rank {_rank()}: {what} failed after {time.time() - t0:.0f} s{limit}: {e}. {why}") from e


# ---------------------------------------------------------------------------------------------------
# saving: begin, complete, rotate
# ---------------------------------------------------------------------------------------------------
def begin_checkpoint(folder: str, args) -> None:
    """Before any rank writes `folder`: the saving rank removes what an earlier attempt left there (a
    checkpoint of the same step, complete or not, which this save replaces), then all ranks meet."""
    if args.should_save and os.path.isdir(folder):
        state = "complete" if is_complete(folder) else "incomplete"
        logger.warning("Replacing %s (%s, left by an earlier attempt) with the checkpoint of this run", folder, state)
        marker = os.path.join(folder, COMPLETE_MARKER)
        if os.path.exists(marker):
            os.remove(marker)  # first, so a crash during the removal leaves it incomplete
        shutil.rmtree(folder, ignore_errors=True)
    barrier(f"before writing {os.path.basename(folder)}",
            "every rank waits until the saving rank has cleared the directory, so no rank writes into it early",
            getattr(args, "ddp_timeout", None))


def complete_checkpoint(folder: str, args, state, keep: Optional[int] = None) -> None:
    """After this rank wrote its part of `folder`: wait for every rank, then the saving rank writes
    the completion marker and rotates old checkpoints (keeping `keep` complete ones)."""
    test_hook("save", state.global_step)
    name = os.path.basename(folder)
    barrier(f"at the checkpoint barrier of {name}",
            f"every rank waits until all ranks have written their part of {name} (model, optimizer shards, RNG "
            "state, data position); only then is it marked complete. If a rank never arrives, the run fails at "
            "--ddp_timeout and the checkpoint stays incomplete (--resume_from_checkpoint auto skips it)",
            getattr(args, "ddp_timeout", None))
    if not args.should_save:
        return
    marker = write_complete_marker(folder, state.global_step, getattr(args, "world_size", 1))
    logger.info("Checkpoint %s complete (%d files, %s bytes, marked in %s)", folder, len(marker["files"]),
                f"{marker['bytes']:,}", COMPLETE_MARKER)
    rotate_checkpoints(os.path.dirname(folder), keep, getattr(state, "best_model_checkpoint", None), current=folder)


def rotate_checkpoints(output_dir: str, keep: Optional[int], best: Optional[str] = None,
                       current: Optional[str] = None) -> list[str]:
    """`save_total_limit`, safely: keep the newest `keep` complete checkpoints (and the best one, and
    `current`, the one just written); remove older complete ones, and incomplete ones older than the
    newest complete one (they can never be resumed from). Never removes the newest complete
    checkpoint, nor anything when there is none. Returns the removed paths."""
    if not keep or keep <= 0:
        return []
    found = list_checkpoints(output_dir)
    complete = [p for _, p in found if is_complete(p)]
    if not complete:
        return []
    newest = complete[-1]
    protected = {os.path.normpath(p) for p in [*complete[-keep:], newest, best, current] if p}
    newest_step = checkpoint_step(newest)
    removed = []
    for step, path in found:
        if os.path.normpath(path) in protected:
            continue
        if path in complete:
            why = f"save_total_limit {keep}"
        elif step < newest_step:
            why = f"incomplete, and older than the complete {os.path.basename(newest)}"
        else:
            continue  # an incomplete one newer than the newest complete: replaced when the run gets there
        logger.info("Deleting %s (%s)", path, why)
        marker = os.path.join(path, COMPLETE_MARKER)
        if os.path.exists(marker):
            os.remove(marker)  # a half-deleted checkpoint must not look complete
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def no_trainer_rotation(args):
    """Turn off the Trainer's own deletion of checkpoints (it rotates before the newest checkpoint is
    complete, and at the end of training with save_total_limit=1 it keeps only the best one):
    `rotate_checkpoints` does it instead, after the completion marker."""
    limit = args.save_total_limit
    args.save_total_limit = None
    try:
        yield limit
    finally:
        args.save_total_limit = limit


# ---------------------------------------------------------------------------------------------------
# preemption
# ---------------------------------------------------------------------------------------------------
class Preempted(Exception):
    """Training stopped on SIGTERM/SIGUSR1 after saving `checkpoint`; exit with PREEMPTED_EXIT_CODE."""

    def __init__(self, step: int, checkpoint: Optional[str], signals: str, restore=None):
        self.step, self.checkpoint, self.signals = step, checkpoint, signals
        self.restore = restore  # puts the previous signal handlers back
        super().__init__(f"preempted ({signals}) after step {step}; saved {checkpoint}")


class _Preemption:
    """SIGTERM/SIGUSR1 during training: finish the step, agree with every rank (all-reduce of a stop
    flag at each step end), save a complete checkpoint of that step, stop. Also checks at the start of
    training that every rank resumes from the same checkpoint, and runs the kill test hooks.
    (`PreemptionCallback` is this on a TrainerCallback, made on first use: the launcher below imports
    this module without transformers.)"""

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
        test_hook("step", state.global_step, self.received)
        local = bool(self.received)
        if local and not self._announced:
            logger.warning("rank %d received %s: every rank stops after step %d, saves a checkpoint, and the run "
                           "exits with code %d (preempted; rerun the same command to resume)", _rank(),
                           "+".join(sorted(set(self.received))), state.global_step, PREEMPTED_EXIT_CODE)
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


def __getattr__(name):
    if name == "PreemptionCallback":
        from transformers import TrainerCallback

        cls = type("PreemptionCallback", (_Preemption, TrainerCallback), {"__module__": __name__,
                                                                         "__doc__": _Preemption.__doc__})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def stop_requested_anywhere(local: bool, device=None) -> bool:
    """All-reduce (max) of this rank's stop request: the same answer on every rank, at the same step."""
    if _group_size() <= 1:
        return local
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if local else 0.0], device=device if device is not None else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def check_same_checkpoint(checkpoint: Optional[str]) -> None:
    """Every rank resumes from the same step (nodes that do not share output_dir could decide
    differently). Runs at the start of training: after data preparation, before the first step."""
    if _group_size() <= 1:
        return
    from .distributed import gather_object

    steps = gather_object(None if checkpoint is None else checkpoint_step(checkpoint))
    if len(set(steps)) > 1:
        seen = ", ".join(f"rank {r}: {'fresh start' if s is None else f'checkpoint-{s}'}" for r, s in enumerate(steps))
        raise RuntimeError(f"the ranks would resume from different checkpoints ({seen}). output_dir must be one "
                           "directory shared by all nodes (or pass the same checkpoint path to every node)")


def _parent_of(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def exit_preempted(e: Preempted) -> int:
    """End a preempted run: leave the process group cleanly, tell the launcher (MEDTRAIN_EXIT_FILE)
    and this node's torchrun agent (so it does not restart the workers), and return the exit code."""
    from .distributed import finish

    if _rank() == 0:
        logger.warning("Preempted (%s) after step %d: %s is complete. Exiting with code %d; rerun the same command "
                       "(--resume_from_checkpoint auto) to continue at step %d with the same data.", e.signals,
                       e.step, e.checkpoint, PREEMPTED_EXIT_CODE, e.step + 1)
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
    _tell_launcher(PREEMPTED_EXIT_CODE, f"preempted, {e.checkpoint} saved", step=e.step, checkpoint=e.checkpoint,
                   signals=e.signals)
    if os.environ.get("LOCAL_RANK", "0") == "0":
        _stop_agent("--max-restarts is for crashes, not preemption")
    return PREEMPTED_EXIT_CODE


def _tell_launcher(code: int, why: str, **more) -> None:
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


def _stop_agent(why: str) -> None:
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
    _tell_launcher(code, "bad input" if code == 2 else "memory guard" if code == 3 else "error")
    _stop_agent("a restart would fail the same way")
    return code


# ---------------------------------------------------------------------------------------------------
# test hooks
# ---------------------------------------------------------------------------------------------------
def test_hook(when: str, step: Optional[int], received: Optional[list] = None) -> None:
    """MEDTRAIN_TEST_KILL_*: send a signal at a given step (see the module docstring). A preemption
    signal sent to the agent or launcher comes back to this rank through them: the hook waits for it
    (up to 60 s, `received` filled by the handler), so that the run stops at this very step."""
    at = os.environ.get("MEDTRAIN_TEST_KILL_AT_STEP")
    if not at or step is None or step != int(at):
        return
    if os.environ.get("MEDTRAIN_TEST_KILL_WHEN", "step") != when:
        return
    if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0"):
        return
    if _rank() != int(os.environ.get("MEDTRAIN_TEST_KILL_RANK", "0")):
        return
    sig = getattr(signal, os.environ.get("MEDTRAIN_TEST_KILL_SIGNAL", "SIGKILL"))
    target = os.environ.get("MEDTRAIN_TEST_KILL_TARGET", "self")
    pid = os.getpid()
    if target in ("agent", "launcher"):
        pid = os.getppid()
    if target == "launcher":
        pid = _parent_of(pid) or pid
    logger.warning("test hook: rank %d sends %s to %s (pid %d) at step %d (%s)", _rank(), sig.name, target, pid,
                   step, when)
    for h in logging.getLogger().handlers:
        h.flush()
    os.kill(pid, sig)
    if sig == signal.SIGKILL and target == "self":  # pragma: no cover
        time.sleep(60)
    if received is not None and target != "self":
        deadline = time.time() + 60
        while not received and time.time() < deadline:
            time.sleep(0.01)


# ---------------------------------------------------------------------------------------------------
# the launcher: `python -m medtrain.resilience torchrun ...` (run_pt.sh, run_sft.sh)
# ---------------------------------------------------------------------------------------------------
def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and _parent_of(int(entry)) == pid:
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def launch(cmd: list[str], shutdown_timeout: float = 300.0) -> int:
    """Run `cmd` (torchrun ...) and return its exit status, or the exit code a rank wrote to
    MEDTRAIN_EXIT_FILE (143 preempted; 2, 3: errors not restarted), or 143 when this process was sent
    SIGTERM/SIGUSR1 and the run failed. SIGTERM/SIGUSR1/SIGINT/SIGHUP are passed on to `cmd` (torchrun
    passes them on to the workers); after one, this waits for the workers too, as torchrun stops
    waiting for them when it gets a second signal (e.g. Slurm signalling every process of the job)."""
    import subprocess
    import tempfile

    fd, path = tempfile.mkstemp(prefix="medtrain-exit.")
    os.close(fd)
    child = subprocess.Popen(cmd, env={**os.environ, EXIT_FILE_ENV: path})
    got: dict = {"signal": None, "workers": set()}

    def forward(signum, frame):
        got["signal"] = signal.Signals(signum).name
        got["workers"] |= _children(child.pid)
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for name in ("SIGTERM", "SIGUSR1", "SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), forward)
    try:
        rc = child.wait()
        if got["signal"]:
            deadline = time.time() + shutdown_timeout
            while any(_alive(w) for w in got["workers"]) and time.time() < deadline:
                time.sleep(0.5)
        rc = 128 - rc if rc < 0 else rc  # killed by a signal: the shell's convention
        with open(path) as fh:
            told = fh.read().strip()
    finally:
        os.remove(path)
    name = "medtrain launcher"
    try:
        told = json.loads(told) if told else {}
    except ValueError:
        told = {}
    code = told.get("exit_code")
    if code == PREEMPTED_EXIT_CODE:
        print(f"{name}: preempted, checkpoint saved ({told.get('checkpoint')}, after step {told.get('step')}); exit "
              f"code {code}: run the same command again to resume", file=sys.stderr, flush=True)
        return code
    if rc != 0 and got["signal"] in ("SIGTERM", "SIGUSR1"):
        print(f"{name}: stopped by {got['signal']} before a checkpoint could be saved; exit code "
              f"{PREEMPTED_EXIT_CODE}: rerunning resumes from the latest complete checkpoint", file=sys.stderr,
              flush=True)
        return PREEMPTED_EXIT_CODE
    if rc != 0 and isinstance(code, int):
        print(f"{name}: rank {told.get('rank')} ended with exit code {code} ({told.get('why')}), not restarted",
              file=sys.stderr, flush=True)
        return code
    return rc


def torchrun_command(script_and_args: list[str], env=os.environ) -> list[str]:
    """The torchrun command of `run_pt.sh` / `run_sft.sh`, from their environment variables:
    NNODES, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT, MAX_RESTARTS, SHUTDOWN_TIMEOUT, and RDZV_BACKEND
    (c10d: nodes meet at MASTER_ADDR:MASTER_PORT with a fresh store at every restart, rank 0 goes to
    the node the rendezvous picks; static: NODE_RANK fixes the ranks, but restarts are unreliable as
    torch's static rendezvous keeps its store across restarts)."""
    backend = env.get("RDZV_BACKEND", "c10d")
    addr, port = env.get("MASTER_ADDR", "127.0.0.1"), env.get("MASTER_PORT", "29500")
    if backend == "static":
        rdzv = ["--node_rank", env.get("NODE_RANK", "0"), "--master_addr", addr, "--master_port", port]
    else:
        rdzv = ["--rdzv-backend", backend, "--rdzv-endpoint", f"{addr}:{port}", "--rdzv-id",
                env.get("RDZV_ID", "medtrain")]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", env.get("NNODES", "1"),
            "--nproc_per_node", env.get("NPROC_PER_NODE", "1"), *rdzv,
            "--max-restarts", env.get("MAX_RESTARTS", "3"), "--shutdown-timeout", env.get("SHUTDOWN_TIMEOUT", "300"),
            "--signals-to-handle", "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1", *script_and_args]


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m medtrain.resilience SCRIPT [arguments]   (torchrun from the environment, "
                 "see torchrun_command)\n       python -m medtrain.resilience torchrun [torchrun arguments] "
                 "SCRIPT [arguments]")
    if sys.argv[1] == "torchrun":
        command = sys.argv[1:]
    else:
        if os.environ.get("RDZV_BACKEND", "c10d") != "static":
            os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"  # a fresh store at every restart
        command = torchrun_command(sys.argv[1:])
    sys.exit(launch(command, float(os.environ.get("SHUTDOWN_TIMEOUT", "300") or 300)))
