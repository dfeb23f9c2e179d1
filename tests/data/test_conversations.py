"""SFT data: truncation at turn boundaries and its counters, malformed conversations (file and line,
or skipped and counted), the token store and the streaming path giving the same rows, and packed
conversations attending only to themselves."""

import json
import os

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from medtrain.data.collator import BlockCollator
from medtrain.data.rows import Row
from medtrain.errors import DataError
from medtrain.data.sources import find_files
from medtrain.data.token_store import StoreBuilder, TokenCorpus

from helpers.sft import CONVERSATIONS, decoded_spans, encode_path, make_encoder, record, write_format, write_records


@pytest.fixture
def tok(demo_dir):
    return AutoTokenizer.from_pretrained(demo_dir)


# --- truncation ------------------------------------------------------------------------------------
def test_truncation_keeps_whole_turns_then_cuts_then_drops(tok):
    system, turns = CONVERSATIONS[2]  # three turns
    enc = make_encoder(tok, "chatml")
    r = enc.render(system, turns)
    cuts = [0] + [c for span in r.spans for c in span]  # prompt, reply, prompt, reply ... (the last reply ends it)
    assert cuts[-1] == len(r.text)
    pieces = [len(tok(r.text[a:b], add_special_tokens=False)["input_ids"]) for a, b in zip(cuts, cuts[1:])]
    head, (p1, a1, p2, a2, p3, a3) = 0, pieces
    full = head + p1 + a1 + p2 + a2 + p3 + a3

    def encode(limit):
        e = make_encoder(tok, "chatml", max_length=limit)
        out = e.encode_batch([r])[0]
        return out, e.counters()

    (ids, mask), c = encode(full)  # fits exactly
    assert len(ids) == full and c == {"truncated": 0, "truncated_reply_cut": 0, "dropped_no_target": 0,
                                      "dropped_trailing_question": 0}
    (ids, mask), c = encode(full - 1)  # the third turn no longer fits: two whole turns are kept
    assert len(ids) == head + p1 + a1 + p2 + a2
    assert decoded_spans(tok, ids, mask) == [turns[0][1] + "<|im_end|>", turns[1][1] + "<|im_end|>"]
    assert c == {"truncated": 1, "truncated_reply_cut": 0, "dropped_no_target": 0, "dropped_trailing_question": 0}
    (ids, mask), c = encode(head + p1 + a1)  # exactly the first turn
    assert decoded_spans(tok, ids, mask) == [turns[0][1] + "<|im_end|>"] and c["truncated"] == 1
    (ids, mask), c = encode(head + p1 + 3)  # not even the first turn: its reply is cut (and counted)
    assert len(ids) == head + p1 + 3 and int(mask.sum()) == 3
    assert c == {"truncated": 1, "truncated_reply_cut": 1, "dropped_no_target": 0, "dropped_trailing_question": 0}
    out, c = encode(head + p1)  # no trained token would be left: dropped (and counted)
    assert out is None and c == {"truncated": 0, "truncated_reply_cut": 0, "dropped_no_target": 1,
                                 "dropped_trailing_question": 0}


def test_counters_reach_the_store_manifest(tok, tmp_path):
    long_turn = ("Question: " + "blood pressure " * 40, "Answer: " + "less salt " * 20)
    path = write_records(tmp_path / "d" / "c.jsonl",
                         [record("sharegpt", None, [("short?", "yes."), long_turn]),  # truncated to turn 1
                          record("sharegpt", None, [long_turn]),  # the prompt alone is too long: dropped
                          record("sharegpt", None, [("short?", "yes.")])])
    enc = make_encoder(tok, "plain", max_length=64)
    store = StoreBuilder(find_files([path]), enc, str(tmp_path / "cache"), show_progress=False).ensure()
    m = json.load(open(os.path.join(store, "manifest.json")))
    assert m["has_mask"] is True and m["documents"] == 2  # the one-turn long conversation is dropped
    assert m["truncated"] == 1 and m["dropped_no_target"] == 1
    corpus = TokenCorpus(store)
    assert corpus.summary()["truncated"] == 1 and corpus.summary()["dropped_no_target"] == 1
    assert int(corpus.doc_lengths.max()) <= 64


# --- malformed conversations ------------------------------------------------------------------------
GOOD = record("sharegpt", None, [("Is fever dangerous?", "Usually not, but see a doctor if it is very high.")])
BAD_LINES = {  # line number -> (record, reason, words in the message)
    2: ({"conversations": [{"value": "hi"}, {"from": "gpt", "value": "hello"}]}, "missing_role", "has no 'from'"),
    3: ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "  "}]}, "empty_reply",
        "message 2 (gpt) is empty"),
    5: ({"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"},
                           {"from": "gpt", "value": "c"}]}, "broken_alternation", "must alternate"),
    6: ({"conversations": [{"from": "doctor", "value": "hi"}, {"from": "gpt", "value": "x"}]}, "unknown_role",
        "unknown role"),
    8: ({"conversations": [{"from": "gpt", "value": "first"}, {"from": "human", "value": "b"}]},
        "broken_alternation", "message 1 (gpt) is from the assistant where the user was expected"),
    9: ({"conversations": [{"from": "human", "value": "no answer"}]}, "no_reply", "no assistant reply"),
    10: ({"messages": []}, "missing_field", "missing field 'conversations'"),
}


def bad_file(tmp_path):
    lines = [json.dumps(BAD_LINES[i][0]) if i in BAD_LINES else json.dumps(GOOD) for i in range(1, 12)]
    return write_records(tmp_path / "bad" / "chats.jsonl", lines)


@pytest.mark.parametrize("line", sorted(BAD_LINES))
def test_malformed_conversation_error_names_file_and_line(tok, tmp_path, line):
    lines = [json.dumps(GOOD)] * (line - 1) + [json.dumps(BAD_LINES[line][0])]
    path = write_records(tmp_path / "one.jsonl", lines)
    with pytest.raises(DataError) as e:
        encode_path(make_encoder(tok, "chatml"), path)
    assert str(e.value).startswith(f"{path}:{line}: ")
    assert BAD_LINES[line][2] in str(e.value) and "--skip_bad_lines" in str(e.value)


def test_malformed_conversations_skipped_and_counted(tok, tmp_path):
    encoded, skipped = encode_path(make_encoder(tok, "chatml"), bad_file(tmp_path), skip_bad=True)
    assert len(encoded) == 11 - len(BAD_LINES)
    expected = {}
    for _, reason, _ in BAD_LINES.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert skipped.to_dict() == expected
    assert any(":3" in e for e in skipped.examples)


def test_alpaca_array_and_parquet_errors_name_record_and_row(tok, tmp_path):
    rows = [record("alpaca", None, [("q1", "a1")]), {"instruction": "q2", "output": ""},
            record("alpaca", None, [("q3", "a3")])]
    path = write_records(tmp_path / "a.json", rows, array=True)
    with pytest.raises(DataError, match=r"a\.json:7 \(record 2\): 'output' is empty"):
        encode_path(make_encoder(tok, "alpaca"), path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"instruction": ["q1", "q2"], "input": ["", ""], "output": ["a1", None]}),
                   str(tmp_path / "p.parquet"))
    with pytest.raises(DataError, match=r"p\.parquet: row 2: missing field 'output'"):
        encode_path(make_encoder(tok, "alpaca"), tmp_path / "p.parquet")
    pq.write_table(pa.table({"instruction": ["q1", "q2"], "input": ["", "x"], "output": ["a1", "a2"]}),
                   str(tmp_path / "p.parquet"))
    encoded, _ = encode_path(make_encoder(tok, "alpaca"), tmp_path / "p.parquet")
    assert decoded_spans(tok, *encoded[1]) == ["a2</s>"]
    # nested columns: ShareGPT conversations in parquet
    pq.write_table(pa.Table.from_pylist([record("sharegpt", s, t) for s, t in CONVERSATIONS]),
                   str(tmp_path / "p.parquet"))
    encoded, _ = encode_path(make_encoder(tok, "chatml"), tmp_path / "p.parquet")
    assert [decoded_spans(tok, *e) for e in encoded] == [[a + "<|im_end|>" for _, a in t] for _, t in CONVERSATIONS]


def test_format_is_detected_per_file_and_text_files_are_refused(tok, tmp_path):
    d = tmp_path / "mixed"
    for fmt in ("sharegpt", "openai", "alpaca"):
        write_format(d, fmt)
    encoded, skipped = encode_path(make_encoder(tok, "vicuna"), d)
    assert len(encoded) == 3 * len(CONVERSATIONS) and skipped.total == 0
    # a forced format that does not match: every record is missing its field
    with pytest.raises(DataError, match="missing field 'messages'"):
        encode_path(make_encoder(tok, "vicuna", data_format="openai"), d / "sharegpt.jsonl")
    write_records(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"odd\.jsonl:1: cannot tell the conversation format"):
        encode_path(make_encoder(tok, "vicuna"), tmp_path / "odd.jsonl")
    (tmp_path / "t.txt").write_text("plain text\n")
    with pytest.raises(DataError, match="not plain text"):
        encode_path(make_encoder(tok, "vicuna"), tmp_path / "t.txt")


# --- the two data paths, and packing ----------------------------------------------------------------
def store_and_stream(tok, tmp_path, strategy, block_size=256):
    from medtrain.data.block_dataset import BlockDataset
    from medtrain.data.streaming import StreamingBlocks

    d = tmp_path / "data"
    write_format(d, "sharegpt")
    write_format(d, "alpaca")
    enc = make_encoder(tok, "chatml", max_length=block_size)
    files = find_files([str(d)])
    corpus = TokenCorpus(StoreBuilder(files, enc, str(tmp_path / "cache"), show_progress=False).ensure())
    store_rows = list(BlockDataset(corpus, corpus.blocks(block_size, strategy)))
    stream_rows = list(StreamingBlocks(files, enc, block_size, strategy, loop=False).rows())
    return store_rows, stream_rows


@pytest.mark.parametrize("strategy", ["none", "group_by_text"])
def test_store_and_streaming_give_the_same_rows_with_labels(tok, tmp_path, strategy):
    store_rows, stream_rows = store_and_stream(tok, tmp_path, strategy)
    assert len(store_rows) == len(stream_rows) == (6 if strategy == "none" else len(store_rows))
    for a, b in zip(store_rows, stream_rows):
        for k in ("input_ids", "labels", "piece_lengths"):
            assert np.array_equal(getattr(a, k), getattr(b, k)), k
    if strategy == "group_by_text":
        assert len(store_rows) < 6  # several conversations per row


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_conversation_logits_equal_its_logits_alone(tok, demo_dir, tmp_path, attn):
    from transformers import AutoModelForCausalLM

    rows, _ = store_and_stream(tok, tmp_path, "group_by_text", block_size=512)
    packed = next(r for r in rows if len(r.piece_lengths) >= 3)
    collate = BlockCollator(tok.pad_token_id, document_aware=True)
    batch = collate([packed])
    model = AutoModelForCausalLM.from_pretrained(demo_dir, attn_implementation=attn).eval()
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
    start = 0
    for n in packed.piece_lengths.tolist():
        ids = packed.input_ids[start: start + n]
        alone = collate([Row(ids, np.array([n]), labels=packed.labels[start: start + n])])
        with torch.no_grad():
            ref = model(input_ids=alone["input_ids"], use_cache=False).logits[0]
        assert torch.allclose(out[start: start + n], ref, atol=1e-5), (out[start: start + n] - ref).abs().max()
        # and the labels of the packed row are the conversation's own (its first token is a prompt token)
        assert torch.equal(batch["labels"][0, start: start + n], alone["labels"][0])
        assert batch["labels"][0, start] == -100
        start += n


def test_named_tool_use_template_renders_conversations_with_tools():
    """A tokenizer with named templates (default, tool_use) renders a conversation that comes with tool
    definitions by `tool_use` and the others by `default`, as apply_chat_template does."""
    from helpers.sft import chat_tokenizer

    default = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
               "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tool_use = ("<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n" + default.replace(
        "{{ m['content'] }}", "{{ m['content'] }}{% for c in m.tool_calls or [] %}<tool_call>{{ c.function | tojson }}"
        "</tool_call>{% endfor %}"))
    tok = chat_tokenizer(default, ["<|im_start|>", "<|im_end|>"], "<|im_end|>", texts=["Tools weather city"])
    tok.chat_template = {"default": default, "tool_use": tool_use}
    enc = make_encoder(tok)
    tools = [{"type": "function", "function": {"name": "weather", "description": "the weather",
                                                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    msgs = [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "Sunny."}]
    with_tools = enc.render(None, msgs, tools)
    assert with_tools.text == tok.apply_chat_template(msgs, tools=tools, tokenize=False)
    assert with_tools.text.startswith("<|im_start|>system\nTools: [")
    plain = enc.render(None, msgs)
    assert plain.text == tok.apply_chat_template(msgs, tokenize=False) and "Tools:" not in plain.text
    # the reply (and its end of turn) is the trained span in both
    for r in (with_tools, plain):
        (s, e), = r.spans
        assert r.text[s:e] == "Sunny.<|im_end|>"
    # both templates are part of the store's fingerprint
    tok.chat_template = {"default": default, "tool_use": tool_use.replace("Tools:", "Functions:")}
    assert make_encoder(tok).fingerprint != enc.fingerprint
