"""This process and its place in the job: rank and world size from the launcher's environment
(`distributed.DistInfo`), rank-aware logging, collectives used after training (`gather_object`), and
torch-free measures of memory and CPU (`measure`, `memory.MemoryGuard`). Nothing here runs a
collective before training starts."""

from medtrain.runtime.distributed import DistInfo, setup_logging  # noqa: F401
