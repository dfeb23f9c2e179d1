"""The streaming path at scale: exact sharding over ranks x workers, exact resume without replay,
length grouping, the memory guard, batches that never run out on one rank before another."""

import gzip
import json
import os

import numpy as np
import pytest
import torch

from medtrain.training.monitoring import MemoryGuard
from medtrain.data.sources import RecordReader, find_files
from medtrain.data.streaming import StreamingBlocks
from medtrain.errors import MemoryGuardError
from medtrain.training.trainer import StreamCursorTracker


class IdEncoder:
    """A fake encoder: a record "id N ..." becomes N repeated (1 + N % 5) times."""

    has_mask = False
    dtype = np.uint32
    fingerprint = "ids"

    def read(self, unit, skip_bad=False, max_chars=None, skipped=None):
        return RecordReader(unit, "text", skip_bad, max_chars, skipped)

    def size(self, record):
        return len(record)

    def encode_batch(self, records):
        out = []
        for r in records:
            n = int(r.split()[1])
            out.append((np.full(1 + n % 5, n, dtype=np.uint32), None))
        return out

    def counters(self):
        return {}


def make_corpus(root, n_docs=400):
    """Five files of very different sizes, one of them compressed (cannot be cut into byte ranges)."""
    sizes = [200, 90, 60, 40, 10]
    assert sum(sizes) == n_docs
    ids = iter(range(n_docs))
    os.makedirs(root, exist_ok=True)
    for k, size in enumerate(sizes):
        lines = [json.dumps({"text": f"id {next(ids)} " + "x" * (k * 7)}) for _ in range(size)]
        body = ("\n".join(lines) + "\n").encode()
        if k == 3:
            with gzip.open(os.path.join(root, f"f{k}.jsonl.gz"), "wb") as fh:
                fh.write(body)
        elif k == 4:
            with open(os.path.join(root, f"f{k}.txt"), "w") as fh:
                fh.write("\n".join(f"id {json.loads(l)['text'].split()[1]}" for l in lines) + "\n")
        else:
            with open(os.path.join(root, f"f{k}.jsonl"), "wb") as fh:
                fh.write(body)
    return find_files([str(root)])


def ids_read(files, world, workers, **kw):
    seen = []
    for rank in range(world):
        ds = StreamingBlocks(files, IdEncoder(), block_size=8, strategy="none", rank=rank, world=world,
                             loop=False, unit_bytes=2000, **kw)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, collate_fn=lambda b: b)
        for batch in loader:
            seen.extend(int(r.input_ids[0]) for r in batch)
    return seen


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 1, 2])
def test_every_document_read_by_exactly_one_rank_and_worker(tmp_path, world, workers):
    files = make_corpus(tmp_path / "c")
    seen = ids_read(files, world, workers)
    assert sorted(seen) == list(range(400))  # the whole corpus, no duplicates


def test_sharding_with_fewer_files_than_slots_uses_strides(tmp_path):
    root = tmp_path / "one"
    os.makedirs(root)
    with gzip.open(root / "only.jsonl.gz", "wt") as fh:
        for i in range(50):
            fh.write(json.dumps({"text": f"id {i}"}) + "\n")
    seen = ids_read(find_files([str(root)]), 3, 2)
    assert sorted(seen) == list(range(50))


def test_epochs_reshuffle_with_seed_and_epoch(tmp_path):
    files = make_corpus(tmp_path / "c")
    ds = StreamingBlocks(files, IdEncoder(), block_size=8, strategy="none", shuffle_buffer=50, seed=3,
                         unit_bytes=2000)
    it = ds.rows()
    epochs = [[int(next(it).input_ids[0]) for _ in range(400)] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(400))
    assert epochs[0] != epochs[1]
    again = StreamingBlocks(files, IdEncoder(), block_size=8, strategy="none", shuffle_buffer=50, seed=3,
                            unit_bytes=2000).rows()
    assert [int(next(again).input_ids[0]) for _ in range(400)] == epochs[0]


def test_uneven_ranks_never_run_out(tmp_path):
    files = make_corpus(tmp_path / "c")
    shares = []
    for rank in range(3):  # each rank loops over its epochs: any number of full batches is available
        ds = StreamingBlocks(files, IdEncoder(), block_size=8, strategy="none", rank=rank, world=3,
                             batch_size=4, unit_bytes=2000)
        it = iter(ds)
        batches = [next(it) for _ in range(300)]  # 1,200 rows: several epochs of a third of 400 documents
        assert all(1 <= len(b) <= 4 for b in batches)  # a batch at the end of an epoch may be short
        docs = [int(r.input_ids[0]) for b in batches for r in b]
        assert len(set(docs)) < len(docs) / 2  # it looped
        assert ds.stats["epochs_started"] > 2
        shares.append(set(docs))
    assert set().union(*shares) == set(range(400)) and sum(map(len, shares)) == 400  # disjoint, complete


def consume(ds, n, tracker):
    out = []
    it = iter(ds)
    for _ in range(n):
        batch = next(it)
        tracker.update([c for r in batch for c in r.cursors])
        out.append([r.input_ids.tolist() for r in batch])
    return out


@pytest.mark.parametrize("shuffle,group", [(0, False), (40, False), (0, True)])
@pytest.mark.parametrize("strategy", ["concat", "group_by_text"])
def test_resume_continues_with_the_next_block_without_replay(corpus_dir, spec, shuffle, group, strategy):
    files = find_files([corpus_dir])
    kw = dict(block_size=48, strategy=strategy, shuffle_buffer=shuffle, batch_size=4, group_by_length=group,
              seed=5)
    full = consume(StreamingBlocks(files, spec, **kw), 160, StreamCursorTracker(1, 0))
    for stop in (7, 120):  # an early and a late checkpoint (the late one is past the first epoch)
        tracker = StreamCursorTracker(1, 0)
        consume(StreamingBlocks(files, spec, **kw), stop, tracker)
        state = tracker.state_dict()
        resumed = StreamingBlocks(files, spec, **kw)
        resumed.load_state_dict(state, workers=0)
        nxt = consume(resumed, 160 - stop, StreamCursorTracker(1, 0))
        assert nxt == full[stop:]
        # beyond what it served, it built at most the window it resumed in and the one being filled:
        # the cost of resuming does not depend on the step
        # (the reader's counters continue from those saved at the window's start)
        restored = state["slots"]["0"]["start"]["counts"]["blocks"]
        extra = resumed.stats["blocks"] - restored - (160 - stop) * 4
        assert 0 <= extra <= 2 * resumed.window_size + 64


def test_resume_with_other_worker_count_is_refused(corpus_dir, spec):
    files = find_files([corpus_dir])
    tracker = StreamCursorTracker(1, 2)
    ds = StreamingBlocks(files, spec, block_size=48)
    with pytest.raises(ValueError, match=r"1 rank\(s\) x 2 dataloader worker.*this run has 1 x 1"):
        ds.load_state_dict(tracker.state_dict(), workers=0)


def test_resume_with_two_workers_keeps_the_batch_order(corpus_dir, spec):
    files = find_files([corpus_dir])
    kw = dict(block_size=48, strategy="group_by_text", shuffle_buffer=30, batch_size=2, seed=1)

    def run(ds, n, tracker):
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda b: b)
        out = []
        for batch in loader:
            tracker.update([c for r in batch for c in r.cursors])
            out.append([r.input_ids.tolist() for r in batch])
            if len(out) == n:
                break
        return out

    full = run(StreamingBlocks(files, spec, **kw), 40, StreamCursorTracker(1, 2))
    tracker = StreamCursorTracker(1, 2)
    run(StreamingBlocks(files, spec, **kw), 13, tracker)  # odd: the next batch is worker 1's
    resumed = StreamingBlocks(files, spec, **kw)
    resumed.load_state_dict(tracker.state_dict(), workers=2)
    assert run(resumed, 27, StreamCursorTracker(1, 2)) == full[13:]


def padding(batches):
    real = sum(len(r) for b in batches for r in b)
    slots = sum(len(b) * max(len(r) for r in b) for b in batches)
    return 1 - real / slots


def test_group_by_length_reduces_padding(corpus_dir, spec):
    files = find_files([corpus_dir])
    kw = dict(block_size=256, strategy="none", batch_size=8, loop=False, shuffle_buffer=64)
    plain = list(StreamingBlocks(files, spec, **kw))
    grouped = list(StreamingBlocks(files, spec, group_by_length=True, **kw))
    assert sorted(len(r) for b in plain for r in b) == \
        sorted(len(r) for b in grouped for r in b)  # the same rows
    assert padding(grouped) < 0.5 * padding(plain)


def test_memory_guard_shrinks_then_stops(corpus_dir, spec, caplog):
    files = find_files([corpus_dir])
    ds = StreamingBlocks(files, spec, block_size=32, shuffle_buffer=64, batch_size=2,
                         memory_guard=MemoryGuard(threshold=0.0, stop=1.01))
    it = ds.rows()
    for _ in range(300):
        next(it)
    assert ds.window_size < 64
    assert "streaming window shrunk" in caplog.text
    ds = StreamingBlocks(files, spec, block_size=32, shuffle_buffer=16, memory_guard=MemoryGuard(0.0, 0.0))
    with pytest.raises(MemoryGuardError, match="--shuffle_buffer_size.*--num_proc.*--dataloader_num_workers"):
        list(ds.rows())


def test_memory_guard_in_a_run_warns_once_and_stops_cleanly(demo_dir, tmp_path, capsys, caplog):
    from medtrain.cli.pretrain import main

    base = ["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "c"), "--block_size", "32",
            "--max_steps", "4", "--logging_steps", "1", "--save_strategy", "no", "--num_proc", "1"]
    assert main(base + ["--output_dir", str(tmp_path / "a"), "--memory_guard_threshold", "0.0"]) == 0
    assert caplog.text.count("memory above 0%") == 1
    state = json.load(open(tmp_path / "a" / "trainer_state.json"))
    assert all("rss_mb" in h and "mem_available_gb" in h for h in state["log_history"] if "loss" in h)
    assert main(base + ["--output_dir", str(tmp_path / "b"), "--memory_guard_stop", "0.0"]) == 3
    err = capsys.readouterr().err
    assert "memory guard" in err and "--per_device_train_batch_size" in err


def test_a_reader_without_documents_is_an_error_not_a_hang(tmp_path, spec):
    from medtrain.errors import DataError

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "tiny.txt").write_text("one\ntwo\nthree\n")
    files = find_files([str(tmp_path / "d")])
    tokens, errors = 0, 0
    for rank in range(4):  # 3 documents for 4 readers: at least one of them has none
        ds = StreamingBlocks(files, spec, block_size=64, rank=rank, world=4, loop=False)
        try:
            tokens += sum(len(r) for r in ds.rows())
        except DataError as e:
            assert "found no document in its share" in str(e)
            errors += 1
    assert errors >= 1
    whole = StreamingBlocks(files, spec, block_size=64, loop=False)
    assert tokens == sum(len(r) for r in whole.rows())  # nothing lost among the others


def test_resume_with_other_data_settings_is_refused(corpus_dir, spec):
    files = find_files([corpus_dir])
    tracker = StreamCursorTracker(1, 0, config=StreamingBlocks(files, spec, block_size=48, batch_size=2).config_key())
    consume(StreamingBlocks(files, spec, block_size=48, batch_size=2), 3, tracker)
    other = StreamingBlocks(files, spec, block_size=48, batch_size=4)
    with pytest.raises(ValueError, match="belongs to other data settings"):
        other.load_state_dict(tracker.state_dict(), workers=0)


def test_memory_guard_shrink_is_part_of_the_position(corpus_dir, spec):
    class OnceHigh(MemoryGuard):
        calls = 0

        def check(self):
            OnceHigh.calls += 1
            return "high" if OnceHigh.calls == 2 else "ok"

    files = find_files([corpus_dir])
    kw = dict(block_size=32, shuffle_buffer=64, batch_size=2, seed=9)
    full = consume(StreamingBlocks(files, spec, memory_guard=OnceHigh(), **kw), 150, StreamCursorTracker(1, 0))
    OnceHigh.calls = 0
    tracker = StreamCursorTracker(1, 0)
    consume(StreamingBlocks(files, spec, memory_guard=OnceHigh(), **kw), 100, tracker)
    resumed = StreamingBlocks(files, spec, **kw)
    resumed.load_state_dict(tracker.state_dict(), workers=0)
    assert consume(resumed, 50, StreamCursorTracker(1, 0)) == full[100:]
