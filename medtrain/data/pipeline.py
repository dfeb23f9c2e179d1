"""From data arguments to the training and evaluation datasets: the only entry the runner uses.

Every run is a list of *sources* blended by token shares: one source (`--train_file_dir`, share 1)
or the sources of `--mixture` files. Each source goes through one of two paths, which share every
step up to the dataset (`documents`, `packing`, `rows`):

    prepared (default)  token_store.prepare_store -> TokenCorpus.blocks -> BlockDataset
    streaming           StreamingBlocks (reads, encodes and packs while training)

then, with several sources, `mixture` blends their datasets (MixtureDataset or StreamingMixture).
The evaluation set is built in one place (`_evaluation`): `--validation_file_dir` on the same path,
or the documents each source holds out (`validation_split_percentage`, the hold-out rule of
`documents`), the same documents on both paths.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from medtrain.config.arguments import DataArguments
from medtrain.data.block_dataset import BlockDataset, MaterializedBlocks
from medtrain.data.encoding import Encoder
from medtrain.data.mixture import (MixtureDataset, Source, StreamingMixture, load_mixtures, log_plan, plan_report,
                                   realized_report)
from medtrain.data.sources import plan_units
from medtrain.data.streaming import StreamingBlocks
from medtrain.data.token_store import prepare_store, resolve_inputs
from medtrain.data.token_store.builder import input_report
from medtrain.errors import DataError
from medtrain.runtime.distributed import DistInfo

logger = logging.getLogger(__name__)

DEFAULT_STREAMING_EVAL_BLOCKS = 256
STREAM_SAMPLE_UNITS = 64  # work units whose first documents verify a tokenizer backend for a stream


@dataclass
class PreparedData:
    train: torch.utils.data.Dataset
    eval: Optional[torch.utils.data.Dataset]
    document_aware: bool
    summary: dict = field(default_factory=dict)
    report: Optional[Callable] = None  # report(realized tokens per source, all ranks) -> summary entries


@dataclass
class Part:
    """One source on one path: its training dataset, what it holds out, and what the summary says."""

    dataset: torch.utils.data.Dataset
    held_out: Optional[torch.utils.data.Dataset]
    available_tokens: int
    summary: dict
    document_aware: bool


def build_datasets(data_args: DataArguments, encoder: Encoder, dist: DistInfo, seed: int, batch_size: int = 1,
                   memory_guard=None) -> PreparedData:
    """Train and eval datasets for `encoder`'s records (pretraining text, or SFT conversations).
    `batch_size` is the per-device batch size (the streaming dataset yields whole batches)."""
    holdout = 0.0 if data_args.validation_file_dir else data_args.validation_split_percentage
    mixture = bool(data_args.mixture)
    if mixture:
        sources = load_mixtures(data_args.mixture)
    else:
        sources = [Source("train", list(data_args.train_file_dir or []), weight=1.0, origin="--train_file_dir",
                          share=1.0)]
    path_cls = StreamingPath if data_args.streaming else StorePath
    path = path_cls(data_args, encoder, dist, seed, batch_size, memory_guard, holdout, n_sources=len(sources))
    parts = [path.part(src, single=not mixture) for src in sources]
    summary: dict = {"data_path": path.name}
    report = None
    if mixture:
        train, summary["train"], plan = path.blend(sources, parts)
        summary["mixture"] = plan
        report = lambda realized: {"mixture": realized_report(plan, realized)}  # noqa: E731
    else:
        train, summary["train"] = parts[0].dataset, parts[0].summary
    eval_ds, eval_summary = _evaluation(path, data_args, parts, holdout, single=not mixture)
    if eval_summary:
        summary["eval"] = eval_summary
    return PreparedData(train, eval_ds, parts[0].document_aware, summary, report)


def _evaluation(path, data_args: DataArguments, parts: list[Part], holdout: float, single: bool):
    """The evaluation set: --validation_file_dir, or what the sources hold out; None without either."""
    if data_args.validation_file_dir:
        ds, summary = path.validation(data_args.validation_file_dir)
    else:
        held = [p.held_out for p in parts if p.held_out is not None]
        if not held:
            if holdout > 0 and not data_args.streaming:
                logger.warning("validation_split_percentage %s%% held out no document of this corpus: no evaluation",
                               holdout)
            return None, {}
        ds = held[0] if len(held) == 1 else torch.utils.data.ConcatDataset(held)
        summary = parts[0].summary.pop("eval") if single and "eval" in parts[0].summary else {}
    if data_args.max_eval_samples and not data_args.streaming and data_args.max_eval_samples < len(ds):
        ds = torch.utils.data.Subset(ds, range(data_args.max_eval_samples))
    return ds, summary


class StorePath:
    """The prepared path: each source tokenized once into a token store (or given as one), packed by
    the block index of the run's block size and strategy."""

    name = "token_store"

    def __init__(self, data_args: DataArguments, encoder: Encoder, dist: DistInfo, seed: int, batch_size: int,
                 memory_guard, holdout: float, n_sources: int = 1):
        self.args, self.encoder, self.dist, self.seed = data_args, encoder, dist, seed
        self.holdout = holdout
        self.split = "train" if holdout > 0 else "all"

    def part(self, src: Source, single: bool) -> Part:
        a = self.args
        corpus, info = prepare_store(src.paths, a, self.encoder.for_source(src.text_field), self.dist, src.origin)
        index = corpus.blocks(a.block_size, a.packing_strategy, a.keep_last_block, self.split, self.holdout)
        if index.n_blocks == 0:
            raise DataError(f"{src.origin}: no training block: the corpus has {info['tokens']} tokens for block_size "
                            f"{a.block_size} (keep the last partial block with --keep_last_block true)")
        full = index
        if single and a.max_train_samples:  # a mixture caps its blended order instead
            index = (index.sample(a.max_train_samples, self.seed) if a.max_train_samples_mode == "random"
                     else index.select(a.max_train_samples))
        summary = {**info, **index.stats()}
        if single and a.packing_strategy != "concat":  # what document-aware packing costs or saves
            summary["concat_for_comparison"] = full.concat_comparison()  # from the lengths, while packing
        held = None
        if self.holdout > 0:
            summary["documents"] = full.documents_in_split
            eindex = corpus.blocks(a.block_size, a.packing_strategy, True, "eval", self.holdout)
            if eindex.n_blocks:
                held = BlockDataset(corpus, eindex)
                summary["eval"] = {"documents": eindex.documents_in_split, **eindex.stats()}
        return Part(BlockDataset(corpus, index), held, summary["tokens_in_blocks"], summary, index.document_aware)

    def validation(self, paths) -> tuple[torch.utils.data.Dataset, dict]:
        a = self.args
        corpus, info = prepare_store(paths, a, self.encoder, self.dist, "--validation_file_dir")
        index = corpus.blocks(a.block_size, a.packing_strategy, True, "all", 0.0)
        return BlockDataset(corpus, index), {**info, **index.stats()}

    def blend(self, sources: list[Source], parts: list[Part]):
        a = self.args
        budgets = sources[0].tokens is not None
        train = MixtureDataset([s.name for s in sources], [p.dataset for p in parts], [s.share for s in sources],
                               [s.on_exhausted for s in sources], self.seed,
                               budget=sum(s.tokens for s in sources) if budgets else None,
                               max_blocks=a.max_train_samples)
        plan = plan_report(sources, {s.name: p.available_tokens for s, p in zip(sources, parts)},
                           train.planned_tokens())
        for name, reps in train.repeats(0).items():
            plan[name]["repeats_per_epoch"] = reps
            if reps:
                logger.warning("mixture source %r runs out before the epoch ends and is repeated %d time(s) per "
                               "epoch (on_exhausted: repeat)", name, reps)
        log_plan(plan, f"{len(train):,} blocks per epoch")
        for p in parts:
            p.summary.pop("eval", None)
        summary = {"blocks": len(train), "sources": {s.name: p.summary for s, p in zip(sources, parts)}}
        return train, summary, plan


class StreamingPath:
    """The lazy path: each source read, encoded and packed while training (`StreamingBlocks`)."""

    name = "streaming"

    def __init__(self, data_args: DataArguments, encoder: Encoder, dist: DistInfo, seed: int, batch_size: int,
                 memory_guard, holdout: float, n_sources: int = 1):
        self.args, self.encoder, self.dist, self.seed = data_args, encoder, dist, seed
        self.batch_size, self.memory_guard, self.holdout = batch_size, memory_guard, holdout
        self.split = "train" if holdout > 0 else "all"
        self.eval_limit = data_args.max_eval_samples or DEFAULT_STREAMING_EVAL_BLOCKS
        self.held_out_limit = max(1, self.eval_limit // max(1, n_sources))  # each source's share
        self.scans: list = []

    def _files(self, paths, origin: str):
        stores, scan = resolve_inputs(paths, origin, self.args.skip_bad_lines)
        if stores:
            raise DataError(f"{origin}: --streaming reads raw files; {stores[0]} is a prepared token store (drop "
                            "--streaming to train on it)")
        self.scans.append(scan)
        return scan.files

    def _stream(self, files, encoder: Encoder, **kw) -> StreamingBlocks:
        a = self.args
        return StreamingBlocks(files, encoder=encoder, block_size=a.block_size, strategy=a.packing_strategy,
                               skip_bad=a.skip_bad_lines, max_chars=a.max_document_chars, **kw)

    def part(self, src: Source, single: bool) -> Part:
        a = self.args
        files = self._files(src.paths, src.origin)
        encoder = self._with_backend(self.encoder.for_source(src.text_field), files)
        train = self._stream(files, encoder, keep_last=a.keep_last_block, split=self.split,
                             holdout_percentage=self.holdout, shuffle_buffer=a.shuffle_buffer_size, seed=self.seed,
                             rank=self.dist.rank, world=self.dist.world_size, loop=True,
                             max_blocks=a.max_train_samples if single else None,
                             batch_size=self.batch_size if single else 1,
                             group_by_length=a.group_by_length if single else False,
                             memory_guard=self.memory_guard)
        held = None
        if self.holdout > 0:
            held = MaterializedBlocks(self._stream(files, encoder, split="eval", holdout_percentage=self.holdout,
                                                   loop=False), self.held_out_limit)
        available = src.num_tokens_avg or round(sum(f.size for f in files) / 3.5)
        return Part(train, held, available, input_report(self.scans[-1], {"files": len(files)}), train.document_aware)

    def _with_backend(self, encoder: Encoder, files) -> Encoder:
        """The encoder on the backend --tokenizer_backend chooses, verified on records drawn from these files
        (pretraining text, SFT conversations and preference pairs alike)."""
        if not hasattr(encoder, "with_backend"):
            return encoder
        # every rank repeats this at every start: a bounded sample spread over the corpus (a store build reads
        # every unit's first documents, once)
        return encoder.with_backend(self.args.tokenizer_backend, plan_units(files), max_units=STREAM_SAMPLE_UNITS)

    def validation(self, paths) -> tuple[torch.utils.data.Dataset, dict]:
        files = self._files(paths, "--validation_file_dir")
        return MaterializedBlocks(self._stream(files, self._with_backend(self.encoder, files), loop=False),
                                  self.eval_limit), {}

    def blend(self, sources: list[Source], parts: list[Part]):
        a = self.args
        train = StreamingMixture([s.name for s in sources], [p.dataset for p in parts], [s.share for s in sources],
                                 self.batch_size)
        if any(s.on_exhausted == "stop" for s in sources) or sources[0].tokens is not None or a.max_train_samples:
            logger.warning("streaming mixture: every source's stream repeats when it runs out (on_exhausted: stop, "
                           "token budgets and --max_train_samples apply to the token store only; here the shares "
                           "hold for the whole run and --max_steps ends it)")
        plan = plan_report(sources, {s.name: p.available_tokens for s, p in zip(sources, parts)}, None)
        log_plan(plan, "streaming; available sizes are estimates")
        return train, {}, plan
