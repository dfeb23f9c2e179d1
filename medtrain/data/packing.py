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

How the whole-corpus packing (`pack`, `pack_to_file`) stays fast and small at any corpus size: it
reads document lengths in chunks of about a million documents and writes the pieces of each chunk
out before reading the next, with numpy array operations only (no Python loop per document):

- concat: the cut points of a chunk are its document starts and the multiples of block_size in its
  token range (cumulative sums); a piece is the stretch between two cuts.
- none: each document gives ceil(length / block_size) pieces (`np.repeat`).
- group_by_text is next-fit over the tails: a bin that starts at tail i holds tails i..j-1, where j is
  found for every i at once by `searchsorted` on the tails' cumulative sum; the bins actually used are
  the orbit of the first tail under i -> j, found by pointer doubling in log2(bins) gathers. The
  block order of `Packer` (full chunks when their document is read, a tail bin when the next tail does
  not fit, or at once when full) is restored by one stable sort on (document, phase). The open bin at
  the end of a chunk carries over to the next.
- best_fit (best-fit decreasing): pieces are placed longest first into the open block with the least
  room that fits (ties: the oldest block). Rooms are integers below block_size, so open blocks are
  kept in one bucket per room, sorted by block number, and each run of equal-length pieces is placed
  at once: in a run of length L a block with room r takes r // L pieces in a row (after each piece it
  is still the tightest fit), so the run fills whole buckets in order of room and then new blocks,
  with a handful of array operations per run and per bucket touched (O(block_size^2 + n log n)),
  giving exactly the blocks of the sequential algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

DOCUMENT_AWARE = {"concat": False, "group_by_text": True, "best_fit": True, "none": True}
STRATEGIES = tuple(DOCUMENT_AWARE)
CHUNK_DOCS = 1 << 20     # documents read per step of the whole-corpus packing
CHUNK_PIECES = 1 << 22   # at most about this many pieces produced per step (long documents, small blocks)
PACK_VERSION = 2         # bumped when the blocks for the same settings change (part of the cache key)


def padding_fraction(tokens: int, slots: int) -> float:
    """The share of `slots` token positions (blocks x block_size, or a padded batch) holding padding."""
    return round(1 - tokens / slots, 6) if slots else 0.0


@dataclass
class BlockIndex:
    """All blocks of one split: pieces in block order, `block_ptr[b]:block_ptr[b+1]` are block b's.

    The arrays are int64, in memory (from `pack`) or memory-mapped read-only from an index file
    (`open`). `info` holds what the packing computed on the way (the index's `stats()`, the
    documents of the split, what concat packing would give), so no reader scans the arrays for it."""

    piece_doc: np.ndarray    # int64, document number (into the caller's document table)
    piece_start: np.ndarray  # int64, first token within the document
    piece_len: np.ndarray    # int64
    block_ptr: np.ndarray    # int64, len = n_blocks + 1
    block_size: int
    strategy: str
    dropped_tokens: int = 0  # tokens of a last partial block dropped with keep_last_block=False
    info: dict = field(default_factory=dict)
    source: Optional[str] = field(default=None, repr=False)  # the index file it maps, if any
    settings: Optional[dict] = field(default=None, repr=False)  # what it was packed for (from the file)
    _file: object = field(default=None, repr=False, compare=False)  # that file (IndexFile), for `pread`

    def __reduce_ex__(self, protocol):  # a mapped index travels to spawned workers as its path, not its data
        if self.source is not None:
            return _reopen, (self.source, self.n_blocks)
        return super().__reduce_ex__(protocol)

    @property
    def n_blocks(self) -> int:
        return len(self.block_ptr) - 1

    @property
    def document_aware(self) -> bool:
        return DOCUMENT_AWARE[self.strategy]

    @property
    def documents_in_split(self) -> Optional[int]:
        """Documents of the split the index was packed from (empty ones included)."""
        return self.info.get("documents_in_split")

    def concat_comparison(self) -> Optional[dict]:
        """What concat packing of the same documents gives (blocks, padding_fraction,
        documents_split_across_blocks), computed from document lengths while packing."""
        c = self.info.get("concat")
        return dict(c) if c is not None else None

    def block_pieces(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(documents, starts, lengths) of block b's pieces; an index opened from a file reads them
        with `pread`, mapping nothing (see `token_store.index.IndexFile.take`)."""
        f = self._file
        if f is None:
            s, e = int(self.block_ptr[b]), int(self.block_ptr[b + 1])
            return (np.asarray(self.piece_doc[s:e]), np.asarray(self.piece_start[s:e]),
                    np.asarray(self.piece_len[s:e]))
        s, e = f.take("block_ptr", [b, b + 1]).tolist()
        rng = np.arange(s, e, dtype=np.int64)
        return f.take("piece_doc", rng), f.take("piece_start", rng), f.take("piece_len", rng)

    def pieces(self, b: int):
        s, e = self.block_ptr[b], self.block_ptr[b + 1]
        return list(zip(self.piece_doc[s:e].tolist(), self.piece_start[s:e].tolist(), self.piece_len[s:e].tolist()))

    def stats(self) -> dict:
        if "stats" in self.info:
            return dict(self.info["stats"])
        return self.counted_stats()

    def counted_stats(self) -> dict:
        """The stats counted from the arrays themselves (memory and time grow with the index: for
        small or selected indexes; a packed index carries them in `info`)."""
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

    def block_lengths(self) -> np.ndarray:
        """Tokens in each block, from the index alone (read in chunks)."""
        out = np.empty(self.n_blocks, dtype=np.int64)
        step = CHUNK_PIECES
        for a in range(0, self.n_blocks, step):
            b = min(self.n_blocks, a + step)
            ptr = np.asarray(self.block_ptr[a: b + 1])
            lens = np.asarray(self.piece_len[ptr[0]: ptr[-1]])
            cum = np.zeros(len(lens) + 1, dtype=np.int64)
            np.cumsum(lens, out=cum[1:])
            out[a:b] = cum[ptr[1:] - ptr[0]] - cum[ptr[:-1] - ptr[0]]
        return out

    def select(self, n: int) -> "BlockIndex":
        """The first n blocks (for --max_train_samples)."""
        n = min(n, self.n_blocks)
        end = self.block_ptr[n]
        info = {k: v for k, v in self.info.items() if k != "stats"}
        return BlockIndex(self.piece_doc[:end], self.piece_start[:end], self.piece_len[:end],
                          self.block_ptr[: n + 1], self.block_size, self.strategy, self.dropped_tokens, info,
                          self.source, self.settings, self._file)

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
        info = {k: v for k, v in self.info.items() if k != "stats"}
        return BlockIndex(self.piece_doc[take], self.piece_start[take], self.piece_len[take], ptr, self.block_size,
                          self.strategy, self.dropped_tokens, info, self.source, self.settings)  # not the file

    def save(self, path: str, meta: Optional[dict] = None) -> None:
        """Write this index as an index file (see `token_store.index`), atomically."""
        from medtrain.data.token_store.index import IndexWriter

        w = IndexWriter(path, "blocks", {k: (np.int64, len(getattr(self, k))) for k in
                                         ("piece_doc", "piece_start", "piece_len", "block_ptr")})
        try:
            for k in ("piece_doc", "piece_start", "piece_len", "block_ptr"):
                w.append(k, getattr(self, k))
            w.commit({**(meta or {}), "block_size": self.block_size, "strategy": self.strategy,
                      "dropped_tokens": int(self.dropped_tokens), "info": self.info})
        except BaseException:
            w.abort()
            raise

    @classmethod
    def open(cls, path: str) -> "BlockIndex":
        """An index file, memory-mapped read-only (one file descriptor, no private copy)."""
        from medtrain.data.token_store.index import IndexFile

        f = IndexFile(path)
        if f.kind != "blocks":
            raise ValueError(f"{path} is a {f.kind} index, not a block index")
        m = f.meta
        return cls(f["piece_doc"], f["piece_start"], f["piece_len"], f["block_ptr"], int(m["block_size"]),
                   m["strategy"], int(m["dropped_tokens"]), m.get("info", {}), path, m.get("settings"), f)

    load = open


def _reopen(path: str, n_blocks: int) -> BlockIndex:
    index = BlockIndex.open(path)
    return index if n_blocks == index.n_blocks else index.select(n_blocks)

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


# ---------------------------------------------------------------------------------------------------
# whole-corpus packing, vectorised and in chunks
# ---------------------------------------------------------------------------------------------------
Chunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]  # -> (doc numbers, lengths), in document order


def _excl_cumsum(a: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a) + 1, dtype=np.int64)
    np.cumsum(a, out=out[1:])
    return out


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """concat(arange(s, s + c) for s, c in zip(starts, counts)), vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    begin = _excl_cumsum(counts)[:-1]
    return np.repeat(np.asarray(starts, dtype=np.int64) - begin, counts) + np.arange(total, dtype=np.int64)


def _bounded(chunks: Iterable, block_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The chunks again, cut further so that none produces much more than CHUNK_PIECES pieces."""
    for docs, lengths in chunks:
        docs, lengths = np.asarray(docs, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        if len(docs) == 0:
            continue
        est = np.cumsum(lengths // block_size + 1)
        if est[-1] <= CHUNK_PIECES and len(docs) <= CHUNK_DOCS:
            yield docs, lengths
            continue
        cuts = np.unique(np.concatenate([
            np.searchsorted(est, np.arange(CHUNK_PIECES, est[-1], CHUNK_PIECES), side="right"),
            np.arange(CHUNK_DOCS, len(docs), CHUNK_DOCS)]))
        cuts = np.concatenate([[0], cuts[(cuts > 0) & (cuts < len(docs))], [len(docs)]])
        for a, b in zip(cuts[:-1], cuts[1:]):
            yield docs[a:b], lengths[a:b]


class _MemorySink:
    def __init__(self):
        self.parts: dict = {"piece_doc": [], "piece_start": [], "piece_len": [], "block_ptr": []}
        self.n_pieces = 0

    def add(self, doc, start, length, first) -> None:
        """Pieces in block order; `first` marks the pieces that start a block."""
        self.parts["piece_doc"].append(np.asarray(doc, dtype=np.int64))
        self.parts["piece_start"].append(np.asarray(start, dtype=np.int64))
        self.parts["piece_len"].append(np.asarray(length, dtype=np.int64))
        self.parts["block_ptr"].append(np.flatnonzero(first).astype(np.int64) + self.n_pieces)
        self.n_pieces += len(doc)

    def arrays(self) -> dict:
        out = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in self.parts.items()}
        out["block_ptr"] = np.append(out["block_ptr"], self.n_pieces).astype(np.int64)
        return out


class _FileSink(_MemorySink):
    def __init__(self, writer):
        self.w, self.n_pieces = writer, 0

    def add(self, doc, start, length, first) -> None:
        self.w.append("piece_doc", doc)
        self.w.append("piece_start", start)
        self.w.append("piece_len", length)
        self.w.append("block_ptr", np.flatnonzero(first) + self.n_pieces)
        self.n_pieces += len(doc)


@dataclass
class _Totals:
    """One pass over the lengths: what sizes the output and the stats."""

    documents: int = 0    # of the split, empty ones included
    nonempty: int = 0
    longer: int = 0       # longer than block_size (cut into several pieces by the document-aware strategies)
    tokens: int = 0

    @classmethod
    def of(cls, chunks: Chunks, bs: int) -> "_Totals":
        t = cls()
        for _, lengths in chunks():
            lengths = np.asarray(lengths)
            t.documents += len(lengths)
            t.nonempty += int(np.count_nonzero(lengths))
            t.longer += int(np.count_nonzero(lengths > bs))
            t.tokens += int(lengths.sum(dtype=np.int64))
        return t

    def capacity(self, bs: int) -> int:
        """An upper bound on the pieces of any strategy: each document's pieces, plus concat's cuts."""
        return self.nonempty + self.tokens // bs + 1


def _concat_stats(chunks: Chunks, bs: int, used: int) -> tuple[int, int]:
    """Documents in concat blocks of the first `used` tokens, and how many of them are cut."""
    docs = split = 0
    t0 = 0
    for _, lengths in chunks():
        lengths = np.asarray(lengths, dtype=np.int64)
        cum = np.cumsum(lengths) + t0
        start = cum - lengths
        t0 = int(cum[-1]) if len(cum) else t0
        ok = (lengths > 0) & (start < used)
        end = np.minimum(cum[ok], used)
        first = start[ok]
        docs += int(ok.sum())
        split += int(np.count_nonzero((end - 1) // bs != first // bs))
    return docs, split


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted arrays of distinct values (a linear merge, no sort)."""
    at = np.searchsorted(a, b)
    dup = at < len(a)
    dup[dup] = a[at[dup]] == b[dup]
    b, at = b[~dup], at[~dup]
    out = np.empty(len(a) + len(b), dtype=np.int64)
    pos_b = at + np.arange(len(b), dtype=np.int64)
    keep_a = np.ones(len(out), dtype=bool)
    keep_a[pos_b] = False
    out[pos_b] = b
    out[keep_a] = a
    return out


def _concat_chunk(docs, lengths, t0: int, used: int, bs: int):
    cum = np.empty(len(lengths) + 1, dtype=np.int64)
    cum[0] = t0
    np.cumsum(lengths, out=cum[1:])
    cum[1:] += t0
    t1 = min(int(cum[-1]), used)
    if t1 <= t0:
        return None
    starts = cum[:-1][(lengths > 0) & (cum[:-1] < t1)]
    bounds = np.arange(-(-t0 // bs) * bs, t1, bs, dtype=np.int64)
    cuts = _merge_sorted(starts, bounds)
    row = np.searchsorted(cum, cuts, side="right") - 1
    ends = np.empty_like(cuts)
    ends[:-1] = cuts[1:]
    ends[-1] = t1
    return docs[row], cuts - cum[row], ends - cuts, cuts % bs == 0


def _none_chunk(docs, lengths, bs: int):
    keep = lengths > 0
    docs, lengths = docs[keep], lengths[keep]
    counts = -(-lengths // bs)
    j = _ranges(np.zeros(len(counts), np.int64), counts)
    start = j * bs
    length = np.minimum(bs, np.repeat(lengths, counts) - start)
    return np.repeat(docs, counts), start, length, np.ones(len(j), dtype=bool)


def _orbit(nxt: np.ndarray, m: int) -> np.ndarray:
    """0, nxt[0], nxt[nxt[0]], ... (all below m), by pointer doubling: log2(len) gathers."""
    starts = np.zeros(1, dtype=np.int64)
    power = nxt
    while nxt[starts[-1]] < m:
        more = power[starts]
        starts = np.concatenate([starts, more[more < m]])
        power = power[power]
    return starts


def _gather_blocks(pool: tuple, src: np.ndarray, sizes: np.ndarray):
    """Pieces of blocks whose pieces are pool[src[k]: src[k] + sizes[k]], in block order."""
    idx = _ranges(src, sizes)
    first = np.zeros(len(idx), dtype=bool)
    first[_excl_cumsum(sizes)[:-1][sizes > 0]] = True
    return pool[0][idx], pool[1][idx], pool[2][idx], first


class _GroupByText:
    """Next-fit of the tails, in chunks; the open bin carries over (see the module docstring)."""

    def __init__(self, bs: int):
        self.bs = bs
        self.carry = (np.zeros(0, np.int64),) * 3  # open bin: doc, start, length

    def chunk(self, docs, lengths, final: bool, keep_last: bool):
        """Blocks of this chunk; with `final`, the open bin too (kept, or returned as dropped)."""
        bs = self.bs
        keep = lengths > 0
        docs, lengths = docs[keep], lengths[keep]
        full, tail = np.divmod(lengths, bs)
        has_full = full > 0
        f_docs, f_cnt = docs[has_full], full[has_full]
        f_j = _ranges(np.zeros(len(f_cnt), np.int64), f_cnt)
        F = (np.repeat(f_docs, f_cnt), f_j * bs, np.full(len(f_j), bs, dtype=np.int64))
        has_tail = tail > 0
        T = tuple(np.concatenate([c, x]) for c, x in
                  zip(self.carry, (docs[has_tail], (full * bs)[has_tail], tail[has_tail])))
        m = len(T[0])
        dropped = (np.zeros(0, np.int64),) * 3
        if m:
            C = _excl_cumsum(T[2])
            nxt = np.append(np.searchsorted(C, C[:-1] + bs, side="right") - 1, m)
            S = _orbit(nxt, m)
            E = nxt[S]
            is_full = (C[E] - C[S]) == bs
            open_last = E[-1] == m and not is_full[-1]
            closer = np.where(is_full, T[0][E - 1], T[0][np.minimum(E, m - 1)])
            if open_last:
                if final:
                    if keep_last:
                        closer[-1] = np.iinfo(np.int64).max // 2  # emitted last
                        self.carry = (np.zeros(0, np.int64),) * 3
                    else:
                        dropped = tuple(x[S[-1]:] for x in T)
                        S, E, closer = S[:-1], E[:-1], closer[:-1]
                        self.carry = (np.zeros(0, np.int64),) * 3
                else:
                    self.carry = tuple(x[S[-1]:].copy() for x in T)
                    S, E, closer = S[:-1], E[:-1], closer[:-1]
            else:
                self.carry = (np.zeros(0, np.int64),) * 3
        else:
            S = E = closer = np.zeros(0, np.int64)
        nf = len(F[0])
        keys = np.concatenate([F[0] * 2, closer * 2 + 1])
        order = np.argsort(keys, kind="stable")
        sizes = np.concatenate([np.ones(nf, np.int64), E - S])[order]
        src = np.concatenate([np.arange(nf, dtype=np.int64), nf + S])[order]
        pool = tuple(np.concatenate([f, t]) for f, t in zip(F, T))
        return _gather_blocks(pool, src, sizes), dropped


def _best_fit_place(t_len: np.ndarray, bs: int):
    """Best-fit decreasing of pieces shorter than bs (see the module docstring). Returns (order: the
    pieces longest first, ties in their given order; bin_of: the block of each piece in that order;
    room: each block's room left)."""
    m = len(t_len)
    idx = np.int32 if m < 2 ** 31 else np.int64
    key_dtype = np.uint16 if bs <= np.iinfo(np.uint16).max else np.int64
    order = np.argsort((bs - t_len).astype(key_dtype), kind="stable").astype(idx)  # radix sort for 16-bit keys
    ls = t_len[order]
    bin_of = np.empty(m, dtype=idx)
    if m == 0:
        return order, bin_of, np.zeros(0, np.int64)
    lo = np.concatenate([[0], np.flatnonzero(ls[1:] != ls[:-1]) + 1])
    hi = np.append(lo[1:], m)
    run_len = ls[lo]
    del ls
    empty = np.zeros(0, dtype=idx)
    ready = [empty] * (bs + 1)             # rooms >= the current length: sorted block numbers
    pending: list = [[] for _ in range(bs + 1)]  # rooms below it: unsorted lists of sorted runs
    cnt = np.zeros(bs + 1, dtype=np.int64)
    next_id, prev = 0, bs

    def park(room: int, ids: np.ndarray) -> None:  # blocks whose room fell below the current length
        if room:
            pending[room].append(ids)
            cnt[room] += len(ids)

    for L, a, b in zip(run_len.tolist(), lo.tolist(), hi.tolist()):
        for r in range(L, prev):  # these rooms can take pieces from now on: sort their blocks once
            if pending[r]:
                ready[r] = np.sort(np.concatenate([ready[r]] + pending[r]))
                pending[r] = []
        prev = L
        pos = a
        rooms = L + np.flatnonzero(cnt[L:bs])
        if len(rooms):
            caps = rooms // L
            total = np.cumsum(cnt[rooms] * caps)
            i = int(np.searchsorted(total, b - a, side="left"))  # buckets before i are used up
            if i:
                used = rooms[:i].tolist()
                ids = np.concatenate([ready[r] for r in used])
                n = int(total[i - 1])
                bin_of[pos: pos + n] = np.repeat(ids, np.repeat(caps[:i], cnt[rooms[:i]]))
                pos += n
                for r in used:
                    park(r % L, ready[r])
                    ready[r] = empty
                    cnt[r] = 0
            if i < len(rooms):
                r, cap = int(rooms[i]), int(caps[i])
                arr = ready[r]
                nf, rem = divmod(b - pos, cap)
                bin_of[pos: pos + nf * cap] = np.repeat(arr[:nf], cap)
                pos += nf * cap
                park(r % L, arr[:nf].copy())
                took = nf
                if rem:
                    blk = int(arr[nf])
                    bin_of[pos: pos + rem] = blk
                    pos += rem
                    r2 = r - rem * L  # still >= L: a room that takes pieces, kept sorted
                    ready[r2] = np.insert(ready[r2], np.searchsorted(ready[r2], blk), blk)
                    cnt[r2] += 1
                    took += 1
                ready[r] = arr[took:]
                cnt[r] -= took
        if pos < b:  # new blocks, each taking bs // L pieces
            cap = bs // L
            left = b - pos
            nnew = -(-left // cap)
            ids = np.arange(next_id, next_id + nnew, dtype=idx)
            next_id += nnew
            bin_of[pos:b] = np.repeat(ids, cap)[:left]
            nf, rem = divmod(left, cap)
            park(bs - cap * L, ids[:nf])
            if rem:
                r2 = bs - rem * L
                ready[r2] = np.append(ready[r2], ids[-1])  # the newest block: its number is the largest
                cnt[r2] += 1
    room = np.zeros(next_id, dtype=np.int64)
    for r in range(1, bs):
        for arr in [ready[r]] + pending[r]:
            room[arr] = r
    return order, bin_of, room


def _best_fit(chunks: Chunks, totals: _Totals, bs: int, keep_last: bool, sink) -> tuple[int, tuple]:
    """Best-fit decreasing over the corpus: full chunks are blocks of their own, the tails are placed by
    `_best_fit_place`, blocks ordered by their first piece. Returns (dropped tokens, dropped pieces)."""
    idx_dtype = np.int32 if totals.documents < 2 ** 31 else np.int64
    n = totals.nonempty
    # ~10 bytes per document: the tail pieces (document, full chunks before it, length)
    len_dtype = np.uint16 if bs <= np.iinfo(np.uint16).max else np.int64
    t_doc, t_full, t_len = np.empty(n, idx_dtype), np.empty(n, np.int32), np.empty(n, len_dtype)
    f_doc, f_cnt = np.empty(totals.longer + 1, np.int64), np.empty(totals.longer + 1, np.int64)
    nt = nfd = 0
    for docs, lengths in chunks():
        docs, lengths = np.asarray(docs, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
        full, tail = np.divmod(lengths, bs)
        k = tail > 0
        c = int(k.sum())
        t_doc[nt: nt + c], t_full[nt: nt + c], t_len[nt: nt + c] = docs[k], full[k], tail[k]
        nt += c
        k = full > 0
        c = int(k.sum())
        if nfd + c > len(f_doc):
            f_doc, f_cnt = np.resize(f_doc, 2 * (nfd + c)), np.resize(f_cnt, 2 * (nfd + c))
        f_doc[nfd: nfd + c], f_cnt[nfd: nfd + c] = docs[k], full[k]
        nfd += c
    t_doc, t_full, t_len, f_doc, f_cnt = t_doc[:nt], t_full[:nt], t_len[:nt], f_doc[:nfd], f_cnt[:nfd]
    order, bin_of, room = _best_fit_place(t_len, bs)
    n_bins = len(room)
    bin_ptr = _excl_cumsum(np.bincount(bin_of, minlength=n_bins))
    grouped = np.argsort(bin_of, kind="stable")      # positions (in `order`) grouped by block
    del bin_of
    item = order[grouped]                            # tail pieces grouped by block, in placement order
    del order, grouped
    first_doc = t_doc[item[bin_ptr[:-1]]].astype(np.int64)
    bins = np.argsort(first_doc, kind="stable")      # blocks in the order of their first document
    dropped_tokens, dropped = 0, (np.zeros(0, np.int64),) * 3
    if not keep_last and n_bins:
        fill = bs - room[bins]
        k = int(np.argmin(fill))                     # the emptiest block, the first of them in block order
        if fill[k] < bs:
            b = int(bins[k])
            its = item[bin_ptr[b]: bin_ptr[b + 1]]
            dropped = (t_doc[its].astype(np.int64), t_full[its].astype(np.int64) * bs, t_len[its].astype(np.int64))
            dropped_tokens = int(fill[k])
            bins = np.delete(bins, k)
    f_ptr = _excl_cumsum(f_cnt)
    n_full = int(f_ptr[-1])
    # where each tail block goes among the full-chunk blocks: after those of documents <= its first
    bin_pos = np.arange(len(bins), dtype=np.int64) + f_ptr[np.searchsorted(f_doc, first_doc[bins], side="right")]
    del first_doc
    n_blocks = n_full + len(bins)
    pieces = n_full + int(bin_ptr[-1])
    step = max(16, (CHUNK_PIECES // 4) * n_blocks // max(1, pieces))  # about a million pieces per step
    for lo in range(0, n_blocks, step):
        hi = min(n_blocks, lo + step)
        b_lo, b_hi = np.searchsorted(bin_pos, [lo, hi])
        f_lo, f_hi = lo - b_lo, hi - b_hi           # full-chunk blocks of this step, by rank
        is_bin = np.zeros(hi - lo, dtype=bool)
        is_bin[bin_pos[b_lo:b_hi] - lo] = True
        blk = bins[b_lo:b_hi]
        sizes = np.ones(hi - lo, dtype=np.int64)
        sizes[is_bin] = bin_ptr[blk + 1] - bin_ptr[blk]
        first = np.zeros(int(sizes.sum()), dtype=bool)
        starts = _excl_cumsum(sizes)[:-1]
        first[starts] = True
        doc = np.empty(len(first), np.int64)
        start = np.empty(len(first), np.int64)
        length = np.empty(len(first), np.int64)
        # full-chunk pieces
        rank = np.arange(f_lo, f_hi, dtype=np.int64)
        di = np.searchsorted(f_ptr, rank, side="right") - 1
        at = starts[~is_bin]
        doc[at], start[at], length[at] = f_doc[di], (rank - f_ptr[di]) * bs, bs
        # tail pieces
        at = _ranges(starts[is_bin], sizes[is_bin])
        its = item[_ranges(bin_ptr[blk], sizes[is_bin])]
        doc[at], start[at], length[at] = t_doc[its], t_full[its].astype(np.int64) * bs, t_len[its]
        sink.add(doc, start, length, first)
    return dropped_tokens, dropped


def _drop_adjust(stats: dict, dropped: tuple, bs: int) -> None:
    """Documents and cut documents after dropping one block of tail pieces (keep_last=False)."""
    doc, start, length = dropped
    pieces_before = -(-(start + length) // bs)  # a tail piece is its document's last
    stats["documents"] -= int(np.count_nonzero(pieces_before == 1))
    stats["documents_split_across_blocks"] -= int(np.count_nonzero(pieces_before == 2))


def pack_chunks(chunks: Chunks, block_size: int, strategy: str, keep_last: bool, sink) -> dict:
    """Pack the documents that `chunks()` yields (a fresh iterator of (doc numbers, lengths) per call,
    in document order) into `sink`; returns the index's `info` (its stats, the documents of the
    split, the concat comparison) and the dropped tokens."""
    if strategy not in DOCUMENT_AWARE:
        raise ValueError(f"unknown packing strategy {strategy!r}; choose one of {', '.join(DOCUMENT_AWARE)}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, not {block_size}")
    bs = block_size
    bounded = lambda: _bounded(chunks(), bs)  # noqa: E731
    totals = _Totals.of(bounded, bs)
    c_used = totals.tokens if keep_last else totals.tokens // bs * bs
    c_blocks = -(-c_used // bs)
    c_docs, c_split = _concat_stats(bounded, bs, c_used)
    concat = {"blocks": c_blocks, "padding_fraction": padding_fraction(c_used, c_blocks * bs),
              "documents_split_across_blocks": c_split}
    dropped_tokens, dropped = 0, (np.zeros(0, np.int64),) * 3
    if strategy == "concat":
        t0 = 0
        for docs, lengths in bounded():
            out = _concat_chunk(docs, lengths, t0, c_used, bs)
            t0 += int(lengths.sum())
            if out is not None:
                sink.add(*out)
        dropped_tokens = totals.tokens - c_used
        docs_in, split = c_docs, c_split
    elif strategy == "none":
        for docs, lengths in bounded():
            sink.add(*_none_chunk(docs, lengths, bs))
        docs_in, split = totals.nonempty, totals.longer
    elif strategy == "group_by_text":
        g = _GroupByText(bs)
        it = iter(bounded())
        cur = next(it, None)
        while cur is not None:
            nxt = next(it, None)
            out, d = g.chunk(cur[0], cur[1], nxt is None, keep_last)
            sink.add(*out)
            if len(d[0]):
                dropped = d
            cur = nxt
        docs_in, split = totals.nonempty, totals.longer
        dropped_tokens = int(dropped[2].sum())
    else:
        dropped_tokens, dropped = _best_fit(bounded, totals, bs, keep_last, sink)
        docs_in, split = totals.nonempty, totals.longer
    n_blocks = None  # filled by the caller, which knows how many blocks the sink received
    stats = {"strategy": strategy, "block_size": bs, "blocks": n_blocks,
             "tokens_in_blocks": totals.tokens - dropped_tokens, "padding_fraction": None,
             "documents": docs_in, "documents_split_across_blocks": split,
             "tokens_dropped_last_block": dropped_tokens}
    if strategy != "concat" and len(dropped[0]):
        _drop_adjust(stats, dropped, bs)
    return {"stats": stats, "documents_in_split": totals.documents, "concat": concat,
            "dropped_tokens": dropped_tokens, "capacity": totals.capacity(bs)}


def _finish_stats(info: dict, n_blocks: int, bs: int) -> dict:
    s = info["stats"]
    s["blocks"] = n_blocks
    s["padding_fraction"] = padding_fraction(s["tokens_in_blocks"], n_blocks * bs)
    return {"stats": s, "documents_in_split": info["documents_in_split"], "concat": info["concat"]}


def pack(lengths, block_size: int, strategy: str = "concat", keep_last: bool = True, docs=None) -> BlockIndex:
    """Blocks for documents of the given token lengths (in order). `docs` names them (default 0..n-1)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    docs = np.arange(len(lengths), dtype=np.int64) if docs is None else np.asarray(docs, dtype=np.int64)
    chunks = lambda: [(docs, lengths)]  # noqa: E731
    sink = _MemorySink()
    info = pack_chunks(chunks, block_size, strategy, keep_last, sink)
    a = sink.arrays()
    info = _finish_stats(info, len(a["block_ptr"]) - 1, block_size)
    return BlockIndex(a["piece_doc"], a["piece_start"], a["piece_len"], a["block_ptr"], block_size, strategy,
                      info["stats"]["tokens_dropped_last_block"], info)


def pack_to_file(chunks: Chunks, block_size: int, strategy: str, keep_last: bool, path: str,
                 meta: Optional[dict] = None) -> None:
    """`pack` for a corpus of any size: the blocks written to the index file `path` as they are made
    (memory bounded by the chunk size, except best_fit, which holds ~40 bytes per document), committed
    atomically (see `token_store.index`)."""
    from medtrain.data.token_store.index import IndexWriter

    capacity = _Totals.of(lambda: _bounded(chunks(), block_size), block_size).capacity(block_size)
    w = IndexWriter(path, "blocks", {"piece_doc": (np.int64, capacity), "piece_start": (np.int64, capacity),
                                     "piece_len": (np.int64, capacity), "block_ptr": (np.int64, capacity + 1)})
    try:
        sink = _FileSink(w)
        info = pack_chunks(chunks, block_size, strategy, keep_last, sink)
        n_blocks = w.count("block_ptr")
        w.append("block_ptr", [sink.n_pieces])
        info = _finish_stats(info, n_blocks, block_size)
        w.commit({**(meta or {}), "block_size": block_size, "strategy": strategy,
                  "dropped_tokens": info["stats"]["tokens_dropped_last_block"], "info": info})
    except BaseException:
        w.abort()
        raise


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
