"""Preference pairs: the three input formats give the same stored pair, with exact ids (prompt as the
inference prompt, responses with their end of turn) and the mask 0/1/2; bad pairs give their message
(file and line) or their count; truncation is counted; the collator splits a row back into the two
sequences, the prompt shared, only response tokens in the completion mask."""

import json

import numpy as np
import pytest

from medtrain.data.preference import CHOSEN, PROMPT, REJECTED, PreferenceEncoder, split_pair
from medtrain.data.preference_collator import PreferenceCollator
from medtrain.data.rows import Row
from medtrain.data.sources import SkipCounter, find_files, plan_units
from medtrain.data.tokenization import spec_from_tokenizer
from medtrain.errors import DataError

from helpers.sft import write_records

SYSTEM = "You are a careful medical assistant."
HISTORY = [("What is asthma?", "A long-term disease of the airways.")]
QUESTION = "哮喘发作时怎么办？"
CHOSEN_TEXT = "Use the reliever inhaler and seek urgent care if it does not help."
REJECTED_TEXT = "Ignore it."

RECORDS = {
    "medicalgpt": {"conversations": [{"from": "system", "value": SYSTEM}, {"from": "human", "value": HISTORY[0][0]},
                                     {"from": "gpt", "value": HISTORY[0][1]}, {"from": "human", "value": QUESTION}],
                   "chosen": CHOSEN_TEXT, "rejected": REJECTED_TEXT},
    "medicalgpt_qa": {"system": SYSTEM, "history": [list(HISTORY[0])], "question": QUESTION,
                      "response_chosen": CHOSEN_TEXT, "response_rejected": REJECTED_TEXT},
    "trl": {"prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": HISTORY[0][0]},
                       {"role": "assistant", "content": HISTORY[0][1]}, {"role": "user", "content": QUESTION}],
            "chosen": [{"role": "assistant", "content": CHOSEN_TEXT}],
            "rejected": [{"role": "assistant", "content": REJECTED_TEXT}]},
}


def encoder(tokenizer, **kw):
    return PreferenceEncoder.from_tokenizer(tokenizer, spec_from_tokenizer(tokenizer, None, add_eos=False), "vicuna",
                                            **kw)


def encode_file(enc, path, skip_bad=False):
    skipped, docs = SkipCounter(), []
    for unit in plan_units(find_files([str(path)])):
        pairs = list(enc.read(unit, skip_bad, None, skipped))
        docs += enc.encode_batch([p for _, p in pairs])
    return docs, skipped


@pytest.mark.parametrize("fmt", list(RECORDS))
def test_each_format_stores_the_exact_pair(tokenizer, tmp_path, fmt):
    enc = encoder(tokenizer)
    (doc,), _ = encode_file(enc, write_records(tmp_path / "p.jsonl", [RECORDS[fmt]]))
    ids, mask = doc
    # independently: the prompt as transformers renders it for inference (the template saved with the
    # model), tokenized as one text; each response with its end-of-turn marker
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": HISTORY[0][0]},
                {"role": "assistant", "content": HISTORY[0][1]}, {"role": "user", "content": QUESTION}]
    prompt_text = tokenizer.apply_chat_template(messages, chat_template=enc.chat.jinja_template(), tokenize=False,
                                                add_generation_prompt=True)
    assert prompt_text.endswith(f"USER: {QUESTION} ASSISTANT: ")
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    chosen = tokenizer(CHOSEN_TEXT + "</s>", add_special_tokens=False)["input_ids"]
    rejected = tokenizer(REJECTED_TEXT + "</s>", add_special_tokens=False)["input_ids"]
    assert ids.tolist() == prompt + chosen + rejected
    assert mask.tolist() == [PROMPT] * len(prompt) + [CHOSEN] * len(chosen) + [REJECTED] * len(rejected)
    p, c, r = split_pair(ids, mask)
    assert p.tolist() == prompt and c.tolist() == chosen and r.tolist() == rejected
    assert c[-1] == r[-1] == tokenizer.eos_token_id  # the end of turn is part of each response


BAD = [
    ({"conversations": [{"from": "human", "value": "Q?"}], "chosen": "A."}, "missing_side", "missing 'rejected'"),
    ({"question": "Q?", "response_chosen": "A.", "response_rejected": None}, "missing_side",
     "missing 'response_rejected'"),
    ({"prompt": [{"role": "user", "content": "Q?"}], "chosen": [{"role": "assistant", "content": "Same."}],
      "rejected": [{"role": "assistant", "content": " Same. "}]}, "identical_sides", "are the same text"),
    ({"conversations": [{"from": "human", "value": "Q?"}], "chosen": "  ", "rejected": "B."}, "empty_response",
     "'chosen' is empty"),
    ({"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}], "chosen": "B.",
      "rejected": "C."}, "prompt_ends_with_reply", "ends with an assistant message"),
    ({"conversations": [{"from": "human", "value": ""}], "chosen": "B.", "rejected": "C."}, "empty_message", "empty"),
    ({"text": "not a pair"}, "unknown_format", "cannot tell the preference format"),
]


@pytest.mark.parametrize("record,reason,message", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_pairs_name_file_and_line_or_are_counted(tokenizer, tmp_path, record, reason, message):
    path = write_records(tmp_path / "bad.jsonl", [RECORDS["medicalgpt"], record, RECORDS["trl"]])
    with pytest.raises(DataError, match=f"bad.jsonl:2: .*{message}.*--skip_bad_lines"):
        encode_file(encoder(tokenizer), path)
    docs, skipped = encode_file(encoder(tokenizer), path, skip_bad=True)
    assert len(docs) == 2 and skipped.to_dict() == {reason: 1}


def test_truncation_is_counted(tokenizer, tmp_path):
    path = write_records(tmp_path / "p.jsonl", [RECORDS["medicalgpt"],
                                                {"question": "Q?", "response_chosen": "Take aspirin now, please.",
                                                 "response_rejected": "Take aspirin later, maybe."}])
    enc = encoder(tokenizer, max_source_length=12, max_target_length=2)
    docs, _ = encode_file(enc, path)
    counts = enc.counters()
    assert counts == {"truncated_prompt": 2, "truncated_chosen": 2, "truncated_rejected": 2,
                      "dropped_identical_after_truncation": 1}  # "Take aspirin" on both sides of the second pair
    (ids, mask), = [d for d in docs if d is not None]
    p, c, r = split_pair(ids, mask)
    full = encoder(tokenizer).encode_batch([next(iter(encoder(tokenizer).read(
        plan_units(find_files([path]))[0])))[1]])[0]
    fp, fc, fr = split_pair(*full)
    assert p.tolist() == fp[-12:].tolist()  # the prompt keeps its end: the question answered
    assert c.tolist() == fc[:2].tolist() and r.tolist() == fr[:2].tolist()


def test_collator_splits_pairs_and_masks_only_responses():
    rows = []
    for prompt, chosen, rejected in (([5, 6, 7], [8, 9], [10]), ([11], [12], [13, 14, 15])):
        ids = np.array(prompt + chosen + rejected)
        mask = np.array([0] * len(prompt) + [1] * len(chosen) + [2] * len(rejected), dtype=np.uint8)
        rows.append(Row(ids, np.array([len(ids)]), np.where(mask > 0, ids, -100), mask=mask))
    batch = PreferenceCollator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [11, 12, 0, 0, 0], [5, 6, 7, 10, 0], [11, 13, 14, 15, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]]
    assert batch["completion_mask"].tolist() == [[0, 0, 0, 1, 1], [0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 1, 1, 1, 0]]
    assert batch["_meta"].real_tokens == 5 + 2 + 4 + 4


def test_collator_refuses_a_row_that_is_not_one_pair():
    ids = np.array([5, 6, 8, 9, 10])
    packed = Row(ids, np.array([3, 2]), ids.copy(), mask=np.array([0, 1, 2, 0, 1], dtype=np.uint8))
    with pytest.raises(DataError, match="not one whole preference pair.*--packing_strategy none"):
        PreferenceCollator(0)([packed])
    cut = Row(ids[:3], np.array([3]), ids[:3].copy(), mask=np.array([0, 0, 1], dtype=np.uint8))  # no rejected side
    with pytest.raises(DataError, match="not one whole preference pair"):
        PreferenceCollator(0)([cut])


def test_store_is_reused_across_runs(tokenizer):
    a, b = encoder(tokenizer), encoder(tokenizer)
    assert a.fingerprint == b.fingerprint
    assert encoder(tokenizer, max_target_length=64).fingerprint != a.fingerprint
    import pickle

    assert pickle.loads(pickle.dumps(a)).fingerprint == a.fingerprint
    assert json.dumps(a.describe())
