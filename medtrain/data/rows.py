"""Rows and the metadata they carry: the one row builder of both data paths, and the typed records
that travel with rows and batches from the datasets to the trainer.

A row is a block (see `packing`) turned into tokens: the pieces' ids back to back, the pieces'
lengths (so the collator can restart positions at each document), and, for SFT, labels (-100 where
a token is not trained). For the block [(doc 7, start 0, len 2), (doc 8, start 0, len 3)] with
doc 7 = [5, 6, 2] and doc 8 = [9, 9, 4, 2]:

    Row(input_ids=[5, 6, 9, 9, 4], piece_lengths=[2, 3], labels=None)

Rows of the streaming path also carry `cursors`: the stream positions that are reached once this
row is trained (a `StreamCursor` per reader slot; a `MixerCursor` for a streaming mixture), and rows
of a mixture their `source`. The collator gathers them into `BatchMeta`, which the trainer takes off
the batch before the model sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

import numpy as np

IGNORE_INDEX = -100
META_KEY = "_meta"  # the batch entry holding BatchMeta (never passed to the model)


@dataclass
class StreamCursor:
    """Where a streaming reader slot stands after the row that carries this cursor is trained:
    `window` of `epoch`, `batch` within it, `rows` of the epoch emitted before it (`size` in it),
    and, on the first batch of a window, `start`: the reader's state at the window's start."""

    slot: Union[int, str]
    epoch: int
    window: int
    batch: int
    rows: int
    size: int
    start: Optional[dict]
    window_size: int
    counts: Optional[dict] = None    # the reader's counters so far (see StreamingBlocks.counts)


@dataclass
class MixerCursor:
    """A streaming mixture's tokens per source so far, for slot `slot`."""

    slot: str
    tokens: list


Cursor = Union[StreamCursor, MixerCursor]


@dataclass
class Row:
    input_ids: np.ndarray                  # int64
    piece_lengths: np.ndarray              # int64, one per piece, summing to len(input_ids)
    labels: Optional[np.ndarray] = None    # int64, IGNORE_INDEX where not trained; None: train every token
    mask: Optional[np.ndarray] = None      # uint8, the stored per-token mask as it is (labels keep only 0 / not 0);
    #                                        preference pairs use 0 prompt, 1 chosen, 2 rejected
    source: Optional[str] = None           # the mixture source this row came from
    cursors: list = field(default_factory=list)  # Cursor(s) reached once this row is trained

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class BatchMeta:
    real_tokens: int                       # tokens of the rows, without padding
    slots: int                             # tokens of the padded batch
    cursors: list                          # every Cursor of the batch's rows, in row order
    sources: dict                          # mixture source -> tokens in this batch


def build_row(pieces: Iterable[tuple[int, int, int]],
              fetch: Callable[[int, int, int], tuple[np.ndarray, Optional[np.ndarray]]], has_mask: bool) -> Row:
    """The row of a block: `fetch(doc, start, length)` returns that piece's ids and trained mask."""
    pieces = list(pieces)
    parts = [fetch(d, s, n) for d, s, n in pieces]
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64) if parts else np.zeros(0, np.int64)
    labels = mask = None
    if has_mask:
        mask = np.concatenate([np.asarray(p[1], dtype=np.uint8) for p in parts]) if parts else np.zeros(0, np.uint8)
        labels = np.where(mask != 0, ids, IGNORE_INDEX)
    return Row(ids, np.asarray([n for _, _, n in pieces], dtype=np.int64), labels, mask=mask)

