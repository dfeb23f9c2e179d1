"""Data sources: find input files, split them into work units, and read documents with their origin.

A *work unit* is a whole file or a byte range of a large uncompressed line-based file (.txt, .jsonl,
JSON-lines .json). A line belongs to the unit that holds its first byte, so units split anywhere and
still read every line exactly once. Each document read carries a *key*: the byte offset of its line
(line formats) or its row number (parquet, JSON arrays, compressed files), which, with the file's
relative path, names it the same way on every data path (used to hold documents out for validation).

Bad input raises `DataError` naming the file and line, unless the user chose to skip it, in which case
`SkipCounter` counts it by reason (the counts go into the run's summary).

Nothing is ignored without a word. `scan_inputs` (and `find_files`, its list of files) reports the
files of a given directory that are not read (unsupported types, e.g. `.jsonl.bz2`, `.csv`: a warning
with their count and a few names, and `InputScan.unsupported` for the summary), follows links to
directories (a link back to a directory being searched is searched once), and stops with a DataError
naming a directory or file that cannot be read (permission denied, a symbolic link loop, a broken link),
or counts it as `unreadable_path` with `skip_bad`. Each reader checks its file's first bytes before
reading: a `.gz`/`.zst` that is not gzip/zstd is a DataError naming it (`bad_compression` when
skipped), and text that is not UTF-8 (a UTF-16/UTF-32 byte-order mark, or NUL bytes in the first KB)
is a DataError naming the encoding found and the `iconv` command that converts it; with skip_bad the
whole file is skipped and counted once as `not_utf8_file`, never read as text full of NUL bytes.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import logging
import os
import stat
import zlib
from dataclasses import dataclass, field, replace
from typing import Iterator, Optional

from medtrain.data import line_blocks as blocks
from medtrain.errors import DataError

logger = logging.getLogger(__name__)

LINE_FORMATS = ("txt", "jsonl")
SUFFIXES = {
    ".txt": ("txt", None), ".text": ("txt", None),
    ".jsonl": ("jsonl", None), ".json": ("json", None), ".parquet": ("parquet", None),
    ".txt.gz": ("txt", "gz"), ".jsonl.gz": ("jsonl", "gz"), ".json.gz": ("json", "gz"),
    ".txt.zst": ("txt", "zst"), ".jsonl.zst": ("jsonl", "zst"), ".json.zst": ("json", "zst"),
}


@dataclass(frozen=True)
class SourceFile:
    path: str          # absolute path
    relpath: str       # path relative to the root it was found under (stable across machines)
    size: int
    mtime_ns: int
    fmt: str           # txt | jsonl | json | parquet | arrow (the shards of a saved `datasets` dataset)
    compression: Optional[str] = None

    @property
    def splittable(self) -> bool:
        return self.compression is None and self.fmt in ("txt", "jsonl", "json")


@dataclass(frozen=True)
class WorkUnit:
    """A whole file (start=0, end=None) or the lines starting in bytes [start, end) of one.

    `stride`/`phase` keep only the records whose key hashes to `phase` modulo `stride` (how a file
    that cannot be cut into byte ranges is shared by several readers); `skip_before` skips records
    whose key is below it (resuming inside a file that cannot be seeked, e.g. a compressed one).
    """

    file: SourceFile
    start: int = 0
    end: Optional[int] = None
    stride: int = 1
    phase: int = 0
    skip_before: Optional[int] = None

    def resume_at(self, key: Optional[int]) -> "WorkUnit":
        """This unit from the record with `key` on (None: from its start)."""
        if key is None:
            return self
        if self.file.splittable and self.file.fmt in LINE_FORMATS + ("json",) and self.file.compression is None \
                and not self._is_array_json():
            return replace(self, start=key)  # keys are byte offsets of line starts: seek there
        return replace(self, skip_before=key)

    def _is_array_json(self) -> bool:
        return self.file.fmt == "json" and RecordReader(self)._is_json_array()

    @property
    def nbytes(self) -> int:
        return (self.file.size if self.end is None else self.end) - self.start

    def describe(self) -> str:
        if self.start == 0 and self.end is None:
            return self.file.relpath
        return f"{self.file.relpath}[{self.start}:{self.end}]"


@dataclass
class SkipCounter:
    """Counts of skipped input by reason, with a few examples for the log."""

    counts: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)

    def add(self, reason: str, where: str = "", n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        if where and len(self.examples) < 20:
            self.examples.append(f"{reason}: {where}")

    def merge(self, other: "SkipCounter | dict") -> None:
        counts = other.counts if isinstance(other, SkipCounter) else other.get("counts", other)
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        if isinstance(other, SkipCounter):
            self.examples.extend(other.examples[: max(0, 20 - len(self.examples))])

    def to_dict(self) -> dict:
        return dict(sorted(self.counts.items()))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _classify(path: str):
    name = path.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return None


UNSUPPORTED_EXAMPLES = 5  # names of unsupported files shown in the warning and the summary


@dataclass
class InputScan:
    """What `scan_inputs` found: the files to read, and what it did not read.

    `unsupported`: files in a given directory whose type is not read (absolute paths, in scan order);
    `unreadable`: paths skipped because they cannot be read (only with skip_bad, counted in `skipped`
    as `unreadable_path`)."""

    files: list = field(default_factory=list)
    unsupported: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    skipped: SkipCounter = field(default_factory=SkipCounter)

    def summary(self) -> dict:
        """For the run summary: how many inputs were not read, with a few names."""
        return {"unsupported_files": len(self.unsupported),
                "unsupported_examples": self.unsupported[:UNSUPPORTED_EXAMPLES],
                "unreadable_paths": list(self.unreadable)}


def _os_error_cause(path: str, err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "a symbolic link loop (ELOOP): the link leads back to itself; fix or remove the link"
    if err.errno == errno.ENOENT and os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a broken symbolic link (to {target}, which does not exist); fix or remove the link"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: give this user read (and, for a directory, execute) permission"
    return f"{type(err).__name__}: {err.strerror or err}"


def scan_inputs(paths, what: str = "--train_file_dir", skip_bad: bool = False,
                skipped: Optional[SkipCounter] = None) -> InputScan:
    """Every supported file under `paths` (files or directories, searched recursively): the paths in the
    order given, each directory's files sorted, before its subdirectories; a file reached twice is read
    once. Links to directories are followed (one that leads back to a directory being searched, or to
    one searched already, is not searched again).

    A path that does not exist, or a directory without any supported file, is an error naming it. A
    directory or file that cannot be read (permission denied, a symbolic link loop, a broken link) is
    an error naming it and the cause, or, with `skip_bad`, skipped with a warning and counted as
    `unreadable_path` (in `skipped`, when given, and in the result's own counter). Files of a given
    directory that are not of a supported type are listed in one warning (their count and a few names)
    and returned in `unsupported`. Hidden files and directories (starting with '.') are ignored.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    scan = InputScan()
    counters = [scan.skipped] + ([skipped] if skipped is not None else [])
    seen: set = set()

    def cannot_read(path: str, kind: str, err: OSError) -> None:
        message = f"{what}: cannot read the {kind} {path}: {_os_error_cause(path, err)}"
        if not skip_bad:
            raise DataError(f"{message} (pass --skip_bad_lines to skip and count unreadable paths)")
        logger.warning("%s; skipped (--skip_bad_lines), counted as unreadable_path", message)
        scan.unreadable.append(path)
        for c in counters:
            c.add("unreadable_path", path)

    def readable(path: str) -> bool:
        try:
            with open(path, "rb"):
                return True
        except OSError as e:
            cannot_read(path, "file", e)
            return False

    for raw in paths:
        root = os.path.abspath(os.fspath(raw))
        if not os.path.lexists(root):
            raise DataError(f"{what}: path does not exist: {raw}")
        try:
            st = os.stat(root)
        except OSError as e:
            cannot_read(root, "path", e)
            continue
        shards = dataset_shards(root) if stat.S_ISDIR(st.st_mode) else None
        if shards is not None:  # a saved `datasets` dataset (save_to_disk): its Arrow shards, in order
            candidates = [(p, os.path.relpath(p, root), os.stat(p)) for p in shards if readable(p)]
        elif not stat.S_ISDIR(st.st_mode):
            kind = _classify(root)
            if kind is None or not stat.S_ISREG(st.st_mode):
                raise DataError(f"{what}: unsupported file type: {raw} (expected one of {', '.join(SUFFIXES)})")
            candidates = [(root, os.path.basename(root), st)] if readable(root) else []
        else:
            candidates, unsupported = [], []
            _walk(root, root, [os.path.realpath(root)], set(), candidates, unsupported, cannot_read, readable)
            scan.unsupported.extend(unsupported)
            if not candidates and not any(u.startswith(root + os.sep) for u in scan.unreadable):
                others = f"; found {len(unsupported)} file(s) of other types: " + ", ".join(
                    os.path.relpath(u, root) for u in unsupported[:UNSUPPORTED_EXAMPLES]) if unsupported else ""
                raise DataError(f"{what}: no supported data file under {raw} "
                                f"(looked for {', '.join(SUFFIXES)}, recursively{others})")
        for full, rel, st in candidates:
            real = os.path.realpath(full)
            if real in seen:  # the same file through two of the given paths: read it once
                logger.warning("%s: %s is already among the inputs; reading it once", what, full)
                continue
            seen.add(real)
            fmt, comp = ("arrow", None) if shards is not None else _classify(full)
            scan.files.append(SourceFile(full, rel.replace(os.sep, "/"), st.st_size, st.st_mtime_ns, fmt, comp))
    if scan.unsupported:
        names = ", ".join(scan.unsupported[:UNSUPPORTED_EXAMPLES])
        more = f" and {len(scan.unsupported) - UNSUPPORTED_EXAMPLES} more" if len(scan.unsupported) > \
            UNSUPPORTED_EXAMPLES else ""
        logger.warning("%s: %d file(s) are not read, their type is not supported: %s%s. Read are %s; convert "
                       "them (e.g. decompress .bz2/.xz and compress with gzip or zstd; CSV to JSON lines) or move "
                       "them out of the input directories.", what, len(scan.unsupported), names, more,
                       ", ".join(SUFFIXES))
    if not scan.files and scan.unreadable:
        raise DataError(f"{what}: no readable data file (skipped as unreadable: {', '.join(scan.unreadable[:5])})")
    return scan


DATASET_STATE = "state.json"   # what `datasets.Dataset.save_to_disk` writes next to its Arrow shards


def dataset_shards(path: str) -> Optional[list]:
    """The Arrow shard files of a dataset saved with `datasets.Dataset.save_to_disk` (a directory with
    state.json listing `_data_files`), in order; None when `path` is not one. A DatasetDict directory
    (dataset_dict.json) holds one such directory per split: see `dataset_splits`."""
    state = os.path.join(path, DATASET_STATE)
    if not os.path.isfile(state):
        return None
    try:
        with open(state, encoding="utf-8") as fh:
            files = json.load(fh).get("_data_files")
    except (OSError, ValueError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, dict) and "filename" in f for f in files):
        return None
    return [os.path.join(path, f["filename"]) for f in files]


def dataset_splits(path: str, what: str = "--dataset_name") -> dict:
    """{split name: directory} of a local dataset directory: a DatasetDict saved with save_to_disk
    (dataset_dict.json lists the splits), or a single saved Dataset (its split is "train").

        my_dataset/dataset_dict.json  {"splits": ["train", "validation"]}
        my_dataset/train/state.json, data-00000-of-00001.arrow, ...   -> {"train": ".../train",
        my_dataset/validation/...                                          "validation": ".../validation"}
    """
    if dataset_shards(path) is not None:
        return {"train": path}
    index = os.path.join(path, "dataset_dict.json")
    if not os.path.isfile(index):
        raise DataError(f"{what}: {path} is not a saved dataset directory (no dataset_dict.json or state.json; "
                        "write one with datasets' save_to_disk, or give its files with --train_file_dir)")
    with open(index, encoding="utf-8") as fh:
        splits = json.load(fh).get("splits") or []
    out = {name: os.path.join(path, name) for name in splits if dataset_shards(os.path.join(path, name))}
    if "train" not in out:
        raise DataError(f"{what}: {path} has no train split (splits: {', '.join(splits) or 'none'})")
    return out


def hub_dataset_dir(name: str, config: Optional[str], cache_dir: str, token: Optional[str] = None,
                    revision: Optional[str] = None, timeout_s: float = 7200.0) -> str:
    """A dataset of the HuggingFace hub as a local dataset directory (`dataset_splits` reads it):
    downloaded with `datasets.load_dataset` (its own cache under cache_dir/hf_datasets) and saved with
    save_to_disk into cache_dir/datasets/<name>[--<config>], once: the first local rank of each node
    writes it (into a temporary directory, renamed when complete), the others wait for it."""
    import re
    import time

    safe = re.sub(r"[^A-Za-z0-9._-]+", "--", name + (f"--{config}" if config else ""))
    out = os.path.join(cache_dir, "datasets", safe)
    if os.path.isdir(out):
        return out
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        import datasets

        logger.info("--dataset_name %s%s: downloading with datasets.load_dataset, saving to %s", name,
                    f" ({config})" if config else "", out)
        try:
            loaded = datasets.load_dataset(name, config, cache_dir=os.path.join(cache_dir, "hf_datasets"),
                                           token=token, revision=revision)
        except Exception as e:
            raise DataError(f"--dataset_name {name}: cannot load it from the hub ({type(e).__name__}: {e})") from None
        tmp = f"{out}.tmp.{os.getpid()}"
        loaded.save_to_disk(tmp)
        try:
            os.replace(tmp, out)
        except OSError:  # another node wrote it first (shared filesystem)
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        return out
    deadline = time.time() + timeout_s
    while not os.path.isdir(out):
        if time.time() > deadline:
            raise DataError(f"--dataset_name {name}: waited {timeout_s:.0f} s for local rank 0 to save it to {out}")
        time.sleep(1.0)
    return out


def _walk(root, folder, ancestors, visited, candidates, unsupported, cannot_read, readable) -> None:
    """Depth-first: the files of `folder` (sorted), then its subdirectories (sorted), recursively."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        cannot_read(folder, "directory", e)
        return
    subdirs = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        full = os.path.join(folder, entry.name)
        try:
            st = os.stat(full)  # follows links: ELOOP or ENOENT for a looping or broken link
        except OSError as e:
            cannot_read(full, "file", e)
            continue
        if stat.S_ISDIR(st.st_mode):
            subdirs.append(full)
        elif stat.S_ISREG(st.st_mode) and _classify(entry.name) is not None:
            if readable(full):
                candidates.append((full, os.path.relpath(full, root), st))
        else:
            unsupported.append(full)
    visited.add(ancestors[-1])
    for sub in subdirs:
        real = os.path.realpath(sub)
        if real in ancestors:
            logger.warning("%s is a link back to %s, which is being searched: not searched again", sub, real)
            continue
        if real in visited:
            logger.warning("%s leads to %s, searched already: not searched again", sub, real)
            continue
        _walk(root, sub, ancestors + [real], visited, candidates, unsupported, cannot_read, readable)


def find_files(paths, what: str = "--train_file_dir", skip_bad: bool = False,
               skipped: Optional[SkipCounter] = None) -> list[SourceFile]:
    """The files `scan_inputs` finds (see there); unsupported files are reported in a warning."""
    return scan_inputs(paths, what, skip_bad, skipped).files


UNITS_PER_WORKER = 4   # units each worker gets at least (when the data allows), see plan_units


def plan_units(files: list[SourceFile], target_bytes: int = 32 << 20, min_units: int = 1,
               workers: int = 0) -> list[WorkUnit]:
    """Split files into work units of roughly `target_bytes`, at least `min_units` of them, and at least
    `UNITS_PER_WORKER` per worker when `workers` (all ranks' worker processes together) is given, when
    the files allow.

    Small files are whole units; large uncompressed line-based files are cut into byte ranges of equal
    size. Units stay in file order (the store's token stream is the units' in order, so it is the same
    for any number of units); `order_largest_first` says in which order to hand them out. Several
    units per worker, each at most 1/(4 * workers) of the bytes, handed out largest first, keep every
    worker busy until at most one small unit's time before the end (greedy largest-first scheduling);
    with one unit per worker, files of unequal size leave workers idle for most of the build.
    Worked example: files of 60, 30 and 10 MB for 2 workers: at least 8 units of at most 12.5 MB:
    60 -> 5 x 12 MB, 30 -> 3 x 10 MB, 10 -> 1 x 10 MB, 9 units, every worker busy to the last.
    The plan depends only on the files and the numbers, so every rank computes the same one.
    """
    total = sum(f.size for f in files)
    min_units = max(min_units, UNITS_PER_WORKER * workers)
    if min_units > 1 and total > 0:
        target_bytes = max(1, min(target_bytes, -(-total // min_units)))
    units: list[WorkUnit] = []
    for f in files:
        if f.splittable and f.fmt != "json" and f.size > target_bytes:
            n = -(-f.size // target_bytes)
            step = -(-f.size // n)
            for start in range(0, f.size, step):
                units.append(WorkUnit(f, start, min(f.size, start + step)))
        else:
            units.append(WorkUnit(f))
    return units


def order_largest_first(units: list[WorkUnit], indices=None) -> list[int]:
    """Indices of `units` (or of those in `indices`) by size, largest first (ties in plan order): the
    order to hand units to a pool of workers, so the last ones to start are the small ones."""
    indices = range(len(units)) if indices is None else indices
    return sorted(indices, key=lambda i: (-units[i].nbytes, i))


def share_units(units: list[WorkUnit], world: int) -> list[list[int]]:
    """Unit indices for each of `world` ranks, by bytes: largest first, each to the rank with the fewest
    bytes so far (ties to the lower rank); each rank's list is largest first. Deterministic, so every
    rank computes the same shares without talking to the others."""
    shares: list[list[int]] = [[] for _ in range(max(1, world))]
    load = [0] * len(shares)
    for i in order_largest_first(units):
        r = min(range(len(shares)), key=lambda k: (load[k], k))
        shares[r].append(i)
        load[r] += units[i].nbytes
    return shares


def doc_hash(relpath: str, key: int) -> int:
    """A stable 32-bit hash of a document's origin, the same on every path and machine."""
    return zlib.crc32(f"{relpath}:{key}".encode("utf-8"))


def doc_hashes(relpath: str, keys: list[int]) -> list[int]:
    """`doc_hash` of each key (one crc32 of the shared prefix, continued per key)."""
    prefix = zlib.crc32(f"{relpath}:".encode("utf-8"))
    return [zlib.crc32(b"%d" % key, prefix) for key in keys]


def _open_binary(f: SourceFile):
    if f.compression == "gz":
        return gzip.open(f.path, "rb")
    if f.compression == "zst":
        import zstandard
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(f.path, "rb"),
                                                                            read_across_frames=True), 1 << 20)
    return open(f.path, "rb")


def _read_errors() -> tuple:
    """What reading a (compressed) file can raise besides DataError."""
    errors: tuple = (OSError, EOFError, ValueError)
    try:
        import zstandard

        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors


_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BOMS = [  # longest first: the UTF-32 little-endian mark begins with the UTF-16 one
    (b"\xff\xfe\x00\x00", "UTF-32 (little-endian)", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)", "UTF-32"),
    (b"\xff\xfe", "UTF-16 (little-endian)", "UTF-16"), (b"\xfe\xff", "UTF-16 (big-endian)", "UTF-16"),
]
SNIFF_BYTES = 1024


def _is_zstd(magic: bytes) -> bool:
    # a zstd frame, or a skippable frame (magic 0x184D2A50 to 0x184D2A5F, little-endian)
    return magic == _ZSTD_MAGIC or (len(magic) == 4 and magic[1:] == b"\x2a\x4d\x18" and 0x50 <= magic[0] <= 0x5F)


def text_encoding_problem(head: bytes) -> Optional[tuple[str, str]]:
    """(encoding found, iconv name) when the first bytes of a text file show it is not UTF-8: a
    UTF-16/UTF-32 byte-order mark, or NUL bytes (UTF-16/32 without a mark, or binary data)."""
    for bom, name, iconv in _BOMS:
        if head.startswith(bom):
            return f"{name} text (it starts with the byte-order mark {bom.hex(' ')})", iconv
    if b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    if odd and odd.count(0) > len(odd) // 2 and even.count(0) == 0:
        return "UTF-16 (little-endian) text without a byte-order mark (NUL bytes at every other position)", "UTF-16LE"
    if even and even.count(0) > len(even) // 2 and odd.count(0) == 0:
        return "UTF-16 (big-endian) text without a byte-order mark (NUL bytes at every other position)", "UTF-16BE"
    return "binary data or UTF-16/UTF-32 text (it holds NUL bytes in its first KB)", None


def file_problem(f: SourceFile) -> Optional[tuple[str, str]]:
    """(reason, message) when `f` cannot be read as what its name says, from its first bytes: a
    `.gz`/`.zst` that is not gzip/zstd (`bad_compression`), text that is not UTF-8 (`not_utf8_file`).
    None when it looks right (other damage is found while reading it). Parquet files are not checked
    here (pyarrow names a bad one)."""
    if f.fmt in ("parquet", "arrow"):
        return None
    with open(f.path, "rb") as fh:
        magic = fh.read(4)
    kinds = {"gz": ("gzip", lambda m: m[:2] == _GZIP_MAGIC), "zst": ("zstd", _is_zstd)}
    if f.compression in kinds:
        name, ok = kinds[f.compression]
        if magic and not ok(magic):
            return "bad_compression", (
                f"not a {name} file: its name ends in .{f.compression}, but it starts with the bytes "
                f"{magic.hex(' ')}. Rename it to what it holds (e.g. drop .{f.compression} if it is plain text) "
                f"or compress it with {name}")
    try:
        with _open_binary(f) as fh:
            head = fh.read(SNIFF_BYTES)
    except _read_errors():
        return None  # a damaged compressed file: reading it names the error
    found = text_encoding_problem(head)
    if found is None:
        return None
    what, iconv = found
    if iconv is None:
        fix = "convert it to UTF-8 text, or remove it from the inputs"
    elif f.compression:
        fix = (f"decompress it and convert it to UTF-8 (e.g. iconv -f {iconv} -t UTF-8 FILE > FILE.utf8), then use "
               "the converted file instead")
    else:
        fix = f"convert it: iconv -f {iconv} -t UTF-8 {f.path} > {f.path}.utf8, and use the converted file instead"
    return "not_utf8_file", f"the file is {what}, not UTF-8: {fix}"


def _line_number(path: str, offset: int) -> int:
    """1-based number of the line starting at byte `offset` (counted only when an error is reported)."""
    count = 1
    with open(path, "rb") as fh:
        remaining = offset
        while remaining > 0:
            chunk = fh.read(min(remaining, 1 << 24))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count


def batched(pairs: Iterator[tuple[int, object]], n: int = 1024) -> Iterator[tuple[list[int], list]]:
    """(keys, records) lists of up to `n` from (key, record) pairs."""
    keys: list[int] = []
    records: list = []
    for key, record in pairs:
        keys.append(key)
        records.append(record)
        if len(keys) >= n:
            yield keys, records
            keys, records = [], []
    if keys:
        yield keys, records


class RecordReader:
    """Reads the documents of one work unit as `(key, text)` pairs.

    With `text_field=None` it yields whole records instead, `(key, dict)` (a JSON object, or a parquet
    row as a dict of its columns), for callers that validate records themselves (SFT conversations);
    only "is it a JSON object" is checked here then.

    Bad input raises `DataError("<file>:<line>: <what>")`; with `skip_bad=True` it is counted in
    `self.skipped` instead. Empty lines and empty texts are never errors: they are counted as
    `empty_line` / `empty_text` and skipped.
    """

    def __init__(self, unit: WorkUnit, text_field: Optional[str] = "text", skip_bad: bool = False,
                 max_chars: Optional[int] = None, skipped: Optional[SkipCounter] = None):
        self.unit = unit
        self.text_field = text_field
        self.skip_bad = skip_bad
        self.max_chars = max_chars
        self.skipped = skipped if skipped is not None else SkipCounter()
        self.bytes_read = 0
        self.block_reading = True   # False: line by line (the reference the block path is tested against)

    def _wanted(self, key: int) -> bool:
        u = self.unit
        if u.skip_before is not None and key < u.skip_before:
            return False
        return u.stride == 1 or zlib.crc32(f"{key}@{u.file.relpath}".encode()) % u.stride == u.phase

    # -- error handling -------------------------------------------------------------------------
    def _where(self, key: int, how: str) -> str:
        """`how`: 'offset' (key is the line's byte offset), 'line' (0-based line) or 'row' (0-based row)."""
        path = self.unit.file.path
        if how == "offset":
            return f"{path}:{_line_number(path, key)}"
        return f"{path}:{key + 1}" if how == "line" else f"{path}: row {key + 1}"

    def _bad(self, reason: str, message: str, key: int, how: str = "offset") -> None:
        if not self.skip_bad:
            raise DataError(f"{self._where(key, how)}: {message} (pass --skip_bad_lines to skip and count such lines)")
        # the line number costs a scan of the file: only for the few examples kept for the log
        self.skipped.add(reason, self._where(key, how) if len(self.skipped.examples) < 20 else "")

    def _check_text(self, text, key: int, how: str) -> Optional[str]:
        if text is None or (isinstance(text, str) and not text.strip()):
            self.skipped.add("empty_text")
            return None
        if not isinstance(text, str):
            self._bad("not_a_string", f"field {self.text_field!r} is {type(text).__name__}, not a string",
                      key, how)
            return None
        if self.max_chars is not None and len(text) > self.max_chars:
            self._bad("too_long", f"document of {len(text):,} characters is over --max_document_chars "
                      f"{self.max_chars:,}", key, how)
            return None
        return text

    def _from_record(self, obj, key: int, how: str) -> Optional[str]:
        if not isinstance(obj, dict):
            wanted = f" with a {self.text_field!r} field" if self.text_field is not None else ""
            self._bad("not_an_object", f"expected a JSON object{wanted}, got {type(obj).__name__}", key, how)
            return None
        if self.text_field is None:  # whole records: the caller validates them
            return obj
        if self.text_field not in obj:
            self._bad("missing_field", f"missing field {self.text_field!r} (fields: {', '.join(list(obj)[:8])}; "
                      "set --text_field)", key, how)
            return None
        text = obj[self.text_field]
        at = blocks.lone_surrogate(text) if isinstance(text, str) else None
        if at is not None:
            self._bad("lone_surrogate", f"the text holds a lone surrogate escape (\\u{ord(text[at]):04x}) at "
                      f"character {at}, which is not a character: fix the escape", key, how)
            return None
        return self._check_text(text, key, how)

    # -- reading ------------------------------------------------------------------------------------
    def _empty(self) -> None:
        f = self.unit.file
        if not self.skip_bad:
            raise DataError(f"{f.path}: file is empty (pass --skip_bad_lines to skip and count empty files)")
        self.skipped.add("empty_file", f.path)

    def _check_file(self) -> bool:
        """False (after counting it) when the whole file is skipped; raises without skip_bad."""
        f, u = self.unit.file, self.unit
        problem = file_problem(f)
        if problem is None:
            return True
        reason, message = problem
        if not self.skip_bad:
            raise DataError(f"{f.path}: {message} (with --skip_bad_lines the whole file is skipped and counted "
                            f"as {reason})")
        if u.start == 0 and u.phase == 0:  # once per file, by the reader of its first part
            logger.warning("%s: %s; skipped (--skip_bad_lines), counted as %s", f.path, message, reason)
            self.skipped.add(reason, f.path)
        return False

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for keys, records in self._read(whole_batches=False):
            yield from zip(keys, records)

    def batches(self) -> Iterator[tuple[list[int], list]]:
        """The unit's documents as (keys, records) lists, in file order: what iterating the reader
        yields, a block of an uncompressed or compressed line file at a time (`line_blocks`: up to
        1 MiB; a record per list where a block goes line by line, and for units with a stride or a
        resume key), 1,024 rows of a parquet file or JSON array."""
        return self._read(whole_batches=True)

    def _read(self, whole_batches: bool) -> Iterator[tuple[list[int], list]]:
        f = self.unit.file
        if f.size == 0:
            self._empty()
            return
        try:
            if not self._check_file():
                return
            if f.fmt in ("parquet", "arrow") or (f.fmt == "json" and self._is_json_array()):
                pairs = self._parquet() if f.fmt in ("parquet", "arrow") else self._json_array()
                # one record at a time unless whole lists are asked for: a bad record further on is
                # then reported after the records before it were used, as they come
                yield from (batched(pairs) if whole_batches else (([k], [r]) for k, r in pairs))
            else:
                yield from self._lines()
        except DataError:
            raise
        except _read_errors() as e:  # truncated .gz/.zst, unreadable parquet, I/O errors
            raise DataError(f"{f.path}: cannot read the file ({type(e).__name__}: {e}); after "
                            f"{self.bytes_read:,} bytes") from None

    def _is_json_array(self) -> bool:
        """A .json file is one JSON document (an array, or a pretty-printed {"data": [...]}) or JSON lines."""
        if self.unit.start > 0:
            return False
        with _open_binary(self.unit.file) as fh:
            first = fh.readline()
            while first and not first.strip():
                first = fh.readline()
        first = first.lstrip(b"\xef\xbb\xbf").strip()
        if first.startswith(b"["):
            return True
        # JSON lines start with a whole object per line; a single document opens with a bare "{" line
        return first == b"{" or (first.startswith(b'{"data"') and not first.endswith(b"}"))

    def _lines(self) -> Iterator[tuple[list[int], list]]:
        f, unit = self.unit.file, self.unit
        compressed = f.compression is not None
        how = "line" if compressed else "offset"  # keys: line numbers (0-based) or byte offsets of lines
        with _open_binary(f) as fh:
            pos = unit.start
            if unit.start > 0:
                fh.seek(unit.start - 1)
                pos = unit.start - 1 + len(fh.readline())  # finish the line that began before this unit
            end = unit.end if unit.end is not None else float("inf")
            if unit.stride == 1 and unit.skip_before is None and self.block_reading:
                lines_read = yield from self._line_blocks(fh, pos, end, how)
            else:
                lines_read = yield from self._each_line(fh, pos, end, how)
            if lines_read == 0 and unit.start == 0:  # a compressed file that holds nothing
                self._empty()

    def _line_blocks(self, fh, pos: int, end: float, how: str) -> Iterator[tuple[list[int], list]]:
        """Whole blocks of plain good lines at once; any other block line by line (`line_blocks`)."""
        is_json = self.unit.file.fmt in ("jsonl", "json")
        index = 0
        for starts, lines, has_nul in blocks.line_blocks(fh, pos, end, blocks.BLOCK_BYTES):
            self.bytes_read += sum(map(len, lines)) + len(lines)
            keys = starts if how == "offset" else list(range(index, index + len(lines)))
            file_start = keys[0] == 0
            index += len(lines)
            plain = None if has_nul else blocks.plain_records(lines, is_json, self.text_field, self.max_chars, file_start)
            if plain is not None:
                kept, records, blank = plain
                if blank:
                    self.skipped.add("empty_line", n=blank)
                yield (keys if kept is None else [keys[i] for i in kept]), records
                continue
            for i, (key, line) in enumerate(zip(keys, lines)):   # one at a time, as the per-line reader
                record = self._line(line, key, how, file_start and i == 0)
                if record is not None:
                    yield [key], [record]
        return index

    def _each_line(self, fh, pos: int, end: float, how: str) -> Iterator[tuple[list[int], list]]:
        """Line by line, for units that keep every stride-th record or skip to a key (resuming)."""
        index = 0
        while pos < end:
            line = fh.readline()
            if not line:
                break
            key = index if how == "line" else pos
            first = pos == 0
            pos += len(line)
            index += 1
            self.bytes_read += len(line)
            if not self._wanted(key):
                continue
            record = self._line(line, key, how, first)
            if record is not None:
                yield [key], [record]
        return index

    def _line(self, line: bytes, key: int, how: str, file_start: bool):
        """The record of one line (with or without its newline), or None when it is skipped or bad."""
        if b"\x00" in line:  # never text: UTF-16/32 or binary data
            self._bad("nul_bytes", "NUL bytes in the line: the file is binary data or UTF-16/UTF-32 text, "
                      "not UTF-8 (convert it with iconv)", key, how)
            return None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            self._bad("bad_utf8", f"invalid UTF-8 at byte {e.start} of the line", key, how)
            return None
        text = text.rstrip("\r\n")
        if file_start:
            text = text.lstrip("\ufeff")
        if not text.strip():
            self.skipped.add("empty_line")
            return None
        if self.unit.file.fmt not in ("jsonl", "json"):
            return self._check_text(text, key, how)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            self._bad("malformed_json", f"malformed JSON ({e.msg} at column {e.colno})", key, how)
            return None
        return self._from_record(obj, key, how)

    def _json_array(self) -> Iterator[tuple[int, str]]:
        f = self.unit.file
        with _open_binary(f) as fh:
            raw = fh.read()
        self.bytes_read += len(raw)
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as e:
            raise DataError(f"{f.path}: invalid UTF-8 at byte {e.start}") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{f.path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(f"{f.path}: expected a JSON array of objects or JSON lines")
        for i, obj in enumerate(data):
            if not self._wanted(i):
                continue
            text = self._from_record(obj, i, how="row")
            if text is not None:
                yield i, text

    def _parquet(self) -> Iterator[tuple[int, str]]:
        import pyarrow.parquet as pq

        f = self.unit.file
        whole = self.text_field is None  # whole rows, as dicts of their columns
        try:
            if f.fmt == "arrow":  # an Arrow stream shard of a saved `datasets` dataset
                import pyarrow as pa

                stream = pa.ipc.open_stream(pa.memory_map(f.path))
                names = stream.schema.names
                batches = (b if whole else b.select([self.text_field]) for b in stream
                           if whole or self.text_field in names)
            else:
                pf = pq.ParquetFile(f.path)
                names = pf.schema_arrow.names
                batches = pf.iter_batches(batch_size=4096, columns=None if whole else [self.text_field])
        except Exception as e:
            raise DataError(f"{f.path}: not a readable {f.fmt} file ({e})") from None
        if self.text_field is not None and self.text_field not in names:
            raise DataError(f"{f.path}: no column {self.text_field!r} (columns: {', '.join(names)}; "
                            "set --text_field)")
        row = 0
        for batch in batches:
            if self.unit.skip_before is not None and row + batch.num_rows <= self.unit.skip_before:
                row += batch.num_rows
                continue
            for value in batch.to_pylist() if whole else batch.column(0).to_pylist():
                text = (value if whole else self._check_text(value, row, how="row")) if self._wanted(row) else None
                if text is not None:
                    yield row, text
                row += 1
        self.bytes_read += f.size
