"""Runs that survive, under torchrun and run_pt.sh: elastic restarts after a killed rank, preemption by
SIGTERM/SIGUSR1 (exit code 143), truncated checkpoints skipped, bad input never restarted, on the token
store, the streaming path and ZeRO-3."""

import json
import os

import pytest

from helpers.launch import check
from helpers.runs import (KINDS, assert_same_losses_after, assert_same_weights, flags, reference,
                          resumed_past_a_damaged_checkpoint, run_pt)

from medtrain.errors import EXIT_PREEMPTED as PREEMPTED_EXIT_CODE
from medtrain.resilience import checkpoints as resilience
from medtrain.resilience.checkpoints import COMPLETE_MARKER

pytestmark = pytest.mark.slow


@pytest.mark.slow
@pytest.mark.parametrize("kind,when,step", [("store", "step", 5), ("streaming", "save", 6), ("zero3", "save", 6)])
def test_killed_rank_restarts_and_resumes(demo_dir, work, kind, when, step):
    """SIGKILL of rank 1 at step 5 (or inside the save of checkpoint-6, after its own part): torchrun
    restarts the group, which resumes from checkpoint-3 and ends with the weights of a run never killed."""
    ref = reference(kind, demo_dir, work)
    out = work / f"killed-{kind}"
    proc = run_pt(out, flags(demo_dir, work / "cache", *KINDS[kind]), MODEL=demo_dir, MAX_RESTARTS=1,
                  MEDTRAIN_TEST_KILL_AT_STEP=step, MEDTRAIN_TEST_KILL_RANK=1, MEDTRAIN_TEST_KILL_WHEN=when)
    check(proc)
    log = proc.stdout
    # the first attempt started fresh and was killed; torchrun restarted the group, which resumed
    assert log.count("No complete checkpoint") == 1 and "test hook: rank 1 sends SIGKILL to self" in log
    if when == "save":  # rank 0 had written its part of checkpoint-6; it was never marked complete
        assert f"Skipping {out / 'checkpoint-6'} for --resume_from_checkpoint: it has no completion marker" in log
        assert f"Replacing {out / 'checkpoint-6'} (incomplete, left by an earlier attempt)" in log
    assert f"Resuming from {out / 'checkpoint-3'}" in log
    if kind == "streaming":  # the streaming positions of both ranks are part of every complete checkpoint
        assert "Resuming the stream of rank 0" in log
        for _, path in resilience.list_checkpoints(str(out)):
            files = json.load(open(os.path.join(path, COMPLETE_MARKER)))["files"]
            assert "data_state/rank0.json" in files and "data_state/rank1.json" in files
    assert_same_weights(ref, out)
    assert_same_losses_after(ref, out, 3)
    assert all(resilience.is_complete(p) for _, p in resilience.list_checkpoints(str(out)))


def preempt(demo_dir, work, name, signal_name, target):
    """A run_pt.sh run of the store reference's arguments, signalled at the end of step 4 (MAX_RESTARTS=3)."""
    out = work / name
    proc = run_pt(out, flags(demo_dir, work / "cache"), MODEL=demo_dir, MAX_RESTARTS=3, MEDTRAIN_TEST_KILL_AT_STEP=4,
                  MEDTRAIN_TEST_KILL_RANK=1, MEDTRAIN_TEST_KILL_SIGNAL=signal_name, MEDTRAIN_TEST_KILL_TARGET=target)
    log = proc.stdout
    assert proc.returncode == PREEMPTED_EXIT_CODE, log[-6000:]
    assert "Resuming from" not in log  # torchrun did not restart the group
    assert "medtrain launcher: preempted, checkpoint saved" in log
    assert "all ranks stop after step 4" in log and f"rank 1 received {signal_name}" in log
    # the checkpoint of the step it stopped at is the newest, and complete
    assert [s for s, _ in resilience.list_checkpoints(str(out))] == [3, 4]
    assert resilience.is_complete(str(out / "checkpoint-4"))
    assert json.load(open(out / "checkpoint-4" / "trainer_state.json"))["global_step"] == 4
    assert not os.path.exists(out / "model.safetensors")  # no final save: it was not the end of training
    return out, log


@pytest.mark.slow
def test_sigterm_to_the_launcher_saves_exits_143_and_resumes(demo_dir, work):
    """SIGTERM to run_pt.sh (what Kubernetes sends to the container's first process): it reaches the
    workers through torchrun; every rank finishes step 4, checkpoint-4 is saved complete, the job exits
    with 143; rerunning the same command continues at step 5 and ends with the uninterrupted weights."""
    ref = reference("store", demo_dir, work)
    out, _ = preempt(demo_dir, work, "preempt-launcher", "SIGTERM", "launcher")
    proc = check(run_pt(out, flags(demo_dir, work / "cache"), MODEL=demo_dir))
    assert f"Resuming from {out / 'checkpoint-4'}" in proc.stdout
    assert_same_weights(ref, out)
    assert_same_losses_after(ref, out, 4)


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_all_of_them_without_a_restart(demo_dir, work):
    """SIGUSR1 to rank 1 only (Slurm's early warning): rank 0 stops at the same step (all-reduced stop
    flag), the checkpoint is the same as after SIGTERM to the launcher, and torchrun (--max-restarts 3)
    does not restart the preempted group: the job ends with 143."""
    out, log = preempt(demo_dir, work, "preempt-one-rank", "SIGUSR1", "self")
    assert "rank 0: asking the torchrun agent" in log and "Received 15 death signal" in log
    other = work / "preempt-launcher" / "checkpoint-4"
    if other.exists():  # the same state as the other preemption test's checkpoint
        assert_same_weights(other, out / "checkpoint-4", atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["store", "zero3"])
def test_truncated_checkpoint_is_skipped(demo_dir, work, kind):
    """A checkpoint damaged after it was written (a file cut short, or removed) is skipped by auto with
    a warning naming it; the run resumes from the one before and ends as the uninterrupted run.
    (The ZeRO-3 run is also test_distributed.py's resumed ZeRO-3 run: launched once.)"""
    ref = reference(kind, demo_dir, work)
    out, log, why = resumed_past_a_damaged_checkpoint(kind, demo_dir, work)
    assert f"Skipping {out / 'checkpoint-6'} for --resume_from_checkpoint: {why}" in log
    assert f"Resuming from {out / 'checkpoint-3'}" in log
    assert_same_weights(ref, out)
    assert_same_losses_after(ref, out, 3)


@pytest.mark.slow
def test_bad_input_is_not_restarted(demo_dir, work, tmp_path):
    """A restart cannot fix bad input: the ranks tell torchrun not to restart (MAX_RESTARTS=3)."""
    proc = run_pt(tmp_path / "out", flags(demo_dir, work / "cache", "--train_file_dir", str(tmp_path / "missing")),
                  MODEL=demo_dir, MAX_RESTARTS=3)
    assert proc.returncode == 2, proc.stdout[-5000:]  # the exit code of bad input, through torchrun
    assert "a restart would fail the same way" in proc.stdout and "ended with exit code 2 (bad input)" in proc.stdout
    assert proc.stdout.count("error: ") <= 2  # one attempt (one line per rank), not four
