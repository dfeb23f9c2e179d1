"""Packing: the block definition, vectorised and incremental, and the row layout."""

import numpy as np
import pytest

from medtrain.data.packing import Packer, pack, row_layout

LENGTHS = [6, 2, 3, 9, 1, 4, 4, 13, 2]


def incremental(lengths, bs, strategy, keep_last=True):
    p = Packer(bs, strategy, keep_last)
    blocks = []
    for d, n in enumerate(lengths):
        blocks.extend(p.add(d, n))
    blocks.extend(p.finish())
    return blocks


def as_blocks(index):
    return [index.pieces(b) for b in range(index.n_blocks)]


def test_concat_worked_example():
    # A=6 tokens, B=2, C=3 with block_size 4 (the picture in packing's docstring)
    idx = pack([6, 2, 3], 4, "concat")
    assert as_blocks(idx) == [[(0, 0, 4)], [(0, 4, 2), (1, 0, 2)], [(2, 0, 3)]]
    assert idx.stats()["padding_fraction"] == pytest.approx(1 / 12, abs=1e-6)
    assert idx.stats()["documents_split_across_blocks"] == 1


def test_group_by_text_worked_example():
    idx = pack([6, 2, 3], 4, "group_by_text")
    assert as_blocks(idx) == [[(0, 0, 4)], [(0, 4, 2), (1, 0, 2)], [(2, 0, 3)]]
    # B does not fit the open block (3 + 2 > 4): A's block closes, padded; C is a full block at once,
    # while B's block stays open for what comes next
    idx = pack([3, 2, 4], 4, "group_by_text")
    assert as_blocks(idx) == [[(0, 0, 3)], [(2, 0, 4)], [(1, 0, 2)]]


def test_none_is_one_document_per_row():
    idx = pack([6, 2], 4, "none")
    assert as_blocks(idx) == [[(0, 0, 4)], [(0, 4, 2)], [(1, 0, 2)]]


@pytest.mark.parametrize("strategy", ["concat", "group_by_text", "none"])
@pytest.mark.parametrize("bs", [1, 3, 4, 7, 64])
@pytest.mark.parametrize("keep_last", [True, False])
def test_vectorised_equals_incremental(strategy, bs, keep_last):
    idx = pack(LENGTHS, bs, strategy, keep_last)
    assert as_blocks(idx) == [list(b) for b in incremental(LENGTHS, bs, strategy, keep_last)]


@pytest.mark.parametrize("strategy", ["concat", "group_by_text", "best_fit", "none"])
@pytest.mark.parametrize("bs", [3, 5, 16])
def test_no_token_lost_or_duplicated(strategy, bs):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=200)
    idx = pack(lengths, bs, strategy, keep_last=True)
    covered = {d: np.zeros(n, dtype=int) for d, n in enumerate(lengths)}
    for b in range(idx.n_blocks):
        pieces = idx.pieces(b)
        assert 0 < sum(p[2] for p in pieces) <= bs
        if strategy != "concat":
            assert len({p[0] for p in pieces}) == len(pieces)  # one piece per document in a block
        for d, s, n in pieces:
            covered[d][s:s + n] += 1
    assert all((c == 1).all() for c in covered.values())


def test_keep_last_false_counts_dropped_tokens():
    idx = pack([5, 4], 4, "concat", keep_last=False)
    assert idx.n_blocks == 2 and idx.dropped_tokens == 1
    assert idx.stats()["tokens_dropped_last_block"] == 1


def test_best_fit_splits_fewer_documents_than_concat():
    rng = np.random.default_rng(1)
    lengths = rng.integers(5, 120, size=500)
    concat = pack(lengths, 128, "concat").stats()
    best = pack(lengths, 128, "best_fit").stats()
    assert best["documents_split_across_blocks"] == 0   # none longer than the block
    assert concat["documents_split_across_blocks"] > 100
    assert best["padding_fraction"] < 0.05


def test_row_layout_document_aware():
    pos, ignore = row_layout([2, 2], True)
    assert pos.tolist() == [0, 1, 0, 1]
    assert ignore.tolist() == [True, False, True, False]
    pos, ignore = row_layout([2, 2], False)
    assert pos.tolist() == [0, 1, 2, 3] and not ignore.any()
