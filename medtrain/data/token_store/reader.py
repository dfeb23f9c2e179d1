"""Reading token stores: `TokenCorpus` reads the units of one or more stores as one corpus, through each
store's document index (memory-mapped, see `index`), gets block indexes built once per setting (an
index file every process maps), and builds block rows.

What a process holds, whatever the corpus size: the manifests, one memory map per store's document
index and per block index (shared with every other process on the node through the page cache), and
at most `max_open_files` open token files (a small LRU; tokens are read with `os.pread`, which needs
no map and no file position, so dataloader workers forked from a process can share its descriptors).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from typing import Iterator, Optional

import numpy as np

from medtrain.data.documents import SPLITS, in_split
from medtrain.data.packing import CHUNK_DOCS, DOCUMENT_AWARE, PACK_VERSION, BlockIndex, pack_to_file
from medtrain.data.rows import Row, build_row
from medtrain.data.sources import SkipCounter
from medtrain.data.token_store.index import IndexFile, build_once, valid_index, write_document_index
from medtrain.data.token_store.layout import (DOCUMENT_INDEX, FORMAT_VERSION, MANIFEST, READABLE_VERSIONS, is_store,
                                              unit_paths)
from medtrain.errors import DataError

logger = logging.getLogger(__name__)

MAX_OPEN_FILES = 32


class OpenFiles:
    """At most `capacity` open files, least recently used closed first; `read` is one `os.pread`."""

    def __init__(self, capacity: int = MAX_OPEN_FILES):
        self.capacity = max(1, capacity)
        self.fds: OrderedDict = OrderedDict()

    def read(self, path: str, offset: int, nbytes: int, size: Optional[int] = None) -> bytes:
        """`nbytes` at `offset` of `path`; `size`: what the file must hold (checked when it is opened)."""
        fd = self.fds.get(path)
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                store = os.path.dirname(os.path.dirname(path))
                raise DataError(f"{path} is gone: the token store {store} was removed or rebuilt while this run "
                                "used it (another job with --overwrite_cache, or a cleanup). Run again once that "
                                "job is done; the store is then found, or built, whole") from None
            if size is not None and os.fstat(fd).st_size != size:
                found = os.fstat(fd).st_size
                os.close(fd)
                _check_size(path, found, size)
            self.fds[path] = fd
            while len(self.fds) > self.capacity:
                os.close(self.fds.popitem(last=False)[1])
        else:
            self.fds.move_to_end(path)
        data = os.pread(fd, nbytes, offset)
        if len(data) != nbytes:
            raise DataError(f"{path}: {len(data)} bytes at offset {offset}, expected {nbytes}: the store is damaged "
                            "or was copied incompletely; rebuild it (--overwrite_cache) or copy it again")
        return data

    def close(self) -> None:
        while self.fds:
            try:
                os.close(self.fds.popitem()[1])
            except OSError:
                pass

    def __del__(self):
        self.close()


def _check_size(path: str, found: Optional[int], size: int) -> None:
    if found != size:
        raise DataError(f"{path}: {found} bytes, the store's index expects {size}: the store is damaged or was "
                        "copied incompletely; rebuild it (--overwrite_cache) or copy it again")


def _unit_files(store: str, m: dict, j: int) -> list[tuple[str, int]]:
    """(path, expected bytes) of the j-th unit of a store: its tokens, and its mask (SFT stores)."""
    u = m["units"][j]
    up = unit_paths(store, u["unit"])
    files = [(up["tokens"], int(u["tokens"]) * np.dtype(m["dtype"]).itemsize)]
    if m.get("has_mask"):
        files.append((up["mask"], int(u["tokens"])))
    return files


def _writable(path: str) -> bool:
    return os.access(path, os.W_OK)


def default_index_dir() -> str:
    from medtrain.config.arguments import default_cache_dir

    return os.path.join(default_cache_dir(), "token_store_index")


class TokenCorpus:
    """One or more token stores read as one corpus: document d of the corpus is document d - first of
    the store it falls in, in the stores' order.

    `index_dir`: where derived index files go for a store this process may not write to (default
    `<cache_dir>/token_store_index`), a subdirectory per store fingerprint."""

    def __init__(self, paths, index_dir: Optional[str] = None, max_open_files: int = MAX_OPEN_FILES):
        self.paths = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
        self.index_dir = index_dir
        self.max_open_files = max_open_files
        self.manifests = []
        self.index_builds: dict = {}  # block index file -> whether this process built it
        for p in self.paths:
            if not is_store(p):
                raise DataError(f"{p}: not a complete token store (no {MANIFEST}; an interrupted build is "
                                "resumed by running the same command again)")
            with open(os.path.join(p, MANIFEST)) as fh:
                m = json.load(fh)
            if m.get("format_version") not in READABLE_VERSIONS:
                raise DataError(f"{p}: token store format {m.get('format_version')} is not one this version reads "
                                f"({', '.join(map(str, READABLE_VERSIONS))}): rebuild it by running the same "
                                "prepare_data.py (or training) command with --overwrite_cache")
            # the first and last units now (a copy that stopped short); every unit when it is first opened
            for u in {0, len(m["units"]) - 1} if m["units"] else ():
                for path, size in _unit_files(p, m, u):
                    found = os.path.getsize(path) if os.path.exists(path) else None
                    _check_size(path, found, size)
            self.manifests.append(m)
        dtypes = {m["dtype"] for m in self.manifests}
        masks = {bool(m.get("has_mask")) for m in self.manifests}
        if len(masks) > 1:
            raise DataError(f"token stores {self.paths} mix pretraining text and SFT conversations")
        self.has_mask = masks == {True}
        eos = {m["eos_id"] for m in self.manifests}
        if len(eos) > 1:
            raise DataError(f"token stores {self.paths} were built with different tokenizers (EOS ids {eos})")
        self.dtype = np.dtype("uint32" if "uint32" in dtypes else "uint16")
        self._open_indexes()
        self._files = OpenFiles(max_open_files)

    # -- the document index -----------------------------------------------------------------------
    def _derived_dir(self, store: str, fp: str) -> str:
        """Where this process writes files derived from `store`: the store itself when it may, else
        a directory of its own under index_dir."""
        if _writable(store):
            return store
        return os.path.join(self.index_dir or default_index_dir(), fp[:20])

    def _build(self, store: str, fp: str, name: str, build, what: str) -> tuple[str, bool]:
        """build_once of the derived file `name` (e.g. packing/x.idx) of `store`, under index_dir when the
        store cannot be written to (read-only, or a permission the access check did not see)."""
        for found in (os.path.join(store, name), os.path.join(self.index_dir or default_index_dir(), fp[:20], name)):
            if valid_index(found):  # built before, by whoever could write where it lies
                return found, False
        path = os.path.join(self._derived_dir(store, fp), name)
        try:
            return path, build_once(path, build, what)
        except PermissionError as e:
            fallback = os.path.join(self.index_dir or default_index_dir(), fp[:20], name)
            if fallback == path:
                raise
            logger.warning("cannot write %s (%s): keeping it under %s instead", path, e, fallback)
            return fallback, build_once(fallback, build, what)

    def _document_index(self, p: str, m: dict) -> IndexFile:
        """The store's documents.idx; a version-1 store has none: it is derived from the units, once."""
        units = lambda: [unit_paths(p, u["unit"]) for u in m["units"]]  # noqa: E731
        path, _ = self._build(p, m["fingerprint"], DOCUMENT_INDEX,
                              lambda out: write_document_index(units(), int(m["documents"]), out, p),
                              f"the document index of token store {p} (format {m.get('format_version')}: "
                              "derived from its units, nothing is tokenized again)")
        f = IndexFile(path)
        if (f.meta.get("documents"), f.meta.get("tokens"), f.meta.get("units")) != \
                (m["documents"], m["tokens"], len(m["units"])):
            raise DataError(f"{path}: indexes {f.meta.get('documents')} documents, {f.meta.get('tokens')} tokens in "
                            f"{f.meta.get('units')} units; the manifest of {p} says {m['documents']}, {m['tokens']}, "
                            f"{len(m['units'])}: delete {path} (it is derived again) or rebuild the store")
        return f

    def _open_indexes(self) -> None:
        self._doc_index, self._doc_index_paths, first, units = [], [], [0], [0]
        for p, m in zip(self.paths, self.manifests):
            f = self._document_index(p, m)
            self._doc_index.append(f)
            self._doc_index_paths.append(f.path)
            first.append(first[-1] + int(m["documents"]))
            units.append(units[-1] + len(m["units"]))
        self._store_first = np.asarray(first, dtype=np.int64)
        self._unit_base = np.asarray(units, dtype=np.int64)
        self._unit_first_doc = [np.array(f["unit_first_doc"]) for f in self._doc_index]  # per unit: small

    def __getstate__(self):  # spawned dataloader workers map the index files again, by path
        state = dict(self.__dict__)
        state["_doc_index"] = None
        state["_files"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._doc_index = [IndexFile(f) for f in self._doc_index_paths]
        self._files = OpenFiles(self.max_open_files)

    def close(self) -> None:
        """Close the token files this process has open (the maps go with the object)."""
        self._files.close()

    @property
    def n_documents(self) -> int:
        return int(self._store_first[-1])

    @property
    def fingerprints(self) -> list[str]:
        return [m["fingerprint"] for m in self.manifests]

    def _column(self, name: str) -> np.ndarray:
        cols = [f[name] for f in self._doc_index]
        if len(cols) == 1:
            return cols[0]
        return np.concatenate(cols) if cols else np.zeros(0, np.int64)

    @property
    def doc_lengths(self) -> np.ndarray:
        """Tokens per document (int32): a read-only map of the index for one store; for several stores a
        copy (memory grows with the corpus: for inspection and tests, not the training path)."""
        return self._column("doc_len")

    @property
    def doc_keys(self) -> np.ndarray:
        """Origin hash per document (uint32), for the hold-out rule; a map or a copy as `doc_lengths`."""
        return self._column("doc_key")

    def _locate(self, docs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(global unit, first token within the unit's file, length) of each document."""
        docs = np.asarray(docs, dtype=np.int64)
        if len(docs) and (docs.min() < 0 or docs.max() >= self.n_documents):
            raise IndexError(f"document {int(docs.max())} of a corpus of {self.n_documents}")
        s = np.searchsorted(self._store_first, docs, side="right") - 1
        unit = np.empty(len(docs), np.int64)
        start = np.empty(len(docs), np.int64)
        length = np.empty(len(docs), np.int64)
        for k in np.unique(s).tolist():
            at = s == k if len(self._doc_index) > 1 else slice(None)
            local = docs[at] - self._store_first[k]
            f = self._doc_index[k]
            unit[at] = np.searchsorted(self._unit_first_doc[k], local, side="right") - 1 + self._unit_base[k]
            start[at] = f.take("doc_start", local)
            length[at] = f.take("doc_len", local)
        return unit, start, length

    # -- tokens ------------------------------------------------------------------------------------
    def _read(self, unit: int, start: int, length: int, mask: bool = False) -> np.ndarray:
        k = int(np.searchsorted(self._unit_base, unit, side="right")) - 1
        files = _unit_files(self.paths[k], self.manifests[k], unit - int(self._unit_base[k]))
        path, size = files[1] if mask else files[0]
        dtype = np.dtype(np.uint8) if mask else np.dtype(self.manifests[k]["dtype"])
        if length <= 0:
            return np.zeros(0, dtype)
        data = self._files.read(path, start * dtype.itemsize, length * dtype.itemsize, size)
        return np.frombuffer(data, dtype=dtype)

    def tokens(self, doc: int, start: int = 0, length: Optional[int] = None) -> np.ndarray:
        u, s, n = (int(x[0]) for x in self._locate([doc]))
        if length is None:
            length = n - start
        return self._read(u, s + start, length)

    def mask(self, doc: int, start: int = 0, length: Optional[int] = None) -> np.ndarray:
        """Which tokens are trained (SFT stores; pretraining stores train every token)."""
        u, s, n = (int(x[0]) for x in self._locate([doc]))
        if length is None:
            length = n - start
        if not self.has_mask:
            return np.ones(length, dtype=np.uint8)
        return self._read(u, s + start, length, mask=True)

    def block_row(self, index: BlockIndex, b: int) -> Row:
        """Block b of `index` as a row (see `rows.build_row`). Pieces that follow each other in the same
        token file (consecutive documents, as concat packs them) are read with one `pread`."""
        doc, pstart, plen = index.block_pieces(b)
        unit, dstart, _ = self._locate(doc)
        at = dstart + pstart
        # runs of pieces contiguous in one file
        brk = np.ones(len(doc), dtype=bool)
        brk[1:] = (unit[1:] != unit[:-1]) | (at[1:] != at[:-1] + plen[:-1])
        run_of = np.cumsum(brk) - 1
        firsts = np.flatnonzero(brk)
        run_len = np.add.reduceat(plen, firsts) if len(firsts) else plen[:0]
        off_in_run = at - at[firsts][run_of]
        ids = [self._read(int(unit[f]), int(at[f]), int(n)) for f, n in zip(firsts, run_len)]
        masks = ([self._read(int(unit[f]), int(at[f]), int(n), mask=True) for f, n in zip(firsts, run_len)]
                 if self.has_mask else None)
        piece = iter(range(len(doc)))

        def fetch(d, s, n):  # build_row fetches the pieces in order
            k = next(piece)
            r, o = int(run_of[k]), int(off_in_run[k])
            return ids[r][o: o + n], (masks[r][o: o + n] if masks is not None else None)

        return build_row(zip(doc.tolist(), pstart.tolist(), plen.tolist()), fetch, self.has_mask)

    # -- splits and block indexes ---------------------------------------------------------------------
    def _chunks(self, split: str, holdout_percentage: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(document numbers, lengths) of the split, in order, about CHUNK_DOCS documents at a time."""
        for k, f in enumerate(self._doc_index):
            base = int(self._store_first[k])
            n = int(self._store_first[k + 1]) - base
            for a in range(0, n, CHUNK_DOCS):
                b = min(n, a + CHUNK_DOCS)
                lengths = np.asarray(f["doc_len"][a:b], dtype=np.int64)
                if split == "all" or holdout_percentage <= 0:
                    if split == "eval":
                        return
                    yield np.arange(base + a, base + b, dtype=np.int64), lengths
                else:
                    keep = in_split(f["doc_key"][a:b], split, holdout_percentage)
                    yield base + a + np.flatnonzero(keep), lengths[keep]

    def split_documents(self, split: str, holdout_percentage: float) -> np.ndarray:
        """Document numbers of the split (all, train or eval), by the hold-out rule of `documents`.
        An array as long as the split: a packed index says how many in `documents_in_split`."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
        parts = [d for d, _ in self._chunks(split, holdout_percentage)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def index_name(self, block_size: int, strategy: str, keep_last: bool = True, split: str = "all",
                   holdout_percentage: float = 0.0) -> str:
        """The block index file for these settings, relative to the first store's derived directory."""
        key = hashlib.sha256(json.dumps([self.fingerprints, block_size, strategy, keep_last, split,
                                         holdout_percentage, PACK_VERSION]).encode()).hexdigest()[:16]
        return os.path.join("packing", f"{strategy}-{block_size}-{split}-{key}.idx")

    def blocks(self, block_size: int, strategy: str, keep_last: bool = True, split: str = "all",
               holdout_percentage: float = 0.0) -> BlockIndex:
        """The block index for these settings: built once, by the first process that asks (the others
        wait for its file), then memory-mapped. `index_builds[path]` says whether this process built it."""
        if strategy not in DOCUMENT_AWARE:
            raise ValueError(f"unknown packing strategy {strategy!r}; choose one of {', '.join(DOCUMENT_AWARE)}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
        if not self.paths:
            raise DataError("no token store to pack")
        name = self.index_name(block_size, strategy, keep_last, split, holdout_percentage)
        settings = {"fingerprints": self.fingerprints, "block_size": block_size, "strategy": strategy,
                    "keep_last": keep_last, "split": split, "holdout_percentage": holdout_percentage,
                    "pack_version": PACK_VERSION}
        chunks = lambda: self._chunks(split, holdout_percentage)  # noqa: E731
        path, built = self._build(self.paths[0], self.fingerprints[0], name,
                                  lambda out: pack_to_file(chunks, block_size, strategy, keep_last, out,
                                                           meta={"settings": settings}),
                                  f"block index ({strategy}, block_size {block_size}, split {split}) of "
                                  f"{self.n_documents:,} documents")
        self.index_builds[path] = built
        index = BlockIndex.open(path)
        found = index.settings
        if found != settings:
            raise DataError(f"{path} holds a block index for other settings ({found}); delete it (it is rebuilt)")
        return index

    def summary(self) -> dict:
        skipped = SkipCounter()
        for m in self.manifests:
            skipped.merge(m["skipped"])
        counters: dict = {}
        for m in self.manifests:
            for k in ("documents_cut_for_tokenizing", "truncated", "truncated_reply_cut", "dropped_no_target",
                      "dropped_trailing_question"):
                if k in m:
                    counters[k] = counters.get(k, 0) + m[k]
        return {"stores": self.paths, "documents": int(self.n_documents),
                "tokens": int(sum(int(m["tokens"]) for m in self.manifests)), "skipped_lines": skipped.to_dict(),
                **counters}


__all__ = ["FORMAT_VERSION", "OpenFiles", "TokenCorpus"]
