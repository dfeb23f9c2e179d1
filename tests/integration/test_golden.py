"""The same inputs give the same token store bytes, the same blocks and the same losses as before the
package was restructured: values recorded with the code of commit e80255c by
tests/golden/record_before.py (from a checkout of that commit), compared with what the code gives now."""

import hashlib
import json
import os

import numpy as np
import pytest
import torch

from medtrain.data.sources import find_files
from medtrain.data.streaming import StreamingBlocks
from medtrain.data.token_store import StoreBuilder, TokenCorpus
from medtrain.training.demo import DEMO_CORPUS, DEMO_SFT_DATA

GOLDEN = json.load(open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "golden", "before_restructure.json")))


def sha(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def stream_hashes(corpus: TokenCorpus, with_mask=False):
    """The store's content whatever its unit plan: token bytes, document lengths and keys, in order."""
    dtype = corpus.dtype
    h = {k: hashlib.sha256() for k in (["tokens", "lengths", "keys"] + (["mask"] if with_mask else []))}
    for d in range(corpus.n_documents):
        h["tokens"].update(np.asarray(corpus.tokens(d), dtype=dtype).tobytes())
        if with_mask:
            h["mask"].update(np.asarray(corpus.mask(d), dtype=np.uint8).tobytes())
    h["lengths"].update(np.asarray(corpus.doc_lengths, dtype=np.int64).tobytes())
    h["keys"].update(np.asarray(corpus.doc_keys, dtype=np.uint32).tobytes())
    return {k: v.hexdigest() for k, v in h.items()}


@pytest.fixture(scope="module")
def corpus(spec, tmp_path_factory):
    return TokenCorpus(StoreBuilder(find_files([DEMO_CORPUS]), spec, str(tmp_path_factory.mktemp("golden")),
                                    show_progress=False).ensure())


def test_same_tokenizer(spec):
    assert hashlib.sha256(spec.tokenizer_json.encode()).hexdigest() == GOLDEN["tokenizer_json_sha"]


def test_same_store_bytes(corpus):
    assert corpus.n_documents == GOLDEN["documents"] and int(corpus.doc_lengths.sum()) == GOLDEN["tokens"]
    assert stream_hashes(corpus) == GOLDEN["store_stream"]


@pytest.mark.parametrize("strategy", ["concat", "group_by_text", "best_fit", "none"])
@pytest.mark.parametrize("split,holdout", [("all", 0.0), ("train", 5.0), ("eval", 5.0)])
def test_same_blocks(corpus, strategy, split, holdout):
    index = corpus.blocks(64, strategy, True, split, holdout)
    want = GOLDEN["blocks"][f"{strategy}/{split}"]
    assert index.n_blocks == want["n_blocks"]
    assert sha(index.piece_doc, index.piece_start, index.piece_len, index.block_ptr) == want["index"]
    assert sha(*[corpus.block_row(index, b).input_ids for b in range(index.n_blocks)]) == want["rows"]


@pytest.mark.parametrize("strategy", ["concat", "group_by_text"])
def test_same_streamed_blocks(spec, strategy):
    rows = [r.input_ids for r in StreamingBlocks(find_files([DEMO_CORPUS]), spec, 64, strategy, loop=False).rows()]
    want = GOLDEN["blocks"][f"streaming/{strategy}"]
    assert len(rows) == want["n_blocks"] and sha(*rows) == want["rows"]


def _losses(output_dir):
    with open(os.path.join(output_dir, "trainer_state.json")) as fh:
        return {str(h["step"]): h["loss"] for h in json.load(fh)["log_history"] if "loss" in h}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the values were recorded with one thread
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name,extra", [("pt_concat", []), ("pt_group_by_text", ["--group_by_text", "true"]),
                                        ("pt_streaming", ["--streaming", "true", "--shuffle_buffer_size", "64"])])
def test_same_pretraining_losses(demo_dir, tmp_path, one_thread, name, extra):
    from medtrain.cli.pretrain import main

    out = str(tmp_path / name)
    assert main(["--model_name_or_path", demo_dir, "--cache_dir", str(tmp_path / "cache"), "--output_dir", out,
                 "--block_size", "64", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3",
                 "--logging_steps", "1", "--save_strategy", "no", "--num_proc", "1", "--seed", "7",
                 "--report_to", "none", "--max_steps", "6", *extra]) == 0
    assert _losses(out) == GOLDEN["losses"][name]


def test_same_sft_store_and_losses(demo_dir, tmp_path, one_thread):
    """SFT values were recorded again when exact chat templates landed (issue 15): a conversation is now
    tokenized as one string, as apply_chat_template does (" USER" is one token where the old per-segment
    encoding gave two); the values recorded before the restructuring are kept in the file for reference."""
    from medtrain.cli.sft import main

    out = str(tmp_path / "sft")
    assert main(["--model_name_or_path", demo_dir, "--train_file_dir", DEMO_SFT_DATA, "--cache_dir",
                 str(tmp_path / "cache"), "--output_dir", out, "--model_max_length", "256",
                 "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--logging_steps", "1",
                 "--save_strategy", "no", "--num_proc", "1", "--seed", "5", "--validation_split_percentage", "5",
                 "--max_steps", "6"]) == 0
    want = GOLDEN["sft_after_exact_templates"]
    assert _losses(out) == want["losses"]
    summary = json.load(open(os.path.join(out, "run_summary.json")))
    assert stream_hashes(TokenCorpus(summary["train"]["stores"]), with_mask=True) == want["store_stream"]
