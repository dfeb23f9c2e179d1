"""The token store: documents tokenized once, on disk, memory-mapped by every rank and every later run.

Layout (format version 1), in a directory named by the fingerprint of everything that changes the
tokens (input paths/sizes/mtimes or contents, the tokenizer, the text field, BOS/EOS, skip policy):

    <cache_dir>/token_store/<fingerprint[:20]>/
        plan.json            the work units (file, byte range) every builder agrees on
        units/00000.tokens   token ids of the unit's documents, back to back, raw little-endian
                             uint16 (vocabulary <= 65535) or uint32 (see manifest "dtype")
        units/00000.docs.npy int64 document offsets into 00000.tokens: n_docs + 1 values, from 0
        units/00000.keys.npy uint32 per document: crc32("<relpath>:<byte offset or row>") (holdout)
        units/00000.json     the unit's counts; written last, by rename: its presence marks the unit done
        packing/*.npz        block indexes computed from the offsets, per block_size/strategy/split
        manifest.json        written last, by rename: its presence marks the store complete

Worked example: a unit with documents "Fever." -> [412, 9, 2] and "Take aspirin." -> [77, 1030, 9, 2]
(EOS = 2) has 00000.tokens = 412 9 2 77 1030 9 2 (7 uint16 values) and 00000.docs.npy = [0, 3, 7].

Building is parallel and collective-free: units are taken round-robin by the builder ranks (every
rank of every node with prepare_on=global, the ranks of one node with local), and by `num_proc`
worker processes within a rank. Every file is written under a temporary name and renamed when
complete, so a killed build leaves nothing a later run trusts, a rerun resumes from finished units,
and two jobs building the same store at once write identical files (the last rename wins). A rank
that is done waits for the others by watching the filesystem, never inside a collective, so a
build of any length cannot hit `ddp_timeout`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from typing import Optional

import numpy as np

from medtrain.data.packing import BlockIndex, pack
from medtrain.resilience import faults
from medtrain.runtime.measure import peak_rss_mb
from medtrain.errors import DataError
from medtrain.data.sources import SkipCounter, SourceFile, WorkUnit, doc_hash, find_files, plan_units

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BATCH_CHARS = 1 << 20      # characters per encode_batch call
BATCH_DOCS = 1024


# ---------------------------------------------------------------------------------------------------
# fingerprint
# ---------------------------------------------------------------------------------------------------
def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(files: list[SourceFile], encoder, skip_bad: bool, max_chars: Optional[int],
                mode: str = "metadata") -> str:
    """Hash of everything that changes the tokens (the inputs, and the encoder: tokenizer, text field,
    BOS/EOS, template...); `mode='content'` hashes file contents instead of their size and mtime.
    block_size and packing are not part of it: they never re-tokenize."""
    if mode not in ("metadata", "content"):
        raise ValueError(f"--fingerprint must be metadata or content, not {mode!r}")
    inputs = [[f.path, f.size, f.mtime_ns] if mode == "metadata" else [f.relpath, _file_digest(f.path)]
              for f in files]
    payload = {"format_version": FORMAT_VERSION, "inputs": inputs, "encoder": encoder.fingerprint,
               "skip_bad": skip_bad, "max_chars": max_chars}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp.{socket.gethostname()}.{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _atomic_npy(path: str, arr: np.ndarray) -> None:
    tmp = f"{path}.tmp.{socket.gethostname()}.{os.getpid()}.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)


def is_store(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MANIFEST))


# ---------------------------------------------------------------------------------------------------
# building one unit (runs in a worker process)
# ---------------------------------------------------------------------------------------------------
def _unit_paths(store: str, i: int) -> dict:
    base = os.path.join(store, "units", f"{i:05d}")
    return {"tokens": base + ".tokens", "docs": base + ".docs.npy", "keys": base + ".keys.npy",
            "mask": base + ".mask", "done": base + ".json"}


def build_unit(store: str, i: int, unit: WorkUnit, encoder, skip_bad: bool, max_chars: Optional[int]) -> dict:
    """Tokenize one work unit into the store; returns its summary (also written as the done marker)."""
    faults.point("unit_build", unit=i)
    t0 = time.time()
    paths = _unit_paths(store, i)
    skipped = SkipCounter()
    tag = f"tmp.{socket.gethostname()}.{os.getpid()}"
    offsets, keys = [0], []
    n_tokens = 0
    pending: list = []   # (key, record) waiting for the next encode_batch
    size = 0
    mask_out = open(f"{paths['mask']}.{tag}", "wb") if encoder.has_mask else None

    def flush(out):
        nonlocal n_tokens, pending, size
        for (key, _), encoded in zip(pending, encoder.encode_batch([r for _, r in pending])):
            if encoded is None:  # the encoder dropped it (and counted why)
                continue
            ids, mask = encoded
            out.write(ids.tobytes())
            if mask_out is not None:
                mask_out.write(np.asarray(mask, dtype=np.uint8).tobytes())
            n_tokens += len(ids)
            offsets.append(n_tokens)
            keys.append(doc_hash(unit.file.relpath, key))
        pending, size = [], 0

    try:
        with open(f"{paths['tokens']}.{tag}", "wb") as out:
            for key, record in encoder.read(unit, skip_bad, max_chars, skipped):
                pending.append((key, record))
                size += encoder.size(record)
                if size >= BATCH_CHARS or len(pending) >= BATCH_DOCS:
                    flush(out)
            if pending:
                flush(out)
    finally:
        if mask_out is not None:
            mask_out.close()
    for path in [f"{paths['tokens']}.{tag}"] + ([f"{paths['mask']}.{tag}"] if mask_out is not None else []):
        with open(path, "rb") as fh:  # on disk before the done marker says so
            os.fsync(fh.fileno())
    os.replace(f"{paths['tokens']}.{tag}", paths["tokens"])
    if mask_out is not None:
        os.replace(f"{paths['mask']}.{tag}", paths["mask"])
    _atomic_npy(paths["docs"], np.asarray(offsets, dtype=np.int64))
    _atomic_npy(paths["keys"], np.asarray(keys, dtype=np.uint32))
    summary = {"unit": i, "source": unit.file.relpath, "path": unit.file.path, "start": unit.start,
               "end": unit.end, "bytes": unit.nbytes, "documents": len(keys), "tokens": n_tokens,
               "skipped": skipped.to_dict(), "skipped_examples": skipped.examples[:5],
               "counters": encoder.counters(), "seconds": round(time.time() - t0, 3),
               "peak_rss_mb": peak_rss_mb()}
    _atomic_write(paths["done"], json.dumps(summary).encode())
    return summary


def _worker(job):
    try:
        return build_unit(*job)
    except DataError as e:
        return {"error": str(e)}


# ---------------------------------------------------------------------------------------------------
# building a store
# ---------------------------------------------------------------------------------------------------
class StoreBuilder:
    """Builds (or finds) the token store for a set of files. Every rank calls `ensure()`; each builds
    its share of the units, waits on the filesystem for the others, and returns the store's path."""

    def __init__(self, files: list[SourceFile], encoder, root: str, skip_bad: bool = False,
                 max_chars: Optional[int] = None, num_proc: int = 1, rank: int = 0, world: int = 1,
                 fingerprint_mode: str = "metadata", unit_bytes: int = 32 << 20, poll_seconds: float = 0.5,
                 show_progress: bool = True, path: Optional[str] = None):
        if not hasattr(encoder, "encode_batch"):  # a TokenizerSpec: pretraining text
            from medtrain.data.tokenization import TextEncoder
            encoder = TextEncoder(encoder)
        self.files, self.encoder = files, encoder
        self.skip_bad, self.max_chars, self.num_proc = skip_bad, max_chars, max(1, num_proc)
        self.rank, self.world = rank, world
        self.unit_bytes = unit_bytes
        self.poll = poll_seconds
        self.show_progress = show_progress
        self.fp = fingerprint(files, encoder, skip_bad, max_chars, fingerprint_mode)
        self.path = os.path.abspath(path) if path else os.path.join(root, "token_store", self.fp[:20])
        self.built_units = 0

    def ensure(self, overwrite: bool = False) -> str:
        t_start = time.time()
        if overwrite:
            self._clear_for_overwrite(t_start)
        elif is_store(self.path):
            with open(os.path.join(self.path, MANIFEST)) as fh:
                found = json.load(fh).get("fingerprint")
            if found != self.fp:
                raise DataError(f"{self.path} holds a token store of other inputs or another tokenizer "
                                f"(fingerprint {str(found)[:20]}, expected {self.fp[:20]}): choose another "
                                "directory or pass --overwrite_cache to replace it")
            logger.info("Reusing token store %s (fingerprint matches; pass --overwrite_cache to rebuild, or "
                        "delete that directory)", self.path)
            return self.path
        os.makedirs(os.path.join(self.path, "units"), exist_ok=True)
        units = self._plan()
        mine = [i for i in range(len(units)) if i % self.world == self.rank
                and not os.path.exists(_unit_paths(self.path, i)["done"])]
        done_before = sum(os.path.exists(_unit_paths(self.path, i)["done"]) for i in range(len(units)))
        if done_before and not is_store(self.path):
            logger.info("Resuming the build of %s: %d of %d units already done", self.path, done_before, len(units))
        logger.info("Building token store %s: %d units, %d for this rank, %d worker processes", self.path,
                    len(units), len(mine), self.num_proc)
        t_build = time.time()
        self._build(units, mine)
        from medtrain.runtime.measure import cpu_seconds

        os.makedirs(os.path.join(self.path, "ranks"), exist_ok=True)
        _atomic_write(os.path.join(self.path, "ranks", f"{self.rank}.json"), json.dumps(
            {"rank": self.rank, "units_built": len(mine), "seconds": round(time.time() - t_build, 3),
             "cpu_seconds": cpu_seconds(), "peak_rss_mb": peak_rss_mb(), "host": socket.gethostname()}).encode())
        self._wait_for_all(len(units))
        if not is_store(self.path):
            self._write_manifest(units, time.time() - t_start)
        return self.path

    def _plan(self) -> list[WorkUnit]:
        """The work units. The first builder writes the plan; every later one (another rank, or a
        resumed build with other worker counts) reads it, so unit i always means the same bytes."""
        plan_path = os.path.join(self.path, "plan.json")
        if not os.path.exists(plan_path):
            units = plan_units(self.files, self.unit_bytes, min_units=self.world * self.num_proc)
            plan = [{"relpath": u.file.relpath, "path": u.file.path, "start": u.start, "end": u.end} for u in units]
            tmp = f"{plan_path}.tmp.{socket.gethostname()}.{os.getpid()}"
            with open(tmp, "w") as fh:
                json.dump(plan, fh)
            try:
                os.link(tmp, plan_path)  # first writer wins; never replaces a plan others already follow
            except FileExistsError:
                pass
            finally:
                os.remove(tmp)
        with open(plan_path) as fh:
            plan = json.load(fh)
        by_path = {f.path: f for f in self.files}
        try:
            return [WorkUnit(by_path[u["path"]], u["start"], u["end"]) for u in plan]
        except KeyError as e:
            raise DataError(f"{plan_path} plans units of a file that is not among the inputs ({e}); delete "
                            f"{self.path} or pass --overwrite_cache") from None

    def _clear_for_overwrite(self, t_start: float) -> None:
        """Rank 0 removes the old store and writes a marker naming this launch; the other ranks wait for
        that exact marker (not a time window), so a restart or a late rank never builds into the old one."""
        env = os.environ
        launch = "|".join(env.get(k, "") for k in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
                                                     "TORCHELASTIC_RESTART_COUNT"))
        marker = os.path.join(self.path, "overwrite.json")
        if self.rank == 0:
            if os.path.isdir(self.path):
                trash = f"{self.path}.old.{socket.gethostname()}.{os.getpid()}"
                os.replace(self.path, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.makedirs(self.path, exist_ok=True)
            _atomic_write(marker, json.dumps({"launch": launch, "time": time.time()}).encode())
            logger.info("--overwrite_cache: rebuilding %s", self.path)
            return
        last_log = time.time()
        while True:
            try:
                with open(marker) as fh:
                    if json.load(fh).get("launch") == launch:
                        return
            except (OSError, ValueError):
                pass
            if time.time() - last_log >= 60:
                logger.warning("rank %d waits for builder rank 0 to clear %s for --overwrite_cache", self.rank,
                               self.path)
                last_log = time.time()
            time.sleep(self.poll)

    def _build(self, units: list[WorkUnit], mine: list[int]) -> None:
        from tqdm.auto import tqdm

        if not mine:
            return
        jobs = [(self.path, i, units[i], self.encoder, self.skip_bad, self.max_chars) for i in mine]
        total = sum(units[i].nbytes for i in mine)
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"tokenizing (rank {self.rank})",
                   disable=not self.show_progress)
        tokens, t0 = 0, time.time()

        def update(res):
            nonlocal tokens
            if "error" in res:
                raise DataError(res["error"])
            tokens += res["tokens"]
            bar.update(res["bytes"])
            bar.set_postfix_str(f"{tokens / max(1e-9, time.time() - t0):,.0f} tok/s")

        try:
            if self.num_proc == 1 or len(jobs) == 1:
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
                for job in jobs:
                    update(_worker(job))
            else:
                import multiprocessing as mp

                ctx = mp.get_context("fork")
                os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process
                with ctx.Pool(min(self.num_proc, len(jobs)), maxtasksperchild=64) as pool:
                    for res in pool.imap_unordered(_worker, jobs):
                        update(res)
        finally:
            bar.close()
        self.built_units = len(mine)

    def _wait_for_all(self, n_units: int) -> None:
        done = lambda i: os.path.exists(_unit_paths(self.path, i)["done"])  # noqa: E731
        rank_file = lambda r: os.path.exists(os.path.join(self.path, "ranks", f"{r}.json"))  # noqa: E731
        missing = [i for i in range(n_units) if not done(i)]
        missing_ranks = [r for r in range(self.world) if not rank_file(r)]
        last_log = time.time()
        while missing or missing_ranks:
            if time.time() - last_log >= 60:
                owners = sorted({i % self.world for i in missing})
                logger.warning("rank %d waits for %d of %d units of %s, built by rank(s) %s (watching the "
                               "filesystem; no collective is involved). If nodes do not share this directory, "
                               "pass --prepare_on local.", self.rank, len(missing), n_units, self.path, owners)
                last_log = time.time()
            time.sleep(self.poll)
            missing = [i for i in missing if not done(i)]
            missing_ranks = [r for r in missing_ranks if not rank_file(r)]

    def _write_manifest(self, units: list[WorkUnit], seconds: float) -> None:
        summaries = []
        for i in range(len(units)):
            with open(_unit_paths(self.path, i)["done"]) as fh:
                summaries.append(json.load(fh))
        skipped = SkipCounter()
        for s in summaries:
            skipped.merge(s["skipped"])
        docs = sum(s["documents"] for s in summaries)
        tokens = sum(s["tokens"] for s in summaries)
        if docs == 0:
            raise DataError("no documents were read from " + ", ".join(sorted({f.path for f in self.files}))
                            + f" (skipped: {skipped.to_dict()})")
        build_seconds = sum(s["seconds"] for s in summaries)
        counters: dict = {}
        for s in summaries:
            for k, v in s.get("counters", {}).items():
                counters[k] = counters.get(k, 0) + v
        spec = self.encoder.spec
        ranks = []
        for r in range(self.world):
            try:
                with open(os.path.join(self.path, "ranks", f"{r}.json")) as fh:
                    ranks.append(json.load(fh))
            except (OSError, ValueError):
                pass
        lengths = np.concatenate([np.diff(np.load(_unit_paths(self.path, i)["docs"])) for i in range(len(units))])
        from medtrain.runtime.measure import length_histogram

        histogram = length_histogram(lengths, os.path.join(self.path, "doc_lengths.png"))
        manifest = {
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fp,
            "dtype": np.dtype(self.encoder.dtype).name,
            "has_mask": bool(self.encoder.has_mask),
            "encoder": type(self.encoder).__name__,
            "vocab_size": spec.vocab_size,
            "bos_id": spec.bos_id, "eos_id": spec.eos_id,
            "add_bos": spec.add_bos, "add_eos": spec.add_eos,
            "text_field": getattr(self.encoder, "text_field", None),
            "inputs": [{"path": f.path, "relpath": f.relpath, "size": f.size, "mtime_ns": f.mtime_ns}
                       for f in self.files],
            "units": [{k: s[k] for k in ("unit", "source", "start", "end", "bytes", "documents", "tokens")}
                      for s in summaries],
            "documents": docs, "tokens": tokens, "bytes": sum(s["bytes"] for s in summaries),
            "skipped": skipped.to_dict(),
            "skipped_examples": [e for s in summaries for e in s.get("skipped_examples", [])][:20],
            **counters,
            "wall_seconds": round(seconds, 3),
            "worker_seconds": round(build_seconds, 3),
            "tokens_per_second": round(tokens / seconds, 1) if seconds > 0 else None,
            "peak_rss_mb_per_worker": max(s["peak_rss_mb"] for s in summaries),
            "ranks": ranks,
            "document_length_histogram": histogram,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        _atomic_write(os.path.join(self.path, MANIFEST), json.dumps(manifest, indent=1).encode())
        logger.info("Token store ready: %s (%s documents, %s tokens, %.1f s; skipped: %s)\n"
                    "Document lengths (tokens):\n%s", self.path, f"{docs:,}", f"{tokens:,}", seconds,
                    skipped.to_dict() or "nothing", "\n".join(histogram))


# ---------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------
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
                up = _unit_paths(p, u["unit"])
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
        """Document numbers of the train or eval split: eval holds the documents whose origin hash
        falls in the first `holdout_percentage` percent; train the others."""
        if split == "all" or holdout_percentage <= 0:
            return np.arange(self.n_documents, dtype=np.int64) if split != "eval" else np.zeros(0, np.int64)
        held = is_held_out(self.doc_keys, holdout_percentage)
        return np.flatnonzero(held if split == "eval" else ~held).astype(np.int64)

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

    def block_tokens(self, index: BlockIndex, b: int) -> dict:
        """A block's row: input_ids, piece_lengths, and labels for stores with a trained-token mask."""
        s, e = int(index.block_ptr[b]), int(index.block_ptr[b + 1])
        pieces = list(zip(index.piece_doc[s:e].tolist(), index.piece_start[s:e].tolist(),
                          index.piece_len[s:e].tolist()))
        ids = np.concatenate([self.tokens(*p) for p in pieces]).astype(np.int64)
        row = {"input_ids": ids, "piece_lengths": index.piece_len[s:e]}
        if self.has_mask:
            mask = np.concatenate([self.mask(*p) for p in pieces]).astype(bool)
            row["labels"] = np.where(mask, ids, -100)
        return row

    def summary(self) -> dict:
        skipped = SkipCounter()
        for m in self.manifests:
            skipped.merge(m["skipped"])
        counters: dict = {}
        for m in self.manifests:
            for k in ("documents_cut_for_tokenizing", "truncated", "truncated_reply_cut", "dropped_no_target"):
                if k in m:
                    counters[k] = counters.get(k, 0) + m[k]
        return {"stores": self.paths, "documents": int(self.n_documents), "tokens": int(self.doc_lengths.sum()),
                "skipped_lines": skipped.to_dict(), **counters}


def is_held_out(keys, holdout_percentage: float):
    """The validation rule shared by both data paths: a document is held out when its origin hash,
    modulo 10,000, is below holdout_percentage * 100."""
    return (np.asarray(keys, dtype=np.uint64) % 10000) < int(round(holdout_percentage * 100))


def resolve_inputs(paths, what: str) -> tuple[list[str], list[SourceFile]]:
    """Split user paths into prepared token stores (used as they are) and raw files to tokenize."""
    stores, raw = [], []
    for p in paths:
        (stores if os.path.isdir(p) and is_store(p) else raw).append(p)
    return stores, (find_files(raw, what) if raw else [])


def prepare_store(paths, data_args, encoder, dist, what: str = "--train_file_dir",
                  output_dir: Optional[str] = None) -> tuple[TokenCorpus, dict]:
    """Token stores for `paths`: prepared ones as given, raw files built (or reused) under cache_dir
    (or at `output_dir`)."""
    from medtrain.config.arguments import default_cache_dir

    stores, files = resolve_inputs(paths, what)
    info = {"tokenized_this_run": False}
    if files:
        rank, world = dist.builders(data_args.prepare_on)
        builder = StoreBuilder(
            files, encoder, data_args.cache_dir or default_cache_dir(), data_args.skip_bad_lines,
            data_args.max_document_chars,
            num_proc=data_args.num_proc or dist.cpus_per_rank(), rank=rank, world=world,
            fingerprint_mode=data_args.fingerprint, show_progress=dist.is_main, path=output_dir)
        stores.append(builder.ensure(overwrite=data_args.overwrite_cache))
        info["tokenized_this_run"] = builder.built_units > 0
        info["units_tokenized_this_rank"] = builder.built_units
    corpus = TokenCorpus(stores)
    info.update(corpus.summary())
    return corpus, info
