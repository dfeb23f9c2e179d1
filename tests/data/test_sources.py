"""Unit tests of medtrain.sources: finding files, reading every format, splitting files into byte
ranges, and bad input (errors naming file and line, or counted skips). Also `split_text`."""

import gzip
import json
import os
import random
import re

import pytest

from medtrain.errors import DataError
from medtrain.data import sources
from medtrain.data.sources import RecordReader, SkipCounter, WorkUnit, find_files, plan_units, scan_inputs
from medtrain.data.tokenization import split_text

from helpers import write_jsonl, write_text


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def touch(path, content=b"x\n"):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(content)
    return str(path)


def read_units(units, **kw):
    """Every (key, text) of the units, in order, and the merged skip counts."""
    skipped = SkipCounter()
    out = []
    for unit in units:
        out.extend(RecordReader(unit, skipped=skipped, **kw))
    return out, skipped


def read_path(path, target_bytes=32 << 20, **kw):
    return read_units(plan_units(find_files([str(path)]), target_bytes), **kw)


def texts_of(pairs):
    return [t for _, t in pairs]


def where(path, line):
    """Regex for the '<file>:<line>: ' prefix of an error about a line."""
    return re.escape(f"{os.path.abspath(str(path))}:{line}: ")


def line_offsets(data: bytes):
    """Byte offset of the start of every line of `data`."""
    offs, pos = [], 0
    for line in data.splitlines(keepends=True):
        offs.append(pos)
        pos += len(line)
    return offs


# ---------------------------------------------------------------------------------------------------
# find_files
# ---------------------------------------------------------------------------------------------------
def test_find_files_recursive_sorted_and_hidden_ignored(tmp_path):
    root = tmp_path / "corpus"
    # created in reverse order so that the result cannot depend on creation order
    touch(root / "sub" / "deeper" / "e.jsonl.zst")
    touch(root / "sub" / "deeper" / "d.txt.gz")
    touch(root / "sub" / "c.parquet")
    touch(root / "sub" / "b.json")
    touch(root / "b.txt")
    touch(root / "a.jsonl")
    touch(root / "A2.TEXT")                   # suffixes are case-insensitive
    # ignored: hidden files and directories, unsupported types inside a directory
    touch(root / ".hidden.txt")
    touch(root / ".git" / "x.txt")
    touch(root / "sub" / ".cache" / "y.jsonl")
    touch(root / "sub" / ".z.jsonl")
    touch(root / "notes.md")
    touch(root / "sub" / "README")

    found = find_files([str(root)])
    assert [f.relpath for f in found] == ["A2.TEXT", "a.jsonl", "b.txt", "sub/b.json", "sub/c.parquet",
                                          "sub/deeper/d.txt.gz", "sub/deeper/e.jsonl.zst"]
    by = {f.relpath: f for f in found}
    assert (by["A2.TEXT"].fmt, by["A2.TEXT"].compression) == ("txt", None)
    assert (by["a.jsonl"].fmt, by["a.jsonl"].compression) == ("jsonl", None)
    assert (by["sub/b.json"].fmt, by["sub/b.json"].compression) == ("json", None)
    assert (by["sub/c.parquet"].fmt, by["sub/c.parquet"].compression) == ("parquet", None)
    assert (by["sub/deeper/d.txt.gz"].fmt, by["sub/deeper/d.txt.gz"].compression) == ("txt", "gz")
    assert (by["sub/deeper/e.jsonl.zst"].fmt, by["sub/deeper/e.jsonl.zst"].compression) == ("jsonl", "zst")
    for f in found:
        assert os.path.isabs(f.path) and f.path == os.path.join(str(root), *f.relpath.split("/"))
        assert f.size == os.path.getsize(f.path)
    assert [f.splittable for f in found] == [True, True, True, True, False, False, False]
    # the same answer every time
    assert find_files([str(root)]) == found
    # the unsupported files are reported (hidden ones are not: they are ignored by convention)
    scan = scan_inputs([str(root)])
    assert scan.files == found
    assert scan.unsupported == [str(root / "notes.md"), str(root / "sub" / "README")]


def test_find_files_lists_a_directorys_files_before_its_subdirectories(tmp_path):
    """The order of os.walk: a directory's files (sorted), then each subdirectory (sorted), recursively.
    (data/pretrain gives medical_en.txt, medical_zh.jsonl, guidelines/general_en.jsonl.)"""
    root = tmp_path / "r"
    touch(root / "a" / "x.txt")
    touch(root / "a" / "b" / "y.txt")
    touch(root / "z.txt")
    touch(root / "a" / "z.txt")
    assert [f.relpath for f in find_files(str(root))] == ["z.txt", "a/x.txt", "a/z.txt", "a/b/y.txt"]


def test_find_files_keeps_argument_order_and_names_single_files_by_basename(tmp_path):
    f1 = touch(tmp_path / "d1" / "z.txt")
    touch(tmp_path / "d2" / "a.txt")
    found = find_files([f1, str(tmp_path / "d2")])
    assert [f.relpath for f in found] == ["z.txt", "a.txt"]
    assert found[0].path == os.path.abspath(f1)
    # a hidden file named explicitly is used (only the directory search ignores hidden names)
    h = touch(tmp_path / "d3" / ".explicit.jsonl")
    assert [f.relpath for f in find_files(h)] == [".explicit.jsonl"]


def test_find_files_missing_path_raises_naming_it(tmp_path):
    missing = str(tmp_path / "nope" / "data.jsonl")
    with pytest.raises(DataError, match=re.escape(missing)) as e:
        find_files([missing])
    assert "does not exist" in str(e.value) and str(e.value).startswith("--train_file_dir")
    # one missing path among good ones is still an error, and `what` names the argument
    good = touch(tmp_path / "ok.txt")
    with pytest.raises(DataError, match=r"--validation_file_dir: path does not exist: " + re.escape(missing)):
        find_files([good, missing], what="--validation_file_dir")


def test_find_files_directory_without_supported_file_raises(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no supported data file under " + re.escape(str(empty))):
        find_files([str(empty)])
    only_bad = tmp_path / "only_bad"
    touch(only_bad / "notes.md")
    touch(only_bad / "data.csv")
    touch(only_bad / ".hidden.jsonl")
    touch(only_bad / ".hid" / "x.txt")
    with pytest.raises(DataError, match=r"no supported data file under " + re.escape(str(only_bad))):
        find_files(str(only_bad))


@pytest.mark.parametrize("name", ["data.csv", "data.jsonl.bz2", "notes.md", "README"])
def test_find_files_unsupported_file_type_raises(tmp_path, name):
    p = touch(tmp_path / name)
    with pytest.raises(DataError, match=r"unsupported file type: " + re.escape(p)):
        find_files([p])


# ---------------------------------------------------------------------------------------------------
# inputs that are not read: reported, or an error naming them
# ---------------------------------------------------------------------------------------------------
def test_unsupported_files_are_listed_in_a_warning_and_returned(tmp_path, caplog):
    root = tmp_path / "data"
    good = touch(root / "a.jsonl", b'{"text": "x"}\n')
    names = ["b.jsonl.bz2", "c.csv", "d.txt.xz", "e.tsv", "f.parquet.bak", "g.md", "sub/h.csv"]
    for name in names:
        touch(root / name)
    touch(root / ".hidden.csv")
    with caplog.at_level("WARNING"):
        scan = scan_inputs([str(root)])
    assert [f.path for f in scan.files] == [good]
    assert scan.unsupported == [str(root / n) for n in names]
    assert scan.summary() == {"unsupported_files": 7, "unsupported_examples": [str(root / n) for n in names[:5]],
                              "unreadable_paths": []}
    warning = [r.getMessage() for r in caplog.records if "are not read" in r.getMessage()]
    assert len(warning) == 1
    assert warning[0].startswith("--train_file_dir: 7 file(s) are not read, their type is not supported: "
                                 + ", ".join(str(root / n) for n in names[:5]) + " and 2 more.")
    assert ".hidden.csv" not in warning[0]
    caplog.clear()
    with caplog.at_level("WARNING"):  # find_files (the list only) reports them too
        assert [f.path for f in find_files(str(root))] == [good]
    assert "7 file(s) are not read" in caplog.text
    # a directory of unsupported files only: the error names what it found
    only = tmp_path / "only"
    touch(only / "x.csv")
    with pytest.raises(DataError, match=r"no supported data file under .*only .*found 1 file\(s\) of other types: "
                                        r"x\.csv"):
        scan_inputs(str(only))


def test_symbolic_link_loops_and_broken_links_are_errors_naming_them(tmp_path, caplog):
    root = tmp_path / "data"
    touch(root / "a.txt")
    touch(root / "sub" / "b.txt")
    os.symlink("loop.txt", root / "sub" / "loop.txt")  # a link to itself: ELOOP
    with pytest.raises(DataError, match=re.escape(f"--train_file_dir: cannot read the file {root / 'sub' / 'loop.txt'}: "
                                                  "a symbolic link loop (ELOOP)")):
        find_files(str(root))
    # with skip_bad: skipped, counted, named in the summary; the rest is read
    skipped = SkipCounter()
    scan = scan_inputs(str(root), skip_bad=True, skipped=skipped)
    assert [f.relpath for f in scan.files] == ["a.txt", "sub/b.txt"]
    assert skipped.to_dict() == {"unreadable_path": 1} and scan.skipped.to_dict() == {"unreadable_path": 1}
    assert scan.unreadable == [str(root / "sub" / "loop.txt")]
    os.remove(root / "sub" / "loop.txt")
    os.symlink(str(tmp_path / "gone.jsonl"), root / "sub" / "c.jsonl")
    with pytest.raises(DataError, match=re.escape(f"cannot read the file {root / 'sub' / 'c.jsonl'}: a broken "
                                                  f"symbolic link (to {tmp_path / 'gone.jsonl'}")):
        find_files(str(root))
    os.remove(root / "sub" / "c.jsonl")
    # a given path that is a link loop is named as one, not as missing
    os.symlink("self", tmp_path / "self")
    with pytest.raises(DataError, match=re.escape(f"cannot read the path {tmp_path / 'self'}: a symbolic link loop")):
        find_files(str(tmp_path / "self"))
    # links to directories are followed; one leading back to a directory being searched is searched once
    touch(tmp_path / "elsewhere" / "e.txt")
    os.symlink(str(tmp_path / "elsewhere"), root / "linked")
    os.symlink(str(root), root / "sub" / "up")
    with caplog.at_level("WARNING"):
        found = find_files(str(root))
    assert [f.relpath for f in found] == ["a.txt", "linked/e.txt", "sub/b.txt"]
    assert f"{root / 'sub' / 'up'} is a link back to {root}, which is being searched" in caplog.text


def test_an_unreadable_directory_or_file_is_an_error_naming_it(tmp_path, monkeypatch):
    """chmod 000 does not stop root (the tests run as root here): the permission errors are raised by
    stand-ins for os.scandir and open, as the kernel would raise them."""
    root = tmp_path / "data"
    touch(root / "a.txt")
    touch(root / "locked" / "b.txt")
    touch(root / "c.txt")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.basename(str(path)) == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match=re.escape(f"cannot read the directory {root / 'locked'}: permission denied")):
        find_files(str(root))
    scan = scan_inputs(str(root), skip_bad=True)
    assert [f.relpath for f in scan.files] == ["a.txt", "c.txt"]
    assert scan.skipped.to_dict() == {"unreadable_path": 1} and scan.unreadable == [str(root / "locked")]
    monkeypatch.setattr(os, "scandir", real_scandir)

    def fake_open(path, *a, **k):
        if str(path).endswith("c.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *a, **k)

    monkeypatch.setattr(sources, "open", fake_open, raising=False)
    with pytest.raises(DataError, match=re.escape(f"cannot read the file {root / 'c.txt'}: permission denied")):
        find_files(str(root))
    with pytest.raises(DataError, match=re.escape(f"cannot read the file {root / 'c.txt'}: permission denied")):
        find_files(str(root / "c.txt"))
    assert [f.relpath for f in find_files(str(root), skip_bad=True)] == ["a.txt", "locked/b.txt"]
    # nothing readable at all: an error even when skipping
    with pytest.raises(DataError, match=r"no readable data file \(skipped as unreadable: .*c\.txt"):
        find_files(str(root / "c.txt"), skip_bad=True)


def _gz(data):
    return gzip.compress(data)


def _zst(data):
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


TEXT = "line one\nline two é\nline three\n"
JSONL = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in ["first", "second é", "third"])

# name -> (file name, bytes, reason, message regex)
FILE_CASES = {
    "utf16_bom_txt": ("a.txt", TEXT.encode("utf-16"), "not_utf8_file",
                      r"the file is UTF-16 \(little-endian\) text \(it starts with the byte-order mark ff fe\), not "
                      r"UTF-8: convert it: iconv -f UTF-16 -t UTF-8 .*a\.txt > .*a\.txt\.utf8"),
    "utf16_be_bom_jsonl": ("a.jsonl", b"\xfe\xff" + JSONL.encode("utf-16-be"), "not_utf8_file",
                           r"the file is UTF-16 \(big-endian\) text .*iconv -f UTF-16 -t UTF-8"),
    "utf32_bom": ("a.txt", TEXT.encode("utf-32"), "not_utf8_file",
                  r"the file is UTF-32 \(little-endian\) text \(it starts with the byte-order mark ff fe 00 00\).*iconv -f UTF-32"),
    "utf16_no_bom": ("a.jsonl", JSONL.encode("utf-16-le"), "not_utf8_file",
                     r"the file is UTF-16 \(little-endian\) text without a byte-order mark.*iconv -f UTF-16LE -t UTF-8"),
    "binary": ("a.txt", bytes(range(256)) * 8, "not_utf8_file", r"the file is binary data or UTF-16/UTF-32 text"),
    "utf16_in_gz": ("a.txt.gz", _gz(TEXT.encode("utf-16")), "not_utf8_file",
                    r"the file is UTF-16 \(little-endian\) text .*decompress it and convert it to UTF-8"),
    "utf16_in_zst": ("a.jsonl.zst", _zst(JSONL.encode("utf-16")), "not_utf8_file", r"the file is UTF-16 \(little-endian\)"),
    "fake_zst": ("a.jsonl.zst", JSONL.encode(), "bad_compression",
                 r"not a zstd file: its name ends in \.zst, but it starts with the bytes 7b 22 74 65\. Rename it"),
    "fake_gz": ("a.txt.gz", TEXT.encode(), "bad_compression",
                r"not a gzip file: its name ends in \.gz, but it starts with the bytes 6c 69 6e 65"),
    "zst_of_gz": ("a.txt.zst", _gz(TEXT.encode()), "bad_compression", r"not a zstd file"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_a_file_that_is_not_what_its_name_says_is_an_error_naming_it(tmp_path, case):
    name, data, reason, message = FILE_CASES[case]
    path = touch(tmp_path / name, data)
    with pytest.raises(DataError, match=re.escape(path) + r": " + message) as e:
        read_path(path)
    assert f"with --skip_bad_lines the whole file is skipped and counted as {reason}" in str(e.value)


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_a_file_that_is_not_what_its_name_says_is_skipped_whole_and_counted_once(tmp_path, case):
    name, data, reason, _ = FILE_CASES[case]
    path = touch(tmp_path / name, data)
    good = touch(tmp_path / "z.txt", b"fine\n")
    # small units: a split file is still counted once, and none of its parts is read
    pairs, skipped = read_units(plan_units(find_files([path, good]), 16), skip_bad=True)
    assert texts_of(pairs) == ["fine"]
    assert skipped.to_dict() == {reason: 1}


def test_a_damaged_zstd_file_is_an_error_not_a_traceback(tmp_path):
    good = _zst(JSONL.encode() * 50)
    path = touch(tmp_path / "a.jsonl.zst", good[:8] + bytes(200) + good[208:])
    with pytest.raises(DataError, match=re.escape(path) + r": cannot read the file \(ZstdError"):
        read_path(path)


def test_nul_bytes_in_a_line_are_never_text(tmp_path):
    """NUL bytes after the first KB (the file-level check reads only that): the line is bad input."""
    data = b"".join(b"line %d\n" % i for i in range(200)) + b"bad\x00line\nlast\n"
    path = touch(tmp_path / "a.txt", data)
    with pytest.raises(DataError, match=re.escape(f"{path}:201: NUL bytes in the line")):
        read_path(path)
    pairs, skipped = read_path(path, skip_bad=True)
    assert len(pairs) == 201 and texts_of(pairs)[-1] == "last" and all("\x00" not in t for t in texts_of(pairs))
    assert skipped.to_dict() == {"nul_bytes": 1}


# ---------------------------------------------------------------------------------------------------
# reading every format
# ---------------------------------------------------------------------------------------------------
DOCS = ["Fever and cough for three days.", "高血压患者应定期监测血压。", "Take 500 mg \"aspirin\" twice\tdaily.",
        "糖尿病 (diabetes) ✓ — HbA1c < 7%"]


def test_read_txt_one_document_per_line_empty_lines_counted(tmp_path):
    content = "\ufeff" + DOCS[0] + "\n\n" + DOCS[1] + "\r\n   \n" + DOCS[2] + "\n\t\n" + DOCS[3]  # no final \n
    p = write_text(tmp_path / "a.txt", content)
    pairs, skipped = read_path(p)
    assert texts_of(pairs) == DOCS
    assert skipped.counts == {"empty_line": 3}
    data = open(p, "rb").read()
    offs = line_offsets(data)
    assert [k for k, _ in pairs] == [offs[0], offs[2], offs[4], offs[6]]  # keys: byte offsets of the lines


def test_read_txt_empty_lines_are_not_errors_without_skip_bad(tmp_path):
    p = write_text(tmp_path / "a.txt", "\n\none\n\n")
    pairs, skipped = read_path(p, skip_bad=False)
    assert texts_of(pairs) == ["one"] and skipped.counts == {"empty_line": 3}


def test_read_jsonl(tmp_path):
    p = write_jsonl(tmp_path / "a.jsonl", DOCS)
    pairs, skipped = read_path(p)
    assert texts_of(pairs) == DOCS and skipped.total == 0
    assert [k for k, _ in pairs] == line_offsets(open(p, "rb").read())


def test_read_jsonl_other_text_field_and_empty_texts(tmp_path):
    p = tmp_path / "a.jsonl"
    rows = [{"content": DOCS[0], "text": "no"}, {"content": ""}, {"content": None}, {"content": DOCS[1]}]
    write_text(p, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pairs, skipped = read_path(p, text_field="content")
    assert texts_of(pairs) == [DOCS[0], DOCS[1]]
    assert skipped.counts == {"empty_text": 2}


def test_read_json_array(tmp_path):
    p = write_text(tmp_path / "a.json", json.dumps([{"text": t, "id": i} for i, t in enumerate(DOCS)],
                                                   ensure_ascii=False, indent=2))
    pairs, skipped = read_path(p)
    assert pairs == list(enumerate(DOCS))  # keys: row numbers
    assert skipped.total == 0
    # after whitespace
    q = write_text(tmp_path / "b.json", "\n  " + json.dumps([{"text": t} for t in DOCS]))
    assert read_path(q)[0] == list(enumerate(DOCS))


# Regression (this was a bug): sources.RecordReader._is_json_array only recognises a file starting with '[', so
# the {"data": [...]} layout that _json_array unwraps is never reached: the file is read as JSON lines and fails
def test_read_json_object_with_data_array(tmp_path):
    p = write_text(tmp_path / "a.json", json.dumps({"data": [{"text": t} for t in DOCS]}, indent=2))
    assert texts_of(read_path(p)[0]) == DOCS


# Regression (this was a bug): sources.RecordReader._is_json_array (an intermediate version) parses only the
# first 64 KiB: a .json of JSON lines whose first record is longer is taken for one JSON document and fails with
# ':2: malformed JSON (Extra data ...)'
def test_read_json_lines_with_a_long_first_record(tmp_path):
    texts = ["long article " * 8000, "second"]  # first line ~104 KB
    p = write_jsonl(tmp_path / "a.json", texts)
    assert texts_of(read_path(p)[0]) == texts


# Regression (this was a bug): sources.RecordReader._is_json_array (an intermediate version) takes a .json of
# JSON lines whose first line is malformed for one JSON document, so --skip_bad_lines cannot skip that line: the
# whole file fails
def test_read_json_lines_with_a_malformed_first_line_skipped(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(b'{"text": "broken\n' + _jsonl_bytes(DOCS))
    with pytest.raises(DataError, match=where(p, 1) + "malformed JSON"):
        read_path(p)
    pairs, skipped = read_path(p, skip_bad=True)
    assert texts_of(pairs) == DOCS and skipped.counts == {"malformed_json": 1}


def test_read_jsonl_and_txt_with_bom(tmp_path):
    p = write_text(tmp_path / "a.jsonl", "\ufeff" + json.dumps({"text": "a"}) + "\n")
    assert read_path(p)[0] == [(0, "a")]


# Regression (this was a bug): sources.RecordReader._json_array decodes with 'utf-8', not 'utf-8-sig': a JSON
# array file starting with a BOM (detected as an array because _is_json_array strips the BOM) fails with
# 'malformed JSON (Unexpected UTF-8 BOM ...)'
def test_read_json_array_with_bom(tmp_path):
    p = write_text(tmp_path / "a.json", "\ufeff" + json.dumps([{"text": t} for t in DOCS]))
    assert read_path(p)[0] == list(enumerate(DOCS))


def test_read_json_as_json_lines(tmp_path):
    p = write_jsonl(tmp_path / "a.json", DOCS)
    [f] = find_files(p)
    assert f.fmt == "json"
    pairs, _ = read_path(p)
    assert texts_of(pairs) == DOCS
    assert [k for k, _ in pairs] == line_offsets(open(p, "rb").read())
    # a .json of JSON lines is never cut into byte ranges (it might be an array)
    assert len(plan_units(find_files(p), target_bytes=16)) == 1


def _jsonl_bytes(texts):
    return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode("utf-8")


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.json.gz", "a.txt.gz", "a.jsonl.zst", "a.json.zst", "a.txt.zst"])
def test_read_compressed(tmp_path, name):
    if name.startswith("a.txt"):
        raw = ("\n".join(DOCS[:2]) + "\n\n" + "\n".join(DOCS[2:]) + "\n").encode("utf-8")
    else:
        raw = _jsonl_bytes(DOCS[:2]) + b"\n" + _jsonl_bytes(DOCS[2:])
    p = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(p, "wb") as fh:
            fh.write(raw)
    else:
        import zstandard
        # two frames: the reader reads across frames
        c = zstandard.ZstdCompressor()
        p.write_bytes(c.compress(raw[:40]) + c.compress(raw[40:]))
    [f] = find_files(str(p))
    assert f.compression == name.rsplit(".", 1)[1] and not f.splittable
    assert len(plan_units([f], target_bytes=8)) == 1  # compressed files are never split
    pairs, skipped = read_path(p, target_bytes=8)
    assert texts_of(pairs) == DOCS
    assert [k for k, _ in pairs] == [0, 1, 3, 4]  # keys: 0-based line numbers
    assert skipped.counts == {"empty_line": 1}


# Regression (this was a bug): sources.SUFFIXES maps .json.gz/.json.zst to 'jsonl', so a compressed JSON array
# (a supported layout for .json) is read as JSON lines and fails on its first line
@pytest.mark.parametrize("name", ["a.json.gz", "a.json.zst"])
def test_read_compressed_json_array(tmp_path, name):
    raw = json.dumps([{"text": t} for t in DOCS], ensure_ascii=False, indent=1).encode("utf-8")
    p = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(p, "wb") as fh:
            fh.write(raw)
    else:
        import zstandard
        p.write_bytes(zstandard.ZstdCompressor().compress(raw))
    assert texts_of(read_path(p)[0]) == DOCS


def test_read_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    texts = DOCS + [None, "", "last"]
    table = pa.table({"id": list(range(len(texts))), "text": texts})
    p = str(tmp_path / "a.parquet")
    pq.write_table(table, p, row_group_size=3)
    pairs, skipped = read_path(p)
    assert pairs == [(0, DOCS[0]), (1, DOCS[1]), (2, DOCS[2]), (3, DOCS[3]), (6, "last")]  # keys: rows
    assert skipped.counts == {"empty_text": 2}
    with pytest.raises(DataError, match=re.escape(p) + r": no column 'body'"):
        read_path(p, text_field="body")


def test_read_parquet_not_a_string_and_too_long(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = str(tmp_path / "n.parquet")
    pq.write_table(pa.table({"text": [1, 2]}), p)
    with pytest.raises(DataError, match=re.escape(p) + r": row 1: field 'text' is int"):
        read_path(p)
    q = str(tmp_path / "l.parquet")
    pq.write_table(pa.table({"text": ["ok", "x" * 50, "fine"]}), q)
    with pytest.raises(DataError, match=re.escape(q) + r": row 2: document of 50 characters"):
        read_path(q, max_chars=10)
    pairs, skipped = read_path(q, max_chars=10, skip_bad=True)
    assert texts_of(pairs) == ["ok", "fine"] and skipped.counts == {"too_long": 1}


# ---------------------------------------------------------------------------------------------------
# byte-range units
# ---------------------------------------------------------------------------------------------------
def _mixed_lines(n=40, seed=0):
    rng = random.Random(seed)
    zh = "高血压患者应定期监测血压糖尿病心肌梗死诊断治疗"
    lines = []
    for i in range(n):
        r = i % 5
        if r == 0:
            lines.append("".join(rng.choice(zh) for _ in range(rng.randint(1, 12))))
        elif r == 1:
            lines.append(f"line {i}: " + " ".join("word" * rng.randint(1, 3) for _ in range(rng.randint(1, 6))))
        elif r == 2:
            lines.append("")  # an empty line
        elif r == 3:
            lines.append("混合 mixed 文本 " + "✓" * rng.randint(1, 4) + f" {i}")
        else:
            lines.append("é" * rng.randint(1, 5) + f" {i}")
    return lines


def _write_split_corpus(tmp_path, fmt):
    lines = _mixed_lines()
    if fmt == "txt":
        data = "\n".join(lines).encode("utf-8")  # no final newline
    else:
        data = "".join((json.dumps({"text": t}, ensure_ascii=False) if t else "") + "\n"
                       for t in lines).encode("utf-8")
    p = tmp_path / f"big.{fmt}"
    p.write_bytes(data)
    return str(p), data


def _cut_kinds(data: bytes, cuts):
    kinds = set()
    for c in cuts:
        if 0 < c < len(data):
            if data[c] & 0xC0 == 0x80:
                kinds.add("mid_char")
            if data[c - 1:c] == b"\n":
                kinds.add("line_start")   # the cut falls exactly after a newline
            if data[c:c + 1] == b"\n":
                kinds.add("at_newline")   # the cut falls exactly on a newline
    return kinds


TARGETS = [1, 2, 3, 5, 7, 10, 16, 31, 64, 100, 333, 1000]


@pytest.mark.parametrize("fmt", ["txt", "jsonl"])
def test_split_targets_cut_mid_character_and_at_newlines(tmp_path, fmt):
    """The parametrized target sizes below do produce cuts inside multi-byte characters and exactly at
    line boundaries, for both corpora."""
    _, data = _write_split_corpus(tmp_path, fmt)
    kinds = set()
    for t in TARGETS:
        [f] = find_files(str(tmp_path / f"big.{fmt}"))
        kinds |= _cut_kinds(data, [u.start for u in plan_units([f], t)])
    assert {"mid_char", "line_start", "at_newline"} <= kinds


@pytest.mark.parametrize("fmt", ["txt", "jsonl"])
@pytest.mark.parametrize("target", TARGETS)
def test_plan_units_byte_ranges_read_every_line_once(tmp_path, fmt, target):
    p, data = _write_split_corpus(tmp_path, fmt)
    files = find_files(p)
    whole, whole_skipped = read_units([WorkUnit(files[0])])
    assert len(whole) == 32 and whole_skipped.counts == {"empty_line": 8}
    units = plan_units(files, target_bytes=target)
    if target < len(data):
        assert len(units) > 1
        assert all(u.nbytes <= target for u in units)
    # the units tile the file
    assert units[0].start == 0
    assert all(a.end == b.start for a, b in zip(units, units[1:]))
    assert (units[-1].end if units[-1].end is not None else len(data)) == len(data)
    parts, skipped = read_units(units)
    assert parts == whole  # same texts, same keys, same order: every line exactly once
    assert skipped.counts == whole_skipped.counts


@pytest.mark.parametrize("fmt", ["txt", "jsonl"])
def test_every_two_way_cut_reads_every_line_once(tmp_path, fmt):
    """Cut the file in two at every byte position (mid-character, on and after newlines)."""
    p, data = _write_split_corpus(tmp_path, fmt)
    [f] = find_files(p)
    whole, _ = read_units([WorkUnit(f)])
    for c in range(1, len(data)):
        a, _ = read_units([WorkUnit(f, 0, c)])
        b, _ = read_units([WorkUnit(f, c, len(data))])
        assert a + b == whole, f"cut at byte {c}"


def test_plan_units_min_units_and_whole_units(tmp_path):
    big = write_jsonl(tmp_path / "d" / "a.jsonl", [f"document number {i}" for i in range(100)])
    small = write_text(tmp_path / "d" / "b.txt", "tiny\n")
    files = find_files(str(tmp_path / "d"))
    units = plan_units(files)  # default target: everything whole
    assert [(u.start, u.end) for u in units] == [(0, None), (0, None)]
    assert units[0].describe() == "a.jsonl"
    units = plan_units(files, min_units=4)
    assert len(units) >= 4 and units[-1].file.path == os.path.abspath(small)
    assert "a.jsonl[" in units[0].describe()
    pairs, _ = read_units(units)
    assert texts_of(pairs) == [f"document number {i}" for i in range(100)] + ["tiny"]
    assert os.path.getsize(big) == sum(u.nbytes for u in units if u.file.relpath == "a.jsonl")


# ---------------------------------------------------------------------------------------------------
# bad input: errors name the file and the 1-based line; skip_bad counts by reason
# ---------------------------------------------------------------------------------------------------
GOOD = ["first good line", "second good line", "third good line", "fourth good line"]

# name -> (file name, content bytes, bad line number, reason, message regex, kwargs)
BAD_CASES = {
    "malformed_json": ("a.jsonl",
                       _jsonl_bytes(GOOD[:2]) + b'{"text": "unterminated\n' + _jsonl_bytes(GOOD[2:]),
                       3, "malformed_json", r"malformed JSON", {}),
    "missing_field": ("a.jsonl",
                      _jsonl_bytes(GOOD[:1]) + b'{"body": "no text here", "id": 7}\n' + _jsonl_bytes(GOOD[1:]),
                      2, "missing_field", r"missing field 'text' \(fields: body, id", {}),
    "not_a_string": ("a.jsonl",
                     _jsonl_bytes(GOOD[:3]) + b'{"text": 42}\n' + _jsonl_bytes(GOOD[3:]),
                     4, "not_a_string", r"field 'text' is int, not a string", {}),
    "not_a_string_list": ("a.jsonl",
                          b'{"text": ["a", "b"]}\n' + _jsonl_bytes(GOOD),
                          1, "not_a_string", r"field 'text' is list, not a string", {}),
    "bad_utf8_jsonl": ("a.jsonl",
                       _jsonl_bytes(GOOD[:2]) + b'{"text": "caf\xe9 \xff"}\n' + _jsonl_bytes(GOOD[2:]),
                       3, "bad_utf8", r"invalid UTF-8 at byte 13 of the line", {}),
    "bad_utf8_txt": ("a.txt",
                     ("\n".join(GOOD[:2]) + "\n\n").encode() + b"\xe9\xab\x98 truncated \xe8\xa1\n"
                     + "\n".join(GOOD[2:]).encode(),
                     4, "bad_utf8", r"invalid UTF-8 at byte 14 of the line", {}),
    "too_long_jsonl": ("a.jsonl",
                       _jsonl_bytes(GOOD[:1]) + _jsonl_bytes(["x" * 50]) + _jsonl_bytes(GOOD[1:]),
                       2, "too_long", r"document of 50 characters is over --max_document_chars 20",
                       {"max_chars": 20}),
    "too_long_txt": ("a.txt",
                     ("\n".join(GOOD[:3]) + "\n" + "长" * 21 + "\n" + GOOD[3]).encode(),
                     4, "too_long", r"document of 21 characters is over --max_document_chars 20",
                     {"max_chars": 20}),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_line_error_names_file_and_line(tmp_path, case):
    name, content, line, reason, msg, kw = BAD_CASES[case]
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=where(p, line) + msg) as e:
        read_path(p, **kw)
    assert "--skip_bad_lines" in str(e.value)


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_line_skipped_and_counted(tmp_path, case):
    name, content, line, reason, msg, kw = BAD_CASES[case]
    p = tmp_path / name
    p.write_bytes(content)
    pairs, skipped = read_path(p, skip_bad=True, **kw)
    assert texts_of(pairs) == GOOD
    expected = {reason: 1}
    if case == "bad_utf8_txt":
        expected["empty_line"] = 1
    assert skipped.counts == expected
    assert skipped.examples == [f"{reason}: {os.path.abspath(str(p))}:{line}"]


def test_non_object_json_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(_jsonl_bytes(GOOD[:1]) + b'"just a string"\n' + _jsonl_bytes(GOOD[1:]))
    with pytest.raises(DataError, match=where(p, 2) + "expected a JSON object"):
        read_path(p)
    pairs, skipped = read_path(p, skip_bad=True)
    assert texts_of(pairs) == GOOD and skipped.counts == {"not_an_object": 1}


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.txt", "empty.json", "empty.parquet"])
def test_empty_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    with pytest.raises(DataError, match=re.escape(str(p)) + r": file is empty"):
        read_path(p)
    pairs, skipped = read_path(p, skip_bad=True)
    assert pairs == [] and skipped.counts == {"empty_file": 1}


# Regression (this was a bug): RecordReader.__iter__ tests f.size == 0, the compressed size: an empty
# .jsonl.gz/.jsonl.zst is neither an error nor counted as empty_file
@pytest.mark.parametrize("name", ["empty.jsonl.gz", "empty.jsonl.zst"])
def test_empty_compressed_file(tmp_path, name):
    p = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(p, "wb"):
            pass
    else:
        import zstandard
        p.write_bytes(zstandard.ZstdCompressor().compress(b""))
    assert os.path.getsize(p) > 0
    with pytest.raises(DataError, match=re.escape(str(p)) + r": file is empty"):
        read_path(p)
    pairs, skipped = read_path(p, skip_bad=True)
    assert pairs == [] and skipped.counts == {"empty_file": 1}


# Regression (this was a bug): RecordReader._bad computes the line number (sources._line_number rereads the file
# from byte 0 up to the line) for every bad line, even when skipping it and no longer keeping examples: skipping
# N bad lines in a big file costs O(N * file size)
def test_skipping_many_bad_lines_does_not_reread_the_file_each_time(tmp_path, monkeypatch):
    import medtrain.data.sources as sources

    p = tmp_path / "dirty.jsonl"
    p.write_bytes(b"".join(_jsonl_bytes([f"good {i}"]) + b"{broken %d\n" % i for i in range(500)))
    calls = []
    real = sources._line_number
    monkeypatch.setattr(sources, "_line_number", lambda path, offset: calls.append(offset) or real(path, offset))
    pairs, skipped = read_path(p, skip_bad=True)
    assert len(pairs) == 500 and skipped.counts == {"malformed_json": 500}
    assert len(skipped.examples) == 20 and skipped.examples[0] == f"malformed_json: {os.path.abspath(str(p))}:2"
    # at most one rescan per kept example, not one per skipped line
    assert len(calls) <= len(skipped.examples)


def test_several_bad_lines_all_counted(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"{bad\n" + _jsonl_bytes(GOOD[:2]) + b"\n" + b'{"x": 1}\n{"text": null}\n'
                  + b'{"text": 3.5}\n' + b"\xff\n[1, 2\n" + _jsonl_bytes(GOOD[2:]) + b'{"text": "' + b"y" * 30 + b'"}')
    with pytest.raises(DataError, match=where(p, 1) + "malformed JSON"):
        read_path(p)
    pairs, skipped = read_path(p, skip_bad=True, max_chars=25)
    assert texts_of(pairs) == GOOD
    assert skipped.counts == {"malformed_json": 2, "empty_line": 1, "missing_field": 1, "empty_text": 1,
                              "not_a_string": 1, "bad_utf8": 1, "too_long": 1}
    assert skipped.to_dict() == dict(sorted(skipped.counts.items()))


def test_compressed_bad_line_names_line(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(_jsonl_bytes(GOOD[:1]) + b"\n" + b'{"text": oops}\n' + _jsonl_bytes(GOOD[1:]))
    with pytest.raises(DataError, match=where(p, 3) + "malformed JSON"):
        read_path(p)
    pairs, skipped = read_path(p, skip_bad=True)
    assert texts_of(pairs) == GOOD and skipped.counts == {"empty_line": 1, "malformed_json": 1}


def test_json_array_bad_records_name_the_row(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps([{"text": "a"}, {"body": "b"}, {"text": 5}, "str", {"text": "c"}]))
    with pytest.raises(DataError, match=re.escape(str(p)) + r": row 2: missing field 'text'"):
        read_path(p)
    pairs, skipped = read_path(p, skip_bad=True)
    assert pairs == [(0, "a"), (4, "c")]
    assert skipped.counts == {"missing_field": 1, "not_a_string": 1, "not_an_object": 1}
    q = tmp_path / "b.json"
    q.write_text('[\n  {"text": "a"},\n  {"text": "b",}\n]')
    with pytest.raises(DataError, match=re.escape(str(q)) + r":3: malformed JSON"):
        read_path(q)


def _numbered_jsonl(tmp_path, n, bad_line, bad_bytes):
    lines = [json.dumps({"text": f"文档 document number {i:03d}"}, ensure_ascii=False).encode() + b"\n"
             for i in range(1, n + 1)]
    lines[bad_line - 1] = bad_bytes + b"\n"
    p = tmp_path / "many.jsonl"
    p.write_bytes(b"".join(lines))
    return p, sum(len(x) for x in lines[:bad_line - 1])


@pytest.mark.parametrize("bad_bytes,reason", [(b'{"text": "broken', "malformed_json"),
                                              (b'{"text": "\xc3\x28"}', "bad_utf8"),
                                              (b'{"title": "t"}', "missing_field")])
def test_unit_starting_mid_file_reports_absolute_line(tmp_path, bad_bytes, reason):
    p, bad_offset = _numbered_jsonl(tmp_path, 100, 57, bad_bytes)
    units = plan_units(find_files(str(p)), target_bytes=300)
    [unit] = [u for u in units if u.start <= bad_offset < u.end]
    assert unit.start > 0 and units.index(unit) > 0
    with pytest.raises(DataError, match=where(p, 57)):
        list(RecordReader(unit))
    # no other unit sees the bad line
    for u in units:
        if u is not unit:
            list(RecordReader(u))
    skipped = SkipCounter()
    pairs = list(RecordReader(unit, skip_bad=True, skipped=skipped))
    assert skipped.counts == {reason: 1}
    assert skipped.examples == [f"{reason}: {os.path.abspath(str(p))}:57"]
    assert "document number 057" not in "".join(texts_of(pairs))
    assert pairs  # the unit's good lines are still read


def test_unit_starting_mid_file_too_long_txt(tmp_path):
    lines = [f"line {i} " + "词" * (i % 7) for i in range(1, 201)]
    lines[149] = "z" * 500
    p = tmp_path / "t.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    units = plan_units(find_files(str(p)), target_bytes=512)
    assert len(units) > 4
    with pytest.raises(DataError, match=where(p, 150) + "document of 500 characters"):
        read_units(units[1:], max_chars=100)
    pairs, skipped = read_units(units[1:], max_chars=100, skip_bad=True)
    assert skipped.counts == {"too_long": 1}


# ---------------------------------------------------------------------------------------------------
# a 100 MB line
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def huge_line_file(tmp_path):
    p = tmp_path / "huge.txt"
    chunk = ("pain fever 发热 " * 65536).encode("utf-8")  # ~1.2 MB: 18 bytes, 14 characters per repeat
    n_chunks = -(-100_000_000 // len(chunk))
    with open(p, "wb") as fh:
        for _ in range(n_chunks):
            fh.write(chunk)
        fh.write(b"\na normal line after it\n")
    yield p, n_chunks * len(chunk.decode("utf-8"))
    os.remove(p)


def test_100mb_line_is_too_long_error_or_skip(huge_line_file):
    p, n_chars = huge_line_file
    assert os.path.getsize(p) > 100_000_000
    with pytest.raises(DataError, match=where(p, 1) + re.escape(f"document of {n_chars:,} characters is over "
                                                               "--max_document_chars 1,000,000")):
        read_path(p, max_chars=1_000_000)
    pairs, skipped = read_path(p, max_chars=1_000_000, skip_bad=True)
    assert texts_of(pairs) == ["a normal line after it"]
    assert skipped.counts == {"too_long": 1}
    assert skipped.examples == [f"too_long: {os.path.abspath(str(p))}:1"]


# ---------------------------------------------------------------------------------------------------
# SkipCounter
# ---------------------------------------------------------------------------------------------------
def test_skip_counter_merge_and_examples():
    a, b = SkipCounter(), SkipCounter()
    for i in range(15):
        a.add("bad_utf8", f"f:{i}")
    b.add("bad_utf8", "g:1", n=2)
    b.add("malformed_json")
    for i in range(10):
        b.add("too_long", f"g:{i}")
    a.merge(b)
    assert a.counts == {"bad_utf8": 17, "malformed_json": 1, "too_long": 10}
    assert a.total == 28 and len(a.examples) == 20
    a.merge({"counts": {"too_long": 1}})
    a.merge({"empty_file": 2})
    assert a.to_dict() == {"bad_utf8": 17, "empty_file": 2, "malformed_json": 1, "too_long": 11}


# ---------------------------------------------------------------------------------------------------
# split_text
# ---------------------------------------------------------------------------------------------------
def _check_pieces(text, pieces, piece_chars):
    assert "".join(pieces) == text
    assert all(0 < len(p) <= piece_chars for p in pieces)


def test_split_text_short_text_is_one_piece():
    assert split_text("", 10) == [""]
    assert split_text("exactly10!", 10) == ["exactly10!"]
    assert split_text("a b", 1 << 20) == ["a b"]


@pytest.mark.parametrize("piece_chars", [20, 37, 100, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_split_text_cuts_before_whitespace(piece_chars, seed):
    rng = random.Random(seed)
    seps = [" ", "\n", "\t", "  ", "\u3000"]
    # split_text looks back piece_chars // 10 characters for a whitespace; with words of at most
    # piece_chars // 10 - 1 letters every such window holds one, so every cut can be made before one
    longest = piece_chars // 10 - 1
    words = ["".join(rng.choice("abcdefg高血压") for _ in range(rng.randint(1, longest))) for _ in range(3000)]
    text = "".join(w + rng.choice(seps[:1] if longest == 1 else seps) for w in words)
    pieces = split_text(text, piece_chars)
    _check_pieces(text, pieces, piece_chars)
    assert len(pieces) >= len(text) // piece_chars
    for p in pieces[1:]:
        assert p[0].isspace(), f"piece {p[:20]!r} does not start at a whitespace"
    # and the cut is near the end of the piece (looks back at most a tenth of it)
    for p in pieces[:-1]:
        assert len(p) >= piece_chars - piece_chars // 10


def test_split_text_without_whitespace_is_still_cut():
    text = "高血压患者应定期监测血压" * 1000  # 12,000 characters, no whitespace
    pieces = split_text(text, 1000)
    _check_pieces(text, pieces, 1000)
    assert [len(p) for p in pieces] == [1000] * 12
    odd = "x" * 2501
    assert [len(p) for p in split_text(odd, 1000)] == [1000, 1000, 501]


def test_split_text_whitespace_far_back_is_not_used():
    """Whitespace only far before the limit (more than a tenth of a piece back): a hard cut."""
    text = "a " + "b" * 2000
    pieces = split_text(text, 100)
    _check_pieces(text, pieces, 100)
    assert [len(p) for p in pieces[:-1]] == [100] * (len(pieces) - 1)


def test_split_text_large_default_piece():
    text = ("word " * 500_000)  # 2.5 M characters
    pieces = split_text(text)
    _check_pieces(text, pieces, 1 << 20)
    assert len(pieces) == 3
    assert all(p[0] == " " for p in pieces[1:])


def test_truncated_gzip_is_a_data_error_naming_the_file(tmp_path):
    import gzip as _gzip

    p = tmp_path / "a.jsonl.gz"
    with _gzip.open(p, "wb") as fh:
        fh.write(b"".join(b'{"text": "line %d"}\n' % i for i in range(5000)))
    p.write_bytes(p.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"a\.jsonl\.gz: cannot read the file"):
        list(RecordReader(plan_units(find_files([str(p)]))[0]))


def test_a_file_given_twice_is_read_once(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("x\n")
    assert len(find_files([str(d), str(d / "a.txt"), str(d) + "/"])) == 1
