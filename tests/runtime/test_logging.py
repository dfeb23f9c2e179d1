"""Rank-aware logging: other ranks' lines carry their rank, and only warnings."""

import logging

from medtrain.runtime.distributed import DistInfo, setup_logging


def test_rank_prefix_and_levels(capfd):
    setup_logging(DistInfo(rank=1, world_size=2))
    log = logging.getLogger("medtrain.test")
    log.info("not shown on rank 1")
    log.warning("waiting for units")
    err = capfd.readouterr().err
    assert "not shown" not in err
    assert any(line.startswith("[rank 1] ") and "waiting for units" in line for line in err.splitlines())
    setup_logging(DistInfo(rank=0, world_size=2))
    log.info("rank zero line")
    err = capfd.readouterr().err
    assert any("rank zero line" in line and not line.startswith("[rank") for line in err.splitlines())
