"""Building a token store (the layout is in the package docstring): plan the work units once (first
writer wins, `plan.json`), tokenize this rank's share in `num_proc` worker processes, wait for the other
builders on the filesystem, write the manifest.

Shares: units go to the builder ranks (every rank of every node with prepare_on=global, the ranks of
one node with local) largest first, each to the rank with the fewest bytes so far, and within a rank
to its workers largest first, with at least 4 units per worker, so no worker idles while work remains.
Every file is written under a temporary name and renamed when complete, so a killed build leaves
nothing a later run trusts (the next build removes such leftovers), a rerun resumes from finished
units, and two jobs building the same store at once write identical files. A rank that is done waits
for the others by watching the filesystem, never inside a collective, so a build of any length cannot
hit `ddp_timeout`. A directory is only written into, or removed by --overwrite_cache, when it is empty
or a store's own (`foreign_contents`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from typing import Optional

import numpy as np

from medtrain.resilience import faults
from medtrain.data.token_store.index import pid_alive as _pid_alive
from medtrain.data.token_store.layout import (DOCUMENT_INDEX, FORMAT_VERSION, MANIFEST, TOKENS_VERSION, atomic_npy,
                                              atomic_write, is_store, unit_paths)
from medtrain.data.token_store.index import IndexFile, build_once, write_document_index
from medtrain.data.token_store.reader import TokenCorpus
from medtrain.runtime.measure import peak_rss_mb
from medtrain.errors import DataError, write_failure
from medtrain.data.documents import encoded_documents, flat_documents
from medtrain.data.tokenization import TextEncoder, TokenizerSpec
from medtrain.data.sources import (InputScan, SkipCounter, SourceFile, WorkUnit, doc_hash, plan_units, scan_inputs,
                                   share_units)

logger = logging.getLogger(__name__)



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
    payload = {"format_version": TOKENS_VERSION, "inputs": inputs, "encoder": encoder.fingerprint,
               "skip_bad": skip_bad, "max_chars": max_chars}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# building one unit (runs in a worker process)
# ---------------------------------------------------------------------------------------------------
def build_unit(store: str, i: int, unit: WorkUnit, encoder, skip_bad: bool, max_chars: Optional[int]) -> dict:
    """Tokenize one work unit into the store; returns its summary (also written as the done marker)."""
    faults.point("unit_build", unit=i)
    t0 = time.time()
    encoder.counters()   # counts since the previous call: none carried over from a unit that failed
    paths = unit_paths(store, i)
    skipped = SkipCounter()
    tag = f"tmp.{socket.gethostname()}.{os.getpid()}"
    ends, keys = [np.zeros(1, dtype=np.int64)], []   # each document's end offset, its origin hash
    n_tokens = 0
    temporaries = [f"{paths['tokens']}.{tag}"] + ([f"{paths['mask']}.{tag}"] if encoder.has_mask else [])
    try:
        mask_out = open(temporaries[1], "wb") if encoder.has_mask else None
        try:
            with open(temporaries[0], "wb") as out:
                if hasattr(encoder, "encode_flat") and not encoder.has_mask:   # a block at a time
                    written = _WriteBehind(out)
                    for origins, ids, offsets in flat_documents(unit, encoder, skip_bad, max_chars, skipped):
                        out.write(ids.data)
                        written.advance()
                        ends.append(offsets[1:] + n_tokens)
                        n_tokens += len(ids)
                        keys.extend(origins)
                else:
                    doc_ends = []
                    for key, doc in encoded_documents(unit, encoder, skip_bad, max_chars, skipped):
                        out.write(doc.ids.tobytes())
                        if mask_out is not None:
                            mask_out.write(np.asarray(doc.mask, dtype=np.uint8).tobytes())
                        n_tokens += len(doc.ids)
                        doc_ends.append(n_tokens)
                        keys.append(doc_hash(unit.file.relpath, key))
                    ends.append(np.asarray(doc_ends, dtype=np.int64))
        finally:
            if mask_out is not None:
                mask_out.close()
        for path in temporaries:
            with open(path, "rb") as fh:  # on disk before the done marker says so
                os.fsync(fh.fileno())
        os.replace(temporaries[0], paths["tokens"])
        if mask_out is not None:
            os.replace(temporaries[1], paths["mask"])
        atomic_npy(paths["docs"], np.concatenate(ends).astype(np.int64, copy=False))
        atomic_npy(paths["keys"], np.asarray(keys, dtype=np.uint32))
    except DataError:   # bad input, or a backend that disagreed: nothing of this unit is kept
        for path in temporaries:
            if os.path.exists(path):
                os.remove(path)
        raise
    except (OSError, RuntimeError) as e:
        for path in temporaries:
            if os.path.exists(path):
                os.remove(path)
        itemsize = np.dtype(encoder.dtype).itemsize
        failure = write_failure(e, getattr(e, "filename", None) or temporaries[0], f"token store {store}",
                                needed=unit.nbytes * itemsize // 3)
        if failure is not None:
            raise failure from None
        raise
    summary = {"unit": i, "source": unit.file.relpath, "path": unit.file.path, "start": unit.start,
               "end": unit.end, "bytes": unit.nbytes, "documents": len(keys), "tokens": n_tokens,
               "skipped": skipped.to_dict(), "skipped_examples": skipped.examples[:5],
               "counters": encoder.counters(), "seconds": round(time.time() - t0, 3),
               "peak_rss_mb": peak_rss_mb(), "pid": os.getpid(), "host": socket.gethostname(),
               "started": round(t0, 3), "finished": round(time.time(), 3),
               "tokenizer_backend": getattr(getattr(encoder, "spec", None), "backend", "hf")}
    atomic_write(paths["done"], json.dumps(summary).encode())
    return summary


class _WriteBehind:
    """Starts the disk's writing of a file being written every `every` bytes (Linux: posix_fadvise
    DONTNEED writes dirty pages back without waiting, then drops them from the page cache), so the
    fsync before the done marker finds little left while the next block is tokenized, and a large
    build does not fill the page cache with tokens. Advisory: nothing happens where it is missing."""

    def __init__(self, out, every: int = 8 << 20):
        self.out, self.every, self.advised = out, every, 0
        self.usable = hasattr(os, "posix_fadvise")

    def advance(self) -> None:
        if not self.usable or self.out.tell() - self.advised < self.every:
            return
        self.out.flush()
        try:
            os.posix_fadvise(self.out.fileno(), self.advised, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            self.usable = False
        self.advised = self.out.tell()


_ENCODER = None   # a worker process's encoder, set once when the pool forks it (see _start_worker)


def _start_worker(encoder) -> None:
    """A worker process's start: its encoder, handed over once when the pool forks it (never pickled:
    jobs name only the unit, where each job carried the encoder, and with it the tokenizer.json, 8 MB
    for a 151k vocabulary, pickled by the parent for every unit); its tokenizers on one thread each
    (`--num_proc N` uses N cores): HF's through TOKENIZERS_PARALLELISM, fastokens' through
    FASTOKENS_BPE_THREADS (read when it first encodes in a process; by default it runs as many BPE
    threads as there are cores, in every worker)."""
    global _ENCODER
    _ENCODER = encoder
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["FASTOKENS_BPE_THREADS"] = "1"


def _worker(job, encoder=None):
    store, i, unit, skip_bad, max_chars = job
    try:
        return build_unit(store, i, unit, encoder if encoder is not None else _ENCODER, skip_bad, max_chars)
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
                 show_progress: bool = True, path: Optional[str] = None,
                 tokenizer_backend: Optional[str] = None):
        if isinstance(encoder, TokenizerSpec):  # pretraining text with this tokenizer
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
        self.tokenizer_backend = tokenizer_backend

    def ensure(self, overwrite: bool = False) -> str:
        t_start = time.time()
        foreign = foreign_contents(self.path)
        if foreign:
            what = "--overwrite_cache would delete it" if overwrite else "store files would be written among them"
            raise DataError(f"{self.path} is not a token store (it has no {MANIFEST} or plan.json) and is not "
                            f"empty ({len(foreign)} entries, e.g. {', '.join(foreign[:3])}): {what}. Choose another "
                            "directory (--output_dir, or --cache_dir), or empty that one yourself")
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
        remove_stale_temporaries(self.path)
        mine = [i for i in share_units(units, self.world)[self.rank]  # largest first
                if not os.path.exists(unit_paths(self.path, i)["done"])]
        if mine and self.tokenizer_backend and hasattr(self.encoder, "with_backend"):  # verified: HF's ids
            self.encoder = self.encoder.with_backend(self.tokenizer_backend, units)
        done_before = sum(os.path.exists(unit_paths(self.path, i)["done"]) for i in range(len(units)))
        if done_before and not is_store(self.path):
            logger.info("Resuming the build of %s: %d of %d units already done", self.path, done_before, len(units))
        logger.info("Building token store %s: %d units, %d for this rank, %d worker processes", self.path,
                    len(units), len(mine), self.num_proc)
        t_build = time.time()
        self._build(units, mine)
        from medtrain.runtime.measure import cpu_seconds

        os.makedirs(os.path.join(self.path, "ranks"), exist_ok=True)
        atomic_write(os.path.join(self.path, "ranks", f"{self.rank}.json"), json.dumps(
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
            units = plan_units(self.files, self.unit_bytes, workers=self.world * self.num_proc)
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
            atomic_write(marker, json.dumps({"launch": launch, "time": time.time()}).encode())
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
        jobs = [(self.path, i, units[i], self.skip_bad, self.max_chars) for i in mine]
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
                    update(_worker(job, self.encoder))
            else:
                import multiprocessing as mp

                ctx = mp.get_context("fork")
                os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process
                with ctx.Pool(min(self.num_proc, len(jobs)), initializer=_start_worker, initargs=(self.encoder,),
                              maxtasksperchild=64) as pool:
                    for res in pool.imap_unordered(_worker, jobs):
                        update(res)
        finally:
            bar.close()
        self.built_units = len(mine)

    def _wait_for_all(self, n_units: int) -> None:
        done = lambda i: os.path.exists(unit_paths(self.path, i)["done"])  # noqa: E731
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
        """The document index and the manifest, written by one builder (the first to take the lock);
        the others wait for the manifest on the filesystem (see `index.build_once`)."""
        build_once(os.path.join(self.path, MANIFEST), lambda out: _manifest_once(self, units, seconds),
                   f"the manifest of token store {self.path}", done=os.path.isfile)

# ---------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------
def resolve_inputs(paths, what: str, skip_bad: bool = False) -> tuple[list[str], InputScan]:
    """Split user paths into prepared token stores (used as they are) and the scan of the raw files to
    tokenize (with what it did not read: unsupported files, unreadable paths skipped with skip_bad)."""
    stores, raw = [], []
    for p in paths:
        (stores if os.path.isdir(p) and is_store(p) else raw).append(p)
    return stores, (scan_inputs(raw, what, skip_bad) if raw else InputScan())


def input_report(scan: InputScan, info: dict) -> dict:
    """`info` (a data summary) with what the scan did not read: unsupported files, and unreadable paths
    skipped (counted with the skipped lines)."""
    if scan.unsupported or scan.unreadable:
        info["inputs"] = scan.summary()
    if scan.skipped.total:
        skipped = SkipCounter()
        skipped.merge(info.get("skipped_lines") or {})
        skipped.merge(scan.skipped)
        info["skipped_lines"] = skipped.to_dict()
    return info


def prepare_store(paths, data_args, encoder, dist, what: str = "--train_file_dir",
                  output_dir: Optional[str] = None) -> tuple[TokenCorpus, dict]:
    """Token stores for `paths`: prepared ones as given, raw files built (or reused) under cache_dir
    (or at `output_dir`)."""
    from medtrain.config.arguments import default_cache_dir

    stores, scan = resolve_inputs(paths, what, data_args.skip_bad_lines)
    files = scan.files
    info = {"tokenized_this_run": False}
    if files:
        rank, world = dist.builders(data_args.prepare_on)
        builder = StoreBuilder(
            files, encoder, data_args.cache_dir or default_cache_dir(), data_args.skip_bad_lines,
            data_args.max_document_chars,
            num_proc=data_args.num_proc or dist.cpus_per_rank(), rank=rank, world=world,
            fingerprint_mode=data_args.fingerprint, show_progress=dist.is_main, path=output_dir,
            tokenizer_backend=data_args.tokenizer_backend)
        stores.append(builder.ensure(overwrite=data_args.overwrite_cache))
        info["tokenized_this_run"] = builder.built_units > 0
        info["units_tokenized_this_rank"] = builder.built_units
    corpus = TokenCorpus(stores, index_dir=os.path.join(data_args.cache_dir or default_cache_dir(), "token_store_index"))
    info.update(corpus.summary())
    return corpus, input_report(scan, info)


def remove_stale_temporaries(store: str) -> list[str]:
    """Remove what interrupted builds left: files named `<name>.tmp.<host>.<pid>...` written on this host
    by a process that is gone (a live builder's, or another host's, are left alone). Returns them."""
    host = socket.gethostname()
    removed = []
    for folder in (store, os.path.join(store, "units"), os.path.join(store, "ranks")):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            parts = name.split(".tmp.", 1)
            if len(parts) != 2 or not parts[1].startswith(host + "."):
                continue
            pid = parts[1][len(host) + 1:].split(".")[0]
            if not pid.isdigit() or _pid_alive(int(pid)):
                continue
            try:
                os.remove(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
            except OSError:
                pass
    if removed:
        logger.info("Removed %d temporary file(s) left in %s by an interrupted build", len(removed), store)
    return removed


STORE_FILES = (MANIFEST, "plan.json", "overwrite.json")  # any of these marks a directory as a token store's
_STORE_PART = re.compile(r"^\d+\.(tokens|mask|docs\.npy|keys\.npy|json)(\.tmp\..*)?$")  # units/, ranks/


def foreign_contents(path: str) -> list[str]:
    """What `path` holds that is not a token store's: [] when it does not exist, is empty, or carries a
    store's own files (a complete or partial store: only such directories are ever written into or
    removed); else the names of its entries. Only empty units/ and ranks/ folders count as empty."""
    try:   # one look, not isdir-then-exists: another rank may create the directory in between
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        return [os.path.basename(path)]
    if any(n in STORE_FILES or n.split(".tmp.")[0] in STORE_FILES for n in names):  # a plan being written
        return []
    return [n for n in names if not (n in ("units", "ranks") and os.path.isdir(os.path.join(path, n)) and all(
        _STORE_PART.match(m) for m in os.listdir(os.path.join(path, n))))]


# ---------------------------------------------------------------------------------------------------
# the manifest (helpers of StoreBuilder._write_manifest)
# ---------------------------------------------------------------------------------------------------
def _manifest_once(b: StoreBuilder, units: list[WorkUnit], seconds: float) -> None:
    summaries = []
    for i in range(len(units)):
        with open(unit_paths(b.path, i)["done"]) as fh:
            summaries.append(json.load(fh))
    skipped = SkipCounter()
    for s in summaries:
        skipped.merge(s["skipped"])
    docs = sum(s["documents"] for s in summaries)
    tokens = sum(s["tokens"] for s in summaries)
    if docs == 0:
        raise DataError("no documents were read from " + ", ".join(sorted({f.path for f in b.files}))
                        + f" (skipped: {skipped.to_dict()})")
    build_seconds = sum(s["seconds"] for s in summaries)
    counters: dict = {}
    for s in summaries:
        for k, v in s.get("counters", {}).items():
            counters[k] = counters.get(k, 0) + v
    spec = b.encoder.spec
    ranks = []
    for r in range(b.world):
        try:
            with open(os.path.join(b.path, "ranks", f"{r}.json")) as fh:
                ranks.append(json.load(fh))
        except (OSError, ValueError):
            pass
    doc_index = os.path.join(b.path, DOCUMENT_INDEX)
    write_document_index([unit_paths(b.path, i) for i in range(len(units))], docs, doc_index, b.path)
    from medtrain.runtime.measure import length_histogram

    histogram = length_histogram(IndexFile(doc_index)["doc_len"], os.path.join(b.path, "doc_lengths.png"))
    manifest = {
        "format_version": FORMAT_VERSION,
        "fingerprint": b.fp,
        "dtype": np.dtype(b.encoder.dtype).name,
        "has_mask": bool(b.encoder.has_mask),
        "vocab_size": spec.vocab_size,
        "bos_id": spec.bos_id, "eos_id": spec.eos_id,
        "add_bos": spec.add_bos, "add_eos": spec.add_eos,
        **b.encoder.describe(),
        "inputs": [{"path": f.path, "relpath": f.relpath, "size": f.size, "mtime_ns": f.mtime_ns}
                   for f in b.files],
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
        "tokenizer_backend": sorted({s.get("tokenizer_backend", "hf") for s in summaries}) or ["hf"],
        "workers": worker_busy(summaries),
        "document_length_histogram": histogram,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write(os.path.join(b.path, MANIFEST), json.dumps(manifest, indent=1).encode())
    logger.info("Token store ready: %s (%s documents, %s tokens, %.1f s; skipped: %s)\n"
                "Document lengths (tokens):\n%s", b.path, f"{docs:,}", f"{tokens:,}", seconds,
                skipped.to_dict() or "nothing", "\n".join(histogram))


def worker_busy(summaries: list) -> list:
    """Per worker process (host, pid) of the builds that made these units: units, seconds busy, and the busy
    fraction of its rank's build (busy seconds / the time from the first unit's start to the last unit's
    end on that host): how evenly the plan kept every worker working. Units built by an earlier, killed
    build count for the worker that built them."""
    by_worker: dict = {}
    for s in summaries:
        if "pid" not in s:
            continue
        w = by_worker.setdefault((s["host"], s["pid"]), {"host": s["host"], "pid": s["pid"], "units": 0,
                                                          "busy_seconds": 0.0, "started": s["started"],
                                                          "finished": s["finished"]})
        w["units"] += 1
        w["busy_seconds"] += s["finished"] - s["started"]
        w["started"], w["finished"] = min(w["started"], s["started"]), max(w["finished"], s["finished"])
    span: dict = {}
    for w in by_worker.values():
        lo, hi = span.get(w["host"], (w["started"], w["finished"]))
        span[w["host"]] = (min(lo, w["started"]), max(hi, w["finished"]))
    out = []
    for w in by_worker.values():
        lo, hi = span[w["host"]]
        out.append({"host": w["host"], "pid": w["pid"], "units": w["units"], "busy_seconds": round(w["busy_seconds"], 3),
                    "busy_fraction": round(w["busy_seconds"] / (hi - lo), 3) if hi > lo else 1.0})
    return sorted(out, key=lambda w: (w["host"], w["pid"]))
