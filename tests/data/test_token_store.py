"""The token store at scale: index files built once and memory-mapped, bounded open files, format
migration. Stores are written directly in the real on-disk format (tiny units, no tokenizer) or built
from the demo corpus."""

import hashlib
import json
import multiprocessing as mp
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from medtrain.data.block_dataset import BlockDataset
from medtrain.data.sources import find_files
from medtrain.data.token_store import StoreBuilder, TokenCorpus
from medtrain.data.token_store import index as index_mod
from medtrain.data.token_store import reader as reader_mod
from medtrain.data.token_store.index import write_document_index
from medtrain.data.token_store.layout import DOCUMENT_INDEX, FORMAT_VERSION, MANIFEST, unit_paths
from medtrain.errors import DataError
from medtrain.training.demo import DEMO_CORPUS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def synthetic_store(path, docs_per_unit, seed=0, version=FORMAT_VERSION, vocab=500, eos=2, mean_len=12):
    """A pretraining token store in the on-disk format, written directly: unit i holds
    docs_per_unit[i] documents of random ids ending in EOS."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(path, "units"), exist_ok=True)
    units, docs, tokens = [], 0, 0
    for i, n in enumerate(docs_per_unit):
        lengths = rng.integers(1, 2 * mean_len, size=n)
        off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ids = rng.integers(3, vocab, size=int(off[-1])).astype(np.uint16)
        ids[off[1:] - 1] = eos
        up = unit_paths(path, i)
        ids.tofile(up["tokens"])
        np.save(up["docs"], off)
        np.save(up["keys"], rng.integers(0, 2 ** 32, size=n, dtype=np.uint64).astype(np.uint32))
        with open(up["done"], "w") as fh:
            json.dump({"unit": i, "documents": n, "tokens": int(off[-1])}, fh)
        units.append({"unit": i, "source": "synthetic.jsonl", "start": i, "end": i + 1, "bytes": 1,
                      "documents": n, "tokens": int(off[-1])})
        docs, tokens = docs + n, tokens + int(off[-1])
    if version >= 2:
        write_document_index([unit_paths(path, i) for i in range(len(docs_per_unit))], docs,
                             os.path.join(path, DOCUMENT_INDEX))
    manifest = {"format_version": version, "fingerprint": hashlib.sha256(path.encode()).hexdigest(),
                "dtype": "uint16", "has_mask": False, "vocab_size": vocab, "bos_id": None, "eos_id": eos,
                "add_bos": False, "add_eos": True, "units": units, "documents": docs, "tokens": tokens,
                "skipped": {}}
    with open(os.path.join(path, MANIFEST), "w") as fh:
        json.dump(manifest, fh)
    return path


def all_tokens(corpus):
    return [corpus.tokens(d).tolist() for d in range(corpus.n_documents)]


def index_sha(index):
    h = hashlib.sha256()
    for a in (index.piece_doc, index.piece_start, index.piece_len, index.block_ptr):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_document_index_is_mapped_not_copied(tmp_path):
    corpus = TokenCorpus(synthetic_store(str(tmp_path / "s"), [5, 0, 7, 3]))
    assert corpus.n_documents == 15
    for arr in (corpus.doc_lengths, corpus.doc_keys):
        assert not arr.flags.writeable and not arr.flags.owndata  # a view of the file's map
    off = [np.load(unit_paths(corpus.paths[0], i)["docs"]) for i in range(4)]
    assert corpus.doc_lengths.tolist() == np.concatenate([np.diff(o) for o in off]).tolist()
    ids = np.fromfile(unit_paths(corpus.paths[0], 2)["tokens"], dtype=np.uint16)
    assert corpus.tokens(5).tolist() == ids[off[2][0]:off[2][1]].tolist()  # document 5: unit 2's first
    assert corpus.tokens(6, 1, 2).tolist() == ids[off[2][1] + 1: off[2][1] + 3].tolist()


def test_block_rows_read_across_units_equal_the_documents(tmp_path):
    corpus = TokenCorpus(synthetic_store(str(tmp_path / "s"), [4, 1, 0, 6, 2]), max_open_files=2)
    docs = all_tokens(corpus)
    for strategy in ("concat", "group_by_text", "best_fit", "none"):
        index = corpus.blocks(16, strategy)
        for b in range(index.n_blocks):
            want = [t for d, s, n in index.pieces(b) for t in docs[d][s:s + n]]
            assert corpus.block_row(index, b).input_ids.tolist() == want
    assert len(corpus._files.fds) <= 2


def test_index_files_are_built_once_and_reused(tmp_path, caplog):
    store = synthetic_store(str(tmp_path / "s"), [50, 50])
    a = TokenCorpus(store)
    index = a.blocks(32, "best_fit", True, "train", 10.0)
    [(path, built)] = a.index_builds.items()
    assert built and os.path.dirname(path) == os.path.join(store, "packing")
    b = TokenCorpus(store)
    again = b.blocks(32, "best_fit", True, "train", 10.0)
    assert b.index_builds == {path: False} and index_sha(again) == index_sha(index)
    assert not again.piece_doc.flags.writeable
    # what the pipeline reads from the index without scanning it
    assert again.documents_in_split == len(a.split_documents("train", 10.0))
    concat = a.blocks(32, "concat", True, "train", 10.0).stats()
    assert again.concat_comparison() == {k: concat[k] for k in ("blocks", "padding_fraction",
                                                               "documents_split_across_blocks")}
    assert again.stats() == again.counted_stats()


def _open_and_pack(store, barrier, queue):
    corpus = TokenCorpus(store)
    barrier.wait()
    index = corpus.blocks(64, "best_fit", True, "train", 5.0)
    queue.put((os.getpid(), list(corpus.index_builds.values())[0], index_sha(index)))


def test_four_processes_build_one_index(tmp_path):
    store = synthetic_store(str(tmp_path / "s"), [40_000] * 5, mean_len=40)  # long enough to overlap
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open_and_pack, args=(store, barrier, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(built for _, built, _ in results) == 1       # built exactly once
    assert len({sha for _, _, sha in results}) == 1          # and every process sees the same index
    assert not [f for f in os.listdir(os.path.join(store, "packing")) if ".tmp." in f or f.endswith(".lock")]


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_killed_build_is_rebuilt_not_trusted(tmp_path):
    store = synthetic_store(str(tmp_path / "s"), [30, 30])
    want = index_sha(TokenCorpus(synthetic_store(str(tmp_path / "clean"), [30, 30])).blocks(16, "group_by_text"))
    corpus = TokenCorpus(store)
    path = os.path.join(store, corpus.index_name(16, "group_by_text"))
    os.makedirs(os.path.dirname(path))
    # a builder killed midway: its lock (a pid that is gone), a partial temporary file, and a final
    # file cut short (as a copy that stopped would leave it)
    with open(path + ".lock", "w") as fh:
        json.dump({"host": os.uname().nodename, "pid": _dead_pid(), "since": 0}, fh)
    with open(f"{path}.tmp.{os.uname().nodename}.1", "wb") as fh:
        fh.write(b"\0" * 1000)
    with open(path, "wb") as fh:
        fh.write(b"\1" * 5000)
    with pytest.raises(DataError, match="not a complete index file"):
        index_mod.IndexFile(path)
    index = corpus.blocks(16, "group_by_text")
    assert corpus.index_builds == {path: True} and index_sha(index) == want
    assert not os.path.exists(path + ".lock")


def test_a_lock_without_sign_of_life_is_taken_over(tmp_path):
    path = str(tmp_path / "x.idx")
    with open(path + ".lock", "w") as fh:
        json.dump({"host": "another-node", "pid": 1, "since": 0}, fh)
    os.utime(path + ".lock", (0, 0))  # not touched for ages

    def build(out):
        w = index_mod.IndexWriter(out, "test", {"a": (np.int64, 3)})
        w.append("a", [1, 2, 3])
        w.commit({"ok": True})

    assert index_mod.build_once(path, build, "a test index", stale_seconds=60)
    assert index_mod.IndexFile(path)["a"].tolist() == [1, 2, 3]


def test_version_1_store_is_migrated_without_tokenizing(spec, tmp_path):
    store = StoreBuilder(find_files([DEMO_CORPUS]), spec, str(tmp_path / "cache"), show_progress=False).ensure()
    v2 = TokenCorpus(store)
    want_tokens, want_blocks = all_tokens(v2), index_sha(v2.blocks(64, "best_fit"))
    # what a version-1 store looks like: no documents.idx, format 1 (its units are the same files)
    os.remove(os.path.join(store, DOCUMENT_INDEX))
    m = json.load(open(os.path.join(store, MANIFEST)))
    m["format_version"] = 1
    json.dump(m, open(os.path.join(store, MANIFEST), "w"))
    unit_dir = os.path.join(store, "units")
    units_before = {f: os.path.getmtime(os.path.join(unit_dir, f)) for f in os.listdir(unit_dir)}
    again = StoreBuilder(find_files([DEMO_CORPUS]), spec, str(tmp_path / "cache"), show_progress=False)
    assert again.ensure() == store and again.built_units == 0  # found where it was: nothing tokenized
    v1 = TokenCorpus(store)
    assert os.path.isfile(os.path.join(store, DOCUMENT_INDEX))
    assert all_tokens(v1) == want_tokens and index_sha(v1.blocks(64, "best_fit")) == want_blocks
    assert {f: os.path.getmtime(os.path.join(unit_dir, f)) for f in units_before} == units_before


def test_read_only_store_keeps_its_indexes_under_cache_dir(tmp_path, monkeypatch):
    store = synthetic_store(str(tmp_path / "ro"), [10, 10], version=1)
    monkeypatch.setattr(reader_mod, "_writable", lambda path: path != store)  # as root, chmod would not stop us
    corpus = TokenCorpus(store, index_dir=str(tmp_path / "cache"))
    corpus.blocks(16, "concat")
    assert sorted(os.listdir(store)) == ["manifest.json", "units"]  # nothing written into the store
    fp = json.load(open(os.path.join(store, MANIFEST)))["fingerprint"][:20]
    assert os.path.isfile(tmp_path / "cache" / fp / DOCUMENT_INDEX)
    assert len(os.listdir(tmp_path / "cache" / fp / "packing")) == 1


def test_unknown_format_is_refused_with_the_rebuild_command(tmp_path):
    store = synthetic_store(str(tmp_path / "s"), [3], version=3)
    with pytest.raises(DataError, match="format 3 is not one this version reads.*--overwrite_cache"):
        TokenCorpus(store)


def test_mapped_indexes_travel_to_spawned_workers_by_path(tmp_path):
    corpus = TokenCorpus(synthetic_store(str(tmp_path / "s"), [2000, 2000]))
    ds = BlockDataset(corpus, corpus.blocks(16, "best_fit").select(500))
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # the paths, not the arrays
    back = pickle.loads(blob)
    assert len(back) == 500
    assert all(back[b].input_ids.tolist() == ds[b].input_ids.tolist() for b in (0, 17, 499))


OPEN_FILES_SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    from medtrain.data.block_dataset import BlockDataset
    from medtrain.data.collator import BlockCollator
    from medtrain.data.token_store import TokenCorpus

    store, demo, out = sys.argv[1:4]
    corpus = TokenCorpus(store)
    ds = BlockDataset(corpus, corpus.blocks(32, "group_by_text"))
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, num_workers=2,
                                         collate_fn=BlockCollator(0, document_aware=True),
                                         generator=torch.Generator().manual_seed(0))
    rows = sum(len(batch["input_ids"]) for batch in loader)
    print("rows", rows, "of", len(ds), "units", len(corpus.manifests[0]["units"]))
    if demo:
        from medtrain.cli.pretrain import main
        rc = main(["--model_name_or_path", demo, "--train_file_dir", store, "--output_dir", out, "--cache_dir",
                   out + "/cache", "--block_size", "32", "--per_device_train_batch_size", "8", "--max_steps", "4",
                   "--save_strategy", "no", "--report_to", "none", "--dataloader_num_workers", "2",
                   "--packing_strategy", "group_by_text", "--logging_steps", "1"])
        print("trained, rc", rc)
""")


def test_thousands_of_units_under_ulimit_256_with_two_workers(tmp_path, demo_dir):
    """Every block of a 3,000-unit store read in random order by 2 dataloader workers with 256 file
    descriptors per process (each unit's map used to keep one open), then a few training steps of the
    tiny model through the real entry point, with 2 dataloader workers, on the same store."""
    store = synthetic_store(str(tmp_path / "s"), [2] * 3000, mean_len=6)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", OPEN_FILES_SCRIPT, store, demo_dir, str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    n_blocks = TokenCorpus(store).blocks(32, "group_by_text").n_blocks
    assert f"rows {n_blocks} of {n_blocks} units 3000" in res.stdout
    assert "trained, rc 0" in res.stdout
    with open(tmp_path / "out" / "run_summary.json") as fh:
        assert json.load(fh)["global_step"] == 4


def test_a_damaged_unit_is_named_when_first_read(tmp_path):
    """The first and last units are checked on open, every other one when it is first opened (one
    fstat), so opening a store of thousands of units costs no stat per unit."""
    store = synthetic_store(str(tmp_path / "s"), [3, 3, 3])
    tokens = unit_paths(store, 1)["tokens"]
    with open(tokens, "r+b") as fh:
        fh.truncate(os.path.getsize(tokens) - 2)
    corpus = TokenCorpus(store)
    corpus.tokens(0)
    with pytest.raises(DataError, match=r"00001\.tokens: .* bytes, the store's index expects"):
        corpus.tokens(3)
    last = unit_paths(store, 2)["tokens"]
    with open(last, "r+b") as fh:
        fh.truncate(2)
    with pytest.raises(DataError, match=r"00002\.tokens: 2 bytes, the store's index expects"):
        TokenCorpus(store)


def test_a_store_removed_while_in_use_is_named(spec, tmp_path):
    import shutil

    from medtrain.data.sources import find_files
    from medtrain.data.token_store import StoreBuilder, TokenCorpus
    from medtrain.errors import DataError

    data = tmp_path / "a.txt"
    data.write_text("".join(f"document {i} about fever\n" for i in range(50)))
    store = StoreBuilder(find_files([str(data)]), spec, str(tmp_path / "cache"), show_progress=False).ensure()
    corpus = TokenCorpus(store, max_open_files=1)
    assert len(corpus.tokens(0)) > 0
    shutil.rmtree(os.path.join(store, "units"))  # what a concurrent --overwrite_cache job does
    with pytest.raises(DataError, match="was removed or rebuilt while this run used it"):
        for d in range(corpus.n_documents):  # reaches a unit file not opened yet
            corpus.tokens(d)
