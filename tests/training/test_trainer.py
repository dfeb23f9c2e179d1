"""MedTrainer's data-side pieces: the chunked random sampler gives the order accelerate's seedable
sampler gives (the same blocks, the same losses) without a Python list of every block number."""

import torch
from accelerate.data_loader import SeedableRandomSampler

from medtrain.training.trainer import ChunkedRandomSampler


def test_chunked_sampler_is_the_seedable_samplers_order_every_epoch(monkeypatch):
    monkeypatch.setattr(ChunkedRandomSampler, "CHUNK", 7)  # several chunks, one partial
    n = 100
    ours, theirs = ChunkedRandomSampler(n, data_seed=13), SeedableRandomSampler(range(n), data_seed=13)
    for epoch in range(3):
        a, b = list(ours), list(theirs)
        assert a == b and sorted(a) == list(range(n)), epoch
    ours.set_epoch(1)
    theirs.set_epoch(1)
    assert list(ours) == list(theirs) and len(ours) == n


def test_without_a_data_seed_it_follows_torchs_initial_seed():
    torch.manual_seed(5)
    assert list(ChunkedRandomSampler(50)) == list(SeedableRandomSampler(range(50)))
