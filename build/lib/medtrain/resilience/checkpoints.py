"""Checkpoints that are complete or ignored: the completion marker, resuming from the latest complete
checkpoint, and rotation that never deletes the last good one.

The Trainer writes `checkpoint-N/` in place, each rank its own part (rank 0 the model, optimizer and
trainer state; every rank its RNG state, DeepSpeed shards and our streaming position
`data_state/rank<r>.json`). `MedTrainer._save_checkpoint` brackets that with

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
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import time
from typing import Optional

from medtrain.resilience import faults
from medtrain.resilience.barriers import barrier, group_size

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
MARKER_FORMAT = 1
AUTO = "auto"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


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
    faults.point("checkpoint_save", step=state.global_step)
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


def check_same_checkpoint(checkpoint: Optional[str]) -> None:
    """Every rank resumes from the same step (nodes that do not share output_dir could decide
    differently). Runs at the start of training: after data preparation, before the first step."""
    if group_size() <= 1:
        return
    from medtrain.runtime.distributed import gather_object

    steps = gather_object(None if checkpoint is None else checkpoint_step(checkpoint))
    if len(set(steps)) > 1:
        seen = ", ".join(f"rank {r}: {'fresh start' if s is None else f'checkpoint-{s}'}" for r, s in enumerate(steps))
        raise RuntimeError(f"the ranks would resume from different checkpoints ({seen}). output_dir must be one "
                           "directory shared by all nodes (or pass the same checkpoint path to every node)")
