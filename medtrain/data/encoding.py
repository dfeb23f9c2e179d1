"""The encoder contract: what the token store builder and the streaming path ask of an encoder.

An encoder turns records read from a work unit into token ids, and for SFT a per-token trained mask.
`TextEncoder` (pretraining text, `tokenization`) and `ConversationEncoder` (SFT conversations,
`conversations`) implement it; preference pairs will too. Encoders are picklable (worker processes
and dataloader workers receive them) and rebuild their tokenizer lazily in each process.

    encoder.read(unit, skip_bad, max_chars, skipped)  -> iterator of (key, record)
    encoder.size(record)                              -> characters, for sizing encode batches
    encoder.encode_batch([record, ...])               -> [EncodedDocument or None (dropped, counted)]
    encoder.counters()                                -> {name: count} since the previous call

Example (pretraining, EOS id 2): the record "Fever." encodes to
EncodedDocument(ids=array([412, 9, 2], dtype=uint16), mask=None): every token is trained.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple, Optional, Protocol, runtime_checkable

import numpy as np


class EncodedDocument(NamedTuple):
    ids: np.ndarray                 # token ids, in the store's dtype (uint16 or uint32)
    mask: Optional[np.ndarray]      # per token, 1 = trained (SFT); None: every token is trained


@runtime_checkable
class Encoder(Protocol):
    has_mask: bool                  # whether documents carry a trained-token mask

    @property
    def dtype(self) -> np.dtype: ...

    @property
    def fingerprint(self) -> str:
        """Everything about encoding that changes the ids or the mask (part of the store's name)."""

    def describe(self) -> dict:
        """What the manifest records about this encoder (kind, text field, template...)."""

    def for_source(self, text_field: Optional[str]) -> "Encoder":
        """This encoder for a mixture source that names its own text field (itself if None)."""

    def read(self, unit, skip_bad: bool, max_chars: Optional[int], skipped) -> Iterator[tuple[int, object]]: ...

    def size(self, record) -> int: ...

    def encode_batch(self, records: list) -> list[Optional[EncodedDocument]]: ...

    def counters(self) -> dict: ...


def own_fields_only(text_field: Optional[str], kind: str, fields: str) -> None:
    """`for_source` of encoders whose records have their own fields: a mixture source's text_field is an
    error naming the fields that are read instead."""
    if text_field:
        from medtrain.errors import DataError

        raise DataError(f"a mixture source's text_field ({text_field!r}) applies to pretraining text; {kind} are "
                        f"read from their own fields ({fields})")
