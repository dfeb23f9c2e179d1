#!/usr/bin/env python
"""Where a token-store worker's time goes under a fast backend: reading and parsing the records alone,
the backend's flat encode alone, and the whole `build_unit`, on the same work units, in one process
with one thread (as a worker runs).

    python benchmarks/build_split.py --tokenizer /tmp/medtrain-bench/qwen151k-dir \
        --corpus /tmp/medtrain-bench/lang-100MB [--units 4] [--backend fastokens]

Prints MB/s of each and the ratio encode / build (issue 14's (a) for one worker, without the fixed
costs of a run).
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
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--units", type=int, default=4)
    ap.add_argument("--backend", default="fastokens")
    args = ap.parse_args(argv)
    from dataclasses import replace

    from medtrain.data import tokenization as T
    from medtrain.data.sources import RecordReader, find_files, plan_units
    from medtrain.data.token_store.builder import build_unit

    enc = T.TextEncoder(replace(T.load_tokenizer_spec(args.tokenizer), backend=args.backend))
    backend = enc.tokenizer.backend
    getattr(backend, "reference", None)            # HF loaded before the clock, as workers inherit it
    units = plan_units(find_files([args.corpus]), workers=2)[:args.units]
    mb = sum(u.nbytes for u in units) / 1e6
    t = time.time()
    texts = [r for u in units for _, r in RecordReader(u, "text")]
    read = time.time() - t
    raw = getattr(backend, "backend", backend)
    t = time.time()
    for i in range(0, len(texts), 400):
        raw.encode_batch_flat(texts[i:i + 400])
    encode = time.time() - t
    work = tempfile.mkdtemp(prefix="medtrain-split-")
    os.makedirs(os.path.join(work, "units"))
    t = time.time()
    for i, u in enumerate(units):
        build_unit(work, i, u, enc, False, None)
    build = time.time() - t
    shutil.rmtree(work, ignore_errors=True)
    print(f"{mb:.1f} MB, {len(texts):,} documents: read {read:.2f} s ({mb / read:.0f} MB/s), encode {encode:.2f} s "
          f"({mb / encode:.0f} MB/s), build_unit {build:.2f} s ({mb / build:.0f} MB/s); encode / build = "
          f"{encode / build:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
