"""prepare_data.py: alone, under torchrun, on two nodes without a shared filesystem, killed and
resumed; all give the blocks of the streaming path."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from medtrain.cli.prepare import main as prepare_main
from medtrain.data.sources import find_files
from medtrain.data.streaming import StreamingBlocks
from medtrain.data.token_store import TokenCorpus

from helpers.launch import ROOT, free_port, launch_env, torchrun

CORPUS = os.path.join(ROOT, "data", "pretrain")


def rows_of_store(path, bs=80, strategy="group_by_text"):
    corpus = TokenCorpus(path)
    index = corpus.blocks(bs, strategy)
    return [tuple(corpus.block_row(index, b).input_ids.tolist()) for b in range(index.n_blocks)]


@pytest.fixture(scope="module")
def streamed(spec):
    ds = StreamingBlocks(find_files([CORPUS]), spec, 80, "group_by_text", loop=False)
    return [tuple(r.input_ids.tolist()) for r in ds.rows()]


def prep_args(demo_dir, out, *extra):
    return ["--tokenizer_name_or_path", demo_dir, "--train_file_dir", CORPUS, "--output_dir", str(out), *extra]


def test_prepare_alone_equals_streaming(demo_dir, tmp_path, streamed, capsys):
    assert prepare_main(prep_args(demo_dir, tmp_path / "s", "--num_proc", "2")) == 0
    assert rows_of_store(tmp_path / "s") == streamed
    m = json.load(open(tmp_path / "s" / "manifest.json"))
    assert m["documents"] == 360 and len(m["document_length_histogram"]) > 3
    assert os.path.exists(tmp_path / "s" / "doc_lengths.png")
    # a second run reuses it, and says how to force a rebuild
    assert prepare_main(prep_args(demo_dir, tmp_path / "s")) == 0
    # --inspect prints the statistics and decodes a block
    capsys.readouterr()
    assert prepare_main(["--inspect", str(tmp_path / "s"), "--inspect_block", "0", "--block_size", "16",
                         "--tokenizer_name_or_path", demo_dir]) == 0
    out = capsys.readouterr().out
    assert "documents: 360" in out and "block 0: pieces" in out and "--- document 0" in out


def test_store_in_another_directory_is_not_overwritten(demo_dir, tmp_path, capsys):
    assert prepare_main(prep_args(demo_dir, tmp_path / "s")) == 0
    assert prepare_main(prep_args(demo_dir, tmp_path / "s", "--text_field", "body")) == 2
    assert "holds a token store of other inputs" in capsys.readouterr().err


@pytest.mark.slow
def test_prepare_with_torchrun_two_ranks(demo_dir, tmp_path, streamed):
    torchrun(2, "prepare_data.py", prep_args(demo_dir, tmp_path / "s", "--num_proc", "1"))
    assert rows_of_store(tmp_path / "s") == streamed
    m = json.load(open(tmp_path / "s" / "manifest.json"))
    assert sorted(r["rank"] for r in m["ranks"]) == [0, 1]
    assert all(r["units_built"] > 0 for r in m["ranks"])  # both ranks did part of the work


@pytest.mark.slow
def test_two_nodes_without_shared_filesystem_prepare_on_local(demo_dir, tmp_path, streamed):
    port = free_port()
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
               "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
               os.path.join(ROOT, "prepare_data.py"),
               *prep_args(demo_dir, tmp_path / f"node{node}" / "store", "--prepare_on", "local", "--num_proc", "1")]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=launch_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for p in procs:
        out = p.communicate(timeout=300)[0]
        assert p.returncode == 0, out[-4000:]
    for node in (0, 1):  # each node built its whole own copy
        assert rows_of_store(tmp_path / f"node{node}" / "store") == streamed


def test_killed_build_resumes_from_finished_units(demo_dir, tmp_path, streamed):
    out = tmp_path / "s"
    args = [sys.executable, os.path.join(ROOT, "prepare_data.py"),
            *prep_args(demo_dir, out, "--num_proc", "1")]
    env = launch_env(MEDTRAIN_TEST_SLOW_UNIT_SECONDS=1.5)
    # 1.5 s per unit: kill it after the first unit is complete
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not glob.glob(str(out / "units" / "*.json")):  # units are built largest first
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(out / "manifest.json")
    done_before = sorted(f for f in os.listdir(out / "units") if f.endswith(".json"))
    assert 1 <= len(done_before) < len(json.load(open(out / "plan.json")))
    n_units = len(json.load(open(out / "plan.json")))
    # resume with other worker counts: the plan on disk, not the new counts, defines the units
    proc = subprocess.run(args[:-2] + ["--num_proc", "2"], cwd=ROOT, env=launch_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"{len(done_before)} of {n_units} units already done" in proc.stdout
    assert rows_of_store(out) == streamed


def test_overwrite_never_deletes_a_directory_that_is_not_a_store(demo_dir, tmp_path, capsys):
    mine = tmp_path / "my_files"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    assert prepare_main(prep_args(demo_dir, mine, "--num_proc", "1", "--overwrite_cache", "true")) == 2
    err = capsys.readouterr().err
    assert "is not a token store" in err and "--overwrite_cache would delete it" in err
    assert os.listdir(mine) == ["thesis.txt"] and (mine / "thesis.txt").read_text() == "years of work"
    assert prepare_main(prep_args(demo_dir, mine, "--num_proc", "1")) == 2  # nor are store files written there
    assert os.listdir(mine) == ["thesis.txt"]
    store = tmp_path / "store"
    assert prepare_main(prep_args(demo_dir, store, "--num_proc", "1")) == 0
    assert prepare_main(prep_args(demo_dir, store, "--num_proc", "1", "--overwrite_cache", "true")) == 0
    assert os.path.exists(store / "manifest.json")  # a store's own directory is rebuilt


def test_leftovers_of_a_killed_build_are_removed_by_the_next(tmp_path, spec):
    import socket

    from medtrain.data.token_store import StoreBuilder

    files = find_files([CORPUS])
    builder = StoreBuilder(files, spec, str(tmp_path), show_progress=False)
    os.makedirs(os.path.join(builder.path, "units"))
    dead = os.path.join(builder.path, "units", f"00000.tokens.tmp.{socket.gethostname()}.999999999")
    other_host = os.path.join(builder.path, "units", "00001.tokens.tmp.elsewhere.1")
    for p in (dead, other_host):
        open(p, "wb").write(b"partial")
    builder.ensure()
    assert not os.path.exists(dead) and os.path.exists(other_host)  # another host's file may be in use


def test_manifest_says_which_backend_and_how_busy_each_worker_was(demo_dir, tmp_path):
    assert prepare_main(prep_args(demo_dir, tmp_path / "s", "--num_proc", "2")) == 0
    m = json.load(open(tmp_path / "s" / "manifest.json"))
    from medtrain.data.tokenizer_backends import installed_backends

    assert len(m["tokenizer_backend"]) == 1 and m["tokenizer_backend"][0] in ["hf", *installed_backends()]
    workers = m["workers"]
    assert len(workers) == 2 and sum(w["units"] for w in workers) == len(m["units"]) >= 8  # 4 per worker
    assert all(0 < w["busy_fraction"] <= 1 and w["units"] >= 2 for w in workers)


def test_a_store_directory_whose_plan_is_being_written_is_not_foreign(tmp_path):
    import socket

    from medtrain.data.token_store.builder import foreign_contents

    d = tmp_path / "store"
    (d / "units").mkdir(parents=True)
    (d / f"plan.json.tmp.{socket.gethostname()}.123").write_text("[]")  # another rank, between write and link
    assert foreign_contents(str(d)) == []
    (d / "notes.txt").write_text("x")
    assert foreign_contents(str(d)) == []  # a store's own directory: its plan marks it
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    assert foreign_contents(str(other)) == ["notes.txt"]


def test_a_store_directory_another_rank_creates_meanwhile_is_not_foreign(tmp_path, monkeypatch):
    from medtrain.data.token_store import builder

    d = tmp_path / "store"
    assert builder.foreign_contents(str(d)) == []
    (tmp_path / "file").write_text("x")
    assert builder.foreign_contents(str(tmp_path / "file")) == ["file"]
    # the old check asked isdir (no: not there yet), then exists (yes: rank 0 just made it), and called
    # the new, empty directory a foreign file, stopping rank 1 with "not a token store"
    real_isdir = os.path.isdir

    def late_isdir(path):
        found = real_isdir(path)
        os.makedirs(d, exist_ok=True)
        return found

    monkeypatch.setattr(builder.os.path, "isdir", late_isdir)
    assert builder.foreign_contents(str(d)) == []


def test_preparing_pretraining_text_imports_no_torch_trainer_or_peft(demo_dir, tmp_path):
    """Its worker processes fork from it and carry what it imported (400 MB and 8 s with torch,
    transformers and peft): a pretraining store from a local tokenizer needs none of them."""
    import subprocess
    import sys

    # transformers' argument parser alone is fine (47 MB, no torch); its Trainer and models are not
    heavy = ("torch", "peft", "datasets", "transformers.trainer", "transformers.training_args", "transformers.modeling_utils")
    code = ("import sys; from medtrain.cli.prepare import main; rc = main(sys.argv[1:]); "
            f"print('IMPORTED', sorted(m for m in {heavy!r} if m in sys.modules)); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *prep_args(demo_dir, tmp_path / "s", "--num_proc", "2")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "IMPORTED []" in out.stdout, out.stdout[-500:]
