"""Arguments: flags and config files parse into the dataclasses, unknown flags are errors, the
given arguments are known by name (aliases resolved), and resolved arguments are frozen."""

import json

import pytest
from transformers import TrainingArguments

from medtrain.config.arguments import DataArguments, ModelArguments, given_names, parse_args, parse_run_args

TYPES = (ModelArguments, DataArguments, TrainingArguments)


def test_flags_parse_into_typed_fields():
    model, data, training = parse_args(TYPES, ["--model_name_or_path", "m", "--block_size", "256",
                                               "--train_file_dir", "a", "b", "--max_steps", "7"])
    assert (model.model_name_or_path, data.block_size, data.train_file_dir, training.max_steps) == ("m", 256,
                                                                                                    ["a", "b"], 7)
    assert training.use_cpu is True and training.remove_unused_columns is False  # machine defaults, no GPU here


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_config_file_then_flags_that_override_it(tmp_path, suffix):
    values = {"model_name_or_path": "m", "block_size": 128, "group_by_text": True, "train_file_dir": ["x", "y"],
              "learning_rate": 0.001}
    path = tmp_path / f"run.{suffix}"
    if suffix == "json":
        path.write_text(json.dumps(values))
    else:
        import yaml
        path.write_text(yaml.safe_dump(values))
    model, data, training = parse_args(TYPES, [str(path), "--block_size", "64"])
    assert data.block_size == 64 and data.packing_strategy == "group_by_text"
    assert data.train_file_dir == ["x", "y"] and training.learning_rate == 0.001 and model.model_name_or_path == "m"


def test_a_saved_run_config_is_read_through_its_arguments(tmp_path):
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps({"medtrain_run_config": 1, "task": "pretraining",
                                "arguments": {"block_size": 96, "max_steps": 3},
                                "resolved": {"data": {"block_size": 1}}}))
    _, data, training = parse_args(TYPES, [str(path)])
    assert data.block_size == 96 and training.max_steps == 3


def test_unknown_or_misspelled_flag_is_an_error():
    with pytest.raises(ValueError, match="--blok_size"):
        parse_args(TYPES, ["--blok_size", "64"])


def test_a_config_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a mapping"):
        parse_args(TYPES, [str(path)])


@pytest.mark.parametrize("argv,message", [
    (["--block_size", "1"], "--block_size must be at least 2"),
    (["--validation_split_percentage", "100"], "must be in \\[0, 100\\)"),
    (["--packing_strategy", "best_fit", "--group_by_text", "true"], "conflicting packing flags"),
    (["--mixture", "m.json", "--train_file_dir", "x"], "either --mixture or --train_file_dir"),
    (["--load_in_4bit", "true"], "add --use_peft"),
])
def test_invalid_values_name_the_flag(argv, message):
    with pytest.raises(ValueError, match=message):
        parse_args(TYPES, argv)


def test_given_names_resolve_aliases_and_dashes(tmp_path):
    assert given_names(TYPES, ["--preprocessing_num_workers", "2", "--model-max-length=99", "--no_add_eos_token",
                               "--max_steps", "1"]) == {"num_proc", "model_max_length", "add_eos_token", "max_steps"}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"block_size": 8}))
    assert given_names(TYPES, [str(path), "--seed", "3"]) == {"block_size", "seed"}


def test_parsed_arguments_freeze():
    parsed = parse_run_args(TYPES, ["--block_size", "64"])
    data = parsed.objects[1]
    data.block_size = 32  # before resolution: still settable
    data.freeze()
    with pytest.raises(AttributeError, match="frozen: arguments are resolved once"):
        data.block_size = 16
    assert data.block_size == 32
