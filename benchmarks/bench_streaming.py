#!/usr/bin/env python
"""Benchmark of the streaming path: time to the first batch, steady throughput, peak memory, and the
cost of resuming at an early and a late step, on one corpus.

    python benchmarks/bench_streaming.py --corpus /tmp/medtrain-bench/corpus-100MB \
        --tokenizer /tmp/medtrain-bench/tokenizer --work /tmp/medtrain-bench/stream-100MB

Each measurement runs in its own fresh subprocess (this script with --worker), timed after imports.
Memory is the peak of the process tree (the process and its dataloader workers), sampled every 50 ms
with psutil (RSS summed over processes; PSS too, which splits shared pages).

  first_batch   seconds from creating the dataset and DataLoader to the first batch
  throughput    tokens/s and MB/s of input over one whole epoch, with
                --workers dataloader worker processes (default 2: the machine's 2 cores), block_size 1024,
                batch 8, a 1,000-block shuffle window
  resume_early / resume_late   seconds from loading a saved position (taken after --early / --late
                batches, default 200 and 1500) to the first batch of the resumed stream (median of 3)
  (--only runs a subset; results.json keeps the others)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BLOCK, BATCH, WINDOW = 1024, 8, 1000


def _dataset(corpus: str, tokenizer: str):
    sys.path.insert(0, REPO)
    from medtrain.data.sources import find_files
    from medtrain.data.streaming import StreamingBlocks
    from medtrain.data.tokenization import TextEncoder, load_tokenizer_spec

    enc = TextEncoder(load_tokenizer_spec(tokenizer))
    return StreamingBlocks(find_files([corpus]), enc, BLOCK, "concat", shuffle_buffer=WINDOW, batch_size=BATCH,
                           seed=1)


def _loader(ds, workers: int):
    import torch

    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=lambda b: b)


def worker(spec: dict) -> dict:
    import torch  # noqa: F401  (imports before the clock)

    sys.path.insert(0, REPO)
    from medtrain.training.trainer import StreamCursorTracker

    kind, out = spec["kind"], {}
    if kind == "first_batch":  # median of 3 (sub-second numbers on a shared machine are noisy)
        times = []
        for _ in range(3):
            t0 = time.time()
            next(iter(_loader(_dataset(spec["corpus"], spec["tokenizer"]), spec["workers"])))
            times.append(time.time() - t0)
        out["seconds"] = sorted(times)[1]
        out["all_seconds"] = times
    elif kind == "throughput":
        ds = _dataset(spec["corpus"], spec["tokenizer"])
        ds.loop = False
        total = sum(f.size for f in ds.files)
        t0, tokens, batches = time.time(), 0, 0
        for batch in _loader(ds, spec["workers"]):
            tokens += sum(len(r["input_ids"]) for r in batch)
            batches += 1
        secs = time.time() - t0
        out.update(seconds=secs, tokens=tokens, batches=batches, tokens_per_s=tokens / secs,
                   input_mb=total / 1e6, mb_per_s=total / 1e6 / secs)
    elif kind.startswith("resume"):
        n = spec["steps"]
        ds = _dataset(spec["corpus"], spec["tokenizer"])
        tracker = StreamCursorTracker(1, 0)
        it = iter(ds)
        for _ in range(n):
            batch = next(it)
            tracker.update([r["_cursor"] for r in batch if "_cursor" in r])
        state = tracker.state_dict()
        times = []
        for _ in range(3):  # median of 3
            t0 = time.time()
            resumed = _dataset(spec["corpus"], spec["tokenizer"])
            resumed.load_state_dict(state, workers=0)
            next(iter(resumed))
            times.append(time.time() - t0)
        out.update(seconds=sorted(times)[1], all_seconds=times, at_batch=n, blocks_rebuilt=resumed.stats["blocks"])
    return out


def run_one(spec: dict, work: str) -> dict:
    import psutil

    path = os.path.join(work, f"{spec['kind']}.json")
    spec = dict(spec, result=path)
    proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"rss": 0.0, "pss": 0.0}
    stop = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                rss = sum(p.memory_info().rss for p in procs)
                pss = sum(getattr(p.memory_full_info(), "pss", 0) for p in procs)
                peak["rss"], peak["pss"] = max(peak["rss"], rss / 2**20), max(peak["pss"], pss / 2**20)
            except (psutil.Error, OSError):
                pass
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    log = proc.communicate()[0]
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"{spec['kind']} failed:\n{log[-3000:]}")
    with open(path) as fh:
        res = json.load(fh)
    res.update(peak_rss_mb=round(peak["rss"], 1), peak_pss_mb=round(peak["pss"], 1))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus")
    ap.add_argument("--tokenizer")
    ap.add_argument("--work", default="/tmp/medtrain-bench/stream")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--early", type=int, default=200)
    ap.add_argument("--late", type=int, default=1500)
    ap.add_argument("--only", default="first_batch,throughput,resume_early,resume_late")
    ap.add_argument("--worker")
    a = ap.parse_args()
    if a.worker:
        spec = json.loads(a.worker)
        res = worker(spec)
        with open(spec["result"], "w") as fh:
            json.dump(res, fh)
        return
    os.makedirs(a.work, exist_ok=True)
    base = {"corpus": a.corpus, "tokenizer": a.tokenizer, "workers": a.workers}
    path = os.path.join(a.work, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    steps = {"resume_early": a.early, "resume_late": a.late}
    for kind in a.only.split(","):
        results[kind] = run_one(dict(base, kind=kind, steps=steps.get(kind)), a.work)
    if "resume_early" in results and "resume_late" in results:
        results["resume_late_over_early"] = results["resume_late"]["seconds"] / results["resume_early"]["seconds"]
    with open(path, "w") as fh:
        json.dump(results, fh, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
