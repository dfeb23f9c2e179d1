"""The launcher behind run_pt.sh / run_sft.sh: `python -m medtrain.resilience [torchrun] SCRIPT ...`.

It runs torchrun (built from the environment by `torchrun_command`, or given), passes SIGTERM /
SIGUSR1 / SIGINT / SIGHUP on to it (torchrun passes them on to the workers with
--signals-to-handle), and exits with 143 when the workers stopped for preemption (they write the
file named by MEDTRAIN_EXIT_FILE, see `exit_protocol`), or when it was sent SIGTERM/SIGUSR1 and the
run failed before a checkpoint could be saved; with 2 (bad input) or 3 (memory guard) when a rank
stopped for those; otherwise with torchrun's status. Imports neither torch nor transformers.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from medtrain.errors import EXIT_PREEMPTED
from medtrain.resilience.exit_protocol import EXIT_FILE_ENV, parent_of


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and parent_of(int(entry)) == pid:
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
    if code == EXIT_PREEMPTED:
        print(f"{name}: preempted, checkpoint saved ({told.get('checkpoint')}, after step {told.get('step')}); exit "
              f"code {code}: run the same command again to resume", file=sys.stderr, flush=True)
        return code
    if rc != 0 and got["signal"] in ("SIGTERM", "SIGUSR1"):
        print(f"{name}: stopped by {got['signal']} before a checkpoint could be saved; exit code "
              f"{EXIT_PREEMPTED}: rerunning resumes from the latest complete checkpoint", file=sys.stderr,
              flush=True)
        return EXIT_PREEMPTED
    if rc != 0 and isinstance(code, int):
        print(f"{name}: rank {told.get('rank')} ended with exit code {code} ({told.get('why')}), not restarted",
              file=sys.stderr, flush=True)
        return code
    return rc


def processes_per_node(env=os.environ) -> str:
    """NPROC_PER_NODE, or one process per visible GPU, or 2 CPU processes without one."""
    if env.get("NPROC_PER_NODE"):
        return env["NPROC_PER_NODE"]
    try:
        import torch

        return str(torch.cuda.device_count() or 2)
    except ImportError:  # pragma: no cover - torch is a dependency
        return "2"


def shipped_config(args: list[str], script: str) -> list[str]:
    """`--deepspeed zero3.json`: the caller's file, else the one shipped next to the script."""
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a == "--deepspeed" and not os.path.exists(out[i + 1]):
            beside = os.path.join(os.path.dirname(os.path.abspath(script)), out[i + 1])
            if os.path.exists(beside):
                out[i + 1] = beside
    return out


def torchrun_command(script_and_args: list[str], env=os.environ) -> list[str]:
    """The torchrun command of the run_*.sh launchers, from their environment variables (defaults in
    brackets): NNODES [1], NPROC_PER_NODE [one per GPU, else 2], MASTER_ADDR [127.0.0.1], MASTER_PORT
    [29500], MAX_RESTARTS [3: restarts of the group after a crash, never after preemption],
    SHUTDOWN_TIMEOUT [300: seconds the workers get to save after SIGTERM/SIGUSR1], RDZV_BACKEND [c10d:
    nodes meet at MASTER_ADDR:MASTER_PORT with a fresh store at every restart, rank 0 goes to the node
    the rendezvous picks; static: NODE_RANK fixes the ranks, but restarts are unreliable as torch's
    static rendezvous keeps its store across restarts]."""
    backend = env.get("RDZV_BACKEND", "c10d")
    addr, port = env.get("MASTER_ADDR", "127.0.0.1"), env.get("MASTER_PORT", "29500")
    if backend == "static":
        rdzv = ["--node_rank", env.get("NODE_RANK", "0"), "--master_addr", addr, "--master_port", port]
    else:
        rdzv = ["--rdzv-backend", backend, "--rdzv-endpoint", f"{addr}:{port}", "--rdzv-id",
                env.get("RDZV_ID", "medtrain")]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", env.get("NNODES", "1"),
            "--nproc_per_node", processes_per_node(env), *rdzv,
            "--max-restarts", env.get("MAX_RESTARTS", "3"), "--shutdown-timeout", env.get("SHUTDOWN_TIMEOUT", "300"),
            "--signals-to-handle", "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1", *script_and_args]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m medtrain.resilience SCRIPT [arguments]   (torchrun from the environment, "
              "see torchrun_command)\n       python -m medtrain.resilience torchrun [torchrun arguments] "
              "SCRIPT [arguments]", file=sys.stderr)
        return 2
    if argv[0] == "torchrun":
        command = argv
    else:
        if os.environ.get("RDZV_BACKEND", "c10d") != "static":
            os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"  # a fresh store at every restart
        command = torchrun_command([argv[0], *shipped_config(argv[1:], argv[0])])
    return launch(command, float(os.environ.get("SHUTDOWN_TIMEOUT", "300") or 300))
