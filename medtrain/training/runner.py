"""The training run shared by pretraining and SFT: setup, the resolved configuration (logged and saved),
data, model, Trainer, train (--do_train), evaluate (--do_eval, see `final_evaluation`), save, the loss
plot (training_loss.png) and the summary. Each entry point only chooses its argument
classes, its encoder and its defaults.

    def make_encoder(tokenizer, config) -> encoder      # TextEncoder for PT, a chat encoder for SFT
    run_training("pretraining", parse_run_args(...), make_encoder, default_data=DEMO_CORPUS)
"""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Callable, Optional

from transformers import set_seed

from medtrain.config.arguments import Parsed
from medtrain.config.run_config import RunConfig, resolve_run
from medtrain.data.collator import BlockCollator
from medtrain.data.mixture import MixtureDataset, MixtureEpochCallback
from medtrain.data.packing import padding_fraction
from medtrain.data.pipeline import build_datasets
from medtrain.data.streaming import stream_totals
from medtrain.errors import EXIT_BAD_INPUT, EXIT_MEMORY_GUARD, DataError, MemoryGuardError, Preempted
from medtrain.resilience.exit_protocol import no_restart
from medtrain.resilience.preemption import PreemptionCallback, exit_preempted
from medtrain.runtime.distributed import (DistInfo, ensure_launcher_env, finish, gather_object, init_deepspeed_backend,
                                          setup_logging, share_tokenizer_threads)
from medtrain.training.demo import ensure_demo_assets
from medtrain.training.modeling import load_model, load_tokenizer, max_positions
from medtrain.training.monitoring import (MemoryGuard, MemoryGuardCallback, RunSummary, SummaryCallback, peak_rss_mb,
                                         plot_losses)
from medtrain.training.trainer import MedTrainer, has_stream_state, load_stream_state

logger = logging.getLogger(__name__)


def demo_model(model_args) -> str:
    """The embedded tiny demo model, built into --demo_dir on first use."""
    path = ensure_demo_assets(model_args.demo_dir)
    logger.info("No --model_name_or_path: training the embedded tiny demo model (%s)", path)
    return path


def hub_dataset(model_args, data_args) -> str:
    """--dataset_name from the hub, saved once as a local dataset directory under the cache."""
    from medtrain.config.arguments import default_cache_dir
    from medtrain.data.sources import hub_dataset_dir

    return hub_dataset_dir(data_args.dataset_name, data_args.dataset_config_name,
                           data_args.cache_dir or default_cache_dir(), token=model_args.hf_hub_token)


def final_evaluation(config: RunConfig, has_eval_data: bool) -> bool:
    """Whether the run evaluates at its end, as transformers' example scripts decide it: --do_eval
    (given, or set by the Trainer from --eval_strategy when only --do_train is given); without either
    flag, whenever there is evaluation data (medtrain's default). --do_eval without data is an error."""
    typed, training = config.typed, config.training
    if "do_eval" in typed and training.do_eval and not has_eval_data:
        raise DataError("--do_eval: there is no evaluation data; give --validation_file_dir, or hold out part of "
                        "the training data with --validation_split_percentage (e.g. 1)")
    if not typed & {"do_train", "do_eval"}:
        return has_eval_data
    return bool(training.do_eval) and has_eval_data


def setup(task: str, parsed: Parsed, default_data: Optional[str] = None,
          resolve_task: Optional[Callable] = None) -> tuple[DistInfo, RunConfig]:
    """Logging, the resolved configuration (logged, and saved as run_config.json by rank 0), the seed."""
    training_args = parsed.objects[2]
    if training_args.deepspeed:
        ensure_launcher_env()
    dist = DistInfo.from_env()
    setup_logging(dist)
    share_tokenizer_threads(dist)
    config = resolve_run(task, parsed, dist.rank, default_model=demo_model, default_data=default_data,
                         resolve_task=resolve_task, has_stream_state=has_stream_state, locate_dataset=hub_dataset)
    if dist.is_main:
        config.log()
        logger.info("Run configuration saved to %s (rerun with: python <script> %s)", config.save(),
                    os.path.join(config.training.output_dir, "run_config.json"))
    set_seed(config.training.seed)
    return dist, config


def run_training(task: str, parsed: Parsed, make_encoder: Callable, default_data: Optional[str] = None,
                 resolve_task: Optional[Callable] = None, callbacks: Optional[list] = None,
                 extra_summary: Optional[Callable[[RunConfig, dict], dict]] = None,
                 make_model: Optional[Callable] = None, make_collator: Optional[Callable] = None,
                 make_trainer: Optional[Callable] = None, perplexity: bool = True) -> dict:
    """The whole run. `make_encoder(tokenizer, config)` gives the task's encoder; `extra_summary(config,
    summary so far)` returns task-specific entries for the summary. Tasks that train another objective
    (preference training) also give `make_model(config, tokenizer)`, `make_collator(tokenizer, data)` and
    `make_trainer(config, tokenizer, **trainer_kwargs)` (defaults: the causal LM, BlockCollator,
    MedTrainer), and `perplexity=False` when their eval loss is not a language-model loss."""
    dist, config = setup(task, parsed, default_data, resolve_task)
    model_args, data_args, training_args = config.model, config.data, config.training
    if config.complete is not None:
        if dist.is_main:
            logger.warning("The run in %s is complete: %s. Nothing to train (raise --max_steps to train further, or "
                           "pass a new --output_dir for a new run).", training_args.output_dir, config.complete)
        return {"complete": config.complete}
    summary = RunSummary(training_args.output_dir, is_main=dist.is_main)
    tokenizer = load_tokenizer(model_args, cache_dir=data_args.cache_dir)
    encoder = make_encoder(tokenizer, config)
    guard = MemoryGuard(data_args.memory_guard_threshold, data_args.memory_guard_stop)
    data = build_datasets(data_args, encoder, dist, training_args.data_seed or training_args.seed,
                          batch_size=training_args.per_device_train_batch_size, memory_guard=guard)
    resume = config.resume_from
    if data_args.streaming and resume:
        _resume_stream(data.train, config, dist)

    if training_args.deepspeed:
        init_deepspeed_backend(training_args.ddp_timeout)  # before the model, so ZeRO-3 partitions it as it loads
    evaluate_at_end = final_evaluation(config, data.eval is not None)
    if make_model is not None:
        model = make_model(config, tokenizer)
    else:
        model = load_model(model_args, tokenizer, gradient_checkpointing=training_args.gradient_checkpointing,
                           cache_dir=data_args.cache_dir, max_length=data_args.block_size)
    positions = max_positions(model)
    if positions and data_args.block_size > positions:
        raise ValueError(f"--block_size {data_args.block_size} is longer than the model's "
                         f"max_position_embeddings {positions}: lower --block_size")
    if training_args.gradient_checkpointing:
        model.config.use_cache = False

    collator = (make_collator(tokenizer, data) if make_collator is not None
                else BlockCollator(tokenizer.pad_token_id, data.document_aware))
    trainer_kwargs = dict(model=model, args=training_args, train_dataset=data.train, eval_dataset=data.eval,
                          data_collator=collator, processing_class=tokenizer, callbacks=callbacks)
    trainer = (make_trainer(config, tokenizer, **trainer_kwargs) if make_trainer is not None
               else MedTrainer(**trainer_kwargs))
    trainer.add_callback(SummaryCallback(summary, trainer.token_counts, perplexity=perplexity))
    trainer.add_callback(MemoryGuardCallback(guard, dist.rank))
    preemption = PreemptionCallback(resume)
    trainer.add_callback(preemption)
    if isinstance(data.train, MixtureDataset):  # each epoch has its own seeded order
        trainer.add_callback(MixtureEpochCallback(data.train))
    summary.update(task=task, world_size=dist.world_size, packing_strategy=data_args.packing_strategy,
                   block_size=data_args.block_size, **data.summary)

    metrics = {}
    if training_args.do_train:
        with preemption.training():  # SIGTERM/SIGUSR1: checkpoint saved, then Preempted (exit code 143)
            result = trainer.train(resume_from_checkpoint=resume)
        trainer.save_model()
        trainer.save_state()
        metrics.update(result.metrics)
    elif dist.is_main:
        logger.info("--do_eval without --do_train: no training, evaluating %s", model_args.model_name_or_path)
    if evaluate_at_end:
        ev = trainer.evaluate()
        metrics.update(ev)
        if perplexity:
            metrics["eval_perplexity"] = round(math.exp(min(50.0, ev["eval_loss"])), 4)
    trainer.log_metrics("train" if training_args.do_train else "eval", metrics)
    trainer.save_metrics("all", metrics)
    if dist.is_main:
        summary.update(loss_plot=plot_losses(trainer.state.log_history, training_args.output_dir))
    summary.update(batch_padding_fraction=trainer.batch_padding_fraction(),
                   group_by_length=data_args.group_by_length)
    if data_args.streaming:  # every reader's counters (dataloader workers included), summed over ranks
        per_rank = gather_object(stream_totals(trainer.cursor_tracker.reader_counts()
                                               if trainer.cursor_tracker is not None else []))
        totals = stream_totals(per_rank)
        totals["padding_fraction"] = padding_fraction(totals.get("tokens_in_blocks", 0),
                                                      totals.get("blocks", 0) * data_args.block_size)
        summary.update(streaming={**totals, "per_rank": per_rank})
    summary.update(metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    summary.update(peak_memory_mb_per_rank=gather_object(peak_rss_mb()),
                   stores_per_rank=gather_object(data.summary["train"].get("stores")))
    if data.report is not None:  # mixtures: realized tokens per source, summed over ranks
        realized: dict = {}
        for part in gather_object(trainer.source_tokens):
            for name, n in part.items():
                realized[name] = realized.get(name, 0) + n
        summary.update(**data.report(realized))
    if extra_summary is not None:
        summary.update(**extra_summary(config, summary.data))
    out = summary.finish()
    if dist.is_main and "eval_perplexity" in metrics:
        logger.info("Final perplexity on the validation set: %.2f", metrics["eval_perplexity"])
    return out


def _resume_stream(dataset, config: RunConfig, dist: DistInfo) -> None:
    """Restore the streaming position saved with the checkpoint, and turn off the Trainer's own
    skipping of batches (which would read and tokenize everything before the checkpoint again)."""
    checkpoint = config.resume_from  # a path: checkpoints.resolve_resume has chosen the checkpoint
    if not has_stream_state(checkpoint, dist.rank):
        logger.warning("%s has no streaming position (data_state/); the Trainer will replay the stream up to "
                       "the checkpoint's step", checkpoint)
        return
    if "ignore_data_skip" in config.given:
        logger.warning("--ignore_data_skip: the stream restarts from its beginning (documents already trained on "
                       "will be seen again)")
        return
    dataset.load_state_dict(load_stream_state(checkpoint, dist.rank), config.training.dataloader_num_workers)
    logger.info("Resuming the stream of rank %d from %s at its saved position (no replay)", dist.rank, checkpoint)


def run_main(run: Callable, argv: Optional[list[str]] = None) -> int:
    """Run an entry point: bad input ends with its message and exit code 2, a memory-guard stop with
    exit code 3, a preemption (SIGTERM/SIGUSR1, checkpoint saved) with 143, not a traceback."""
    try:
        run(argv)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return no_restart(EXIT_BAD_INPUT)
    except MemoryGuardError as e:
        print(f"error: {e}", file=sys.stderr)
        return no_restart(EXIT_MEMORY_GUARD)
    except Preempted as e:
        return exit_preempted(e)
    finish()
    return 0
