"""Distributed helpers: who am I (from the launcher's environment), rank-aware logging, and which
ranks build the token store. Nothing here runs a collective."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> "DistInfo":
        env = os.environ
        world = int(env.get("WORLD_SIZE", "1"))
        return cls(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")),
                   int(env.get("LOCAL_WORLD_SIZE", str(world))))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def builders(self, prepare_on: str) -> tuple[int, int]:
        """(builder rank, builder count) for the token store: all ranks share one store (global) or
        the ranks of each node build that node's own copy (local)."""
        if prepare_on == "local":
            return self.local_rank, self.local_world_size
        return self.rank, self.world_size

    def cpus_per_rank(self) -> int:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            n = os.cpu_count() or 1
        return max(1, n // max(1, self.local_world_size))


def share_tokenizer_threads(info: DistInfo) -> None:
    """Each rank's fastokens on its share of the node's cores: by default it starts one BPE thread per
    core in every process, so N ranks of a node that tokenize (the streaming path does, in every rank)
    would start N x cores threads. A value the user set (FASTOKENS_BPE_THREADS) is kept."""
    if info.local_world_size > 1:
        os.environ.setdefault("FASTOKENS_BPE_THREADS", str(info.cpus_per_rank()))


class _RankFilter(logging.Filter):
    def __init__(self, rank: int):
        super().__init__()
        self.prefix = f"[rank {rank}] " if rank else ""

    def filter(self, record):
        record.rankprefix = self.prefix
        return True


def setup_logging(info: DistInfo, level: int = logging.INFO) -> None:
    """Rank 0 logs at INFO; other ranks log warnings only, each line prefixed with its rank."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RankFilter(info.rank))
    handler.setFormatter(logging.Formatter("%(rankprefix)s%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_medtrain", False):
            root.removeHandler(h)
    handler._medtrain = True
    root.addHandler(handler)
    root.setLevel(level if info.is_main else logging.WARNING)
    # only libraries already loaded (prepare_data.py never loads transformers or torch)
    if "transformers" in sys.modules:
        import transformers

        transformers.utils.logging.set_verbosity(logging.INFO if info.is_main else logging.WARNING)
        transformers.utils.logging.disable_default_handler()
        transformers.utils.logging.enable_propagation()
    if "datasets" in sys.modules:
        import datasets

        datasets.utils.logging.set_verbosity(logging.WARNING)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_launcher_env() -> None:
    """A single process started without a launcher gets the environment of a 1-process launch
    (DeepSpeed otherwise tries MPI discovery and fails on a missing mpi4py)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": os.environ.get("MASTER_PORT", str(_free_port()))})


def init_deepspeed_backend(timeout_seconds: int = 1800) -> None:
    """With DeepSpeed and no GPU, start its process group on gloo before the model is created
    (ZeRO-3's zero.Init needs it; accelerate leaves the backend unset without a GPU). On GPUs the
    Trainer initialises NCCL itself."""
    import torch

    if torch.cuda.is_available():
        return
    import deepspeed

    from datetime import timedelta

    deepspeed.init_distributed(dist_backend="gloo", timeout=timedelta(seconds=timeout_seconds))


def finish() -> None:
    """End a distributed run cleanly (a barrier, then destroy the group), which avoids the rare
    'terminate called without an active exception' aborts at exit."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def gather_object(obj) -> list:
    """Every rank's `obj` (after training, for the summary); a one-element list without a group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def exit_process(code: int) -> None:
    """End an entry script. After a distributed run, leave without the interpreter's teardown: once
    the process group is gone, destructors of library threads (gloo, DeepSpeed) at teardown
    occasionally abort ("terminate called without an active exception"), turning a finished run
    into a failed one. Everything is saved and flushed by then."""
    import logging as _logging

    if os.environ.get("WORLD_SIZE", "1") != "1":
        sys.stdout.flush()
        sys.stderr.flush()
        _logging.shutdown()
        os._exit(code)
    sys.exit(code)
