"""Preparing token stores ahead of training (`prepare_data.py`), and inspecting them.

    python prepare_data.py --tokenizer_name_or_path MODEL --train_file_dir /data/cc --output_dir /stores/cc
    torchrun --nnodes 4 --nproc_per_node 8 prepare_data.py ...        # every rank of every node helps
    python prepare_data.py --inspect /stores/cc --inspect_block 0 --block_size 2048 --tokenizer_name_or_path MODEL

Without --output_dir the store goes under cache_dir by fingerprint, where pretraining.py looks for it.
Ranks never talk to each other: each builds its share of the work units and waits on the filesystem.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from medtrain.config.arguments import DataArguments, ModelArguments, parse_args
from medtrain.runtime.distributed import DistInfo, setup_logging
from medtrain.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class PrepareArguments:
    output_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Write the token store here (default: <cache_dir>/token_store/<fingerprint>, where "
                          "pretraining.py finds it). Train on it with --train_file_dir <this directory>."},
    )
    inspect: Optional[str] = field(
        default=None, metadata={"help": "Print the manifest and statistics of this token store and exit."}
    )
    inspect_block: Optional[int] = field(
        default=None,
        metadata={"help": "With --inspect: decode this block (under --block_size and --packing_strategy)."},
    )


def _tokenizer(model_args: ModelArguments):
    from medtrain.training.demo import ensure_demo_assets
    from medtrain.training.modeling import load_tokenizer

    if not (model_args.tokenizer_name_or_path or model_args.model_name_or_path):
        model_args.model_name_or_path = ensure_demo_assets(model_args.demo_dir)
    return load_tokenizer(model_args)


def inspect(path: str, block: Optional[int], data_args: DataArguments, model_args: ModelArguments) -> dict:
    from medtrain.data.token_store import MANIFEST, TokenCorpus

    corpus = TokenCorpus(path)
    with open(os.path.join(path, MANIFEST)) as fh:
        m = json.load(fh)
    keys = ("fingerprint", "encoder", "dtype", "vocab_size", "documents", "tokens", "bytes", "skipped",
            "documents_cut_for_tokenizing", "wall_seconds", "tokens_per_second", "peak_rss_mb_per_worker", "created")
    print(f"token store {path}")
    for k in keys:
        if k in m:
            print(f"  {k}: {m[k]}")
    print(f"  units: {len(m['units'])}; inputs: {len(m['inputs'])}")
    for r in m.get("ranks", []):
        print(f"  rank {r['rank']} on {r['host']}: {r['units_built']} units, {r['seconds']} s, "
              f"{r['cpu_seconds']} CPU s, peak {r['peak_rss_mb']} MB")
    print("  document lengths (tokens):")
    for line in m.get("document_length_histogram", []):
        print("    " + line)
    index = corpus.blocks(data_args.block_size, data_args.packing_strategy, data_args.keep_last_block)
    stats = index.stats()
    print(f"  packing {data_args.packing_strategy} at block_size {data_args.block_size}: " +
          ", ".join(f"{k}={v}" for k, v in stats.items() if k not in ("strategy", "block_size")))
    if block is not None:
        if not 0 <= block < index.n_blocks:
            raise DataError(f"--inspect_block {block} is out of range: this store has {index.n_blocks} blocks "
                            f"at block_size {data_args.block_size}")
        row = corpus.block_row(index, block)
        print(f"  block {block}: pieces (document, start, length) = {index.pieces(block)}")
        print(f"  input_ids: {row.input_ids.tolist()}")
        try:
            tok = _tokenizer(model_args)
            off = 0
            for (d, s, n) in index.pieces(block):
                print(f"  --- document {d}, tokens {s}..{s + n - 1} ---")
                print(tok.decode(row.input_ids[off: off + n].tolist()))
                off += n
        except Exception as e:  # decoding is a convenience: ids were printed already
            print(f"  (no tokenizer to decode with: {e})")
    return {"manifest": m, "packing": stats}


def run(argv: Optional[list[str]] = None) -> dict:
    prep, model_args, data_args = parse_args((PrepareArguments, ModelArguments, DataArguments), argv)
    dist = DistInfo.from_env()
    setup_logging(dist)
    if prep.inspect:
        import transformers

        transformers.utils.logging.set_verbosity_warning()
        return inspect(prep.inspect, prep.inspect_block, data_args, model_args)
    if data_args.dataset_name:
        raise DataError("prepare_data.py reads files: give a saved dataset's split directory with --train_file_dir "
                        "(e.g. --train_file_dir my_dataset/train)")
    if not data_args.train_file_dir and not data_args.mixture:
        raise DataError("prepare_data.py needs --train_file_dir or --mixture (what to tokenize)")
    from medtrain.data.token_store import prepare_store
    from medtrain.data.tokenization import LinebreakTextEncoder, TextEncoder, load_tokenizer_spec

    t0 = time.time()
    name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    if not name:
        from medtrain.training.demo import ensure_demo_assets

        name = ensure_demo_assets(model_args.demo_dir)

    encoder = (LinebreakTextEncoder if data_args.keep_linebreaks else TextEncoder)(
        load_tokenizer_spec(name, data_args.add_bos_token, data_args.add_eos_token), data_args.text_field)
    if data_args.mixture:  # every source's own store, found again by fingerprint when training
        from medtrain.data.mixture import load_mixtures

        if prep.output_dir:
            raise DataError("--output_dir does not apply to --mixture: each source's store goes under --cache_dir "
                            "by fingerprint, where pretraining.py --mixture finds it")
        info = {}
        for src in load_mixtures(data_args.mixture):
            corpus, info[src.name] = prepare_store(src.paths, data_args, encoder.for_source(src.text_field), dist, src.origin)
        info["seconds"] = round(time.time() - t0, 2)
        if dist.is_main:
            logger.info("Prepared the mixture's sources: %s", json.dumps(info, default=str))
        return info
    corpus, info = prepare_store(data_args.train_file_dir, data_args, encoder, dist, output_dir=prep.output_dir)
    if data_args.validation_file_dir:
        out = os.path.join(prep.output_dir, "validation") if prep.output_dir else None
        _, vinfo = prepare_store(data_args.validation_file_dir, data_args, encoder, dist, "--validation_file_dir",
                                 output_dir=out)
        info["validation"] = vinfo
    info["seconds"] = round(time.time() - t0, 2)
    if dist.is_main:
        logger.info("Prepared: %s", json.dumps(info, default=str))
        print(corpus.paths[-1])
    return info


def main(argv: Optional[list[str]] = None) -> int:
    try:
        run(argv)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def console() -> None:
    """The console script (`pip install` puts it on PATH)."""
    import sys

    sys.exit(main())
