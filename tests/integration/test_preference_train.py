"""Preference training end to end through the real entry points (`medtrain.cli.preference.main_*`) on
the tiny model and the bundled pairs: DPO, ORPO and the reward model raise the chosen-over-rejected
margin and the preference accuracy within a few dozen steps; a resumed run continues with the same
losses; bad input ends with its message or is counted; 2 processes with ZeRO-2 and LoRA train as 1
process with twice the batch (slow)."""

import json
import os
import shutil

import pytest

from medtrain.cli.preference import DEMO_PREFERENCE_DATA, main_dpo, main_orpo, main_rm

from helpers import read_summary
from helpers.launch import ROOT, logged_losses, single, torchrun
from helpers.sft import write_records


def args(demo_dir, tmp_path, out, *extra, data=DEMO_PREFERENCE_DATA):
    return ["--model_name_or_path", demo_dir, "--train_file_dir", data, "--cache_dir", str(tmp_path / "cache"),
            "--output_dir", str(tmp_path / out), "--max_source_length", "48", "--max_target_length", "40",
            "--per_device_train_batch_size", "8", "--logging_steps", "4", "--save_strategy", "no", "--num_proc", "1",
            "--seed", "3", "--validation_split_percentage", "0", *extra]


def on_training_pairs(out):
    """args() for a run evaluated on (the first 64 of) its own training pairs before and after training."""
    return ["--validation_file_dir", DEMO_PREFERENCE_DATA, "--max_eval_samples", "64", "--eval_strategy", "steps",
            "--eval_steps", "1000", "--eval_on_start", "true"]


def improved(output_dir, margin_key, accuracy_key, gain=0.05):
    """The margin and the accuracy on the training pairs, before training and after it."""
    with open(os.path.join(output_dir, "trainer_state.json")) as fh:
        evals = [h for h in json.load(fh)["log_history"] if f"eval_{margin_key}" in h]
    before = {k: evals[0][f"eval_{k}"] for k in (margin_key, accuracy_key)}
    after = read_summary(output_dir)["metrics"]
    after = {k: after[f"eval_{k}"] for k in (margin_key, accuracy_key)}
    assert after[margin_key] > before[margin_key] + gain, (before, after)
    assert after[accuracy_key] >= 0.75 and after[accuracy_key] > before[accuracy_key] + 0.1, (before, after)
    return before, after


def test_dpo_raises_margin_and_accuracy(demo_dir, tmp_path):
    assert main_dpo(args(demo_dir, tmp_path, "dpo", "--max_steps", "16", "--learning_rate", "3e-3",
                         *on_training_pairs("dpo"))) == 0
    s = read_summary(tmp_path / "dpo")
    assert s["task"] == "dpo" and s["packing_strategy"] == "none" and s["block_size"] == 48 + 2 * 40
    assert s["train"]["documents_split_across_blocks"] == 0 and s["train"]["blocks"] == s["train"]["documents"] == 400
    assert s["preference"]["options"]["reference"] == "a frozen copy of the starting model"
    assert s["preference"]["counters"]["train"]["truncated_prompt"] > 0  # vicuna's system prompt alone is ~40 tokens
    assert "eval_perplexity" not in s["metrics"]
    improved(tmp_path / "dpo", "rewards/margins", "rewards/accuracies")
    assert s["preference"]["last_logged"]["rewards/margins"] > s["preference"]["first_logged"]["rewards/margins"]
    assert os.path.getsize(tmp_path / "dpo" / "preference_metrics.png") > 1000
    assert s["train_target_tokens_this_rank"] < s["train_tokens_this_rank"]  # prompts are not scored


def test_orpo_raises_margin_and_accuracy(demo_dir, tmp_path):
    assert main_orpo(args(demo_dir, tmp_path, "orpo", "--max_steps", "24", "--learning_rate", "3e-3",
                          *on_training_pairs("orpo"))) == 0
    s = read_summary(tmp_path / "orpo")
    assert s["preference"]["options"] == {"orpo_beta": 0.1}
    # ORPO's rewards are orpo_beta x the average log-probability per response token: a smaller scale
    improved(tmp_path / "orpo", "rewards/margins", "rewards/accuracies", gain=0.02)


def test_reward_model_raises_margin_and_accuracy(demo_dir, tmp_path):
    assert main_rm(args(demo_dir, tmp_path, "rm", "--max_steps", "24", "--learning_rate", "2e-3",
                        *on_training_pairs("rm"))) == 0
    improved(tmp_path / "rm", "margin", "accuracy")
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").config.num_labels == 1


def test_resume_continues_with_the_same_losses(demo_dir, tmp_path):
    common = ["--max_steps", "6", "--save_steps", "3", "--save_strategy", "steps", "--use_peft", "true",
              "--logging_steps", "1", "--learning_rate", "2e-3", "--per_device_train_batch_size", "4"]
    assert main_dpo(args(demo_dir, tmp_path, "full", *common)) == 0
    os.makedirs(tmp_path / "resumed")
    shutil.copytree(tmp_path / "full" / "checkpoint-3", tmp_path / "resumed" / "checkpoint-3")
    assert main_dpo(args(demo_dir, tmp_path, "resumed", *common, "--resume_from_checkpoint", "true")) == 0
    full, resumed = logged_losses(tmp_path / "full"), logged_losses(tmp_path / "resumed")
    assert [resumed[k] for k in (4, 5, 6)] == pytest.approx([full[k] for k in (4, 5, 6)], rel=1e-5)
    assert read_summary(tmp_path / "full")["preference"]["options"]["reference"].startswith("the model with the LoRA")


def test_bad_pair_stops_with_file_and_line_or_is_counted(demo_dir, tmp_path, capsys):
    good = {"question": "Q?", "response_chosen": "Good answer.", "response_rejected": "Bad."}
    write_records(tmp_path / "data" / "p.jsonl", [good] * 20 + [{"question": "Q?", "response_chosen": "A."}])
    assert main_dpo(args(demo_dir, tmp_path, "bad", "--max_steps", "1", data=str(tmp_path / "data"))) == 2
    err = capsys.readouterr().err
    assert "p.jsonl:21: missing 'response_rejected'" in err and "--skip_bad_lines" in err
    assert main_dpo(args(demo_dir, tmp_path, "skip", "--max_steps", "1", "--skip_bad_lines", "true",
                         data=str(tmp_path / "data"))) == 0
    assert read_summary(tmp_path / "skip")["train"]["skipped_lines"] == {"missing_side": 1}


def test_flags_of_another_task_or_layout_are_errors(demo_dir, tmp_path):
    with pytest.raises(ValueError, match="does not use --beta \\(an option of dpo_training.py\\)"):
        main_rm(args(demo_dir, tmp_path, "x", "--beta", "0.2"))
    with pytest.raises(ValueError, match="--block_size: preference training keeps one pair per row"):
        main_dpo(args(demo_dir, tmp_path, "x", "--block_size", "512"))


@pytest.mark.slow
def test_two_processes_zero2_lora_train_as_one_with_twice_the_batch(demo_dir, tmp_path):
    common = ["--max_steps", "4", "--use_peft", "true", "--logging_steps", "1", "--learning_rate", "2e-3",
              "--train_sampling_strategy", "sequential", "--disable_dropout", "true"]
    single("dpo_training.py", args(demo_dir, tmp_path, "one", *common, "--per_device_train_batch_size", "4"))
    torchrun(2, "dpo_training.py", args(demo_dir, tmp_path, "two", *common, "--per_device_train_batch_size", "2",
                                        "--deepspeed", os.path.join(ROOT, "zero2.json")))
    one, two = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert len(one) == 4 and [two[k] for k in one] == pytest.approx([one[k] for k in one], rel=1e-4)
    s1, s2 = read_summary(tmp_path / "one"), read_summary(tmp_path / "two")
    assert s2["world_size"] == 2
    for k in ("rewards/margins", "rewards/accuracies"):
        assert s2["preference"]["last_logged"][k] == pytest.approx(s1["preference"]["last_logged"][k], abs=1e-3)
    json.dumps(s2)


@pytest.mark.slow
def test_full_fine_tuning_with_a_reference_model_under_zero3(demo_dir, tmp_path):
    torchrun(2, "dpo_training.py", args(demo_dir, tmp_path, "z3", "--max_steps", "3", "--logging_steps", "1",
                                        "--per_device_train_batch_size", "2", "--learning_rate", "2e-3",
                                        "--deepspeed", os.path.join(ROOT, "zero3.json")))
    with open(tmp_path / "z3" / "trainer_state.json") as fh:
        logs = [h for h in json.load(fh)["log_history"] if "rewards/margins" in h]
    # the frozen reference is the starting model: before the first update policy and reference agree
    assert logs[0]["rewards/chosen"] == pytest.approx(0.0, abs=1e-5) and logs[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert logs[-1]["rewards/margins"] != 0.0  # and training moves the policy away from it
    s = read_summary(tmp_path / "z3")
    assert s["world_size"] == 2 and s["preference"]["options"]["reference"] == "a frozen copy of the starting model"
