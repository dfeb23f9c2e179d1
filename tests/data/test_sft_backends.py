"""SFT and preference encoding on a fast tokenizer backend (medtrain.data.marked_tokenizer,
medtrain.data.token_bytes): the same ids and the same trained-token masks as HuggingFace tokenizers, for
every tokenizer family; the marker tokenizer verified before a build like any other."""

import glob
import json
import logging
import os
import random
import unicodedata
import zlib

import numpy as np
import pytest
from tokenizers import AddedToken, Tokenizer

from medtrain.data import marked_tokenizer as mt
from medtrain.data import tokenizer_backends as tb
from medtrain.data.chat_templates import get_template
from medtrain.data.conversations import ConversationEncoder
from medtrain.data.sources import find_files, plan_units
from medtrain.data.token_bytes import TokenBytes, byte_alphabet, char_to_byte
from medtrain.data.token_store import StoreBuilder
from medtrain.data.tokenization import TokenizerSpec
from medtrain.errors import DataError

from tokenizer_families import FAMILIES, family_json, installed_package_tokenizers, multilingual_docs

TOKENIZERS = [*FAMILIES, *installed_package_tokenizers()]
BYTE_LEVEL = [f for f in TOKENIZERS if f not in ("metaspace_bytefb", "prepend_bytefb", "unigram_nfkc")]
# a ChatML template of our writing, for the jinja path
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(autouse=True)
def short_long_line(monkeypatch):
    monkeypatch.setattr(tb, "LONG_LINE_CHARS", 1 << 14)


def tokenizer_json(name: str) -> str:
    return family_json(name) if name in FAMILIES else installed_package_tokenizers()[name]


def spec_of(js: str, backend: str = "hf") -> TokenizerSpec:
    tok = Tokenizer.from_str(js)
    eos = tok.token_to_id("</s>")
    if eos is None:   # a real tokenizer: its end-of-sentence token
        eos = next(t["id"] for t in json.loads(js)["added_tokens"] if "end" in t["content"] and t["special"])
    return TokenizerSpec(js, tok.get_vocab_size(with_added_tokens=True), None, eos, False, True, backend=backend)


def conversations(n: int, seed: int) -> list[dict]:
    """Conversations of the multilingual pieces (NFD text, emoji, CJK, special-token text) in the
    sharegpt format, some with two turns."""
    docs = multilingual_docs(3 * n, seed=seed)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        turns = [{"from": "human", "value": docs[3 * i]}, {"from": "gpt", "value": docs[3 * i + 1]}]
        if rng.random() < 0.4:
            turns += [{"from": "human", "value": "再说一遍 " + docs[3 * i + 2][:40]},
                      {"from": "gpt", "value": unicodedata.normalize("NFD", "Ça répond: ") + docs[3 * i + 2]}]
        out.append({"conversations": turns})
    return out


def encoders(js: str, backend: str) -> list[ConversationEncoder]:
    spec = spec_of(js, backend)
    eos = Tokenizer.from_str(js).id_to_token(spec.eos_id)
    registry = ConversationEncoder(spec, template=get_template("vicuna").bind(eos, None))
    jinja = ConversationEncoder(spec, chat_template=CHATML, special_tokens={"eos_token": eos},
                                stop_tokens=["<|im_end|>", eos])
    return [registry, jinja]


def sft_store(tmp_path, encoder, records, name) -> dict:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    path = data / "sft.jsonl"
    if not path.exists():
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    store = StoreBuilder(find_files([str(data)]), encoder, str(tmp_path / f"cache-{name}"), show_progress=False,
                         unit_bytes=6000).ensure()
    out = {}
    for f in sorted(glob.glob(os.path.join(store, "units", "*.tokens")) + glob.glob(os.path.join(store, "units", "*.mask"))):
        with open(f, "rb") as fh:
            out[os.path.basename(f)] = fh.read()
    manifest = json.load(open(os.path.join(store, "manifest.json")))
    return out, manifest


# ---------------------------------------------------------------------------------------------------
# the marker and the token bytes
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", TOKENIZERS)
def test_marker_gets_the_id_hf_add_special_tokens_gives(family):
    js = tokenizer_json(family)
    tok = Tokenizer.from_str(js)
    tok.add_special_tokens([AddedToken(mt.MARKER, special=True, normalized=False)])
    marked, marker_id = mt.with_marker(js)
    assert marker_id == tok.token_to_id(mt.MARKER)
    assert Tokenizer.from_str(marked).encode(f"a{mt.MARKER}b", add_special_tokens=False).ids == \
        tok.encode(f"a{mt.MARKER}b", add_special_tokens=False).ids


def test_byte_alphabet_is_the_byte_level_pre_tokenizers():
    from tokenizers import pre_tokenizers

    alphabet = byte_alphabet()
    assert sorted(alphabet.values()) == list(range(256))
    assert sorted(alphabet) == sorted(pre_tokenizers.ByteLevel.alphabet())
    # what the byte-level pre-tokenizer writes for each byte maps back to that byte
    for b in (0x20, 0x0A, 0x41, 0xE4, 0xFF, 0x00):
        text = bytes([b]).decode("latin-1")
        if b < 0x80:
            (piece, _), = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(text)
            assert alphabet[piece] == b


@pytest.mark.parametrize("family", TOKENIZERS)
def test_token_places_from_ids_give_hf_masks(family):
    """For random character spans, the tokens the byte ranges put in a span are those HF's offsets put
    there; texts a normalizer changes, and tokenizers that are not byte-level, give None (HF decides)."""
    js = tokenizer_json(family)
    table = TokenBytes.of(js)
    if family not in BYTE_LEVEL:
        assert table is None
        return
    tok = Tokenizer.from_str(js)
    rng = random.Random(zlib.crc32(family.encode()))
    compared = changed = 0
    for text in multilingual_docs(150, seed=3):
        enc = tok.encode(text, add_special_tokens=False)
        ranges = table.byte_ranges(text, enc.ids)
        if ranges is None:
            changed += 1
            assert tok.normalizer is not None and tok.normalizer.normalize_str(text) != text
            continue
        a, b = ranges
        offsets = np.asarray(enc.offsets).reshape(-1, 2)
        for _ in range(5):
            s = rng.randrange(0, len(text) + 1)
            e = rng.randrange(s, len(text) + 1)
            bs, be = char_to_byte(text, [s, e])
            by_bytes = (a < be) & (b > bs)
            by_hf = (offsets[:, 0] < e) & (offsets[:, 1] > s)
            assert (by_bytes == by_hf).all(), (text, s, e)
            compared += 1
    assert compared > 300
    if family == "bytelevel_nfc":
        assert changed > 0   # the NFD pieces: HF's offsets are used for those


# ---------------------------------------------------------------------------------------------------
# SFT stores: byte-identical on every backend auto may pick
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", TOKENIZERS)
def test_sft_store_is_the_same_on_every_backend_auto_may_pick(family, tmp_path):
    js = tokenizer_json(family)
    records = conversations(40, seed=zlib.crc32(family.encode()))
    marked, _ = mt.with_marker(js)
    real = family not in FAMILIES   # a real vocabulary (slow to load): the jinja path and auto's pick only
    for kind, hf_encoder in enumerate(encoders(js, "hf")):
        if real and kind == 0:
            continue
        units = plan_units(find_files([_write(tmp_path, records)]))
        chosen = hf_encoder.with_backend("auto", units)
        want, manifest = sft_store(tmp_path, hf_encoder, records, f"hf{kind}")
        assert any(np.frombuffer(v, np.uint8).any() for k, v in want.items() if k.endswith(".mask"))
        if family not in BYTE_LEVEL:
            assert chosen.spec.backend == "hf"
            continue
        if real:   # auto's pick alone (the families check the order of the candidates)
            pickable = [chosen.spec.backend] if chosen.spec.backend != "hf" else []
        else:
            verification = tb.edge_cases(marked) + hf_encoder.sample_texts(units)
            reference = tb.HFBackend(marked).encode_batch(verification)
            pickable = [n for n in tb.installed_backends() if n != "hf" and _passes(n, marked, verification, reference)]
            assert chosen.spec.backend == (pickable[0] if pickable else "hf")
        for name in pickable:
            got, manifest = sft_store(tmp_path, encoders(js, name)[kind], records, f"{name}{kind}")
            assert got == want, (family, name)
        if pickable and family == "bytelevel_nfc":
            assert manifest.get("offsets_from_hf", 0) > 0   # the NFD replies


def _write(tmp_path, records) -> str:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "sft.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                    encoding="utf-8")
    return str(data)


def _passes(name, js, texts, reference) -> bool:
    try:
        backend = tb.load_backend(name, js)
    except Exception:  # noqa: BLE001 - a tokenizer the backend cannot load
        return False
    return tb.verify_backend(backend, js, texts, reference) is None


def test_sft_on_a_sentencepiece_tokenizer_keeps_hf_and_says_so(tmp_path, caplog):
    js = family_json("metaspace_bytefb")
    enc = encoders(js, "hf")[0]
    units = plan_units(find_files([_write(tmp_path, conversations(5, 1))]))
    with caplog.at_level(logging.INFO):
        assert enc.with_backend("auto", units).spec.backend == "hf"
    assert "not byte-level BPE" in caplog.text


# ---------------------------------------------------------------------------------------------------
# a backend that disagrees on marked conversations
# ---------------------------------------------------------------------------------------------------
class DisagreesAfterMarker(tb.Backend):
    """HF's ids, except in texts where a reply starting "Ça" is marked, where one id is changed."""

    def __init__(self, js, name="fake-sft"):
        self.hf, self.name = tb.HFBackend(js), name

    def encode_batch(self, texts):
        out = self.hf.encode_batch(texts)
        for t, ids in zip(texts, out):
            if mt.MARKER + "Ça" in t:
                ids[-2] += 1
        return out


@pytest.fixture
def fake_sft_backend():
    tb.register_backend("fake-sft", DisagreesAfterMarker)
    yield
    tb.unregister_backend("fake-sft")
    for key in [k for k in mt._BUILT if k[1] == "fake-sft"]:
        del mt._BUILT[key]


def test_a_backend_that_disagrees_on_conversations_is_refused_before_the_build(tmp_path, fake_sft_backend, caplog):
    js = family_json("bytelevel_gpt")
    records = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "Ça va"}]}] * 3
    enc = encoders(js, "hf")[1]
    units = plan_units(find_files([_write(tmp_path, records)]))
    # the edge cases do not trigger it; the conversations drawn from the corpus do
    with pytest.raises(tb.TokenizerMismatch, match=r"tokenizer backend 'fake-sft' disagrees .*first difference"):
        enc.with_backend("fake-sft", units)
    with caplog.at_level(logging.WARNING):
        assert enc.with_backend("auto", units).spec.backend != "fake-sft"
    assert "not using fake-sft" in caplog.text


def test_a_disagreement_during_an_sft_build_stops_it(tmp_path, fake_sft_backend, monkeypatch):
    js = family_json("bytelevel_gpt")
    monkeypatch.setattr(tb, "RECHECK_EVERY", 1)
    monkeypatch.setattr(tb, "sampled_for_recheck", lambda text, every=1, seed=0: True)
    records = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "Ça va"}]}] * 3
    _write(tmp_path, records)
    enc = encoders(js, "fake-sft")[1]
    with pytest.raises(DataError, match="during the build"):
        sft_store(tmp_path, enc, records, "fake")
    assert not glob.glob(str(tmp_path / "cache-fake" / "**" / "manifest.json"), recursive=True)


def test_preference_store_is_the_same_on_the_backend_auto_picks(tmp_path):
    from medtrain.data.preference import UNBOUNDED, PreferenceEncoder

    js = family_json("bytelevel_gpt")
    docs = multilingual_docs(90, seed=7)
    records = [{"prompt": docs[3 * i], "chosen": docs[3 * i + 1], "rejected": docs[3 * i + 2]} for i in range(30)]

    def pair_encoder(backend):
        spec = spec_of(js, backend)
        eos = Tokenizer.from_str(js).id_to_token(spec.eos_id)
        chat = ConversationEncoder(spec, chat_template=CHATML, special_tokens={"eos_token": eos},
                                   stop_tokens=["<|im_end|>", eos], max_length=UNBOUNDED)
        return PreferenceEncoder(chat, 48, 32)

    units = plan_units(find_files([_write(tmp_path, records)]))
    picked = pair_encoder("hf").with_backend("auto", units)
    want = [n for n in tb.installed_backends() if n != "hf"][:1] or ["hf"]
    assert picked.spec.backend == want[0]
    hf_store, _ = sft_store(tmp_path, pair_encoder("hf"), records, "pair-hf")
    fast_store, manifest = sft_store(tmp_path, picked, records, "pair-fast")
    assert fast_store == hf_store and len(hf_store) >= 2
    assert manifest["tokenizer_backend"] == [picked.spec.backend]


def test_offsets_hf_trims_are_hfs(tmp_path):
    """Under a ByteLevel post-processor with trim_offsets (GPT-2, GPT-NeoX), HF's offsets leave out a token's
    end spaces: token places are HF's there, on every backend, so a span of spaces trains what it trained."""
    from tokenizers import processors

    tok = Tokenizer.from_str(family_json("bytelevel_gpt"))
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    js = tok.to_str()
    assert TokenBytes.of(js) is None
    text, spans = f"Q:{mt.MARKER}  next", [(3, 5)]
    marked = Tokenizer.from_str(mt.with_marker(js)[0])
    enc = marked.encode(text, add_special_tokens=False)
    keep = np.asarray(enc.ids) != mt.with_marker(js)[1]
    a, b = np.asarray(enc.offsets)[keep].T
    want = (a < 5) & (b > 3) | ((a == b) & (a >= 3) & (a < 5))
    for backend in ["hf", *[n for n in tb.installed_backends() if n != "hf"][:1]]:
        ids, trained, _ = mt.MarkedTokenizer(js, backend).encode([text], [spans])[0]
        assert ids.tolist() == np.asarray(enc.ids)[keep].tolist() and trained.tolist() == want.tolist()
    units = plan_units(find_files([_write(tmp_path, conversations(3, 2))]))
    assert encoders(js, "hf")[1].with_backend("auto", units).spec.backend == "hf"


@pytest.mark.skipif(not tb.is_installed("fastokens"), reason="fastokens is not installed")
def test_sft_and_preference_builds_count_their_rechecks(tmp_path, monkeypatch):
    from medtrain.data.preference import UNBOUNDED, PreferenceEncoder

    monkeypatch.setattr(tb, "RECHECK_EVERY", 1)
    monkeypatch.setattr(mt, "_BUILT", {})   # marked tokenizers built with the usual fraction
    js = family_json("bytelevel_nfc")
    records = conversations(6, seed=4)
    _, manifest = sft_store(tmp_path, encoders(js, "fastokens")[1], records, "rechecked")
    assert manifest["documents_rechecked_by_hf"] == manifest["documents"] == 6
    assert manifest["offsets_from_hf"] >= 1   # the NFD replies under NFC
    spec = spec_of(js, "fastokens")
    eos = Tokenizer.from_str(js).id_to_token(spec.eos_id)
    chat = ConversationEncoder(spec, chat_template=CHATML, special_tokens={"eos_token": eos},
                               stop_tokens=["<|im_end|>", eos], max_length=UNBOUNDED)
    pairs = PreferenceEncoder(chat, 64, 64)
    pair = pairs.render(__import__("medtrain.data.preference", fromlist=["parse_pair"]).parse_pair(
        {"prompt": "hi", "chosen": "yes", "rejected": "no"}))
    pairs.encode_batch([pair])
    assert pairs.counters().get("documents_rechecked_by_hf") == 2   # chosen and rejected
