"""Distributed training as users launch it: torchrun, DeepSpeed ZeRO-2/3, LoRA, two nodes, slow builds."""

import json
import os
import shutil
import subprocess
import time

import pytest
import torch

from helpers.launch import ROOT, free_port, logged_losses, single, launch_env, torchrun
from medtrain.cli.pretrain import main as pretrain_main

from helpers.runs import (KINDS, STEPS, assert_same_losses_after, assert_same_weights, flags, reference,
                          resumed_past_a_damaged_checkpoint)

pytestmark = pytest.mark.slow


def args(demo_dir, tmp_path, out, *extra):
    return ["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "cache"), "--output_dir",
            str(tmp_path / out), "--block_size", "64", "--learning_rate", "3e-3", "--logging_steps", "1",
            "--seed", "11", "--validation_split_percentage", "0", "--num_proc", "1", *extra]


def test_two_processes_train_as_one_group(demo_dir, tmp_path):
    common = ["--max_steps", "5", "--train_sampling_strategy", "sequential", "--save_strategy", "no"]
    # the 1-process run in this process (the entry point's main; a new process would only add ~5 s of imports)
    assert pretrain_main(args(demo_dir, tmp_path, "one", "--per_device_train_batch_size", "4", *common)) == 0
    proc = torchrun(2, "pretraining.py", args(demo_dir, tmp_path, "two", "--per_device_train_batch_size", "2",
                                              *common))
    summary = json.load(open(tmp_path / "two" / "run_summary.json"))
    assert summary["world_size"] == 2 and len(summary["peak_memory_mb_per_rank"]) == 2
    one, two = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert len(one) == 5
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-5)
    assert_same_weights(tmp_path / "one", tmp_path / "two")
    assert "INFO medtrain.training.monitoring: Run summary" in proc.stdout  # rank 0 reports ...
    assert "[rank 1]" not in proc.stdout.split("Run summary")[0].split("\n")[-1]  # ... without a rank prefix


@pytest.mark.parametrize("kind", ["zero2", "zero3"])
def test_deepspeed_checkpoint_and_resume(demo_dir, work, kind):
    """A ZeRO-2/3 run resumed from its step-3 checkpoint (copied to a new output directory, next to a
    damaged checkpoint-6) continues with the same losses and ends with the same weights as the run
    never stopped. Both runs are launched once per session (helpers/runs.py); on ZeRO-3 they are also
    test_resilience_torchrun.py's reference and truncated-checkpoint runs."""
    full = reference(kind, demo_dir, work)
    resumed, log, _ = resumed_past_a_damaged_checkpoint(kind, demo_dir, work)
    assert f"Resuming from {resumed / 'checkpoint-3'}" in log
    assert_same_losses_after(full, resumed, 3)
    assert_same_weights(full, resumed)
    if kind == "zero3":
        # the consolidated 16-bit save loads with plain from_pretrained and is the trained model:
        # its logits equal those of the fp32 weights gathered from the final ZeRO checkpoint
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
        from transformers import AutoModelForCausalLM

        saved = AutoModelForCausalLM.from_pretrained(full).eval()
        ref = AutoModelForCausalLM.from_pretrained(full).eval()
        state = get_fp32_state_dict_from_zero_checkpoint(str(full / f"checkpoint-{STEPS}"))
        ref.load_state_dict(state, strict=False)
        x = torch.randint(3, 1000, (2, 24))
        with torch.no_grad():
            assert torch.allclose(saved(x, use_cache=False).logits, ref(x, use_cache=False).logits, atol=1e-5)
        base = AutoModelForCausalLM.from_pretrained(demo_dir).eval()
        with torch.no_grad():
            assert not torch.allclose(saved(x, use_cache=False).logits, base(x, use_cache=False).logits, atol=1e-3)


def test_lora_trains_saves_loads_and_resumes(demo_dir, tmp_path):
    """One process, so both runs go through the entry point's main in this process."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lora = ["--use_peft", "true", "--lora_rank", "4", "--per_device_train_batch_size", "4", "--max_steps", "6",
            "--save_steps", "3"]
    assert pretrain_main(args(demo_dir, tmp_path, "lora", *lora)) == 0
    out = tmp_path / "lora"
    assert os.path.exists(out / "adapter_model.safetensors") and not os.path.exists(out / "model.safetensors")
    cfg = json.load(open(out / "adapter_config.json"))
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                          "down_proj"}
    base = AutoModelForCausalLM.from_pretrained(demo_dir).eval()
    x = torch.randint(3, 1000, (1, 16))
    with torch.no_grad():
        before = base(x, use_cache=False).logits
        tuned = PeftModel.from_pretrained(base, str(out)).eval()
        after = tuned(x, use_cache=False).logits
    assert not torch.allclose(before, after, atol=1e-4)
    os.makedirs(tmp_path / "lora2")
    shutil.copytree(out / "checkpoint-3", tmp_path / "lora2" / "checkpoint-3")
    assert pretrain_main(args(demo_dir, tmp_path, "lora2", *lora, "--resume_from_checkpoint", "true")) == 0
    a, b = logged_losses(out), logged_losses(tmp_path / "lora2")
    for step in (4, 5, 6):
        assert b[step] == pytest.approx(a[step], rel=1e-5)


def test_lora_under_zero2_with_two_processes(demo_dir, tmp_path):
    torchrun(2, "pretraining.py", args(demo_dir, tmp_path, "lz", "--use_peft", "true", "--deepspeed",
                                       os.path.join(ROOT, "zero2.json"), "--per_device_train_batch_size", "2",
                                       "--max_steps", "8", "--save_steps", "8"))
    losses = logged_losses(tmp_path / "lz")
    assert losses[8] < losses[1]
    assert os.path.exists(tmp_path / "lz" / "adapter_model.safetensors")


def test_two_simulated_nodes_through_run_pt_sh(demo_dir, tmp_path):
    port = free_port()
    procs = []
    for node in (0, 1):
        env = launch_env(NNODES=2, NODE_RANK=node, NPROC_PER_NODE=1, MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                       MODEL=demo_dir, DATA=os.path.join(ROOT, "data", "pretrain"),
                       OUTPUT_DIR=str(tmp_path / "nodes"), BLOCK_SIZE=64)
        procs.append(subprocess.Popen(
            ["bash", os.path.join(ROOT, "run_pt.sh"), "--cache_dir", str(tmp_path / "cache"), "--max_steps", "4",
             "--per_device_train_batch_size", "2", "--save_steps", "4", "--logging_steps", "1", "--num_proc", "1"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError("two-node run timed out:\n" + "\n=====\n".join(
                (q.communicate()[0] or "")[-3000:] for q in procs))
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-5000:]
    summary = json.load(open(tmp_path / "nodes" / "run_summary.json"))
    assert summary["world_size"] == 2
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "nodes")
    assert os.path.isdir(tmp_path / "nodes" / "checkpoint-4")


def test_slow_store_build_does_not_hit_ddp_timeout(demo_dir, tmp_path):
    t0 = time.time()
    torchrun(2, "pretraining.py", args(demo_dir, tmp_path, "slow", "--ddp_timeout", "10", "--max_steps", "3",
                                       "--per_device_train_batch_size", "2", "--save_strategy", "no"),
             MEDTRAIN_TEST_SLOW_UNIT_SECONDS=12, MEDTRAIN_TEST_SLOW_RANK=1, MEDTRAIN_TEST_SLOW_UNITS=1)
    assert time.time() - t0 > 12  # the build really was slower than the timeout
    assert len(logged_losses(tmp_path / "slow")) == 3
    summary = json.load(open(tmp_path / "slow" / "run_summary.json"))
    assert len(set(map(tuple, summary["stores_per_rank"]))) == 1  # both ranks use the same store
    assert summary["train"]["tokenized_this_run"] is True


def test_streaming_resume_under_torchrun(demo_dir, work, tmp_path):
    """The streaming reference run (shared, helpers/runs.py) resumed from its step-3 checkpoint in a new
    output directory: both ranks' stream positions are read back (no fast-forward), the losses and the
    final weights are those of the run never stopped."""
    full = reference("streaming", demo_dir, work)
    os.makedirs(tmp_path / "resumed")
    shutil.copytree(full / "checkpoint-3", tmp_path / "resumed" / "checkpoint-3")
    assert sorted(os.listdir(full / "checkpoint-3" / "data_state")) == ["rank0.json", "rank1.json"]
    proc = torchrun(2, "pretraining.py", flags(demo_dir, work / "cache", "--output_dir", str(tmp_path / "resumed"),
                                               *KINDS["streaming"], "--resume_from_checkpoint", "true"))
    assert "Resuming the stream of rank 0" in proc.stdout and "Fast-forwarding" not in proc.stdout
    assert_same_losses_after(full, tmp_path / "resumed", 3)
    assert_same_weights(full, tmp_path / "resumed")


def bad_line_corpus(root, good=240, bad=21):
    """A JSON-lines file with `bad` malformed lines among `good` documents, and a .txt file with one
    document cut for tokenizing (a line longer than the tokenizer's piece size is not needed: it is
    counted when present, 0 otherwise)."""
    os.makedirs(root, exist_ok=True)
    lines, every = [], good // bad
    for i in range(good):
        lines.append(json.dumps({"text": f"Patient {i} reports fever, cough and fatigue for {i % 9 + 1} days."}))
        if i % every == 0 and len([l for l in lines if l.startswith("{bad")]) < bad:
            lines.append("{bad json " + str(i))
    with open(os.path.join(root, "notes.jsonl"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return str(root)


@pytest.mark.parametrize("ranks,workers", [(1, 2), (2, 0)])
def test_streaming_counts_every_bad_line_across_workers_and_ranks(demo_dir, tmp_path, ranks, workers):
    data = bad_line_corpus(tmp_path / "data")
    run_flags = args(demo_dir, tmp_path, "out", "--train_file_dir", data, "--streaming", "true", "--skip_bad_lines",
                     "true", "--max_steps", "40", "--per_device_train_batch_size", "2", "--save_strategy", "no",
                     "--dataloader_num_workers", str(workers), "--shuffle_buffer_size", "0")
    if ranks == 1:
        single("pretraining.py", run_flags)
    else:
        torchrun(ranks, "pretraining.py", run_flags)
    summary = json.load(open(tmp_path / "out" / "run_summary.json"))
    streaming = summary["streaming"]
    assert streaming["skipped_lines"] == {"malformed_json": 21}
    assert streaming["documents"] >= 240 and "documents_cut_for_tokenizing" in streaming
    assert len(streaming["per_rank"]) == ranks
    assert sum(r["skipped_lines"].get("malformed_json", 0) for r in streaming["per_rank"]) == 21
