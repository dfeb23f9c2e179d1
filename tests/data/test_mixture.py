"""Mixtures: exact token shares at every prefix, seeded epochs, exhaustion policies, parts prepared
separately, both data paths, and errors that name the entry."""

import json
import os

import numpy as np
import pytest

from medtrain.config.arguments import DataArguments
from medtrain.data.pipeline import build_datasets
from medtrain.runtime.distributed import DistInfo
from medtrain.data.mixture import blend, load_mixtures
from medtrain.cli.prepare import main as prepare_main
from medtrain.errors import DataError
from medtrain.data.tokenization import TextEncoder

from helpers.launch import ROOT

MIX = os.path.join(ROOT, "data", "mixtures")


def data(tmp_path, *mixtures, **kw):
    args = DataArguments(mixture=[os.path.join(MIX, m) for m in mixtures], cache_dir=str(tmp_path / "cache"),
                         block_size=kw.pop("block_size", 64), validation_split_percentage=0, num_proc=1, **kw)
    return args


def order_tokens(ds, epoch=0):
    src, blk, _ = ds._order(epoch)
    return src, np.array([ds.block_tokens[s][b] for s, b in zip(src, blk)])


def test_every_prefix_within_one_block_of_each_weight(tmp_path, spec):
    prepared = build_datasets(data(tmp_path, "medical_mix.json"), TextEncoder(spec), DistInfo(), seed=1)
    ds = prepared.train
    src, tok = order_tokens(ds)
    total = np.cumsum(tok)
    for s, share in enumerate(ds.shares):
        mine = np.cumsum(np.where(src == s, tok, 0))
        assert np.abs(mine - share * total).max() <= 64  # one block
    assert prepared.summary["mixture"]["medical_en"]["share"] == pytest.approx(0.3)


def test_same_seed_same_order_new_order_each_epoch(tmp_path, spec):
    a = build_datasets(data(tmp_path, "medical_mix.json"), TextEncoder(spec), DistInfo(), seed=1).train
    b = build_datasets(data(tmp_path, "medical_mix.json"), TextEncoder(spec), DistInfo(), seed=1).train
    assert all(np.array_equal(x, y) for x, y in zip(a._order(0)[:2], b._order(0)[:2]))
    assert [a[i].input_ids.tolist() for i in range(20)] == [b[i].input_ids.tolist() for i in range(20)]
    e1 = a._order(1)
    assert len(e1[0]) == len(a) and not np.array_equal(a._order(0)[1], e1[1])
    a.set_epoch(1)
    assert a[0].source == a.names[e1[0][0]]


def test_exhaustion_policies():
    blocks = [np.full(10, 100), np.full(100, 100)]
    src, _, reps = blend(blocks, [0.5, 0.5], ["stop", "stop"], seed=0, epoch=0)
    assert (src == 0).sum() == 10 and len(src) <= 21          # the small source ends the epoch
    src, blk, reps = blend(blocks, [0.5, 0.5], ["repeat", "stop"], seed=0, epoch=0)
    assert (src == 1).sum() == 100 and abs((src == 0).sum() - 100) <= 1
    assert reps == [10, 0]                                      # the small one started 10 more passes
    assert sorted(blk[src == 0][:10].tolist()) == list(range(10))  # each pass is a whole permutation
    src, _, reps = blend(blocks, [0.5, 0.5], ["repeat", "repeat"], seed=0, epoch=0)
    assert (src == 1).sum() == 100                              # all repeat: until everything was seen


def test_repeat_warns_with_the_count(tmp_path, spec, caplog):
    mix = tmp_path / "m.json"
    mix.write_text(json.dumps({"sources": [
        {"name": "small", "path": os.path.join(ROOT, "data/pretrain/guidelines"), "weight": 0.8,
         "on_exhausted": "repeat"},
        {"name": "big", "path": os.path.join(ROOT, "data/pretrain/medical_zh.jsonl"), "weight": 0.2}]}))
    args = DataArguments(mixture=[str(mix)], cache_dir=str(tmp_path / "c"), block_size=64,
                         validation_split_percentage=0, num_proc=1)
    prepared = build_datasets(args, TextEncoder(spec), DistInfo(), seed=0)
    reps = prepared.summary["mixture"]["small"]["repeats_per_epoch"]
    assert reps >= 5 and f"repeated {reps} time(s) per epoch" in caplog.text


def test_parts_prepared_separately_equal_one_mixture(tmp_path, demo_dir, spec):
    for part in ("part_zh.yaml", "part_en.yaml"):  # two separate preparation runs
        assert prepare_main(["--tokenizer_name_or_path", demo_dir, "--mixture", os.path.join(MIX, part),
                             "--cache_dir", str(tmp_path / "cache"), "--num_proc", "1"]) == 0
    parts = build_datasets(data(tmp_path, "part_zh.yaml", "part_en.yaml"), TextEncoder(spec), DistInfo(), seed=4)
    assert not any(v["tokenized_this_run"] for v in parts.summary["train"]["sources"].values())
    whole = build_datasets(data(tmp_path, "medical_mix.json"), TextEncoder(spec), DistInfo(), seed=4)
    assert len(parts.train) == len(whole.train)
    for i in range(0, len(whole.train), 7):
        assert parts.train[i].input_ids.tolist() == whole.train[i].input_ids.tolist()


def test_streaming_shares_within_one_point(tmp_path, spec):
    args = data(tmp_path, "medical_mix.json", streaming=True)
    prepared = build_datasets(args, TextEncoder(spec), DistInfo(), seed=2, batch_size=8)
    rows = prepared.train.rows()
    tokens = {}
    for _ in range(3000):
        r = next(rows)
        tokens[r.source] = tokens.get(r.source, 0) + len(r)
    total = sum(tokens.values())
    for name, share in {"medical_zh": 0.5, "medical_en": 0.3, "guidelines": 0.2}.items():
        assert abs(tokens[name] / total - share) < 0.01
    again = build_datasets(args, TextEncoder(spec), DistInfo(), seed=2, batch_size=8).train.rows()
    first = build_datasets(args, TextEncoder(spec), DistInfo(), seed=2, batch_size=8).train.rows()
    assert [next(again).input_ids.tolist() for _ in range(50)] == [next(first).input_ids.tolist()
                                                                      for _ in range(50)]


def test_streaming_mixture_resumes_exactly(tmp_path, spec):
    from medtrain.training.trainer import StreamCursorTracker

    args = data(tmp_path, "medical_mix.json", streaming=True, shuffle_buffer_size=20)

    def take(ds, n, tracker):
        it, out = iter(ds), []
        for _ in range(n):
            batch = next(it)
            tracker.update([c for r in batch for c in r.cursors])
            out.append([(r.source, r.input_ids.tolist()) for r in batch])
        return out

    make = lambda: build_datasets(args, TextEncoder(spec), DistInfo(), seed=3, batch_size=4).train  # noqa: E731
    full = take(make(), 60, StreamCursorTracker(1, 0))
    tracker = StreamCursorTracker(1, 0)
    take(make(), 25, tracker)
    resumed = make()
    resumed.load_state_dict(tracker.state_dict(), workers=0)
    assert take(resumed, 35, StreamCursorTracker(1, 0)) == full[25:]


def test_training_reports_realized_tokens(tmp_path, demo_dir):
    from medtrain.cli.pretrain import main

    out = tmp_path / "run"
    assert main(["--model_name_or_path", demo_dir, "--mixture", os.path.join(MIX, "medical_mix.json"),
                 "--cache_dir", str(tmp_path / "c"), "--output_dir", str(out), "--block_size", "64",
                 "--max_steps", "40", "--per_device_train_batch_size", "5", "--save_strategy", "no",
                 "--num_proc", "1"]) == 0
    summary = json.load(open(out / "run_summary.json"))
    realized = {n: e["realized_tokens"] for n, e in summary["mixture"].items()}
    assert sum(realized.values()) == 40 * 5 * 64
    assert abs(realized["medical_en"] / sum(realized.values()) - 0.3) < 0.01


@pytest.mark.parametrize("entry,message", [
    ({"name": "x", "path": "nowhere", "weight": 1}, r"sources\[0\] \('x'\): path does not exist"),
    ({"name": "x", "path": ".", "weight": -1}, r"sources\[0\] \('x'\): weights and token budgets must be positive"),
    ({"name": "x", "path": "."}, r"sources\[0\] \('x'\): give either a 'weight' or a 'tokens' budget"),
    ({"path": "."}, r"sources\[0\]: each source needs a 'name'"),
])
def test_errors_name_the_entry(tmp_path, entry, message):
    mix = tmp_path / "m.json"
    mix.write_text(json.dumps({"sources": [entry]}))
    with pytest.raises(DataError, match=message):
        load_mixtures([str(mix)])


def test_empty_source_is_an_error_naming_it(tmp_path, spec):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.jsonl").write_text("\n\n")
    mix = tmp_path / "m.json"
    mix.write_text(json.dumps({"sources": [{"name": "void", "path": str(tmp_path / "empty"), "weight": 1}]}))
    args = DataArguments(mixture=[str(mix)], cache_dir=str(tmp_path / "c"), validation_split_percentage=0,
                         num_proc=1)
    with pytest.raises(DataError, match="no documents were read"):
        build_datasets(args, TextEncoder(spec), DistInfo(), seed=0)


def test_weights_are_normalised_with_a_notice(tmp_path, caplog):
    mix = tmp_path / "m.json"
    mix.write_text(json.dumps({"sources": [{"name": "a", "path": ".", "weight": 2},
                                           {"name": "b", "path": ".", "weight": 6}]}))
    sources = load_mixtures([str(mix)])
    assert [s.share for s in sources] == [0.25, 0.75]
    assert "add up to 8, not 1: normalised" in caplog.text
