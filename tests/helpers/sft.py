"""Helpers shared by the SFT tests: writing conversations in each input format, encoding files."""

import json
import os

from medtrain.data.conversations import ConversationEncoder
from medtrain.cli.sft import trained_spans
from medtrain.data.sources import SkipCounter, find_files, plan_units
from medtrain.data.tokenization import spec_from_tokenizer

SYSTEM = "You are a careful medical assistant."
CONVERSATIONS = [
    (None, [("What are the symptoms of asthma?", "Wheezing, cough and chest tightness.")]),
    (SYSTEM, [("What is hypertension?", "Persistently raised blood pressure."),
              ("How is it treated?", "Less salt, exercise and, if needed, medicines such as amlodipine.")]),
    ("你是一名医学助手。", [("糖尿病有哪些症状？", "口渴、多尿和乏力。"), ("需要复查吗？", "每三个月查一次糖化血红蛋白。"),
                           ("谢谢！", "不客气，祝您健康。")]),
]
STOPS = {"vicuna": "</s>", "alpaca": "</s>", "plain": "</s>", "chatml": "<|im_end|>", "llama3": "<|eot_id|>"}


def record(fmt, system, turns):
    """One conversation as a record of `fmt` (sharegpt, openai or alpaca)."""
    if fmt == "sharegpt":
        conv = [{"from": "system", "value": system}] if system else []
        for q, a in turns:
            conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        return {"conversations": conv}
    if fmt == "openai":
        msgs = [{"role": "system", "content": system}] if system else []
        for q, a in turns:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return {"messages": msgs}
    row = {"instruction": turns[-1][0], "input": "", "output": turns[-1][1]}
    if len(turns) > 1:
        row["history"] = [list(t) for t in turns[:-1]]
    if system:
        row["system"] = system
    return row


def write_records(path, records, array=False):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        if array:
            json.dump(records, fh, ensure_ascii=False, indent=1)
        else:
            for r in records:
                fh.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return str(path)


def write_format(directory, fmt, conversations=CONVERSATIONS, name=None):
    recs = [record(fmt, s, t) for s, t in conversations]
    ext = "json" if fmt == "alpaca" else "jsonl"
    return write_records(os.path.join(str(directory), name or f"{fmt}.{ext}"), recs, array=fmt == "alpaca")


def make_encoder(tokenizer, template="auto", **kw):
    return ConversationEncoder.from_tokenizer(tokenizer, spec_from_tokenizer(tokenizer, add_eos=False), template, **kw)


def encode_path(encoder, path, skip_bad=False, max_chars=None):
    """[(ids, mask) or None] for every conversation read from `path`, and the skip counter."""
    skipped, out = SkipCounter(), []
    for unit in plan_units(find_files([str(path)])):
        for _, rendered in encoder.read(unit, skip_bad, max_chars, skipped):
            out.append(encoder.encode_batch([rendered])[0])
    return out, skipped


def decoded_spans(tokenizer, ids, mask):
    return [tokenizer.decode(s, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            for s in trained_spans(ids, mask)]


# ---- tiny tokenizers carrying a chat template, and the reference tokenization of a rendered conversation ----
def chat_tokenizer(template, specials, eos, bos=None, texts=(), kind="bytelevel"):
    """A tiny tokenizer (byte-level BPE, or SentencePiece-style: "▁" for spaces, byte fallback) trained in
    milliseconds on `texts`, with `specials` added as special tokens and `template` as its chat_template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts) + ["system user assistant model tool \n\n\n"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=kind == "sentencepiece"))
    if kind == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet, reserved = pre_tokenizers.ByteLevel.alphabet(), ["<unk>"]
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split("\n", "isolated"),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)])
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁",
                                                                                      prepend_scheme="first")])
        alphabet = sorted(set("".join(texts)) - {" "}) + ["▁"]
        reserved = ["<unk>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300 + len(reserved), special_tokens=reserved,
                                                       initial_alphabet=alphabet, show_progress=False))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=bos, unk_token="<unk>")
    hf.chat_template = template
    return hf


def reference_encoding(tokenizer, pieces):
    """(text, ids, trained) of a conversation given as (text, trained) pieces in order, trained being
    True, False or "eos" (the tokenizer's EOS, appended where the template renders no end of turn): the
    documented rule, computed apart from the encoder: the text is tokenized whole except that it is cut
    before each trained span (the part after a cut tokenized as a continuation, behind a special token)."""
    text, spans, eos_after = "", [], []
    for piece, trained in pieces:
        if trained == "eos":
            eos_after.append(len(text))
            continue
        if trained:
            if spans and spans[-1][1] == len(text):
                spans[-1] = (spans[-1][0], len(text) + len(piece))
            else:
                spans.append((len(text), len(text) + len(piece)))
        text += piece
    cuts = sorted({0} | {s for s, _ in spans} | {p for p in eos_after if p < len(text)})
    ids, trained = [], []
    for a, b in zip(cuts, cuts[1:] + [len(text)]):
        lead = tokenizer.eos_token if a else ""
        enc = tokenizer(lead + text[a:b], add_special_tokens=False, return_offsets_mapping=True)
        for i, (x, y) in list(zip(enc["input_ids"], enc["offset_mapping"]))[1 if lead else 0:]:
            x, y = x - len(lead) + a, y - len(lead) + a
            ids.append(i)
            trained.append(any(x < e and y > s for s, e in spans))
        if b in eos_after:
            ids.append(tokenizer.eos_token_id)
            trained.append(True)
    return text, ids, trained
