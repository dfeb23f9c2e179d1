"""Map-style datasets of rows: `BlockDataset` over the blocks of a token store (the prepared path),
and `MaterializedBlocks`, the first rows of a finite stream (the streaming path's evaluation set).

Each item of a `BlockDataset` is one block's row (see `rows`); the Trainer's (distributed) sampler
shuffles and shards the block numbers, so every rank reads its own blocks and nothing is tokenized at
training time. The corpus and the block index are memory-mapped files: a dataloader worker forked
from a rank shares them, and one started by spawn maps them again by path (nothing is copied).
"""

from __future__ import annotations

import torch

from medtrain.data.packing import BlockIndex
from medtrain.data.rows import Row
from medtrain.errors import DataError
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
        return self.index.block_lengths()

    def __getitem__(self, b: int) -> Row:
        if b < 0 or b >= len(self):
            raise IndexError(b)
        return self.corpus.block_row(self.index, b)


class MaterializedBlocks(torch.utils.data.Dataset):
    """The first `limit` rows of a finite stream (`rows()`), read on first use (for evaluation)."""

    def __init__(self, source, limit: int):
        self.source, self.limit, self._rows = source, limit, None

    def _load(self) -> list:
        if self._rows is None:
            self._rows = []
            for row in self.source.rows():
                self._rows.append(row)
                if len(self._rows) >= self.limit:
                    break
            if not self._rows:
                raise DataError("the streaming validation split is empty: no document was held out "
                                "(raise --validation_split_percentage or give --validation_file_dir)")
        return self._rows

    def __len__(self) -> int:
        return len(self._load())

    def __getitem__(self, i: int) -> Row:
        return self._load()[i]
