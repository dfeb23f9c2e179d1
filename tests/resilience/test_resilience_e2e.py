"""Runs that survive: complete-or-ignored checkpoints, `--resume_from_checkpoint auto`, elastic restarts
after a killed rank, preemption by SIGTERM/SIGUSR1 (exit code 143), on the token store, the streaming
path and ZeRO-3."""

import json
import logging
import os
import shutil
import signal
import subprocess

import pytest
import torch

from helpers.launch import ROOT, check, free_port, launch_env, load_weights, logged_losses, torchrun

from medtrain.errors import EXIT_PREEMPTED as PREEMPTED_EXIT_CODE
from medtrain.resilience import barriers, checkpoints as resilience, faults
from medtrain.resilience.checkpoints import COMPLETE_MARKER

from helpers.fault_injection.medtrain_test_faults import KillAtStep

STEPS, SAVE = 8, 3  # checkpoints at 3, 6 and 8


def flags(demo_dir, cache, *extra):
    return ["--model_name_or_path", demo_dir, "--cache_dir", str(cache), "--block_size", "64",
            "--learning_rate", "3e-3", "--logging_steps", "1", "--seed", "11", "--validation_split_percentage", "0",
            "--num_proc", "1", "--per_device_train_batch_size", "2", "--max_steps", str(STEPS),
            "--save_steps", str(SAVE), *extra]


KINDS = {"store": [], "streaming": ["--streaming", "true", "--shuffle_buffer_size", "16"],
         "zero3": ["--deepspeed", os.path.join(ROOT, "zero3.json")]}


def assert_same_weights(a, b, atol=1e-5):
    wa, wb = load_weights(a), load_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=atol), (k, (wa[k] - wb[k]).abs().max())


def assert_same_losses_after(a, b, step):
    la, lb = logged_losses(a), logged_losses(b)
    for s in range(step + 1, STEPS + 1):
        assert lb[s] == pytest.approx(la[s], rel=1e-5), (s, la, lb)


def run_pt(out, extra, timeout=300, **env):
    """run_pt.sh as users launch it (2 processes), without asserting its exit code."""
    env = launch_env(MODEL=env.pop("MODEL"), OUTPUT_DIR=str(out), BLOCK_SIZE=64, NPROC_PER_NODE=2,
                     MASTER_PORT=free_port(), **env)
    return subprocess.run(["bash", os.path.join(ROOT, "run_pt.sh"), *extra], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("resilience")


_references: dict = {}


def reference(kind, demo_dir, work):
    """An uninterrupted 2-process run of each kind (once per module)."""
    if kind not in _references:
        out = work / f"ref-{kind}"
        torchrun(2, "pretraining.py", flags(demo_dir, work / "cache", "--output_dir", str(out), *KINDS[kind]))
        _references[kind] = out
    return _references[kind]


def copy_checkpoints(src, dst, *steps):
    os.makedirs(dst)
    for s in steps:
        shutil.copytree(src / f"checkpoint-{s}", dst / f"checkpoint-{s}")


# ---------------------------------------------------------------------------------------------------
# complete checkpoints, auto, rotation (in-process, fast)
# ---------------------------------------------------------------------------------------------------
def fake_checkpoint(root, step, complete=True):
    folder = root / f"checkpoint-{step}"
    (folder / "data_state").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * 100)
    (folder / "trainer_state.json").write_text("{}")
    (folder / "data_state" / "rank0.json").write_bytes(b"d" * 10)
    if complete:
        resilience.write_complete_marker(str(folder), step)
    return folder


def test_a_checkpoint_is_complete_only_as_marked(tmp_path):
    folder = fake_checkpoint(tmp_path, 5)
    assert resilience.checkpoint_problem(str(folder)) is None
    marker = json.load(open(folder / COMPLETE_MARKER))
    assert marker["step"] == 5 and marker["files"]["data_state/rank0.json"] == 10
    with open(folder / "model.safetensors", "r+b") as fh:
        fh.truncate(40)
    assert "model.safetensors has 40 bytes" in resilience.checkpoint_problem(str(folder))
    os.remove(folder / "model.safetensors")
    assert "model.safetensors is missing" in resilience.checkpoint_problem(str(folder))
    (folder / COMPLETE_MARKER).write_text("{not json")
    assert "unreadable" in resilience.checkpoint_problem(str(folder))
    os.remove(folder / COMPLETE_MARKER)
    assert "no completion marker" in resilience.checkpoint_problem(str(folder))
    moved = fake_checkpoint(tmp_path / "other", 7)
    shutil.move(str(moved), str(tmp_path / "checkpoint-9"))
    assert "for step 7, not 9" in resilience.checkpoint_problem(str(tmp_path / "checkpoint-9"))


def test_auto_takes_the_latest_complete_checkpoint(tmp_path, caplog):
    from medtrain.training.runner import resume_arg

    assert resume_arg("auto") == "auto" and resume_arg("AUTO") == "auto" and resume_arg("latest") is True
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level(logging.INFO):
        assert resilience.resolve_resume("auto", str(out)) is None
    assert "No complete checkpoint" in caplog.text and "starting fresh" in caplog.text
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resilience.resolve_resume(True, str(out))
    fake_checkpoint(out, 2)
    fake_checkpoint(out, 4)
    broken = fake_checkpoint(out, 6)
    os.remove(broken / "data_state" / "rank0.json")
    fake_checkpoint(out, 10, complete=False)
    (out / "checkpoint-x").mkdir()  # not a checkpoint name: ignored
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert resilience.resolve_resume("auto", str(out)) == str(out / "checkpoint-4")
    assert f"Skipping {out / 'checkpoint-10'}" in caplog.text and "no completion marker" in caplog.text
    assert f"Skipping {out / 'checkpoint-6'}" in caplog.text and "data_state/rank0.json is missing" in caplog.text
    assert f"Resuming from {out / 'checkpoint-4'}" in caplog.text
    assert resilience.resolve_resume(True, str(out)) == str(out / "checkpoint-4")
    caplog.clear()
    with caplog.at_level(logging.INFO):  # an explicit path is used as given, with a warning if incomplete
        assert resilience.resolve_resume(str(out / "checkpoint-6"), str(out)) == str(out / "checkpoint-6")
    assert "although data_state/rank0.json is missing" in caplog.text


def test_rotation_never_deletes_the_last_complete_checkpoint(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fake_checkpoint(out, 1, complete=False)
    fake_checkpoint(out, 2)
    fake_checkpoint(out, 4, complete=False)  # the newest is incomplete (its save was cut short)
    assert resilience.rotate_checkpoints(str(out), 1) == [str(out / "checkpoint-1")]
    assert sorted(os.listdir(out)) == ["checkpoint-2", "checkpoint-4"]
    fake_checkpoint(out, 6)
    fake_checkpoint(out, 8, complete=False)
    removed = resilience.rotate_checkpoints(str(out), 2)
    assert removed == [str(out / "checkpoint-4")]  # incomplete and older than the newest complete one
    assert sorted(os.listdir(out)) == ["checkpoint-2", "checkpoint-6", "checkpoint-8"]
    assert resilience.rotate_checkpoints(str(out), 1, best=str(out / "checkpoint-2")) == []
    assert resilience.rotate_checkpoints(str(out), 1) == [str(out / "checkpoint-2")]
    assert sorted(os.listdir(out)) == ["checkpoint-6", "checkpoint-8"]
    assert resilience.rotate_checkpoints(str(out), None) == []
    fake_checkpoint(out, 5)  # a fresh run into a directory of older checkpoints keeps what it just wrote
    assert resilience.rotate_checkpoints(str(out), 1, current=str(out / "checkpoint-5")) == []


def test_a_waiting_rank_says_what_it_waits_for(caplog, monkeypatch):
    import time

    with caplog.at_level(logging.WARNING):
        with barriers.waiting("at the checkpoint barrier of checkpoint-3", "every rank writes its part", every=0.05):
            time.sleep(0.3)
    assert "rank 0 has waited" in caplog.text and "at the checkpoint barrier of checkpoint-3: every rank" in caplog.text


def test_sigterm_in_one_process_saves_and_resumes(demo_dir, tmp_path, monkeypatch):
    from medtrain.cli.pretrain import main

    base = flags(demo_dir, tmp_path / "cache", "--per_device_train_batch_size", "4", "--report_to", "none")
    assert main(base + ["--output_dir", str(tmp_path / "full"), "--save_strategy", "no"]) == 0
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(faults, "_injector", KillAtStep(4, signal="SIGTERM"))
    part = base + ["--output_dir", str(tmp_path / "part"), "--save_total_limit", "1",
                   "--resume_from_checkpoint", "auto"]
    assert main(part) == PREEMPTED_EXIT_CODE
    assert signal.getsignal(signal.SIGTERM) == before
    # checkpoint-3 was rotated out only after checkpoint-4 (the preemption one) was complete
    assert sorted(os.listdir(tmp_path / "part")) == ["checkpoint-4"]
    assert resilience.is_complete(str(tmp_path / "part" / "checkpoint-4"))
    assert not os.path.exists(tmp_path / "part" / "model.safetensors")  # no final save after preemption
    monkeypatch.setattr(faults, "_injector", None)
    assert main(part) == 0
    assert signal.getsignal(signal.SIGTERM) == before
    assert_same_weights(tmp_path / "full", tmp_path / "part")
    assert_same_losses_after(tmp_path / "full", tmp_path / "part", 4)


# ---------------------------------------------------------------------------------------------------
# torchrun: killed ranks, preemption, truncated checkpoints
# ---------------------------------------------------------------------------------------------------
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
    a warning naming it; the run resumes from the one before and ends as the uninterrupted run."""
    ref = reference(kind, demo_dir, work)
    out = work / f"truncated-{kind}"
    copy_checkpoints(ref, out, 3, 6)
    if kind == "zero3":
        damaged = "global_step6/zero_pp_rank_1_mp_rank_00_optim_states.pt"
        os.remove(out / "checkpoint-6" / damaged)
        why = f"{damaged} is missing"
    else:
        damaged = out / "checkpoint-6" / "model.safetensors"
        with open(damaged, "r+b") as fh:
            fh.truncate(os.path.getsize(damaged) // 2)
        why = "model.safetensors has"
    proc = torchrun(2, "pretraining.py", flags(demo_dir, work / "cache", "--output_dir", str(out), *KINDS[kind],
                                               "--resume_from_checkpoint", "auto"))
    log = proc.stdout
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
