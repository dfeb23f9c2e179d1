"""Helpers of the multi-process tests: the flags of a short run that saves checkpoints, comparing
weights and losses of two runs, run_pt.sh as users launch it, and the runs several tests read, each
launched once per session (a 2-process launch costs ~8 s of imports and setup, ~15 s with ZeRO-3;
its 8 steps well under a second): the uninterrupted reference run of each kind, and the run resumed
from its checkpoint-3 past a damaged checkpoint-6."""

import os
import shutil
import subprocess

import pytest
import torch

from helpers.launch import ROOT, free_port, launch_env, load_weights, logged_losses, torchrun

STEPS, SAVE = 8, 3  # checkpoints at 3, 6 and 8

KINDS = {"store": [], "streaming": ["--streaming", "true", "--shuffle_buffer_size", "16"],
         "zero2": ["--deepspeed", os.path.join(ROOT, "zero2.json")],
         "zero3": ["--deepspeed", os.path.join(ROOT, "zero3.json")]}


def flags(demo_dir, cache, *extra):
    return ["--model_name_or_path", demo_dir, "--cache_dir", str(cache), "--block_size", "64",
            "--learning_rate", "3e-3", "--logging_steps", "1", "--seed", "11", "--validation_split_percentage", "0",
            "--num_proc", "1", "--per_device_train_batch_size", "2", "--max_steps", str(STEPS),
            "--save_steps", str(SAVE), *extra]


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


def copy_checkpoints(src, dst, *steps):
    os.makedirs(dst)
    for s in steps:
        shutil.copytree(src / f"checkpoint-{s}", dst / f"checkpoint-{s}")


_shared: dict = {}


def once(key, launch):
    """`launch()`'s result, computed by the first caller of the session; a launch that failed fails every
    later caller too, naming the key (its output is in the first failing test's report)."""
    if key not in _shared:
        try:
            _shared[key] = launch()
        except Exception as e:
            _shared[key] = e
            raise
    if isinstance(_shared[key], Exception):
        raise AssertionError(f"the shared run {key} failed in an earlier test (see its report)") from _shared[key]
    return _shared[key]


def reference(kind, demo_dir, work):
    """An uninterrupted 2-process run of each kind (once per session: `work` is the session's folder
    of shared runs, tests/multiprocess/conftest.py)."""
    def launch():
        out = work / f"ref-{kind}"
        torchrun(2, "pretraining.py", flags(demo_dir, work / "cache", "--output_dir", str(out), *KINDS[kind]))
        return out
    return once(("reference", kind), launch)


def resumed_past_a_damaged_checkpoint(kind, demo_dir, work):
    """The reference's checkpoints 3 and 6 in a new output directory, checkpoint-6 damaged after it was
    written (on DeepSpeed: one rank's optimizer shard removed; otherwise model.safetensors cut to half),
    then `--resume_from_checkpoint auto` there under torchrun (once per session per kind). Returns the
    output directory, the log, and the reason the skip warning must give."""
    def launch():
        ref = reference(kind, demo_dir, work)
        out = work / f"truncated-{kind}"
        copy_checkpoints(ref, out, 3, 6)
        if "--deepspeed" in KINDS[kind]:
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
        return out, proc.stdout, why
    return once(("resumed past a damaged checkpoint", kind), launch)
