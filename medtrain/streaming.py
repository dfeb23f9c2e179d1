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
from .tokenization import TextEncoder

TOKENIZE_BATCH_DOCS = 64
TOKENIZE_BATCH_CHARS = 1 << 18


class StreamingBlocks(torch.utils.data.IterableDataset):
    def __init__(self, files: list[SourceFile], encoder, block_size: int, strategy: str = "concat",
                 keep_last: bool = True, text_field: str = "text", skip_bad: bool = False,
                 max_chars: Optional[int] = None, split: str = "all", holdout_percentage: float = 0.0,
                 shuffle_buffer: int = 0, seed: int = 42, rank: int = 0, world: int = 1, loop: bool = True,
                 max_blocks: Optional[int] = None, unit_bytes: int = 32 << 20):
        super().__init__()
        if not hasattr(encoder, "encode_batch"):  # a TokenizerSpec: pretraining text
            encoder = TextEncoder(encoder, text_field)
        self.files, self.encoder = files, encoder
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
        epoch = 0
        while True:
            self.stats["epochs_started"] += 1
            blocks = self._blocks(units)
            if self.shuffle_buffer > 0:
                blocks = self._shuffled(blocks, random.Random(f"{self.seed}-{epoch}-{slot}"))
            for n, row in enumerate(blocks):
                if self.max_blocks is not None and n >= self.max_blocks:
                    break
                yield row
            self.stats.update(self.encoder.counters())
            if not self.loop:
                return
            epoch += 1

    def _blocks(self, units):
        packer = Packer(self.block_size, self.strategy, self.keep_last)
        held: dict[int, tuple] = {}   # (ids, mask) of documents the open block still refers to
        next_doc = 0
        enc = self.encoder

        def emit(block):
            ids = np.concatenate([held[d][0][s: s + n] for d, s, n in block]).astype(np.int64)
            row = {"input_ids": ids, "piece_lengths": np.asarray([n for _, _, n in block], dtype=np.int64)}
            if enc.has_mask:
                mask = np.concatenate([np.asarray(held[d][1][s: s + n], dtype=bool) for d, s, n in block])
                row["labels"] = np.where(mask, ids, -100)
            self.stats["blocks"] += 1
            self.stats["tokens_in_blocks"] += len(ids)
            return row

        for unit in units:
            pending: list = []
            size = 0
            it = iter(enc.read(unit, self.skip_bad, self.max_chars, self.skipped))
            while True:
                record = next(it, None)
                if record is not None:
                    key, rec = record
                    if not self._keep(unit.file.relpath, key):
                        continue
                    pending.append(rec)
                    size += enc.size(rec)
                    if len(pending) < TOKENIZE_BATCH_DOCS and size < TOKENIZE_BATCH_CHARS:
                        continue
                for encoded in enc.encode_batch(pending) if pending else []:
                    if encoded is None:
                        continue
                    doc, next_doc = next_doc, next_doc + 1
                    held[doc] = encoded
                    self.stats["documents"] += 1
                    self.stats["tokens"] += len(encoded[0])
                    for block in packer.add(doc, len(encoded[0])):
                        yield emit(block)
                    live = {d for d, _, _ in packer.open}
                    for d in [d for d in held if d not in live]:
                        del held[d]
                pending, size = [], 0
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
