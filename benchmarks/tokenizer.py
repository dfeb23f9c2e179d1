#!/usr/bin/env python
"""A 32k byte-level BPE tokenizer for the benchmarks, trained on a seeded ~20 MB sample of a corpus.

    python benchmarks/tokenizer.py --corpus /tmp/medtrain-bench/corpus-100MB --out /tmp/medtrain-bench/tokenizer

The tokenizer is built the way the project builds its demo tokenizer (`medtrain.demo.build_tokenizer`:
byte-level BPE with `tokenizers`, saved as a `PreTrainedTokenizerFast` directory with the specials
`<pad>`, `<s>`, `</s>`, `<unk>`), only with a 32,000-token vocabulary. The sample is whole documents
picked from every data file of the corpus with a seeded generator, in file order. The result is cached
in --out (reused when the corpus, sample size, vocab size and seed are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))   # the repository root: medtrain
sys.path.insert(0, HERE)

from make_corpus import data_files  # noqa: E402

META = "bench_tokenizer.json"


def sample_corpus(corpus: str, out_file: str, sample_bytes: int, seed: int) -> int:
    """Write about `sample_bytes` of whole documents (text only, one per line) drawn from `corpus`."""
    import numpy as np

    files = data_files(corpus)
    paths = files["txt"] + files["jsonl"]
    total = sum(os.path.getsize(p) for p in paths)
    keep = min(1.0, sample_bytes / max(1, total))
    rng = np.random.default_rng(seed)
    written = 0
    with open(out_file, "w", encoding="utf-8") as out:
        for p in paths:
            with open(p, encoding="utf-8") as fh:
                lines = fh.readlines(1 << 26)
                while lines:
                    picks = np.flatnonzero(rng.random(len(lines)) < keep).tolist()
                    for i in picks:
                        line = lines[i]
                        text = json.loads(line)["text"] if p.endswith(".jsonl") else line.rstrip("\n")
                        out.write(text + "\n")
                        written += len(text.encode("utf-8")) + 1
                    lines = fh.readlines(1 << 26)
    return written


def ensure_tokenizer(corpus: str, out: str, vocab_size: int = 32000, sample_bytes: int = 20 * 10**6,
                     seed: int = 0) -> str:
    """Build (or reuse) the benchmark tokenizer in `out`; returns `out`."""
    corpus_meta = os.path.join(corpus, ".corpus.json")
    corpus_params = json.load(open(corpus_meta))["params"] if os.path.exists(corpus_meta) else os.path.abspath(corpus)
    params = {"corpus": corpus_params, "vocab_size": vocab_size, "sample_bytes": sample_bytes, "seed": seed,
              "version": 1}
    meta_path = os.path.join(out, META)
    if os.path.exists(meta_path):
        with open(meta_path) as fh:
            if json.load(fh).get("params") == params:
                return out
    from medtrain.training.demo import build_tokenizer

    t0 = time.time()
    tmp = f"{out}.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "sample"))
    n = sample_corpus(corpus, os.path.join(tmp, "sample", "sample.txt"), sample_bytes, seed)
    t1 = time.time()
    tok = build_tokenizer(tmp, corpus=[os.path.join(tmp, "sample")], vocab_size=vocab_size)
    shutil.rmtree(os.path.join(tmp, "sample"))
    meta = {"params": params, "sample_bytes_written": n, "vocab": len(tok),
            "sample_seconds": round(t1 - t0, 2), "train_seconds": round(time.time() - t1, 2)}
    with open(os.path.join(tmp, META), "w") as fh:
        json.dump(meta, fh, indent=1)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="a corpus directory made by make_corpus.py")
    ap.add_argument("--out", required=True, help="where the tokenizer directory goes (cached there)")
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--sample", default="20MB", help="bytes of text to train on (default 20MB)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from make_corpus import parse_size

    out = ensure_tokenizer(args.corpus, args.out, args.vocab_size, parse_size(args.sample), args.seed)
    print(open(os.path.join(out, META)).read(), file=sys.stderr)
    print(os.path.abspath(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
