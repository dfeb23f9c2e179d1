"""The streaming path: read, tokenize and pack on the fly, in constant memory, with no token store.

`StreamingBlocks` is an `IterableDataset` of *batches* (lists of rows). With one reader (one rank,
no dataloader workers) it holds the same blocks as `BlockDataset` over a token store built from the
same files: `packing.Packer` is fed the documents in the same order (with shuffling off the sequence
is identical; with shuffling on, the first epoch holds the same multiset). With several readers each
packs its own documents, so blocks at the edges of their shares differ. Memory is bounded by one tokenize batch, the open block
and one window of blocks, whatever the corpus size; nothing is listed or counted before the first
block.

Sharding. With W ranks and D dataloader workers there are W*D *slots*. The files are planned into
work units (whole files, or byte ranges of large uncompressed ones); with fewer units than slots,
every unit is read by every slot with a stride (each keeps the records whose key hashes to its
phase). Units go to slots balanced by bytes, so every document of an epoch is read by exactly one
slot. Every slot loops over epochs forever (training stops at max_steps), so no rank ever runs out
of batches before another; with shuffling on, epoch e > 0 visits the slot's units in an order seeded
by (seed, e). A slot with no document at all is an error (fewer readers are needed), not a hang.

Shuffling and length grouping work on *windows*: consecutive blocks are gathered until the window
holds `shuffle_buffer_size` blocks (or `batch_size * 64` with group_by_length; the first windows of
an epoch are smaller and double in size up to that, so the first batch comes quickly), then the window is
permuted with a generator seeded by (seed, epoch, slot, window number), or sorted by length and cut
into batches whose order is permuted, and emitted as batches.

Exact resume. Each batch carries a small cursor: its slot, epoch, window number and position in the
window, and, on the first batch of a window, the state the window started from (unit, the key of the
next document, the packer's open block with the documents it refers to). The trainer keeps the last cursor of every
slot and saves it with each checkpoint; a resumed run restarts each slot at its window's start and
skips the batches already trained, so it re-reads at most one window, whatever the step.
"""

from __future__ import annotations

import gc
import logging
import random
from dataclasses import replace
from typing import Optional

import numpy as np
import torch

from medtrain.errors import DataError, MemoryGuardError
from medtrain.data.documents import encoded_documents
from medtrain.data.packing import DOCUMENT_AWARE, Packer
from medtrain.data.rows import Row, StreamCursor, build_row
from medtrain.data.sources import SkipCounter, SourceFile, WorkUnit, plan_units
from medtrain.data.tokenization import TextEncoder, TokenizerSpec

logger = logging.getLogger(__name__)

GROUP_WINDOW_BATCHES = 64
ORDERED_WINDOW = 64  # blocks per window when neither shuffling nor grouping (cursor granularity)


def slot_units(files: list[SourceFile], n_slots: int, slot: int, unit_bytes: int = 32 << 20) -> list[WorkUnit]:
    """The work units slot `slot` of `n_slots` reads, in corpus order (deterministic)."""
    from dataclasses import replace

    units = plan_units(files, unit_bytes, min_units=n_slots)
    if n_slots == 1:
        return units
    small = sum(f.size for f in files) < n_slots * (1 << 20)  # byte ranges this small may hold no line start
    if len(units) < n_slots or small:  # not enough to go round: every slot reads every unit with a stride
        return [replace(u, stride=n_slots, phase=slot) for u in units]
    load = [0] * n_slots
    mine = [[] for _ in range(n_slots)]
    for i in sorted(range(len(units)), key=lambda i: (-units[i].nbytes, i)):  # largest first
        k = min(range(n_slots), key=lambda k: (load[k], k))
        load[k] += units[i].nbytes
        mine[k].append(i)
    return [units[i] for i in sorted(mine[slot])]


class StreamingBlocks(torch.utils.data.IterableDataset):
    def __init__(self, files: list[SourceFile], encoder, block_size: int, strategy: str = "concat",
                 keep_last: bool = True, text_field: str = "text", skip_bad: bool = False,
                 max_chars: Optional[int] = None, split: str = "all", holdout_percentage: float = 0.0,
                 shuffle_buffer: int = 0, seed: int = 42, rank: int = 0, world: int = 1, loop: bool = True,
                 max_blocks: Optional[int] = None, unit_bytes: int = 32 << 20, batch_size: int = 1,
                 group_by_length: bool = False, memory_guard=None):
        super().__init__()
        if isinstance(encoder, TokenizerSpec):  # pretraining text with this tokenizer
            encoder = TextEncoder(encoder, text_field)
        self.files, self.encoder = files, encoder
        self.block_size, self.strategy, self.keep_last = block_size, strategy, keep_last
        self.skip_bad, self.max_chars = skip_bad, max_chars
        self.split, self.holdout = split, holdout_percentage
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.rank, self.world, self.loop = rank, world, loop
        self.max_blocks, self.unit_bytes = max_blocks, unit_bytes
        self.batch_size, self.group_by_length = batch_size, group_by_length
        self.memory_guard = memory_guard
        Packer(block_size, strategy, keep_last)  # validates the strategy now, not in a worker
        self.document_aware = DOCUMENT_AWARE[strategy]
        self.skipped = SkipCounter()
        self.stats = {"documents": 0, "tokens": 0, "blocks": 0, "tokens_in_blocks": 0, "epochs_started": 0}
        self.resume_state: Optional[dict] = None   # {"world", "workers", "rotation", "slots": {slot: cursor}}
        self._cap: Optional[int] = max_blocks
        self.window_size = self._window_size()

    def _window_limit(self, w: int) -> int:
        """Blocks in window w of an epoch: the first windows are small and double up to window_size, so
        the first batch comes after a few blocks, not after a whole shuffle buffer."""
        first = max(self.batch_size, 8)
        return min(self.window_size, first << min(w, 30))

    def _window_size(self) -> int:
        if self.group_by_length:
            return max(self.shuffle_buffer, self.batch_size * GROUP_WINDOW_BATCHES)
        return self.shuffle_buffer if self.shuffle_buffer > 0 else ORDERED_WINDOW

    # -- rows (one batch at a time is handed to the DataLoader: batch_size=None) ------------------
    def rows(self):
        """The blocks one by one (tests, tools, and the evaluation set)."""
        for batch in self:
            for row in batch:
                yield row

    # -- slots ---------------------------------------------------------------------------------------
    def _slot(self) -> tuple[int, int, int]:
        info = torch.utils.data.get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        rotation = (self.resume_state or {}).get("rotation", 0)
        return self.rank * workers + (wid + rotation) % workers, self.world * workers, workers

    def counts(self) -> dict:
        """This reader's counters so far: documents, tokens, blocks, epochs, encoder counters (documents
        cut for tokenizing, SFT truncations) and skipped lines by reason. Skips and encoder counters
        are those of the first pass over the data (a looping stream reads a bad line once per epoch)."""
        return {**self.stats, "skipped_lines": self.skipped.to_dict()}

    def _restore_counts(self, counts: Optional[dict]) -> None:
        if counts:
            self.stats = {k: v for k, v in counts.items() if k != "skipped_lines"}
            self.skipped = SkipCounter()
            self.skipped.merge(counts.get("skipped_lines", {}))

    def load_state_dict(self, state: dict, workers: int) -> None:
        """Resume from the cursors a checkpoint saved (see trainer.StreamCursorTracker)."""
        if state.get("config") not in (None, self.config_key()):
            raise DataError(
                "the checkpoint's streaming position belongs to other data settings (input files, batch size, "
                "block size, packing, shuffle buffer, seed, holdout or length grouping changed), so it would "
                "continue at the wrong place. Resume with the same settings, or pass --ignore_data_skip true to "
                "restart the data stream from its beginning.")
        if state.get("world") != self.world or state.get("workers") != max(1, workers):
            raise DataError(
                f"the checkpoint's streaming position was saved with {state.get('world')} rank(s) x "
                f"{state.get('workers')} dataloader worker(s) per rank, and this run has {self.world} x "
                f"{max(1, workers)}: documents are assigned to (rank, worker) slots by those numbers, so resuming "
                "with others would repeat or skip data. Resume with the same numbers, or pass "
                "--ignore_data_skip true to restart the data stream from its beginning.")
        self.resume_state = state

    # -- iteration -------------------------------------------------------------------------------------
    def config_key(self) -> str:
        """What a saved position depends on: resuming is refused when any of it changed."""
        import hashlib
        import json

        parts = [[f.path, f.size, f.mtime_ns] for f in self.files] + [
            self.encoder.fingerprint, self.block_size, self.strategy, self.keep_last, self.split, self.holdout,
            self.shuffle_buffer, self.seed, self.batch_size, self.group_by_length, self.max_blocks, self.unit_bytes]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]

    def __iter__(self):
        slot, n_slots, _ = self._slot()
        units = slot_units(self.files, n_slots, slot, self.unit_bytes)
        # --max_train_samples is for the whole run: each reader takes its share
        self._cap = None if self.max_blocks is None else -(-self.max_blocks // n_slots)
        cursor = ((self.resume_state or {}).get("slots") or {}).get(str(slot))
        if cursor and cursor.get("window_size"):
            self.window_size = cursor["window_size"]  # as the memory guard had left it
        epoch = cursor["epoch"] if cursor else 0
        while True:
            self.stats["epochs_started"] += 1
            order = list(units)
            if epoch > 0 and self.shuffle_buffer > 0:
                random.Random(f"{self.seed}-units-{epoch}-{slot}").shuffle(order)
            produced = False
            for batch in self._epoch(order, epoch, slot, cursor if cursor and cursor["epoch"] == epoch else None):
                produced = True
                yield batch
            if not produced and cursor is None:
                raise DataError(f"streaming reader {slot} of {n_slots} (rank {self.rank}) found no document in its "
                                f"share of the input ({', '.join(u.describe() for u in units) or 'no file'}): "
                                "use fewer ranks or dataloader workers, or more data")
            cursor = None
            if not self.loop:
                return
            epoch += 1

    def _documents(self, units, start: Optional[dict], first_pass: bool = True):
        """(state before the document, blocks the document completes) for each document; the state is
        what a resumed run needs to start exactly at this document (and the counters it restores)."""
        enc = self.encoder
        packer = Packer(self.block_size, self.strategy, self.keep_last)
        held: dict = {}
        next_doc, first_unit, first_key = 0, 0, None
        if start is not None:
            packer.load_state_dict(start["packer"])
            held = {int(d): (np.asarray(v[0]), None if v[1] is None else np.asarray(v[1]))
                    for d, v in start["held"].items()}
            next_doc, first_unit, first_key = start["next_doc"], start["unit"], start["key"]
            self._restore_counts(start.get("counts"))
        skipped = self.skipped if first_pass else SkipCounter()  # later epochs read the same bad lines again

        def state(ui, key):
            return {"unit": ui, "key": key, "packer": packer.state_dict(), "held": dict(held), "next_doc": next_doc,
                    "counts": self.counts()}

        for ui in range(first_unit, len(units)):
            unit = units[ui].resume_at(first_key if ui == first_unit else None)
            for key, doc in encoded_documents(unit, enc, self.skip_bad, self.max_chars, skipped, self.split,
                                              self.holdout):
                before = state(ui, key)
                d, next_doc = next_doc, next_doc + 1
                held[d] = doc
                self.stats["documents"] += 1
                self.stats["tokens"] += len(doc.ids)
                blocks = [self._row(b, held) for b in packer.add(d, len(doc.ids))]
                live = {p[0] for p in packer.open}
                for old in [o for o in held if o not in live]:
                    del held[old]
                yield before, blocks
            for k, v in enc.counters().items():  # e.g. documents cut, SFT truncations
                if first_pass:
                    self.stats[k] = self.stats.get(k, 0) + v
        yield state(len(units), None), [self._row(b, held) for b in packer.finish()]

    def _row(self, block, held) -> Row:
        has_mask = self.encoder.has_mask
        row = build_row(block, lambda d, s, n: (held[d][0][s: s + n], held[d][1][s: s + n] if has_mask else None),
                        has_mask)
        self.stats["blocks"] += 1
        self.stats["tokens_in_blocks"] += len(row)
        return row

    def _epoch(self, units, epoch: int, slot: int, cursor: Optional[dict]):
        """One epoch of this slot as batches; from `cursor` (the next batch to train) when resuming."""
        window, wstart = [], None
        w = cursor["window"] if cursor else 0
        skip = cursor["batch"] if cursor else 0
        emitted = cursor["rows"] if cursor else 0   # rows of this epoch before the next batch
        for before, blocks in self._documents(units, cursor["start"] if cursor else None, first_pass=epoch == 0):
            if wstart is None:
                wstart = before
            window.extend(blocks)
            if len(window) >= self._window_limit(w):
                for batch in self._window(window, wstart, epoch, slot, w, skip, emitted):
                    emitted += len(batch)
                    yield batch
                if self._cap is not None and emitted >= self._cap:
                    return
                window, wstart, w, skip = [], None, w + 1, 0
                self._check_memory()
        if window:
            yield from self._window(window, wstart, epoch, slot, w, skip, emitted)

    def _window(self, rows, wstart, epoch, slot, w, skip, emitted):
        """Emit one window as batches (permuted, or grouped by length), from batch `skip` on;
        `emitted` counts the epoch's rows before batch `skip`."""
        rng = random.Random(f"{self.seed}-{epoch}-{slot}-{w}")
        bs = self.batch_size
        if self.group_by_length:
            order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
            batches = [order[i: i + bs] for i in range(0, len(order), bs)]
            rng.shuffle(batches)
        else:
            order = list(range(len(rows)))
            if self.shuffle_buffer > 0:
                rng.shuffle(order)
            batches = [order[i: i + bs] for i in range(0, len(order), bs)]
        rows_before = emitted - sum(len(b) for b in batches[:skip])  # the epoch's rows before this window
        if self._cap is not None:  # the epoch's cap on blocks (max_train_samples)
            room, capped = self._cap - rows_before, []
            for b in batches:
                if room <= 0:
                    break
                capped.append(b[:room])
                room -= len(capped[-1])
            batches = capped
        for k in range(skip, len(batches)):
            batch = [replace(rows[i], cursors=[]) for i in batches[k]]
            batch[0].cursors = [StreamCursor(slot, epoch, w, k, emitted, len(batch), wstart if k == skip else None,
                                             self.window_size, self.counts())]
            emitted += len(batch)
            yield batch

    # -- memory guard (data side) ------------------------------------------------------------------
    def _check_memory(self) -> None:
        guard = self.memory_guard
        if guard is None:
            return
        level = guard.check()
        if level == "stop":
            raise MemoryGuardError(guard.message("the streaming reader"))
        if level == "high" and self.window_size > self.batch_size:
            gc.collect()
            new = max(self.batch_size, self.window_size // 2)
            logger.warning("memory high (%s): streaming window shrunk from %d to %d blocks", guard.numbers(),
                           self.window_size, new)
            self.window_size = new


COUNT_KEYS_NOT_SUMMED = ("epochs_started",)


def stream_totals(slot_counts: list) -> dict:
    """The counters of several readers (slots, ranks) added up: numbers summed, skipped lines summed by
    reason, `padding_fraction` recomputed; epochs_started is the largest of any reader."""
    total: dict = {}
    skipped = SkipCounter()
    for counts in slot_counts:
        for k, v in (counts or {}).items():
            if k == "skipped_lines":
                skipped.merge(v)
            elif k in COUNT_KEYS_NOT_SUMMED:
                total[k] = max(total.get(k, 0), v)
            elif isinstance(v, (int, float)) and k != "padding_fraction" and k != "block_size":
                total[k] = total.get(k, 0) + v
    total["skipped_lines"] = skipped.to_dict()
    return total
