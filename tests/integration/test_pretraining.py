"""End to end through the real entry point: train, reuse the store, resume, every block once."""

import json
import os
from collections import Counter

import pytest

from medtrain.cli.pretrain import main

from helpers import read_summary


def common(demo_dir, tmp_path, out, *extra):
    return ["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "cache"), "--output_dir",
            str(tmp_path / out), "--block_size", "64", "--per_device_train_batch_size", "4",
            "--learning_rate", "3e-3", "--logging_steps", "1", "--save_strategy", "no", "--num_proc", "1",
            "--seed", "7", "--report_to", "none", *extra]


def losses(output_dir):
    with open(os.path.join(output_dir, "trainer_state.json")) as fh:
        state = json.load(fh)
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


@pytest.mark.parametrize("streaming", [False, True])
def test_both_paths_train_and_loss_goes_down(demo_dir, tmp_path, streaming):
    extra = ["--streaming", "true", "--shuffle_buffer_size", "64"] if streaming else []
    assert main(common(demo_dir, tmp_path, "run", "--max_steps", "30", *extra)) == 0
    lo = losses(tmp_path / "run")
    assert lo[30] < lo[1] - 1.0
    s = read_summary(tmp_path / "run")
    assert s["data_path"] == ("streaming" if streaming else "token_store")
    assert s["metrics"]["eval_perplexity"] > 1
    assert s["global_step"] == 30 and s["peak_memory_mb"] > 0
    assert os.path.exists(tmp_path / "run" / "model.safetensors")


def test_store_reused_across_runs_and_block_sizes(demo_dir, tmp_path):
    assert main(common(demo_dir, tmp_path, "a", "--max_steps", "2")) == 0
    first = read_summary(tmp_path / "a")["train"]
    assert first["tokenized_this_run"] is True
    assert main(common(demo_dir, tmp_path, "b", "--max_steps", "2")) == 0
    second = read_summary(tmp_path / "b")["train"]
    assert second["tokenized_this_run"] is False and second["stores"] == first["stores"]
    assert main(common(demo_dir, tmp_path, "c", "--max_steps", "2", "--block_size", "96",
                       "--group_by_text", "true")) == 0
    third = read_summary(tmp_path / "c")["train"]
    assert third["tokenized_this_run"] is False and third["stores"] == first["stores"]
    assert third["block_size"] == 96 and third["strategy"] == "group_by_text"
    assert third["padding_fraction"] > first["padding_fraction"]
    # another text field is another store
    assert main(common(demo_dir, tmp_path, "d", "--max_steps", "2", "--text_field", "text",
                       "--skip_bad_lines", "true")) == 0
    assert read_summary(tmp_path / "d")["train"]["stores"] != first["stores"]


def test_every_block_trained_exactly_once_per_epoch(demo_dir, tmp_path, tokenizer, spec):
    from transformers import AutoModelForCausalLM, TrainingArguments

    from medtrain.data.block_dataset import BlockDataset
    from medtrain.data.collator import BlockCollator
    from medtrain.training.demo import DEMO_CORPUS
    from medtrain.data.sources import find_files
    from medtrain.data.token_store import StoreBuilder, TokenCorpus
    from medtrain.training.trainer import MedTrainer

    corpus = TokenCorpus(StoreBuilder(find_files([DEMO_CORPUS]), spec, str(tmp_path), show_progress=False).ensure())
    ds = BlockDataset(corpus, corpus.blocks(64, "group_by_text"))
    args = TrainingArguments(str(tmp_path / "o"), per_device_train_batch_size=3, use_cpu=True,
                             remove_unused_columns=False, report_to="none", seed=3)
    trainer = MedTrainer(model=AutoModelForCausalLM.from_pretrained(demo_dir), args=args, train_dataset=ds,
                         data_collator=BlockCollator(tokenizer.pad_token_id, True))
    pad = tokenizer.pad_token_id  # never produced by the tokenizer for text: it only pads
    seen, sizes = Counter(), []
    for batch in trainer.get_train_dataloader():
        sizes.append(len(batch["input_ids"]))
        for ids in batch["input_ids"].tolist():
            while ids and ids[-1] == pad:
                ids.pop()
            seen[tuple(ids)] += 1
    expected = Counter(tuple(ds[i].input_ids.tolist()) for i in range(len(ds)))
    assert seen == expected  # none repeated, none dropped, none replaced
    assert sum(sizes) == len(ds) and sizes[-1] == (len(ds) % 3 or 3)


@pytest.mark.parametrize("streaming", [False, True])
def test_resume_continues_with_the_same_losses(demo_dir, tmp_path, streaming):
    extra = ["--streaming", "true", "--shuffle_buffer_size", "16"] if streaming else []
    assert main(common(demo_dir, tmp_path, "full", "--max_steps", "6", *extra)) == 0
    full = losses(tmp_path / "full")
    args = common(demo_dir, tmp_path, "part", "--max_steps", "6", "--save_strategy", "steps",
                  "--save_steps", "3", *extra)
    # stop after step 3 (a checkpoint), as if killed, by training only 3 of the 6 scheduled steps
    from transformers import TrainerCallback

    import medtrain.training.trainer as pt

    class StopAt3(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                control.should_training_stop = True
                control.should_save = True

    orig = pt.MedTrainer.__init__

    def patched(self, *a, **k):
        orig(self, *a, **k)
        self.add_callback(StopAt3())

    pt.MedTrainer.__init__ = patched
    try:
        assert main(args) == 0
    finally:
        pt.MedTrainer.__init__ = orig
    assert os.path.isdir(tmp_path / "part" / "checkpoint-3")
    assert main(args + ["--resume_from_checkpoint", "true"]) == 0
    resumed = losses(tmp_path / "part")
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(full[step], rel=1e-5), (step, resumed, full)
