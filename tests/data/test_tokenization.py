"""medtrain.data.tokenization with tokenizer backends (BOS/EOS, cut documents, the spec's backend),
and the work-unit plan that keeps every tokenizing worker busy (sources.plan_units)."""

import heapq
import pickle

import numpy as np
import pytest

from medtrain.data import tokenizer_backends as tb
from medtrain.data.sources import (RecordReader, find_files, order_largest_first, plan_units, share_units)
from medtrain.data.tokenization import (_BUILT, DocumentTokenizer, TextEncoder, TokenizerSpec, resolve_backend,
                                        sample_texts)

from tokenizer_families import family_json, multilingual_docs


def spec_of(js: str, backend: str = "hf", add_bos=True, add_eos=True) -> TokenizerSpec:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(js)
    return TokenizerSpec(js, tok.get_vocab_size(with_added_tokens=True), tok.token_to_id("<s>"),
                         tok.token_to_id("</s>"), add_bos, add_eos, backend=backend)


@pytest.fixture(autouse=True)
def short_long_line(monkeypatch):
    monkeypatch.setattr(tb, "LONG_LINE_CHARS", 1 << 15)   # HF takes a second for the 1 MB line


@pytest.fixture
def counting_backend():
    """A backend named "rev" that returns HF's ids (so the recheck passes) and counts its calls."""

    class Rev(tb.HFBackend):
        name = "rev"
        calls = 0

        def encode_batch(self, texts):
            Rev.calls += 1
            return super().encode_batch(texts)

    tb.register_backend("rev", Rev)
    yield Rev
    tb.unregister_backend("rev")
    for key in [k for k in _BUILT if k[1] == "rev"]:
        del _BUILT[key]


@pytest.mark.parametrize("add_bos,add_eos", [(True, True), (False, True), (True, False)])
def test_bos_eos_and_cut_documents_are_the_same_on_every_backend(counting_backend, add_bos, add_eos):
    js = family_json("metaspace_bytefb")
    docs = multilingual_docs(40) + ["word " * 400 + "患者" * 300]   # the last one is cut (piece_chars 500)
    hf = DocumentTokenizer(spec_of(js, "hf", add_bos, add_eos), piece_chars=500)
    fast = DocumentTokenizer(spec_of(js, "rev", add_bos, add_eos), piece_chars=500)
    want, got = hf.encode_batch(docs), fast.encode_batch(docs)
    assert fast.backend_name == "rev" and hf.backend_name == "hf" and counting_backend.calls >= 2
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(want, got))
    bos, eos = hf.spec.bos_id, hf.spec.eos_id
    plain = tb.HFBackend(js).encode_batch(docs[:1])[0]
    assert want[0].tolist() == [bos] * add_bos + plain + [eos] * add_eos
    assert hf.documents_cut == fast.documents_cut == 1


def test_fingerprint_is_the_same_for_every_backend_and_the_spec_pickles(counting_backend):
    js = family_json("bytelevel_gpt")
    hf, rev = spec_of(js), spec_of(js, "rev")
    assert hf.fingerprint == rev.fingerprint
    assert TextEncoder(hf).fingerprint == TextEncoder(rev).fingerprint
    enc = pickle.loads(pickle.dumps(TextEncoder(rev)))
    assert enc.spec.backend == "rev" and enc.tokenizer.backend_name == "rev"
    assert hf.build() is not rev.build() and rev.build() is rev.build()


def test_resolve_backend_hf_and_named(counting_backend):
    js = family_json("bytelevel_nfc")
    assert resolve_backend(spec_of(js), "hf").backend == "hf"
    assert resolve_backend(spec_of(js), "rev", ["a document"]).backend == "rev"


def test_sample_texts_reads_every_unit_text_and_sft_records(tmp_path):
    import json

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("".join(f"a{i}\n" for i in range(10)))
    (data / "b.jsonl").write_text("".join(json.dumps({"text": f"b{i}"}) + "\n" for i in range(10)) + "bad\n")
    units = plan_units(find_files([str(data)]), target_bytes=12)
    assert len(units) > 2
    got = sample_texts(units, per_unit=1)
    firsts = [next(iter(RecordReader(u, "text", skip_bad=True)), None) for u in units]
    assert got == [f[1] for f in firsts if f is not None] and len(got) > 2
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}) + "\n")
    assert sample_texts(plan_units(find_files([str(sft)])), text_field=None) == ["human", "Q?", "gpt", "A."]


def test_hf_tokenizer_stays_reachable_for_vocabulary_lookups(counting_backend):
    js = family_json("bytelevel_nfc")
    for backend in ("hf", "rev"):
        tok = spec_of(js, backend).build()
        assert tok.hf_tokenizer.token_to_id("<|im_start|>") == tok._tok.token_to_id("<|im_start|>") is not None
        assert tok.encode_ids(["x<think>y"]) == tb.HFBackend(js).encode_batch(["x<think>y"])


# ---------------------------------------------------------------------------------------------------
# the plan: several units per worker, handed out largest first
# ---------------------------------------------------------------------------------------------------
def simulate(units, workers: int) -> list[float]:
    """Greedy scheduling as a process pool does it: each free worker takes the next unit in
    largest-first order; a unit takes its bytes in time. Returns each worker's finishing time."""
    free = [(0.0, w) for w in range(workers)]
    for i in order_largest_first(units):
        t, w = heapq.heappop(free)
        heapq.heappush(free, (t + units[i].nbytes, w))
    return [t for t, _ in sorted(free, key=lambda x: x[1])]


def write_lines(path, n_bytes: int, tag: str):
    lines, size, i = [], 0, 0
    while size < n_bytes:
        line = f"{tag} line {i} " + "text " * (i % 13) + "\n"
        lines.append(line)
        size += len(line.encode())
        i += 1
    path.write_text("".join(lines), encoding="utf-8")
    return lines


def test_two_workers_three_unequal_files_every_worker_busy_until_the_end(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    expected = []
    for name, size in (("a.txt", 400_000), ("b.txt", 350_000), ("c.txt", 250_000)):
        expected += [ln.rstrip("\n") for ln in write_lines(data / name, size, name)]
    files = find_files([str(data)])

    old = plan_units(files, min_units=2)          # one unit per worker, as before: 3 units
    finish = simulate(old, 2)
    assert len(old) == 3 and max(finish) - min(finish) > 0.3 * max(finish)   # one worker idles a third

    units = plan_units(files, workers=2)
    assert len(units) >= 8
    biggest = max(u.nbytes for u in units)
    assert biggest <= -(-sum(f.size for f in files) // 8)
    finish = simulate(units, 2)
    makespan = max(finish)
    assert all(makespan - t <= biggest for t in finish)        # no worker idles more than one unit's time
    assert makespan <= sum(f.size for f in files) / 2 + biggest
    # units stay in file order: reading them in plan order gives every line once, in order
    got = [text for u in units for _, text in RecordReader(u)]
    assert got == expected
    # largest first, ties in plan order
    order = order_largest_first(units)
    assert [units[i].nbytes for i in order] == sorted((u.nbytes for u in units), reverse=True)


def test_units_per_worker_with_ranks_and_processes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, size in (("a.txt", 300_000), ("b.txt", 40_000)):
        write_lines(data / name, size, name)
    files = find_files([str(data)])
    units = plan_units(files, workers=2 * 3)                   # 2 ranks x 3 processes
    assert len(units) >= 4 * 6
    shares = share_units(units, 2)
    assert sorted(i for s in shares for i in s) == list(range(len(units)))
    loads = [sum(units[i].nbytes for i in s) for s in shares]
    assert abs(loads[0] - loads[1]) <= max(u.nbytes for u in units)
    for s in shares:
        assert [units[i].nbytes for i in s] == sorted((units[i].nbytes for i in s), reverse=True)
        assert len(s) >= 4 * 3 - 1


def test_small_files_are_never_merged_and_compressed_files_stay_whole(tmp_path):
    import gzip

    data = tmp_path / "data"
    data.mkdir()
    write_lines(data / "big.txt", 200_000, "big")
    with gzip.open(data / "z.txt.gz", "wt") as fh:
        fh.write("compressed line\n" * 5000)
    for k in range(3):
        (data / f"s{k}.txt").write_text("tiny\n")
    files = find_files([str(data)])
    units = plan_units(files, workers=4)
    assert sum(1 for u in units if u.file.relpath == "z.txt.gz") == 1
    assert sum(1 for u in units if u.file.relpath.startswith("s")) == 3
    assert sum(1 for u in units if u.file.relpath == "big.txt") >= 10


def test_sample_texts_can_be_bounded_to_units_spread_over_the_plan(tmp_path):
    from medtrain.data.sources import find_files, plan_units
    from medtrain.data.tokenization import sample_texts

    for i in range(10):
        (tmp_path / f"f{i}.txt").write_text(f"first of file {i}\nsecond of file {i}\n")
    units = plan_units(find_files([str(tmp_path)]))
    assert len(sample_texts(units, per_unit=1)) == 10
    bounded = sample_texts(units, per_unit=1, max_units=3)
    assert bounded == ["first of file 0", "first of file 3", "first of file 6"]
