"""Checkpoints judged by content, state read without pickle, finished runs left alone:
the completion marker's checksums (same-size damage is found, the run resumes from the checkpoint
before), the streaming position as JSON (a planted pickle is never executed), and `finished_run`."""

import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
import torch

from helpers.fault_injection.medtrain_test_faults import KillAtStep
from helpers.launch import logged_losses

from medtrain.errors import EXIT_BAD_INPUT, EXIT_PREEMPTED, DataError
from medtrain.resilience import checkpoints as resilience, faults
from medtrain.resilience.checkpoints import COMPLETE_MARKER
from medtrain.training import trainer as trainer_module


class Planted:
    """Unpickling this creates the file `path`: proof that a load ran code from the data."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def damage(path, offset=None, n=64):
    """Same-size damage: `n` bytes in the middle of the file inverted."""
    size = os.path.getsize(path)
    offset = size // 2 if offset is None else offset
    n = min(n, size - offset)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        data = fh.read(n)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in data))
    assert os.path.getsize(path) == size


def fake_checkpoint(root, step, files=None, **marker):
    folder = root / f"checkpoint-{step}"
    files = files or {"model.safetensors": b"w" * 100, "optimizer.pt": b"o" * 300,
                      "trainer_state.json": json.dumps({"global_step": step}).encode(),
                      "data_state/rank0.json": b'{"slots": {}}'}
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    resilience.write_complete_marker(str(folder), step, **marker)
    return folder


# ---------------------------------------------------------------------------------------------------
# the marker's checksums
# ---------------------------------------------------------------------------------------------------
def test_marker_records_a_checksum_of_every_file(tmp_path):
    folder = fake_checkpoint(tmp_path, 4)
    marker = json.load(open(folder / COMPLETE_MARKER))
    assert marker["format"] == 2 and marker["checksum"] == resilience.CHECKSUM_ALGORITHM
    assert set(marker["checksums"]) == set(marker["files"]) == {
        "model.safetensors", "optimizer.pt", "trainer_state.json", "data_state/rank0.json"}
    for rel, value in marker["checksums"].items():  # the algorithm's own digest of the bytes
        h = resilience._ALGORITHMS[marker["checksum"]]()
        h.update((folder / rel).read_bytes())
        assert value == h.hexdigest()
    assert resilience.checkpoint_problem(str(folder)) is None


@pytest.mark.parametrize("rel", ["model.safetensors", "optimizer.pt", "trainer_state.json", "data_state/rank0.json"])
def test_same_size_damage_is_found_by_content(tmp_path, rel, caplog):
    out = tmp_path / "out"
    fake_checkpoint(out, 2)
    folder = fake_checkpoint(out, 4)
    damage(folder / rel, offset=1, n=4)
    # sizes alone do not see it (rotation checks sizes only)
    assert resilience.checkpoint_problem(str(folder), verify=False) is None
    problem = resilience.checkpoint_problem(str(folder))
    assert problem.startswith(f"{rel} does not match its checksum")
    with caplog.at_level(logging.INFO):
        assert resilience.resolve_resume("auto", str(out)) == str(out / "checkpoint-2")
    assert f"Skipping {folder} for --resume_from_checkpoint: {rel} does not match its checksum" in caplog.text
    assert "do not resume from it" in caplog.text
    # named explicitly, a damaged checkpoint is refused (exit 2), not loaded
    with pytest.raises(DataError, match=re.escape(f"--resume_from_checkpoint {folder}: {rel} does not match")):
        resilience.resolve_resume(str(folder), str(out))


def test_an_unreadable_file_skips_the_checkpoint(tmp_path, monkeypatch, caplog):
    out = tmp_path / "out"
    fake_checkpoint(out, 2)
    folder = fake_checkpoint(out, 4)
    real = resilience._hash_file

    def hash_file(path, algorithm):  # root reads any file whatever its mode: the error is simulated
        if path.endswith("optimizer.pt") and "checkpoint-4" in path:
            raise PermissionError(13, "Permission denied", path)
        return real(path, algorithm)

    monkeypatch.setattr(resilience, "_hash_file", hash_file)
    with caplog.at_level(logging.WARNING):
        assert resilience.resolve_resume("auto", str(out)) == str(out / "checkpoint-2")
    assert f"Skipping {folder} for --resume_from_checkpoint: optimizer.pt cannot be read " \
           "(PermissionError: Permission denied)" in caplog.text


def test_a_marker_of_the_older_format_is_read_with_a_warning(tmp_path, caplog):
    """Format 1 (sizes only, before checksums): complete by its sizes, resumed with a warning that
    its content cannot be verified; a truncated file is still found."""
    out = tmp_path / "out"
    folder = fake_checkpoint(out, 3)
    marker = json.load(open(folder / COMPLETE_MARKER))
    old = {k: v for k, v in marker.items() if k not in ("checksums", "checksum")}
    old["format"] = 1
    (folder / COMPLETE_MARKER).write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING):
        assert resilience.resolve_resume("auto", str(out)) == str(folder)
    assert "format 1, written by an older medtrain" in caplog.text and "cannot be verified" in caplog.text
    with open(folder / "optimizer.pt", "r+b") as fh:
        fh.truncate(10)
    assert resilience.checkpoint_problem(str(folder)).startswith("optimizer.pt has 10 bytes")


@pytest.mark.parametrize("edit,why", [
    (lambda m: m.pop("checksums"), "unreadable"),
    (lambda m: m["checksums"].pop("optimizer.pt"), "no checksum for optimizer.pt"),
    (lambda m: m.update(files=[1, 2]), "unreadable"),
])
def test_a_marker_with_missing_checksums_is_incomplete(tmp_path, edit, why):
    folder = fake_checkpoint(tmp_path, 3)
    marker = json.load(open(folder / COMPLETE_MARKER))
    edit(marker)
    (folder / COMPLETE_MARKER).write_text(json.dumps(marker))
    assert why in resilience.checkpoint_problem(str(folder))


# ---------------------------------------------------------------------------------------------------
# the streaming position: JSON, never a pickle
# ---------------------------------------------------------------------------------------------------
def test_stream_position_round_trips_as_json(tmp_path):
    state = {"world": 2, "workers": 1, "config": "abc", "rotation": 0, "slots": {
        "1": {"epoch": 0, "window": 3, "batch": 2, "rows": 12, "window_size": 16, "start": {
            "unit": 1, "key": np.int64(4096), "next_doc": 7,
            "packer": {"open": [[5, 0, 30], [6, 0, 12]], "fill": 42, "dropped_tokens": 0},
            "held": {5: (np.arange(30, dtype=np.int32), None),
                     6: (np.arange(12, dtype=np.int64).reshape(3, 4), np.array([True, False] * 6))}}}}}
    folder = tmp_path / "checkpoint-3" / "data_state"
    folder.mkdir(parents=True)
    path = trainer_module.save_stream_state(str(folder), 1, state)
    assert path.endswith("rank1.json")
    json.load(open(path))  # plain JSON
    back = trainer_module.load_stream_state(str(tmp_path / "checkpoint-3"), 1)
    start = back["slots"]["1"]["start"]
    assert start["key"] == 4096 and start["packer"] == {"open": [[5, 0, 30], [6, 0, 12]], "fill": 42,
                                                        "dropped_tokens": 0}
    ids, mask = start["held"]["5"]
    assert ids.dtype == np.int32 and ids.tolist() == list(range(30)) and mask is None
    ids, mask = start["held"]["6"]
    assert ids.dtype == np.int64 and ids.shape == (3, 4) and ids.ravel().tolist() == list(range(12))
    assert mask.dtype == bool and mask.tolist() == [True, False] * 6
    assert trainer_module.load_stream_state(str(tmp_path / "checkpoint-3"), 0) is None  # no position: None
    # an object array is neither written nor read
    with pytest.raises(TypeError):
        trainer_module.save_stream_state(str(folder), 2, {"slots": {"x": np.array([{}], dtype=object)}})
    (folder / "rank3.json").write_text(json.dumps({"slots": {"a": {"__ndarray__": "|O", "shape": [1],
                                                                   "data": [1]}}}))
    with pytest.raises(DataError, match=r"rank3\.json: the streaming position cannot be read"):
        trainer_module.load_stream_state(str(tmp_path / "checkpoint-3"), 3)


@pytest.mark.parametrize("strategy,shuffle,group", [("concat", 40, False), ("group_by_text", 0, True)])
def test_a_stream_resumed_from_its_json_position_continues_with_the_next_block(tmp_path, spec, corpus_dir,
                                                                              strategy, shuffle, group):
    """Through the file a checkpoint holds: the open block, the documents it refers to (numpy arrays)
    and the window survive JSON exactly."""
    from medtrain.data.sources import find_files
    from medtrain.data.streaming import StreamingBlocks

    files = find_files([corpus_dir])
    kw = dict(block_size=48, strategy=strategy, shuffle_buffer=shuffle, batch_size=4, group_by_length=group, seed=5)

    def consume(ds, n, tracker):
        it, out = iter(ds), []
        for _ in range(n):
            batch = next(it)
            tracker.update([c for r in batch for c in r.cursors])
            out.append([r.input_ids.tolist() for r in batch])
        return out

    full = consume(StreamingBlocks(files, spec, **kw), 130, trainer_module.StreamCursorTracker(1, 0))
    for stop in (7, 100):
        tracker = trainer_module.StreamCursorTracker(1, 0)
        consume(StreamingBlocks(files, spec, **kw), stop, tracker)
        folder = tmp_path / f"checkpoint-{stop}" / "data_state"
        folder.mkdir(parents=True)
        trainer_module.save_stream_state(str(folder), 0, tracker.state_dict())
        resumed = StreamingBlocks(files, spec, **kw)
        resumed.load_state_dict(trainer_module.load_stream_state(str(folder.parent), 0), workers=0)
        assert consume(resumed, 130 - stop, trainer_module.StreamCursorTracker(1, 0)) == full[stop:]


def test_a_pickled_stream_position_is_refused_not_run(tmp_path):
    proof = tmp_path / "code-ran"
    folder = tmp_path / "checkpoint-3" / "data_state"
    folder.mkdir(parents=True)
    torch.save({"slots": {"0": Planted(proof)}}, folder / "rank0.pt")  # what an older version wrote
    with pytest.raises(DataError, match=r"rank0\.pt: this streaming position was saved by an older medtrain as "
                                        r"a pickle.*--ignore_data_skip true"):
        trainer_module.load_stream_state(str(tmp_path / "checkpoint-3"), 0)
    assert not proof.exists()
    (folder / "rank0.json").write_bytes(b"\x80\x04garbage")  # damaged: a message, not a traceback
    with pytest.raises(DataError, match=r"rank0\.json: the streaming position cannot be read"):
        trainer_module.load_stream_state(str(tmp_path / "checkpoint-3"), 0)
    (folder / "rank0.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"rank0\.json: not a streaming position"):
        trainer_module.load_stream_state(str(tmp_path / "checkpoint-3"), 0)
    assert not proof.exists()


@pytest.mark.parametrize("target", ["store_docs", "store_keys", "block_index"])
def test_a_pickle_planted_in_a_data_file_is_never_run(tmp_path, spec, target):
    """The token store's offsets and keys, and the packing cache, are numpy files read without pickle:
    an object array planted in one is refused, the planted code never runs."""
    from medtrain.data.packing import BlockIndex
    from medtrain.data.sources import find_files
    from medtrain.data.token_store import StoreBuilder, TokenCorpus

    proof = tmp_path / "code-ran"
    planted = np.array([Planted(proof)], dtype=object)
    if target == "block_index":  # block indexes are index files; a pickle in their place is not one
        path = tmp_path / "index.idx"
        with open(path, "wb") as fh:
            np.save(fh, planted, allow_pickle=True)
        with pytest.raises(DataError, match="not a complete index file"):
            BlockIndex.open(str(path))
    else:  # the units' offsets and keys are read when the document index is derived (a version-1 store)
        data = tmp_path / "a.txt"
        data.write_text("one document\nanother document\n")
        store = StoreBuilder(find_files([str(data)]), spec, str(tmp_path / "store"), show_progress=False).ensure()
        suffix = ".docs.npy" if target == "store_docs" else ".keys.npy"
        paths = [os.path.join(store, "units", f) for f in os.listdir(os.path.join(store, "units"))
                 if f.endswith(suffix)]
        assert paths
        for path in paths:
            np.save(path, planted, allow_pickle=True)
        os.remove(os.path.join(store, "documents.idx"))
        with pytest.raises((ValueError, DataError), match="allow_pickle|pickle"):
            TokenCorpus(store).tokens(0)
    assert not proof.exists()


# ---------------------------------------------------------------------------------------------------
# finished runs
# ---------------------------------------------------------------------------------------------------
def test_summary_file_name_is_the_run_summarys():
    from medtrain.training.monitoring import SUMMARY_FILE

    assert resilience.RUN_SUMMARY == SUMMARY_FILE


def test_finished_run_by_summary_or_final_checkpoint(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert resilience.finished_run(str(out), 8) is None
    assert resilience.finished_run(str(tmp_path / "absent"), 8) is None
    fake_checkpoint(out, 6)
    assert resilience.finished_run(str(out), 8) is None  # not there yet
    final = fake_checkpoint(out, 8)
    reason = resilience.finished_run(str(out), 8)
    assert reason.startswith(f"its final checkpoint {final} (step 8) is complete") and \
        f"the run stopped before saving the final model in {out}" in reason
    (out / "model.safetensors").write_bytes(b"m")
    assert resilience.finished_run(str(out), 8) == f"its final checkpoint {final} (step 8) is complete"
    assert resilience.finished_run(str(out), 12) is None  # more steps asked for: it continues
    damage(final / "optimizer.pt")  # a damaged final checkpoint is not a finished run: resume before it
    assert resilience.finished_run(str(out), 8) is None
    (out / "run_summary.json").write_text(json.dumps({"global_step": 8, "metrics": {"epoch": 2.0}}))
    assert resilience.finished_run(str(out), 8) == f"{out / 'run_summary.json'} records a finished run " \
                                                   "(8 steps, --max_steps 8)"
    assert resilience.finished_run(str(out), 9) is None
    # epochs (max_steps <= 0): the summary's epoch, or the final checkpoint's own trainer state
    assert "finished run (8 steps, --num_train_epochs 2)" in resilience.finished_run(str(out), -1, 2.0)
    assert resilience.finished_run(str(out), -1, 3.0) is None
    os.remove(out / "run_summary.json")
    shutil.rmtree(final)
    fake_checkpoint(out, 8, files={"trainer_state.json": json.dumps(
        {"global_step": 8, "max_steps": 8, "num_train_epochs": 2}).encode()})
    assert "(step 8) is complete" in resilience.finished_run(str(out), -1, 2)
    assert resilience.finished_run(str(out), -1, 3) is None
    (out / "run_summary.json").write_text("{cut sh")  # unreadable: not a finished run by its summary
    assert resilience.finished_run(str(out), -1, 3) is None


# ---------------------------------------------------------------------------------------------------
# end to end: damaged checkpoints skipped, planted pickles never run
# ---------------------------------------------------------------------------------------------------
STEPS = 6


def flags(demo_dir, tmp_path):
    return ["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "cache"), "--block_size", "64",
            "--learning_rate", "3e-3", "--logging_steps", "1", "--seed", "11", "--validation_split_percentage", "0",
            "--num_proc", "1", "--per_device_train_batch_size", "4", "--max_steps", str(STEPS),
            "--report_to", "none", "--streaming", "true", "--shuffle_buffer_size", "16"]


@pytest.fixture(scope="module")
def runs(demo_dir, tmp_path_factory):
    """An uninterrupted streaming run, and one preempted after step 5 with a checkpoint at every step."""
    from medtrain.cli.pretrain import main

    tmp = tmp_path_factory.mktemp("integrity")
    base = flags(demo_dir, tmp)
    assert main(base + ["--output_dir", str(tmp / "full"), "--save_strategy", "no"]) == 0
    faults.install(KillAtStep(5, signal="SIGTERM"))
    try:
        assert main(base + ["--output_dir", str(tmp / "part"), "--save_steps", "1"]) == EXIT_PREEMPTED
    finally:
        faults.install(None)
    assert [s for s, _ in resilience.list_checkpoints(str(tmp / "part"))] == [1, 2, 3, 4, 5]
    for _, path in resilience.list_checkpoints(str(tmp / "part")):  # the position is JSON, and checksummed
        marker = json.load(open(os.path.join(path, COMPLETE_MARKER)))
        assert "data_state/rank0.json" in marker["checksums"]
        assert not [f for f in marker["files"] if f.startswith("data_state/") and not f.endswith(".json")]
    return base, tmp


def test_damaged_checkpoints_are_skipped_and_the_run_ends_as_if_never_stopped(runs, tmp_path, caplog):
    """Same-size damage to the weights, the optimizer, the trainer state and the streaming position
    (one per checkpoint, newest first): each is skipped with a warning naming it and the file, the run
    resumes from checkpoint-1 and logs the losses of the uninterrupted run."""
    from medtrain.cli.pretrain import main

    base, tmp = runs
    out = tmp_path / "out"
    shutil.copytree(tmp / "part", out)
    damaged = {5: "model.safetensors", 4: "optimizer.pt", 3: "trainer_state.json", 2: "data_state/rank0.json"}
    for step, rel in damaged.items():
        damage(out / f"checkpoint-{step}" / rel)
    with caplog.at_level(logging.INFO):
        assert main(base + ["--output_dir", str(out), "--save_steps", "100", "--resume_from_checkpoint", "auto"]) == 0
    for step, rel in damaged.items():
        assert f"Skipping {out / f'checkpoint-{step}'} for --resume_from_checkpoint: {rel} does not match its " \
               "checksum" in caplog.text
    assert f"Resuming from {out / 'checkpoint-1'}" in caplog.text
    full, resumed = logged_losses(tmp / "full"), logged_losses(out)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    for s in range(2, STEPS + 1):
        assert resumed[s] == pytest.approx(full[s], rel=1e-5), (s, full, resumed)


@pytest.mark.parametrize("rel", ["data_state/rank0.pt", "optimizer.pt", "scheduler.pt", "rng_state.pth"])
def test_a_pickle_planted_in_a_checkpoint_is_never_run(runs, tmp_path, rel):
    """A checkpoint from someone else, re-marked so that its checksums match: our streaming position
    is never unpickled (the old .pt is refused with exit code 2); the Trainer reads its own state files
    with torch.load(weights_only=True), which refuses the planted object. The planted code never runs."""
    from medtrain.cli.pretrain import main

    base, tmp = runs
    out = tmp_path / "out"
    shutil.copytree(tmp / "part" / "checkpoint-3", out / "checkpoint-3")
    folder = out / "checkpoint-3"
    proof = tmp_path / "code-ran"
    if rel.startswith("data_state/"):
        os.remove(folder / "data_state" / "rank0.json")
    torch.save({"state": Planted(proof)}, folder / rel)
    resilience.write_complete_marker(str(folder), 3)
    assert resilience.checkpoint_problem(str(folder)) is None
    argv = base + ["--output_dir", str(out), "--resume_from_checkpoint", "auto"]
    if rel.startswith("data_state/"):
        assert main(argv) == EXIT_BAD_INPUT
    else:
        with pytest.raises(Exception, match="(?i)weights.only|unpickl"):
            main(argv)
    assert not proof.exists()


def test_auto_on_a_finished_run_trains_nothing(demo_dir, tmp_path, caplog):
    from medtrain.cli.pretrain import main

    from helpers.launch import logged_losses

    out = tmp_path / "out"
    argv = ["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "cache"), "--block_size", "64",
            "--logging_steps", "1", "--seed", "11", "--validation_split_percentage", "0", "--num_proc", "1",
            "--per_device_train_batch_size", "4", "--max_steps", "3", "--save_steps", "3", "--report_to", "none",
            "--output_dir", str(out), "--resume_from_checkpoint", "auto"]
    assert main(argv) == 0
    before = {n: os.path.getmtime(out / n) for n in ("model.safetensors", "trainer_state.json", "run_summary.json")}
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    assert f"The run in {out} is complete: {out / 'run_summary.json'} records a finished run (3 steps" in caplog.text
    assert {n: os.path.getmtime(out / n) for n in before} == before and sorted(logged_losses(out)) == [1, 2, 3]
    for n in before:
        os.remove(out / n)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    assert f"its final checkpoint {out / 'checkpoint-3'} (step 3) is complete; the run stopped before saving" \
        in caplog.text
    assert not os.path.exists(out / "checkpoint-4")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(argv[:-6] + ["--max_steps", "4"] + argv[-6:]) == 0
    assert f"Resuming from {out / 'checkpoint-3'}" in caplog.text and sorted(logged_losses(out)) == [1, 2, 3, 4]


# ---- completeness, auto, rotation -------------------------------------------------------------------
def sized_checkpoint(root, step, complete=True):
    folder = root / f"checkpoint-{step}"
    (folder / "data_state").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * 100)
    (folder / "trainer_state.json").write_text("{}")
    (folder / "data_state" / "rank0.json").write_bytes(b"d" * 10)
    if complete:
        resilience.write_complete_marker(str(folder), step)
    return folder


def test_a_checkpoint_is_complete_only_as_marked(tmp_path):
    folder = sized_checkpoint(tmp_path, 5)
    assert resilience.checkpoint_problem(str(folder)) is None
    marker = json.load(open(folder / COMPLETE_MARKER))
    assert marker["step"] == 5 and marker["files"]["data_state/rank0.json"] == 10
    with open(folder / "model.safetensors", "r+b") as fh:
        fh.truncate(40)
    assert "model.safetensors has 40 bytes" in resilience.checkpoint_problem(str(folder))
    os.remove(folder / "model.safetensors")
    assert "model.safetensors is missing" in resilience.checkpoint_problem(str(folder))
    (folder / COMPLETE_MARKER).write_text("{not json")
    assert "unreadable" in resilience.checkpoint_problem(str(folder))
    os.remove(folder / COMPLETE_MARKER)
    assert "no completion marker" in resilience.checkpoint_problem(str(folder))
    moved = sized_checkpoint(tmp_path / "other", 7)
    shutil.move(str(moved), str(tmp_path / "checkpoint-9"))
    assert "for step 7, not 9" in resilience.checkpoint_problem(str(tmp_path / "checkpoint-9"))


def test_auto_takes_the_latest_complete_checkpoint(tmp_path, caplog):
    from medtrain.config.run_config import resume_arg

    assert resume_arg("auto") == "auto" and resume_arg("AUTO") == "auto" and resume_arg("latest") is True
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level(logging.INFO):
        assert resilience.resolve_resume("auto", str(out)) is None
    assert "No complete checkpoint" in caplog.text and "starting fresh" in caplog.text
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resilience.resolve_resume(True, str(out))
    sized_checkpoint(out, 2)
    sized_checkpoint(out, 4)
    broken = sized_checkpoint(out, 6)
    os.remove(broken / "data_state" / "rank0.json")
    sized_checkpoint(out, 10, complete=False)
    (out / "checkpoint-x").mkdir()  # not a checkpoint name: ignored
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert resilience.resolve_resume("auto", str(out)) == str(out / "checkpoint-4")
    assert f"Skipping {out / 'checkpoint-10'}" in caplog.text and "no completion marker" in caplog.text
    assert f"Skipping {out / 'checkpoint-6'}" in caplog.text and "data_state/rank0.json is missing" in caplog.text
    assert f"Resuming from {out / 'checkpoint-4'}" in caplog.text
    assert resilience.resolve_resume(True, str(out)) == str(out / "checkpoint-4")
    caplog.clear()
    with caplog.at_level(logging.INFO):  # an explicit path is used as given, with a warning if incomplete
        assert resilience.resolve_resume(str(out / "checkpoint-6"), str(out)) == str(out / "checkpoint-6")
    assert "although data_state/rank0.json is missing" in caplog.text


def test_rotation_never_deletes_the_last_complete_checkpoint(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sized_checkpoint(out, 1, complete=False)
    sized_checkpoint(out, 2)
    sized_checkpoint(out, 4, complete=False)  # the newest is incomplete (its save was cut short)
    assert resilience.rotate_checkpoints(str(out), 1) == [str(out / "checkpoint-1")]
    assert sorted(os.listdir(out)) == ["checkpoint-2", "checkpoint-4"]
    sized_checkpoint(out, 6)
    sized_checkpoint(out, 8, complete=False)
    removed = resilience.rotate_checkpoints(str(out), 2)
    assert removed == [str(out / "checkpoint-4")]  # incomplete and older than the newest complete one
    assert sorted(os.listdir(out)) == ["checkpoint-2", "checkpoint-6", "checkpoint-8"]
    assert resilience.rotate_checkpoints(str(out), 1, best=str(out / "checkpoint-2")) == []
    assert resilience.rotate_checkpoints(str(out), 1) == [str(out / "checkpoint-2")]
    assert sorted(os.listdir(out)) == ["checkpoint-6", "checkpoint-8"]
    assert resilience.rotate_checkpoints(str(out), None) == []
    sized_checkpoint(out, 5)  # a fresh run into a directory of older checkpoints keeps what it just wrote
    assert resilience.rotate_checkpoints(str(out), 1, current=str(out / "checkpoint-5")) == []
