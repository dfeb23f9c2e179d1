"""Fault injection points: where tests make a run fail on purpose, from the outside.

The package calls `point(name, **info)` at a few places; nothing happens unless a test installed an
injector (any callable) with `install()`. No environment variable is read here: a test that needs
faults in a subprocess installs its injector from its own code (tests/helpers/fault_injection/).

    point("unit_build", rank=r, unit=i)          before a token-store unit is tokenized
    point("step_end", step=s, received=[...])    at the end of a training step (preemption callback)
    point("checkpoint_save", step=s)             inside a checkpoint save, before the completion barrier
"""

from __future__ import annotations

from typing import Callable, Optional

_injector: Optional[Callable] = None


def install(injector: Optional[Callable]) -> None:
    """Call `injector(name, **info)` at every fault point (None: remove it)."""
    global _injector
    _injector = injector


def point(name: str, **info) -> None:
    if _injector is not None:
        _injector(name, **info)
