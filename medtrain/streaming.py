"""The streaming path: read, tokenize and pack on the fly, in constant memory, with no token store.

`StreamingBlocks` is an `IterableDataset` that yields the same rows as `BlockDataset` over a token
store built from the same files (`packing.Packer` is fed the documents in the same order; with
shuffling off the sequence is identical, with shuffling on the multiset is). Memory is bounded by
one tokenize batch, the open block and the shuffle buffer, whatever the corpus size; nothing is
listed or counted before the first block.

Work is split by (rank, dataloader worker) *slot*: the files are planned into work units (whole
files, or byte ranges of large ones) and slot k of n reads units k, k+n, k+2n, ... The shuffle
buffer holds finished blocks (not documents), so shuffling never changes how documents are packed.
"""

from __future__ import annotations

import random
from typing import Optional

import numpy as np
import torch

from .packing import DOCUMENT_AWARE, Packer
from .sources import RecordReader, SkipCounter, SourceFile, doc_hash, plan_units
from .token_store import is_held_out
from .tokenization import TokenizerSpec

TOKENIZE_BATCH_DOCS = 64
TOKENIZE_BATCH_CHARS = 1 << 18


class StreamingBlocks(torch.utils.data.IterableDataset):
    def __init__(self, files: list[SourceFile], spec: TokenizerSpec, block_size: int, strategy: str = "concat",
                 keep_last: bool = True, text_field: str = "text", skip_bad: bool = False,
                 max_chars: Optional[int] = None, split: str = "all", holdout_percentage: float = 0.0,
                 shuffle_buffer: int = 0, seed: int = 42, rank: int = 0, world: int = 1, loop: bool = True,
                 max_blocks: Optional[int] = None, unit_bytes: int = 32 << 20):
        super().__init__()
        self.files, self.spec = files, spec
        self.block_size, self.strategy, self.keep_last = block_size, strategy, keep_last
        self.text_field, self.skip_bad, self.max_chars = text_field, skip_bad, max_chars
        self.split, self.holdout = split, holdout_percentage
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.rank, self.world, self.loop = rank, world, loop
        self.max_blocks, self.unit_bytes = max_blocks, unit_bytes
        Packer(block_size, strategy, keep_last)  # validates the strategy now, not in a worker
        self.document_aware = DOCUMENT_AWARE[strategy]
        self.skipped = SkipCounter()
        self.stats = {"documents": 0, "tokens": 0, "blocks": 0, "tokens_in_blocks": 0, "epochs_started": 0,
                      "documents_cut_for_tokenizing": 0}

    # -- slots --------------------------------------------------------------------------------------
    def _slot(self) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + wid, self.world * workers

    def _keep(self, relpath: str, key: int) -> bool:
        if self.split == "all" or self.holdout <= 0:
            return self.split != "eval"
        held = bool(is_held_out([doc_hash(relpath, key)], self.holdout)[0])
        return held if self.split == "eval" else not held

    # -- iteration ----------------------------------------------------------------------------------
    def __iter__(self):
        slot, n_slots = self._slot()
        units = plan_units(self.files, self.unit_bytes, min_units=n_slots)[slot::n_slots]
        tok = self.spec.build()
        epoch = 0
        while True:
            self.stats["epochs_started"] += 1
            blocks = self._blocks(units, tok)
            if self.shuffle_buffer > 0:
                blocks = self._shuffled(blocks, random.Random(f"{self.seed}-{epoch}-{slot}"))
            for n, row in enumerate(blocks):
                if self.max_blocks is not None and n >= self.max_blocks:
                    break
                yield row
            self.stats["documents_cut_for_tokenizing"] = tok.documents_cut
            if not self.loop:
                return
            epoch += 1

    def _blocks(self, units, tok):
        packer = Packer(self.block_size, self.strategy, self.keep_last)
        held: dict[int, np.ndarray] = {}   # tokens of documents the open block still refers to
        next_doc = 0

        def emit(block):
            ids = np.concatenate([held[d][s: s + n] for d, s, n in block]).astype(np.int64)
            lens = np.asarray([n for _, _, n in block], dtype=np.int64)
            self.stats["blocks"] += 1
            self.stats["tokens_in_blocks"] += int(lens.sum())
            return {"input_ids": ids, "piece_lengths": lens}

        for unit in units:
            reader = RecordReader(unit, self.text_field, self.skip_bad, self.max_chars, self.skipped)
            texts: list[str] = []
            chars = 0
            it = iter(reader)
            while True:
                record = next(it, None)
                if record is not None:
                    key, text = record
                    if not self._keep(unit.file.relpath, key):
                        continue
                    texts.append(text)
                    chars += len(text)
                    if len(texts) < TOKENIZE_BATCH_DOCS and chars < TOKENIZE_BATCH_CHARS:
                        continue
                if texts:
                    for ids in tok.encode_batch(texts):
                        doc, next_doc = next_doc, next_doc + 1
                        held[doc] = ids
                        self.stats["documents"] += 1
                        self.stats["tokens"] += len(ids)
                        for block in packer.add(doc, len(ids)):
                            yield emit(block)
                        live = {d for d, _, _ in packer.open}
                        for d in [d for d in held if d not in live]:
                            del held[d]
                    texts, chars = [], 0
                if record is None:
                    break
        for block in packer.finish():
            yield emit(block)

    def _shuffled(self, rows, rng: random.Random):
        buf = []
        for row in rows:
            if len(buf) < self.shuffle_buffer:
                buf.append(row)
                continue
            j = rng.randrange(len(buf))
            buf[j], row = row, buf[j]
            yield row
        rng.shuffle(buf)
        yield from buf
