"""SFT on the chat templates of current model families (`family_templates`: templates of our own writing
in each family's format, each with a plain-Python reference renderer), on a byte-level and a
SentencePiece-style tiny tokenizer: exactly the reply tokens and their end of turn are trained, token
by token, compared with the reference; the ids are the model's (whole-string tokenization, prompts as
at inference); conversations built to confuse a text search; reasoning; tool calls; the preview's
labels are the collator's."""

import numpy as np
import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from medtrain.data.chat_records import from_turns
from medtrain.data.conversations import ConversationEncoder
from medtrain.data.tokenization import spec_from_tokenizer

from family_templates import FAMILIES

SYSTEM = "Answer briefly. A good answer here is: drink more water"
CONVERSATIONS = {
    # the reply's text also in the system prompt, in the same question and in a later one
    "repeated_text": (SYSTEM, from_turns([("Please repeat exactly: drink more water", "drink more water"),
                                          ("And now drink more water in capitals.", "DRINK MORE WATER")])),
    # replies equal to words of the templates' headers
    "header_words": (None, from_turns([("Say assistant", "assistant"), ("Say user", "user"), ("Say model", "model")])),
    # whitespace around replies; Chinese and English
    "whitespace_zh": ("你是一名医学助手。", from_turns([("糖尿病有哪些症状？", "  口渴、多尿和乏力。 "),
                                                 ("Thanks!", "\nYou are welcome.\n")])),
    # reasoning in two turns
    "reasoning": (None, from_turns([("Is salt bad?", "<think>\nsalt raises pressure\n</think>\n\nIn excess, yes."),
                                    ("How much?", "<think>\nWHO: under 5 g\n</think>\n\nUnder 5 g a day.")])),
}
TOOLS = [{"type": "function", "function": {"name": "bmi", "description": "Body mass index",
                                           "parameters": {"type": "object", "properties": {"kg": {"type": "number"}}}}}]
TOOL_CONVERSATION = (None, [
    {"role": "user", "content": "My BMI? I weigh 70 kg."},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "bmi",
                                                                                          "arguments": {"kg": 70}}}]},
    {"role": "tool", "content": "{\"bmi\": 22.9}"},
    {"role": "assistant", "content": "Your BMI is 22.9."}], TOOLS)


def corpus():
    texts = []
    for system, messages in CONVERSATIONS.values():
        texts += [system or ""] + [m["content"] for m in messages]
    texts += ["Cutting Knowledge Date: December 2023 Today Date: 26 Jul 2024 You are Qwen, a helpful assistant. "
              "Tools tools bmi kg name arguments type function Body mass index 22.9 70 [INST] [/INST] "
              "system user assistant model <think> </think> \n\n\n"]
    return texts


def build_tokenizer(kind, specials, template, eos, bos):
    """A tiny tokenizer of the family's kind with its special tokens (as transformers 5 builds them)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=kind == "sentencepiece"))
    if kind == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:  # SentencePiece-style: "▁" for spaces, prepended to the first piece of a text only
        # (newlines kept apart, as the byte tokens of real SentencePiece vocabularies mostly are)
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split("\n", "isolated"),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)])
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁",
                                                                                      prepend_scheme="first")])
        alphabet = sorted(set("".join(corpus())) - {" "}) + ["▁"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>"] + [f"<0x{i:02X}>" for i in range(256)]
                                  if kind == "sentencepiece" else ["<unk>"], initial_alphabet=alphabet,
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=bos, unk_token="<unk>")
    hf.chat_template = template
    return hf


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    return request.param


@pytest.fixture(scope="module", params=["bytelevel", "sentencepiece"])
def tok(request, family):
    template, _, specials, eos, bos, _, _ = FAMILIES[family]
    return build_tokenizer(request.param, specials, template, eos, bos)


def expected(family, tok, system, messages, tools=None):
    """The independent computation: the reference text, its ids and per token whether it is trained.
    The ids follow the documented rule: the text is tokenized whole except that no token crosses the
    start of a reply (the text before a reply is tokenized as the inference prompt is; the reply as a
    continuation: after a special token, whose id is then dropped); EOS is in the reference text where
    the family renders no end of turn."""
    pieces = FAMILIES[family][1](system, messages, tools)
    text, spans = "", []
    for piece, trained in pieces:
        if trained:
            spans.append((len(text), len(text) + len(piece)))
        text += piece
    starts = sorted({s for s, _ in spans} | {0})
    ids, trained = [], []
    anchor = tok.eos_token
    for a, b in zip(starts, starts[1:] + [len(text)]):
        lead = "" if a == 0 else anchor
        enc = tok(lead + text[a:b], add_special_tokens=False, return_offsets_mapping=True)
        skip = 1 if lead else 0
        for i, (x, y) in list(zip(enc["input_ids"], enc["offset_mapping"]))[skip:]:
            x, y = x - len(lead) + a, y - len(lead) + a
            ids.append(i)
            trained.append(any(x < e and y > s for s, e in spans))
    return text, ids, trained


def encode(tok, system, messages, tools=None):
    enc = ConversationEncoder.from_tokenizer(tok, spec_from_tokenizer(tok, add_eos=False), "auto", max_length=4096)
    return enc, enc.encode_batch([enc.render(system, messages, tools)])[0]


def hf_messages(system, messages):
    return ([{"role": "system", "content": system}] if system else []) + [
        {k: v for k, v in m.items() if k != "raw"} for m in messages]


def parsed(messages):
    """The messages as the encoder reads them from a record (reasoning split from the reply's text)."""
    from medtrain.data.chat_records import split_reasoning

    out = []
    for m in messages:
        m = dict(m)
        if m["role"] == "assistant":
            r, a = split_reasoning(m["content"], "reply")
            if r is not None:
                m.update(raw=m["content"], content=a, reasoning_content=r)
        out.append(m)
    return out


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_exactly_the_replies_and_their_end_of_turn_are_trained(family, tok, name):
    system, messages = CONVERSATIONS[name]
    text, ref_ids, ref_trained = expected(family, tok, system, messages)
    enc, (ids, mask) = encode(tok, system, parsed(messages))
    eos_appended = family == "glm4"
    # the template of our writing renders the family's format (the reference), byte for byte
    if not eos_appended:
        assert tok.apply_chat_template(hf_messages(system, messages), tokenize=False) == text
        assert ids.tolist() == ref_ids
        whole = tok.apply_chat_template(hf_messages(system, messages), tokenize=True, return_dict=False)
        assert tok.decode(whole) == tok.decode(ids.tolist())  # the same text: no token added or lost
    else:  # the reference text carries the appended EOS; the template's own rendering has none
        assert tok.apply_chat_template(hf_messages(system, messages), tokenize=False) == text.replace("<|endoftext|>", "")
        assert ids.tolist() == ref_ids
    assert mask.astype(bool).tolist() == ref_trained, [
        (tok.decode([i]), m, r) for i, m, r in zip(ids, mask, ref_trained) if bool(m) != r]


def test_prompt_ids_are_the_inference_prompt(family, tok):
    """Before each reply, the ids are apply_chat_template(history, add_generation_prompt=True)'s, for the
    families whose inference prompt is a prefix of the conversation (mistral0.3: without a system prompt)."""
    prefix = FAMILIES[family][5]
    if prefix is False:
        pytest.skip(f"{family}'s prompt opens a think block that the conversation's rendering does not have")
    for name, (system, messages) in CONVERSATIONS.items():
        if prefix == "no_system" and system:
            continue
        _, (ids, mask) = encode(tok, system, parsed(messages))
        starts = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8)])) == 1)
        replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        assert len(starts) == len(replies)
        for n, (start, k) in enumerate(zip(starts, replies)):
            if family == "glm4" and n:  # the EOS appended to earlier replies is not in the inference prompt
                continue
            prompt = tok.apply_chat_template(hf_messages(system, messages[:k]), add_generation_prompt=True,
                                             tokenize=True, return_dict=False)
            if n == 0 or crosses_no_reply_start(tok, system, messages[:k]):
                assert ids[:start].tolist() == prompt, (name, k)
            else:  # the documented exception: the inference tokenization merges across an earlier reply's start
                assert tok.decode(ids[:start].tolist()) == tok.decode(prompt), (name, k)


def crosses_no_reply_start(tok, system, history):
    """Whether the whole-string tokenization of the inference prompt begins, at the start of every
    earlier reply in it, with that earlier reply's own inference prompt's ids (the rule can honour
    every prompt at once only then)."""
    text = tok.apply_chat_template(hf_messages(system, history), add_generation_prompt=True, tokenize=False)
    whole = tok(text, add_special_tokens=False)["input_ids"]
    for k, m in enumerate(history):
        if m["role"] == "assistant":
            earlier = tok.apply_chat_template(hf_messages(system, history[:k]), add_generation_prompt=True,
                                              tokenize=True, return_dict=False)
            if whole[:len(earlier)] != earlier:
                return False
    return True


def test_tool_calls_trained_results_and_definitions_not(tok, family):
    if not FAMILIES[family][6]:
        pytest.skip(f"{family}'s template of our writing renders no tools")
    system, messages, tools = TOOL_CONVERSATION
    text, ref_ids, ref_trained = expected(family, tok, system, messages, tools)
    assert tok.apply_chat_template(hf_messages(system, messages), tools=tools, tokenize=False) == text
    _, (ids, mask) = encode(tok, system, messages, tools)
    assert ids.tolist() == ref_ids and mask.astype(bool).tolist() == ref_trained
    trained = tok.decode(ids[mask == 1].tolist())
    assert '"name": "bmi"' in trained and "Your BMI is 22.9." in trained
    untrained = tok.decode(ids[mask == 0].tolist())
    assert "22.9}" in untrained and "Body mass index" in untrained


def test_no_end_of_turn_marker_means_eos_appended(caplog):
    tok = build_tokenizer("bytelevel", FAMILIES["glm4"][2], FAMILIES["glm4"][0], "<|endoftext|>", None)
    with caplog.at_level("WARNING"):
        _, (ids, mask) = encode(tok, None, CONVERSATIONS["header_words"][1])
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    assert (ids == eos).sum() == 3 and mask[ids == eos].all()
    assert "renders no end-of-turn marker" in caplog.text and "EOS is appended" in caplog.text


def test_unlocatable_reply_is_an_error_naming_template_file_and_line(tmp_path):
    """A template that renders each reply twice cannot be located: DataError with file:line and cause."""
    from medtrain.errors import DataError

    from helpers.sft import encode_path, record, write_records

    twice = ("{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
             "{%- if m.role == 'assistant' %}{{- '(' + m.content + ')' }}{%- endif %}{%- endfor %}"
             "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
    tok = build_tokenizer("bytelevel", FAMILIES["yi"][2], twice, "<|im_end|>", None)
    path = write_records(tmp_path / "c.jsonl", [record("sharegpt", None, [("q", "a")])] * 2)
    enc = ConversationEncoder.from_tokenizer(tok, spec_from_tokenizer(tok, add_eos=False))
    with pytest.raises(DataError, match=r"c\.jsonl:1: the chat_template of .* does not render a plain two-turn "
                                        r"conversation with each message once"):
        encode_path(enc, path)


def test_preview_labels_equal_the_collators(tmp_path):
    import json

    from medtrain.cli.sft import sample_json
    from medtrain.data.block_dataset import BlockDataset
    from medtrain.data.collator import BlockCollator
    from medtrain.data.sources import find_files
    from medtrain.data.token_store import StoreBuilder, TokenCorpus

    from helpers.sft import record, write_records

    tok = build_tokenizer("sentencepiece", FAMILIES["qwen3"][2], FAMILIES["qwen3"][0], "<|im_end|>", None)
    tok.pad_token = "<unk>"
    path = write_records(tmp_path / "d" / "c.jsonl", [
        {"conversations": [{"from": "system", "value": s}] * bool(s) + [
            {"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]} for m in msgs]}
        for s, msgs in CONVERSATIONS.values()] + [record("sharegpt", None, [("a?", "b.")])])
    enc = ConversationEncoder.from_tokenizer(tok, spec_from_tokenizer(tok, add_eos=False), max_length=512)
    previews = []
    from medtrain.data.sources import plan_units

    for unit in plan_units(find_files([path])):
        for key, r in enc.read(unit):
            previews.append(sample_json(tok, *enc.encode_batch([r])[0], source=enc.source(unit, key)))
    corpus = TokenCorpus(StoreBuilder(find_files([path]), enc, str(tmp_path / "cache"), show_progress=False).ensure())
    rows = list(BlockDataset(corpus, corpus.blocks(512, "none")))
    batch = BlockCollator(tok.pad_token_id, document_aware=False)(rows)
    assert len(rows) == len(previews) == 5
    for i, p in enumerate(previews):
        n = len(p["input_ids"])
        assert batch["input_ids"][i, :n].tolist() == p["input_ids"]
        assert batch["labels"][i, :n].tolist() == p["labels"]
        assert p["source"] == f"{path}:{i + 1}"
        assert json.loads(json.dumps(p)) == p


MEDICALGPT_TOOL_RECORD = {
    "conversations": [{"from": "human", "value": "My BMI? I weigh 70 kg."},
                      {"from": "function_call", "value": "{\"name\": \"bmi\", \"arguments\": {\"kg\": 70}}"},
                      {"from": "observation", "value": "{\"bmi\": 22.9}"},
                      {"from": "gpt", "value": "Your BMI is 22.9."}],
    "tools": "[{\"name\": \"bmi\", \"description\": \"Body mass index\", \"parameters\": {\"type\": \"object\"}}]"}


@pytest.mark.parametrize("how", ["native", "qwen", "default_registry"])
def test_sharegpt_tool_records_as_medicalgpt_writes_them(tmp_path, how):
    """function_call / observation turns and a `tools` field: calls trained, results and definitions not,
    through the tokenizer's template (tools=) or as text (--tool_format, a registry template)."""
    from helpers.sft import decoded_spans, encode_path, write_records

    tok = build_tokenizer("bytelevel", FAMILIES["qwen2.5"][2], FAMILIES["qwen2.5"][0], "<|im_end|>", None)
    path = write_records(tmp_path / "tools.jsonl", [MEDICALGPT_TOOL_RECORD])
    spec = spec_from_tokenizer(tok, add_eos=False)
    enc = ConversationEncoder.from_tokenizer(
        tok, spec, "chatml" if how == "default_registry" else "auto", tool_format="qwen" if how == "qwen" else None)
    (encoded,), skipped = encode_path(enc, path)
    ids, mask = encoded
    spans = decoded_spans(tok, ids, mask)
    untrained = tok.decode(ids[mask == 0].tolist())
    call = {"native": '<tool_call>\n{"name": "bmi", "arguments": {"kg": 70}}\n</tool_call><|im_end|>',
            "qwen": '<tool_call>\n{"name": "bmi", "arguments": {"kg": 70}}\n</tool_call><|im_end|>',
            "default_registry": 'Action: bmi\nAction Input: {"kg": 70}\n<|im_end|>'}[how]
    assert spans == [call, "Your BMI is 22.9.<|im_end|>"]
    assert '{"bmi": 22.9}' in untrained and "Body mass index" in untrained and skipped.total == 0
