#!/usr/bin/env python
"""Where a token-store worker's time goes under a fast backend: the steps of `documents.flat_documents` +
`builder.build_unit` timed one by one over every work unit of a corpus (reading and parsing a block,
origin hashes, the backend's flat encode, choosing and running the HF recheck, framing BOS/EOS, writing),
then the real `build_unit` over the same units, in one process with one thread (as a worker runs).

    python benchmarks/build_split.py --tokenizer /tmp/medtrain-bench/qwen151k-dir \
        --corpus /tmp/medtrain-bench/lang-100MB [--backend fastokens]

Prints seconds per step and the encode's share of the total: issue 14's (a) for one worker, without
the fixed costs of a run. `floor` is what decoding the same lines' UTF-8 alone costs (the least any
reader that hands str objects to the tokenizer must spend).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")   # one thread, as a store worker runs
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--backend", default="fastokens")
    args = ap.parse_args(argv)
    from dataclasses import replace

    from medtrain.data import tokenization as T
    from medtrain.data.sources import RecordReader, SkipCounter, doc_hashes, find_files, plan_units
    from medtrain.data.token_store.builder import build_unit
    from medtrain.data.tokenizer_backends import _Slices, recheck_by_origin

    enc = T.TextEncoder(replace(T.load_tokenizer_spec(args.tokenizer), backend=args.backend))
    tok = enc.tokenizer
    checked = tok.backend if hasattr(tok.backend, "recheck") else None   # None under hf: nothing rechecked
    if checked is not None:
        checked.reference                              # HF loaded before the clock, as workers inherit it
    raw = checked.backend if checked is not None else tok.backend
    units = plan_units(find_files([args.corpus]), workers=1)
    mb = sum(u.nbytes for u in units) / 1e6
    steps = dict.fromkeys(["read", "hash", "encode", "recheck_pick", "recheck_hf", "frame", "write"], 0.0)
    work = tempfile.mkdtemp(prefix="medtrain-split-")
    docs = 0
    with open(os.path.join(work, "tokens"), "wb") as out:
        t_all = time.perf_counter()
        for u in units:
            batches = RecordReader(u, "text", skipped=SkipCounter()).batches()
            while True:
                t0 = time.perf_counter()
                try:
                    keys, texts = next(batches)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                origins = doc_hashes(u.file.relpath, keys)
                t2 = time.perf_counter()
                ids, offsets = raw.encode_batch_flat(texts)
                t3 = time.perf_counter()
                picked = recheck_by_origin(origins, checked.every, checked.seed) if checked else []
                t4 = time.perf_counter()
                if checked is not None:
                    checked.recheck(texts, _Slices(ids, offsets), picked)
                t5 = time.perf_counter()
                framed, _ = tok._framed(ids, offsets)
                t6 = time.perf_counter()
                out.write(framed.data)
                t7 = time.perf_counter()
                for name, a, b in [("read", t0, t1), ("hash", t1, t2), ("encode", t2, t3), ("recheck_pick", t3, t4),
                                   ("recheck_hf", t4, t5), ("frame", t5, t6), ("write", t6, t7)]:
                    steps[name] += b - a
                docs += len(texts)
        total = time.perf_counter() - t_all
    t = time.perf_counter()
    for path in sorted({u.file.path for u in units}):
        with open(path, "rb") as fh:
            [line.decode() for line in fh.read().split(b"\n")]
    floor = time.perf_counter() - t
    os.makedirs(os.path.join(work, "units"))
    t = time.perf_counter()
    for i, u in enumerate(units):
        build_unit(work, i, u, enc, False, None)
    build = time.perf_counter() - t
    shutil.rmtree(work, ignore_errors=True)
    print(f"{mb:.1f} MB, {docs:,} documents, {len(units)} units, backend {args.backend}")
    print("seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in steps.items()) + f"; steps total {total:.3f}")
    print(f"floor (UTF-8 decode of the lines alone) {floor:.3f}; build_unit {build:.3f} ({mb / build:.0f} MB/s); "
          f"encode {steps['encode']:.3f} ({mb / steps['encode']:.0f} MB/s); encode / build_unit = "
          f"{steps['encode'] / build:.2f}; encode / (encode + floor) = {steps['encode'] / (steps['encode'] + floor):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
