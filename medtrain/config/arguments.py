"""Command-line and config-file arguments, shared by every entry script.

Arguments are dataclasses parsed by `transformers.HfArgumentParser`, so they come from flags
(`--block_size 512`), from one JSON or YAML file (`pretraining.py config.yaml`), or from a file
followed by flags that override it. The names are the ones MedicalGPT users already type; an
unknown or misspelled flag is an error, never silently dropped.

Defaults that depend on the machine are filled here, before `TrainingArguments` is built:
`use_cpu` when there is no GPU (without it, torchrun on CPU silently trains each rank alone) and
`bf16` on GPUs that support it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from medtrain.errors import DataError

PACKING_STRATEGIES = ("concat", "group_by_text", "best_fit", "none")


class ArgumentError(DataError, ValueError):
    """A flag that cannot be used as given: the entry points print its message and exit with code 2."""


# Flags MedicalGPT users type that have no place here, each with what to use instead. MedicalGPT parses
# Seq2SeqTrainingArguments (its generation flags) and older transformers (renamed flags); a flag in this
# table is an error naming the replacement, never accepted and ignored.
REJECTED_FLAGS = {
    "max_source_length": "use --model_max_length: one length for the whole conversation (longer ones are cut "
                         "at turn boundaries, counted in the summary)",
    "max_target_length": "use --model_max_length: one length for the whole conversation (longer ones are cut "
                         "at turn boundaries, counted in the summary)",
    "evaluation_strategy": "transformers renamed it: use --eval_strategy",
    "warmup_ratio": "use --warmup_steps with the same value: below 1 it is a ratio of the steps (transformers 5 "
                    "folded warmup_ratio into it)",
    "overwrite_output_dir": "not needed: a run writes into --output_dir whatever is there; "
                            "--resume_from_checkpoint auto continues a run, a new --output_dir starts afresh",
    "predict_with_generate": "evaluation here reports loss and perplexity, it does not generate: drop the flag "
                             "and generate with the trained model afterwards (merge_peft_adapter.py, then "
                             "transformers or vLLM)",
    "generation_max_length": "evaluation here does not generate (loss and perplexity); drop the flag",
    "generation_num_beams": "evaluation here does not generate (loss and perplexity); drop the flag",
    "generation_config": "evaluation here does not generate (loss and perplexity); drop the flag",
    "sortish_sampler": "use --group_by_length true (rows of similar length in the same batch)",
}


def check_rejected(argv: list[str], accepted: frozenset = frozenset()) -> None:
    """ArgumentError for every flag of REJECTED_FLAGS in argv, each with what to use instead (except those
    the entry point's own argument classes define: `accepted`, e.g. preference training's lengths)."""
    found = []
    for a in argv:
        name = a[2:].split("=", 1)[0].replace("-", "_") if a.startswith("--") else None
        if name in REJECTED_FLAGS and name not in accepted and name not in [n for n, _ in found]:
            found.append((name, REJECTED_FLAGS[name]))
    if found:
        raise ArgumentError("unsupported flag(s):\n  " + "\n  ".join(f"--{n}: {why}" for n, why in found))


class FrozenAfterResolve:
    """Argument dataclasses whose values are settled once (`run_config.resolve_run`), then frozen."""

    def freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name, value):
        if self.__dict__.get("_frozen"):
            raise AttributeError(f"{type(self).__name__}.{name} is frozen: arguments are resolved once, in "
                                 "medtrain.config.run_config.resolve_run")
        object.__setattr__(self, name, value)


@dataclass
class ModelArguments(FrozenAfterResolve):
    """Which model and tokenizer to train, and how to load them."""

    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "Local path or hub name of the model to train. Leave empty to build and train the "
                          "embedded tiny demo model (a tiny Llama and a BPE tokenizer trained on data/pretrain)."},
    )
    tokenizer_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "Tokenizer path or name, if different from model_name_or_path."}
    )
    torch_dtype: str = field(
        default="auto",
        metadata={"help": "Dtype to load the weights in: auto (bfloat16 on GPUs that support it, float32 on CPU), "
                          "bfloat16, float16 or float32.",
                  "choices": ["auto", "bfloat16", "float16", "float32"]},
    )
    attn_implementation: str = field(
        default="auto",
        metadata={"help": "Attention kernel: auto (flash_attention_2 when installed and on a GPU, else sdpa), "
                          "flash_attention_2, sdpa or eager."},
    )
    model_max_length: Optional[int] = field(
        default=None,
        metadata={"help": "Longest sequence the model is trained on; block_size is capped to it (with a warning)."},
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub."})
    demo_dir: str = field(
        default="demo_assets",
        metadata={"help": "Where the embedded demo model and tokenizer are built when no model is given."},
    )
    use_peft: bool = field(default=False, metadata={"help": "Train a LoRA adapter (PEFT) instead of all weights."})
    target_modules: str = field(
        default="all",
        metadata={"help": "LoRA target modules, comma-separated (e.g. q_proj,v_proj), or 'all': every linear "
                          "layer of the model except the output head, found by inspecting the model."},
    )
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank r."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha (scaling = alpha / rank)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    modules_to_save: Optional[str] = field(
        default=None,
        metadata={"help": "Modules trained fully and saved with the adapter, comma-separated "
                          "(e.g. embed_tokens,lm_head when the tokenizer grew)."},
    )
    peft_path: Optional[str] = field(default=None, metadata={"help": "An existing adapter to continue training."})
    load_in_8bit: bool = field(default=False, metadata={"help": "Load the base model in 8 bits (bitsandbytes, GPU)."})
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: load the base model in 4 bits (bitsandbytes, GPU) and train LoRA."}
    )
    qlora: bool = field(
        default=False,
        metadata={"help": "MedicalGPT's QLoRA switch: the same as --load_in_4bit true --use_peft true (4-bit NF4 "
                          "with double quantization, bitsandbytes, GPU)."},
    )
    model_revision: str = field(
        default="main", metadata={"help": "The model version on the hub: a branch, tag or commit id."}
    )
    hf_hub_token: Optional[str] = field(
        default=None,
        metadata={"help": "Hugging Face hub token, for private or gated models and datasets (never written to "
                          "run_config.json; give it again on a rerun, or use HF_TOKEN)."},
    )
    use_fast_tokenizer: bool = field(
        default=True,
        metadata={"help": "medtrain reads fast tokenizers (tokenizer.json) only; false is an error. (MedicalGPT's "
                          "default is false, the slow tokenizer where a model has one.)"},
    )
    device_map: Optional[str] = field(
        default=None,
        metadata={"help": "Where a single process puts the model: auto (spread over the visible GPUs, model "
                          "parallel), cpu, cuda:0, ... Under torchrun or DeepSpeed each rank holds its own copy and "
                          "device_map is not used (a note in run_config.json says so), as in MedicalGPT."},
    )
    rope_scaling: Optional[str] = field(
        default=None,
        metadata={"help": "Scaled rotary position embeddings, to train beyond the model's max_position_embeddings: "
                          "linear, dynamic (NTK) or yarn. The factor is ceil(model_max_length / "
                          "max_position_embeddings), set in the model config (saved with the model).",
                  "choices": ["linear", "dynamic", "yarn"]},
    )
    flash_attn: bool = field(
        default=False,
        metadata={"help": "FlashAttention-2 (--attn_implementation flash_attention_2) where the flash_attn package "
                          "is installed and a GPU is present; elsewhere a warning and sdpa, as in MedicalGPT."},
    )
    shift_attn: bool = field(
        default=False,
        metadata={"help": "LongLoRA's shifted sparse attention (S^2-Attn): not supported (an error when true)."},
    )
    neft_alpha: float = field(
        default=0.0,
        metadata={"help": "NEFTune: noise on the input embeddings while training, with this alpha (e.g. 5); 0: off. "
                          "The same as the Trainer's --neftune_noise_alpha."},
    )
    model_type: Optional[str] = field(
        default=None,
        metadata={"help": "Older MedicalGPT scripts' model family (llama, bloom, ...): accepted and unnecessary, the "
                          "architecture is read from the model's config.json (a note in run_config.json)."},
    )

    def __post_init__(self):
        problems = []
        if self.torch_dtype not in ("auto", "bfloat16", "float16", "float32"):
            problems.append(f"--torch_dtype must be auto, bfloat16, float16 or float32, not {self.torch_dtype!r}")
        if self.load_in_8bit and self.load_in_4bit:
            problems.append("choose one of --load_in_8bit and --load_in_4bit")
        if self.qlora and self.load_in_8bit:
            problems.append("--qlora loads the model in 4 bits: drop --load_in_8bit")
        if self.shift_attn:
            problems.append("--shift_attn (LongLoRA's S^2-Attn) is not supported: for long contexts use "
                            "--rope_scaling linear|dynamic|yarn with --model_max_length, and --flash_attn true "
                            "(or --gradient_checkpointing true) to fit the memory")
        if not self.use_fast_tokenizer:
            problems.append("--use_fast_tokenizer false: medtrain reads fast tokenizers (tokenizer.json) only; drop "
                            "the flag (a model without tokenizer.json: convert it once with "
                            "AutoTokenizer.from_pretrained(path).save_pretrained(path))")
        if self.neft_alpha < 0:
            problems.append(f"--neft_alpha must be >= 0, got {self.neft_alpha}")
        if (self.load_in_8bit or self.load_in_4bit) and not (self.use_peft or self.qlora):
            problems.append("--load_in_8bit/--load_in_4bit train a LoRA adapter on a quantized model: add --use_peft")
        if self.lora_rank < 1:
            problems.append(f"--lora_rank must be at least 1, got {self.lora_rank}")
        if problems:
            raise ArgumentError("Invalid model arguments:\n  " + "\n  ".join(problems))


@dataclass
class DataArguments(FrozenAfterResolve):
    """Where the text is, how it is tokenized, packed into blocks and cached."""

    train_file_dir: Optional[list[str]] = field(
        default=None,
        metadata={"help": "Training data: one or more directories (searched recursively) or files: .txt (one "
                          "document per line), .json/.jsonl (optionally .gz/.zst), .parquet. Prepared token "
                          "stores (directories with a manifest.json) are used directly. Default: data/pretrain.",
                  "nargs": "+"},
    )
    mixture: Optional[list[str]] = field(
        default=None,
        metadata={"help": "One or more mixture files (JSON/YAML): sources with names, paths and token weights or "
                          "budgets (see data/mixtures/ and medtrain/mixture.py). Replaces --train_file_dir.",
                  "nargs": "+"},
    )
    validation_file_dir: Optional[list[str]] = field(
        default=None, metadata={"help": "Validation data, same formats as train_file_dir.", "nargs": "+"}
    )
    validation_split_percentage: float = field(
        default=1.0,
        metadata={"help": "When no validation_file_dir is given: percentage of documents held out of training for "
                          "validation (chosen by a hash of each document's file and position, so the same on both "
                          "data paths and never also trained on). 0 disables validation."},
    )
    text_field: str = field(default="text", metadata={"help": "Field holding the text in .json/.jsonl/.parquet."})
    block_size: int = field(default=1024, metadata={"help": "Tokens per training block."})
    packing_strategy: Optional[str] = field(
        default=None,
        metadata={"help": "How documents become blocks: concat (join with EOS, cut every block_size tokens; "
                          "attention crosses documents), group_by_text (document-aware: position_ids restart at "
                          "each document, no token attends to another document), best_fit (document-aware, whole "
                          "documents placed by best-fit decreasing), none (one document per row, long ones cut "
                          "into consecutive chunks). Default concat.",
                  "choices": list(PACKING_STRATEGIES)},
    )
    group_by_text: bool = field(
        default=False, metadata={"help": "Shorthand for --packing_strategy group_by_text (document-aware packing)."}
    )
    packing: Optional[bool] = field(
        default=None,
        metadata={"help": "MedicalGPT's name: --packing true (default) packs documents into blocks (concat), "
                          "--packing false gives one document per row (--packing_strategy none)."},
    )
    keep_last_block: bool = field(
        default=True,
        metadata={"help": "Keep the last, partial block (padded). With false its tokens are dropped and counted "
                          "in the summary."},
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Read, tokenize and pack lazily while training (constant memory, no token store). "
                          "Requires --max_steps."},
    )
    shuffle_buffer_size: int = field(
        default=1000, metadata={"help": "Streaming: blocks held in the seeded shuffle buffer (0: no shuffling)."}
    )
    group_by_length: bool = field(
        default=False,
        metadata={"help": "Put rows of similar length in the same batch (padding only to the longest in the "
                          "batch): the Trainer's length-grouped sampler on the token store, a bounded window of "
                          "blocks with --streaming. Useful with --packing_strategy none."},
    )
    memory_guard_threshold: float = field(
        default=0.9,
        metadata={"help": "Memory guard: above this fraction of the machine's memory in use, free what can be "
                          "freed (gc, a smaller streaming window) and warn once."},
    )
    memory_guard_stop: float = field(
        default=0.98,
        metadata={"help": "Memory guard: above this fraction, stop with a clear message instead of being "
                          "killed by the OS."},
    )
    num_proc: Optional[int] = field(
        default=None,
        metadata={"help": "Worker processes that tokenize into the token store (default: the CPUs available to "
                          "this rank).",
                  "aliases": ["--preprocessing_num_workers"]},
    )
    dataset_name: Optional[str] = field(
        default=None,
        metadata={"help": "A dataset of the HuggingFace hub (downloaded once with `datasets`, into --cache_dir) or "
                          "a local dataset directory (saved with save_to_disk), instead of --train_file_dir. Its "
                          "train split is trained on, its validation split (if any) evaluated on; both are read "
                          "through the same pipeline as files (token store or --streaming)."},
    )
    dataset_config_name: Optional[str] = field(
        default=None, metadata={"help": "The configuration (subset) of --dataset_name, e.g. pretrain or finetune."}
    )
    keep_linebreaks: bool = field(
        default=False,
        metadata={"help": "Pretraining on .txt files (one document per line): keep each line's line break at the "
                          "end of its document (before EOS). Default false here; MedicalGPT's default is true."},
    )
    ignore_pad_token_for_loss: bool = field(
        default=True,
        metadata={"help": "Padding is never trained (labels -100), as MedicalGPT's default true; false is an error "
                          "(it trained the prompt positions to predict the pad token). To train on the prompts use "
                          "--train_on_inputs true."},
    )
    max_train_samples: Optional[int] = field(
        default=None,
        metadata={"help": "Train on at most this many rows (blocks; for SFT, conversations): see "
                          "--max_train_samples_mode. For debugging or quick runs."},
    )
    max_train_samples_mode: Optional[str] = field(
        default=None,
        metadata={"help": "Which rows --max_train_samples keeps: first (the first N in file order; pretraining's "
                          "default, as MedicalGPT's pretraining.py) or random (a random sample across all files, "
                          "seeded by --data_seed/--seed; SFT's default, as MedicalGPT's supervised_finetuning.py). "
                          "With --streaming: the first N rows of the (shuffled) stream.",
                  "choices": ["first", "random"]},
    )
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Evaluate on at most this many blocks."})
    cache_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Where token stores are built and found (a subdirectory per fingerprint). Default: "
                          "$MEDTRAIN_CACHE or ~/.cache/medtrain."},
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Rebuild the token store even if one matches."})
    fingerprint: str = field(
        default="metadata",
        metadata={"help": "What identifies the inputs of a token store: metadata (each file's path, size and "
                          "mtime; instant) or content (a hash of each file's bytes; survives copies and touches).",
                  "choices": ["metadata", "content"]},
    )
    prepare_on: str = field(
        default="global",
        metadata={"help": "global: all ranks of all nodes share one token store on a shared filesystem; local: "
                          "each node builds its own copy (no shared filesystem between nodes).",
                  "choices": ["global", "local"]},
    )
    tokenizer_backend: str = field(
        default="auto",
        metadata={"help": "What turns text into ids: auto (the fastest installed backend proven to give "
                          "HuggingFace tokenizers' ids for this tokenizer, else HuggingFace tokenizers), hf, or "
                          "fastokens / kitoken / tokie (verified first; an error if it disagrees). The store is "
                          "the same whichever backend built it (README: Tokenizer backends)."},
    )
    add_bos_token: Optional[bool] = field(
        default=None,
        metadata={"help": "Prepend BOS to each document (default: when the tokenizer adds one itself)."},
    )
    add_eos_token: bool = field(default=True, metadata={"help": "Append EOS to each document."})
    skip_bad_lines: bool = field(
        default=False,
        metadata={"help": "Skip malformed input (bad JSON, missing field, bad UTF-8, empty file, too long) and count "
                          "it in the summary, instead of stopping with an error naming the file and line."},
    )
    max_document_chars: Optional[int] = field(
        default=None,
        metadata={"help": "Treat a document longer than this as bad input (error, or skip with --skip_bad_lines). "
                          "By default any length is tokenized (huge lines are cut at whitespace first)."},
    )

    def __post_init__(self):
        problems = []
        if self.block_size < 2:
            problems.append(f"--block_size must be at least 2, got {self.block_size}")
        if not 0 <= self.validation_split_percentage < 100:
            problems.append("--validation_split_percentage must be in [0, 100), "
                            f"got {self.validation_split_percentage}")
        if self.num_proc is not None and self.num_proc < 1:
            problems.append(f"--num_proc must be at least 1, got {self.num_proc}")
        if not self.ignore_pad_token_for_loss:
            problems.append("--ignore_pad_token_for_loss false is not supported: padding is never trained here. To "
                            "train on the prompts as well as the replies use --train_on_inputs true")
        if self.dataset_name and (self.train_file_dir or self.mixture):
            problems.append("give one of --dataset_name, --train_file_dir and --mixture")
        if self.dataset_config_name and not self.dataset_name:
            problems.append("--dataset_config_name names a configuration of --dataset_name: give --dataset_name too")
        if self.shuffle_buffer_size < 0:
            problems.append(f"--shuffle_buffer_size must be >= 0, got {self.shuffle_buffer_size}")
        chosen = {}
        if self.packing_strategy is not None:
            chosen["--packing_strategy"] = self.packing_strategy
        if self.group_by_text:
            chosen["--group_by_text"] = "group_by_text"
        if self.packing is False:
            chosen["--packing false"] = "none"
        if self.mixture and self.train_file_dir:
            problems.append("give either --mixture or --train_file_dir, not both (a mixture names its own paths)")
        if len(set(chosen.values())) > 1:
            problems.append("conflicting packing flags: " + ", ".join(f"{k} ({v})" for k, v in chosen.items()))
        if problems:
            raise ArgumentError("Invalid data arguments:\n  " + "\n  ".join(problems))
        self.packing_strategy = next(iter(chosen.values()), "concat")


def _cuda_bf16() -> tuple[bool, bool]:
    try:
        import torch
        has = torch.cuda.is_available()
        return has, bool(has and torch.cuda.is_bf16_supported())
    except Exception:  # pragma: no cover - torch always imports in practice
        return False, False


def _config_to_flags(path: str) -> list[str]:
    """Turn a JSON/YAML config into flags, so that flags given after it override it."""
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith((".yaml", ".yml")):
        import yaml
        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of argument names to values")
    if "medtrain_run_config" in data:  # a run's saved run_config.json: its arguments rerun it
        data = data.get("arguments") or {}
    flags = []
    for key, value in data.items():
        if value is None:
            continue
        flags.append(f"--{key}")
        if isinstance(value, bool):
            flags.append("true" if value else "false")
        elif isinstance(value, (list, tuple)):
            flags.extend(str(v) for v in value)
        elif isinstance(value, dict):
            flags.append(json.dumps(value))
        else:
            flags.append(str(value))
    return flags


def expand_config_file(argv: list[str]) -> list[str]:
    """argv with a leading .json/.yaml config file replaced by its flags (flags after it override them)."""
    if argv and argv[0].endswith((".json", ".yaml", ".yml")) and not argv[0].startswith("-"):
        return _config_to_flags(argv[0]) + argv[1:]
    return list(argv)


@dataclass(frozen=True)
class Parsed:
    """Parsed arguments: the dataclass objects, and the names of the arguments actually given."""

    objects: tuple
    given: frozenset


def given_names(dataclass_types, argv: list[str]) -> frozenset:
    """The names (dests) of the arguments `argv` gives, aliases resolved (--preprocessing_num_workers
    is num_proc)."""
    import argparse

    from transformers import HfArgumentParser

    parser = HfArgumentParser(dataclass_types)
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    parser._defaults.clear()
    namespace, _ = parser.parse_known_args(expand_config_file(argv))
    return frozenset(vars(namespace))


def parse_run_args(dataclass_types, argv: Optional[list[str]] = None) -> Parsed:
    """`parse_args`, plus which arguments were given (for the run configuration)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return Parsed(tuple(parse_args(dataclass_types, argv)), given_names(dataclass_types, argv))


def parse_args(dataclass_types, argv: Optional[list[str]] = None):
    """Parse flags (or a leading .json/.yaml config file plus overriding flags) into the dataclasses.

    `TrainingArguments` gets machine-dependent defaults: `use_cpu` when no GPU is present (real DDP over
    gloo under torchrun), `bf16` on GPUs that support it, and `remove_unused_columns=False` (our
    collators need their own fields). Unknown flags raise an error.
    """
    from transformers import HfArgumentParser

    argv = expand_config_file(list(sys.argv[1:] if argv is None else argv))
    import dataclasses

    check_rejected(argv, frozenset(f.name for t in dataclass_types for f in dataclasses.fields(t)))
    parser = HfArgumentParser(dataclass_types)
    # by name: importing TrainingArguments loads torch, which prepare_data.py does not need
    if any(any(c.__name__ == "TrainingArguments" for c in t.__mro__) for t in dataclass_types):
        has_cuda, bf16 = _cuda_bf16()
        defaults: dict[str, Any] = {"remove_unused_columns": False, "report_to": "none",
                                    "output_dir": "outputs/run", "save_strategy": "steps"}
        if not has_cuda:
            defaults["use_cpu"] = True
        elif bf16 and "--fp16" not in argv:
            defaults["bf16"] = True
        parser.set_defaults(**defaults)
    return parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)


def default_cache_dir() -> str:
    return os.environ.get("MEDTRAIN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "medtrain")
