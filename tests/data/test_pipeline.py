"""The two data paths give the same blocks; the token store is built once and reused."""

import json
import os
import shutil

import numpy as np
import pytest

from medtrain.data.block_dataset import BlockDataset
from medtrain.data.sources import find_files
from medtrain.data.streaming import StreamingBlocks
from medtrain.data.token_store import StoreBuilder, TokenCorpus, fingerprint
from medtrain.data.tokenization import TextEncoder, spec_from_tokenizer

from helpers import write_jsonl


def store_rows(files, spec, root, bs, strategy, split="all", holdout=0.0, num_proc=1, unit_bytes=32 << 20):
    path = StoreBuilder(files, spec, str(root), num_proc=num_proc, unit_bytes=unit_bytes,
                        show_progress=False).ensure()
    corpus = TokenCorpus(path)
    ds = BlockDataset(corpus, corpus.blocks(bs, strategy, True, split, holdout))
    return [ds[i] for i in range(len(ds))], corpus


def stream_rows(files, spec, bs, strategy, split="all", holdout=0.0, shuffle=0, unit_bytes=32 << 20):
    ds = StreamingBlocks(files, spec, bs, strategy, split=split, holdout_percentage=holdout,
                         shuffle_buffer=shuffle, loop=False, unit_bytes=unit_bytes)
    return list(ds.rows())


def key(row):
    return (tuple(row.input_ids.tolist()), tuple(np.asarray(row.piece_lengths).tolist()))


@pytest.mark.parametrize("strategy", ["concat", "group_by_text", "none"])
def test_streaming_equals_store_sequence(corpus_dir, spec, tmp_path, strategy):
    files = find_files([corpus_dir])
    a, _ = store_rows(files, spec, tmp_path, 96, strategy, num_proc=2, unit_bytes=200_000)
    b = stream_rows(files, spec, 96, strategy)
    assert len(a) == len(b) > 100
    assert [key(r) for r in a] == [key(r) for r in b]


def test_streaming_shuffled_is_same_multiset_and_holdout_matches(corpus_dir, spec, tmp_path):
    files = find_files([corpus_dir])
    for split in ("train", "eval"):
        a, _ = store_rows(files, spec, tmp_path, 64, "group_by_text", split, holdout=10.0)
        b = stream_rows(files, spec, 64, "group_by_text", split, holdout=10.0, shuffle=50)
        assert sorted(map(key, a)) == sorted(map(key, b))
        assert [key(r) for r in a] != [key(r) for r in b]  # it was shuffled


def test_train_and_eval_documents_are_disjoint(corpus_dir, spec, tmp_path):
    files = find_files([corpus_dir])
    path = StoreBuilder(files, spec, str(tmp_path), show_progress=False).ensure()
    corpus = TokenCorpus(path)
    train, ev = corpus.split_documents("train", 5.0), corpus.split_documents("eval", 5.0)
    assert len(ev) > 0 and len(np.intersect1d(train, ev)) == 0
    assert len(train) + len(ev) == corpus.n_documents


def test_group_by_text_loses_no_token_and_mixes_no_document(corpus_dir, spec, tmp_path):
    files = find_files([corpus_dir])
    path = StoreBuilder(files, spec, str(tmp_path), show_progress=False).ensure()
    corpus = TokenCorpus(path)
    index = corpus.blocks(128, "group_by_text")
    ds = BlockDataset(corpus, index)
    rebuilt = {d: [] for d in range(corpus.n_documents)}
    for b in range(len(ds)):
        row = ds[b]
        ids = row.input_ids
        off = 0
        for d, s, n in index.pieces(b):
            assert ids[off: off + n].tolist() == corpus.tokens(d, s, n).tolist()
            rebuilt[d].append((s, ids[off: off + n].tolist()))
            off += n
    for d, parts in rebuilt.items():
        joined = [t for _, p in sorted(parts) for t in p]
        assert joined == corpus.tokens(d).tolist()  # every token, once, in order
    stats = index.stats()
    assert stats["documents_split_across_blocks"] == sum(1 for d in rebuilt.values() if len(d) > 1)


def test_store_documents_are_the_tokenizer_ids(tmp_path, tokenizer, spec):
    f = write_jsonl(tmp_path / "d" / "a.jsonl", ["Fever and cough.", "高血压患者应定期监测血压。"])
    path = StoreBuilder(find_files([f]), spec, str(tmp_path / "c"), show_progress=False).ensure()
    corpus = TokenCorpus(path)
    for d, text in enumerate(["Fever and cough.", "高血压患者应定期监测血压。"]):
        expected = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert corpus.tokens(d).tolist() == expected
    assert corpus.dtype == np.uint16
    m = json.load(open(os.path.join(path, "manifest.json")))
    assert m["documents"] == 2 and m["format_version"] == 2


def test_fingerprint_changes_with_inputs_tokenizer_and_field(tmp_path, tokenizer, spec):
    f = write_jsonl(tmp_path / "d" / "a.jsonl", ["one", "two"])
    files = find_files([f])
    enc = TextEncoder(spec)
    base = fingerprint(files, enc, False, None)
    assert fingerprint(find_files([f]), enc, False, None) == base
    assert fingerprint(files, TextEncoder(spec, "content"), False, None) != base  # another text field
    assert fingerprint(files, TextEncoder(spec_from_tokenizer(tokenizer, add_bos=True)), False, None) != base
    with open(f, "a") as fh:
        fh.write(json.dumps({"text": "three"}) + "\n")
    assert fingerprint(find_files([f]), enc, False, None) != base
    # content mode ignores mtime, sees content
    g = write_jsonl(tmp_path / "e" / "a.jsonl", ["one", "two"])
    h = write_jsonl(tmp_path / "f" / "a.jsonl", ["one", "two"])
    os.utime(h, ns=(1, 1))
    assert fingerprint(find_files([g]), enc, False, None, "content") == \
        fingerprint(find_files([h]), enc, False, None, "content")
    assert fingerprint(find_files([g]), enc, False, None) != fingerprint(find_files([h]), enc, False, None)


def test_interrupted_build_is_not_trusted_and_resumes(corpus_dir, spec, tmp_path):
    files = find_files([corpus_dir])
    clean = StoreBuilder(files, spec, str(tmp_path / "clean"), unit_bytes=300_000, show_progress=False).ensure()
    b = StoreBuilder(files, spec, str(tmp_path / "crash"), unit_bytes=300_000, show_progress=False)
    path = b.ensure()
    os.remove(os.path.join(path, "manifest.json"))        # killed before the manifest ...
    os.remove(os.path.join(path, "units", "00001.json"))  # ... and before unit 1 was complete
    with open(os.path.join(path, "units", "00001.tokens"), "wb") as fh:
        fh.write(b"\x01\x02garbage")                       # half-written tokens of unit 1
    with pytest.raises(ValueError, match="not a complete token store"):
        TokenCorpus(path)
    again = StoreBuilder(files, spec, str(tmp_path / "crash"), unit_bytes=300_000, show_progress=False)
    assert again.ensure() == path
    assert again.built_units == 1  # only the unfinished unit was redone
    x, y = TokenCorpus(clean), TokenCorpus(path)
    assert np.array_equal(x.doc_lengths, y.doc_lengths)
    assert all(np.array_equal(x.tokens(d), y.tokens(d)) for d in range(x.n_documents))


def test_prepared_stores_in_parts_equal_one_store(corpus_dir, spec, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(corpus_dir, src)
    whole = TokenCorpus(StoreBuilder(find_files([str(src)]), spec, str(tmp_path / "w"),
                                     show_progress=False).ensure())
    # the directory walk lists a directory's files before its subdirectories
    p1 = StoreBuilder(find_files([str(src / "medical_en.txt"), str(src / "medical_zh.jsonl")]), spec,
                      str(tmp_path / "p"), show_progress=False).ensure()
    p2 = StoreBuilder(find_files([str(src / "guidelines")]), spec, str(tmp_path / "p"),
                      show_progress=False).ensure()
    assert p1 != p2
    parts = TokenCorpus([p1, p2])
    assert parts.n_documents == whole.n_documents
    assert all(np.array_equal(parts.tokens(d), whole.tokens(d)) for d in range(whole.n_documents))


def test_a_damaged_store_is_refused_naming_the_file(corpus_dir, spec, tmp_path):
    path = StoreBuilder(find_files([corpus_dir]), spec, str(tmp_path), show_progress=False).ensure()
    tokens = os.path.join(path, "units", "00000.tokens")
    with open(tokens, "r+b") as fh:
        fh.truncate(os.path.getsize(tokens) - 2)
    with pytest.raises(ValueError, match=r"00000\.tokens: .* bytes, the store's index expects"):
        TokenCorpus(path)
