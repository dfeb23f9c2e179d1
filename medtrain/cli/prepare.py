"""Preparing token stores ahead of training (`prepare_data.py`), and inspecting them.

    python prepare_data.py --tokenizer_name_or_path MODEL --train_file_dir /data/cc --output_dir /stores/cc
    torchrun --nnodes 4 --nproc_per_node 8 prepare_data.py ...        # every rank of every node helps
    python prepare_data.py --stage sft --tokenizer_name_or_path MODEL --train_file_dir /data/chat \
        --template_name qwen --model_max_length 4096
    python prepare_data.py --stage dpo --tokenizer_name_or_path MODEL --train_file_dir /data/pairs \
        --template_name qwen --max_source_length 1024 --max_target_length 512 [--preview_samples 3]
    python prepare_data.py --inspect /stores/cc --inspect_block 0 --block_size 2048 --tokenizer_name_or_path MODEL

`--stage` (LLaMA-Factory's name) says which training script the store is for, and so which encoder
builds it: pt (text: pretraining.py), sft (conversations: supervised_finetuning.py), dpo, orpo or rm
(preference pairs: dpo_training.py, orpo_training.py, reward_modeling.py, which share one store). The
stage's data flags are those of its training script (--template_name, --model_max_length for sft;
--max_source_length, --max_target_length for pairs; ...), built by the same functions, so the training
run given the same data flags computes the same fingerprint and reuses the store ("Reusing token store"
in its log, `tokenized_this_run: false` in its summary). Loss and model options are not taken here.

Without --output_dir the store goes under cache_dir by fingerprint, where the training scripts look for
it. Ranks never talk to each other: each builds its share of the work units and waits on the filesystem.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from medtrain.config.arguments import (ArgumentError, DataArguments, ModelArguments, expand_config_file,
                                       given_names, parse_args)
from medtrain.runtime.distributed import DistInfo, setup_logging
from medtrain.errors import DataError

logger = logging.getLogger(__name__)


STAGES = ("pt", "sft", "dpo", "orpo", "rm")
PREFERENCE_STAGES = ("dpo", "orpo", "rm")


@dataclass
class PrepareArguments:
    stage: str = field(
        default="pt",
        metadata={"help": "What the store is for: pt (text, pretraining.py), sft (conversations, "
                          "supervised_finetuning.py), dpo, orpo or rm (preference pairs, dpo_training.py / "
                          "orpo_training.py / reward_modeling.py: one store serves all three). Give the training "
                          "script's data flags (template, lengths): it then finds this store by fingerprint.",
                  "choices": list(STAGES)},
    )
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


def _tokenizer(model_args: ModelArguments, cache_dir: Optional[str] = None):
    """The tokenizer the training scripts load (`modeling.load_tokenizer`; the demo's without a model)."""
    from medtrain.training.demo import ensure_demo_assets
    from medtrain.training.modeling import load_tokenizer

    if not (model_args.tokenizer_name_or_path or model_args.model_name_or_path):
        model_args.model_name_or_path = ensure_demo_assets(model_args.demo_dir)
    return load_tokenizer(model_args, cache_dir=cache_dir)


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


def _flag_names(argv: list[str]) -> list[str]:
    return [a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")]


def stage_of(argv: list[str]) -> str:
    """The --stage of argv (a config file expanded), before parsing: it chooses the argument classes."""
    argv = expand_config_file(argv)
    stage = "pt"
    for i, a in enumerate(argv):
        if a == "--stage" and i + 1 < len(argv):
            stage = argv[i + 1]
        elif a.startswith("--stage="):
            stage = a.split("=", 1)[1]
    if stage not in STAGES:
        raise ArgumentError(f"--stage {stage}: choose one of {', '.join(STAGES)}")
    return stage


def stage_classes(stage: str) -> tuple:
    """The argument classes of a stage: the stage's own data options after the common ones."""
    base = (PrepareArguments, ModelArguments, DataArguments)
    if stage == "sft":
        from medtrain.config.task_arguments import SftArguments

        return base + (SftArguments,)
    if stage in PREFERENCE_STAGES:
        from medtrain.config.task_arguments import PreferenceDataArguments

        return base + (PreferenceDataArguments,)
    return base


def check_stage_flags(stage: str, argv: list[str]) -> None:
    """An option of another stage, or of a loss, is an error that names where it belongs (not an unknown flag)."""
    import dataclasses

    from medtrain.config.task_arguments import LOSS_OPTIONS, PreferenceDataArguments, SftArguments

    names = _flag_names(expand_config_file(argv))
    own = {f.name for cls in stage_classes(stage) for f in dataclasses.fields(cls)}
    where: dict = {}
    for stages, cls in (("sft", SftArguments), ("dpo, orpo or rm", PreferenceDataArguments)):
        for f in dataclasses.fields(cls):
            where[f.name] = f"{where[f.name]}, {stages}" if f.name in where else f"--stage {stages}"
    where.update({n: "the losses of dpo_training.py / orpo_training.py / reward_modeling.py: preparing data does "
                     "not use it" for n in LOSS_OPTIONS})
    foreign = [n for n in dict.fromkeys(names) if n in where and n not in own]
    if foreign:
        raise ArgumentError(f"prepare_data.py --stage {stage} does not take " + "; ".join(
            f"--{n} (an option of {where[n]})" for n in foreign))


def resolve_stage(stage: str, given: frozenset, model_args: ModelArguments, data_args: DataArguments) -> None:
    """The training script's own defaults that the store depends on (SFT: the sequence length)."""
    if stage == "sft":
        from medtrain.cli.sft import resolve_sft_defaults

        resolve_sft_defaults(model_args, data_args, given, lambda obj, name, value, why, rerun=True:
                             setattr(obj, name, value))


def stage_encoder(stage: str, model_args: ModelArguments, data_args: DataArguments, extra):
    """The encoder the stage's training script builds from the same flags (see the module doc)."""
    if stage == "pt":
        from medtrain.data.tokenization import LinebreakTextEncoder, TextEncoder, load_tokenizer_spec

        name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
        if not name:
            from medtrain.training.demo import ensure_demo_assets

            name = ensure_demo_assets(model_args.demo_dir)
        return (LinebreakTextEncoder if data_args.keep_linebreaks else TextEncoder)(
            load_tokenizer_spec(name, data_args.add_bos_token, data_args.add_eos_token), data_args.text_field)
    if data_args.keep_linebreaks:
        raise ArgumentError(f"--keep_linebreaks applies to --stage pt (.txt files, one document per line), not "
                            f"--stage {stage}")
    tokenizer = _tokenizer(model_args, data_args.cache_dir)
    if stage == "sft":
        from medtrain.cli.sft import conversation_encoder

        return conversation_encoder(tokenizer, data_args, extra)
    from medtrain.cli.preference import preference_encoder

    encoder = preference_encoder(tokenizer, data_args, extra)
    logger.info("--stage %s: preference pairs, template %s, prompt <= %d tokens, responses <= %d tokens", stage,
                encoder.template_name, extra.max_source_length, extra.max_target_length)
    return encoder


def preview(stage: str, model_args: ModelArguments, data_args: DataArguments, extra) -> list:
    """--preview_samples of --stage sft or dpo/orpo/rm: what the training script's preview prints, from the
    same flags; nothing is built (a preview.jsonl is not written into a store's --output_dir)."""
    if stage == "sft":
        from medtrain.cli.sft import preview as sft_preview

        return sft_preview(model_args, data_args, extra)
    from medtrain.cli.preference import preview_pairs

    return preview_pairs(model_args, data_args, extra)


def run(argv: Optional[list[str]] = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = stage_of(argv)
    check_stage_flags(stage, argv)
    prep, model_args, data_args, *extra = parse_args(stage_classes(stage), argv)
    extra = extra[0] if extra else None
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
    if stage != "pt":  # the HF tokenizer is loaded: keep its config dump out of the log
        import transformers

        transformers.utils.logging.set_verbosity_warning()
    resolve_stage(stage, given_names(stage_classes(stage), argv), model_args, data_args)
    if getattr(extra, "preview_samples", 0):
        return {"preview": preview(stage, model_args, data_args, extra)}
    from medtrain.data.token_store import prepare_store

    t0 = time.time()
    encoder = stage_encoder(stage, model_args, data_args, extra)
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
    info["stage"] = stage
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
