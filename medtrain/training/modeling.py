"""Model and tokenizer loading, with the machine-dependent choices made automatically.

dtype `auto`: bfloat16 on GPUs that support it, float32 otherwise (CPU). attn_implementation
`auto`: flash_attention_2 when the package is installed and a GPU is present (it honours packed
position_ids through varlen kernels), else sdpa. The embedding matrix is resized when the tokenizer
has more tokens than the model. MedicalGPT's model flags are honoured here: --model_revision,
--hf_hub_token and --cache_dir on every download, --rope_scaling (`scale_rope`), --device_map for a
single process.
"""

from __future__ import annotations

import importlib.util
import logging
import math

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


def hub_kwargs(model_args, cache_dir: str | None = None) -> dict:
    """What every from_pretrained call gets: --model_revision, --hf_hub_token, --trust_remote_code, and
    --cache_dir (where downloads go, as in MedicalGPT; token stores live in their own subdirectory)."""
    kwargs = {"trust_remote_code": model_args.trust_remote_code}
    if getattr(model_args, "model_revision", "main") not in (None, "main"):
        kwargs["revision"] = model_args.model_revision
    if getattr(model_args, "hf_hub_token", None):
        kwargs["token"] = model_args.hf_hub_token
    if cache_dir:
        kwargs["cache_dir"] = cache_dir
    return kwargs


def load_tokenizer(model_args, cache_dir: str | None = None):
    from transformers import AutoTokenizer

    name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    tok = AutoTokenizer.from_pretrained(name, **hub_kwargs(model_args, cache_dir))
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


def scale_rope(config, kind: str, max_length: int | None):
    """--rope_scaling: set `kind` (linear, dynamic, yarn) in the model config with the factor
    ceil(max_length / max_position_embeddings) (1 when the model is long enough, with a warning), and
    raise max_position_embeddings to match. Returns the config; an error for a model without RoPE.

    Example: max_position_embeddings 2048, --model_max_length 5000, linear -> factor 3.0,
    rope_parameters {"rope_type": "linear", "factor": 3.0, "original_max_position_embeddings": 2048, ...},
    max_position_embeddings 6144."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if params is None and getattr(config, "rope_theta", None) is None:
        raise ValueError(f"--rope_scaling {kind}: this model ({getattr(config, 'model_type', '?')}) has no rotary "
                         "position embeddings to scale; drop the flag")
    original = getattr(config, "max_position_embeddings", None)
    if not original:
        raise ValueError(f"--rope_scaling {kind}: the model config has no max_position_embeddings to scale from")
    if max_length and max_length > original:
        factor = float(math.ceil(max_length / original))
    else:
        logger.warning("--rope_scaling %s: the sequence length (%s) is within the model's max_position_embeddings "
                       "(%d): factor 1.0 (raise --model_max_length to use a longer context)", kind, max_length, original)
        factor = 1.0
    if kind == "dynamic":
        logger.warning("--rope_scaling dynamic: dynamic NTK scaling may not work well with fine-tuning "
                       "(transformers PR 24653); linear or yarn are the usual choices")
    params = dict(params or {"rope_theta": config.rope_theta})
    params.update(rope_type=kind, factor=factor, original_max_position_embeddings=original)
    params.pop("type", None)
    if hasattr(config, "rope_parameters"):
        config.rope_parameters = params
    else:  # transformers before 5
        config.rope_scaling = params
    config.max_position_embeddings = int(original * factor)
    logger.info("RoPE scaling %s with factor %.1f: max_position_embeddings %d -> %d", kind, factor, original,
                config.max_position_embeddings)
    return config


def load_model(model_args, tokenizer, extra_kwargs: dict | None = None, gradient_checkpointing: bool = False,
               cache_dir: str | None = None, max_length: int | None = None):
    """The model of --model_name_or_path, as the arguments say (dtype, attention, quantization, RoPE
    scaling, device_map, LoRA). `max_length`: the longest sequence trained (for --rope_scaling)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = resolve_dtype(model_args.torch_dtype)
    attn = resolve_attn_implementation(model_args.attn_implementation)
    kwargs = dict(extra_kwargs or {})
    hub = hub_kwargs(model_args, cache_dir)
    qconfig = quantization_config(model_args, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    if getattr(model_args, "rope_scaling", None):
        config = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub)
        kwargs["config"] = scale_rope(config, model_args.rope_scaling, max_length or model_args.model_max_length)
    if getattr(model_args, "device_map", None):
        kwargs["device_map"] = model_args.device_map
    logger.info("Loading %s (dtype %s, attention %s%s)", model_args.model_name_or_path, dtype, attn,
                ", quantized" if qconfig else "")
    model = AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path, dtype=dtype, attn_implementation=attn, **hub, **kwargs)
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
