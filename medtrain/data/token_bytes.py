"""Where each token is in a text, from the token ids alone, for byte-level BPE tokenizers.

SFT trains a token when any of its characters is in a trained span (`conversations`). HuggingFace
tokenizers report each token's offsets; the fast backends (`tokenizer_backends`) return ids only. In
a byte-level BPE vocabulary (GPT-2's byte alphabet: Qwen, Llama 3, DeepSeek, gpt-oss, GLM-4, Mistral's
Tekken ...) every token stands for a fixed run of bytes of the text, and an added token for its own
text, so when the tokens' bytes joined are exactly the text's UTF-8 bytes (no normalizer changed the
text), each token covers the run of bytes between the running sums of their lengths, and a token is
in a span of characters when its bytes overlap the span's bytes:

    text  "Fever 发热"      UTF-8  46 65 76 65 72 | 20 e5 8f 91 | e7 83 | ad
    tokens "Fever"  " 发"  "\\xe7\\x83"  "\\xad"   (the last character split over two tokens)
    bytes  [0, 5)  [5, 9)  [9, 11)  [11, 12)
    span of characters [6, 8) ("发热") = bytes [6, 12): tokens 2, 3 and 4 overlap it (token 2 starts
    with the space before it), token 1 does not.

`TokenBytes.of(tokenizer_json)` returns None for a tokenizer that is not byte-level BPE (SentencePiece
with byte fallback, WordPiece, Unigram) or whose offsets HF trims of spaces (a ByteLevel post-processor
with trim_offsets, as GPT-2's) and `byte_ranges` returns None for a text whose tokens do not
join to its bytes (a normalizer such as NFC changed it, a prefix space was added, an added token
stripped the whitespace beside it): the caller then takes the offsets from HuggingFace tokenizers.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

import numpy as np


def byte_alphabet() -> dict[str, int]:
    """The byte-level alphabet's character -> the byte it stands for (GPT-2's mapping: printable
    Latin-1 bytes stand for themselves, the other 68 bytes for U+0100 onwards, in byte order)."""
    kept = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    out = {chr(b): b for b in kept}
    extra = 0
    for b in range(256):
        if b not in out.values():
            out[chr(0x100 + extra)] = b
            extra += 1
    return out


def _parts(component, kind: str) -> list:
    """The parts of type `kind` of a tokenizer.json component (itself, or inside a Sequence)."""
    if not isinstance(component, dict):
        return []
    if component.get("type") == kind:
        return [component]
    inner = component.get("pretokenizers") or component.get("processors") or []
    return [p for part in inner for p in _parts(part, kind)]


class TokenBytes:
    """For each token id, the bytes of text it stands for (None: unknown, e.g. an id with no piece)."""

    def __init__(self, pieces: list):
        self.pieces = pieces
        self.lengths = np.asarray([-1 if p is None else len(p) for p in pieces], dtype=np.int64)

    @classmethod
    def of(cls, tokenizer_json) -> Optional["TokenBytes"]:
        """The table of a byte-level BPE tokenizer (its tokenizer.json, as text or parsed), else None."""
        spec = json.loads(tokenizer_json) if isinstance(tokenizer_json, str) else tokenizer_json
        model = spec.get("model") or {}
        byte_level = _parts(spec.get("pre_tokenizer"), "ByteLevel")
        # every piece is a string of the byte alphabet when the byte-level pre-tokenizer runs; one that adds
        # a space before each text would make every text's tokens differ from its bytes
        if model.get("type") != "BPE" or model.get("byte_fallback") or not byte_level \
                or any(p.get("add_prefix_space") for p in byte_level):
            return None
        # HF trims the spaces at a token's ends from its offsets under this post-processor (GPT-2, GPT-NeoX,
        # StarCoder): a token's place there is HF's, not its bytes
        if any(p.get("trim_offsets") for p in _parts(spec.get("post_processor"), "ByteLevel")):
            return None
        alphabet = byte_alphabet()
        vocab = model.get("vocab") or {}
        added = {t["id"]: t["content"] for t in spec.get("added_tokens") or []}
        size = 1 + max([*vocab.values(), *added.keys(), -1])
        pieces: list = [None] * size
        for token, i in vocab.items():
            try:
                pieces[i] = bytes(alphabet[c] for c in token)
            except KeyError:   # a piece outside the byte alphabet: no bytes known for it
                pieces[i] = None
        for i, content in added.items():
            pieces[i] = content.encode("utf-8")
        return cls(pieces)

    def byte_ranges(self, text: str, ids: Sequence[int]) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(starts, ends): the bytes of `text`'s UTF-8 each token covers, or None when the tokens' bytes
        do not join to exactly the text's (see the module doc)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self.pieces)):
            return None
        lengths = self.lengths[ids]
        if (lengths < 0).any():
            return None
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return None
        pieces = self.pieces
        if int(lengths.sum()) != len(data) or b"".join([pieces[i] for i in ids.tolist()]) != data:
            return None
        ends = np.cumsum(lengths)
        return ends - lengths, ends


def char_to_byte(text: str, positions: Sequence[int]) -> list[int]:
    """The UTF-8 byte offset of each character position of `text` (positions in increasing order)."""
    out, done, at = [], 0, 0
    for p in positions:
        at += len(text[done:p].encode("utf-8"))
        done = p
        out.append(at)
    return out
