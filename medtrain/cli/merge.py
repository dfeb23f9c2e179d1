"""Merge a LoRA adapter into its base model (`merge_peft_adapter.py`).

    python merge_peft_adapter.py --base_model_name_or_path Qwen/Qwen2.5-0.5B \
        --peft_model_path outputs/sft-lora --output_dir outputs/sft-merged
    python merge_peft_adapter.py --base_model Qwen/Qwen2.5-0.5B --lora_model outputs/sft-lora \
        --output_dir outputs/sft-merged        # MedicalGPT's flag names

Loads the base model, applies the adapter, folds the LoRA weights into the base weights (peft
`merge_and_unload`) and saves a plain model and its tokenizer, which load with `from_pretrained`
(no peft needed). The tokenizer is the adapter's (SFT saves it there, with the chat template the
model was trained on) unless `--tokenizer_name_or_path` is given; when it has more tokens than the
base model's embeddings (the adapter trained a grown vocabulary with `--modules_to_save`), the
embeddings are resized first, as they were for training.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

from medtrain.config.arguments import parse_args

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass
class MergeArguments:
    """MedicalGPT's names work too: --base_model, --lora_model, --tokenizer_path, --resize_emb,
    --hf_hub_model_id, --hf_hub_token (and --model_type of older versions, not needed)."""

    base_model_name_or_path: str = field(metadata={"help": "The base model the adapter was trained on (path or hub name).",
                                                   "aliases": ["--base_model"]})
    peft_model_path: str = field(metadata={"help": "The LoRA adapter directory (adapter_config.json, adapter weights).",
                                           "aliases": ["--lora_model"]})
    output_dir: str = field(default="./merged", metadata={"help": "Where the merged model and tokenizer are saved."})
    tokenizer_name_or_path: Optional[str] = field(
        default=None, metadata={"help": "Tokenizer to save with the model (default: the adapter's, else the base's; "
                                        "MedicalGPT's default is the base model's).",
                                "aliases": ["--tokenizer_path"]})
    resize_emb: bool = field(
        default=False,
        metadata={"help": "Resize the base model's embeddings to the tokenizer's size whenever they differ (also "
                          "smaller). Without it they are resized only when the tokenizer has more tokens."})
    hf_hub_model_id: Optional[str] = field(
        default=None, metadata={"help": "Also push the merged model and tokenizer to this hub repository."})
    hf_hub_token: Optional[str] = field(default=None, metadata={"help": "Hub token for --hf_hub_model_id."})
    model_type: Optional[str] = field(
        default=None, metadata={"help": "Older MedicalGPT versions' model family: not needed (read from config.json)."})
    torch_dtype: str = field(
        default="auto",
        metadata={"help": "Dtype to merge and save in: auto (the base model's own), bfloat16, float16 or float32.",
                  "choices": ["auto", "bfloat16", "float16", "float32"]})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub."})
    max_shard_size: str = field(default="5GB", metadata={"help": "Largest safetensors shard written."})


def merge(args: MergeArguments) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not os.path.isfile(os.path.join(args.peft_model_path, "adapter_config.json")):
        raise ValueError(f"{args.peft_model_path} is not a PEFT adapter directory (no adapter_config.json)")
    tok_src = args.tokenizer_name_or_path or (
        args.peft_model_path if any(os.path.exists(os.path.join(args.peft_model_path, f)) for f in TOKENIZER_FILES)
        else args.base_model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(tok_src, trust_remote_code=args.trust_remote_code)
    dtype = "auto" if args.torch_dtype == "auto" else getattr(torch, args.torch_dtype)
    logger.info("Loading the base model %s (dtype %s)", args.base_model_name_or_path, args.torch_dtype)
    base = AutoModelForCausalLM.from_pretrained(args.base_model_name_or_path, dtype=dtype,
                                                trust_remote_code=args.trust_remote_code)
    if args.model_type:
        logger.info("--model_type %s is not needed: the architecture is read from the model's config.json",
                    args.model_type)
    vocab = base.get_input_embeddings().weight.shape[0]
    if args.resize_emb and len(tokenizer) != vocab:
        logger.info("--resize_emb: resizing the base model's embeddings from %d to %d", vocab, len(tokenizer))
        base.resize_token_embeddings(len(tokenizer))
    elif len(tokenizer) > vocab:
        logger.info("Resizing the base model's embeddings from %d to %d (the tokenizer grew)", vocab, len(tokenizer))
        base.resize_token_embeddings(len(tokenizer))
    logger.info("Applying and merging the adapter %s", args.peft_model_path)
    model = PeftModel.from_pretrained(base, args.peft_model_path).merge_and_unload()
    os.makedirs(args.output_dir, exist_ok=True)
    model.save_pretrained(args.output_dir, max_shard_size=args.max_shard_size)
    tokenizer.save_pretrained(args.output_dir)
    logger.info("Merged model and tokenizer saved to %s (load them with from_pretrained)", args.output_dir)
    if args.hf_hub_model_id:
        logger.info("Pushing to the hub: %s", args.hf_hub_model_id)
        model.push_to_hub(args.hf_hub_model_id, token=args.hf_hub_token, max_shard_size=args.max_shard_size)
        tokenizer.push_to_hub(args.hf_hub_model_id, token=args.hf_hub_token)
    return args.output_dir


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    (args,) = parse_args((MergeArguments,), list(sys.argv[1:] if argv is None else argv))
    try:
        merge(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def console() -> None:
    """The console script (`pip install` puts it on PATH)."""
    import sys

    sys.exit(main())
