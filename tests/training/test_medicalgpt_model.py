"""Model-side MedicalGPT flags: --rope_scaling through the model config, hub arguments, the loss plot."""

import os

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from medtrain.training.modeling import hub_kwargs, scale_rope
from medtrain.training.monitoring import LOSS_PLOT, loss_series, plot_losses


def tiny_config(positions=128):
    return LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                       num_key_value_heads=4, max_position_embeddings=positions)


@pytest.mark.parametrize("kind", ["linear", "dynamic", "yarn"])
def test_rope_scaling_sets_the_factor_in_the_config(kind):
    config = scale_rope(tiny_config(128), kind, 300)  # ceil(300 / 128) = 3
    assert config.rope_parameters["rope_type"] == kind and config.rope_parameters["factor"] == 3.0
    assert config.rope_parameters["original_max_position_embeddings"] == 128
    assert config.max_position_embeddings == 384
    model = LlamaForCausalLM(config)
    assert model.model.rotary_emb.rope_type == kind
    if kind == "linear":  # the positions are divided by the factor: inv_freq / 3
        base = LlamaForCausalLM(tiny_config(128)).model.rotary_emb.inv_freq
        assert torch.allclose(model.model.rotary_emb.inv_freq, base / 3)


def test_rope_scaling_within_the_model_length_is_factor_one(caplog):
    config = scale_rope(tiny_config(128), "linear", 100)
    assert config.rope_parameters["factor"] == 1.0 and config.max_position_embeddings == 128
    assert "factor 1.0" in caplog.text


def test_hub_kwargs_carry_revision_token_cache_dir():
    class M:
        trust_remote_code, model_revision, hf_hub_token = False, "v2", "hf_secret"

    assert hub_kwargs(M(), "/c") == {"trust_remote_code": False, "revision": "v2", "token": "hf_secret", "cache_dir": "/c"}
    M.model_revision, M.hf_hub_token = "main", None
    assert hub_kwargs(M()) == {"trust_remote_code": False}


def test_loss_plot_written_with_train_and_eval_series(tmp_path):
    history = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}, {"step": 2, "eval_loss": 2.7},
               {"step": 3, "loss": 2.0}, {"step": 3, "train_runtime": 1.0}]
    assert loss_series(history) == ([(1, 3.0), (2, 2.5), (3, 2.0)], [(2, 2.7)])
    path = plot_losses(history, str(tmp_path / "out"))
    assert path == str(tmp_path / "out" / LOSS_PLOT)
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert plot_losses([{"step": 0, "eval_loss": 1.0}], str(tmp_path / "eval_only")) is None
    assert not os.path.exists(tmp_path / "eval_only" / LOSS_PLOT)
