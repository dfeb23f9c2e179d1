"""Continued pretraining: the whole run behind `pretraining.py`.

parse arguments -> tokenizer -> datasets (token store or streaming) -> model -> Trainer -> train,
evaluate (perplexity), save -> run summary. With no model given, the embedded demo (a tiny Llama
and tokenizer built locally) trains on data/pretrain.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Optional

from transformers import TrainingArguments, set_seed

from .arguments import DataArguments, ModelArguments, parse_args
from .collator import BlockCollator
from .data_pipeline import build_datasets, streaming_stats
from .demo import DEMO_CORPUS, ensure_demo_assets
from .distributed import DistInfo, ensure_launcher_env, finish, gather_object, init_deepspeed_backend, setup_logging
from .modeling import load_model, load_tokenizer, max_positions
from .monitoring import RunSummary, SummaryCallback, peak_rss_mb
from .sources import DataError
from .tokenization import TextEncoder, spec_from_tokenizer
from .trainer import MedTrainer

logger = logging.getLogger(__name__)

# Used when no model is given: the demo trains the tiny model on data/pretrain in about a minute.
# User flags come after these, so they override them.
DEMO_FLAGS = ["--block_size", "128", "--per_device_train_batch_size", "8", "--learning_rate", "3e-3",
              "--warmup_steps", "30", "--lr_scheduler_type", "cosine", "--max_steps", "1000",
              "--logging_steps", "50", "--eval_strategy", "steps", "--eval_steps", "250",
              "--save_steps", "500", "--output_dir", "outputs/demo", "--validation_split_percentage", "5",
              "--num_proc", "1", "--seed", "42"]


def parse_pretraining_args(argv: Optional[list[str]] = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    demo = not any(a.split("=")[0] == "--model_name_or_path" for a in argv) and not (
        argv and argv[0].endswith((".json", ".yaml", ".yml")))
    if demo:
        argv = DEMO_FLAGS + argv
    model_args, data_args, training_args = parse_args((ModelArguments, DataArguments, TrainingArguments), argv)
    return model_args, data_args, training_args


def _resume_arg(value):
    if value is None:
        return None
    if str(value).lower() in ("true", "latest", "last"):
        return True
    if str(value).lower() in ("false", "none", ""):
        return None
    return value


def run(argv: Optional[list[str]] = None) -> dict:
    model_args, data_args, training_args = parse_pretraining_args(argv)
    if training_args.deepspeed:
        ensure_launcher_env()
    dist = DistInfo.from_env()
    setup_logging(dist)
    summary = RunSummary(training_args.output_dir, is_main=dist.is_main)
    set_seed(training_args.seed)

    if model_args.model_name_or_path is None:
        model_args.model_name_or_path = ensure_demo_assets(model_args.demo_dir)
        logger.info("No --model_name_or_path: training the embedded tiny demo model (%s)",
                    model_args.model_name_or_path)
    if not data_args.train_file_dir:
        data_args.train_file_dir = [DEMO_CORPUS]
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps: a stream has no length to derive the number of steps "
                         "from (e.g. --max_steps 10000)")

    tokenizer = load_tokenizer(model_args)
    limit = model_args.model_max_length
    if limit and data_args.block_size > limit:
        logger.warning("--block_size %d is over --model_max_length %d: using %d", data_args.block_size, limit, limit)
        data_args.block_size = limit
    spec = spec_from_tokenizer(tokenizer, data_args.add_bos_token, data_args.add_eos_token)
    encoder = TextEncoder(spec, data_args.text_field)
    data = build_datasets(data_args, encoder, dist, training_args.data_seed or training_args.seed)

    if training_args.deepspeed:
        init_deepspeed_backend()  # before the model, so ZeRO-3 partitions it as it loads
    model = load_model(model_args, tokenizer, gradient_checkpointing=training_args.gradient_checkpointing)
    positions = max_positions(model)
    if positions and data_args.block_size > positions:
        raise ValueError(f"--block_size {data_args.block_size} is longer than the model's "
                         f"max_position_embeddings {positions}: lower --block_size")
    if training_args.gradient_checkpointing:
        model.config.use_cache = False

    collator = BlockCollator(tokenizer.pad_token_id, data.document_aware)
    trainer = MedTrainer(model=model, args=training_args, train_dataset=data.train,
                         eval_dataset=data.eval,
                         data_collator=collator, processing_class=tokenizer)
    trainer.add_callback(SummaryCallback(summary, trainer.token_counts))
    summary.update(world_size=dist.world_size, packing_strategy=data_args.packing_strategy,
                   block_size=data_args.block_size, **data.summary)

    result = trainer.train(resume_from_checkpoint=_resume_arg(training_args.resume_from_checkpoint))
    trainer.save_model()
    trainer.save_state()
    metrics = dict(result.metrics)
    if data.eval is not None:
        ev = trainer.evaluate()
        metrics.update(ev)
        metrics["eval_perplexity"] = round(math.exp(min(50.0, ev["eval_loss"])), 4)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("all", metrics)
    if data_args.streaming:
        summary.update(streaming=streaming_stats(data))
    summary.update(metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    summary.update(peak_memory_mb_per_rank=gather_object(peak_rss_mb()),
                   stores_per_rank=gather_object(data.summary["train"].get("stores")))
    out = summary.finish()
    if dist.is_main and "eval_perplexity" in metrics:
        logger.info("Final perplexity on the validation set: %.2f", metrics["eval_perplexity"])
    return out


def main(argv: Optional[list[str]] = None) -> int:
    try:
        run(argv)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finish()
    return 0
