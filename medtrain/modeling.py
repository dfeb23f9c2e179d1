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


def load_model(model_args, tokenizer, extra_kwargs: dict | None = None):
    from transformers import AutoModelForCausalLM

    dtype = resolve_dtype(model_args.torch_dtype)
    attn = resolve_attn_implementation(model_args.attn_implementation)
    logger.info("Loading %s (dtype %s, attention %s)", model_args.model_name_or_path, dtype, attn)
    model = AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path, dtype=dtype, attn_implementation=attn,
        trust_remote_code=model_args.trust_remote_code, **(extra_kwargs or {}))
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        logger.info("Resizing token embeddings from %d to %d (the tokenizer grew)", vocab, len(tokenizer))
        model.resize_token_embeddings(len(tokenizer))
    return model


def max_positions(model) -> int | None:
    return getattr(model.config, "max_position_embeddings", None)
