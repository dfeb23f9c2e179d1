"""Helpers of the resilience tests: the flags of a short run that saves checkpoints, comparing
weights and losses of two runs, run_pt.sh as users launch it, reference runs kept per module."""

import os
import shutil
import subprocess

import pytest
import torch

from helpers.launch import ROOT, free_port, launch_env, load_weights, logged_losses, torchrun

STEPS, SAVE = 8, 3  # checkpoints at 3, 6 and 8

KINDS = {"store": [], "streaming": ["--streaming", "true", "--shuffle_buffer_size", "16"],
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


_references: dict = {}


def reference(kind, demo_dir, work):
    """An uninterrupted 2-process run of each kind (once per module)."""
    if kind not in _references:
        out = work / f"ref-{kind}"
        torchrun(2, "pretraining.py", flags(demo_dir, work / "cache", "--output_dir", str(out), *KINDS[kind]))
        _references[kind] = out
    return _references[kind]
