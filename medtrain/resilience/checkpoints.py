"""Checkpoints that are complete or ignored: the completion marker (with a checksum of every file),
resuming from the latest intact checkpoint, knowing when a run is already finished, and rotation that
never deletes the last good one.

The Trainer writes `checkpoint-N/` in place, each rank its own part (rank 0 the model, optimizer and
trainer state; every rank its RNG state, DeepSpeed shards and our streaming position
`data_state/rank<r>.json`). `MedTrainer._save_checkpoint` brackets that with

    begin_checkpoint()     the saving rank removes a stale `checkpoint-N/` left by an earlier attempt;
                           barrier (nobody writes into it before that)
    ... the Trainer's save, and the streaming position ...
    complete_checkpoint()  barrier: every rank has written its part; then the saving rank writes
                           `checkpoint-N/checkpoint_complete.json` (under a temporary name, fsynced,
                           renamed): the step, and every file of the checkpoint with its size and a
                           checksum of its content

The marker (format 2), for example:

    {"format": 2, "step": 6, "world_size": 2, "checksum": "xxh3_128",
     "files":     {"model.safetensors": 1918496, "optimizer.pt": 3838458, ...},
     "checksums": {"model.safetensors": "5c1f...e0", "optimizer.pt": "a9b2...17", ...}, ...}

A checkpoint is complete when that marker is there, parses, names its own step, every file it lists
exists with the listed size, and (when verified: before resuming) every file's content hashes to the
listed checksum. Anything else (a save cut short by a crash, a file removed, truncated or overwritten
with other bytes of the same size, a file that cannot be read, a checkpoint from another tool) is
incomplete: `--resume_from_checkpoint auto` skips it with a warning naming it and the file, and takes
the one before. A path given explicitly is used as asked when it merely lacks a marker, but refused
when its content does not match its marker: the Trainer and DeepSpeed read parts of a checkpoint with
pickle, so a checkpoint whose bytes changed after the save is never loaded.

Checksums are xxhash's xxh3_128 (about 20 GB/s per core from the page cache, so the disk's read
speed is the cost; blake2b from hashlib, about 1 GB/s per core, is the fallback when xxhash is
missing; see BENCHMARKS.md, "Checkpoint checksums"). Markers written before checksums (format 1,
sizes only) stay readable: such a checkpoint counts as complete by its sizes, and resuming from it
warns that its content cannot be verified.

The Trainer's own rotation (`save_total_limit`) is replaced by `rotate_checkpoints`, which keeps the
newest `save_total_limit` complete checkpoints, never the last complete one, and removes incomplete
ones only when they are older than the newest complete one (rotation checks sizes only: the newest
checkpoint was hashed a moment before, while it was being marked).

`finished_run(output_dir, max_steps)` tells a rerun of a finished job (`auto` is the launchers'
default) that there is nothing left to train, instead of training step max_steps + 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from medtrain.errors import DataError
from medtrain.resilience import faults
from medtrain.resilience.barriers import barrier, group_size

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
MARKER_FORMAT = 2          # 1: sizes only; 2: sizes and checksums
RUN_SUMMARY = "run_summary.json"  # written by training.monitoring.RunSummary when a run ends
AUTO = "auto"
CHUNK = 8 << 20
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def _checksum_algorithms() -> dict:
    algorithms = {"blake2b": lambda: hashlib.blake2b(digest_size=16)}
    try:
        import xxhash  # a dependency of `datasets`, so normally installed

        algorithms["xxh3_128"] = xxhash.xxh3_128
    except ImportError:
        pass
    return algorithms


_ALGORITHMS = _checksum_algorithms()
CHECKSUM_ALGORITHM = "xxh3_128" if "xxh3_128" in _ALGORITHMS else "blake2b"


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


def write_json_atomic(path: str, obj, **dump_kw) -> None:
    """Write `obj` as JSON to `path` so that a reader sees the old file or the whole new one, never a
    part: written under a temporary name, fsynced, renamed, and the rename made durable."""
    tmp = f"{path}.tmp.{socket.gethostname()}.{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, **dump_kw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _manifest(folder: str) -> dict:
    files = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if rel == COMPLETE_MARKER or rel.startswith(COMPLETE_MARKER + ".tmp.") or not os.path.isfile(path):
                continue
            files[rel] = os.path.getsize(path)
    return files


def _hash_file(path: str, algorithm: str) -> str:
    h = _ALGORITHMS[algorithm]()
    with open(path, "rb", buffering=0) as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def file_checksums(folder: str, rels, algorithm: str = CHECKSUM_ALGORITHM, threads: Optional[int] = None) -> dict:
    """{relative path: checksum} of files under `folder`, hashed by a few threads (the hashes release
    the GIL; several reads in flight help on network filesystems). A file that cannot be read maps to
    the OSError raised while reading it."""
    if algorithm not in _ALGORITHMS:
        raise DataError(f"checksums of algorithm {algorithm!r} cannot be computed here"
                        + (" (pip install xxhash)" if algorithm.startswith("xxh") else ""))
    rels = list(rels)

    def one(rel):
        try:
            return _hash_file(os.path.join(folder, rel), algorithm)
        except OSError as e:
            return e

    threads = threads or min(4, os.cpu_count() or 1)
    if threads <= 1 or len(rels) <= 1:
        return {rel: one(rel) for rel in rels}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(rels, pool.map(one, rels)))


def write_complete_marker(folder: str, step: int, world_size: int = 1, **extra) -> dict:
    """Mark `folder` complete: the list of its files with their sizes and checksums, written atomically, last."""
    files = _manifest(folder)
    sums = file_checksums(folder, files)
    for rel, value in sums.items():
        if isinstance(value, OSError):
            raise OSError(f"cannot read {os.path.join(folder, rel)} to checksum it for the completion marker "
                          f"({type(value).__name__}: {value}); the checkpoint stays incomplete") from value
    marker = {"format": MARKER_FORMAT, "step": step, "world_size": world_size, "checksum": CHECKSUM_ALGORITHM,
              "files": files, "checksums": sums, "bytes": sum(files.values()),
              "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "host": socket.gethostname(), **extra}
    write_json_atomic(os.path.join(folder, COMPLETE_MARKER), marker, indent=1)
    return marker


def inspect_checkpoint(folder: str, verify: bool = True) -> tuple[Optional[str], Optional[str], bool]:
    """(problem, note, damaged) of `folder`: problem is None when it is complete (else why not, for the
    log); note says what could not be checked (a format-1 marker has no checksums); damaged is True
    when a file's content does not match its checksum or cannot be read (never resume from it).
    `verify=False` checks the marker and the sizes only (no reading of the files)."""
    path = os.path.join(folder, COMPLETE_MARKER)
    if not os.path.isdir(folder):
        return "it is not a directory", None, False
    if not os.path.exists(path):
        return (f"it has no completion marker ({COMPLETE_MARKER}): its save was cut short (the run stopped "
                "while writing it) or another tool wrote it"), None, False
    try:
        with open(path) as fh:
            marker = json.load(fh)
        files = marker["files"]
        step = marker["step"]
        fmt = marker.get("format", 1)
        sums = marker.get("checksums") if fmt >= 2 else None
        if not isinstance(files, dict) or (fmt >= 2 and not isinstance(sums, dict)):
            raise TypeError("its 'files' or 'checksums' is not a mapping")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return f"its completion marker is unreadable ({type(e).__name__}: {e})", None, False
    own = checkpoint_step(folder)
    if own is not None and step != own:
        return f"its completion marker is for step {step}, not {own}", None, False
    if not files:
        return "its completion marker lists no files", None, False
    for rel, size in files.items():
        full = os.path.join(folder, rel)
        try:
            actual = os.path.getsize(full)
        except OSError:
            return f"{rel} is missing (listed in its completion marker)", None, False
        if actual != size:
            return (f"{rel} has {actual:,} bytes, its completion marker says {size:,} (cut short or rewritten)",
                    None, False)
    if sums is None:
        return None, (f"its completion marker (format {fmt}, written by an older medtrain) has file sizes "
                      "only: the content of its files cannot be verified"), False
    missing = sorted(set(files) - set(sums))
    if missing:
        return f"its completion marker has no checksum for {missing[0]}", None, True
    if not verify:
        return None, None, False
    actual_sums = file_checksums(folder, sorted(files), marker.get("checksum", "blake2b"))
    for rel in sorted(files):
        got = actual_sums[rel]
        if isinstance(got, OSError):
            return f"{rel} cannot be read ({type(got).__name__}: {got.strerror or got})", None, True
        if got != sums[rel]:
            return (f"{rel} does not match its checksum in the completion marker (same size, other content: "
                    "damaged on disk or in a copy, or changed after the save)"), None, True
    return None, None, False


def checkpoint_problem(folder: str, verify: bool = True) -> Optional[str]:
    """None if `folder` is a complete checkpoint, else why it is not (for the log). `verify` also
    compares every file's content with its checksum (reads the whole checkpoint)."""
    return inspect_checkpoint(folder, verify)[0]


def is_complete(folder: str, verify: bool = True) -> bool:
    return checkpoint_problem(folder, verify) is None


def latest_complete_checkpoint(output_dir: str, warn: bool = True, verify: bool = True) -> Optional[str]:
    """The newest complete checkpoint in output_dir (its files' content verified against the marker's
    checksums); newer incomplete or damaged ones are skipped, each with a warning that names it, the
    file and why."""
    for step, path in reversed(list_checkpoints(output_dir)):
        problem, note, damaged = inspect_checkpoint(path, verify)
        if problem is None:
            if note and warn:
                logger.warning("%s: %s (resuming from it anyway)", path, note)
            return path
        if warn:
            advice = ("do not resume from it" if damaged else
                      "to use this one anyway, pass its path to --resume_from_checkpoint")
            logger.warning("Skipping %s for --resume_from_checkpoint: %s. Trying the checkpoint before it (%s).",
                           path, problem, advice)
    return None


def resolve_resume(resume, output_dir: str, rank: int = 0):
    """What `--resume_from_checkpoint` means for this run, as a path or None (start fresh):
    `auto`: the latest complete checkpoint in output_dir, or none; True (true/latest): the latest
    complete one, an error if there is none; a path: that checkpoint (a warning if it is not marked
    complete; a DataError if its content does not match its marker's checksums). Reads the
    filesystem only (no collective: this runs before data preparation); every rank verifies the
    checksums itself, so all take the same decision."""
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
            raise DataError(f"--resume_from_checkpoint true: no complete checkpoint in {output_dir} (see the "
                             "warnings above for those skipped); pass `auto` to start fresh when there is none, "
                             "or the path of a checkpoint")
        if main:
            logger.info("No complete checkpoint in %s: starting fresh (--resume_from_checkpoint auto)", output_dir)
        return None
    path = str(resume)
    if not os.path.isdir(path):
        raise DataError(f"--resume_from_checkpoint {path}: no such checkpoint directory")
    problem, note, damaged = inspect_checkpoint(path)
    if damaged:
        raise DataError(f"--resume_from_checkpoint {path}: {problem}. A checkpoint whose files changed after it "
                        "was saved is never loaded (parts of it are read with pickle). Pass the checkpoint before "
                        "it, or --resume_from_checkpoint auto to take the latest intact one.")
    if main:
        if problem is None:
            logger.info("Resuming from %s (--resume_from_checkpoint)", path)
            if note:
                logger.warning("%s: %s", path, note)
        else:
            logger.warning("Resuming from %s as asked, although %s", path, problem)
    return path


def _read_json(path: str):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _has_final_weights(output_dir: str) -> bool:
    return any(os.path.exists(os.path.join(output_dir, name)) for name in
               ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin"))


def finished_run(output_dir: str, max_steps: int, num_train_epochs: Optional[float] = None) -> Optional[str]:
    """Why the run in output_dir is already finished (None if it is not): its `run_summary.json` (written
    when a run ends) records `global_step` >= max_steps (or, with max_steps <= 0, at least
    num_train_epochs epochs, or any finished run when that is not given either), or its newest complete
    checkpoint is the final one (step >= max_steps; with max_steps <= 0, the step its trainer_state.json
    names as its last, for the same number of epochs). Rerunning a finished job with
    `--resume_from_checkpoint auto` then trains nothing: the caller says so and stops. A larger
    --max_steps (or more epochs) is not finished: the run continues from its newest checkpoint."""
    summary_path = os.path.join(output_dir, RUN_SUMMARY)
    summary = _read_json(summary_path)
    if isinstance(summary, dict) and isinstance(summary.get("global_step"), int):
        step = summary["global_step"]
        epoch = (summary.get("metrics") or {}).get("epoch")
        if max_steps > 0:
            done = step >= max_steps
            goal = f"--max_steps {max_steps}"
        elif num_train_epochs is not None and isinstance(epoch, (int, float)):
            done = epoch >= num_train_epochs - 1e-6
            goal = f"--num_train_epochs {num_train_epochs:g}"
        else:
            done, goal = True, "its own length"
        if done:
            return f"{summary_path} records a finished run ({step} steps, {goal})"
    for step, path in reversed(list_checkpoints(output_dir)):
        if max_steps > 0:
            if step < max_steps:
                break  # older ones have smaller steps
        else:
            state = _read_json(os.path.join(path, "trainer_state.json"))
            if not isinstance(state, dict) or not isinstance(state.get("max_steps"), int):
                continue
            if step < state["max_steps"] or (num_train_epochs is not None and
                                             state.get("num_train_epochs") != num_train_epochs):
                continue
        if not is_complete(path):
            continue  # the warning comes from resolve_resume, which skips it too
        reason = f"its final checkpoint {path} (step {step}) is complete"
        if not _has_final_weights(output_dir):
            reason += (f"; the run stopped before saving the final model in {output_dir}: the final weights are "
                       f"those in {path}")
        return reason
    return None


def begin_checkpoint(folder: str, args) -> None:
    """Before any rank writes `folder`: the saving rank removes what an earlier attempt left there (a
    checkpoint of the same step, complete or not, which this save replaces), then all ranks meet."""
    if args.should_save and os.path.isdir(folder):
        state = "complete" if is_complete(folder, verify=False) else "incomplete"
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
    logger.info("Checkpoint %s complete (%d files, %s bytes, %s checksums, marked in %s)", folder,
                len(marker["files"]), f"{marker['bytes']:,}", marker["checksum"], COMPLETE_MARKER)
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
    complete = [p for _, p in found if is_complete(p, verify=False)]
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
