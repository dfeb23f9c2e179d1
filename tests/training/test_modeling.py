"""Model and tokenizer loading: machine-dependent choices, LoRA on every linear layer, clear errors."""

from types import SimpleNamespace

import pytest
import torch

from medtrain.config.arguments import ModelArguments
from medtrain.training.modeling import (load_model, load_tokenizer, linear_module_names, max_positions,
                                        quantization_config, resolve_attn_implementation, resolve_dtype)


def test_auto_choices_on_this_machine():
    assert resolve_dtype("auto") == torch.float32  # no GPU here
    assert resolve_dtype("bfloat16") == torch.bfloat16
    assert resolve_attn_implementation("auto") == "sdpa"
    assert resolve_attn_implementation("eager") == "eager"


def test_quantization_needs_a_gpu():
    with pytest.raises(ValueError, match="--load_in_4bit needs a CUDA GPU"):
        quantization_config(SimpleNamespace(load_in_8bit=False, load_in_4bit=True), torch.float32)
    assert quantization_config(SimpleNamespace(load_in_8bit=False, load_in_4bit=False), torch.float32) is None


def test_tokenizer_gets_the_max_length_and_a_pad_token(demo_dir):
    tok = load_tokenizer(ModelArguments(model_name_or_path=demo_dir, model_max_length=77))
    assert tok.model_max_length == 77 and tok.pad_token_id is not None


def test_lora_targets_every_linear_layer_but_the_head(demo_dir):
    plain_args = ModelArguments(model_name_or_path=demo_dir)
    tok = load_tokenizer(plain_args)
    plain = load_model(plain_args, tok)
    assert linear_module_names(plain) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert max_positions(plain) == 2048
    model = load_model(ModelArguments(model_name_or_path=demo_dir, use_peft=True, lora_rank=4), tok)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    wrapped = {n.split(".")[-4] for n in trainable}  # ...<module>.lora_A.default.weight
    assert wrapped == {"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}


def test_embeddings_grow_with_the_tokenizer(demo_dir):
    args = ModelArguments(model_name_or_path=demo_dir)
    tok = load_tokenizer(args)
    tok.add_tokens(["<new_medical_term>"])
    model = load_model(args, tok)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
