"""SFT end to end through the real entry points: `medtrain.sft.main` trains the tiny model (loss goes
down) one conversation per row, packed, length-grouped, with LoRA; the adapter merges into a model
that loads and generates; --preview_samples; and ZeRO-2 under torchrun through run_sft.sh."""

import json
import os
import subprocess

import pytest

from medtrain.cli.sft import DEMO_SFT_DATA, SftArguments, main, resolve_sft_config

from helpers import read_summary
from helpers.launch import ROOT, free_port, launch_env, logged_losses
from helpers.sft import CONVERSATIONS, write_format, write_records, record


def args(demo_dir, tmp_path, out, *extra):
    return ["--model_name_or_path", demo_dir, "--train_file_dir", DEMO_SFT_DATA, "--cache_dir",
            str(tmp_path / "cache"), "--output_dir", str(tmp_path / out), "--model_max_length", "256",
            "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--logging_steps", "1",
            "--save_strategy", "no", "--num_proc", "1", "--seed", "5", "--validation_split_percentage", "5", *extra]


def test_sft_trains_one_conversation_per_row(demo_dir, tmp_path):
    assert main(args(demo_dir, tmp_path, "run", "--max_steps", "25")) == 0
    losses = logged_losses(tmp_path / "run")
    assert losses[25] < losses[1] - 1.0
    s = read_summary(tmp_path / "run")
    assert s["task"] == "sft" and s["packing_strategy"] == "none" and s["block_size"] == 256
    assert s["train"]["documents_split_across_blocks"] == 0 and s["train"]["blocks"] == s["train"]["documents"]
    assert 0 < s["batch_padding_fraction"] < s["train"]["padding_fraction"]  # to the batch's longest, not 256
    assert s["metrics"]["eval_loss"] > 0 and s["eval"]["documents"] > 0
    assert s["sft"]["template"] == "vicuna" and s["sft"]["counters"]["train"]["dropped_no_target"] == 0
    assert s["train"]["truncated"] > 0 == s["train"]["dropped_no_target"]  # some conversations exceed 256
    assert s["train_target_tokens_this_rank"] < s["train_tokens_this_rank"]  # prompts are not trained
    # the tokenizer saved with the model renders the training format
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "run")
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi?"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("USER: Hi? ASSISTANT: ") and prompt.startswith("A chat between")


def test_sft_packed_and_length_grouped(demo_dir, tmp_path):
    assert main(args(demo_dir, tmp_path, "packed", "--max_steps", "20", "--packing", "true")) == 0
    packed = read_summary(tmp_path / "packed")
    assert packed["packing_strategy"] == "group_by_text"
    assert packed["train"]["blocks"] < packed["train"]["documents"]  # several conversations per row
    losses = logged_losses(tmp_path / "packed")
    assert losses[20] < losses[1] - 1.0
    assert main(args(demo_dir, tmp_path, "grouped", "--max_steps", "6", "--group_by_length", "true")) == 0
    grouped = read_summary(tmp_path / "grouped")
    assert grouped["group_by_length"] is True and grouped["packing_strategy"] == "none"
    assert grouped["batch_padding_fraction"] < 0.1  # about 0.27 in random batches of this data
    assert packed["batch_padding_fraction"] < 0.35


def test_sft_streaming(demo_dir, tmp_path):
    assert main(args(demo_dir, tmp_path, "s", "--max_steps", "10", "--streaming", "true",
                     "--shuffle_buffer_size", "32", "--packing", "true")) == 0
    s = read_summary(tmp_path / "s")
    assert s["data_path"] == "streaming" and s["packing_strategy"] == "group_by_text"
    losses = logged_losses(tmp_path / "s")
    assert losses[10] < losses[1]
    assert s["train_target_tokens_this_rank"] < s["train_tokens_this_rank"]


def test_sft_validation_dir_and_bad_input_exit(demo_dir, tmp_path, capsys):
    val = write_format(tmp_path / "val", "openai")
    assert main(args(demo_dir, tmp_path, "v", "--max_steps", "3", "--validation_file_dir", val)) == 0
    assert read_summary(tmp_path / "v")["eval"]["documents"] == len(CONVERSATIONS)
    bad = write_records(tmp_path / "bad" / "b.jsonl", [record("sharegpt", None, [("q", "a")]),
                                                        {"conversations": [{"from": "human", "value": "q"},
                                                                           {"from": "gpt", "value": ""}]}])
    a = args(demo_dir, tmp_path, "b", "--max_steps", "2", "--validation_split_percentage", "0")
    a[a.index("--train_file_dir") + 1] = bad
    assert main(a) == 2
    assert f"error: {bad}:2: message 2 (gpt) is empty" in capsys.readouterr().err
    assert main(a + ["--skip_bad_lines", "true"]) == 0
    assert read_summary(tmp_path / "b")["train"]["skipped_lines"] == {"empty_reply": 1}


def test_preview_samples_marks_trained_spans_writes_preview_jsonl_and_does_not_train(demo_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    assert main(args(demo_dir, tmp_path, "p", "--preview_samples", "3", "--template_name", "chatml",
                     "--model_max_length", "1024")) == 0
    printed = capsys.readouterr().out
    assert printed.count("=== ") == 3 and "⟦" in printed and "<|im_end|>⟧" in printed
    lines = open(tmp_path / "p" / "preview.jsonl", encoding="utf-8").read().splitlines()
    assert len(lines) == 3
    tok = AutoTokenizer.from_pretrained(demo_dir)
    samples = [json.loads(line) for line in lines]
    for s in samples:
        assert set(s) == {"source", "input_ids", "labels", "text"} and len(s["input_ids"]) == len(s["labels"])
        assert all(lab in (-100, i) for i, lab in zip(s["input_ids"], s["labels"]))
        assert s["text"].startswith("<|im_start|>") and s["text"].endswith("<|im_end|>⟧")
        assert 0 < sum(lab != -100 for lab in s["labels"]) < len(s["labels"])
        assert s["source"] in printed
    first = json.loads(open(os.path.join(DEMO_SFT_DATA, "alpaca_medical.json")).read())[0]
    replies = [a for _, a in first.get("history", [])] + [first["output"]]  # the first record, multi-turn
    assert samples[0]["source"] == os.path.join(DEMO_SFT_DATA, "alpaca_medical.json") + ":2 (record 1)"
    trained = [tok.decode([i for i, lab in zip(samples[0]["input_ids"], samples[0]["labels"]) if lab != -100])]
    assert trained == ["".join(a + "<|im_end|>" for a in replies)]
    assert all(f"⟦{a}<|im_end|>⟧" in samples[0]["text"] for a in replies)
    assert sorted(os.listdir(tmp_path / "p")) == ["preview.jsonl"]  # nothing trained or saved


def sft_flags(argv):
    config = resolve_sft_config(argv)
    return config.model, config.data, config.extra(SftArguments)


def test_sft_flag_resolution():
    m, d, s = sft_flags([])  # the demo
    assert (d.packing_strategy, d.block_size, m.model_max_length) == ("none", 512, 512)
    m, d, s = sft_flags(["--model_name_or_path", "x", "--packing", "true"])
    assert (d.packing_strategy, d.block_size) == ("group_by_text", 2048)
    m, d, s = sft_flags(["--model_name_or_path", "x", "--packing_strategy", "best_fit", "--block_size", "300"])
    assert (d.packing_strategy, d.block_size, m.model_max_length) == ("best_fit", 300, 300)
    m, d, s = sft_flags(["--model_name_or_path", "x", "--packing", "false", "--model_max_length", "1024",
                                 "--template_name", "qwen", "--data_format", "openai", "--system_prompt", "S"])
    assert (d.packing_strategy, d.block_size, s.template_name, s.data_format) == ("none", 1024, "qwen", "openai")
    m, d, s = sft_flags(["--model_name_or_path", "x", "--packing-strategy", "concat", "--model-max-length=99"])
    assert (d.packing_strategy, d.block_size) == ("concat", 99)
    with pytest.raises(ValueError, match="unknown --template_name 'vicunaa'"):
        sft_flags(["--model_name_or_path", "x", "--template_name", "vicunaa"])


def test_lora_sft_then_merge_loads_and_generates(demo_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtrain.cli.merge import main as merge_main

    assert main(args(demo_dir, tmp_path, "lora", "--max_steps", "12", "--use_peft", "true", "--lora_rank", "8",
                     "--learning_rate", "1e-2", "--template_name", "chatml")) == 0
    out = tmp_path / "lora"
    assert os.path.exists(out / "adapter_model.safetensors") and not os.path.exists(out / "model.safetensors")
    losses = logged_losses(out)
    assert losses[12] < losses[1]
    assert merge_main(["--base_model_name_or_path", demo_dir, "--peft_model_path", str(out),
                       "--output_dir", str(tmp_path / "merged")]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert "<|im_start|>assistant" in tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                                                add_generation_prompt=True)
    base = AutoModelForCausalLM.from_pretrained(demo_dir).eval()
    from peft import PeftModel

    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(demo_dir), str(out)).eval()
    x = torch.tensor([tok("高血压有哪些症状？", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(merged(x).logits, tuned(x).logits, atol=1e-4)  # merged == base + adapter
        assert not torch.allclose(merged(x).logits, base(x).logits, atol=1e-3)
        gen = merged.generate(x, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert gen.shape[1] == x.shape[1] + 5 or tok.eos_token_id in gen[0, x.shape[1]:].tolist()


@pytest.mark.slow
def test_sft_zero2_two_processes_through_run_sft_sh(demo_dir, tmp_path):
    env = launch_env(NPROC_PER_NODE=2, MASTER_PORT=free_port(), MODEL=demo_dir, DS_CONFIG="zero2.json",
                     OUTPUT_DIR=str(tmp_path / "z2"), MAX_LENGTH=256, TEMPLATE="chatml")
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "run_sft.sh"), "--cache_dir", str(tmp_path / "cache"), "--max_steps", "8",
         "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--logging_steps", "1",
         "--save_strategy", "no", "--num_proc", "1", "--validation_split_percentage", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:]
    s = read_summary(tmp_path / "z2")
    assert s["world_size"] == 2 and s["task"] == "sft" and s["packing_strategy"] == "none"
    losses = logged_losses(tmp_path / "z2")
    assert losses[8] < losses[1]
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "z2")
