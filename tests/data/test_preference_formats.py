"""TRL's preference formats (standard and conversational; explicit and implicit prompt): each gives the
pair of its explicit equivalent, token for token; each bad implicit record gives its message (file and
line) or its count; TRL's unpaired (KTO) and prompt-completion records are refused by name."""

import pytest

from medtrain.data.chat_records import BadRecord
from medtrain.data.preference import PreferenceEncoder, parse_pair
from medtrain.data.sources import SkipCounter, find_files, plan_units
from medtrain.data.tokenization import spec_from_tokenizer
from medtrain.errors import DataError

from helpers.sft import write_records

SYSTEM = {"role": "system", "content": "You are a careful medical assistant."}
U1 = {"role": "user", "content": "What is asthma?"}
A1 = {"role": "assistant", "content": "A long-term disease of the airways."}
U2 = {"role": "user", "content": "哮喘发作时怎么办？"}
GOOD = {"role": "assistant", "content": "Use the reliever inhaler and seek urgent care if it does not help."}
BAD = {"role": "assistant", "content": "Ignore it."}
PROMPT = [SYSTEM, U1, A1, U2]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]

# (name, TRL record, its explicit equivalent)
EQUIVALENT = [
    ("conversational_implicit", {"chosen": PROMPT + [GOOD], "rejected": PROMPT + [BAD]},
     {"prompt": PROMPT, "chosen": [GOOD], "rejected": [BAD]}),
    # TRL's datasets (e.g. trl-lib's *-trl-style) carry the question as a string next to whole conversations
    ("conversational_implicit_prompt_string", {"prompt": U2["content"], "chosen": PROMPT + [GOOD],
                                               "rejected": PROMPT + [BAD]},
     {"prompt": PROMPT, "chosen": [GOOD], "rejected": [BAD]}),
    ("conversational_implicit_null_prompt", {"prompt": None, "chosen": PROMPT + [GOOD], "rejected": PROMPT + [BAD]},
     {"prompt": PROMPT, "chosen": [GOOD], "rejected": [BAD]}),
    ("conversational_implicit_prompt_list", {"prompt": PROMPT, "chosen": PROMPT + [GOOD], "rejected": PROMPT + [BAD]},
     {"prompt": PROMPT, "chosen": [GOOD], "rejected": [BAD]}),
    ("conversational_explicit_string_sides",
     {"prompt": PROMPT, "chosen": GOOD["content"], "rejected": BAD["content"]},
     {"prompt": PROMPT, "chosen": [GOOD], "rejected": [BAD]}),
    ("standard_explicit", {"prompt": U2["content"], "chosen": GOOD["content"], "rejected": BAD["content"]},
     {"prompt": [U2], "chosen": [GOOD], "rejected": [BAD]}),
    # TRL's split: the common prefix "Is fever dangerous? " loses its trailing space to the responses
    ("standard_implicit",
     {"chosen": "Is fever dangerous? It can be; see a doctor.", "rejected": "Is fever dangerous? No."},
     {"prompt": "Is fever dangerous?", "chosen": " It can be; see a doctor.", "rejected": " No."}),
    ("standard_implicit_mid_sentence", {"chosen": "Is fever dangerous? It can be serious.",
                                        "rejected": "Is fever dangerous? It can be ignored."},
     {"prompt": "Is fever dangerous? It can be", "chosen": " serious.", "rejected": " ignored."}),
    # a reply with tool calls or reasoning keeps them in the implicit form too
    ("conversational_implicit_tools", {"tools": TOOLS, "chosen": [U2, {"role": "assistant", "content": "Checking.",
                                                                       "reasoning_content": "Look it up first."}],
                                       "rejected": [U2, BAD]},
     {"tools": TOOLS, "prompt": [U2],
      "chosen": [{"role": "assistant", "content": "Checking.", "reasoning_content": "Look it up first."}],
      "rejected": [BAD]}),
]


def encoder(tokenizer):
    return PreferenceEncoder.from_tokenizer(tokenizer, spec_from_tokenizer(tokenizer, None, add_eos=False), "vicuna")


def encode(enc, record):
    return enc.encode_batch([enc.render(parse_pair(record))])[0]


@pytest.mark.parametrize("name,record,explicit", EQUIVALENT, ids=[e[0] for e in EQUIVALENT])
def test_trl_format_gives_the_pair_of_its_explicit_equivalent(tokenizer, name, record, explicit):
    assert parse_pair(record) == parse_pair(explicit)
    enc = encoder(tokenizer)
    (ids, mask), (ids_x, mask_x) = encode(enc, record), encode(enc, explicit)
    assert ids.tolist() == ids_x.tolist() and mask.tolist() == mask_x.tolist()


def test_implicit_conversation_splits_at_the_last_shared_message(tokenizer):
    pair = parse_pair({"chosen": PROMPT + [GOOD], "rejected": PROMPT + [BAD]})
    # system apart, the prompt turns are the shared ones; each side ends with its own reply
    assert pair.chosen.system == SYSTEM["content"]
    assert [m["content"] for m in pair.chosen.messages] == [U1["content"], A1["content"], U2["content"],
                                                            GOOD["content"]]
    assert pair.rejected.messages[-1]["content"] == BAD["content"]
    # and the stored ids: prompt ids = the inference prompt, as for the explicit record (test_preference_pairs)
    enc = encoder(tokenizer)
    ids, mask = encode(enc, {"chosen": PROMPT + [GOOD], "rejected": PROMPT + [BAD]})
    reply = tokenizer(BAD["content"] + "</s>", add_special_tokens=False)["input_ids"]
    assert ids[mask == 2].tolist() == reply


def test_implicit_text_prompt_is_the_common_characters():
    pair = parse_pair({"chosen": "Is fever dangerous? It can be serious.",
                       "rejected": "Is fever dangerous? It can be ignored."})
    assert pair.chosen.messages[0] == {"role": "user", "content": "Is fever dangerous? It can be"}
    assert pair.chosen.messages[-1]["content"] == " serious."
    assert pair.rejected.messages[-1]["content"] == " ignored."


BAD_IMPLICIT = [
    ("no_shared_message", {"chosen": [U1, GOOD], "rejected": [U2, BAD]}, "implicit_no_prompt",
     "share no first message, so there is no common prompt"),
    ("one_is_prefix", {"chosen": PROMPT, "rejected": PROMPT + [BAD]}, "implicit_no_response",
     "'chosen' is the start of 'rejected' \\(4 shared messages\\): it has no reply of its own"),
    ("earlier_turn_differs", {"chosen": [SYSTEM, U1, A1, U2, GOOD],
                              "rejected": [SYSTEM, U1, {"role": "assistant", "content": "Not sure."}, U2, BAD]},
     "implicit_not_a_reply", "after the 2 message\\(s\\) that 'chosen' and 'rejected' share, 'chosen' goes on with "
                             "assistant, user, assistant, not with the assistant's reply alone"),
    ("user_turn_differs", {"chosen": [SYSTEM, U1, GOOD], "rejected": [SYSTEM, U2, BAD]}, "implicit_not_a_reply",
     "'chosen' goes on with user, assistant, not with the assistant's reply alone"),
    ("two_replies", {"chosen": [U1, GOOD, A1], "rejected": [U1, BAD]}, "implicit_not_a_reply",
     "'chosen' has 2 messages \\(assistant, assistant\\): each side must end with ONE assistant reply"),
    ("same_conversation", {"chosen": [U1, GOOD], "rejected": [U1, GOOD]}, "identical_sides",
     "the same conversation"),
    ("text_no_common_start", {"chosen": "Yes, see a doctor.", "rejected": "No."}, "implicit_no_prompt",
     "have no common beginning, so there is no prompt"),
    ("text_prefix", {"chosen": "Is fever dangerous? No", "rejected": "Is fever dangerous? No, never."},
     "implicit_no_response", "'chosen' is the start of 'rejected'"),
    ("one_side_only", {"chosen": PROMPT + [GOOD]}, "missing_side", "missing 'rejected'"),
    ("text_empty_side", {"chosen": "Is fever dangerous? No.", "rejected": "  "}, "empty_response",
     "'rejected' is empty"),
    ("mixed_sides", {"chosen": "Is fever dangerous? No.", "rejected": [U1, BAD]}, "bad_response",
     "'chosen' is str, 'rejected' is a conversation"),
    ("prompt_mismatch", {"prompt": "Something else?", "chosen": [U1, GOOD], "rejected": [U1, BAD]},
     "prompt_mismatch", "'prompt' is neither the messages that 'chosen' and 'rejected' share"),
    ("kto", {"prompt": "Is fever dangerous?", "completion": "No.", "label": False}, "unpaired_format",
     "TRL's unpaired preference format \\('prompt' \\+ 'completion' \\+ 'label', for KTO\\)"),
    ("prompt_completion", {"prompt": [U1], "completion": [GOOD]}, "unpaired_format",
     "TRL's prompt-completion format"),
]


@pytest.mark.parametrize("name,record,reason,message", BAD_IMPLICIT, ids=[b[0] for b in BAD_IMPLICIT])
def test_bad_trl_records_give_their_message_or_count(tokenizer, tmp_path, name, record, reason, message):
    with pytest.raises(BadRecord, match=message) as e:
        parse_pair(record)
    assert e.value.reason == reason
    # through the reader: file and line, or a count by reason with --skip_bad_lines
    path = write_records(tmp_path / "pairs.jsonl", [EQUIVALENT[0][1], record, EQUIVALENT[5][1]])
    unit, = plan_units(find_files([path]))
    with pytest.raises(DataError, match=f"pairs.jsonl:2: .*({message}).*--skip_bad_lines"):
        list(encoder(tokenizer).read(unit))
    skipped = SkipCounter()
    assert len(list(encoder(tokenizer).read(unit, True, None, skipped))) == 2
    assert skipped.to_dict() == {reason: 1}
