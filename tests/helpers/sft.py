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
