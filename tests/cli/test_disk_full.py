"""A full disk ends a store build or a checkpoint save with a message naming the path and the space,
exit code 2, and nothing half-written that a later run trusts. Runs on a small tmpfs where the machine
allows mounting one (root), skipped with the reason otherwise."""

import os
import subprocess
import uuid

import pytest

from helpers import write_jsonl

DOCS = [f"Patient {i} presents with fever, cough and fatigue; advise rest, fluids and follow-up visits." * 3
        for i in range(6000)]


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / f"small-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or proc.returncode}): needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_store_build_on_a_full_disk(demo_dir, tmp_path, small_disk, capsys):
    from medtrain.cli.prepare import main

    data = write_jsonl(tmp_path / "data" / "notes.jsonl", DOCS)  # ~1.8 MB of text: more tokens than 1 MB holds
    out = small_disk / "store"
    assert main(["--tokenizer_name_or_path", demo_dir, "--train_file_dir", data, "--output_dir", str(out),
                 "--num_proc", "1"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full while writing" in err and str(out) in err and "MB free there" in err
    assert not os.path.exists(out / "manifest.json")
    leftovers = [n for n in os.listdir(out / "units") if ".tmp." in n]
    assert leftovers == []  # the unit's temporary files were removed


def test_checkpoint_save_on_a_full_disk(demo_dir, tmp_path, small_disk, capsys):
    from medtrain.cli.pretrain import main

    out = small_disk / "run"
    rc = main(["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(out),
               "--block_size", "32", "--per_device_train_batch_size", "2", "--max_steps", "2", "--save_steps", "1",
               "--num_proc", "1", "--validation_split_percentage", "0"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "the disk is full while writing" in err and "checkpoint-1" in err and "stays incomplete" in err
    from medtrain.resilience.checkpoints import is_complete

    assert not is_complete(str(out / "checkpoint-1"))
