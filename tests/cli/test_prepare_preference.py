"""prepare_data.py --stage dpo|orpo|rm|sft: the store built ahead is the one the training script looks
for (the same flags give the same fingerprint: the run reuses it, nothing rebuilt); --preview_samples
shows the pairs as stored and builds nothing; flags of another stage or of a loss are errors."""

import json
import os

import numpy as np
import pytest

from medtrain.cli.prepare import main as prepare_main
from medtrain.cli.preference import DEMO_PREFERENCE_DATA, PreferenceDataArguments, preference_encoder
from medtrain.cli.preference import run as run_preference
from medtrain.cli.sft import run as run_sft
from medtrain.config.arguments import DataArguments
from medtrain.data.preference import split_pair
from medtrain.data.sources import find_files, plan_units
from medtrain.training.demo import DEMO_SFT_DATA

from helpers.sft import write_records

LENGTHS = {"dpo": ["--max_source_length", "48", "--max_target_length", "40"], "sft": ["--model_max_length", "128"]}
DATA = {"dpo": DEMO_PREFERENCE_DATA, "sft": DEMO_SFT_DATA}


def data_flags(stage, tmp_path):
    return ["--train_file_dir", DATA[stage], "--cache_dir", str(tmp_path / "cache"), "--num_proc", "1",
            *LENGTHS[stage]]


def store_files(store):
    """{relative path: mtime_ns} of every file of a store, its block indexes apart (built per run)."""
    out = {}
    for root, _, files in os.walk(store):
        if os.path.basename(root) != "packing":
            for f in files:
                out[os.path.relpath(os.path.join(root, f), store)] = os.stat(os.path.join(root, f)).st_mtime_ns
    return out


@pytest.mark.parametrize("stage", ["dpo", "sft"])
def test_training_reuses_the_prepared_store(demo_dir, tmp_path, capsys, stage):
    assert prepare_main(["--stage", stage, "--tokenizer_name_or_path", demo_dir, *data_flags(stage, tmp_path)]) == 0
    store = capsys.readouterr().out.strip().splitlines()[-1]
    manifest = json.load(open(os.path.join(store, "manifest.json")))
    assert manifest["encoder"] == ("preference" if stage == "dpo" else "conversation")
    before = store_files(store)
    train = ["--model_name_or_path", demo_dir, *data_flags(stage, tmp_path), "--output_dir", str(tmp_path / "run"),
             "--max_steps", "1", "--per_device_train_batch_size", "2", "--save_strategy", "no",
             "--validation_split_percentage", "0", "--report_to", "none"]
    summary = run_preference("dpo", train) if stage == "dpo" else run_sft(train)
    assert summary["train"]["stores"] == [store]
    assert summary["train"]["tokenized_this_run"] is False and summary["train"]["units_tokenized_this_rank"] == 0
    assert store_files(store) == before  # not one file of the store written again
    assert os.listdir(os.path.join(str(tmp_path / "cache"), "token_store")) == [os.path.basename(store)]


def test_other_lengths_are_another_store(demo_dir, tmp_path, capsys):
    flags = ["--stage", "orpo", "--tokenizer_name_or_path", demo_dir, *data_flags("dpo", tmp_path)]
    assert prepare_main(flags) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert prepare_main(flags[:-1] + ["24"]) == 0  # --max_target_length 24
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert first != second
    assert json.load(open(os.path.join(second, "manifest.json")))["max_target_length"] == 24


def test_preview_shows_the_stored_pairs_and_builds_nothing(demo_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(demo_dir)  # its own: preference_encoder sets its chat_template
    records = [{"chosen": [{"role": "user", "content": "Is fever dangerous?"},
                           {"role": "assistant", "content": "It can be; see a doctor."}],
                "rejected": [{"role": "user", "content": "Is fever dangerous?"},
                             {"role": "assistant", "content": "No."}]},
               {"question": "头痛怎么办？", "response_chosen": "休息，必要时就医。", "response_rejected": "不用管。"}]
    path = write_records(tmp_path / "pairs" / "p.jsonl", records)
    flags = ["--tokenizer_name_or_path", demo_dir, "--train_file_dir", path, "--cache_dir", str(tmp_path / "cache"),
             "--max_source_length", "48", "--max_target_length", "4", "--preview_samples", "2"]
    assert prepare_main(["--stage", "rm", *flags]) == 0
    out = capsys.readouterr().out
    assert not os.path.exists(tmp_path / "cache" / "token_store")
    # what the store would hold: the encoder of the training scripts, on the same flags
    enc = preference_encoder(tokenizer, DataArguments(), PreferenceDataArguments(
        max_source_length=48, max_target_length=4))
    unit, = plan_units(find_files([path]))
    stored = enc.encode_batch([p for _, p in enc.read(unit)])
    assert enc.counters()["truncated_chosen"] == 2  # the preview shows pairs as stored, cut to 4 response tokens
    blocks = out.split("=== ")[1:]
    assert len(blocks) == 2
    for (ids, mask), block, line in zip(stored, blocks, (1, 2)):
        prompt, chosen, rejected = split_pair(ids, mask)
        decode = lambda x: tokenizer.decode(x.tolist(), skip_special_tokens=False,  # noqa: E731
                                            clean_up_tokenization_spaces=False)
        assert block.startswith(f"{path}:{line}: prompt {len(prompt)} tokens, chosen {len(chosen)}, rejected "
                                f"{len(rejected)} response tokens")
        assert f"--- prompt\n{decode(prompt)}\n--- chosen\n⟦{decode(chosen)}⟧\n--- rejected\n⟦{decode(rejected)}⟧\n" \
            in block
    # the training script's preview writes the same pairs to output_dir/preview.jsonl, and trains nothing
    summary = run_preference("dpo", ["--model_name_or_path", demo_dir, *flags[2:],
                                     "--output_dir", str(tmp_path / "run")])
    written = [json.loads(x) for x in open(tmp_path / "run" / "preview.jsonl", encoding="utf-8")]
    assert written == summary["preview"] and not os.path.exists(tmp_path / "run" / "run_summary.json")
    for (ids, mask), sample in zip(stored, written):
        prompt, chosen, rejected = split_pair(ids, mask)
        for side, response in (("chosen", chosen), ("rejected", rejected)):
            assert sample[side]["input_ids"] == np.concatenate([prompt, response]).tolist()
            assert sample[side]["labels"] == [-100] * len(prompt) + response.tolist()


@pytest.mark.parametrize("argv,message", [
    (["--template_name", "vicuna"], "--stage pt does not take --template_name \\(an option of --stage sft, dpo, orpo "
                                    "or rm\\)"),
    (["--stage", "dpo", "--beta", "0.2", "--loss_type", "ipo"],
     "--stage dpo does not take --beta \\(an option of the losses of dpo_training.py.*; --loss_type"),
    (["--stage", "sft", "--max_source_length", "64"], "--stage sft does not take --max_source_length \\(an option of "
                                                       "--stage dpo, orpo or rm\\)"),
    (["--stage", "kto"], "--stage kto: choose one of pt, sft, dpo, orpo, rm"),
])
def test_flags_of_another_stage_are_named(demo_dir, tmp_path, capsys, argv, message):
    assert prepare_main(["--tokenizer_name_or_path", demo_dir, "--train_file_dir", DEMO_PREFERENCE_DATA,
                         "--cache_dir", str(tmp_path / "cache"), *argv]) == 2
    assert __import__("re").search(message, capsys.readouterr().err)
