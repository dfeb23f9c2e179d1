"""The prepared path's dataset: a map-style dataset over the blocks of a token store.

Each item is one block's token ids and the lengths of its pieces (see `packing`); the Trainer's
(distributed) sampler shuffles and shards the block numbers, so every rank reads its own blocks and
nothing is tokenized at training time.
"""

from __future__ import annotations

import torch

from medtrain.data.packing import BlockIndex
from medtrain.data.token_store import TokenCorpus


class BlockDataset(torch.utils.data.Dataset):
    def __init__(self, corpus: TokenCorpus, index: BlockIndex):
        self.corpus = corpus
        self.index = index
        self.document_aware = index.document_aware

    def __len__(self) -> int:
        return self.index.n_blocks

    def lengths(self):
        """Tokens in each block (for length-grouped sampling), from the index alone."""
        import numpy as np

        cum = np.concatenate([[0], np.cumsum(self.index.piece_len)])
        return cum[self.index.block_ptr[1:]] - cum[self.index.block_ptr[:-1]]

    def __getitem__(self, b: int) -> dict:
        if b < 0 or b >= len(self):
            raise IndexError(b)
        return self.corpus.block_tokens(self.index, b)
