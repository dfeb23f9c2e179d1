"""The one document path: the hold-out rule, and `encoded_documents` giving the store and the stream
the same documents, with the held-out ones never encoded for training."""

import numpy as np
import pytest

from medtrain.data.documents import ENCODE_BATCH_DOCS, encoded_documents, in_split, is_held_out
from medtrain.data.sources import SkipCounter, doc_hash, find_files, plan_units
from medtrain.data.tokenization import TextEncoder

from helpers import write_text


def test_hold_out_rule_worked_example():
    # the module docstring's example: 5 % holds out hashes whose value mod 10,000 is below 500
    assert is_held_out([1_230_499, 77_777, 500, 10_499], 5.0).tolist() == [True, False, False, True]
    keys = np.arange(20_000, dtype=np.uint32)
    assert in_split(keys, "eval", 5.0).sum() == 1000
    assert (in_split(keys, "train", 5.0) ^ in_split(keys, "eval", 5.0)).all()  # every document in exactly one
    assert in_split(keys, "all", 5.0).all() and in_split(keys, "train", 0.0).all()
    assert not in_split(keys, "eval", 0.0).any()
    with pytest.raises(ValueError, match="unknown split"):
        in_split(keys, "test", 1.0)


class CountingEncoder(TextEncoder):
    """The real text encoder, counting what it is asked to encode."""

    def __init__(self, spec):
        super().__init__(spec)
        self.encoded = []

    def encode_batch(self, records):
        self.encoded.append(len(records))
        return super().encode_batch(records)


@pytest.fixture
def unit(tmp_path):
    lines = [f"document number {i} about fever and cough" for i in range(2500)]
    path = write_text(tmp_path / "c" / "docs.txt", "\n".join(lines) + "\n")
    (u,) = plan_units(find_files([str(tmp_path / "c")]))
    return u, lines, path


def test_every_document_in_file_order_in_bounded_batches(spec, unit):
    u, lines, _ = unit
    enc = CountingEncoder(spec)
    docs = list(encoded_documents(u, enc, False, None, SkipCounter()))
    assert len(docs) == len(lines)
    keys = [k for k, _ in docs]
    assert keys == sorted(keys)  # byte offsets of the lines, in order
    tok = enc.tokenizer
    for (key, doc), line in zip(docs[:50], lines):
        assert doc.ids.tolist() == tok.encode_batch([line])[0].tolist() and doc.mask is None
    assert max(enc.encoded) <= ENCODE_BATCH_DOCS and sum(enc.encoded) == len(lines)


def test_split_filter_skips_documents_before_encoding(spec, unit):
    u, lines, _ = unit
    everything = list(encoded_documents(u, TextEncoder(spec), False, None, SkipCounter()))
    held = [k for k, _ in everything if is_held_out([doc_hash(u.file.relpath, k)], 10.0)[0]]
    enc = CountingEncoder(spec)
    train = list(encoded_documents(u, enc, False, None, SkipCounter(), "train", 10.0))
    evaluation = list(encoded_documents(u, TextEncoder(spec), False, None, SkipCounter(), "eval", 10.0))
    assert [k for k, _ in evaluation] == held and 150 < len(held) < 350
    assert sorted([k for k, _ in train] + held) == [k for k, _ in everything]
    assert sum(enc.encoded) == len(lines) - len(held)  # held-out documents were never encoded for training
    assert list(encoded_documents(u, enc, False, None, SkipCounter(), "eval", 0.0)) == []
