"""MedicalGPT's flags: every argument of its pretraining.py and supervised_finetuning.py argument
classes is accepted with its meaning (resolved once, with a note in run_config.json) or rejected with
a message naming what to use instead."""

import pytest
from transformers import TrainingArguments

from medtrain.cli.pretrain import parse_pretraining_args
from medtrain.cli.sft import SftArguments, resolve_sft_config
from medtrain.config.arguments import (REJECTED_FLAGS, ArgumentError, DataArguments, ModelArguments, parse_args,
                                       parse_run_args)
from medtrain.config.run_config import resolve_run

# The field names of MedicalGPT's argument classes (training/pretraining.py and
# training/supervised_finetuning.py: ModelArguments, DataArguments, ScriptArguments), written here from
# the public scripts; with Seq2SeqTrainingArguments' own fields, which its parser also takes.
MEDICALGPT_PT = ["model_name_or_path", "tokenizer_name_or_path", "load_in_8bit", "load_in_4bit", "cache_dir",
                 "model_revision", "hf_hub_token", "use_fast_tokenizer", "torch_dtype", "device_map",
                 "trust_remote_code", "dataset_name", "dataset_config_name", "train_file_dir", "validation_file_dir",
                 "max_train_samples", "max_eval_samples", "streaming", "block_size", "overwrite_cache",
                 "validation_split_percentage", "preprocessing_num_workers", "keep_linebreaks", "packing",
                 "use_peft", "target_modules", "lora_rank", "lora_dropout", "lora_alpha", "modules_to_save",
                 "peft_path", "qlora"]
MEDICALGPT_SFT = ["rope_scaling", "flash_attn", "shift_attn", "neft_alpha", "ignore_pad_token_for_loss",
                  "train_on_inputs", "model_max_length", "template_name", "tool_format"]
SEQ2SEQ_ONLY = ["sortish_sampler", "predict_with_generate", "generation_max_length", "generation_num_beams",
                "generation_config"]
OLDER_SCRIPTS = ["model_type", "max_source_length", "max_target_length", "evaluation_strategy", "warmup_ratio",
                 "overwrite_output_dir"]

PT_TYPES = (ModelArguments, DataArguments, TrainingArguments)
SFT_TYPES = (ModelArguments, DataArguments, TrainingArguments, SftArguments)


def flags(types):
    """The option strings our parser takes (aliases included)."""
    from transformers import HfArgumentParser

    return set(HfArgumentParser(types)._option_string_actions)


def test_every_medicalgpt_flag_is_accepted_or_rejected_with_a_replacement():
    pt, sft = flags(PT_TYPES), flags(SFT_TYPES)
    for name in MEDICALGPT_PT + MEDICALGPT_SFT + SEQ2SEQ_ONLY + OLDER_SCRIPTS:
        known = f"--{name}" in (sft if name in MEDICALGPT_SFT else pt)
        assert not (known and name in REJECTED_FLAGS), name
        assert known or name in REJECTED_FLAGS, name
        if name in REJECTED_FLAGS:
            assert "--" in REJECTED_FLAGS[name] or "drop the flag" in REJECTED_FLAGS[name], name


@pytest.mark.parametrize("flag", sorted(REJECTED_FLAGS))
def test_rejected_flag_names_its_replacement(flag):
    with pytest.raises(ArgumentError) as e:
        parse_args(SFT_TYPES, ["--model_name_or_path", "x", f"--{flag}", "1"])
    assert f"--{flag}: {REJECTED_FLAGS[flag]}" in str(e.value)


@pytest.mark.parametrize("argv, message", [
    (["--shift_attn", "true"], "--shift_attn (LongLoRA's S^2-Attn) is not supported: for long contexts use "
                               "--rope_scaling"),
    (["--use_fast_tokenizer", "false"], "medtrain reads fast tokenizers (tokenizer.json) only"),
    (["--ignore_pad_token_for_loss", "false"], "To train on the prompts as well as the replies use "
                                               "--train_on_inputs true"),
    (["--qlora", "true", "--load_in_8bit", "true"], "--qlora loads the model in 4 bits: drop --load_in_8bit"),
    (["--rope_scaling", "ntk"], "invalid choice"),
    (["--dataset_name", "d", "--train_file_dir", "x"], "give one of --dataset_name, --train_file_dir and --mixture"),
])
def test_flags_that_cannot_apply_are_errors(argv, message):
    with pytest.raises((ArgumentError, SystemExit)) as e:
        parse_args(SFT_TYPES, ["--model_name_or_path", "x", *argv])
    if e.type is not SystemExit:
        assert message in str(e.value)


def test_accepted_flags_of_no_consequence_are_still_honoured_values():
    m, d, t, s = parse_args(SFT_TYPES, ["--model_name_or_path", "x", "--shift_attn", "false", "--use_fast_tokenizer",
                                        "true", "--ignore_pad_token_for_loss", "true", "--model_revision", "v1",
                                        "--hf_hub_token", "hf_x", "--tool_format", "default", "--template_name",
                                        "vicuna", "--train_on_inputs", "true"])
    assert (m.model_revision, m.hf_hub_token, s.tool_format, s.train_on_inputs) == ("v1", "hf_x", "default", True)


def pt_config(argv, **kw):
    return resolve_run("pretraining", parse_pretraining_args(["--model_name_or_path", "m", *argv]), **kw)


def test_qlora_flash_attn_neft_alpha_model_type_resolve_with_notes():
    c = pt_config(["--qlora", "true", "--flash_attn", "true", "--neft_alpha", "5", "--model_type", "llama"])
    assert (c.model.load_in_4bit, c.model.use_peft) == (True, True)
    assert c.model.attn_implementation == "sdpa"   # no GPU here: sdpa, with the reason
    assert c.training.neftune_noise_alpha == 5.0
    notes = "\n".join(c.notes)
    assert "--load_in_4bit True: --qlora" in notes and "--use_peft True: --qlora" in notes
    assert "--attn_implementation sdpa: --flash_attn true, but no GPU here: sdpa instead" in notes
    assert "--neftune_noise_alpha 5.0: --neft_alpha" in notes
    assert "--model_type llama: not needed" in notes
    saved = c.to_dict()
    assert saved["notes"] == list(c.notes) and saved["arguments"]["neftune_noise_alpha"] == 5.0
    with pytest.raises(ArgumentError, match="--flash_attn true conflicts with --attn_implementation eager"):
        pt_config(["--flash_attn", "true", "--attn_implementation", "eager"])
    with pytest.raises(ArgumentError, match="disagree"):
        pt_config(["--neft_alpha", "5", "--neftune_noise_alpha", "10"])


def test_device_map_is_for_one_process(monkeypatch):
    assert pt_config(["--device_map", "auto"]).model.device_map == "auto"
    parsed = parse_pretraining_args(["--model_name_or_path", "m", "--device_map", "auto"])
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
    c = resolve_run("pretraining", parsed)
    assert c.model.device_map is None and any("each of the 2 ranks" in n for n in c.notes)


@pytest.mark.parametrize("argv, train, evaluate_flag", [
    ([], True, None),                                   # neither: train (and evaluate when there is data)
    (["--do_train"], True, None),
    (["--do_eval"], False, True),                       # --do_eval alone: evaluate only
    (["--do_train", "--do_eval"], True, True),
])
def test_do_train_do_eval_as_transformers_example_scripts(argv, train, evaluate_flag):
    c = pt_config(argv)
    assert c.training.do_train is train
    if evaluate_flag is not None:
        assert c.training.do_eval is evaluate_flag
    assert ("do_train" in c.arguments()) == ("--do_train" in argv)  # a rerun resolves it the same way


def test_final_evaluation_follows_do_eval():
    from medtrain.errors import DataError
    from medtrain.training.runner import final_evaluation

    assert final_evaluation(pt_config([]), True) and not final_evaluation(pt_config([]), False)
    assert final_evaluation(pt_config(["--do_eval"]), True)
    assert not final_evaluation(pt_config(["--do_train", "--eval_strategy", "no"]), True)
    assert final_evaluation(pt_config(["--do_train", "--eval_strategy", "steps"]), True)  # transformers sets do_eval
    with pytest.raises(DataError, match="--do_eval: there is no evaluation data"):
        final_evaluation(pt_config(["--do_eval"]), False)


def test_user_data_without_a_model_asks_for_one():
    parsed = parse_pretraining_args(["--train_file_dir", "mine"])
    with pytest.raises(ArgumentError, match="--train_file_dir is given without --model_name_or_path: name the model"):
        resolve_run("pretraining", parsed, default_model=lambda m: "demo")
    demo = resolve_run("pretraining", parse_pretraining_args([]), default_model=lambda m: "demo", default_data="d")
    assert (demo.model.model_name_or_path, demo.data.train_file_dir) == ("demo", ["d"])


def test_max_train_samples_mode_defaults_per_task():
    assert pt_config(["--max_train_samples", "10"]).data.max_train_samples_mode == "first"
    sft = resolve_sft_config(["--model_name_or_path", "m", "--max_train_samples", "10"])
    assert sft.data.max_train_samples_mode == "random"
    assert any("random sample of conversations across all files" in n for n in sft.notes)
    assert resolve_sft_config(["--model_name_or_path", "m", "--max_train_samples", "10", "--max_train_samples_mode",
                               "first"]).data.max_train_samples_mode == "first"
    with pytest.raises(ArgumentError, match="--keep_linebreaks applies to pretraining"):
        resolve_sft_config(["--model_name_or_path", "m", "--keep_linebreaks", "true"])


def test_local_dataset_directory_becomes_its_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "a"}]),
                               "validation": datasets.Dataset.from_list([{"text": "b"}])})
    dd.save_to_disk(str(tmp_path / "ds"))
    c = pt_config(["--dataset_name", str(tmp_path / "ds")])
    assert c.data.train_file_dir == [str(tmp_path / "ds" / "train")]
    assert c.data.validation_file_dir == [str(tmp_path / "ds" / "validation")]
    args = c.arguments()  # a rerun names the dataset, not its split directories
    assert args["dataset_name"] == str(tmp_path / "ds") and "train_file_dir" not in args
    with pytest.raises(ArgumentError, match="not a local dataset directory"):
        pt_config(["--dataset_name", "org/some-dataset"])  # no hub here: only a locate_dataset hook finds it
    located = pt_config(["--dataset_name", "org/some-dataset", "--dataset_config_name", "pretrain"],
                        locate_dataset=lambda m, d: str(tmp_path / "ds"))
    assert located.data.train_file_dir == [str(tmp_path / "ds" / "train")]


def test_config_file_of_a_dataset_run_reruns(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"text": "a"}]).save_to_disk(str(tmp_path / "one"))
    c = pt_config(["--dataset_name", str(tmp_path / "one"), "--output_dir", str(tmp_path / "out")])
    path = c.save()
    again = resolve_run("pretraining", parse_run_args(PT_TYPES, [path]))
    assert again.data.train_file_dir == [str(tmp_path / "one")] and again.data.validation_file_dir is None
