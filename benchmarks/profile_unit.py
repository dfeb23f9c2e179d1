#!/usr/bin/env python
"""Profile one work unit of the token store build (`medtrain.token_store.build_unit`) with cProfile,
as a tokenize worker process runs it (TOKENIZERS_PARALLELISM=false: one thread), next to the bare
tokenizer on the same documents.

    python benchmarks/profile_unit.py --corpus /tmp/medtrain-bench/corpus-100MB \
        --tokenizer /tmp/medtrain-bench/tokenizer [--unit-mb 16] [--top 25]

The profile's clock is the process CPU time (time.process_time), so other load on the machine does
not move the numbers; wall time is printed beside it.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--unit-mb", type=float, default=16, help="bytes of each file's start to profile (MB)")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)

    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from make_corpus import data_files
    from medtrain.data.sources import RecordReader, WorkUnit, find_files
    from medtrain.data.token_store import build_unit
    from medtrain.data.tokenization import TextEncoder, spec_from_tokenizer

    files = data_files(args.corpus)
    encoder = TextEncoder(spec_from_tokenizer(AutoTokenizer.from_pretrained(args.tokenizer)))
    raw_tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    report = {}
    for fmt in ("txt", "jsonl"):
        if not files[fmt]:
            continue
        src = find_files([files[fmt][0]])[0]
        unit = WorkUnit(src, 0, min(src.size, int(args.unit_mb * 1e6)))
        store = tempfile.mkdtemp(prefix="medtrain-prof-")
        os.makedirs(os.path.join(store, "units"))
        encoder._tok = None
        encoder.tokenizer  # build the tokenizer outside the profile

        prof = cProfile.Profile(time.process_time)
        w0, c0 = time.time(), time.process_time()
        summary = prof.runcall(build_unit, store, 0, unit, encoder, False, None)
        wall, cpu = time.time() - w0, time.process_time() - c0

        # the bare tokenizer on the same documents (read beforehand), same batches of 1024
        texts = [t for _, t in RecordReader(unit)]
        c1 = time.process_time()
        n = 0
        for i in range(0, len(texts), 1024):
            n += sum(map(len, raw_tok.encode_batch_fast(texts[i: i + 1024], add_special_tokens=False)))
        bare = time.process_time() - c1
        c2 = time.process_time()
        for _ in RecordReader(unit):
            pass
        read = time.process_time() - c2
        print(f"\n===== {fmt}: {unit.nbytes / 1e6:.1f} MB, {summary['documents']} documents, {summary['tokens']} tokens")
        print(f"build_unit: {cpu:.2f} CPU s ({wall:.2f} wall s, profiled); bare encode_batch_fast: {bare:.2f} CPU s; "
              f"RecordReader alone: {read:.2f} CPU s")
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(args.top)
        report[fmt] = {"mb": unit.nbytes / 1e6, "build_unit_cpu": cpu, "bare_encode_cpu": bare, "reader_cpu": read,
                       "documents": summary["documents"], "tokens": summary["tokens"]}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
