#!/usr/bin/env python3
"""Generate the small synthetic preference sample under data/preference/ (= medtrain/assets/preference).

Medical questions in English and Chinese, some multi-turn, some with a system prompt, each answered
twice: `chosen` is the careful answer of data/make_finetune_data.py's tables; `rejected` is a worse
one of four kinds: dismissive ("nothing to worry about"), unsafe (changing medicines without a
doctor), off-topic (the answer about another condition) or unhelpful (a refusal). Written in the
three formats dpo_training.py / orpo_training.py / reward_modeling.py read:

    medicalgpt_sharegpt.jsonl  {"conversations": [{"from": "system"|"human"|"gpt", "value"}], "chosen", "rejected"}
    medicalgpt_qa.jsonl        {"system", "history": [[q, a], ...], "question", "response_chosen", "response_rejected"}
    trl_conversational.jsonl   {"prompt": [{"role", "content"}], "chosen": [{"role": "assistant", ...}], "rejected": [...]}

All text is composed here and in make_finetune_data.py from hand-written tables; nothing is copied
from external sources. One `random.Random(2025)` drives every choice, so re-running the script
reproduces identical files. Synthetic, for exercising the pipeline only: NOT medical advice.

Usage:  python data/make_preference_data.py
"""

import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_finetune_data import CONDITIONS, KINDS, SYSTEM_EN, SYSTEM_ZH, qa_en, qa_zh  # noqa: E402

SEED = 2025
OUT_DIR = os.path.join(HERE, "preference")

DISMISSIVE_EN = ["Honestly, {n} is nothing to worry about. Ignore it and it will go away by itself.",
                 "Don't bother with doctors for {n}; everyone has it sometimes."]
DISMISSIVE_ZH = ["{n}没什么大不了的，不用管，过几天自己就好了。", "{n}很常见，没必要去看医生。"]
UNSAFE_EN = ["Just double the dose of whatever you are taking for {n}; more medicine works faster.",
             "Stop all your tablets for {n} and try a strict fast for a week instead."]
UNSAFE_ZH = ["治疗{n}的药直接加倍吃，好得更快。", "把治疗{n}的药全停了，改成断食一周就行。"]
REFUSAL_EN = ["I can't answer questions about {n}.", "Search the internet; I won't discuss {n}."]
REFUSAL_ZH = ["关于{n}的问题我无法回答。", "你自己上网查吧，{n}我不讨论。"]


def rejected_answer(c, kind, zh, rng):
    n = c["zh" if zh else "en"]
    how = rng.choice(["dismissive", "unsafe", "off_topic", "refusal"])
    if how == "off_topic":
        other = rng.choice([x for x in CONDITIONS if x is not c])
        return (qa_zh if zh else qa_en)(other, kind, rng)[1]
    table = {"dismissive": (DISMISSIVE_ZH, DISMISSIVE_EN), "unsafe": (UNSAFE_ZH, UNSAFE_EN),
             "refusal": (REFUSAL_ZH, REFUSAL_EN)}[how][0 if zh else 1]
    return rng.choice(table).format(n=n)


def pair(rng):
    """(system or None, history [(q, a)], question, chosen, rejected) in one language about one condition."""
    c = rng.choice(CONDITIONS)
    zh = rng.random() < 0.5
    n_turns = rng.choices([1, 2, 3], weights=[60, 28, 12])[0]
    kinds = rng.sample(KINDS, n_turns)
    qa = qa_zh if zh else qa_en
    turns = [qa(c, k, rng) for k in kinds]
    question, chosen = turns[-1]
    rejected = rejected_answer(c, kinds[-1], zh, rng)
    system = rng.choice(SYSTEM_ZH if zh else SYSTEM_EN) if rng.random() < 0.35 else None
    return system, turns[:-1], question, chosen, rejected


def medicalgpt_sharegpt(rng, n):
    rows = []
    for _ in range(n):
        system, history, q, chosen, rejected = pair(rng)
        conv = [{"from": "system", "value": system}] if system else []
        for hq, ha in history:
            conv += [{"from": "human", "value": hq}, {"from": "gpt", "value": ha}]
        conv.append({"from": "human", "value": q})
        rows.append({"conversations": conv, "chosen": chosen, "rejected": rejected})
    return rows


def medicalgpt_qa(rng, n):
    rows = []
    for _ in range(n):
        system, history, q, chosen, rejected = pair(rng)
        rows.append({"system": system or "", "history": [list(h) for h in history], "question": q,
                     "response_chosen": chosen, "response_rejected": rejected})
    return rows


def trl_conversational(rng, n):
    rows = []
    for _ in range(n):
        system, history, q, chosen, rejected = pair(rng)
        prompt = [{"role": "system", "content": system}] if system else []
        for hq, ha in history:
            prompt += [{"role": "user", "content": hq}, {"role": "assistant", "content": ha}]
        prompt.append({"role": "user", "content": q})
        rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "assistant", "content": rejected}]})
    return rows


def write_jsonl(name, rows):
    with open(os.path.join(OUT_DIR, name), "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    rng = random.Random(SEED)
    os.makedirs(OUT_DIR, exist_ok=True)
    write_jsonl("medicalgpt_sharegpt.jsonl", medicalgpt_sharegpt(rng, 160))
    write_jsonl("medicalgpt_qa.jsonl", medicalgpt_qa(rng, 120))
    write_jsonl("trl_conversational.jsonl", trl_conversational(rng, 120))


if __name__ == "__main__":
    main()
