"""Index files of the token store (the document index and the block indexes) and how they are built
once: one file per index, written under a temporary name, fsynced and renamed, and memory-mapped
read-only by every process that needs it, so the ranks of a node share one copy in the page cache and
no rank holds a private copy of anything that grows with the corpus.

File format (`.idx`, little-endian): the arrays at 4096-byte aligned offsets from 0 (a writer that does
not know their final length in advance reserves room; unused room is a hole of the sparse file), then
a JSON header, then a 24-byte footer:

    [array 0][array 1]...[JSON header][u64 header offset][u64 header length][b"MTIDX\\x00v1"]

The header names each array (`{"name": {"dtype": "<i8", "offset": 0, "count": 7}}`), the kind of the
index and its `meta`. A reader checks the footer's magic and that header offset + length + 24 is the
file's size, so a file cut short (a copy that stopped) is refused, never read as an index. A killed
build leaves only a `*.tmp.<host>.<pid>` file, which no reader opens.

Built once: `build_once(path, build)` lets the first process that creates `<path>.lock` (O_EXCL; the
file names its host and pid and is touched while the build runs) call `build`; every other process
waits for `path` by watching the filesystem (logging who it waits for every minute), never in a
collective, so an index build of any length cannot hit `ddp_timeout`. A lock whose owner died (same
host, pid gone) or that nobody touched for `stale_seconds` is taken over. A hand-written lock instead
of `filelock`: its flock locks need a live file descriptor, say nothing about who holds them, and do
not work across nodes on many network file systems; an O_EXCL file does, and records its owner.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import socket
import struct
import threading
import time
from typing import Callable, Optional

import numpy as np

from medtrain.errors import DataError

logger = logging.getLogger(__name__)

MAGIC = b"MTIDX\x00v1"
FOOTER = struct.Struct("<QQ8s")
ALIGN = 4096


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def tmp_name(path: str) -> str:
    return f"{path}.tmp.{socket.gethostname()}.{os.getpid()}"


class IndexWriter:
    """Writes one index file: `reserve` each array's room, `append` chunks to it, `commit(meta)`.

    Arrays are written with `os.pwrite` at their offsets in a temporary file (never mapped, so the
    pages written do not count in this process's memory); `commit` writes the header and footer,
    fsyncs and renames the file into place."""

    def __init__(self, path: str, kind: str, arrays: dict):
        """`arrays`: name -> (dtype, capacity in elements)."""
        self.path, self.kind, self.tmp = path, kind, tmp_name(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.fd = os.open(self.tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        self.layout, offset = {}, 0
        for name, (dtype, capacity) in arrays.items():
            dtype = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
            self.layout[name] = {"dtype": dtype.str, "offset": offset, "count": 0, "capacity": int(capacity)}
            offset = _aligned(offset + int(capacity) * dtype.itemsize)
        self.end = offset

    def append(self, name: str, arr) -> None:
        a = self.layout[name]
        arr = np.ascontiguousarray(arr, dtype=np.dtype(a["dtype"]))
        if a["count"] + len(arr) > a["capacity"]:
            raise RuntimeError(f"index array {name} overflows its reserved {a['capacity']} elements")
        data = memoryview(arr).cast("B")
        pos = a["offset"] + a["count"] * arr.itemsize
        while len(data):
            n = os.pwrite(self.fd, data, pos)
            data, pos = data[n:], pos + n
        a["count"] += len(arr)

    def count(self, name: str) -> int:
        return self.layout[name]["count"]

    def commit(self, meta: dict) -> None:
        header = json.dumps({"kind": self.kind, "arrays": {k: {x: v[x] for x in ("dtype", "offset", "count")}
                                                         for k, v in self.layout.items()},
                             "meta": meta}).encode()
        tail = header + FOOTER.pack(self.end, len(header), MAGIC)
        os.pwrite(self.fd, tail, self.end)
        os.ftruncate(self.fd, self.end + len(tail))
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        os.replace(self.tmp, self.path)
        _fsync_dir(os.path.dirname(self.path) or ".")

    def abort(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.remove(self.tmp)
        except OSError:
            pass


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class IndexFile:
    """A committed index file: `arrays[name]` are read-only views into one memory map of it (for
    whole-array work: packing, stats, tests), `take(name, positions)` reads a few elements with
    `os.pread` (for the per-block lookups of training: nothing is mapped into the process, so its
    memory does not grow as it reads; the kernel may map a whole 2 MB page-cache folio for one
    touched element of a map). `meta` is the header's meta."""

    def __init__(self, path: str):
        self.path = path
        self._fd = None
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < FOOTER.size:
                raise DataError(f"{path}: {size} bytes, too short for an index file: delete it (it is rebuilt)")
            fh.seek(size - FOOTER.size)
            h_off, h_len, magic = FOOTER.unpack(fh.read(FOOTER.size))
            if magic != MAGIC or h_off + h_len + FOOTER.size != size:
                raise DataError(f"{path}: not a complete index file (footer {magic!r}, {size} bytes): it was cut "
                                "short or is of another format; delete it (it is rebuilt)")
            fh.seek(h_off)
            header = json.loads(fh.read(h_len))
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if h_off else None
        if self._mm is not None and hasattr(mmap, "MADV_RANDOM"):
            # lookups are random: no readahead and no fault-around, so a process maps only the pages
            # it reads (each lookup would otherwise map 64 KB or more of neighbours)
            self._mm.madvise(mmap.MADV_RANDOM)
        self.kind, self.meta = header["kind"], header["meta"]
        self.arrays = {}
        for name, a in header["arrays"].items():
            dtype = np.dtype(a["dtype"])
            if a["count"] == 0:
                self.arrays[name] = np.zeros(0, dtype)
            else:
                self.arrays[name] = np.frombuffer(self._mm, dtype=dtype, count=a["count"], offset=a["offset"])

        self._layout = {name: (np.dtype(a["dtype"]), int(a["offset"]), int(a["count"]))
                        for name, a in header["arrays"].items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def take(self, name: str, positions) -> np.ndarray:
        """arrays[name][positions], read with one `os.pread` per run of consecutive positions."""
        dtype, offset, count = self._layout[name]
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) == 0:
            return np.zeros(0, dtype)
        if positions.min() < 0 or positions.max() >= count:
            raise IndexError(f"{name}[{int(positions.max())}] of {count} in {self.path}")
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        brk = np.flatnonzero(np.diff(positions) != 1) + 1
        starts = np.concatenate([[0], brk])
        ends = np.append(brk, len(positions))
        parts = []
        for a, b in zip(starts.tolist(), ends.tolist()):
            first, n = int(positions[a]), b - a
            parts.append(np.frombuffer(os.pread(self._fd, n * dtype.itemsize, offset + first * dtype.itemsize),
                                       dtype=dtype))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def __del__(self):
        self.close()


def valid_index(path: str) -> bool:
    """Whether `path` is a complete index file (its footer and size agree)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < FOOTER.size:
                return False
            fh.seek(size - FOOTER.size)
            h_off, h_len, magic = FOOTER.unpack(fh.read(FOOTER.size))
        return magic == MAGIC and h_off + h_len + FOOTER.size == size
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------
# built once: first-writer-wins lock files
# ---------------------------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_lock(lock: str) -> Optional[dict]:
    try:
        with open(lock) as fh:
            owner = json.load(fh)
        owner["mtime"] = os.path.getmtime(lock)
        return owner
    except (OSError, ValueError):
        return None


def _try_lock(lock: str) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}, fh)
    return True


def _stale(owner: Optional[dict], stale_seconds: float) -> bool:
    if owner is None:
        return False
    if owner.get("host") == socket.gethostname() and not pid_alive(int(owner.get("pid", -1))):
        return True
    return time.time() - owner["mtime"] > stale_seconds


def _take_over(lock: str, owner: dict) -> None:
    """Remove a stale lock, unless it changed hands meanwhile (one taker at a time, by `<lock>.takeover`)."""
    guard = lock + ".takeover"
    if not _try_lock(guard):
        g = _read_lock(guard)
        if g is not None and time.time() - g["mtime"] > 60:  # a taker that died while taking over
            try:
                os.remove(guard)
            except OSError:
                pass
        return
    try:
        now = _read_lock(lock)
        if now is not None and (now.get("host"), now.get("pid"), now.get("since")) == \
                (owner.get("host"), owner.get("pid"), owner.get("since")):
            logger.warning("taking over %s from %s pid %s (%s)", lock, owner.get("host"), owner.get("pid"),
                           "not running" if owner.get("host") == socket.gethostname() else "no sign of life")
            os.remove(lock)
    finally:
        os.remove(guard)


class _Heartbeat:
    """Touches the lock file while the build runs, so waiters on other hosts can tell it is alive."""

    def __init__(self, lock: str, every: float):
        self.lock, self.every = lock, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(self.every):
            try:
                os.utime(self.lock)
            except OSError:
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def build_once(path: str, build: Callable[[str], None], what: str, poll: float = 0.2,
               stale_seconds: float = 600.0, log_every: float = 60.0,
               done: Callable[[str], bool] = valid_index) -> bool:
    """Make sure the file `path` exists, built by one process: `build(path)` must write it atomically
    (an `IndexWriter`, or a rename). Returns True in the process that built it, False in the others.
    `what` names it in the logs; `done(path)` says whether it is complete (default: a valid index)."""
    if done(path):
        return False
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    lock = path + ".lock"
    t0 = last_log = time.time()
    announced = False
    while True:
        if _try_lock(lock):
            try:
                if done(path):  # finished by another process between our check and the lock
                    return False
                logger.info("Building %s (%s; this process %s pid %d holds %s)", what, path,
                            socket.gethostname(), os.getpid(), lock)
                t = time.time()
                with _Heartbeat(lock, max(1.0, min(30.0, stale_seconds / 10))):
                    build(path)
                logger.info("Built %s in %.1f s", what, time.time() - t)
                return True
            finally:
                try:
                    os.remove(lock)
                except OSError:
                    pass
        if done(path):
            return False
        owner = _read_lock(lock)
        if _stale(owner, stale_seconds):
            _take_over(lock, owner)
            continue
        if not announced or time.time() - last_log >= log_every:
            who = f"{owner.get('host')} pid {owner.get('pid')}" if owner else "another process"
            (logger.info if not announced else logger.warning)(
                "pid %d waits %.0f s for %s to build %s (%s; watching the filesystem, no collective is "
                "involved; if that process is gone for good, delete %s)", os.getpid(), time.time() - t0, who,
                what, path, lock)
            announced, last_log = True, time.time()
        time.sleep(poll)


# ---------------------------------------------------------------------------------------------------
# the document index of one store
# ---------------------------------------------------------------------------------------------------
DOCUMENT_ARRAYS = ("doc_start", "doc_len", "doc_key", "unit_first_doc", "unit_tokens")


def write_document_index(units: list, n_documents: int, path: str, what: str = "") -> None:
    """The document index of a store from its units' own files (`units`: each unit's
    {"docs": offsets .npy, "keys": keys .npy} paths, in unit order): per document its start within its
    unit's token file (int64), its length (int32) and origin key (uint32); per unit its first document
    and its token count. Reads one unit at a time, so memory stays bounded whatever the store's size."""
    w = IndexWriter(path, "documents", {"doc_start": (np.int64, n_documents), "doc_len": (np.int32, n_documents),
                                        "doc_key": (np.uint32, n_documents),
                                        "unit_first_doc": (np.int64, len(units) + 1),
                                        "unit_tokens": (np.int64, len(units))})
    try:
        first, tokens, longest = 0, 0, 0
        t_log = time.time()
        for i, u in enumerate(units):
            off = np.load(u["docs"])
            keys = np.load(u["keys"])
            n = len(off) - 1
            if n < 0 or len(keys) != n:
                raise DataError(f"{u['keys']}: {len(keys)} keys for {max(n, 0)} documents of {u['docs']}: the "
                                "store is damaged; rebuild it (--overwrite_cache)")
            lengths = np.diff(off)
            if n:
                longest = max(longest, int(lengths.max()))
                if longest >= 2 ** 31:
                    raise DataError(f"{u['docs']}: a document of {longest:,} tokens; documents are limited to "
                                    "2**31 tokens")
            w.append("unit_first_doc", [first])
            w.append("unit_tokens", [int(off[-1]) if n >= 0 and len(off) else 0])
            w.append("doc_start", off[:-1])
            w.append("doc_len", lengths)
            w.append("doc_key", keys)
            first += n
            tokens += int(off[-1]) if len(off) else 0
            if time.time() - t_log >= 30:
                logger.info("%s: document index, %d of %d units", what or path, i + 1, len(units))
                t_log = time.time()
        if first != n_documents:
            raise DataError(f"{what or path}: the units hold {first:,} documents, the manifest says {n_documents:,}: "
                            "the store is damaged; rebuild it (--overwrite_cache)")
        w.append("unit_first_doc", [first])
        w.commit({"documents": first, "tokens": tokens, "units": len(units)})
    except BaseException:
        w.abort()
        raise
