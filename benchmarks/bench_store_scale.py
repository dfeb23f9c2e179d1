"""The token store at corpus scale: open time, block index builds, time to the first batch, open files,
and memory per rank with 8 processes opening the same store at once, for a synthetic store of N
documents in the real on-disk format; compared with the implementation of commit 01567a8 (before
issue 13) on the same store where it still finishes.

The store is synthesized, not tokenized: log-normal document lengths (median ~245, mean ~500 tokens),
32 MB units whose token files are sparse (`truncate`: all zeros, no disk), the units' offsets and
origin keys as `prepare_data.py` writes them, and a format-1 manifest, so the first open by the new
code also measures the migration (deriving documents.idx from the units).

    python benchmarks/bench_store_scale.py --docs 1000000 --work /tmp/medtrain-scale
    python benchmarks/bench_store_scale.py --docs 100000000 --work /tmp/medtrain-scale --old none

Every measurement runs in a fresh process (times after imports; peak RSS from getrusage, USS/PSS from
psutil); results are printed as a table and appended as JSON lines to <work>/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLD_COMMIT = "01567a8"
STRATEGIES = ("concat", "group_by_text", "best_fit", "none")
UNIT_TOKENS = 16 << 20  # 32 MB of uint16 per unit, the builder's default unit size


# ---------------------------------------------------------------------------------------------------
# the synthetic store
# ---------------------------------------------------------------------------------------------------
def synthesize(path: str, n_docs: int, seed: int = 0) -> dict:
    """A format-1 token store of n_docs documents (see the module docstring)."""
    done = os.path.join(path, "manifest.json")
    if os.path.exists(done):
        with open(done) as fh:
            return json.load(fh)
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(path, "units"), exist_ok=True)
    units, i, left = [], 0, n_docs
    carry = np.zeros(0, np.int64)
    t0 = time.time()
    while left > 0 or len(carry):
        if left > 0:
            k = min(left, 1 << 22)
            carry = np.concatenate([carry, np.maximum(1, rng.lognormal(5.5, 1.2, size=k)).astype(np.int64)])
            left -= k
        cum = np.cumsum(carry)
        while len(carry) and (cum[-1] >= UNIT_TOKENS or left == 0):
            n = max(1, int(np.searchsorted(cum, UNIT_TOKENS, side="right")))
            lengths, carry = carry[:n], carry[n:]
            off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            base = os.path.join(path, "units", f"{i:05d}")
            with open(base + ".tokens", "wb") as fh:
                fh.truncate(int(off[-1]) * 2)
            np.save(base + ".docs.npy", off)
            np.save(base + ".keys.npy", rng.integers(0, 2 ** 32, size=n, dtype=np.uint64).astype(np.uint32))
            summary = {"unit": i, "source": "synthetic.jsonl", "start": i, "end": i + 1,
                       "bytes": int(off[-1]) * 4, "documents": n, "tokens": int(off[-1])}
            with open(base + ".json", "w") as fh:
                json.dump(summary, fh)
            units.append(summary)
            i += 1
            cum = np.cumsum(carry)
    manifest = {"format_version": 1, "fingerprint": f"synthetic-{n_docs}-{seed}".ljust(40, "0"), "dtype": "uint16",
                "has_mask": False, "vocab_size": 32000, "bos_id": None, "eos_id": 2, "add_bos": False,
                "add_eos": True, "units": units, "documents": sum(u["documents"] for u in units),
                "tokens": sum(u["tokens"] for u in units), "bytes": sum(u["bytes"] for u in units), "skipped": {},
                "synthesized_seconds": round(time.time() - t0, 1)}
    with open(done + ".tmp", "w") as fh:
        json.dump(manifest, fh)
    os.replace(done + ".tmp", done)
    return manifest


def disk_bytes(path: str) -> int:
    """Bytes allocated on disk under path (sparse token files count for nothing)."""
    if os.path.isfile(path):
        return os.stat(path).st_blocks * 512
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------------------------------------
# measurements, each in a fresh process
# ---------------------------------------------------------------------------------------------------
def _memory() -> dict:
    import psutil

    m = psutil.Process().memory_full_info()
    mb = lambda x: round(x / 2 ** 20, 1)  # noqa: E731
    return {"rss_mb": mb(m.rss), "uss_mb": mb(m.uss), "pss_mb": mb(m.pss),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "fds": len(os.listdir("/proc/self/fd"))}


def worker(task: str, store: str, strategy: str, bs: int, go: str | None) -> dict:
    import torch

    from medtrain.data.block_dataset import BlockDataset
    from medtrain.data.collator import BlockCollator
    from medtrain.data.token_store import TokenCorpus

    if go:  # the 8-process measurement: start together
        while not os.path.exists(go):
            time.sleep(0.01)
    out: dict = {"task": task, "strategy": strategy}
    base = _memory()
    out["base"] = base  # torch and the library imported, nothing opened
    t = time.time()
    corpus = TokenCorpus(store)
    out["open_s"] = round(time.time() - t, 3)
    out["after_open"] = _memory()
    if task == "open":
        return out
    t = time.time()
    index = corpus.blocks(bs, strategy)
    out["index_s"] = round(time.time() - t, 3)
    out["blocks"] = int(index.n_blocks)
    out["stats"] = index.stats() if hasattr(index, "info") and index.info else None
    out["built_here"] = bool(getattr(corpus, "index_builds", {}) and list(corpus.index_builds.values())[-1])
    out["index_peak_rss_delta_mb"] = round(_memory()["peak_rss_mb"] - base["peak_rss_mb"], 1)
    if task == "index":
        return out
    ds = BlockDataset(corpus, index)
    # 8 random blocks, drawn directly: torch's RandomSampler would first build a Python list of every
    # block number (~36 bytes per block, per rank: measured separately below)
    collate = BlockCollator(0, True)
    rng = np.random.default_rng(0)
    t2 = time.time()
    batch = collate([ds[int(b)] for b in rng.integers(0, len(ds), size=8)])
    out["first_batch_s"] = round(time.time() - t2, 3)
    out["start_s"] = round(time.time() - t, 3) + out["open_s"]  # open + index + first batch
    out["batch_shape"] = list(batch["input_ids"].shape)
    if not go:  # from the process's start (imports included) to the first batch
        import psutil

        out["since_launch_s"] = round(time.time() - psutil.Process().create_time(), 3)
    out["after_first_batch"] = _memory()
    rng = np.random.default_rng(1)
    t3 = time.time()
    for b in rng.integers(0, len(ds), size=2000).tolist():
        ds[b]
    out["random_block_ms"] = round((time.time() - t3) / 2000 * 1000, 3)
    out["after_2000_random_blocks"] = _memory()
    t4 = time.time()
    next(iter(torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(0))))
    out["torch_random_sampler_first_s"] = round(time.time() - t4, 3)
    out["after_torch_random_sampler"] = _memory()
    return out


def run_worker(impl: str, work: str, task: str, store: str, strategy: str, bs: int, timeout: float,
               go: str | None = None, wait: bool = True):
    path = REPO if impl == "new" else os.path.join(work, f"old-{OLD_COMMIT}")
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", task, "--store", store, "--strategy", strategy,
           "--block_size", str(bs)] + (["--go", go] if go else [])
    p = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return p
    return finish_worker(p, timeout)


def finish_worker(p, timeout: float) -> dict:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return {"error": f"did not finish within {timeout:.0f} s"}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": (err.strip().splitlines() or ["?"])[-1][:300]}
    return json.loads(lines[-1])


def old_checkout(work: str) -> None:
    dest = os.path.join(work, f"old-{OLD_COMMIT}")
    if not os.path.isdir(dest):
        os.makedirs(dest)
        archive = subprocess.run(["git", "-C", REPO, "archive", OLD_COMMIT, "medtrain"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)


# ---------------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------------
def report(path: str) -> None:
    """Markdown tables of every run in results.jsonl (one row per corpus size and implementation)."""
    runs = [json.loads(line) for line in open(path)]

    def cell(r, key, field, fmt="{:.2f}"):
        x = r.get(key) or {}
        if "error" in x:
            return "failed: " + x["error"][:40]
        v = x
        for f in field.split("."):
            v = v.get(f) if isinstance(v, dict) else None
        return "-" if v is None else fmt.format(v)

    print("| documents | impl | open s | open USS +MB | concat s | group_by_text s | best_fit s | none s | "
          "peak RSS +MB (best_fit) | start s | 1st batch s | fds after 2,000 blocks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        for impl in ("new", "old"):
            if f"{impl}_start" not in r and f"{impl}_index_concat" not in r:
                continue
            o = r.get(f"{impl}_open") or {}
            uss = (o["after_open"]["uss_mb"] - o["base"]["uss_mb"]) if "base" in o else None
            print(f"| {r['docs']:,} | {impl} | {cell(r, f'{impl}_open', 'open_s', '{:.3f}')} | "
                  f"{'-' if uss is None else f'{uss:.0f}'} | "
                  + " | ".join(cell(r, f"{impl}_index_{s}", "index_s", "{:.1f}") for s in STRATEGIES) + " | "
                  f"{cell(r, f'{impl}_index_best_fit', 'index_peak_rss_delta_mb', '{:.0f}')} | "
                  f"{cell(r, f'{impl}_start', 'start_s', '{:.3f}')} | {cell(r, f'{impl}_start', 'first_batch_s', '{:.3f}')} | "
                  f"{cell(r, f'{impl}_start', 'after_2000_random_blocks.fds', '{}')} |")
    print()
    print("| documents | impl | ranks | slowest start s | USS +MB per rank (max) | PSS +MB per rank (max) | "
          "summed PSS MB | fds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        for impl in ("new", "old"):
            ranks = [x for x in r.get(f"{impl}_ranks", []) if "error" not in x]
            if not ranks:
                if r.get(f"{impl}_ranks"):
                    print(f"| {r['docs']:,} | {impl} | {len(r[f'{impl}_ranks'])} | failed: "
                          f"{r[f'{impl}_ranks'][0]['error'][:60]} | | | | |")
                continue
            du = max(x["after_first_batch"]["uss_mb"] - x["base"]["uss_mb"] for x in ranks)
            dp = max(x["after_first_batch"]["pss_mb"] - x["base"]["pss_mb"] for x in ranks)
            print(f"| {r['docs']:,} | {impl} | {len(ranks)} | {max(x['start_s'] for x in ranks):.2f} | {du:.0f} | "
                  f"{dp:.0f} | {sum(x['after_first_batch']['pss_mb'] for x in ranks):,.0f} | "
                  f"{max(x['after_first_batch']['fds'] for x in ranks)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--work", default="/tmp/medtrain-scale")
    ap.add_argument("--block_size", type=int, default=2048)
    ap.add_argument("--old", default="all", help="all, none, or a comma list of: open,index,start")
    ap.add_argument("--old_timeout", type=float, default=900)
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--strategy", default="best_fit", help="the strategy of the start-up and 8-process runs")
    ap.add_argument("--report", action="store_true", help="print the tables of <work>/results.jsonl and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--go", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.store, a.strategy, a.block_size, a.go)))
        return
    work = os.path.abspath(a.work)
    if a.report:
        report(os.path.join(work, "results.jsonl"))
        return
    os.makedirs(work, exist_ok=True)
    old_checkout(work)
    old = set() if a.old == "none" else {"open", "index", "start"} if a.old == "all" else set(a.old.split(","))
    store = os.path.join(work, f"store-{a.docs}")
    t = time.time()
    m = synthesize(store, a.docs)
    res: dict = {"docs": m["documents"], "tokens": m["tokens"], "units": len(m["units"]), "block_size": a.block_size,
                 "synthesize_s": round(time.time() - t, 1), "store_disk_mb": round(disk_bytes(store) / 2 ** 20, 1)}
    print(f"store: {res['docs']:,} documents, {res['tokens']:,} tokens, {res['units']:,} units ({store})", flush=True)
    for derived in ("packing", "documents.idx"):  # every run measures the builds from scratch
        subprocess.run(["rm", "-rf", os.path.join(store, derived)], check=True)
    # open (the new code's first open derives documents.idx from the version-1 units: the migration)
    res["new_migrate"] = run_worker("new", work, "open", store, "concat", a.block_size, 3600)
    res["new_open"] = run_worker("new", work, "open", store, "concat", a.block_size, 600)
    if "open" in old:
        res["old_open"] = run_worker("old", work, "open", store, "concat", a.block_size, a.old_timeout)
    print("open:", {k: res[k] for k in res if k.endswith(("_open", "_migrate"))}, flush=True)
    for s in STRATEGIES:
        res[f"new_index_{s}"] = run_worker("new", work, "index", store, s, a.block_size, 3600)
        print(f"new index {s}:", res[f"new_index_{s}"], flush=True)
        if "index" in old:
            res[f"old_index_{s}"] = run_worker("old", work, "index", store, s, a.block_size, a.old_timeout)
            print(f"old index {s}:", res[f"old_index_{s}"], flush=True)
    res["index_disk_mb"] = round(disk_bytes(os.path.join(store, "packing")) / 2 ** 20, 1)
    res["document_index_disk_mb"] = round(disk_bytes(os.path.join(store, "documents.idx")) / 2 ** 20, 1)
    # start-up with everything built: one process, then `ranks` processes at once
    for impl in ["new"] + (["old"] if "start" in old else []):
        res[f"{impl}_start"] = run_worker(impl, work, "start", store, a.strategy, a.block_size,
                                          a.old_timeout if impl == "old" else 600)
        print(f"{impl} start:", res[f"{impl}_start"], flush=True)
        go = os.path.join(work, f"go-{impl}-{time.time()}")
        procs = [run_worker(impl, work, "start", store, a.strategy, a.block_size, 0, go=go, wait=False)
                 for _ in range(a.ranks)]
        time.sleep(8)  # imports done
        open(go, "w").close()
        ranks = [finish_worker(p, a.old_timeout if impl == "old" else 900) for p in procs]
        os.remove(go)
        res[f"{impl}_ranks"] = ranks
        ok = [r for r in ranks if "error" not in r]
        if ok:
            mem = [r["after_first_batch"] for r in ok]
            d_uss = [r["after_first_batch"]["uss_mb"] - r["base"]["uss_mb"] for r in ok]
            d_pss = [r["after_first_batch"]["pss_mb"] - r["base"]["pss_mb"] for r in ok]
            print(f"{impl} x{a.ranks}: start {max(r['start_s'] for r in ok):.2f} s (slowest), USS "
                  f"{max(x['uss_mb'] for x in mem)} MB (+{max(d_uss):.1f} over imports), PSS "
                  f"{max(x['pss_mb'] for x in mem)} MB (+{max(d_pss):.1f}), summed PSS "
                  f"{sum(x['pss_mb'] for x in mem):.0f} MB, fds {max(x['fds'] for x in mem)}", flush=True)
        else:
            print(f"{impl} x{a.ranks}:", ranks[0], flush=True)
    with open(os.path.join(work, "results.jsonl"), "a") as fh:
        fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
