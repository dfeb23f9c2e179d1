"""The failure table of bad input and bad surroundings, through the real entry points: each case ends
with exit code 2 and one message naming the file or directory and the cause, never a traceback; with
--skip_bad_lines the input cases are counted instead."""

import gzip
import json
import os

import pytest

from medtrain.cli.pretrain import main as pretrain_main
from medtrain.cli.prepare import main as prepare_main

from helpers import read_summary, write_jsonl, write_text

GOOD = [f"Patient {i} presents with fever and cough; advise rest, fluids and follow-up." for i in range(40)]


def fake_zst(d):
    return write_text(d / "notes.jsonl.zst", json.dumps({"text": "not compressed at all"}) + "\n")


def fake_gz(d):
    return write_text(d / "notes.jsonl.gz", json.dumps({"text": "plain text, not gzip"}) + "\n")


def utf16(d):
    path = d / "notes.txt"
    path.write_bytes("\n".join(GOOD[:5]).encode("utf-16"))
    return str(path)


def symlink_loop(d):
    os.makedirs(d, exist_ok=True)
    os.symlink(d / "loop", d / "loop")
    return str(d / "loop")


def gz_of_utf16(d):
    path = d / "notes.txt.gz"
    with gzip.open(path, "wb") as fh:
        fh.write("\n".join(GOOD[:5]).encode("utf-16"))
    return str(path)


CASES = {  # name: (make the bad input in a folder, words the message must contain, skip reason)
    "zst_not_zstd": (fake_zst, ["notes.jsonl.zst", "zstd"], "bad_compression"),
    "gz_not_gzip": (fake_gz, ["notes.jsonl.gz", "gzip"], "bad_compression"),
    "utf16_text": (utf16, ["notes.txt", "UTF-16", "iconv"], "not_utf8_file"),
    "utf16_in_gzip": (gz_of_utf16, ["notes.txt.gz", "UTF-16"], "not_utf8_file"),
    "symlink_loop": (symlink_loop, ["loop", "symbolic link loop"], "unreadable_path"),
}


def run_args(demo_dir, tmp_path, *extra):
    return ["--model_name_or_path", demo_dir, "--train_file_dir", str(tmp_path / "data"), "--cache_dir",
            str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out"), "--max_steps", "1",
            "--per_device_train_batch_size", "2", "--block_size", "32", "--save_strategy", "no", "--num_proc", "1",
            "--validation_split_percentage", "0", *extra]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_stops_with_its_message(demo_dir, tmp_path, capsys, case):
    make, words, _ = CASES[case]
    write_jsonl(tmp_path / "data" / "good.jsonl", GOOD)
    make(tmp_path / "data")
    assert pretrain_main(run_args(demo_dir, tmp_path)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error: ") == 1
    line = err[err.index("error: "):]
    assert all(w in line for w in words), line


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_counted_with_skip_bad_lines(demo_dir, tmp_path, case):
    make, _, reason = CASES[case]
    write_jsonl(tmp_path / "data" / "good.jsonl", GOOD)
    make(tmp_path / "data")
    assert pretrain_main(run_args(demo_dir, tmp_path, "--skip_bad_lines", "true")) == 0
    train = read_summary(tmp_path / "out")["train"]
    assert train["skipped_lines"].get(reason, 0) >= 1 and train["documents"] == len(GOOD)


def test_overwrite_of_a_foreign_directory(demo_dir, tmp_path, capsys):
    mine = tmp_path / "mine"
    write_text(mine / "keep.txt", "mine")
    write_jsonl(tmp_path / "data" / "good.jsonl", GOOD)
    assert prepare_main(["--tokenizer_name_or_path", demo_dir, "--train_file_dir", str(tmp_path / "data"),
                         "--output_dir", str(mine), "--overwrite_cache", "true", "--num_proc", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(mine) in err and "not a token store" in err
    assert os.listdir(mine) == ["keep.txt"]
