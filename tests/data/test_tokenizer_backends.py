"""Tokenizer backends (medtrain.data.tokenizer_backends): every backend `auto` may pick gives HF's ids,
for each tokenizer family; a backend that disagrees is refused before a build, and one that disagrees
during a build stops it with nothing trusted."""

import glob
import json
import logging
import os
import zlib

import numpy as np
import pytest

from medtrain.data import tokenizer_backends as tb
from medtrain.data.sources import find_files
from medtrain.data.token_store import StoreBuilder, is_store
from medtrain.data.tokenization import _BUILT, TextEncoder, TokenizerSpec, resolve_backend
from medtrain.errors import DataError

from tokenizer_families import FAMILIES, family_json, installed_package_tokenizers, multilingual_docs

TOKENIZERS = {**{f: None for f in FAMILIES}, **{name: None for name in installed_package_tokenizers()}}


def tokenizer_json(name: str) -> str:
    return family_json(name) if name in FAMILIES else installed_package_tokenizers()[name]


def spec_of(js: str, backend: str = "hf") -> TokenizerSpec:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(js)
    return TokenizerSpec(js, tok.get_vocab_size(with_added_tokens=True), tok.token_to_id("<s>"),
                         tok.token_to_id("</s>"), tok.token_to_id("<s>") is not None,
                         tok.token_to_id("</s>") is not None, backend=backend)


def store_bytes(path: str) -> dict:
    out = {}
    for f in sorted(glob.glob(os.path.join(path, "units", "*.tokens")) + glob.glob(os.path.join(path, "units", "*.docs.npy"))):
        with open(f, "rb") as fh:
            out[os.path.basename(f)] = fh.read()
    return out


def build_store(tmp_path, spec: TokenizerSpec, docs: list, name: str) -> str:
    data = tmp_path / f"data-{name}"
    data.mkdir(exist_ok=True)
    (data / "a.txt").write_text("\n".join(d.replace("\n", " ") for d in docs[: len(docs) // 2]) + "\n", encoding="utf-8")
    (data / "b.txt").write_text("\n".join(d.replace("\n", " ") for d in docs[len(docs) // 2:]) + "\n", encoding="utf-8")
    builder = StoreBuilder(find_files([str(data)]), TextEncoder(spec), str(tmp_path / f"cache-{name}"),
                           show_progress=False, unit_bytes=12000)
    return builder.ensure()


@pytest.fixture(autouse=True)
def short_long_line(monkeypatch):
    """HF takes a second for the 1 MB line of the verification: 32k characters here, except in
    `test_installed_backends_agree_on_a_1mb_line`."""
    monkeypatch.setattr(tb, "LONG_LINE_CHARS", 1 << 15)


@pytest.fixture
def fake_backends():
    """Registers fake backends for one test and removes them (and the tokenizers built for them)."""
    names = []

    def register(name, factory, first=True):
        tb.register_backend(name, factory, first=first)
        names.append(name)

    yield register
    for n in names:
        tb.unregister_backend(n)
    for key in [k for k in _BUILT if k[1] in names]:
        del _BUILT[key]


class Disagrees(tb.Backend):
    """HF's ids, except for texts containing `trigger`, where one id is changed."""

    def __init__(self, js, name="fake", trigger="Ångström"):
        self.hf, self.name, self.trigger = tb.HFBackend(js), name, trigger

    def encode_batch(self, texts):
        out = self.hf.encode_batch(texts)
        for t, ids in zip(texts, out):
            if self.trigger in t and ids:
                ids[len(ids) // 2] += 1
        return out


# ---------------------------------------------------------------------------------------------------
# exactness across families
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", list(TOKENIZERS))
def test_every_backend_auto_may_pick_gives_hf_ids_and_the_same_store(family, tmp_path):
    js = tokenizer_json(family)
    docs = multilingual_docs(240, seed=zlib.crc32(family.encode()))
    hf = tb.HFBackend(js)
    want = hf.encode_batch(docs)
    verification = tb.edge_cases(js)
    reference = hf.encode_batch(verification)
    pickable = {}   # installed backends that load this tokenizer and pass the verification
    for name in tb.installed_backends():
        try:
            backend = tb.load_backend(name, js)
        except Exception:  # noqa: BLE001 - e.g. a pre-tokenizer the backend does not support
            continue
        if name != "hf" and tb.verify_backend(backend, js, verification, reference) is None:
            pickable[name] = backend
    for name, backend in pickable.items():
        assert backend.encode_batch(docs) == want, name
    chosen = tb.select_backend(js, "auto", docs[:20])
    assert chosen.name == next(iter(pickable), "hf")
    # with BOS/EOS and added tokens, through the store builder: the store is byte-identical
    hf_store = store_bytes(build_store(tmp_path, spec_of(js), docs, "hf"))
    assert len(hf_store) >= 4
    if chosen.name != "hf":
        assert store_bytes(build_store(tmp_path, spec_of(js, chosen.name), docs, chosen.name)) == hf_store


def test_installed_backends_agree_on_a_1mb_line(monkeypatch):
    monkeypatch.setattr(tb, "LONG_LINE_CHARS", 1 << 20)
    js = family_json("bytelevel_nfc")
    line = tb.edge_cases(js)[-1]
    want = tb.HFBackend(js).encode_batch([line])
    for name in tb.installed_backends():
        if name in ("fastokens", "kitoken"):   # those `auto` may pick for this family
            assert tb.load_backend(name, js).encode_batch([line]) == want, name


def test_edge_cases_cover_added_tokens_and_a_1mb_line():
    js = family_json("bytelevel_nfc")
    texts = tb.edge_cases(js, long_line_chars=1 << 20)
    for tok in ("<|im_start|>", "<s>", "<think>"):
        assert tok in texts and f"x{tok}y" in texts
    assert len(texts[-1]) == 1 << 20
    import unicodedata

    assert any(unicodedata.normalize("NFC", t) != t for t in texts)   # NFD text
    assert any(unicodedata.normalize("NFD", t) != t for t in texts)   # NFC text with composites


def test_hf_backend_is_tokenizers_encode_batch_fast():
    from tokenizers import Tokenizer

    js = family_json("metaspace_bytefb")
    docs = multilingual_docs(50)
    ref = [e.ids for e in Tokenizer.from_str(js).encode_batch(docs, add_special_tokens=False)]
    assert tb.HFBackend(js).encode_batch(docs) == ref
    assert tb.select_backend(js, "hf").name == "hf"


# ---------------------------------------------------------------------------------------------------
# refusing a backend that disagrees, before the build
# ---------------------------------------------------------------------------------------------------
def test_named_backend_that_disagrees_is_refused_with_the_document_and_position(fake_backends):
    js = family_json("bytelevel_nfc")
    fake_backends("fake", lambda j: Disagrees(j))
    with pytest.raises(tb.TokenizerMismatch) as e:
        tb.select_backend(js, "fake")
    msg = str(e.value)
    assert isinstance(e.value, DataError)
    assert "tokenizer backend 'fake' disagrees with HuggingFace tokenizers" in msg
    assert tb.tokenizer_label(js) in msg
    assert "Ångström café" in msg                                    # the document
    ids = tb.HFBackend(js).encode_batch([t for t in tb.edge_cases(js) if "Ångström" in t])[0]
    assert f"first difference at token {len(ids) // 2}:" in msg       # the position
    assert "--tokenizer_backend hf" in msg                            # the fix


def test_named_backend_refused_on_the_corpus_sample(fake_backends):
    js = family_json("bytelevel_gpt")
    fake_backends("fake", lambda j: Disagrees(j, trigger="ZEBRA-7"))
    assert tb.select_backend(js, "fake").name == "fake"              # the edge cases pass
    with pytest.raises(tb.TokenizerMismatch, match=r"document 'unit 3 says ZEBRA-7"):
        tb.select_backend(js, "fake", ["fine text", "unit 3 says ZEBRA-7 twice"])


def test_auto_refuses_a_disagreeing_backend_logs_why_and_takes_the_next(fake_backends, caplog):
    js = family_json("bytelevel_nfc")

    class Good(tb.HFBackend):
        name = "good"

    fake_backends("good", Good)
    fake_backends("fake", lambda j: Disagrees(j))   # tried first
    with caplog.at_level(logging.INFO, logger="medtrain.data.tokenizer_backends"):
        chosen = tb.select_backend(js, "auto")
    assert chosen.name == "good"
    assert any("not using fake" in r.getMessage() and "first difference at token" in r.getMessage()
               for r in caplog.records)


def test_auto_falls_back_to_hf_when_every_candidate_fails(fake_backends, monkeypatch, caplog):
    js = family_json("prepend_bytefb")
    monkeypatch.setattr(tb, "_REGISTRY", {"hf": tb._REGISTRY["hf"]})

    def broken(j):
        raise ValueError("unsupported normalizer")

    fake_backends("fake", lambda j: Disagrees(j))
    fake_backends("broken", broken)
    with caplog.at_level(logging.INFO, logger="medtrain.data.tokenizer_backends"):
        assert tb.select_backend(js, "auto").name == "hf"
    text = caplog.text
    assert "not using broken" in text and "unsupported normalizer" in text and "not using fake" in text


def test_unknown_or_missing_backend_is_an_error_naming_the_fix(fake_backends):
    js = family_json("bytelevel_gpt")
    with pytest.raises(DataError, match=r"--tokenizer_backend 'nope': unknown backend \(choose auto, .*hf"):
        tb.select_backend(js, "nope")
    fake_backends("absent", tb.HFBackend)
    tb._REGISTRY["absent"] = ("medtrain_no_such_module_xyz", tb.HFBackend)
    with pytest.raises(DataError, match=r"package 'medtrain_no_such_module_xyz' is not installed \(pip install medtrain_no_such_module_xyz"):
        tb.select_backend(js, "absent")
    assert "absent" not in tb.installed_backends()


def test_resolve_backend_records_the_backend_and_keeps_the_fingerprint(fake_backends):
    js = family_json("bytelevel_nfc")

    class Good(tb.HFBackend):
        name = "good"

    fake_backends("good", Good)
    spec = spec_of(js)
    resolved = resolve_backend(spec, "auto", ["a sample"])
    assert resolved.backend == "good" and spec.backend == "hf"
    assert resolved.fingerprint == spec.fingerprint
    tok = resolved.build()
    assert tok.backend_name == "good" and spec.build().backend_name == "hf"


# ---------------------------------------------------------------------------------------------------
# checking during the build
# ---------------------------------------------------------------------------------------------------
def test_recheck_sample_is_deterministic_and_about_one_in_recheck_every():
    docs = multilingual_docs(40000, seed=3)
    picked = [tb.sampled_for_recheck(d) for d in docs]
    assert picked == [tb.sampled_for_recheck(d) for d in docs]
    unique = len(set(docs))
    n = len({d for d, p in zip(docs, picked) if p})
    assert unique / tb.RECHECK_EVERY * 0.6 < n < unique / tb.RECHECK_EVERY * 1.4
    assert tb.sampled_for_recheck(docs[0], seed=1) != tb.sampled_for_recheck(docs[0]) or \
        [tb.sampled_for_recheck(d, seed=1) for d in docs[:2000]] != picked[:2000]


def test_recheck_by_origin_is_deterministic_uniform_and_apart_from_the_hold_out():
    import random

    rng = random.Random(4)
    origins = [rng.getrandbits(32) for _ in range(200000)]
    picked = tb.recheck_by_origin(origins)
    assert picked == tb.recheck_by_origin(list(origins)) and picked != tb.recheck_by_origin(origins, seed=1)
    assert 200000 / tb.RECHECK_EVERY * 0.8 < len(picked) < 200000 / tb.RECHECK_EVERY * 1.2
    held = [i for i, h in enumerate(origins) if h % 10000 < 1000]       # a 10 % hold-out
    share = len(set(picked) & set(held)) / len(picked)
    assert 0.05 < share < 0.15
    # the same text at other places is picked by place, not by content
    assert tb.recheck_by_origin([7] * 10, every=1) == list(range(10)) and tb.recheck_by_origin(origins, every=0) == []


def test_checked_backend_catches_a_disagreement():
    js = family_json("bytelevel_nfc")
    docs = [f"document {i} about Ångström units" for i in range(10000)]
    agreeing = tb.CheckedBackend(tb.HFBackend(js), js)
    assert agreeing.encode_batch(docs) == tb.HFBackend(js).encode_batch(docs)
    assert 0 < agreeing.checked < 40
    checked = tb.CheckedBackend(Disagrees(js), js)
    with pytest.raises(tb.TokenizerMismatch) as e:
        checked.encode_batch(docs)
    sampled = next(d for d in docs if tb.sampled_for_recheck(d))
    assert f"document {sampled!r}" in str(e.value) and "first difference at token" in str(e.value)
    assert "during the build" in str(e.value)


def test_a_disagreement_during_the_build_stops_it_and_leaves_nothing_trusted(tmp_path, fake_backends,
                                                                              monkeypatch):
    js = family_json("bytelevel_gpt")
    fake_backends("fake", lambda j: Disagrees(j, name="fake", trigger="ZEBRA"))
    monkeypatch.setattr(tb, "RECHECK_EVERY", 1)
    docs = multilingual_docs(100) + ["a line about a ZEBRA in the ward"] + multilingual_docs(20, seed=9)
    spec = resolve_backend(spec_of(js), "fake", docs[:50])     # the sample does not meet the trigger
    assert spec.backend == "fake"
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("\n".join(d.replace("\n", " ") for d in docs) + "\n", encoding="utf-8")
    builder = StoreBuilder(find_files([str(data)]), TextEncoder(spec), str(tmp_path / "cache"), show_progress=False)
    with pytest.raises(DataError, match=r"tokenizer backend 'fake' disagrees.*document 'a line about a ZEBRA"):
        builder.ensure()
    assert not is_store(builder.path)
    # the unit holding the document is not marked done (units before it may be: they are exact)
    plan = json.load(open(os.path.join(builder.path, "plan.json")))
    done = {int(os.path.basename(p)[:5]) for p in glob.glob(os.path.join(builder.path, "units", "*.json"))}
    zebra = open(data / "a.txt", "rb").read().index(b"ZEBRA")
    holding = [i for i, u in enumerate(plan) if u["start"] <= zebra < (u["end"] or 1 << 62)]
    assert len(holding) == 1 and holding[0] not in done and len(done) < len(plan)


def test_document_tokenizer_counts_rechecks_and_exposes_its_backend(fake_backends, monkeypatch):
    js = family_json("metaspace_bytefb")

    class Good(tb.HFBackend):
        name = "good"

    fake_backends("good", Good)
    monkeypatch.setattr(tb, "RECHECK_EVERY", 1)
    enc = TextEncoder(spec_of(js, "good"))
    docs = multilingual_docs(30)
    hf = TextEncoder(spec_of(js)).encode_batch(docs)
    got = enc.encode_batch(docs)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(hf, got))
    assert enc.tokenizer.backend_name == "good"
    assert enc.counters() == {"documents_cut_for_tokenizing": 0, "documents_rechecked_by_hf": 30}
    assert enc.counters()["documents_rechecked_by_hf"] == 0
    assert TextEncoder(spec_of(js)).counters() == {"documents_cut_for_tokenizing": 0}


# ---------------------------------------------------------------------------------------------------
# the record of what was verified before
# ---------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not tb.is_installed("fastokens"), reason="fastokens is not installed")
def test_verified_edge_cases_are_recorded_and_the_corpus_is_checked_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTRAIN_CACHE", str(tmp_path))
    js = family_json("bytelevel_gpt")
    corpus = multilingual_docs(30, seed=11)
    edge = tb.edge_cases(js)
    record = tb.verified_record(js, "fastokens", edge)
    assert record.startswith(str(tmp_path)) and not os.path.exists(record)
    assert tb.select_backend(js, "fastokens", corpus).name == "fastokens"
    assert os.path.exists(record)
    checked = []
    real = tb.verify_backend
    monkeypatch.setattr(tb, "verify_backend", lambda b, j, texts, ref=None: checked.append(list(texts)) or real(b, j, texts, ref))
    assert tb.select_backend(js, "fastokens", corpus).name == "fastokens"
    assert checked == [corpus]           # the edge cases are taken on record, the corpus is checked again
    # another tokenizer, or other edge cases, are not on record
    assert tb.verified_record(family_json("bytelevel_nfc"), "fastokens", edge) != record
    assert tb.verified_record(js, "fastokens", edge + ["more"]) != record


@pytest.mark.skipif(not tb.is_installed("fastokens"), reason="fastokens is not installed")
def test_a_backend_whose_code_was_replaced_is_never_taken_on_record(tmp_path, monkeypatch, fake_backends):
    monkeypatch.setenv("MEDTRAIN_CACHE", str(tmp_path))
    js = family_json("bytelevel_gpt")
    assert tb.select_backend(js, "fastokens").name == "fastokens"   # recorded
    original = tb.FastokensBackend.encode_batch

    def wrong_on_emoji(self, texts):
        out = original(self, texts)
        return [ids[:-1] if "🤒" in t and ids else ids for t, ids in zip(texts, out)]

    monkeypatch.setattr(tb.FastokensBackend, "encode_batch", wrong_on_emoji)
    tb._forget("fastokens")
    with pytest.raises(tb.TokenizerMismatch, match="Fever"):
        tb.select_backend(js, "fastokens")
    # a factory of a user's (or a test's) is never recorded, whatever its name
    fake_backends("mine", lambda j: tb.HFBackend(j))
    assert tb.verified_record(js, "mine", tb.edge_cases(js)) is None


@pytest.mark.skipif(not tb.is_installed("fastokens"), reason="fastokens is not installed")
def test_the_flat_encoding_the_builder_uses_is_verified_too(monkeypatch):
    js = family_json("bytelevel_gpt")
    original = tb.FastokensBackend.encode_batch_flat

    def wrong_on_accents(self, texts):
        ids, offsets = original(self, texts)
        ids = ids.copy()
        for i, t in enumerate(texts):
            if "café" in t and offsets[i + 1] > offsets[i]:
                ids[offsets[i + 1] - 1] += 1
        return ids, offsets

    monkeypatch.setattr(tb.FastokensBackend, "encode_batch_flat", wrong_on_accents)
    tb._forget("fastokens")
    with pytest.raises(tb.TokenizerMismatch, match=r"café.*\(flat encoding\)|\(flat encoding\)"):
        tb.select_backend(js, "fastokens")


def test_a_backend_registered_anew_replaces_every_object_built_on_the_old_one(fake_backends):
    from medtrain.data import marked_tokenizer as mt

    js = family_json("bytelevel_gpt")

    class A(tb.HFBackend):
        pass

    class B(tb.HFBackend):
        pass

    fake_backends("swap", lambda j: A(j))
    spec = spec_of(js, "swap")
    assert isinstance(spec.build().backend.backend, A) and isinstance(mt.marked_tokenizer(spec).backend.backend, A)
    tb.unregister_backend("swap")
    fake_backends("swap", lambda j: B(j))
    assert isinstance(spec.build().backend.backend, B) and isinstance(mt.marked_tokenizer(spec).backend.backend, B)
