"""The collator: padding, labels and position_ids for document-aware and concatenated rows, every row
kept; the metadata of the batch gathered in row order."""

import numpy as np

from medtrain.data.collator import BlockCollator
from medtrain.data.rows import Row


def test_collator_pads_and_keeps_every_row():
    c = BlockCollator(pad_token_id=0, document_aware=True)
    rows = [Row(np.array([5, 6, 7, 8]), np.array([2, 2])),
            Row(np.array([9, 10, 11]), np.array([3]))]
    batch = c(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 11, 0]]
    assert batch["labels"].tolist() == [[-100, 6, -100, 8], [-100, 10, 11, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1], [0, 1, 2, 0]]
    c = BlockCollator(pad_token_id=0, document_aware=False)
    batch = c(rows)
    assert batch["labels"].tolist() == [[5, 6, 7, 8], [9, 10, 11, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]

