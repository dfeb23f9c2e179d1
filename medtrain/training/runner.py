"""The training run shared by pretraining and SFT: setup, data, model, Trainer, train, evaluate,
save, summary. Each entry point only chooses its argument classes, its encoder and its defaults.

    def make_encoder(tokenizer, data_args) -> encoder      # TextEncoder for PT, a chat encoder for SFT
    run_training(model_args, data_args, training_args, make_encoder, task="pretraining")
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Callable, Optional

from transformers import set_seed

from medtrain.data.collator import BlockCollator
from medtrain.data.pipeline import build_datasets
from medtrain.training.demo import ensure_demo_assets
from medtrain.runtime.distributed import DistInfo, ensure_launcher_env, finish, gather_object, init_deepspeed_backend, setup_logging
from medtrain.training.modeling import load_model, load_tokenizer, max_positions
from medtrain.training.monitoring import MemoryGuard, MemoryGuardCallback, RunSummary, SummaryCallback, peak_rss_mb
from medtrain.errors import EXIT_BAD_INPUT, EXIT_MEMORY_GUARD, DataError, MemoryGuardError, Preempted
from medtrain.resilience.checkpoints import AUTO, resolve_resume
from medtrain.resilience.exit_protocol import no_restart
from medtrain.resilience.preemption import PreemptionCallback, exit_preempted
from medtrain.training.trainer import MedTrainer, load_stream_state

logger = logging.getLogger(__name__)


def resume_arg(value):
    """--resume_from_checkpoint: a path; true/latest for the newest complete checkpoint in output_dir;
    auto: that, or a fresh start when there is none (resolved by resilience.resolve_resume)."""
    if value is None:
        return None
    if str(value).lower() == AUTO:
        return AUTO
    if str(value).lower() in ("true", "latest", "last"):
        return True
    if str(value).lower() in ("false", "none", ""):
        return None
    return value


def setup(training_args) -> tuple[DistInfo, RunSummary]:
    if training_args.deepspeed:
        ensure_launcher_env()
    dist = DistInfo.from_env()
    setup_logging(dist)
    set_seed(training_args.seed)
    return dist, RunSummary(training_args.output_dir, is_main=dist.is_main)


def run_training(model_args, data_args, training_args, make_encoder: Callable, task: str = "pretraining",
                 default_data: Optional[str] = None, callbacks: Optional[list] = None,
                 extra_summary: Optional[Callable[[dict], dict]] = None) -> dict:
    """The whole run. `extra_summary(summary so far)` returns task-specific entries for the summary."""
    dist, summary = setup(training_args)
    if model_args.model_name_or_path is None:
        model_args.model_name_or_path = ensure_demo_assets(model_args.demo_dir)
        logger.info("No --model_name_or_path: training the embedded tiny demo model (%s)",
                    model_args.model_name_or_path)
    if not data_args.train_file_dir and not data_args.mixture and default_data:
        data_args.train_file_dir = [default_data]
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps: a stream has no length to derive the number of steps "
                         "from (e.g. --max_steps 10000)")

    tokenizer = load_tokenizer(model_args)
    limit = model_args.model_max_length
    if limit and data_args.block_size > limit:
        logger.warning("--block_size %d is over --model_max_length %d: using %d", data_args.block_size, limit, limit)
        data_args.block_size = limit
    encoder = make_encoder(tokenizer, data_args)
    guard = MemoryGuard(data_args.memory_guard_threshold, data_args.memory_guard_stop)
    data = build_datasets(data_args, encoder, dist, training_args.data_seed or training_args.seed,
                          batch_size=training_args.per_device_train_batch_size, memory_guard=guard)
    if data_args.group_by_length and not data_args.streaming:
        training_args.train_sampling_strategy = "group_by_length"
    resume = resolve_resume(resume_arg(training_args.resume_from_checkpoint), training_args.output_dir, dist.rank)
    if data_args.streaming and resume:
        _resume_stream(data.train, resume, training_args, dist)

    if training_args.deepspeed:
        init_deepspeed_backend(training_args.ddp_timeout)  # before the model, so ZeRO-3 partitions it as it loads
    model = load_model(model_args, tokenizer, gradient_checkpointing=training_args.gradient_checkpointing)
    positions = max_positions(model)
    if positions and data_args.block_size > positions:
        raise ValueError(f"--block_size {data_args.block_size} is longer than the model's "
                         f"max_position_embeddings {positions}: lower --block_size")
    if training_args.gradient_checkpointing:
        model.config.use_cache = False

    collator = BlockCollator(tokenizer.pad_token_id, data.document_aware)
    trainer = MedTrainer(model=model, args=training_args, train_dataset=data.train, eval_dataset=data.eval,
                         data_collator=collator, processing_class=tokenizer, callbacks=callbacks)
    trainer.add_callback(SummaryCallback(summary, trainer.token_counts))
    trainer.add_callback(MemoryGuardCallback(guard, dist.rank))
    preemption = PreemptionCallback(resume)
    trainer.add_callback(preemption)
    if hasattr(data.train, "set_epoch"):  # a mixture: each epoch has its own seeded order
        from medtrain.data.mixture import MixtureEpochCallback

        trainer.add_callback(MixtureEpochCallback(data.train))
        training_args.train_sampling_strategy = "sequential"  # the blended order is the order
    summary.update(task=task, world_size=dist.world_size, packing_strategy=data_args.packing_strategy,
                   block_size=data_args.block_size, **data.summary)

    with preemption.training():  # SIGTERM/SIGUSR1: checkpoint saved, then Preempted (exit code 143)
        result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    trainer.save_state()
    metrics = dict(result.metrics)
    if data.eval is not None:
        ev = trainer.evaluate()
        metrics.update(ev)
        metrics["eval_perplexity"] = round(math.exp(min(50.0, ev["eval_loss"])), 4)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("all", metrics)
    summary.update(batch_padding_fraction=trainer.batch_padding_fraction(),
                   group_by_length=data_args.group_by_length)
    if data_args.streaming:
        summary.update(streaming=data.stream_summary())
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
        summary.update(**extra_summary(summary.data))
    out = summary.finish()
    if dist.is_main and "eval_perplexity" in metrics:
        logger.info("Final perplexity on the validation set: %.2f", metrics["eval_perplexity"])
    return out


def _resume_stream(dataset, resume: str, training_args, dist: DistInfo) -> None:
    """Restore the streaming position saved with the checkpoint, and turn off the Trainer's own
    skipping of batches (which would read and tokenize everything before the checkpoint again)."""
    if training_args.ignore_data_skip:
        logger.warning("--ignore_data_skip: the stream restarts from its beginning (documents already trained on "
                       "will be seen again)")
        return
    checkpoint = resume  # a path: resilience.resolve_resume has chosen the checkpoint
    state = load_stream_state(checkpoint, dist.rank)
    if state is None:
        logger.warning("%s has no streaming position (data_state/); the Trainer will replay the stream up to "
                       "the checkpoint's step", checkpoint)
        return
    dataset.load_state_dict(state, training_args.dataloader_num_workers)
    training_args.ignore_data_skip = True
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
