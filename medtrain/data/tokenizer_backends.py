"""Tokenizer backends: other implementations that load the same `tokenizer.json` and must return exactly
HuggingFace tokenizers' ids, several times faster.

A backend turns texts into ids with the semantics of
`tokenizers.Tokenizer.encode_batch_fast(texts, add_special_tokens=False)`: the normalizer, the
pre-tokenizer and the model of the `tokenizer.json`, added and special tokens that a text spells
matched as those tokens, no post-processor (BOS/EOS are added by `tokenization.DocumentTokenizer`, the
same way for every backend). Registered here:

    hf         HuggingFace tokenizers (always there; the reference every other backend is held to)
    fastokens  installed with medtrain on Linux x86-64/aarch64 and macOS (Apache-2.0)
    tokie      `pip install tokie` (MIT or Apache-2.0)
    kitoken    `pip install kitoken` (BSD-2-Clause)

Exactness is proved, not assumed. `select_backend` encodes a verification sample with the candidate
and with HF: the project's edge cases (`edge_cases()`: emoji, rare CJK, combining marks and NFC/NFD
pairs, digits of several scripts, runs of spaces and newlines, the text of every added token, a 1 MB
line) plus documents the caller draws from every unit of the corpus. A named backend that disagrees is
an error; `auto` logs why it refused a candidate and tries the next one, ending at HF.
A shipped backend's agreement on the edge cases is recorded (`verified_record`: a file named by a hash
of the tokenizer.json, the edge cases, the backend's version and code and HF's version), so a later
start checks only its corpus's documents.

During a build, `CheckedBackend` re-encodes a seeded, deterministic fraction of documents with HF
(one in RECHECK_EVERY = 1,000, chosen by `recheck_by_origin` from the documents' origin hashes in the
store builder, by `sampled_for_recheck` from a probe of the text elsewhere: either way a rerun checks the
same ones) and raises
`TokenizerMismatch` (a `DataError`) at the first disagreement, naming the tokenizer, the document and
the first differing position. Worked example of the message:

    tokenizer backend 'fastokens' disagrees with HuggingFace tokenizers (tokenizer 3f2a9c1e0b7d):
    document 'Ångström café ...' (1,024 chars), first difference at token 5: hf 1203, fastokens 88
    (hf [..., 17, 1203, 9], fastokens [..., 17, 88, 412]); pass --tokenizer_backend hf

Each backend is loaded once per process: `load_backend` keeps the few last loaded (`_LOADED`), and the
backend `select_backend` verified, with HF, stays loaded in the process that verified it, so worker
processes forked from it (the store builder's) start with both, copy-on-write, instead of loading the
vocabulary again (1.5 s for a 151k-token one under fastokens). None holds a lock shared with another
process. Backends that parallelize a batch over threads (HF, fastokens,
tokie) fall back to one thread in a forked worker process, so `num_proc` workers use `num_proc` cores.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
import os
import tempfile
import time
import unicodedata
import zlib
from itertools import chain
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from medtrain.errors import DataError

logger = logging.getLogger(__name__)

# one document in this many is re-encoded by HF during a build: HF takes 6-30x fastokens' time per document
# (BENCHMARKS.md, issue 14), so 1 in 1,000 adds about 1-3% to a build where 1 in 200 added 3-15%, and it
# still checks thousands of a large corpus's documents, the same ones on every rerun
RECHECK_EVERY = 1000
RECHECK_SEED = 0x5EED
LONG_LINE_CHARS = 1 << 20  # the verification's long line (as long as tokenization.PIECE_CHARS)


class TokenizerMismatch(DataError):
    """A backend gave other ids than HuggingFace tokenizers for a document."""


class Backend:
    """Encodes texts to ids; subclasses set `name` and implement `encode_batch`, and may implement
    `encode_batch_flat` (the store builder's path: no Python object per token)."""

    name = "?"

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def encode_batch_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, offsets): every text's ids concatenated (uint32), and len(texts) + 1 offsets (int64),
        text i's ids being ids[offsets[i]:offsets[i + 1]]."""
        encoded = self.encode_batch(texts)
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
        ids = np.fromiter(chain.from_iterable(encoded), dtype=np.uint32, count=int(offsets[-1]))
        return ids, offsets

    def __repr__(self) -> str:
        return f"<tokenizer backend {self.name}>"


class HFBackend(Backend):
    name = "hf"

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self._encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._encode(texts, add_special_tokens=False)]


class FastokensBackend(Backend):
    name = "fastokens"

    def __init__(self, tokenizer_json: str):
        import fastokens

        self.tokenizer = fastokens.Tokenizer.from_json_str(tokenizer_json)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False,
                                                            split_special_tokens=False)]

    def encode_batch_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        flat = getattr(self.tokenizer, "encode_batch_flat", None)
        if flat is None:   # fastokens before 0.3.5
            return super().encode_batch_flat(texts)
        ids, offsets = flat(texts, add_special_tokens=False, split_special_tokens=False)
        return np.frombuffer(ids, dtype="<u4"), np.frombuffer(offsets, dtype="<u8").astype(np.int64)


class TokieBackend(Backend):
    name = "tokie"

    def __init__(self, tokenizer_json: str):
        import tokie

        # tokie reads tokenizer.json from a path only
        fd, path = tempfile.mkstemp(suffix=".json", prefix="medtrain-tokie-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(tokenizer_json)
            self.tokenizer = tokie.Tokenizer.from_json(path)
        finally:
            os.remove(path)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]


class KitokenBackend(Backend):
    name = "kitoken"

    def __init__(self, tokenizer_json: str):
        import kitoken

        self.tokenizer = kitoken.Kitoken.from_tokenizers(tokenizer_json.encode("utf-8"))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # encode_specials=True: added/special tokens spelled in the text are matched, as HF does
        return self.tokenizer.encode_all(texts, True)


# name -> (module that must be importable, factory). Order = preference of `auto`: fastest first, as
# measured by benchmarks/bench_tokenize.py (BENCHMARKS.md, "Tokenizer backends").
_REGISTRY: dict[str, tuple[Optional[str], Callable[[str], Backend]]] = {
    "fastokens": ("fastokens", FastokensBackend),
    "tokie": ("tokie", TokieBackend),
    "kitoken": ("kitoken", KitokenBackend),
    "hf": (None, HFBackend),
}


_LOADED: "OrderedDict[tuple, Backend]" = OrderedDict()   # (sha1 of tokenizer.json, name) -> Backend
_LOADED_MAX = 4


def _loaded_key(tokenizer_json: str, name: str) -> tuple:
    return hashlib.sha1(tokenizer_json.encode("utf-8")).hexdigest(), name


def _remember(tokenizer_json: str, backend: Backend) -> Backend:
    key = _loaded_key(tokenizer_json, backend.name)
    _LOADED[key] = backend
    _LOADED.move_to_end(key)
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)
    return backend


def _forget(name: str) -> None:
    """Drops every object built on backend `name` (it was registered anew, or removed)."""
    for key in [k for k in _LOADED if k[1] == name]:
        del _LOADED[key]
    import sys

    for module in ("medtrain.data.tokenization", "medtrain.data.marked_tokenizer"):
        built = getattr(sys.modules.get(module), "_BUILT", None)
        for key in [k for k in (built or {}) if k[1] == name]:
            del built[key]


# the backends as shipped, with their encode method: only these have their verification recorded
_METHODS = ("__init__", "encode_batch", "encode_batch_flat")
_SHIPPED = {cls: {m: getattr(cls, m) for m in _METHODS} for cls in (FastokensBackend, TokieBackend, KitokenBackend)}


def register_backend(name: str, factory: Callable[[str], Backend], module: Optional[str] = None,
                     first: bool = True) -> None:
    """Add a backend (`factory(tokenizer_json) -> Backend`, importable when `module` is). `auto` tries
    it first (`first=True`) or just before hf."""
    global _REGISTRY
    _forget(name)
    rest = [(k, v) for k, v in _REGISTRY.items() if k != name]
    entry = [(name, (module, factory))]
    items = entry + rest if first else [kv for kv in rest if kv[0] != "hf"] + entry + [("hf", _REGISTRY["hf"])]
    _REGISTRY = dict(items)


def unregister_backend(name: str) -> None:
    if name == "hf":
        raise ValueError("the hf backend cannot be removed")
    _REGISTRY.pop(name, None)
    _forget(name)


def backend_names() -> list[str]:
    """Every registered backend, in the order `auto` tries them."""
    return list(_REGISTRY)


def is_installed(name: str) -> bool:
    if name not in _REGISTRY:
        return False
    module = _REGISTRY[name][0]
    if module is None:
        return True
    import importlib.util

    return importlib.util.find_spec(module) is not None


def installed_backends() -> list[str]:
    return [n for n in _REGISTRY if is_installed(n)]


def load_backend(name: str, tokenizer_json: str) -> Backend:
    """The backend `name` for this tokenizer, unverified (use `select_backend` to verify): the one this
    process (or the process it was forked from) already loaded, else a new one, kept for reuse."""
    key = _loaded_key(tokenizer_json, name)
    found = _LOADED.get(key)
    if found is not None:
        _LOADED.move_to_end(key)
        return found
    return _remember(tokenizer_json, _create(name, tokenizer_json))


def _create(name: str, tokenizer_json: str) -> Backend:
    if name not in _REGISTRY:
        raise DataError(f"--tokenizer_backend {name!r}: unknown backend (choose auto, "
                        f"{', '.join(_REGISTRY)})")
    module, factory = _REGISTRY[name]
    if module is not None and not is_installed(name):
        raise DataError(f"--tokenizer_backend {name}: the package {module!r} is not installed "
                        f"(pip install {module}; or pass --tokenizer_backend auto)")
    return factory(tokenizer_json)


# ---------------------------------------------------------------------------------------------------
# verification
# ---------------------------------------------------------------------------------------------------
def tokenizer_label(tokenizer_json: str) -> str:
    """A short name of a tokenizer for messages: the first 12 hex digits of its JSON's sha256."""
    return hashlib.sha256(tokenizer_json.encode("utf-8")).hexdigest()[:12]


def added_token_texts(tokenizer_json: str) -> list[str]:
    import json

    try:
        return [t["content"] for t in json.loads(tokenizer_json).get("added_tokens") or []]
    except (ValueError, TypeError, KeyError):
        return []


def edge_cases(tokenizer_json: str = "", long_line_chars: Optional[int] = None) -> list[str]:
    """The project's verification texts: where implementations of the same tokenizer tend to part.

    Written for this project: every script and case below is one a medical or general corpus meets.
    The text of each added/special token of the tokenizer is included alone, inside words and between
    spaces; the last text is a line of `long_line_chars` characters (mixed scripts, long runs).
    """
    nfd = lambda s: unicodedata.normalize("NFD", s)  # noqa: E731
    nfc = lambda s: unicodedata.normalize("NFC", s)  # noqa: E731
    accented = "Ångström café naïve façade São Paulo Zürich Dvořák Øresund"
    texts = [
        # emoji: single, skin tones, ZWJ families, flags, keycaps, variation selectors
        "Fever 🤒 resolved 👍🏽, family 👨‍👩‍👧‍👦 relieved 🇨🇳🇬🇧 1️⃣ ❤️ ☺︎",
        "🧑🏻‍⚕️🧑🏿‍⚕️💊💉🩺🫀🫁" * 3,
        # rare CJK: extension B-G, compatibility ideographs, radicals, full-width forms
        "𠀀𠀁𪚥𫝀𬺰𰻞𰻞面 龘 靐 齉 丨丶丿 ⺀⺁ 豈更 ＡＢＣ１２３　全角空格",
        "患者主诉：发热３天，体温３８．５℃，伴咳嗽、咳痰。既往史：高血压病史１０年。",
        "糖尿病患者應定期監測血糖；「藥物」的劑量需依腎功能調整。",
        "日本語のテキスト、カタカナとひらがな。한국어 문장도 있습니다.",
        # combining marks, NFC/NFD pairs (same text both ways), Hangul jamo, Indic and Thai clusters
        nfc(accented), nfd(accented), nfd("한국어 의학 텍스트"), "e\u0301 a\u0308\u0301 o\u0328\u0304 Z\u0335\u0321\u0327",
        "नमस्ते डॉक्टर, क्षय रोग का इलाज", "ผู้ป่วยมีไข้สูง", "مريض يعاني من الحمى الشديدة",
        "Пациент жалуется на головную боль; ΑΒΓ αβγ",
        # digits: long numbers, decimals, other scripts' digits, phone-like, mixed with units
        "1234567890 12345678901234567890 3.14159 0.000001 1e-10 1,000,000 ٠١٢٣٤٥٦٧٨٩ ०१२३ ໑໒",
        "BP 120/80 mmHg, HR 72bpm, SpO2 98%, Na+ 140 mmol/L, 2024-11-30T08:15:00Z",
        # numbers that are not ASCII digits (letter numbers, superscripts, circled, fractions) next to
        # digits, letters and runs of spaces: where digit-splitting regexes part
        "Ⅻ001 ⅻ39 Ⅳ期 Ⅻ١88  ٤  ²  ³ x²+y²\t+y ½ ⅓ ①② ⑳ ¹²³ 10⁻⁶ H₂O ٣٫١٤  ١٢ 第Ⅱ型  ൧൨",
        # whitespace runs: spaces, tabs, newlines, CR, NBSP, zero-width, leading/trailing
        "a   b\n\n\n  c\t\t d   \r\n\r\n e", "    leading spaces", "trailing spaces    ", "\n\nnewlines first",
        " ", "\t", "\u00a0non-breaking\u00a0space\u2009thin\u200bzero\u200dwidth\ufeffbom",
        "x" + " " * 300 + "y" + "\n" * 100 + "z",
        # punctuation, contractions, code, URLs
        "I'm sure it's the patient's; they'LL say DON'T. \"Quoted\" «guillemets» — dash… ellipsis",
        "def f(x):\n    return x**2  # comment\n\tif a != b: print('{}'.format(a))",
        "https://example.org/path?query=1&b=%20#frag user@example.com C:\\Windows\\path",
        # control characters and rare planes
        "tab\tbell\x07null\x00del\x7f escape\x1b[0m", "\U000e0041\U000f0000\U0010fffd private use",
        # long runs of one character (the slow path of greedy BPE merges)
        "a" * 5000, "的" * 3000, "!" * 2000, "1" * 4000,
    ]
    for tok in added_token_texts(tokenizer_json):
        texts += [tok, f"before {tok} after", f"x{tok}y", f"  {tok}  {tok}{tok}\n{tok}"]
    long_line_chars = LONG_LINE_CHARS if long_line_chars is None else long_line_chars
    block = ("Patient 患者 presented with fever 发热 38.5℃ and cough; 治疗 with amoxicillin 500 mg t.i.d. "
             "   \n\n" + nfd("Ångström") + " 🤒 " + "0123456789" * 3 + " ")
    texts.append((block * (long_line_chars // len(block) + 1))[:long_line_chars])
    return texts


def first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    """The first index where two id lists differ (the shorter length when one is a prefix)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def mismatch_message(name: str, tokenizer_json: str, text: str, want: Sequence[int], got: Sequence[int],
                     where: str = "") -> str:
    i = first_difference(want, got)
    lo = max(0, i - 3)
    at = lambda ids: ids[i] if i < len(ids) else "end"  # noqa: E731
    return (f"tokenizer backend {name!r} disagrees with HuggingFace tokenizers (tokenizer "
            f"{tokenizer_label(tokenizer_json)}){where}: document {text[:80]!r} ({len(text):,} chars), first "
            f"difference at token {i}: hf {at(want)}, {name} {at(got)} (hf {list(want[lo:i + 3])}, {name} "
            f"{list(got[lo:i + 3])}; hf gives {len(want)} tokens, {name} {len(got)}); pass "
            "--tokenizer_backend hf to use HuggingFace tokenizers")


def verify_backend(backend: Backend, tokenizer_json: str, texts: list[str], reference=None) -> Optional[str]:
    """None when `backend` gives HF's ids for every text, else the message naming the first mismatch.
    `reference`: HF's ids for `texts`, when already computed."""
    if reference is None:
        reference = HFBackend(tokenizer_json).encode_batch(texts)
    try:
        got = backend.encode_batch(texts)
    except Exception as e:  # noqa: BLE001 - a backend that fails on a text is refused like one that disagrees
        return (f"tokenizer backend {backend.name!r} failed on the verification sample "
                f"({type(e).__name__}: {e}) (tokenizer {tokenizer_label(tokenizer_json)})")
    if len(got) != len(texts):
        return f"tokenizer backend {backend.name!r} returned {len(got)} encodings for {len(texts)} texts"
    for text, want, ids in zip(texts, reference, got):
        if list(ids) != list(want):
            return mismatch_message(backend.name, tokenizer_json, text, want, ids)
    if type(backend).encode_batch_flat is not Backend.encode_batch_flat:   # its own flat path: the builder's
        try:
            flat = _Slices(*backend.encode_batch_flat(texts))
            for i, (text, want) in enumerate(zip(texts, reference)):
                if flat[i] != list(want):
                    return mismatch_message(backend.name, tokenizer_json, text, want, flat[i], " (flat encoding)")
        except Exception as e:  # noqa: BLE001 - refused like a disagreement
            return (f"tokenizer backend {backend.name!r} failed on the verification sample's flat encoding "
                    f"({type(e).__name__}: {e}) (tokenizer {tokenizer_label(tokenizer_json)})")
    return None


def select_backend(tokenizer_json: str, requested: str = "auto", samples: Iterable[str] = ()) -> Backend:
    """The backend to tokenize with: `hf`; a named one, verified (DataError when it disagrees or is not
    installed); or `auto`: the first installed backend, fastest first, that gives HF's ids on the edge
    cases and `samples`, else HF. Every refusal under `auto` is logged with its reason."""
    requested = (requested or "auto").strip().lower()
    if requested == "hf":
        return load_backend("hf", tokenizer_json)
    if requested != "auto" and requested not in _REGISTRY:
        raise DataError(f"--tokenizer_backend {requested!r}: unknown backend (choose auto, "
                        f"{', '.join(_REGISTRY)})")
    edge = edge_cases(tokenizer_json)
    corpus = [s for s in samples if isinstance(s, str) and s]
    hf = load_backend("hf", tokenizer_json)
    references: dict = {}   # "edge" / "corpus" -> HF's ids, computed once for every candidate

    def reference(part: str, texts: list) -> list:
        if part not in references:
            references[part] = hf.encode_batch(texts)
        return references[part]

    candidates = [requested] if requested != "auto" else [n for n in _REGISTRY if n != "hf"]
    for name in candidates:
        if requested == "auto" and not is_installed(name):
            continue
        t0 = time.time()
        try:
            backend = _LOADED.get(_loaded_key(tokenizer_json, name)) or _create(name, tokenizer_json)
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. a tokenizer.json the backend cannot read
            why = (f"tokenizer backend {name!r} cannot load this tokenizer.json "
                   f"({type(e).__name__}: {e})")
            if requested != "auto":
                raise DataError(f"--tokenizer_backend {name}: {why}; pass --tokenizer_backend hf") from None
            logger.info("Tokenizer backend auto: not using %s: %s", name, why)
            continue
        record = verified_record(tokenizer_json, name, edge)
        known = record is not None and os.path.exists(record)
        problem = None if known else verify_backend(backend, tokenizer_json, edge, reference("edge", edge))
        if problem is None and corpus:
            problem = verify_backend(backend, tokenizer_json, corpus, reference("corpus", corpus))
        if problem is None:
            if record is not None and not known:
                _write_record(record, name, len(edge))
            logger.info("Tokenizer backend %s: gives HuggingFace tokenizers' ids on the %d edge cases%s and %d texts "
                        "of the corpus (%.1fs)", name, len(edge), f" (as recorded in {record})" if known else "",
                        len(corpus), time.time() - t0)
            return _remember(tokenizer_json, backend)
        if requested != "auto":
            raise TokenizerMismatch(problem)
        logger.warning("Tokenizer backend auto: not using %s: %s", name, problem)
    if requested == "auto":
        logger.info("Tokenizer backend auto: using HuggingFace tokenizers (hf)")
    return hf


# ---------------------------------------------------------------------------------------------------
# what was verified before
# ---------------------------------------------------------------------------------------------------
def verified_record(tokenizer_json: str, name: str, edge: list) -> Optional[str]:
    """The file that records that backend `name` gave HF's ids on these edge cases for this tokenizer, in
    $MEDTRAIN_CACHE (default ~/.cache/medtrain)/verified-backends, named by a hash of everything the
    answer depends on: the tokenizer.json, the edge cases, the backend's package version and code, and
    HuggingFace tokenizers' version. Every start of a streaming run, on every rank, repeats the
    verification; with this record it checks only the documents drawn from its corpus, which are
    always checked. None (never recorded) for a backend that is not one of ours as shipped: a factory
    registered by a user or a test, or one whose methods were replaced.""" 
    import importlib.metadata

    module, factory = _REGISTRY.get(name, (None, None))
    if module is None or factory not in _SHIPPED or \
            any(getattr(factory, m, None) is not f for m, f in _SHIPPED[factory].items()):
        return None
    try:
        import tokenizers

        versions = f"{importlib.metadata.version(module)}|{tokenizers.__version__}"
        with open(__file__, "rb") as fh:   # this module's code: any change to a backend or the checks
            code = hashlib.sha256(fh.read()).hexdigest()
    except Exception:  # noqa: BLE001 - no version or code known: nothing recorded
        return None
    h = hashlib.sha256()
    for part in (tokenizer_json, name, versions, code):
        h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    for text in edge:
        h.update(text.encode("utf-8", "surrogatepass") + b"\0")
    root = os.environ.get("MEDTRAIN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "medtrain")
    return os.path.join(root, "verified-backends", f"{name}-{h.hexdigest()[:32]}.json")


def _write_record(path: str, name: str, n: int) -> None:
    import json

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump({"backend": name, "edge_cases": n, "created": time.time()}, fh)
        os.replace(tmp, path)
    except OSError as e:   # a read-only home: verified again next time
        logger.debug("cannot record the verification of %s in %s: %s", name, path, e)


# ---------------------------------------------------------------------------------------------------
# checking during a build
# ---------------------------------------------------------------------------------------------------
class _Slices:
    """Text i's ids of a flat encoding, as `ids[i]`."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray):
        self.ids, self.offsets = ids, offsets

    def __getitem__(self, i: int) -> list:
        return self.ids[self.offsets[i]:self.offsets[i + 1]].tolist()


def sampled_for_recheck(text: str, every: Optional[int] = None, seed: int = RECHECK_SEED) -> bool:
    """Whether `text` is among the documents re-encoded by HF (one in `every`, default RECHECK_EVERY), for
    callers that do not know the documents' origins: a hash of the text's length and of 32 characters at
    its start, middle and end, so deterministic, and constant time per document."""
    every = RECHECK_EVERY if every is None else every
    if every <= 0:
        return False
    mid = len(text) // 2
    probe = text[:32] + text[mid:mid + 32] + text[-32:]
    return zlib.crc32(probe.encode("utf-8", "surrogatepass"), (seed + len(text)) & 0xFFFFFFFF) % every == 0


def recheck_by_origin(origins, every: Optional[int] = None, seed: int = RECHECK_SEED) -> list[int]:
    """Which documents HF re-encodes, from their origin hashes (`sources.doc_hash`, which the store builder
    computes for every document anyway): one in `every`, deterministic (the same documents on every
    rerun), uniform over documents however alike their texts, and free of any pass over the text. The
    bits used are mixed from the whole hash, so the choice is independent of the hold-out rule (hash
    modulo 10,000)."""
    every = RECHECK_EVERY if every is None else every
    if every <= 0 or len(origins) == 0:
        return []
    h = np.asarray(origins, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) % (1 << 64))   # splitmix64
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return np.flatnonzero(h % np.uint64(every) == 0).tolist()


class CheckedBackend(Backend):
    """`backend`, with one document in `every` (`recheck_by_origin`, or `sampled_for_recheck`) re-encoded by HF and
    compared; a difference raises `TokenizerMismatch`. HF is loaded on the first sampled document.
    `checked` counts the documents compared."""

    def __init__(self, backend: Backend, tokenizer_json: str, every: Optional[int] = None,
                 seed: int = RECHECK_SEED, reference: Optional[Backend] = None):
        self.backend, self.tokenizer_json = backend, tokenizer_json
        self.name = backend.name
        self.every = RECHECK_EVERY if every is None else every
        self.seed = seed
        self._reference = reference
        self.checked = 0

    @property
    def reference(self) -> Backend:
        if self._reference is None:
            self._reference = load_backend("hf", self.tokenizer_json)
        return self._reference

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        out = self.backend.encode_batch(texts)
        self.recheck(texts, out, self._sample(texts))
        return out

    def encode_batch_flat(self, texts: list[str], origins=None) -> tuple[np.ndarray, np.ndarray]:
        """The backend's flat encoding; the texts HF re-encodes are chosen by their `origins` (origin
        hashes, `recheck_by_origin`) where given, else by `sampled_for_recheck`."""
        ids, offsets = self.backend.encode_batch_flat(texts)
        picked = self._sample(texts) if origins is None else recheck_by_origin(origins, self.every, self.seed)
        self.recheck(texts, _Slices(ids, offsets), picked)
        return ids, offsets

    def _sample(self, texts: list[str]) -> list[int]:
        return [i for i, t in enumerate(texts) if sampled_for_recheck(t, self.every, self.seed)]

    def recheck(self, texts: list[str], ids: list, picked: list[int]) -> None:
        if not picked:
            return
        want = self.reference.encode_batch([texts[i] for i in picked])
        self.checked += len(picked)
        for i, w in zip(picked, want):
            if list(ids[i]) != list(w):
                raise TokenizerMismatch(mismatch_message(self.name, self.tokenizer_json, texts[i], w, ids[i],
                                                         " during the build")
                                        + "; nothing of this unit was kept")
