"""The one row builder and the metadata rows and batches carry."""

import numpy as np

from medtrain.data.collator import BlockCollator
from medtrain.data.rows import IGNORE_INDEX, META_KEY, BatchMeta, MixerCursor, Row, StreamCursor, build_row

DOCS = {7: (np.array([5, 6, 2], np.uint16), np.array([0, 1, 1], np.uint8)),
        8: (np.array([9, 9, 4, 2], np.uint16), np.array([0, 0, 1, 1], np.uint8))}


def fetch(d, s, n):
    ids, mask = DOCS[d]
    return ids[s: s + n], mask[s: s + n]


def test_docstring_example():
    row = build_row([(7, 0, 2), (8, 0, 3)], fetch, has_mask=False)
    assert row.input_ids.tolist() == [5, 6, 9, 9, 4] and row.input_ids.dtype == np.int64
    assert row.piece_lengths.tolist() == [2, 3] and row.labels is None and len(row) == 5


def test_labels_from_the_trained_mask():
    row = build_row([(7, 1, 2), (8, 1, 3)], fetch, has_mask=True)
    assert row.input_ids.tolist() == [6, 2, 9, 4, 2]
    assert row.labels.tolist() == [6, 2, IGNORE_INDEX, 4, 2]


def test_collator_gathers_metadata_in_row_order():
    c1 = StreamCursor(slot=0, epoch=0, window=1, batch=2, rows=16, size=2, start=None, window_size=64)
    c2 = MixerCursor(slot="mix/0", tokens=[5, 3])
    rows = [Row(np.array([1, 2, 3]), np.array([3]), source="zh", cursors=[c1]),
            Row(np.array([4, 5]), np.array([2]), source="en", cursors=[c2])]
    batch = BlockCollator(pad_token_id=0, document_aware=True)(rows)
    meta = batch[META_KEY]
    assert meta == BatchMeta(real_tokens=5, slots=6, cursors=[c1, c2], sources={"zh": 3, "en": 2})
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 5, 0]]
