"""Each rank's fast tokenizer gets its share of the node's cores (distributed.share_tokenizer_threads)."""

import os

from medtrain.runtime.distributed import DistInfo, share_tokenizer_threads


def test_ranks_of_a_node_share_its_cores(monkeypatch):
    monkeypatch.delenv("FASTOKENS_BPE_THREADS", raising=False)
    share_tokenizer_threads(DistInfo(rank=0, world_size=1))
    assert "FASTOKENS_BPE_THREADS" not in os.environ          # one process: fastokens' own default
    info = DistInfo(rank=3, world_size=8, local_rank=3, local_world_size=4)
    share_tokenizer_threads(info)
    assert os.environ["FASTOKENS_BPE_THREADS"] == str(info.cpus_per_rank())
    assert info.cpus_per_rank() == max(1, len(os.sched_getaffinity(0)) // 4)
    monkeypatch.setenv("FASTOKENS_BPE_THREADS", "3")            # the user's choice is kept
    share_tokenizer_threads(info)
    assert os.environ["FASTOKENS_BPE_THREADS"] == "3"
