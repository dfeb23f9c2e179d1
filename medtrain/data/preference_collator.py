"""The preference collator: rows of stored pairs (see `preference`) -> the batch TRL's preference losses
read, chosen sequences first, then rejected ones, the prompt shared:

    row    ids  p1 p2 p3 c1 c2 r1          mask 0 0 0 1 1 2
    ->     input_ids        p1 p2 p3 c1 c2         (chosen)
                            p1 p2 p3 r1 <pad>      (rejected)
           attention_mask   1  1  1  1  1
                            1  1  1  1  0
           completion_mask  0  0  0  1  1          only response tokens count in the log-probabilities
                            0  0  0  1  0

(B rows give 2B sequences, padded on the right to the longest). The batch also carries the
`rows.BatchMeta` the trainer takes off (real and padded tokens, streaming cursors, mixture sources).
A row that is not one whole pair (packed, or cut by a block size smaller than the pair) is a
`DataError`, never trained on.
"""

from __future__ import annotations

import numpy as np
import torch

from medtrain.data.preference import split_pair
from medtrain.data.rows import META_KEY, BatchMeta, Row


class PreferenceCollator:
    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def sequences(self, rows: list[Row]) -> tuple[list[np.ndarray], list[int]]:
        """The 2B sequences (chosen ones, then rejected ones) and each one's prompt length."""
        chosen, rejected, prompts = [], [], []
        for i, r in enumerate(rows):
            if r.mask is None or len(r.piece_lengths) != 1:
                split_pair(r.input_ids, np.zeros(len(r.input_ids), np.uint8), f"row {i} of the batch")
            prompt, c, rj = split_pair(np.asarray(r.input_ids, dtype=np.int64), r.mask, f"row {i} of the batch")
            chosen.append(np.concatenate([prompt, c]))
            rejected.append(np.concatenate([prompt, rj]))
            prompts.append(len(prompt))
        return chosen + rejected, prompts + prompts

    def __call__(self, rows: list[Row]) -> dict:
        seqs, prompts = self.sequences(rows)
        longest = max(len(s) for s in seqs)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        n = len(seqs)
        input_ids = np.full((n, longest), self.pad_token_id, dtype=np.int64)
        attention = np.zeros((n, longest), dtype=np.int64)
        completion = np.zeros((n, longest), dtype=np.int64)
        for i, (s, p) in enumerate(zip(seqs, prompts)):
            input_ids[i, : len(s)] = s
            attention[i, : len(s)] = 1
            completion[i, p: len(s)] = 1
        sources: dict = {}
        for r in rows:
            if r.source is not None:
                sources[r.source] = sources.get(r.source, 0) + len(r)
        meta = BatchMeta(real_tokens=int(attention.sum()), slots=int(input_ids.size),
                         cursors=[c for r in rows for c in r.cursors], sources=sources)
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention),
                "completion_mask": torch.from_numpy(completion), META_KEY: meta}
