"""Continued pretraining: the run behind `pretraining.py`.

Documents are encoded by `TextEncoder` (text + EOS, every token trained; with --keep_linebreaks a .txt
line keeps its line break, `LinebreakTextEncoder`) and the shared runner does the rest
(`runner.run_training`). With no model given, the embedded demo (a tiny Llama and tokenizer
built locally) trains on data/pretrain.
"""

from __future__ import annotations

import sys
from typing import Optional

from transformers import TrainingArguments

from medtrain.config.arguments import DataArguments, ModelArguments, Parsed, parse_run_args
from medtrain.config.run_config import RunConfig
from medtrain.training.demo import DEMO_CORPUS
from medtrain.training.runner import run_main, run_training
from medtrain.data.tokenization import LinebreakTextEncoder, TextEncoder, load_tokenizer_spec  # noqa: F401

# Used when no model is given: the demo trains the tiny model on data/pretrain in about a minute.
# User flags come after these, so they override them.
DEMO_FLAGS = ["--block_size", "128", "--per_device_train_batch_size", "8", "--learning_rate", "3e-3",
              "--warmup_steps", "30", "--lr_scheduler_type", "cosine", "--max_steps", "1000",
              "--logging_steps", "50", "--eval_strategy", "steps", "--eval_steps", "250",
              "--save_steps", "500", "--output_dir", "outputs/demo", "--validation_split_percentage", "5",
              "--num_proc", "1", "--seed", "42"]


def uses_demo(argv: list[str]) -> bool:
    """No model and no config file: run the embedded demo with its defaults."""
    return not any(a.split("=")[0] in ("--model_name_or_path", "--model-name-or-path") for a in argv) and not (
        argv and argv[0].endswith((".json", ".yaml", ".yml")))


def parse_pretraining_args(argv: Optional[list[str]] = None) -> Parsed:
    argv = list(sys.argv[1:] if argv is None else argv)
    if uses_demo(argv):
        argv = DEMO_FLAGS + argv
    return parse_run_args((ModelArguments, DataArguments, TrainingArguments), argv)


def text_encoder(tokenizer, config: RunConfig) -> TextEncoder:
    data_args = config.data
    spec = load_tokenizer_spec(tokenizer.name_or_path, data_args.add_bos_token, data_args.add_eos_token, tokenizer)
    cls = LinebreakTextEncoder if data_args.keep_linebreaks else TextEncoder
    return cls(spec, data_args.text_field)


def run(argv: Optional[list[str]] = None) -> dict:
    return run_training("pretraining", parse_pretraining_args(argv), text_encoder, default_data=DEMO_CORPUS)


def main(argv: Optional[list[str]] = None) -> int:
    return run_main(run, argv)


def console() -> None:
    """The console script (`pip install` puts it on PATH)."""
    from medtrain.runtime.distributed import exit_process

    exit_process(main())
