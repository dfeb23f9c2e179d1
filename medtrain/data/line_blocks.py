"""Reading line files a block at a time: the fast path of `sources.RecordReader` for .jsonl and .txt.

The per-line reader costs a readline, a decode, a strip and a `json.loads` in Python for every line;
next to a fast tokenizer backend that is a third of a store build. Here a worker reads about 1 MiB of
whole lines at once, splits them with one `bytes.split`, and parses them with one `map` of a compiled
JSON parser (orjson where installed; the standard library's otherwise). A block whose lines are all
blank lines or plain good records (valid UTF-8, no NUL byte, no byte-order mark, a JSON object whose
text field is a string that is neither blank nor over --max_document_chars) is taken whole; any other
block goes line by line through RecordReader's per-line rules, so each bad line is still reported with
its file:line, or counted by reason, exactly as before, a record at a time, so a consumer sees the
records before a bad line first. The fast path changes the speed, never the records: the same keys,
texts, counts and errors (tests/data/test_line_blocks.py compares both paths on damaged files); only
a file that cannot be read on (a truncated .gz) names the bytes read before the last whole block.

Example: the block b'{"text": "Fever."}\\n\\n{"text": "Cough."}\\n' read from byte 100 of a file splits
into the lines [b'{"text": "Fever."}', b'', b'{"text": "Cough."}'] that start at bytes 100, 119 and 120
(each start is the previous one + its length + 1 for the newline); the empty line is counted as
`empty_line` and the records are (100, "Fever.") and (120, "Cough.").

orjson is used for the text of pretraining records only: where it parses a line at all, a string's
value is the same as the standard library's (it refuses what differs, e.g. a lone surrogate escape or
NaN, and the block then goes line by line); whole records (SFT conversations) keep `json.loads`,
because orjson reads integers above 64 bits as floats.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from itertools import accumulate, repeat
from typing import BinaryIO, Iterator, Optional

BLOCK_BYTES = 1 << 20   # bytes read per block (a line longer than this is read whole, across blocks)
FIRST_BLOCK_BYTES = 1 << 16   # a unit's first block, doubling up to BLOCK_BYTES: a reader that wants only
                              # the first few records (the backend's verification sample) reads little
BOM = b"\xef\xbb\xbf"

try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is a dependency; without it the standard library parses
    _fast_loads = None  # blocks (lone surrogates are then looked for separately), more slowly


def lone_surrogate(text: str) -> Optional[int]:
    """The position of the first lone surrogate in `text` (what a "\\ud800" JSON escape without its pair
    decodes to: no character, no tokens), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def _std_loads(line: bytes):
    # decode first: json.loads(bytes) would decode with 'surrogatepass', the per-line reader does not
    return json.loads(line.decode("utf-8"))


def line_blocks(fh: BinaryIO, pos: int, end: float, block_bytes: int = BLOCK_BYTES
                ) -> Iterator[tuple[list[int], list[bytes], bool]]:
    """(starts, lines, has_nul) for the lines of `fh` that start before `end`, a block at a time.

    `fh` is positioned at byte `pos`, the start of a line; `lines` are without their b"\\n" (the last
    line of a file may have none), `starts` their byte offsets, `has_nul` whether the block holds a
    NUL byte. A line that starts before `end` is read whole, wherever it ends (a line belongs to the
    unit that holds its first byte)."""
    pending: list[bytes] = []           # the line being read, when it is longer than a block
    size = min(FIRST_BLOCK_BYTES, block_bytes)
    while pos < end:
        chunk = fh.read(size)
        size = min(2 * size, block_bytes)
        if not chunk:
            if pending:                 # the file's last line, without a newline
                line = b"".join(pending)
                yield [pos], [line], b"\x00" in line
            return
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
        lines = chunk.split(b"\n")
        tail = lines.pop()              # the start of the next block's first line (b"" after a newline)
        pending = [tail] if tail else []
        starts = list(accumulate(map((1).__add__, map(len, lines[:-1])), initial=pos))
        has_nul = b"\x00" in chunk
        pos += len(chunk) - len(tail)
        if pos > end:                   # the unit ends inside this block
            keep = bisect_left(starts, end)
            starts, lines = starts[:keep], lines[:keep]
        yield starts, lines, has_nul


def plain_records(lines: list[bytes], is_json: bool, text_field: Optional[str], max_chars: Optional[int],
                  file_start: bool) -> Optional[tuple[Optional[list[int]], list, int]]:
    """(kept, records, blank) when each line is blank or a plain good record, else None.

    `kept`: the indices of the lines that are records (None: all of them); `blank`: how many lines were
    blank (counted as `empty_line`); `records`: the text of each (str), or the whole JSON object when
    `text_field` is None. `file_start`: the first line is the file's first (where a byte-order mark
    would be). None sends the block through the per-line reader, which reports or counts what is wrong."""
    if file_start and lines and lines[0].startswith(BOM):
        return None
    blank = lines.count(b"") + sum(map(bytes.isspace, lines))   # ASCII-blank lines are blank as text too
    kept = None
    if blank:
        kept = [i for i, line in enumerate(lines) if line and not line.isspace()]
        lines = [lines[i] for i in kept]
    if is_json:
        loads = _fast_loads if text_field is not None and _fast_loads is not None else _std_loads
        try:
            objects = list(map(loads, lines))
        except Exception:               # malformed JSON, invalid UTF-8, a value orjson does not read alike
            return None
        if text_field is None:
            return (kept, objects, blank) if all(type(o) is dict for o in objects) else None
        if not all(type(o) is dict for o in objects):
            return None
        try:
            records = [o[text_field] for o in objects]
        except KeyError:
            return None
        if not all(type(r) is str for r in records):
            return None
        if loads is _std_loads and any(lone_surrogate(r) is not None for r in records):   # orjson refuses them
            return None
    else:
        try:
            records = list(map(bytes.decode, lines))
        except UnicodeDecodeError:
            return None
        if any(map(bytes.endswith, lines, repeat(b"\r"))):
            records = [r.rstrip("\r\n") for r in records]
    if "" in records or any(map(str.isspace, records)):   # blank as text (e.g. U+3000), or an empty text
        return None
    if max_chars is not None and records and max(map(len, records)) > max_chars:
        return None
    return kept, records, blank
