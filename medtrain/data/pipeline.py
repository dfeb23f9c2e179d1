"""From data arguments to training and evaluation datasets, on either data path.

Prepared path (default): find the inputs, build or reuse the token store (`token_store`), compute the
block index for the chosen block_size and packing (`packing`, cached beside the store), and wrap it
in a map-style `BlockDataset`. Already prepared stores given as inputs are used directly, together
with any raw files. Streaming path (`--streaming`): a `StreamingBlocks` iterable over the same
files, giving the same blocks. Validation comes from `validation_file_dir`, or from the documents
held out of training by `validation_split_percentage` (the same documents on both paths).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from medtrain.config.arguments import DataArguments
from medtrain.data.block_dataset import BlockDataset
from medtrain.runtime.distributed import DistInfo
from medtrain.errors import DataError
from medtrain.data.streaming import StreamingBlocks
from medtrain.data.token_store import prepare_store, resolve_inputs

logger = logging.getLogger(__name__)

DEFAULT_STREAMING_EVAL_BLOCKS = 256


@dataclass
class PreparedData:
    train: torch.utils.data.Dataset
    eval: Optional[torch.utils.data.Dataset]
    document_aware: bool
    summary: dict = field(default_factory=dict)
    report: Optional[Callable] = None  # report(realized tokens per source, all ranks) -> summary entries


class MaterializedBlocks(torch.utils.data.Dataset):
    """The first `limit` rows of a (finite) streaming dataset, read on first use (for evaluation)."""

    def __init__(self, source: StreamingBlocks, limit: int):
        self.source, self.limit, self._rows = source, limit, None

    def _load(self):
        if self._rows is None:
            self._rows = []
            for row in self.source.rows():
                self._rows.append(row)
                if len(self._rows) >= self.limit:
                    break
            if not self._rows:
                raise DataError("the streaming validation split is empty: no document was held out "
                                "(raise --validation_split_percentage or give --validation_file_dir)")
        return self._rows

    def __len__(self):
        return len(self._load())

    def __getitem__(self, i):
        return self._load()[i]


def build_datasets(data_args: DataArguments, encoder, dist: DistInfo, seed: int, batch_size: int = 1,
                   memory_guard=None) -> PreparedData:
    """Train and eval datasets for `encoder`'s records (pretraining text, or SFT conversations).
    `batch_size` is the per-device batch size (the streaming dataset yields whole batches)."""
    train_paths = data_args.train_file_dir
    holdout = 0.0 if data_args.validation_file_dir else data_args.validation_split_percentage
    if data_args.mixture:
        return _mixture(data_args, encoder, dist, seed, holdout, batch_size, memory_guard)
    if data_args.streaming:
        return _streaming(data_args, encoder, dist, seed, holdout, batch_size, memory_guard)

    corpus, info = prepare_store(train_paths, data_args, encoder, dist)
    split = "train" if holdout > 0 else "all"
    index = corpus.blocks(data_args.block_size, data_args.packing_strategy, data_args.keep_last_block, split, holdout)
    if index.n_blocks == 0:
        raise DataError(f"no training block: the corpus has {info['tokens']} tokens for block_size "
                        f"{data_args.block_size} (keep the last partial block with --keep_last_block true)")
    if data_args.max_train_samples:
        index = index.select(data_args.max_train_samples)
    train = BlockDataset(corpus, index)
    summary = {"data_path": "token_store", "train": {**info, **index.stats()}}
    if data_args.packing_strategy != "concat":  # what document-aware packing costs or saves
        base = corpus.blocks(data_args.block_size, "concat", data_args.keep_last_block, split, holdout).stats()
        summary["train"]["concat_for_comparison"] = {k: base[k] for k in (
            "blocks", "padding_fraction", "documents_split_across_blocks")}
    if holdout > 0:
        summary["train"]["documents"] = int(len(corpus.split_documents("train", holdout)))
    eval_ds = None
    if data_args.validation_file_dir:
        ecorpus, einfo = prepare_store(data_args.validation_file_dir, data_args, encoder, dist,
                                       "--validation_file_dir")
        eindex = ecorpus.blocks(data_args.block_size, data_args.packing_strategy, True, "all", 0.0)
        eval_ds = BlockDataset(ecorpus, eindex)
        summary["eval"] = {**einfo, **eindex.stats()}
    elif holdout > 0:
        eindex = corpus.blocks(data_args.block_size, data_args.packing_strategy, True, "eval", holdout)
        if eindex.n_blocks:
            eval_ds = BlockDataset(corpus, eindex)
            summary["eval"] = {"documents": int(len(corpus.split_documents("eval", holdout))), **eindex.stats()}
        else:
            logger.warning("validation_split_percentage %s%% held out no document of this corpus: no evaluation",
                           holdout)
    if eval_ds is not None and data_args.max_eval_samples:
        eval_ds = BlockDataset(eval_ds.corpus, eval_ds.index.select(data_args.max_eval_samples))
    return PreparedData(train, eval_ds, index.document_aware, summary)


def _streaming(data_args: DataArguments, encoder, dist: DistInfo, seed: int, holdout: float, batch_size: int,
               memory_guard):
    stores, files = resolve_inputs(data_args.train_file_dir, "--train_file_dir")
    if stores:
        raise DataError(f"--streaming reads raw files; {stores[0]} is a prepared token store (drop --streaming "
                        "to train on it)")
    common = dict(encoder=encoder, block_size=data_args.block_size, strategy=data_args.packing_strategy,
                  skip_bad=data_args.skip_bad_lines,
                  max_chars=data_args.max_document_chars)
    train = StreamingBlocks(files, keep_last=data_args.keep_last_block,
                            split="train" if holdout > 0 else "all", holdout_percentage=holdout,
                            shuffle_buffer=data_args.shuffle_buffer_size, seed=seed, rank=dist.rank,
                            world=dist.world_size, loop=True, max_blocks=data_args.max_train_samples,
                            batch_size=batch_size, group_by_length=data_args.group_by_length,
                            memory_guard=memory_guard, **common)
    eval_ds = None
    limit = data_args.max_eval_samples or DEFAULT_STREAMING_EVAL_BLOCKS
    if data_args.validation_file_dir:
        _, efiles = resolve_inputs(data_args.validation_file_dir, "--validation_file_dir")
        eval_ds = MaterializedBlocks(StreamingBlocks(efiles, loop=False, **common), limit)
    elif holdout > 0:
        eval_ds = MaterializedBlocks(StreamingBlocks(files, split="eval", holdout_percentage=holdout, loop=False,
                                                     **common), limit)
    summary = {"data_path": "streaming", "train": {"files": len(files)}}
    return PreparedData(train, eval_ds, train.document_aware, summary)


def streaming_stats(data: PreparedData) -> dict:
    """What the streaming train dataset read in this process (with dataloader workers, their own
    counters live in the workers and are not included)."""
    ds = data.train
    if not isinstance(ds, StreamingBlocks):
        return {}
    stats = dict(ds.stats)
    stats["skipped_lines"] = ds.skipped.to_dict()
    slots = stats["blocks"] * ds.block_size
    stats["padding_fraction"] = round(1 - stats["tokens_in_blocks"] / slots, 6) if slots else 0.0
    return stats



def _validation(data_args: DataArguments, encoder, dist: DistInfo, common: dict):
    """The validation set given by --validation_file_dir, on either path (None without one)."""
    if not data_args.validation_file_dir:
        return None, {}
    if data_args.streaming:
        _, efiles = resolve_inputs(data_args.validation_file_dir, "--validation_file_dir")
        limit = data_args.max_eval_samples or DEFAULT_STREAMING_EVAL_BLOCKS
        return MaterializedBlocks(StreamingBlocks(efiles, loop=False, **common), limit), {}
    ecorpus, einfo = prepare_store(data_args.validation_file_dir, data_args, encoder, dist, "--validation_file_dir")
    eindex = ecorpus.blocks(data_args.block_size, data_args.packing_strategy, True, "all", 0.0)
    return BlockDataset(ecorpus, eindex), {**einfo, **eindex.stats()}


def _mixture(data_args: DataArguments, encoder, dist: DistInfo, seed: int, holdout: float, batch_size: int,
             memory_guard) -> PreparedData:
    """Mixture sources on either path: one store (or stream) per source, blended by token shares."""
    from medtrain.data.mixture import (MixtureDataset, StreamingMixture, encoder_for, load_mixtures, log_plan,
                          plan_report)

    sources = load_mixtures(data_args.mixture)
    names, shares = [s.name for s in sources], [s.share for s in sources]
    split = "train" if holdout > 0 else "all"
    common = dict(encoder=encoder, block_size=data_args.block_size, strategy=data_args.packing_strategy,
                  skip_bad=data_args.skip_bad_lines, max_chars=data_args.max_document_chars)
    budgets = sources[0].tokens is not None
    summary: dict = {"data_path": "streaming" if data_args.streaming else "token_store", "mixture": {}}
    eval_parts = []
    if data_args.streaming:
        streams, available = [], {}
        for src in sources:
            stores, files = resolve_inputs(src.paths, src.origin)
            if stores:
                raise DataError(f"{src.origin}: --streaming reads raw files; {stores[0]} is a prepared token store")
            streams.append(StreamingBlocks(
                files, **dict(common, encoder=encoder_for(encoder, src)), keep_last=data_args.keep_last_block,
                split=split, holdout_percentage=holdout, shuffle_buffer=data_args.shuffle_buffer_size, seed=seed,
                rank=dist.rank, world=dist.world_size, loop=True, memory_guard=memory_guard))
            available[src.name] = src.num_tokens_avg or round(sum(f.size for f in files) / 3.5)
            if holdout > 0:
                eval_parts.append(MaterializedBlocks(StreamingBlocks(
                    files, **dict(common, encoder=encoder_for(encoder, src)), split="eval",
                    holdout_percentage=holdout, loop=False), DEFAULT_STREAMING_EVAL_BLOCKS // len(sources)))
        train = StreamingMixture(names, streams, shares, batch_size)
        if any(src.on_exhausted == "stop" for src in sources) or budgets or data_args.max_train_samples:
            logger.warning("streaming mixture: every source's stream repeats when it runs out (on_exhausted: stop, "
                           "token budgets and --max_train_samples apply to the token store only; here the shares "
                           "hold for the whole run and --max_steps ends it)")
        report = plan_report(sources, available, None)
        log_plan(report, "streaming; available sizes are estimates")
        document_aware = streams[0].document_aware
    else:
        datasets, available, infos = [], {}, {}
        for src in sources:
            corpus, info = prepare_store(src.paths, data_args, encoder_for(encoder, src), dist, src.origin)
            index = corpus.blocks(data_args.block_size, data_args.packing_strategy, data_args.keep_last_block,
                                  split, holdout)
            if index.n_blocks == 0:
                raise DataError(f"{src.origin}: the source is empty (no block of {data_args.block_size} tokens)")
            datasets.append(BlockDataset(corpus, index))
            available[src.name] = int(index.piece_len.sum())
            infos[src.name] = {**info, **index.stats()}
            if holdout > 0:
                eindex = corpus.blocks(data_args.block_size, data_args.packing_strategy, True, "eval", holdout)
                if eindex.n_blocks:
                    eval_parts.append(BlockDataset(corpus, eindex))
        train = MixtureDataset(names, datasets, shares, [s.on_exhausted for s in sources], seed,
                               budget=sum(s.tokens for s in sources) if budgets else None,
                               max_blocks=data_args.max_train_samples)
        planned_total = int(sum(int(train.block_tokens[s][b]) for s, b in zip(*train._order(0)[:2])))
        report = plan_report(sources, available, planned_total)
        for name, reps in train.repeats(0).items():
            report[name]["repeats_per_epoch"] = reps
            if reps:
                logger.warning("mixture source %r runs out before the epoch ends and is repeated %d time(s) per "
                               "epoch (on_exhausted: repeat)", name, reps)
        log_plan(report, f"{len(train):,} blocks per epoch")
        summary["train"] = {"blocks": len(train), "sources": infos}
        document_aware = datasets[0].document_aware
    summary["mixture"] = report
    eval_ds, einfo = _validation(data_args, encoder, dist, common)
    if eval_ds is None and eval_parts:
        eval_ds = torch.utils.data.ConcatDataset(eval_parts)
    if einfo:
        summary["eval"] = einfo
    summary.setdefault("train", {})

    def final_report(realized: dict) -> dict:
        total = sum(realized.values()) or 1
        out = {name: dict(entry, realized_tokens=int(realized.get(name, 0)),
                          realized_share=round(realized.get(name, 0) / total, 6))
               for name, entry in report.items()}
        logger.info("Mixture realized: %s", ", ".join(f"{n}={e['realized_tokens']:,} tokens "
                                                      f"({e['realized_share']:.2%})" for n, e in out.items()))
        return {"mixture": out}

    return PreparedData(train, eval_ds, document_aware, summary, report=final_report)
