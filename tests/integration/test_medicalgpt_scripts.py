"""MedicalGPT's scripts/run_pt.sh and scripts/run_sft.sh command lines (their flag names, written here
from the public scripts; the values made tiny) under torchrun with 2 processes, on data of our own in
MedicalGPT's formats, from a user's folder with relative paths; --do_eval alone; run_pt.sh with a
relative DATA; merge_peft_adapter.py with MedicalGPT's flag names."""

import json
import os
import runpy
import subprocess
import sys

import pytest

from helpers import ROOT, read_summary, write_text
from helpers.launch import free_port, launch_env, logged_losses
from helpers.sft import write_records

pytestmark = pytest.mark.slow


def user_folder(tmp_path):
    """A MedicalGPT user's folder: data/pretrain (.txt and .jsonl) and data/sft (ShareGPT, tool calls)."""
    home = tmp_path / "user"
    lines = [f"Case {i}: the patient reports {s} for {i % 5 + 1} days; the doctor advises {a}."
             for i, (s, a) in enumerate([("fever", "rest"), ("cough", "fluids"), ("headache", "sleep"),
                                         ("back pain", "stretching")] * 12)]
    write_text(home / "data" / "pretrain" / "cases.txt", "\n".join(lines[:30]) + "\n")
    write_records(home / "data" / "pretrain" / "notes.jsonl", [{"text": t} for t in lines[30:]])
    sft = []
    for i in range(10):
        sft.append({"conversations": [{"from": "human", "value": f"What helps with symptom {i}?"},
                                      {"from": "gpt", "value": f"Rest, fluids and a check-up {i}."}]})
    sft.append({"conversations": [{"from": "human", "value": "Is fever dangerous?"},
                                  {"from": "gpt", "value": "Above 40 degrees, see a doctor."},
                                  {"from": "human", "value": "And for children?"}]})   # ends with a question
    sft.append({"system_prompt": "You are a paediatrician.",
                "conversations": [{"from": "human", "value": "My child coughs."},
                                  {"from": "gpt", "value": "Honey helps children over one year old."}]})
    write_records(home / "data" / "sft" / "medical_sft.jsonl", sft)
    tools = json.dumps([{"name": "get_dose", "description": "Dose of a drug",
                         "parameters": {"type": "object", "properties": {"drug": {"type": "string"}}}}])
    write_records(home / "data" / "sft" / "toolcall.jsonl", [
        {"conversations": [{"from": "human", "value": f"Dose of paracetamol for {w} kg?"},
                           {"from": "function_call", "value": json.dumps({"name": "get_dose",
                                                                          "arguments": {"drug": "paracetamol"}})},
                           {"from": "observation", "value": json.dumps({"mg_per_kg": 15})},
                           {"from": "gpt", "value": f"{15 * w} mg."}], "tools": tools} for w in (10, 20)])
    return home


def torchrun_here(cwd, script, flags, timeout=300):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), os.path.join(ROOT, script), *flags]
    proc = subprocess.run(cmd, cwd=cwd, env=launch_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def check_common(out, proc_output, rank=8, alpha=16, dropout=0.05):
    adapter = json.load(open(out / "adapter_config.json"))                       # --use_peft True, --lora_*
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"]) == (rank, alpha, dropout)
    assert {"q_proj", "v_proj", "down_proj"} <= set(adapter["target_modules"])   # --target_modules all
    assert any(f.startswith("events.out.tfevents") for _, _, fs in os.walk(out / "runs") for f in fs)  # tensorboard
    assert (out / "training_loss.png").exists()
    state = json.load(open(out / "trainer_state.json"))
    history = state["log_history"]
    assert history[0]["step"] == 1 and "loss" in history[0]                      # --logging_first_step True
    assert [h["step"] for h in history if "eval_loss" in h][:2] == [2, 4]        # --eval_strategy steps, --eval_steps 2
    assert sorted(d for d in os.listdir(out) if d.startswith("checkpoint-")) == ["checkpoint-4"]  # save_total_limit 1
    config = json.load(open(out / "run_config.json"))
    resolved = config["resolved"]
    assert resolved["training"]["bf16"] is True and resolved["training"]["gradient_checkpointing"] is True
    assert resolved["model"]["torch_dtype"] == "bfloat16"
    assert resolved["training"]["gradient_accumulation_steps"] == 2 and resolved["training"]["weight_decay"] > 0
    assert resolved["training"]["ddp_find_unused_parameters"] is False and resolved["training"]["ddp_timeout"] == 30000
    assert config["arguments"]["do_train"] is True and config["arguments"]["do_eval"] is True
    all_results = json.load(open(out / "all_results.json"))
    assert all_results["eval_loss"] > 0 and all_results["train_loss"] > 0
    return config, read_summary(out)


def test_medicalgpt_run_pt_sh_flags(demo_dir, tmp_path):
    home = user_folder(tmp_path)
    out = torchrun_here(home, "pretraining.py", [
        "--model_name_or_path", demo_dir, "--train_file_dir", "./data/pretrain", "--validation_file_dir",
        "./data/pretrain", "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2", "--do_train",
        "--do_eval", "--use_peft", "True", "--seed", "42", "--max_train_samples", "16", "--max_eval_samples", "6",
        "--num_train_epochs", "2", "--learning_rate", "2e-4", "--warmup_steps", "1", "--weight_decay", "0.01",
        "--logging_strategy", "steps", "--logging_steps", "1", "--eval_steps", "2", "--eval_strategy", "steps",
        "--save_steps", "4", "--save_strategy", "steps", "--save_total_limit", "1", "--gradient_accumulation_steps",
        "2", "--preprocessing_num_workers", "1", "--block_size", "32", "--packing", "True", "--output_dir",
        "outputs-pt", "--ddp_timeout", "30000", "--logging_first_step", "True", "--target_modules", "all",
        "--lora_rank", "8", "--lora_alpha", "16", "--lora_dropout", "0.05", "--torch_dtype", "bfloat16", "--bf16",
        "--report_to", "tensorboard", "--ddp_find_unused_parameters", "False", "--gradient_checkpointing", "True",
        "--cache_dir", "./cache"])
    run = home / "outputs-pt"                               # relative --output_dir: the user's folder
    config, summary = check_common(run, out)
    assert summary["world_size"] == 2 and summary["global_step"] == 4  # 2 epochs of 16 blocks / (2 ranks x 2 x 2)
    assert summary["train"]["blocks"] == 16 and summary["packing_strategy"] == "concat"  # --max_train_samples, --packing
    assert summary["train"]["documents"] > 0 and (home / "cache" / "token_store").is_dir()   # --cache_dir ./cache
    assert summary["eval"]["documents"] == 48                # --validation_file_dir: every document of the folder
    assert "Num examples = 6" in out                         # --max_eval_samples


def test_medicalgpt_run_sft_sh_flags_then_merge_with_its_flags(demo_dir, tmp_path, monkeypatch):
    home = user_folder(tmp_path)
    out = torchrun_here(home, "supervised_finetuning.py", [
        "--model_name_or_path", demo_dir, "--train_file_dir", "./data/sft", "--validation_file_dir", "./data/sft",
        "--per_device_train_batch_size", "1", "--per_device_eval_batch_size", "1", "--do_train", "--do_eval",
        "--use_peft", "True", "--max_train_samples", "8", "--max_eval_samples", "3", "--model_max_length", "512",
        "--num_train_epochs", "2", "--learning_rate", "2e-5", "--warmup_steps", "1", "--weight_decay", "0.05",
        "--logging_strategy", "steps", "--logging_steps", "1", "--eval_steps", "2", "--eval_strategy", "steps",
        "--save_steps", "4", "--save_strategy", "steps", "--save_total_limit", "1", "--gradient_accumulation_steps",
        "2", "--preprocessing_num_workers", "1", "--output_dir", "outputs-sft", "--ddp_timeout", "30000",
        "--logging_first_step", "True", "--target_modules", "all", "--lora_rank", "8", "--lora_alpha", "16",
        "--lora_dropout", "0.05", "--torch_dtype", "bfloat16", "--bf16", "--report_to", "tensorboard",
        "--ddp_find_unused_parameters", "False", "--gradient_checkpointing", "True", "--tool_format", "default",
        "--cache_dir", "./cache", "--flash_attn", "True"])
    run = home / "outputs-sft"
    config, summary = check_common(run, out)
    assert summary["world_size"] == 2 and summary["global_step"] == 4
    assert summary["train"]["blocks"] == 8 and summary["sft"]["max_length"] == 512      # --max_train_samples, length
    assert summary["sft"]["counters"]["train"]["dropped_trailing_question"] == 1         # trained without its question
    assert summary["train"]["skipped_lines"] == {} and summary["sft"]["counters"]["train"]["truncated"] == 0
    notes = "\n".join(config["notes"])
    assert "--flash_attn true, but no GPU here: sdpa instead" in notes
    assert "random sample of conversations across all files" in notes
    assert config["resolved"]["SftArguments"]["tool_format"] == "default"
    # merge_peft_adapter.py with MedicalGPT's flag names (the script run in this process, as `python` runs it)
    merged = tmp_path / "merged"
    script = os.path.join(ROOT, "merge_peft_adapter.py")
    monkeypatch.chdir(home)
    monkeypatch.setattr(sys, "argv", [script, "--base_model", demo_dir, "--lora_model", str(run), "--tokenizer_path",
                                      str(run), "--resize_emb", "--output_dir", str(merged)])
    with pytest.raises(SystemExit) as ended:
        runpy.run_path(script, run_name="__main__")
    assert ended.value.code == 0
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(merged)
    assert AutoTokenizer.from_pretrained(merged).chat_template   # the adapter's tokenizer, with its template


def test_do_eval_alone_evaluates_and_does_not_train(demo_dir, tmp_path):
    from medtrain.cli.pretrain import main

    base = ["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "cache"), "--block_size", "64",
            "--num_proc", "1", "--max_steps", "3", "--per_device_eval_batch_size", "4", "--max_eval_samples", "8"]
    assert main([*base, "--output_dir", str(tmp_path / "eval"), "--do_eval"]) == 0
    out = tmp_path / "eval"
    results = json.load(open(out / "all_results.json"))
    assert results["eval_loss"] > 0 and "train_loss" not in results
    assert not (out / "model.safetensors").exists() and not (out / "trainer_state.json").exists()
    assert "global_step" not in read_summary(out)
    assert main([*base, "--output_dir", str(tmp_path / "none"), "--do_eval", "--validation_split_percentage",
                 "0"]) == 2   # --do_eval without evaluation data: an error naming the fix


def test_run_pt_sh_relative_data_is_the_callers(demo_dir, tmp_path):
    home = tmp_path / "me"
    texts = [f"My own note number {i} about blood pressure." for i in range(25)]
    write_text(home / "data" / "pretrain" / "mine.txt", "\n".join(texts) + "\n")
    env = launch_env(NPROC_PER_NODE=1, MASTER_PORT=free_port(), MODEL=demo_dir, DATA="./data/pretrain",
                     OUTPUT_DIR="out", BLOCK_SIZE=16)
    proc = subprocess.run(["bash", os.path.join(ROOT, "run_pt.sh"), "--cache_dir", "./cache", "--max_steps", "2",
                           "--logging_steps", "1", "--per_device_train_batch_size", "2", "--save_strategy", "no", "--num_proc", "1",
                           "--validation_split_percentage", "0"], cwd=home, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-5000:]
    summary = read_summary(home / "out")                 # OUTPUT_DIR=out: in the caller's folder
    assert summary["train"]["documents"] == 25           # the user's 25 lines, not the bundled demo data
    assert len(logged_losses(home / "out")) >= 1
    # without MODEL, the same DATA stops with a message asking for --model_name_or_path: see
    # tests/config/test_medicalgpt_flags.py::test_user_data_without_a_model_asks_for_one
