"""Packing: how documents become training blocks. The one definition of a block, for both data paths.

A block is a list of *pieces* `(doc, start, length)`: `length` tokens of document `doc` from token
`start`. The prepared path computes all blocks at once from document lengths alone (no token is
read); the streaming path feeds documents one at a time into `Packer` and gets the same blocks.

Strategies (block_size = 4 in the pictures; documents A=a1..a6, B=b1 b2, C=c1..c3):

    concat        |a1 a2 a3 a4|a5 a6 b1 b2|c1 c2 c3 __|   one token stream cut every 4 tokens;
                                                          attention crosses documents (classic)
    group_by_text |a1 a2 a3 a4|a5 a6 b1 b2|c1 c2 c3 __|   documents in order; a long one is cut into
                                                          full blocks, then its tail; a piece that does
                                                          not fit the open block starts a new one
    best_fit      whole pieces placed by best-fit decreasing (fewest documents cut)
    none          |a1 a2 a3 a4|a5 a6 __ __|b1 b2 __ __|c1 c2 c3 __|   one document (chunk) per row

In the document-aware strategies (all but concat) each piece is its own attention span: its
position_ids restart at 0 and its first label is ignored, e.g. for the block `a5 a6 b1 b2`:

    input_ids     a5 a6 b1   b2
    position_ids   0  1  0    1
    labels        a5 a6 -100 b2          (b1 is not predicted from a6)

so no token attends to, or is predicted from, another document. Documents longer than block_size
become consecutive chunks: no token is lost and nothing is truncated silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DOCUMENT_AWARE = {"concat": False, "group_by_text": True, "best_fit": True, "none": True}


def padding_fraction(tokens: int, slots: int) -> float:
    """The share of `slots` token positions (blocks x block_size, or a padded batch) holding padding."""
    return round(1 - tokens / slots, 6) if slots else 0.0


@dataclass
class BlockIndex:
    """All blocks of one split: pieces in block order, `block_ptr[b]:block_ptr[b+1]` are block b's."""

    piece_doc: np.ndarray    # int64, document number (into the caller's document table)
    piece_start: np.ndarray  # int64, first token within the document
    piece_len: np.ndarray    # int64
    block_ptr: np.ndarray    # int64, len = n_blocks + 1
    block_size: int
    strategy: str
    dropped_tokens: int = 0  # tokens of a last partial block dropped with keep_last_block=False

    @property
    def n_blocks(self) -> int:
        return len(self.block_ptr) - 1

    @property
    def document_aware(self) -> bool:
        return DOCUMENT_AWARE[self.strategy]

    def pieces(self, b: int):
        s, e = self.block_ptr[b], self.block_ptr[b + 1]
        return list(zip(self.piece_doc[s:e].tolist(), self.piece_start[s:e].tolist(), self.piece_len[s:e].tolist()))

    def stats(self) -> dict:
        tokens = int(self.piece_len.sum())
        slots = self.n_blocks * self.block_size
        docs, counts = np.unique(self.piece_doc, return_counts=True) if len(self.piece_doc) else ([], [])
        return {
            "strategy": self.strategy,
            "block_size": self.block_size,
            "blocks": self.n_blocks,
            "tokens_in_blocks": tokens,
            "padding_fraction": padding_fraction(tokens, slots),
            "documents": int(len(docs)),
            "documents_split_across_blocks": int((np.asarray(counts) > 1).sum()),
            "tokens_dropped_last_block": int(self.dropped_tokens),
        }

    def select(self, n: int) -> "BlockIndex":
        """The first n blocks (for --max_train_samples)."""
        n = min(n, self.n_blocks)
        end = self.block_ptr[n]
        return BlockIndex(self.piece_doc[:end], self.piece_start[:end], self.piece_len[:end],
                          self.block_ptr[: n + 1], self.block_size, self.strategy, self.dropped_tokens)

    def sample(self, n: int, seed: int) -> "BlockIndex":
        """n blocks drawn at random from all of them, without replacement, seeded, kept in their order
        (for --max_train_samples_mode random: a sample across all files, the same for every rank)."""
        if n >= self.n_blocks:
            return self
        chosen = np.sort(np.random.default_rng(seed).choice(self.n_blocks, size=n, replace=False))
        starts, ends = self.block_ptr[chosen], self.block_ptr[chosen + 1]
        lengths = ends - starts
        take = np.concatenate([np.arange(s, e) for s, e in zip(starts.tolist(), ends.tolist())]) if n else \
            np.zeros(0, dtype=np.int64)
        ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return BlockIndex(self.piece_doc[take], self.piece_start[take], self.piece_len[take], ptr, self.block_size,
                          self.strategy, self.dropped_tokens)

    def save(self, path: str) -> None:
        np.savez(path, piece_doc=self.piece_doc, piece_start=self.piece_start, piece_len=self.piece_len,
                 block_ptr=self.block_ptr, meta=np.array([self.block_size, self.dropped_tokens]),
                 strategy=np.array(self.strategy))

    @classmethod
    def load(cls, path: str) -> "BlockIndex":
        with np.load(path) as z:
            bs, dropped = z["meta"].tolist()
            return cls(z["piece_doc"], z["piece_start"], z["piece_len"], z["block_ptr"], int(bs),
                       str(z["strategy"]), int(dropped))


class Packer:
    """Incremental packer: `add(doc, length)` returns the blocks it completes; `finish()` the rest.

    Each block is a list of `(doc, start, length)` pieces. The prepared path runs the same rules
    vectorised (`pack`); a test checks that both give the same blocks.
    """

    def __init__(self, block_size: int, strategy: str = "concat", keep_last: bool = True):
        if strategy not in DOCUMENT_AWARE:
            raise ValueError(f"unknown packing strategy {strategy!r}; choose one of {', '.join(DOCUMENT_AWARE)}")
        if strategy == "best_fit":
            raise ValueError("best_fit packing needs every document length up front: it runs on the token "
                             "store, not with --streaming (use group_by_text there)")
        self.block_size = block_size
        self.strategy = strategy
        self.keep_last = keep_last
        self.open: list = []     # pieces of the block being filled
        self.fill = 0
        self.dropped_tokens = 0

    def state_dict(self) -> dict:
        return {"open": [list(p) for p in self.open], "fill": self.fill, "dropped_tokens": self.dropped_tokens}

    def load_state_dict(self, state: dict) -> None:
        self.open = [tuple(p) for p in state["open"]]
        self.fill = state["fill"]
        self.dropped_tokens = state.get("dropped_tokens", 0)

    def add(self, doc, length: int) -> list:
        bs, done = self.block_size, []
        if length <= 0:
            return done
        if self.strategy == "concat":
            start = 0
            while start < length:
                take = min(bs - self.fill, length - start)
                self.open.append((doc, start, take))
                self.fill += take
                start += take
                if self.fill == bs:
                    done.append(self.open)
                    self.open, self.fill = [], 0
            return done
        full, tail = divmod(length, bs)
        if self.strategy == "none":
            done.extend([(doc, j * bs, bs)] for j in range(full))
            if tail:
                done.append([(doc, full * bs, tail)])
            return done
        # group_by_text: full chunks are blocks of their own, the tail goes into the open block
        done.extend([(doc, j * bs, bs)] for j in range(full))
        if tail:
            if self.fill + tail > bs:
                done.append(self.open)
                self.open, self.fill = [], 0
            self.open.append((doc, full * bs, tail))
            self.fill += tail
            if self.fill == bs:
                done.append(self.open)
                self.open, self.fill = [], 0
        return done

    def finish(self) -> list:
        """The last, partial block (or nothing, counting its tokens as dropped, with keep_last=False)."""
        rest, self.open, fill, self.fill = self.open, [], self.fill, 0
        if not rest:
            return []
        if self.keep_last:
            return [rest]
        self.dropped_tokens += fill
        return []


def _from_blocks(blocks: list, block_size: int, strategy: str, dropped: int) -> BlockIndex:
    sizes = np.fromiter((len(b) for b in blocks), dtype=np.int64, count=len(blocks))
    flat = [p for b in blocks for p in b]
    arr = np.asarray(flat, dtype=np.int64).reshape(-1, 3)
    ptr = np.zeros(len(blocks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=ptr[1:])
    return BlockIndex(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), ptr, block_size, strategy, dropped)


def _pack_concat(docs: np.ndarray, lengths: np.ndarray, bs: int, keep_last: bool) -> BlockIndex:
    """Vectorised concat packing: cut points are document starts and block starts."""
    cum = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=cum[1:])
    total = int(cum[-1])
    n_full, rest = divmod(total, bs)
    n_blocks = n_full + (1 if rest and keep_last else 0)
    used = min(total, n_blocks * bs)
    dropped = total - used
    cuts = np.union1d(cum[:-1][lengths > 0], np.arange(0, used, bs, dtype=np.int64))
    cuts = cuts[cuts < used]
    ends = np.append(cuts[1:], used)
    row = np.searchsorted(cum, cuts, side="right") - 1
    piece_block = cuts // bs
    ptr = np.searchsorted(piece_block, np.arange(n_blocks + 1, dtype=np.int64), side="left").astype(np.int64)
    return BlockIndex(docs[row].astype(np.int64), (cuts - cum[row]).astype(np.int64),
                      (ends - cuts).astype(np.int64), ptr, bs, "concat", dropped)


def _pack_best_fit(docs: np.ndarray, lengths: np.ndarray, bs: int, keep_last: bool) -> BlockIndex:
    """Best-fit decreasing over pieces (documents longer than bs are cut into full chunks first).

    Full chunks are blocks of their own; the remaining pieces, longest first, each go into the open
    block with the least room that still fits them (a new block when none does). Blocks are then
    ordered by their first piece's document, so the order follows the corpus.
    """
    import bisect

    full, tail = np.divmod(lengths, bs)
    blocks = []
    for d, f in zip(docs[full > 0].tolist(), full[full > 0].tolist()):
        blocks.extend([[(d, j * bs, bs)] for j in range(f)])
    has_tail = tail > 0
    t_docs, t_len, t_start = docs[has_tail], tail[has_tail], (full * bs)[has_tail]
    order = np.lexsort((t_docs, -t_len))  # longest first, ties by document order
    bins: list = []          # pieces per open block
    room_keys: list = []     # sorted (room, bin id)
    for i in order.tolist():
        length = int(t_len[i])
        pos = bisect.bisect_left(room_keys, (length, -1))
        piece = (int(t_docs[i]), int(t_start[i]), length)
        if pos < len(room_keys):
            room, b = room_keys.pop(pos)
            bins[b].append(piece)
            if room - length > 0:
                bisect.insort(room_keys, (room - length, b))
        else:
            bins.append([piece])
            if bs - length > 0:
                bisect.insort(room_keys, (bs - length, len(bins) - 1))
    blocks.extend(bins)
    blocks.sort(key=lambda blk: (blk[0][0], blk[0][1]))
    dropped = 0
    if not keep_last and blocks:
        # drop the emptiest block, the analogue of concat's last partial block
        fills = [sum(p[2] for p in b) for b in blocks]
        k = int(np.argmin(fills))
        if fills[k] < bs:
            dropped = fills[k]
            blocks.pop(k)
    return _from_blocks(blocks, bs, "best_fit", dropped)


def pack(lengths, block_size: int, strategy: str = "concat", keep_last: bool = True, docs=None) -> BlockIndex:
    """Blocks for documents of the given token lengths (in order). `docs` names them (default 0..n-1)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    docs = np.arange(len(lengths), dtype=np.int64) if docs is None else np.asarray(docs, dtype=np.int64)
    if strategy == "concat":
        return _pack_concat(docs, lengths, block_size, keep_last)
    if strategy == "best_fit":
        return _pack_best_fit(docs, lengths, block_size, keep_last)
    packer = Packer(block_size, strategy, keep_last)
    blocks = []
    for d, n in zip(docs.tolist(), lengths.tolist()):
        blocks.extend(packer.add(d, n))
    blocks.extend(packer.finish())
    return _from_blocks(blocks, block_size, strategy, packer.dropped_tokens)


def row_layout(piece_lengths, document_aware: bool) -> tuple[np.ndarray, np.ndarray]:
    """position_ids and a mask of positions whose label is ignored, for one block's pieces."""
    piece_lengths = np.asarray(piece_lengths, dtype=np.int64)
    n = int(piece_lengths.sum())
    if not document_aware:
        return np.arange(n, dtype=np.int64), np.zeros(n, dtype=bool)
    starts = np.zeros(len(piece_lengths), dtype=np.int64)
    np.cumsum(piece_lengths[:-1], out=starts[1:])
    pos = np.arange(n, dtype=np.int64) - np.repeat(starts, piece_lengths)
    return pos, pos == 0
