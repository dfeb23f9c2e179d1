"""Tokenization of documents: batch-encode with the fast tokenizer, add BOS/EOS, cut huge texts first.

`TokenizerSpec` is the small, picklable description of a tokenizer that worker processes and
dataloader workers rebuild it from (the `tokenizers` JSON plus the special-token choices); its
`fingerprint` names everything about tokenization that changes the tokens.

A document is encoded with `add_special_tokens=False`, then BOS (if chosen) is prepended and EOS (if
chosen) appended, so the ids do not depend on a tokenizer's post-processor. A text longer than
`piece_chars` is cut at whitespace into pieces that are encoded separately and joined, so a 100 MB
line costs bounded memory; byte-level BPE tokenizers split at whitespace anyway, so the ids change at
most at those few cut points. Such documents are counted (`documents_cut_for_tokenizing`).

The batch encode runs on the spec's *tokenizer backend* (`tokenizer_backends`): HuggingFace
tokenizers (`hf`) or a faster implementation proved to give the same ids (`resolve_backend` verifies it
before a build and returns the spec naming it). Under a fast backend, one document in
`tokenizer_backends.RECHECK_EVERY` is encoded again by HF and compared (`documents_rechecked_by_hf`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

logger = logging.getLogger(__name__)

PIECE_CHARS = 1 << 20
_BUILT: dict = {}  # (fingerprint, backend) -> DocumentTokenizer, one per process


@dataclass(frozen=True)
class TokenizerSpec:
    tokenizer_json: str
    vocab_size: int
    bos_id: Optional[int]
    eos_id: Optional[int]
    add_bos: bool
    add_eos: bool
    pad_id: Optional[int] = None
    # Which implementation encodes (`tokenizer_backends`): "hf", or a fast backend that `resolve_backend`
    # verified against HF. Not part of the fingerprint: a backend is used only once proved to give HF's
    # ids (and rechecked during the build), so the tokens, and the store, are the same for every
    # backend; a store built with one is reused with another. Recorded so the manifest can say which.
    backend: str = "hf"

    @property
    def dtype(self):
        return np.uint16 if self.vocab_size <= 65535 else np.uint32

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(self.tokenizer_json.encode("utf-8"))
        h.update(repr((self.vocab_size, self.bos_id, self.eos_id, self.add_bos, self.add_eos)).encode())
        return h.hexdigest()

    def build(self) -> "DocumentTokenizer":
        """This process's tokenizer for the spec, built once and reused: a `tokenizers.Tokenizer` that is
        dropped does not give its memory back, and a reused one keeps its cache warm."""
        key = (self.fingerprint, self.backend)
        tok = _BUILT.get(key)
        if tok is None:
            tok = _BUILT[key] = DocumentTokenizer(self)
        return tok


def sample_texts(units, text_field: Optional[str] = "text", per_unit: int = 4, max_chars: int = 1 << 20,
                 max_units: Optional[int] = None) -> list:
    """The first `per_unit` documents of every work unit (bad lines skipped, texts cut to `max_chars`):
    the corpus part of the verification sample of `resolve_backend`. With `text_field=None` (SFT
    records), every string value of each record is taken (system, prompts, replies). `max_units` bounds
    the units read to that many, spread evenly over the plan (for checks every start repeats)."""
    from medtrain.data.sources import RecordReader, SkipCounter

    out: list = []
    for unit in spread(units, max_units):
        reader = RecordReader(unit, text_field, skip_bad=True, skipped=SkipCounter())
        for n, (_, record) in enumerate(reader):
            if n >= per_unit:
                break
            values = [record] if isinstance(record, str) else _strings(record)
            out.extend(v[:max_chars] for v in values if v)
    return out


def spread(units, max_units: Optional[int] = None) -> list:
    """`units`, or `max_units` of them spread evenly over the plan (what a check every start repeats reads)."""
    units = list(units)
    if max_units is not None and len(units) > max_units:
        step = len(units) / max_units
        units = [units[int(i * step)] for i in range(max_units)]
    return units


def _strings(obj) -> list:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in _strings(v)]
    return []


def resolve_backend(spec: TokenizerSpec, requested: str = "auto", samples=()) -> TokenizerSpec:
    """`spec` with the tokenizer backend to use: `requested` is auto, hf or a backend's name (see
    `tokenizer_backends.select_backend`); a fast backend is verified against HF on the project's edge
    cases and on `samples` (documents drawn from every unit of the corpus) first. A named backend that
    disagrees raises `DataError`; auto falls back (and logs why)."""
    from dataclasses import replace

    from medtrain.data.tokenizer_backends import select_backend

    from medtrain.runtime.measure import release_free_memory

    name = select_backend(spec.tokenizer_json, requested, samples).name
    release_free_memory()   # the verification's tokenizers: not carried into forked workers
    logger.info("Tokenizer backend: %s (--tokenizer_backend %s)", name, requested)
    return replace(spec, backend=name)


def spec_from_tokenizer(tokenizer, add_bos: Optional[bool] = None, add_eos: bool = True) -> TokenizerSpec:
    """Describe a HF fast tokenizer. `add_bos=None` follows the tokenizer (does it add BOS itself?)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer; medtrain needs one "
                         "(a tokenizer.json, as every modern model ships)")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if add_bos is None:
        ids = tokenizer("a", add_special_tokens=True)["input_ids"]
        add_bos = bos is not None and len(ids) > 0 and ids[0] == bos
    if add_bos and bos is None:
        raise ValueError("--add_bos_token is set but the tokenizer has no bos_token")
    if add_eos and eos is None:
        raise ValueError("the tokenizer has no eos_token: set one (tokenizer.eos_token) or pass "
                         "--add_eos_token false")
    return TokenizerSpec(backend.to_str(), len(tokenizer), bos, eos, bool(add_bos), bool(add_eos),
                         tokenizer.pad_token_id)


def load_tokenizer_spec(name_or_path: str, add_bos: Optional[bool] = None, add_eos: bool = True,
                        tokenizer=None) -> TokenizerSpec:
    """The spec of a tokenizer, read straight from its `tokenizer.json` (and `tokenizer_config.json`)
    when it is a local directory: no transformers or torch import, so `prepare_data.py` and its
    worker processes stay small. Otherwise (a hub name, or no tokenizer.json) through transformers.
    Both entry points use this, so they agree on the fingerprint."""
    import json
    import os

    tj = os.path.join(name_or_path, "tokenizer.json") if name_or_path and os.path.isdir(name_or_path) else ""
    if not (tj and os.path.exists(tj)):
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        return spec_from_tokenizer(tokenizer, add_bos, add_eos)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tj)
    cfg_path = os.path.join(name_or_path, "tokenizer_config.json")
    cfg = json.load(open(cfg_path, encoding="utf-8")) if os.path.exists(cfg_path) else {}

    def special(key):
        value = cfg.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        return tok.token_to_id(value) if value else None

    bos, eos, pad = special("bos_token"), special("eos_token"), special("pad_token")
    if add_bos is None:
        add_bos = cfg.get("add_bos_token")
        if add_bos is None:
            ids = tok.encode("a", add_special_tokens=True).ids
            add_bos = bos is not None and len(ids) > 0 and ids[0] == bos
    if add_bos and bos is None:
        raise ValueError(f"{name_or_path}: --add_bos_token is set but the tokenizer has no bos_token")
    if add_eos and eos is None:
        raise ValueError(f"{name_or_path}: the tokenizer has no eos_token: set one in tokenizer_config.json or "
                         "pass --add_eos_token false")
    spec = TokenizerSpec(tok.to_str(), tok.get_vocab_size(with_added_tokens=True), bos, eos, bool(add_bos),
                         bool(add_eos), pad if pad is not None else eos)
    tok = None  # noqa: F841 - dropped before its memory is released
    from medtrain.runtime.measure import release_free_memory

    release_free_memory()
    return spec


def split_text(text: str, piece_chars: int = PIECE_CHARS) -> list[str]:
    """Cut `text` into pieces of at most `piece_chars`, just before a whitespace where there is one."""
    if len(text) <= piece_chars:
        return [text]
    pieces, start, n = [], 0, len(text)
    while start < n:
        end = min(n, start + piece_chars)
        if end < n:
            cut = end
            # look back (at most a tenth of a piece) for whitespace to cut before
            lo = max(start + 1, end - piece_chars // 10)
            while cut > lo and not text[cut].isspace():
                cut -= 1
            end = cut if cut > lo else end
        pieces.append(text[start:end])
        start = end
    return pieces


class DocumentTokenizer:
    """Encodes batches of documents into lists of ids (numpy arrays of the store's dtype).

    `backend` is the spec's tokenizer backend (wrapped in a `CheckedBackend` unless it is HF itself);
    `hf_tokenizer` the `tokenizers.Tokenizer` of the spec, loaded on first use (vocabulary look-ups)."""

    def __init__(self, spec: TokenizerSpec, piece_chars: int = PIECE_CHARS):
        from medtrain.data.tokenizer_backends import CheckedBackend, load_backend

        self.spec = spec
        self.piece_chars = piece_chars
        if spec.backend == "hf":
            self._hf = load_backend("hf", spec.tokenizer_json)
            self.backend = self._hf
        else:
            self._hf = None
            self.backend = CheckedBackend(load_backend(spec.backend, spec.tokenizer_json), spec.tokenizer_json)
        self._prefix = [spec.bos_id] if spec.add_bos else []
        self._suffix = [spec.eos_id] if spec.add_eos else []
        self.documents_cut = 0

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def hf_tokenizer(self):
        """The HuggingFace `tokenizers.Tokenizer` of the spec (shared with the recheck)."""
        if self._hf is None:
            self._hf = self.backend.reference
        return self._hf.tokenizer

    _tok = hf_tokenizer  # the name callers used before backends existed

    @property
    def documents_rechecked(self) -> int:
        return getattr(self.backend, "checked", 0)

    def encode_ids(self, texts: list[str]) -> list[list[int]]:
        """Plain ids of each text (add_special_tokens=False, no BOS/EOS, no cutting), on the backend."""
        return self.backend.encode_batch(texts)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's ids with BOS/EOS, in the spec's dtype (views of one array per batch)."""
        ids, offsets = self.encode_flat(texts)
        return [ids[offsets[i]:offsets[i + 1]] for i in range(len(texts))]

    def encode_flat(self, texts: list[str], origins=None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, offsets): every text's ids with BOS/EOS, concatenated in the spec's dtype, and the
        len(texts) + 1 offsets of the texts in them. The backend's flat encoding (one buffer of ids, no
        Python object per token) is framed with BOS/EOS in a few array operations; a text over
        piece_chars is cut into pieces encoded one after another (`split_text`). `origins`: the texts'
        origin hashes, which choose the documents a fast backend's recheck re-encodes with HF."""
        normal = [i for i, t in enumerate(texts) if len(t) <= self.piece_chars]
        if len(normal) == len(texts):
            return self._framed(*self._flat(texts, origins))
        parts: list = [None] * len(texts)
        if normal:
            ids, offsets = self._framed(*self._flat([texts[i] for i in normal],
                                                    None if origins is None else [origins[i] for i in normal]))
            for j, i in enumerate(normal):
                parts[i] = ids[offsets[j]:offsets[j + 1]]
        for i, t in enumerate(texts):
            if parts[i] is None:
                self.documents_cut += 1
                cut: list[int] = []
                for piece_ids in self.backend.encode_batch(split_text(t, self.piece_chars)):
                    cut.extend(piece_ids)
                parts[i] = np.asarray(self._prefix + cut + self._suffix, dtype=self.spec.dtype)
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(a) for a in parts], out=offsets[1:])
        return np.concatenate(parts).astype(self.spec.dtype, copy=False), offsets

    def _flat(self, texts: list[str], origins) -> tuple[np.ndarray, np.ndarray]:
        if origins is None or self.spec.backend == "hf":   # HF itself: nothing to recheck
            return self.backend.encode_batch_flat(texts)
        return self.backend.encode_batch_flat(texts, origins)

    def _framed(self, ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A flat encoding with BOS before and EOS after each text (as chosen), in the spec's dtype,
        and its offsets. E.g. ids [5 6 7 8], offsets [0 3 4], EOS 2: [5 6 7 2 8 2], offsets [0 4 6]."""
        p, q = len(self._prefix), len(self._suffix)
        offsets = np.asarray(offsets, dtype=np.int64)
        if p + q == 0:
            return ids.astype(self.spec.dtype, copy=False), offsets
        n = len(offsets) - 1
        framed = offsets + np.arange(n + 1, dtype=np.int64) * (p + q)
        res = np.empty(int(framed[-1]), dtype=self.spec.dtype)
        special = np.concatenate([framed[:-1] + k for k in range(p)] + [framed[1:] - q + k for k in range(q)])
        is_text = np.ones(len(res), dtype=bool)
        is_text[special] = False
        res[is_text] = ids
        for k, tok in enumerate(self._prefix):
            res[framed[:-1] + k] = tok
        for k, tok in enumerate(self._suffix):
            res[framed[1:] - q + k] = tok
        return res, framed


class TextEncoder:
    """Pretraining records: the text of each document, encoded with BOS/EOS; every token is trained.

    The store builder and the streaming dataset only talk to an encoder (`read`, `encode_batch`,
    `fingerprint`, `dtype`, `has_mask`), so SFT plugs its conversation encoder into the same
    machinery. Encoders are picklable: the tokenizer is rebuilt lazily in each process.
    """

    has_mask = False

    def __init__(self, spec: TokenizerSpec, text_field: str = "text"):
        self.spec = spec
        self.text_field = text_field
        self._tok = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tok"] = None
        return state

    @property
    def tokenizer(self) -> DocumentTokenizer:
        if self._tok is None:
            self._tok = self.spec.build()
        return self._tok

    @property
    def dtype(self):
        return self.spec.dtype

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"text|{self.spec.fingerprint}|{self.text_field}".encode()).hexdigest()

    def describe(self) -> dict:
        return {"encoder": "text", "text_field": self.text_field, "tokenizer_backend": self.spec.backend}

    def with_spec(self, spec: TokenizerSpec) -> "TextEncoder":
        """This encoder with another spec (e.g. the same tokenizer with a verified fast backend)."""
        return TextEncoder(spec, self.text_field)

    def with_backend(self, requested: Optional[str], units, max_units: Optional[int] = None) -> "TextEncoder":
        """This encoder on the backend `--tokenizer_backend` chooses (`resolve_backend`), verified on the
        first documents of each of `units` (or of `max_units` spread over them)."""
        if not requested:
            return self
        return self.with_spec(resolve_backend(self.spec, requested,
                                              sample_texts(units, self.text_field, max_units=max_units)))

    def for_source(self, text_field: Optional[str]) -> "TextEncoder":
        return self if not text_field or text_field == self.text_field else TextEncoder(self.spec, text_field)

    def counters(self) -> dict:
        """Counts since the previous call (one encoder may serve several units in a process)."""
        tok = self.tokenizer
        n, tok.documents_cut = tok.documents_cut, 0
        out = {"documents_cut_for_tokenizing": n}
        if tok.backend_name != "hf":
            out["documents_rechecked_by_hf"], tok.backend.checked = tok.backend.checked, 0
        return out

    def read(self, unit, skip_bad: bool = False, max_chars=None, skipped=None):
        from medtrain.data.sources import RecordReader

        return RecordReader(unit, self.text_field, skip_bad, max_chars, skipped)

    def read_batches(self, unit, skip_bad: bool = False, max_chars=None, skipped=None):
        """What `read` yields, as (keys, texts) lists of a block of the unit at a time."""
        from medtrain.data.sources import RecordReader

        return RecordReader(unit, self.text_field, skip_bad, max_chars, skipped).batches()

    def size(self, record) -> int:
        return len(record)

    def encode_batch(self, records: list) -> list:
        """(ids, mask) per record; mask is None when every token is trained."""
        return [(ids, None) for ids in self.tokenizer.encode_batch(records)]

    def encode_flat(self, records: list, origins=None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, offsets) of every record (none is dropped), concatenated: `encode_batch` without an
        array per document, the store builder's path. `origins`: the records' origin hashes
        (`sources.doc_hash`), which choose the documents a fast backend's recheck re-encodes."""
        return self.tokenizer.encode_flat(records, origins)


class LinebreakTextEncoder(TextEncoder):
    """--keep_linebreaks true: each line of a .txt file is a document ending with its line break (then
    EOS), as MedicalGPT reads text files (`datasets`' text loader with keep_linebreaks). JSON and
    parquet texts are unchanged. Part of the store's fingerprint."""

    @property
    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(f"{super().fingerprint}|keep_linebreaks".encode()).hexdigest()

    def describe(self) -> dict:
        return {**super().describe(), "keep_linebreaks": True}

    def with_spec(self, spec) -> "LinebreakTextEncoder":
        return LinebreakTextEncoder(spec, self.text_field)

    def for_source(self, text_field):
        return self if not text_field or text_field == self.text_field else LinebreakTextEncoder(self.spec, text_field)

    def read(self, unit, skip_bad: bool = False, max_chars=None, skipped=None):
        records = super().read(unit, skip_bad, max_chars, skipped)
        if unit.file.fmt != "txt":
            return records
        return ((key, text + "\n") for key, text in records)

    def read_batches(self, unit, skip_bad: bool = False, max_chars=None, skipped=None):
        batches = super().read_batches(unit, skip_bad, max_chars, skipped)
        if unit.file.fmt != "txt":
            return batches
        return ((keys, [text + "\n" for text in texts]) for keys, texts in batches)
