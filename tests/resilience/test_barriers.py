"""Barriers that say what they wait for."""

import logging

from medtrain.resilience import barriers


def test_a_waiting_rank_says_what_it_waits_for(caplog, monkeypatch):
    import time

    with caplog.at_level(logging.WARNING):
        with barriers.waiting("at the checkpoint barrier of checkpoint-3", "every rank writes its part", every=0.05):
            time.sleep(0.3)
    assert "rank 0 has waited" in caplog.text and "at the checkpoint barrier of checkpoint-3: every rank" in caplog.text
