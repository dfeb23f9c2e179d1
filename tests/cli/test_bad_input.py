"""Bad input through the real entry point, `medtrain.pretrain.main`: errors name the file and line
(exit code 2, `error: ...` on stderr), `--skip_bad_lines` counts skips by reason in run_summary.json,
and a token store whose first build was killed is never trusted but completed by the next run."""

import glob
import json
import logging
import os
import re

import numpy as np
import pytest

from medtrain.cli.pretrain import main
from medtrain.errors import DataError
from medtrain.data.sources import find_files
from medtrain.data.token_store import StoreBuilder, TokenCorpus

from helpers import read_summary, write_jsonl, write_text

DOCS = [f"Patient {i} presents with fever, cough and fatigue; advise rest, fluids and follow-up." for i in range(12)]
ZH = [f"第{i}位患者出现发热、咳嗽和乏力,建议休息、补液并随访。" for i in range(12)]


def args(demo_dir, tmp_path, train, *extra, out="out", cache="cache"):
    train = [train] if isinstance(train, str) else list(train)
    return ["--model_name_or_path", demo_dir, "--train_file_dir", *map(str, train),
            "--cache_dir", str(tmp_path / cache), "--output_dir", str(tmp_path / out),
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--block_size", "32",
            "--save_strategy", "no", "--num_proc", "1", "--validation_split_percentage", "0", *extra]


def manifests(cache):
    return glob.glob(os.path.join(str(cache), "token_store", "*", "manifest.json"))


def jsonl_lines(texts):
    return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)


def bad_corpus(tmp_path):
    """A directory with one good file and one with a malformed JSON line (3) and a missing field (5)."""
    d = tmp_path / "data"
    write_jsonl(d / "a_good.jsonl", DOCS)
    bad = write_text(d / "b_bad.jsonl", jsonl_lines(ZH[:2]) + '{"text": "unterminated\n' + jsonl_lines(ZH[2:3])
                     + '{"content": "wrong field"}\n' + jsonl_lines(ZH[3:]))
    return str(d), bad


def test_malformed_json_line_fails_naming_file_and_line(demo_dir, tmp_path, capsys):
    d, bad = bad_corpus(tmp_path)
    rc = main(args(demo_dir, tmp_path, d))
    err = capsys.readouterr().err
    assert rc == 2
    assert f"error: {bad}:3: malformed JSON" in err
    assert "--skip_bad_lines" in err
    assert not manifests(tmp_path / "cache")  # nothing a later run would trust
    assert not os.path.exists(tmp_path / "out" / "run_summary.json")


def test_bad_utf8_in_txt_fails_naming_file_and_line(demo_dir, tmp_path, capsys):
    p = tmp_path / "data" / "notes.txt"
    p.parent.mkdir()
    p.write_bytes(("\n".join(DOCS[:4]) + "\n").encode() + b"bad \xff byte\n" + "\n".join(DOCS[4:]).encode())
    rc = main(args(demo_dir, tmp_path, str(p)))
    err = capsys.readouterr().err
    assert rc == 2
    assert re.search(re.escape(f"error: {p}:5: invalid UTF-8"), err), err[-2000:]


def test_missing_path_fails_naming_it(demo_dir, tmp_path, capsys):
    missing = str(tmp_path / "no_such_dir" / "corpus.jsonl")
    rc = main(args(demo_dir, tmp_path, missing))
    err = capsys.readouterr().err
    assert rc != 0
    assert f"error: --train_file_dir: path does not exist: {missing}" in err
    assert not os.path.exists(tmp_path / "out" / "run_summary.json")


def test_missing_path_among_good_ones_and_missing_validation_path(demo_dir, tmp_path, capsys):
    good = write_jsonl(tmp_path / "data" / "a.jsonl", DOCS)
    missing = str(tmp_path / "typo")
    assert main(args(demo_dir, tmp_path, [good, missing])) == 2
    assert f"path does not exist: {missing}" in capsys.readouterr().err
    rc = main(args(demo_dir, tmp_path, good, "--validation_file_dir", missing))
    assert rc == 2
    assert f"error: --validation_file_dir: path does not exist: {missing}" in capsys.readouterr().err


def test_directory_without_data_fails_naming_it(demo_dir, tmp_path, capsys):
    d = tmp_path / "nothing_here"
    write_text(d / "README.md", "no data\n")
    assert main(args(demo_dir, tmp_path, str(d))) == 2
    assert f"no supported data file under {d}" in capsys.readouterr().err


def test_skip_bad_lines_succeeds_and_counts_by_reason(demo_dir, tmp_path, capsys):
    d, bad = bad_corpus(tmp_path)
    rc = main(args(demo_dir, tmp_path, d, "--skip_bad_lines", "true"))
    assert rc == 0, capsys.readouterr().err[-3000:]
    summary = read_summary(str(tmp_path / "out"))
    assert summary["train"]["skipped_lines"] == {"malformed_json": 1, "missing_field": 1}
    assert summary["train"]["documents"] == len(DOCS) + len(ZH)
    assert summary["global_step"] == 2
    assert len(manifests(tmp_path / "cache")) == 1


def test_skip_bad_lines_counts_every_reason(demo_dir, tmp_path, capsys):
    d = tmp_path / "data"
    write_jsonl(d / "a.jsonl", DOCS)
    write_text(d / "b.jsonl", "")                                          # empty_file
    (d / "c.jsonl").write_bytes(
        jsonl_lines(ZH[:3]).encode() + b"{oops\n"                            # malformed_json
        + b'{"text": "caf\xe9"}\n'                                           # bad_utf8
        + b'{"text": 12}\n'                                                  # not_a_string
        + b'{"body": "x"}\n'                                                 # missing_field
        + json.dumps({"text": "long " * 100}).encode() + b"\n"               # too_long (500 chars)
        + b"\n"                                                              # empty_line
        + jsonl_lines(ZH[3:]).encode())
    write_text(d / "d.txt", "\n".join(DOCS[:3]) + "\n" + "x" * 300 + "\n")  # too_long
    rc = main(args(demo_dir, tmp_path, str(d), "--skip_bad_lines", "true", "--max_document_chars", "200"))
    assert rc == 0, capsys.readouterr().err[-3000:]
    train = read_summary(str(tmp_path / "out"))["train"]
    assert train["skipped_lines"] == {"bad_utf8": 1, "empty_file": 1, "empty_line": 1, "malformed_json": 1,
                                      "missing_field": 1, "not_a_string": 1, "too_long": 2}
    assert train["documents"] == len(DOCS) + len(ZH) + 3


def test_too_long_document_is_an_error_without_skip(demo_dir, tmp_path, capsys):
    p = write_text(tmp_path / "data" / "d.txt", "\n".join(DOCS[:3]) + "\n" + "x" * 300 + "\n")
    assert main(args(demo_dir, tmp_path, p, "--max_document_chars", "200")) == 2
    err = capsys.readouterr().err
    assert f"error: {p}:4: document of 300 characters is over --max_document_chars 200" in err


# ---------------------------------------------------------------------------------------------------
# a first build killed midway is never trusted; the next run completes it
# ---------------------------------------------------------------------------------------------------
def three_files(tmp_path):
    d = tmp_path / "data"
    write_jsonl(d / "a.jsonl", DOCS[:6])
    write_text(d / "b.txt", "\n".join(ZH) + "\n")
    write_jsonl(d / "c" / "d.jsonl", DOCS[6:] + ZH[:3])
    return str(d)


def unit_file(store, i, kind):
    return os.path.join(store, "units", f"{i:05d}.{kind}")


@pytest.mark.parametrize("damage", ["manifest_only", "one_unit_unfinished", "all_units_unfinished"])
def test_killed_build_is_never_trusted_and_completed_by_next_run(demo_dir, tmp_path, capsys, spec, damage):
    data = three_files(tmp_path)
    files = find_files([data])
    cache = tmp_path / "cache"
    # the killed first build: the same store the run will look for (same files, tokenizer and options)
    store = StoreBuilder(files, spec, str(cache), num_proc=1, show_progress=False).ensure()
    n_units = len(json.load(open(os.path.join(store, "plan.json"))))
    assert n_units >= 4  # at least 4 units per worker (3 files, one cut into byte ranges)
    os.remove(os.path.join(store, "manifest.json"))
    unfinished = {"manifest_only": [], "one_unit_unfinished": [1],
                  "all_units_unfinished": list(range(n_units))}[damage]
    for i in unfinished:
        os.remove(unit_file(store, i, "json"))                 # the unit's done marker was never written
        with open(unit_file(store, i, "tokens"), "wb") as fh:  # half-written tokens, stale offsets
            fh.write(b"\x07\x00garbage")
        np.save(unit_file(store, i, "docs.npy"), np.array([0, 1, 5], dtype=np.int64))
        with open(unit_file(store, i, "tokens") + ".tmp.host.12345", "wb") as fh:
            fh.write(b"leftover")
    with pytest.raises(DataError, match="not a complete token store"):
        TokenCorpus(store)

    rc = main(args(demo_dir, tmp_path, data))
    assert rc == 0, capsys.readouterr().err[-3000:]
    train = read_summary(str(tmp_path / "out"))["train"]
    assert train["stores"] == [store]                     # the run resumed that very store
    assert train["units_tokenized_this_rank"] == len(unfinished)
    assert train["tokenized_this_run"] is bool(unfinished)
    assert os.path.isfile(os.path.join(store, "manifest.json"))

    clean = StoreBuilder(files, spec, str(tmp_path / "clean"), num_proc=1, show_progress=False).ensure()
    x, y = TokenCorpus(clean), TokenCorpus(store)
    assert x.n_documents == y.n_documents == len(DOCS) + len(ZH) + 3
    assert np.array_equal(x.doc_lengths, y.doc_lengths)
    assert np.array_equal(x.doc_keys, y.doc_keys)
    for doc in range(x.n_documents):
        assert np.array_equal(x.tokens(doc), y.tokens(doc)), f"document {doc}"
    assert train["tokens"] == int(x.doc_lengths.sum())
    for i in range(n_units):
        assert os.path.getsize(unit_file(store, i, "tokens")) == os.path.getsize(unit_file(clean, i, "tokens"))


def test_failed_build_then_fixed_file_runs(demo_dir, tmp_path, capsys):
    """A run that stopped on bad input leaves nothing trusted; after the file is fixed the next run works."""
    d, bad = bad_corpus(tmp_path)
    assert main(args(demo_dir, tmp_path, d)) == 2
    capsys.readouterr()
    write_jsonl(bad, ZH)  # fixed: new size and mtime, so a new fingerprint
    rc = main(args(demo_dir, tmp_path, d))
    assert rc == 0, capsys.readouterr().err[-3000:]
    train = read_summary(str(tmp_path / "out"))["train"]
    assert train["skipped_lines"] == {} and train["documents"] == len(DOCS) + len(ZH)
    assert len(manifests(tmp_path / "cache")) == 1


@pytest.mark.parametrize("streaming", [False, True])
def test_unsupported_files_next_to_good_data_are_reported(demo_dir, tmp_path, caplog, streaming):
    d = tmp_path / "data"
    write_jsonl(d / "good.jsonl", DOCS)
    write_text(d / "old.jsonl.bz2", "not read")
    write_text(d / "table.csv", "a,b\n1,2\n")
    extra = ["--streaming", "true"] if streaming else []
    with caplog.at_level(logging.WARNING):
        assert main(args(demo_dir, tmp_path, str(d), *extra)) == 0
    assert "old.jsonl.bz2" in caplog.text and "table.csv" in caplog.text
    inputs = read_summary(tmp_path / "out")["train"]["inputs"]
    assert inputs["unsupported_files"] == 2
    assert sorted(os.path.basename(p) for p in inputs["unsupported_examples"]) == ["old.jsonl.bz2", "table.csv"]
