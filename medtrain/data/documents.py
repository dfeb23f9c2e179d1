"""The one path of documents: read a work unit -> keep the split's documents -> encode in batches.

The token store builder (every document, the split is chosen later from the stored keys) and the
streaming path (only its split's documents, so held-out ones are never tokenized for training) both
iterate `encoded_documents`, so they see the same documents, in the same order, with the same ids.

The hold-out rule, shared by both paths: a document is held out for validation when the hash of its
origin (`sources.doc_hash(relpath, key)`, a uint32), modulo 10,000, is below
`validation_split_percentage * 100`. E.g. with 5 %, a document whose hash is 1,230,499 (mod 10,000 =
499 < 500) is held out; one whose hash is 77,777 (7,777) is trained on.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from typing import Callable, Iterator, Optional

import numpy as np

from medtrain.data.encoding import EncodedDocument, Encoder
from medtrain.data.sources import SkipCounter, WorkUnit, doc_hashes

ENCODE_BATCH_CHARS = 1 << 20   # characters per encode_batch call (bounded memory, warm tokenizer)
ENCODE_BATCH_DOCS = 1024       # documents per encode_batch call
SPLITS = ("all", "train", "eval")


def is_held_out(keys, holdout_percentage: float) -> np.ndarray:
    """The hold-out rule (see the module docstring) for an array of origin hashes."""
    return (np.asarray(keys, dtype=np.uint64) % 10000) < int(round(holdout_percentage * 100))


def in_split(keys, split: str, holdout_percentage: float) -> np.ndarray:
    """Which of `keys` (origin hashes) belong to `split`: all, train (not held out) or eval (held out)."""
    keys = np.asarray(keys, dtype=np.uint64)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
    if split == "all" or holdout_percentage <= 0:
        return np.full(len(keys), split != "eval")
    held = is_held_out(keys, holdout_percentage)
    return held if split == "eval" else ~held


def encoded_documents(unit: WorkUnit, encoder: Encoder, skip_bad: bool, max_chars: Optional[int],
                      skipped: SkipCounter, split: str = "all",
                      holdout_percentage: float = 0.0) -> Iterator[tuple[int, EncodedDocument]]:
    """(key, encoded document) for each document of `unit` in file order that belongs to `split` and
    that the encoder kept (one it drops is counted by the encoder, e.g. an SFT record with no target).
    Records are encoded in batches of ENCODE_BATCH_CHARS / ENCODE_BATCH_DOCS (`_sized`)."""
    filtering = split != "all" and holdout_percentage > 0
    if split == "eval" and holdout_percentage <= 0:
        return
    threshold = int(round(holdout_percentage * 100))  # the hold-out rule of is_held_out, per document
    want_held = split == "eval"

    def in_split(batches):
        for keys, records in batches:
            wanted = [(h % 10000 < threshold) == want_held for h in doc_hashes(unit.file.relpath, keys)]
            yield [k for k, w in zip(keys, wanted) if w], [r for r, w in zip(records, wanted) if w]

    batches = _read_batches(encoder, unit, skip_bad, max_chars, skipped)
    for keys, records in _sized(in_split(batches) if filtering else batches, encoder.size):
        for key, encoded in zip(keys, encoder.encode_batch(records)):
            if encoded is not None:
                yield key, EncodedDocument(*encoded)


def flat_documents(unit: WorkUnit, encoder: Encoder, skip_bad: bool, max_chars: Optional[int],
                   skipped: SkipCounter) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """(origins, ids, offsets) per batch: the documents `encoded_documents(split="all")` yields, in the
    same batches, for an encoder that keeps every document and has no mask (`encode_flat`, pretraining
    text), as their origin hashes (`doc_hash`), one array of ids per batch and the documents' offsets
    in it: no object per document (the store builder's path). The origins also choose the documents a
    fast backend's recheck re-encodes with HF."""
    for keys, records in _sized(_read_batches(encoder, unit, skip_bad, max_chars, skipped), encoder.size):
        origins = doc_hashes(unit.file.relpath, keys)
        ids, offsets = encoder.encode_flat(records, origins)
        yield origins, ids, offsets


def _read_batches(encoder: Encoder, unit: WorkUnit, skip_bad: bool, max_chars: Optional[int],
                  skipped: SkipCounter) -> Iterator[tuple[list[int], list]]:
    """The encoder's (keys, records) lists: its `read_batches` where it has one, else `read`, a record
    at a time (so its records are used, and its bad ones reported, in file order)."""
    if hasattr(encoder, "read_batches"):
        return encoder.read_batches(unit, skip_bad, max_chars, skipped)
    return (([key], [record]) for key, record in encoder.read(unit, skip_bad, max_chars, skipped))


def _sized(batches: Iterator[tuple[list[int], list]], size: Callable) -> Iterator[tuple[list[int], list]]:
    """(keys, records) lists regrouped into encode batches: a batch ends with the record that brings it
    to ENCODE_BATCH_CHARS (by `size`) or to ENCODE_BATCH_DOCS records, as if records came one by one;
    cut points found by bisection on running sums, not a Python step per record. E.g. sizes [3, 3] then
    [3, 3] with a limit of 5 characters: batches [3, 3], [3, 3]."""
    keys: list[int] = []
    records: list = []
    chars = 0
    for k, r in batches:
        n = len(r)
        sums = list(accumulate(map(size, r)))
        i = 0
        while i < n:
            before = sums[i - 1] if i else 0
            j = min(bisect_left(sums, before + ENCODE_BATCH_CHARS - chars, i, n),
                    i + ENCODE_BATCH_DOCS - len(keys) - 1)
            if j >= n:                      # the batch stays open for the next list
                keys.extend(k[i:])
                records.extend(r[i:])
                chars += sums[-1] - before
                break
            keys.extend(k[i:j + 1])
            records.extend(r[i:j + 1])
            yield keys, records
            keys, records, chars = [], [], 0
            i = j + 1
    if keys:
        yield keys, records
