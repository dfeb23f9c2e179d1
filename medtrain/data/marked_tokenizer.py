"""Tokenizes a rendered conversation in which a marker begins each trained span, on the spec's tokenizer
backend, and tells which tokens are trained.

The SFT encoder (`conversations`) writes MARKER (a private-use character, added to the tokenizer as a
special token) just before each reply, so no token crosses the start of a reply; the marker's id is
dropped afterwards. A token is trained when any of its characters is in a trained span.

    text  "USER: Hi ASSISTANT:" MARKER " Hello</s>"      span: " Hello</s>"
    ids   [USER, :, ĠHi, ĠASSISTANT, :] [marker] [ĠHello, </s>]
    out   ids [USER, :, ĠHi, ĠASSISTANT, :, ĠHello, </s>], trained [0, 0, 0, 0, 0, 1, 1]

Where each token is comes from the ids alone for a byte-level BPE tokenizer (`token_bytes`), on every
backend (so a fast backend and HuggingFace tokenizers give the same store whenever they give the same
ids), and from HuggingFace tokenizers' offsets otherwise: for a tokenizer that is not byte-level
(SentencePiece with byte fallback: the SFT encoder then keeps HF, see
`ConversationEncoder.with_backend`), and for a text whose tokens do not join to its bytes (a normalizer
changed it), counted as `offsets_from_hf`.

Under a fast backend one text in `tokenizer_backends.RECHECK_EVERY` is encoded again by HF and
compared (`CheckedBackend`, counted as `documents_rechecked_by_hf`); the marker tokenizer is verified
before a build like any other (`tokenizer_backends.select_backend` on `with_marker(...)`).
"""

from __future__ import annotations

import json
import logging
from typing import Optional

import numpy as np

from medtrain.data.token_bytes import TokenBytes, char_to_byte

logger = logging.getLogger(__name__)

MARKER = "\U000F0002"   # inserted at each reply start (then dropped); in no real text
_BUILT: dict = {}       # (tokenizer fingerprint, backend) -> MarkedTokenizer, one per process


def with_marker(tokenizer_json: str) -> tuple[str, int]:
    """The tokenizer.json with MARKER added as a special token, and MARKER's id (see `add_marker`)."""
    spec = json.loads(tokenizer_json)
    marker_id = add_marker(spec)
    return json.dumps(spec, ensure_ascii=False), marker_id


def add_marker(spec: dict) -> int:
    """Adds MARKER to a parsed tokenizer.json as a special token; returns its id: the id HuggingFace
    tokenizers' `add_special_tokens` gives it (the model's vocabulary size, or one past the highest added
    id when added tokens already go beyond it)."""
    added = spec.setdefault("added_tokens", []) or []
    for t in added:
        if t.get("content") == MARKER:
            return t["id"]
    size = len((spec.get("model") or {}).get("vocab") or {})
    top = max((t["id"] for t in added), default=None)
    new_id = size if top is None or top < size else top + 1
    added.append({"id": new_id, "content": MARKER, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": True})
    spec["added_tokens"] = added
    return new_id


def token_text(tokenizer_json: str, token_id: int) -> Optional[str]:
    """The text of one token (an added token's content, or a vocabulary piece as stored)."""
    spec = json.loads(tokenizer_json)
    for t in spec.get("added_tokens") or []:
        if t["id"] == token_id:
            return t["content"]
    vocab = (spec.get("model") or {}).get("vocab") or {}
    if isinstance(vocab, dict):
        return next((k for k, v in vocab.items() if v == token_id), None)
    return vocab[token_id][0] if 0 <= token_id < len(vocab) else None


def marked_tokenizer(spec) -> "MarkedTokenizer":
    """This process's MarkedTokenizer for a `tokenization.TokenizerSpec` (built once, then reused)."""
    key = (spec.fingerprint, spec.backend)
    tok = _BUILT.get(key)
    if tok is None:
        tok = _BUILT[key] = MarkedTokenizer(spec.tokenizer_json, spec.backend)
    return tok


class MarkedTokenizer:
    def __init__(self, tokenizer_json: str, backend: str = "hf"):
        from medtrain.data.tokenizer_backends import CheckedBackend, load_backend

        parsed = json.loads(tokenizer_json)
        self.marker_id = add_marker(parsed)
        self.table = TokenBytes.of(parsed)
        self._added = {t["id"]: t["content"] for t in parsed["added_tokens"]}
        self.json = json.dumps(parsed, ensure_ascii=False)
        del parsed
        self._hf = None   # HF itself when it is the backend; else the recheck's reference (loaded then)
        if backend != "hf" and self.table is not None:
            self.backend = CheckedBackend(load_backend(backend, self.json), self.json)
        else:
            if backend != "hf":
                logger.warning("tokenizer backend %s: this tokenizer is not byte-level BPE (or HF trims its offsets), "
                               "so SFT takes token places from HuggingFace tokenizers and encodes with it", backend)
            self.backend = self._hf = load_backend("hf", self.json)
        self.offsets_from_hf = 0

    @property
    def hf(self):
        """HuggingFace tokenizers on the marker tokenizer (under a fast backend: the recheck's, loaded on
        first use)."""
        return self._hf if self._hf is not None else self.backend.reference

    @property
    def name(self) -> str:
        return self.backend.name

    def id_to_token(self, i: int) -> Optional[str]:
        if i in self._added:
            return self._added[i]
        return self.hf.tokenizer.id_to_token(i)

    def take_counters(self) -> dict:
        """Counts since the previous call: texts whose offsets came from HF, and (fast backend) texts
        re-encoded by HF and compared."""
        out = {"offsets_from_hf": self.offsets_from_hf}
        self.offsets_from_hf = 0
        checked = getattr(self.backend, "checked", None)
        if checked is not None:
            out["documents_rechecked_by_hf"], self.backend.checked = checked, 0
        return out

    def encode(self, texts: list[str], spans: list) -> list[tuple[np.ndarray, np.ndarray, list]]:
        """For each marked text and its trained spans (character ranges of that text): the ids with the
        markers dropped, whether each token is trained, and per span the index after its last trained
        token (the place a conversation can be cut at after that turn)."""
        out = []
        if self.table is not None:
            encoded = self.backend.encode_batch(texts)
        else:   # not byte-level: HF's offsets for every text
            encoded = self.hf.tokenizer.encode_batch(texts, add_special_tokens=False)
        for text, text_spans, ids in zip(texts, spans, encoded):
            ranges = self.table.byte_ranges(text, ids) if self.table is not None else None
            if ranges is not None:
                ids = np.asarray(ids, dtype=np.int64)
                a, b = ranges
                flat = [p for s in text_spans for p in s]
                bounds = char_to_byte(text, flat)
                units = list(zip(bounds[::2], bounds[1::2]))
            else:
                if self.table is not None:
                    self.offsets_from_hf += 1
                enc = ids if self.table is None else self.hf.tokenizer.encode(text, add_special_tokens=False)
                ids = np.asarray(enc.ids, dtype=np.int64)
                offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
                a, b = offsets[:, 0], offsets[:, 1]
                units = text_spans
            keep = ids != self.marker_id
            ids, a, b = ids[keep], a[keep], b[keep]
            trained = np.zeros(len(ids), dtype=bool)
            ends = []
            for s, e in units:
                hit = ((a < e) & (b > s)) | ((a == b) & (a >= s) & (a < e))
                trained |= hit
                where = np.flatnonzero(hit)
                if len(where):
                    ends.append(int(where[-1]) + 1)
            out.append((ids, trained, ends))
        return out
