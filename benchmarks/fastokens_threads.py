#!/usr/bin/env python
"""How many cores fastokens' batch encode uses: wall and CPU seconds of one process encoding the same
documents with FASTOKENS_BPE_THREADS unset (its default: a BPE thread per core) and set to 1, each in a
fresh process with RAYON_NUM_THREADS=1 (which does not hold fastokens to one thread).

    python benchmarks/fastokens_threads.py --tokenizer /tmp/medtrain-bench/qwen151k-dir \
        --corpus /tmp/medtrain-bench/synth-100MB [--limit 25MB]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = r"""
import json, os, resource, sys, time
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from bench_tokenize import batches, load_docs
from medtrain.data.tokenizer_backends import load_backend
backend = load_backend("fastokens", open(os.path.join(sys.argv[1], "tokenizer.json")).read())
work = batches(load_docs(sys.argv[2], int(sys.argv[5])), 1 << 20)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
for b in work:
    backend.encode_batch_flat(b)
wall, r1 = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "cpu_s": r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True, help="a directory with tokenizer.json")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--limit", default="25MB")
    args = ap.parse_args(argv)
    limit = int(float(args.limit.upper().rstrip("MB")) * 1e6)
    for threads in (None, "1"):
        env = {k: v for k, v in os.environ.items() if k != "FASTOKENS_BPE_THREADS"}
        env["RAYON_NUM_THREADS"] = "1"
        if threads:
            env["FASTOKENS_BPE_THREADS"] = threads
        out = subprocess.run([sys.executable, "-c", CHILD, args.tokenizer, args.corpus, HERE, os.path.dirname(HERE),
                              str(limit)], env=env, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"FASTOKENS_BPE_THREADS={threads or 'unset'}: wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s, "
              f"CPU / wall {r['cpu_s'] / r['wall_s']:.2f}, {limit / 1e6 / r['wall_s']:.0f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
