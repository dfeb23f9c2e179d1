"""Model and tokenizer loading, with the machine-dependent choices made automatically.

dtype `auto`: bfloat16 on GPUs that support it, float32 otherwise (CPU). attn_implementation
`auto`: flash_attention_2 when the package is installed and a GPU is present (it honours packed
position_ids through varlen kernels), else sdpa. The embedding matrix is resized when the tokenizer
has more tokens than the model.
"""

from __future__ import annotations

import importlib.util
import logging

import torch

logger = logging.getLogger(__name__)

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_dtype(name: str) -> torch.dtype:
    if name != "auto":
        return DTYPES[name]
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_attn_implementation(name: str) -> str:
    if name != "auto":
        return name
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_tokenizer(model_args):
    from transformers import AutoTokenizer

    name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    tok = AutoTokenizer.from_pretrained(name, trust_remote_code=model_args.trust_remote_code)
    if not getattr(tok, "is_fast", False) and getattr(tok, "backend_tokenizer", None) is None:
        raise ValueError(f"{name}: medtrain needs a fast tokenizer (tokenizer.json)")
    if model_args.model_max_length:
        tok.model_max_length = model_args.model_max_length
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token  # only used for padding; padded labels are always ignored
    return tok


def quantization_config(model_args, dtype):
    """bitsandbytes config for --load_in_8bit / --load_in_4bit, or a clear error where it cannot work."""
    if not (model_args.load_in_8bit or model_args.load_in_4bit):
        return None
    flag = "--load_in_4bit" if model_args.load_in_4bit else "--load_in_8bit"
    if not torch.cuda.is_available():
        raise ValueError(f"{flag} needs a CUDA GPU (bitsandbytes quantization); none is available here. "
                         "Drop the flag to train LoRA on the unquantized model.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"{flag} needs the bitsandbytes package: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if model_args.load_in_4bit:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def load_model(model_args, tokenizer, extra_kwargs: dict | None = None, gradient_checkpointing: bool = False):
    from transformers import AutoModelForCausalLM

    dtype = resolve_dtype(model_args.torch_dtype)
    attn = resolve_attn_implementation(model_args.attn_implementation)
    kwargs = dict(extra_kwargs or {})
    qconfig = quantization_config(model_args, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    logger.info("Loading %s (dtype %s, attention %s%s)", model_args.model_name_or_path, dtype, attn,
                ", quantized" if qconfig else "")
    model = AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path, dtype=dtype, attn_implementation=attn,
        trust_remote_code=model_args.trust_remote_code, **kwargs)
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        logger.info("Resizing token embeddings from %d to %d (the tokenizer grew)", vocab, len(tokenizer))
        model.resize_token_embeddings(len(tokenizer))
    if model_args.use_peft:
        model = apply_lora(model, model_args, quantized=qconfig is not None,
                           gradient_checkpointing=gradient_checkpointing)
    return model


def linear_module_names(model) -> list[str]:
    """Names (last component) of every linear layer except the output head, found by inspection, so
    that LoRA 'all' works for any architecture without a per-model list."""
    output = model.get_output_embeddings()
    names = set()
    for full, module in model.named_modules():
        if module is output:
            continue
        kind = type(module).__name__
        if isinstance(module, torch.nn.Linear) or kind in ("Linear8bitLt", "Linear4bit"):
            names.add(full.split(".")[-1])
    return sorted(names)


def apply_lora(model, model_args, quantized: bool = False, gradient_checkpointing: bool = False):
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    if model_args.peft_path:
        logger.info("Continuing the LoRA adapter from %s", model_args.peft_path)
        return PeftModel.from_pretrained(model, model_args.peft_path, is_trainable=True)
    targets = (linear_module_names(model) if model_args.target_modules.strip() == "all"
               else [t.strip() for t in model_args.target_modules.split(",") if t.strip()])
    save = [m.strip() for m in model_args.modules_to_save.split(",")] if model_args.modules_to_save else None
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=model_args.lora_rank, lora_alpha=model_args.lora_alpha,
                        lora_dropout=model_args.lora_dropout, target_modules=targets, modules_to_save=save)
    model = get_peft_model(model, config)
    if gradient_checkpointing:
        model.enable_input_require_grads()
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA on %s: %s trainable of %s parameters (%.2f%%)", ", ".join(targets), f"{trainable:,}",
                f"{total:,}", 100 * trainable / total)
    return model


def max_positions(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)
