"""Collators: turn rows (token ids plus piece lengths) into model inputs.

`BlockCollator` pads a batch to its longest row and builds `labels` and `position_ids` with
`packing.row_layout`: in document-aware modes position_ids restart at 0 at each piece and the first
label of each piece is ignored (-100), so transformers' packed-sequence attention (it derives
per-document masks, or flash-attention varlen lengths, from position_ids that restart, when no
attention_mask is passed) keeps every token inside its own document. Padding forms its own span
with ignored labels, so no attention_mask is needed. Every row of the batch is kept as it is: a
short or odd batch is padded, never replaced. The batch also carries a `rows.BatchMeta` under
`rows.META_KEY` (real and padded token counts, stream cursors, tokens per mixture source), which the
trainer removes before the model sees the batch.
"""

from __future__ import annotations

import numpy as np
import torch

from medtrain.data.packing import row_layout
from medtrain.data.rows import IGNORE_INDEX, META_KEY, BatchMeta, Row


class BlockCollator:
    def __init__(self, pad_token_id: int, document_aware: bool, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.document_aware = document_aware
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: list[Row]) -> dict:
        longest = max(len(r) for r in rows)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = -(-longest // m) * m
        input_ids = np.full((len(rows), longest), self.pad_token_id, dtype=np.int64)
        labels = np.full((len(rows), longest), IGNORE_INDEX, dtype=np.int64)
        position_ids = np.zeros((len(rows), longest), dtype=np.int64)
        for i, r in enumerate(rows):
            ids = np.asarray(r.input_ids, dtype=np.int64)
            n = len(ids)
            pos, ignore = row_layout(r.piece_lengths, self.document_aware)
            input_ids[i, :n] = ids
            lab = ids.copy()
            lab[ignore] = IGNORE_INDEX
            if r.labels is not None:  # rows that carry their own labels (e.g. SFT) keep them
                lab = np.where(ignore, IGNORE_INDEX, np.asarray(r.labels, dtype=np.int64))
            labels[i, :n] = lab
            position_ids[i, :n] = pos
            if n < longest:  # padding: its own span, restarting at 0 in document-aware mode
                pad_pos = np.arange(longest - n) if self.document_aware else np.arange(n, longest)
                position_ids[i, n:] = pad_pos
        sources: dict = {}  # tokens per mixture source, for the realized shares
        for r in rows:
            if r.source is not None:
                sources[r.source] = sources.get(r.source, 0) + len(r)
        meta = BatchMeta(real_tokens=sum(len(r) for r in rows), slots=int(input_ids.size),
                         cursors=[c for r in rows for c in r.cursors], sources=sources)
        # the meta never reaches the model: the trainer takes it off (padding statistics, stream cursors)
        return {"input_ids": torch.from_numpy(input_ids), "labels": torch.from_numpy(labels),
                "position_ids": torch.from_numpy(position_ids), META_KEY: meta}
