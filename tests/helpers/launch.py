"""Helpers to launch the real entry points under torchrun (or run_pt.sh) from tests."""

import json
import os
import socket
import subprocess
import sys

from helpers import ROOT

FAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_injection")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_env(**extra) -> dict:
    env = dict(os.environ)
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env.update({"TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([ROOT, FAULTS])})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n--- output (tail) ---\n{proc.stdout[-6000:]}")
    return proc


def torchrun(nproc: int, script: str, args: list, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), os.path.join(ROOT, script), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=launch_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    return check(proc)


def single(script: str, args: list, timeout: int = 300, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT, env=launch_env(**env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return check(proc)


def logged_losses(output_dir) -> dict:
    with open(os.path.join(output_dir, "trainer_state.json")) as fh:
        return {h["step"]: h["loss"] for h in json.load(fh)["log_history"] if "loss" in h}


def load_weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(os.path.join(path, "model.safetensors"))
