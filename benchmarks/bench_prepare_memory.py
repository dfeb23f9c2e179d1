#!/usr/bin/env python
"""Peak memory and time of `prepare_data.py` at two commits, in one run: each tree's prepare_data.py
under `--tokenizer_backend hf` and `auto`, 2 workers, fresh output each time; the figures are each
store's own (manifest: peak RSS per worker; ranks/0.json: the rank's process, build seconds).

    git worktree add /tmp/medtrain-before b13e5a3
    python benchmarks/bench_prepare_memory.py --tree /tmp/medtrain-before --tree . \
        --tokenizer /tmp/medtrain-bench/qwen151k-dir --corpus /tmp/medtrain-bench/lang-30MB
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", action="append", required=True, help="a checkout of medtrain; repeatable")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--num_proc", type=int, default=2)
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="medtrain-mem-")
    print("| tree | commit | backend | wall s | build s | peak RSS per worker MB | rank process peak MB |")
    print("|---|---|---|---|---|---|---|")
    for tree in args.tree:
        tree = os.path.abspath(tree)
        commit = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        for backend in ("hf", "auto"):
            out = os.path.join(work, "store")
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.time()
            subprocess.run([sys.executable, os.path.join(tree, "prepare_data.py"), "--tokenizer_name_or_path",
                            args.tokenizer, "--train_file_dir", args.corpus, "--output_dir", out, "--num_proc",
                            str(args.num_proc), "--tokenizer_backend", backend], cwd=tree, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.time() - t0
            manifest = json.load(open(os.path.join(out, "manifest.json")))
            rank = json.load(open(os.path.join(out, "ranks", "0.json")))
            print(f"| {tree} | {commit} | {backend} | {wall:.1f} | {rank['seconds']:.1f} | "
                  f"{manifest['peak_rss_mb_per_worker']} | {rank['peak_rss_mb']} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
