"""Reading token stores: `TokenCorpus` maps the units of one or more stores as one corpus (a global
document table), computes and caches block indexes from document lengths, and builds block rows."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from typing import Optional

import numpy as np

from medtrain.data.packing import BlockIndex, pack
from medtrain.data.documents import in_split
from medtrain.data.rows import Row, build_row
from medtrain.data.sources import SkipCounter
from medtrain.data.token_store.layout import FORMAT_VERSION, MANIFEST, is_store, unit_paths
from medtrain.errors import DataError

logger = logging.getLogger(__name__)


class TokenCorpus:
    """One or more token stores read as one corpus: a global document table over all their units."""

    def __init__(self, paths):
        self.paths = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
        self.manifests = []
        lengths, keys, unit_of, starts = [], [], [], []
        self._units = []  # (tokens path, dtype, mask path or None)
        for p in self.paths:
            if not is_store(p):
                raise DataError(f"{p}: not a complete token store (no {MANIFEST}; an interrupted build is "
                                "resumed by running the same command again)")
            with open(os.path.join(p, MANIFEST)) as fh:
                m = json.load(fh)
            if m.get("format_version") != FORMAT_VERSION:
                raise DataError(f"{p}: token store format {m.get('format_version')} is not {FORMAT_VERSION}; "
                                "rebuild it with --overwrite_cache")
            self.manifests.append(m)
            for u in m["units"]:
                up = unit_paths(p, u["unit"])
                off = np.load(up["docs"])
                itemsize = np.dtype(m["dtype"]).itemsize
                expected = {up["tokens"]: int(off[-1]) * itemsize}
                if m.get("has_mask"):
                    expected[up["mask"]] = int(off[-1])
                for path, size in expected.items():
                    found = os.path.getsize(path) if os.path.exists(path) else None
                    if found != size:
                        raise DataError(f"{path}: {found} bytes, the store's index expects {size}: the store is "
                                        f"damaged or was copied incompletely; rebuild it (--overwrite_cache) or "
                                        f"copy it again")
                lengths.append(np.diff(off))
                starts.append(off[:-1])
                keys.append(np.load(up["keys"]))
                unit_of.append(np.full(len(off) - 1, len(self._units), dtype=np.int32))
                self._units.append((up["tokens"], np.dtype(m["dtype"]), up["mask"] if m.get("has_mask") else None))
        dtypes = {m["dtype"] for m in self.manifests}
        masks = {bool(m.get("has_mask")) for m in self.manifests}
        if len(masks) > 1:
            raise DataError(f"token stores {self.paths} mix pretraining text and SFT conversations")
        self.has_mask = masks == {True}
        eos = {m["eos_id"] for m in self.manifests}
        if len(eos) > 1:
            raise DataError(f"token stores {self.paths} were built with different tokenizers (EOS ids {eos})")
        self.doc_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        self.doc_keys = np.concatenate(keys) if keys else np.zeros(0, np.uint32)
        self.doc_unit = np.concatenate(unit_of) if unit_of else np.zeros(0, np.int32)
        self.doc_start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.dtype = np.dtype("uint32" if "uint32" in dtypes else "uint16")
        self._maps: dict = {}

    @property
    def n_documents(self) -> int:
        return len(self.doc_lengths)

    @property
    def fingerprints(self) -> list[str]:
        return [m["fingerprint"] for m in self.manifests]

    def _map(self, u: int, mask: bool = False) -> np.ndarray:
        m = self._maps.get((u, mask))
        if m is None:
            path, dtype, mask_path = self._units[u]
            path, dtype = (mask_path, np.uint8) if mask else (path, dtype)
            m = np.memmap(path, dtype=dtype, mode="r") if os.path.getsize(path) else np.zeros(0, dtype)
            self._maps[(u, mask)] = m
        return m

    def __getstate__(self):  # memmaps are reopened in each dataloader worker
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def tokens(self, doc: int, start: int = 0, length: Optional[int] = None) -> np.ndarray:
        if length is None:
            length = int(self.doc_lengths[doc]) - start
        s = int(self.doc_start[doc]) + start
        return self._map(int(self.doc_unit[doc]))[s: s + length]

    def mask(self, doc: int, start: int = 0, length: Optional[int] = None) -> np.ndarray:
        """Which tokens are trained (SFT stores; pretraining stores train every token)."""
        if length is None:
            length = int(self.doc_lengths[doc]) - start
        if not self.has_mask:
            return np.ones(length, dtype=np.uint8)
        s = int(self.doc_start[doc]) + start
        return self._map(int(self.doc_unit[doc]), mask=True)[s: s + length]

    def split_documents(self, split: str, holdout_percentage: float) -> np.ndarray:
        """Document numbers of the split (all, train or eval), by the hold-out rule of `documents`."""
        return np.flatnonzero(in_split(self.doc_keys, split, holdout_percentage)).astype(np.int64)

    def blocks(self, block_size: int, strategy: str, keep_last: bool = True, split: str = "all",
               holdout_percentage: float = 0.0) -> BlockIndex:
        """The block index for these settings, computed from document lengths and cached on disk."""
        key = hashlib.sha256(json.dumps([self.fingerprints, block_size, strategy, keep_last, split,
                                         holdout_percentage, 1]).encode()).hexdigest()[:16]
        cache = os.path.join(self.paths[0], "packing", f"{strategy}-{block_size}-{split}-{key}.npz")
        if os.path.exists(cache):
            try:
                return BlockIndex.load(cache)
            except Exception:  # a damaged cache is recomputed, never trusted
                logger.warning("ignoring unreadable packing cache %s", cache)
        docs = self.split_documents(split, holdout_percentage)
        index = pack(self.doc_lengths[docs], block_size, strategy, keep_last, docs=docs)
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        tmp = f"{cache}.tmp.{socket.gethostname()}.{os.getpid()}.npz"
        index.save(tmp)
        os.replace(tmp, cache)
        return index

    def block_row(self, index: BlockIndex, b: int) -> Row:
        """Block b of `index` as a row (see `rows.build_row`)."""
        return build_row(index.pieces(b), lambda d, s, n: (self.tokens(d, s, n), self.mask(d, s, n) if self.has_mask
                                                           else None), self.has_mask)

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
        return {"stores": self.paths, "documents": int(self.n_documents), "tokens": int(self.doc_lengths.sum()),
                "skipped_lines": skipped.to_dict(), **counters}
