"""The whole-corpus packing (vectorised, in chunks, to memory or to an index file) gives the blocks of
the one-document-at-a-time definitions: `Packer` for concat, group_by_text and none, and the
sequential best-fit decreasing below (the implementation the store used before, kept here as the
reference) for best_fit."""

import bisect

import numpy as np
import pytest

from medtrain.data import packing
from medtrain.data.packing import BlockIndex, Packer, pack, pack_to_file
from medtrain.data.token_store.index import IndexFile
from medtrain.errors import DataError


def reference_best_fit(lengths, bs, keep_last=True):
    """Best-fit decreasing, one piece at a time: full chunks are blocks; tails longest first (ties in
    document order) into the open block with the least room that fits (ties: the oldest block)."""
    blocks = [[(d, j * bs, bs)] for d, n in enumerate(lengths) for j in range(n // bs)]
    tails = sorted(((n % bs, d) for d, n in enumerate(lengths) if n % bs), key=lambda t: (-t[0], t[1]))
    bins, rooms = [], []
    for length, d in tails:
        piece = (d, lengths[d] - length, length)
        pos = bisect.bisect_left(rooms, (length, -1))
        if pos < len(rooms):
            room, b = rooms.pop(pos)
            bins[b].append(piece)
            if room > length:
                bisect.insort(rooms, (room - length, b))
        else:
            bins.append([piece])
            if bs > length:
                bisect.insort(rooms, (bs - length, len(bins) - 1))
    blocks = sorted(blocks + bins, key=lambda blk: (blk[0][0], blk[0][1]))
    if not keep_last and blocks:
        fills = [sum(p[2] for p in b) for b in blocks]
        k = int(np.argmin(fills))
        if fills[k] < bs:
            blocks.pop(k)
    return blocks


def incremental(lengths, bs, strategy, keep_last=True):
    p = Packer(bs, strategy, keep_last)
    blocks = []
    for d, n in enumerate(lengths):
        blocks.extend(p.add(d, n))
    return blocks + p.finish()


def as_blocks(index):
    return [index.pieces(b) for b in range(index.n_blocks)]


def random_lengths(seed, n, bs):
    rng = np.random.default_rng(seed)
    lengths = np.maximum(0, rng.lognormal(np.log(bs) - 0.7, 1.1, size=n)).astype(np.int64)
    lengths[rng.random(n) < 0.05] = 0  # empty documents take no piece
    return lengths


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few dozen documents and pieces, so that every boundary case between chunks occurs."""
    monkeypatch.setattr(packing, "CHUNK_DOCS", 37)
    monkeypatch.setattr(packing, "CHUNK_PIECES", 53)


@pytest.mark.parametrize("strategy", ["concat", "group_by_text", "none", "best_fit"])
@pytest.mark.parametrize("bs", [1, 3, 8, 64])
@pytest.mark.parametrize("keep_last", [True, False])
def test_chunked_packing_gives_the_sequential_blocks(small_chunks, tmp_path, strategy, bs, keep_last):
    lengths = random_lengths(bs, 700, bs)
    want = (reference_best_fit(lengths.tolist(), bs, keep_last) if strategy == "best_fit"
            else incremental(lengths, bs, strategy, keep_last))
    index = pack(lengths, bs, strategy, keep_last)
    assert as_blocks(index) == [list(b) for b in want]
    # the same, written to an index file chunk by chunk and mapped back
    chunks = lambda: [(np.arange(len(lengths)), lengths)]  # noqa: E731
    pack_to_file(chunks, bs, strategy, keep_last, str(tmp_path / "x.idx"))
    mapped = BlockIndex.open(str(tmp_path / "x.idx"))
    for k in ("piece_doc", "piece_start", "piece_len", "block_ptr"):
        assert np.array_equal(getattr(mapped, k), getattr(index, k))
    # stats computed from the lengths while packing = stats counted from the blocks
    assert mapped.stats() == index.stats() == index.counted_stats()
    assert mapped.dropped_tokens == lengths.sum() - index.piece_len.sum()


def test_best_fit_keeps_every_token_once_and_packs_tighter_than_concat(small_chunks):
    bs = 128
    lengths = random_lengths(5, 3000, bs)
    index = pack(lengths, bs, "best_fit")
    covered = [np.zeros(n, dtype=int) for n in lengths]
    for b in range(index.n_blocks):
        pieces = index.pieces(b)
        assert sum(n for _, _, n in pieces) <= bs
        for d, s, n in pieces:
            covered[d][s:s + n] += 1
            if lengths[d] <= bs:
                assert (s, n) == (0, lengths[d])  # a document that fits a block is never cut
    assert all((c == 1).all() for c in covered)
    assert index.n_blocks <= pack(lengths, bs, "concat").n_blocks + int((lengths > bs).sum())
    assert index.stats()["padding_fraction"] < 0.02


def test_concat_comparison_is_the_concat_index_stats():
    lengths = random_lengths(7, 2000, 32)
    for keep_last in (True, False):
        concat = pack(lengths, 32, "concat", keep_last).stats()
        for strategy in ("group_by_text", "best_fit", "none"):
            got = pack(lengths, 32, strategy, keep_last).concat_comparison()
            assert got == {k: concat[k] for k in ("blocks", "padding_fraction", "documents_split_across_blocks")}


def test_docs_name_the_pieces_and_count_the_split():
    docs = np.array([3, 8, 9, 20])
    index = pack([5, 0, 2, 6], 4, "group_by_text", docs=docs)
    assert as_blocks(index) == [[(3, 0, 4)], [(20, 0, 4)], [(3, 4, 1), (9, 0, 2)], [(20, 4, 2)]]
    assert index.documents_in_split == 4 and index.stats()["documents"] == 3


def test_a_cut_short_index_file_is_refused(tmp_path):
    path = str(tmp_path / "x.idx")
    pack([5, 3, 9], 4, "best_fit").save(path)
    assert BlockIndex.open(path).n_blocks == 5
    with open(path, "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(DataError, match="not a complete index file"):
        IndexFile(path)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown packing strategy 'bestfit'"):
        pack([3], 4, "bestfit")
