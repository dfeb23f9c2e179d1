"""MedicalGPT's data as its users have it: conversations ending with a question, record-level system
prompts, --train_on_inputs, --max_train_samples as a seeded sample across files, and --dataset_name
with a local dataset directory through both data paths."""

import json

import numpy as np
import pytest

from medtrain.cli.pretrain import main as pt_main
from medtrain.cli.sft import SftArguments, conversation_encoder, resolve_sft_config
from medtrain.data.pipeline import build_datasets
from medtrain.data.sources import WorkUnit, find_files
from medtrain.runtime.distributed import DistInfo

from helpers import read_summary
from helpers.sft import make_encoder, write_records


def sharegpt(*turns, **extra):
    conv = []
    for i, t in enumerate(turns):
        conv.append({"from": "human" if i % 2 == 0 else "gpt", "value": t})
    return {"conversations": conv, **extra}


def read_all(encoder, path):
    (f,) = find_files([path])
    return [r for _, r in encoder.read(WorkUnit(f))]


def test_trailing_question_is_dropped_and_counted_and_complete_turns_trained(tokenizer, tmp_path):
    enc = make_encoder(tokenizer, "vicuna")
    path = write_records(tmp_path / "d.jsonl", [sharegpt("Fever?", "Rest and fluids.", "And then?"),
                                                sharegpt("Fever?", "Rest and fluids.")])
    dropped, complete = read_all(enc, path)
    assert dropped == complete    # the same text and trained spans: the question is gone
    assert enc.counters()["dropped_trailing_question"] == 1
    only_question = write_records(tmp_path / "q.jsonl", [sharegpt("Unanswered?")])
    with pytest.raises(Exception, match="no assistant reply"):
        read_all(enc, only_question)


def test_record_system_prompt_field_is_the_system_prompt(tokenizer, tmp_path):
    enc = make_encoder(tokenizer, "vicuna")
    turns = ("What is asthma?", "A chronic airway disease.")
    as_field = sharegpt(*turns, system_prompt="You are a pulmonologist.")
    as_system = sharegpt(*turns, system="You are a pulmonologist.")
    in_conv = {"conversations": [{"from": "system", "value": "Inline wins."}] + as_field["conversations"],
               "system_prompt": "You are a pulmonologist."}
    a, b, c, plain = read_all(enc, write_records(tmp_path / "s.jsonl", [as_field, as_system, in_conv,
                                                                         sharegpt(*turns)]))
    assert a == b and "You are a pulmonologist." in a.text
    assert "Inline wins." in c.text and "pulmonologist" not in c.text
    assert "pulmonologist" not in plain.text


def test_train_on_inputs_trains_every_token(tokenizer, tmp_path):
    path = write_records(tmp_path / "d.jsonl", [sharegpt("Fever?", "Rest and fluids.")])
    default, everything = make_encoder(tokenizer, "vicuna"), make_encoder(tokenizer, "vicuna", train_on_inputs=True)
    (ids_a, mask_a), = [default.encode_batch([r])[0] for r in read_all(default, path)]
    (ids_b, mask_b), = [everything.encode_batch([r])[0] for r in read_all(everything, path)]
    assert np.array_equal(ids_a, ids_b)
    assert 0 < mask_a.sum() < len(mask_a) and mask_b.tolist() == [1] * len(ids_b)
    assert default.fingerprint != everything.fingerprint   # another token store


def sampled_rows(demo_dir, tmp_path, seed, n=6):
    argv = ["--model_name_or_path", demo_dir, "--train_file_dir", str(tmp_path / "data"), "--max_train_samples",
            str(n), "--validation_split_percentage", "0", "--cache_dir", str(tmp_path / "cache"), "--num_proc", "1",
            "--model_max_length", "128", "--output_dir", str(tmp_path / "out"), "--seed", str(seed)]
    config = resolve_sft_config(argv)
    from medtrain.training.modeling import load_tokenizer

    tok = load_tokenizer(config.model)
    enc = conversation_encoder(tok, config.data, config.extra(SftArguments))
    data = build_datasets(config.data, enc, DistInfo(), seed)
    return [tok.decode(data.train[i].input_ids.tolist()) for i in range(len(data.train))]


def test_max_train_samples_is_a_seeded_sample_across_all_files(demo_dir, tmp_path):
    for name in "ab":
        write_records(tmp_path / "data" / f"{name}.jsonl",
                      [sharegpt(f"question {name}{i}?", f"answer {name.upper()}{i}.") for i in range(10)])
    first = sampled_rows(demo_dir, tmp_path, seed=1)
    assert len(first) == 6
    files = {("a" if "question a" in row else "b") for row in first}
    assert files == {"a", "b"}                      # not the first 6 rows of the first file
    assert sampled_rows(demo_dir, tmp_path, seed=1) == first   # the same seed, the same sample
    assert sampled_rows(demo_dir, tmp_path, seed=2) != first


@pytest.mark.parametrize("streaming", [False, True])
def test_dataset_name_local_directory_trains_through_both_paths(demo_dir, tmp_path, streaming):
    import datasets

    train = [{"text": f"Patient {i} has a fever of {37 + i % 3} degrees and a cough."} for i in range(40)]
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(train),
                               "validation": datasets.Dataset.from_list(train[:5])})
    dd.save_to_disk(str(tmp_path / "ds"))
    extra = ["--streaming", "true", "--shuffle_buffer_size", "8"] if streaming else []
    out = tmp_path / "out"
    assert pt_main(["--model_name_or_path", demo_dir, "--dataset_name", str(tmp_path / "ds"), "--cache_dir",
                    str(tmp_path / "cache"), "--output_dir", str(out), "--block_size", "32", "--max_steps", "2",
                    "--per_device_train_batch_size", "2", "--num_proc", "1", "--save_strategy", "no",
                    "--logging_steps", "1", *extra]) == 0
    summary = read_summary(out)
    assert summary["global_step"] == 2 and summary["metrics"]["eval_loss"] > 0
    if not streaming:
        assert summary["train"]["documents"] == 40 and summary["eval"]["documents"] == 5
    config = json.load(open(out / "run_config.json"))
    assert config["arguments"]["dataset_name"] == str(tmp_path / "ds")
    assert any("its train split" in n for n in config["notes"])
