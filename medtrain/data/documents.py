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

from typing import Iterator, Optional

import numpy as np

from medtrain.data.encoding import EncodedDocument, Encoder
from medtrain.data.sources import SkipCounter, WorkUnit, batched, doc_hashes

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
    Records are encoded in batches of ENCODE_BATCH_CHARS / ENCODE_BATCH_DOCS."""
    filtering = split != "all" and holdout_percentage > 0
    if split == "eval" and holdout_percentage <= 0:
        return
    threshold = int(round(holdout_percentage * 100))  # the hold-out rule of is_held_out, per document
    want_held = split == "eval"
    pending: list = []
    size = 0
    for keys, records in _read_batches(encoder, unit, skip_bad, max_chars, skipped):
        if filtering:
            wanted = [(h % 10000 < threshold) == want_held for h in doc_hashes(unit.file.relpath, keys)]
            keys = [k for k, w in zip(keys, wanted) if w]
            records = [r for r, w in zip(records, wanted) if w]
        for key, record in zip(keys, records):
            pending.append((key, record))
            size += encoder.size(record)
            if size >= ENCODE_BATCH_CHARS or len(pending) >= ENCODE_BATCH_DOCS:
                yield from _encode(encoder, pending)
                pending, size = [], 0
    if pending:
        yield from _encode(encoder, pending)


def flat_documents(unit: WorkUnit, encoder: Encoder, skip_bad: bool, max_chars: Optional[int],
                   skipped: SkipCounter) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """(origins, ids, offsets) per block of `unit`: what `encoded_documents(split="all")` yields, for
    an encoder that keeps every document and has no mask (`encode_flat`, pretraining text), as the
    documents' origin hashes (`doc_hash`), one array of ids per block and the documents' offsets in it:
    no object per document (the store builder's path). The origins also choose the documents a fast
    backend's recheck re-encodes with HF."""
    for keys, records in _read_batches(encoder, unit, skip_bad, max_chars, skipped):
        if keys:
            origins = doc_hashes(unit.file.relpath, keys)
            ids, offsets = encoder.encode_flat(records, origins)
            yield origins, ids, offsets


def _read_batches(encoder: Encoder, unit: WorkUnit, skip_bad: bool, max_chars: Optional[int],
                  skipped: SkipCounter) -> Iterator[tuple[list[int], list]]:
    """The encoder's (keys, records) lists: its `read_batches` where it has one, else `read` in lists."""
    if hasattr(encoder, "read_batches"):
        return encoder.read_batches(unit, skip_bad, max_chars, skipped)
    return batched(encoder.read(unit, skip_bad, max_chars, skipped), ENCODE_BATCH_DOCS)


def _encode(encoder: Encoder, pending: list) -> Iterator[tuple[int, EncodedDocument]]:
    for (key, _), encoded in zip(pending, encoder.encode_batch([r for _, r in pending])):
        if encoded is not None:
            yield key, EncodedDocument(*encoded)
