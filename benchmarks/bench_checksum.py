"""What a content checksum of every checkpoint file costs (the completion marker's, see
medtrain/resilience/checkpoints.py): blake2b (hashlib) against xxhash's xxh3_128 and xxh64, each
streaming the file in 8 MB chunks, and a plain read for the I/O part alone.

A checkpoint-like set of files (`--size` in all, split as `--files` files) is written once under
`--work`; each candidate hashes it `--repeat` times. The files are read back from the page cache (the
situation at save time, right after writing them; a cold read from disk adds the disk's own
time, the same for every algorithm), so the numbers are the CPU cost of the hash. `--threads N` also
times the marker's own function (`checkpoints.file_checksums`, files hashed by N threads).

    python benchmarks/bench_checksum.py --size 4GB --files 4 --work /tmp/medtrain-bench/ckpt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHUNK = 8 << 20


def parse_size(text: str) -> int:
    units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    for unit, mult in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * mult)
    return int(text)


def make_files(work: str, size: int, n: int) -> list[str]:
    os.makedirs(work, exist_ok=True)
    paths = []
    per = size // n
    for i in range(n):
        path = os.path.join(work, f"shard{i}.bin")
        if not os.path.exists(path) or os.path.getsize(path) != per:
            with open(path, "wb") as fh:
                left = per
                while left:
                    block = os.urandom(min(CHUNK, left))  # incompressible, like trained weights
                    fh.write(block)
                    left -= len(block)
        paths.append(path)
    return paths


def stream(path: str, new):
    h = new() if new is not None else None
    with open(path, "rb", buffering=0) as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            if h is not None:
                h.update(block)
    return h.hexdigest() if h is not None else None


def candidates() -> dict:
    out = {"read only": None, "blake2b": hashlib.blake2b, "sha256": hashlib.sha256}
    try:
        import xxhash

        out["xxh3_128"] = xxhash.xxh3_128
        out["xxh64"] = xxhash.xxh64
    except ImportError:
        print("xxhash is not installed: only hashlib's algorithms are measured")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2GB")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/medtrain-bench/ckpt")
    ap.add_argument("--keep", action="store_true", help="keep the files for another run")
    args = ap.parse_args()
    size = parse_size(args.size)
    paths = make_files(args.work, size, args.files)
    total = sum(os.path.getsize(p) for p in paths)
    gb = total / (1 << 30)
    results = {}
    for name, new in candidates().items():
        best_wall, best_cpu = float("inf"), float("inf")
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            for p in paths:
                stream(p, new)
            best_wall = min(best_wall, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        results[name] = {"s_per_GB": round(best_wall / gb, 3), "GB_per_s": round(gb / best_wall, 2),
                         "cpu_s_per_GB": round(best_cpu / gb, 3)}
    from medtrain.resilience import checkpoints

    rel = {os.path.basename(p): os.path.getsize(p) for p in paths}
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        checkpoints.file_checksums(args.work, sorted(rel), threads=args.threads)
        best = min(best, time.perf_counter() - t0)
    results[f"file_checksums ({checkpoints.CHECKSUM_ALGORITHM}, {args.threads} threads)"] = {
        "s_per_GB": round(best / gb, 3), "GB_per_s": round(gb / best, 2)}
    print(f"{total / (1 << 30):.2f} GiB in {len(paths)} files, best of {args.repeat}, page cache warm")
    print(f"{'algorithm':<40} {'s/GB':>8} {'GB/s':>8} {'CPU s/GB':>9}")
    for name, r in results.items():
        print(f"{name:<40} {r['s_per_GB']:>8} {r['GB_per_s']:>8} {r.get('cpu_s_per_GB', '-'):>9}")
    print(json.dumps(results))
    if not args.keep:
        for p in paths:
            os.remove(p)


if __name__ == "__main__":
    main()
