"""The run configuration: resolved once (demo model and data, task defaults, block size capped,
resume), frozen, logged, saved as run_config.json, and a saved one reruns the same run."""

import json
import os

import pytest
from transformers import TrainingArguments

from medtrain.config.arguments import DataArguments, ModelArguments, parse_run_args
from medtrain.config.run_config import RUN_CONFIG, resolve_run

TYPES = (ModelArguments, DataArguments, TrainingArguments)


def resolve(argv, **kw):
    return resolve_run("pretraining", parse_run_args(TYPES, argv), **kw)


def test_resolution_fills_the_demo_and_caps_the_block_size(tmp_path):
    config = resolve(["--output_dir", str(tmp_path), "--block_size", "4096", "--model_max_length", "512"],
                     default_model=lambda m: "/demo/model", default_data="/demo/data")
    assert config.model.model_name_or_path == "/demo/model" and config.data.train_file_dir == ["/demo/data"]
    assert config.data.block_size == 512
    assert any("capped by --model_max_length 512" in n for n in config.notes)
    args = config.arguments()
    assert args["block_size"] == 512 and args["model_name_or_path"] == "/demo/model"
    assert "learning_rate" not in args  # only what was given (or resolved) is written: defaults stay defaults
    with pytest.raises(AttributeError, match="frozen"):
        config.data.block_size = 8
    with pytest.raises(Exception):
        config.task = "sft"  # the RunConfig itself is a frozen dataclass


def test_trainer_settings_implied_by_the_data(tmp_path):
    assert resolve(["--output_dir", str(tmp_path), "--group_by_length", "true"]).training.train_sampling_strategy \
        == "group_by_length"
    assert resolve(["--output_dir", str(tmp_path), "--mixture", "m.json"]).training.train_sampling_strategy \
        == "sequential"
    with pytest.raises(ValueError, match="--streaming needs --max_steps"):
        resolve(["--output_dir", str(tmp_path), "--streaming", "true"])


def test_saved_file_holds_arguments_resolved_values_and_no_secrets(tmp_path):
    config = resolve(["--output_dir", str(tmp_path), "--block_size", "64", "--hub_token", "SECRET"])
    path = config.save()
    assert path == os.path.join(str(tmp_path), RUN_CONFIG)
    text = open(path).read()
    saved = json.loads(text)
    assert saved["medtrain_run_config"] == 1 and saved["task"] == "pretraining"
    assert saved["arguments"]["block_size"] == 64 and saved["resolved"]["data"]["block_size"] == 64
    assert saved["resolved"]["training"]["output_dir"] == str(tmp_path)
    assert "SECRET" not in text


def _losses(output_dir):
    with open(os.path.join(output_dir, "trainer_state.json")) as fh:
        return {h["step"]: h["loss"] for h in json.load(fh)["log_history"] if "loss" in h}


def test_a_run_config_reruns_the_same_run(demo_dir, tmp_path):
    import torch

    from medtrain.cli.pretrain import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first = str(tmp_path / "first")
        assert main(["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "cache"), "--output_dir", first,
                     "--block_size", "4096", "--model_max_length", "64", "--per_device_train_batch_size", "4",
                     "--learning_rate", "3e-3", "--logging_steps", "1", "--save_strategy", "no", "--num_proc", "1",
                     "--seed", "3", "--max_steps", "4", "--group_by_text", "true"]) == 0
        saved = json.load(open(os.path.join(first, RUN_CONFIG)))
        assert saved["arguments"]["block_size"] == 64 and saved["arguments"]["group_by_text"] is True
        assert saved["resolved"]["data"]["packing_strategy"] == "group_by_text"
        second = str(tmp_path / "second")
        assert main([os.path.join(first, RUN_CONFIG), "--output_dir", second]) == 0
    finally:
        torch.set_num_threads(threads)
    assert _losses(second) == _losses(first) and len(_losses(first)) == 4
    again = json.load(open(os.path.join(second, RUN_CONFIG)))
    assert {k: v for k, v in again["arguments"].items() if k != "output_dir"} == \
        {k: v for k, v in saved["arguments"].items() if k != "output_dir"}
