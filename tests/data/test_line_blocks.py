"""The block reader (medtrain.data.line_blocks) against the line-by-line reader it replaces: the same
keys, records, skip counts and errors on damaged files, in every unit split and block size; and the
store builder's flat path against the per-document path: byte-identical stores."""

import gzip
import json
import os
import random

import numpy as np
import pytest

from medtrain.data import line_blocks
from medtrain.data.documents import encoded_documents
from medtrain.data.sources import RecordReader, SkipCounter, WorkUnit, doc_hash, doc_hashes, find_files, plan_units
from medtrain.errors import DataError

GOOD = [json.dumps({"text": t}, ensure_ascii=a) for t, a in
        [("Fever and cough.", True), ("发热三天，伴咳嗽。", False), ("Ångström\u0301 units", False),
         ("tabs\tand \"quotes\" and \\ slashes", True), ("emoji 🩺 here", False), ("x" * 300, True)]]
GOOD += [json.dumps({"id": 2 ** 70, "text": "big integer beside the text"}),
         json.dumps({"text": "first", "text": "duplicate key: last wins"}),   # noqa: F601 - on purpose
         json.dumps({"meta": {"a": [1, 2.5, None]}, "text": "nested fields"}), '  {"text": "spaces around"}  ']
BAD_JSON = ['{"text": "unterminated', "[1, 2]", "42", '"a string"', '{"body": "no text field"}', '{"text": null}',
            '{"text": ""}', '{"text": "   "}', '{"text": 5}', '{"text": "lone \\ud800 surrogate"}', '{"text": NaN}',
            '{"text": "x", "v": Infinity}', '{"text": "\u3000"}']
BAD_BYTES = [b"\xff\xfe broken utf-8", b"nul \x00 byte", b"\xed\xa0\x80 encoded surrogate", b"\r", b"   \t",
             "\u3000\u00a0".encode(), b""]


def jsonl_lines(rng, n=60):
    lines = [line.encode() for line in rng.choices(GOOD, k=n)]
    for bad in BAD_JSON:
        lines.insert(rng.randrange(len(lines)), bad.encode())
    for bad in BAD_BYTES:
        lines.insert(rng.randrange(len(lines)), bad)
    lines.insert(rng.randrange(len(lines)), b'{"text": "' + b"long " * 3000 + b'"}')   # longer than a block
    return lines


def txt_lines(rng, n=60):
    words = ["fever", "cough", "发热", "咳嗽", "Ångström", "🩺", "dose", "mg"]
    lines = [" ".join(rng.choices(words, k=rng.randint(1, 30))).encode() for _ in range(n)]
    for bad in BAD_BYTES + [b"  padded line  ", b"trailing cr\r", "\u2028 inside".encode(), b"x" * 9000]:
        lines.insert(rng.randrange(len(lines)), bad)
    return lines


def write(path, lines, bom=False, final_newline=True, compress=False):
    # good lines first: a NUL byte in the first KB makes the whole file binary (a check before reading)
    head = [json.dumps({"text": f"opening line {i}"}).encode() for i in range(60)]
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(head + lines) + (b"\n" if final_newline else b"")
    if compress:
        data = gzip.compress(data)
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)


def read_all(units, block_reading, **kw):
    """(keys, records) of every unit, the skip counts, and the error message if one was raised."""
    skipped = SkipCounter()
    out = []
    try:
        for unit in units:
            reader = RecordReader(unit, skipped=skipped, **kw)
            reader.block_reading = block_reading
            out.extend(reader)
    except DataError as e:
        return out, skipped.to_dict(), str(e)
    return out, skipped.to_dict(), None


def both(units, **kw):
    blocks = read_all(units, True, **kw)
    lines = read_all(units, False, **kw)
    assert blocks == lines   # the records before an error too: a block with a bad line goes line by line
    return blocks


@pytest.mark.parametrize("block", [7, 64, 4096, 1 << 20])
@pytest.mark.parametrize("kind", ["jsonl", "txt", "jsonl.gz", "txt.gz"])
def test_the_block_reader_reads_damaged_files_exactly_as_the_line_reader(tmp_path, monkeypatch, block, kind):
    monkeypatch.setattr(line_blocks, "BLOCK_BYTES", block)
    rng = random.Random(f"{block}{kind}")
    lines = jsonl_lines(rng) if kind.startswith("jsonl") else txt_lines(rng)
    for bom, final in [(False, True), (True, False)]:
        path = write(tmp_path / f"d-{bom}.{kind}", lines, bom=bom, final_newline=final, compress=kind.endswith(".gz"))
        files = find_files([path])
        for target in ([1 << 30] if kind.endswith(".gz") else [1 << 30, 1000, 97]):   # whole file, byte ranges
            units = plan_units(files, target)
            records, skipped, error = both(units, skip_bad=True)
            assert error is None and records and skipped
            for max_chars in (None, 40):
                both(units, skip_bad=True, max_chars=max_chars)
            # without skip_bad: the same first error, naming the same file:line
            _, _, error = both(units, skip_bad=False)
            assert error is not None and path in error


def test_the_block_reader_gives_the_same_whole_records_and_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(line_blocks, "BLOCK_BYTES", 256)
    rng = random.Random(5)
    lines = jsonl_lines(rng)
    path = write(tmp_path / "records.jsonl", lines)
    units = plan_units(find_files([path]), 700)
    records, skipped, error = both(units, text_field=None, skip_bad=True)
    assert error is None and any(r == {"id": 2 ** 70, "text": "big integer beside the text"} for _, r in records)
    for bad in BAD_JSON[:2] + [b.decode("latin-1") for b in BAD_BYTES[:2]]:   # one bad line among good ones
        path = write(tmp_path / "one-bad.jsonl", [g.encode() for g in GOOD] + [bad.encode("latin-1")] + [b"{}"])
        _, _, error = both(plan_units(find_files([path]), 1 << 30), skip_bad=False)
        assert error is not None and f"{path}:{60 + len(GOOD) + 1}:" in error


def test_clean_blocks_take_the_fast_path(tmp_path, monkeypatch):
    # a file of plain records (and blank lines) never reaches the per-line rules
    path = write(tmp_path / "clean.jsonl", [g.encode() for g in GOOD] + [b"", b"  "] + [g.encode() for g in GOOD])
    called = []
    monkeypatch.setattr(RecordReader, "_line", lambda self, *a: called.append(a))
    reader = RecordReader(WorkUnit(find_files([path])[0]))
    records = list(reader)
    assert not called and len(records) == 60 + 2 * len(GOOD) and reader.skipped.to_dict() == {"empty_line": 2}


def test_line_blocks_splits_whole_lines_at_their_offsets(tmp_path):
    data = b"ab\n\ncdef\n" + b"g" * 50 + b"\nlast"
    path = tmp_path / "f.txt"
    path.write_bytes(data)
    for block in (1, 3, 5, 64, 1 << 20):
        with open(path, "rb") as fh:
            got = [(s, line) for starts, lines, _ in line_blocks.line_blocks(fh, 0, float("inf"), block)
                   for s, line in zip(starts, lines)]
        assert got == [(0, b"ab"), (3, b""), (4, b"cdef"), (9, b"g" * 50), (60, b"last")]
        with open(path, "rb") as fh:   # a unit that ends inside a line keeps that line whole
            fh.seek(3)
            got = [(s, line) for starts, lines, _ in line_blocks.line_blocks(fh, 3, 10, block)
                   for s, line in zip(starts, lines)]
        assert got == [(3, b""), (4, b"cdef"), (9, b"g" * 50)]


def test_doc_hashes_are_doc_hash():
    keys = [0, 7, 10 ** 12, 123456789]
    assert doc_hashes("dir/a.jsonl", keys) == [doc_hash("dir/a.jsonl", k) for k in keys]


# ---------------------------------------------------------------------------------------------------
# the store builder's flat path
# ---------------------------------------------------------------------------------------------------
class PerDocument:
    """A TextEncoder without `encode_flat` / `read_batches`: the per-document path of the builder."""

    has_mask = False

    def __init__(self, encoder):
        self.encoder = encoder

    def __getattr__(self, name):
        if name in ("encode_flat", "read_batches"):
            raise AttributeError(name)
        return getattr(self.encoder, name)


@pytest.mark.parametrize("bos,eos", [(False, True), (True, True), (True, False), (False, False)])
def test_flat_store_units_equal_the_per_document_path(tmp_path, spec, bos, eos):
    from dataclasses import replace

    from medtrain.data.token_store.builder import build_unit
    from medtrain.data.tokenization import TextEncoder

    assert spec.bos_id is not None and spec.eos_id is not None
    spec = replace(spec, add_bos=bos, add_eos=eos)
    rng = random.Random(1)
    path = write(tmp_path / "c.jsonl", jsonl_lines(rng, 300))
    units = plan_units(find_files([path]), 4000)
    out = {}
    for name, encoder in [("flat", TextEncoder(spec)), ("docs", PerDocument(TextEncoder(spec)))]:
        store = tmp_path / name
        os.makedirs(store / "units")
        out[name] = [build_unit(str(store), i, u, encoder, True, 2000) for i, u in enumerate(units)]
        files = sorted(os.listdir(store / "units"))
        out[name + "-files"] = {f: (store / "units" / f).read_bytes() for f in files if not f.endswith(".json")}
    assert out["flat-files"] == out["docs-files"] and len(out["flat-files"]) >= 3 * len(units)
    for a, b in zip(out["flat"], out["docs"]):
        assert {k: a[k] for k in ("documents", "tokens", "skipped")} == {k: b[k] for k in ("documents", "tokens", "skipped")}
    # and the documents are what encoded_documents gives, one by one
    enc = TextEncoder(spec)
    want = [d.ids for u in units for _, d in encoded_documents(u, enc, True, 2000, SkipCounter())]
    tokens = np.concatenate([np.frombuffer(out["flat-files"][f], dtype=spec.dtype)
                             for f in sorted(out["flat-files"]) if f.endswith(".tokens")])
    assert np.array_equal(tokens, np.concatenate(want))


def test_a_lone_surrogate_escape_is_a_bad_line_not_a_tokenizer_crash(tmp_path):
    path = write(tmp_path / "s.jsonl", [b'{"text": "ok"}', b'{"text": "half \\ud800 of a pair"}',
                                        b'{"text": "a pair \\ud83e\\ude7a is one character"}'])
    unit = WorkUnit(find_files([path])[0])
    with pytest.raises(DataError, match=rf"{path}:62: the text holds a lone surrogate escape \(\\ud800\) at "
                                        r"character 5.*--skip_bad_lines"):
        list(RecordReader(unit))
    reader = RecordReader(unit, skip_bad=True)
    texts = [t for _, t in reader]
    assert texts[-2:] == ["ok", "a pair \U0001fa7a is one character"] and reader.skipped.to_dict() == {"lone_surrogate": 1}


def test_without_orjson_a_lone_surrogate_still_goes_line_by_line(tmp_path, monkeypatch):
    monkeypatch.setattr(line_blocks, "_fast_loads", None)
    path = write(tmp_path / "s.jsonl", [b'{"text": "ok"}', b'{"text": "half \\ud800 of a pair"}'])
    _, skipped, error = both([WorkUnit(find_files([path])[0])], skip_bad=True)
    assert error is None and skipped == {"lone_surrogate": 1}
    both(plan_units(find_files([path]), 1 << 30), skip_bad=False)


def test_records_before_a_bad_one_are_used_first(tmp_path):
    # a consumer that checks records itself (SFT) sees the good records before the reader's error
    lines = [json.dumps({"n": i}).encode() for i in range(5)] + [b"{broken"]
    path = write(tmp_path / "r.jsonl", lines)
    seen = []
    with pytest.raises(DataError, match=":66: malformed JSON"):
        for _, record in RecordReader(WorkUnit(find_files([path])[0]), None):
            seen.append(record)
    assert seen[-5:] == [{"n": i} for i in range(5)]


def test_a_reader_that_wants_a_few_records_reads_little(tmp_path):
    path = write(tmp_path / "big.jsonl", [json.dumps({"text": "x" * 200}).encode()] * 50000)
    reader = RecordReader(WorkUnit(find_files([path])[0]))
    for n, _ in enumerate(reader):
        if n >= 3:
            break
    assert reader.bytes_read <= line_blocks.FIRST_BLOCK_BYTES


def test_encode_batches_are_sized_whatever_the_reader_hands_over(tmp_path, spec, monkeypatch):
    # parquet rows come 1,024 at a time, whatever their size: the builder still encodes ~1M characters
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medtrain.data import documents
    from medtrain.data.tokenization import TextEncoder

    monkeypatch.setattr(documents, "ENCODE_BATCH_CHARS", 5000)
    texts = [("word " * random.Random(i).randint(10, 600)).strip() for i in range(1100)]
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"text": texts}), path)
    encoder = TextEncoder(spec)
    sizes = []
    real = encoder.encode_flat
    monkeypatch.setattr(encoder, "encode_flat", lambda records, origins=None: sizes.append(
        sum(map(len, records))) or real(records, origins))
    unit = WorkUnit(find_files([path])[0])
    flat = list(documents.flat_documents(unit, encoder, False, None, SkipCounter()))
    assert len(sizes) > 1 and all(s - 3000 < 5000 for s in sizes[:-1]) and all(s >= 5000 for s in sizes[:-1])
    ids = np.concatenate([ids for _, ids, _ in flat])
    want = np.concatenate([d.ids for _, d in encoded_documents(unit, TextEncoder(spec), False, None, SkipCounter())])
    assert np.array_equal(ids, want)


def test_sized_cuts_where_one_record_at_a_time_would(monkeypatch):
    from medtrain.data import documents

    monkeypatch.setattr(documents, "ENCODE_BATCH_CHARS", 5)
    monkeypatch.setattr(documents, "ENCODE_BATCH_DOCS", 3)
    one_by_one = []
    rng = random.Random(2)
    lists = [[("x" * rng.randint(0, 7)) for _ in range(rng.randint(0, 9))] for _ in range(40)]
    batch, chars = [], 0
    for r in (r for rs in lists for r in rs):
        batch.append(r)
        chars += len(r)
        if chars >= 5 or len(batch) >= 3:
            one_by_one.append(batch)
            batch, chars = [], 0
    one_by_one += [batch] if batch else []
    got = list(documents._sized(((list(range(len(rs))), rs) for rs in lists), len))
    assert [records for _, records in got] == one_by_one


def test_a_unit_that_fails_leaves_no_files(tmp_path, spec):
    from medtrain.data.token_store.builder import build_unit
    from medtrain.data.tokenization import TextEncoder

    path = write(tmp_path / "bad.jsonl", [b'{"text": "fine"}', b"{broken"])
    os.makedirs(tmp_path / "store" / "units")
    with pytest.raises(DataError, match="malformed JSON"):
        build_unit(str(tmp_path / "store"), 0, WorkUnit(find_files([path])[0]), TextEncoder(spec), False, None)
    assert os.listdir(tmp_path / "store" / "units") == []
