"""SFT label masking: for every template and every input format, multi-turn and with a system prompt,
exactly the assistant replies and their end-of-turn token are trained."""

import numpy as np
import pytest
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

from medtrain.data.chat_templates import TEMPLATES, get_template

from helpers.sft import CONVERSATIONS, STOPS, SYSTEM, decoded_spans, encode_path, make_encoder, write_format

FORMATS = ["sharegpt", "openai", "alpaca"]


@pytest.fixture
def tok(demo_dir):
    """A fresh tokenizer per test (some tests give it a chat_template)."""
    return AutoTokenizer.from_pretrained(demo_dir)


def messages(system, turns):
    out = [{"role": "system", "content": system}] if system else []
    for q, a in turns:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("template", sorted(STOPS))
def test_only_replies_and_their_end_of_turn_are_trained(tok, tmp_path, template, fmt):
    enc = make_encoder(tok, template)
    path = write_format(tmp_path, fmt)
    encoded, skipped = encode_path(enc, path)
    assert skipped.total == 0 and len(encoded) == len(CONVERSATIONS)
    stop = STOPS[template]
    for (system, turns), (ids, mask) in zip(CONVERSATIONS, encoded):
        assert ids.dtype == enc.dtype and mask.dtype == np.uint8 and len(ids) == len(mask)
        assert decoded_spans(tok, ids, mask) == [a + stop for _, a in turns]  # exactly, turn by turn
        text = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        for q, _ in turns:  # the prompts are there, untrained
            assert q in text
        untrained = tok.decode(ids[mask == 0], skip_special_tokens=False)
        assert (system or get_template(template).default_system) in untrained
        # the rendered sample is what the equivalent jinja template renders
        jinja = enc.jinja_template()
        assert render_jinja_template([messages(system, turns)], chat_template=jinja)[0][0] == text


@pytest.mark.parametrize("template", sorted(STOPS))
def test_registry_template_as_jinja_generation_prompt(tok, template):
    """The jinja saved with the tokenizer renders a prompt that the training text continues with the reply."""
    enc = make_encoder(tok, template, system_prompt="Be brief.")
    system, turns = CONVERSATIONS[1]
    full = enc.render(None, turns).text
    prompt = render_jinja_template([messages("Be brief.", turns)[:-1]], chat_template=enc.jinja_template(),
                                   add_generation_prompt=True)[0][0]
    assert full == prompt + turns[-1][1] + STOPS[template]
    assert "Be brief." in full


def test_system_prompt_defaults(tok):
    turns = CONVERSATIONS[0][1]
    text = lambda enc, system=None: enc.render(system, turns).text  # noqa: E731
    assert text(make_encoder(tok, "chatml")).startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                                        "<|im_start|>user\n")
    assert text(make_encoder(tok, "chatml", system_prompt="Custom.")).startswith("<|im_start|>system\nCustom.<|im_end|>")
    assert text(make_encoder(tok, "chatml", system_prompt="")).startswith("<|im_start|>user\n")  # none at all
    assert text(make_encoder(tok, "chatml", system_prompt="Custom."), "Own.").startswith("<|im_start|>system\nOwn.<|")
    assert text(make_encoder(tok, "llama3")).startswith("<|start_header_id|>user")  # llama3 has no default


def test_bos_is_prepended_when_the_tokenizer_adds_it(tok):
    from medtrain.data.conversations import ConversationEncoder
    from medtrain.data.tokenization import spec_from_tokenizer

    enc = ConversationEncoder.from_tokenizer(tok, spec_from_tokenizer(tok, add_bos=True, add_eos=False), "llama3")
    ids, mask = enc.encode_batch([enc.render(None, CONVERSATIONS[0][1])])[0]
    assert ids[0] == tok.bos_token_id and mask[0] == 0
    assert enc.jinja_template().count("<s>") == 1


def test_adding_a_template_is_a_dataclass_entry(tok):
    from medtrain.data.chat_templates import ChatTemplate, register

    register(ChatTemplate("test_tags", user="<u>{content}</u>", assistant_prefix="<a>", assistant="{content}</a>"))
    try:
        enc = make_encoder(tok, "test_tags")
        ids, mask = enc.encode_batch([enc.render(None, CONVERSATIONS[1][1])])[0]
        assert decoded_spans(tok, ids, mask) == [a + "</a>" for _, a in CONVERSATIONS[1][1]]
    finally:
        TEMPLATES.pop("test_tags")
    with pytest.raises(ValueError, match="unknown --template_name 'nope'"):
        make_encoder(tok, "nope")


# --- the tokenizer's own chat template ---------------------------------------------------------------
CHATML_JINJA = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# renders the last assistant message differently (an empty think block), as reasoning models' templates do
THINK_JINJA = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' }}"
    "{% if m['role'] == 'assistant' and loop.last %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
    "{{ m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
# marks the trained part itself
GENERATION_JINJA = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}{{ '[BOT] ' }}"
    "{% generation %}{{ m['content'] + eos_token }}{% endgeneration %}{% else %}"
    "{{ '[' + m['role'] | upper + '] ' + m['content'] + '\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '[BOT] ' }}{% endif %}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_tokenizer_chat_template_is_used_when_present(tok, tmp_path, fmt):
    tok.chat_template = CHATML_JINJA
    enc = make_encoder(tok)  # auto: the tokenizer's own
    assert enc.template_name == "tokenizer chat_template" and enc.jinja_template() is None
    encoded, _ = encode_path(enc, write_format(tmp_path, fmt))
    for (system, turns), (ids, mask) in zip(CONVERSATIONS, encoded):
        assert decoded_spans(tok, ids, mask) == [a + "<|im_end|>" for _, a in turns]
        text = tok.decode(ids, skip_special_tokens=False)
        assert text == tok.apply_chat_template(messages(system, turns), tokenize=False)
        assert (system or "You are a helpful assistant.") in text
        # the ids are those apply_chat_template gives (the whole conversation, tokenized once)
        assert ids.tolist() == tok.apply_chat_template(messages(system, turns), tokenize=True, return_dict=False)


def test_tokenizer_template_rendering_the_last_turn_differently(tok):
    tok.chat_template = THINK_JINJA
    enc = make_encoder(tok, "tokenizer")
    _, turns = CONVERSATIONS[2]
    ids, mask = enc.encode_batch([enc.render(None, turns)])[0]
    spans = decoded_spans(tok, ids, mask)
    assert spans[:2] == [a + "<|im_end|>" for _, a in turns[:2]]
    assert spans[2] == "<think>\n\n</think>\n\n" + turns[2][1] + "<|im_end|>"  # the template's own last turn
    assert ids.tolist() == tok.apply_chat_template(messages(None, turns), tokenize=True, return_dict=False)


def test_tokenizer_template_generation_marks(tok):
    tok.chat_template = GENERATION_JINJA
    enc = make_encoder(tok)
    system, turns = CONVERSATIONS[1]
    ids, mask = enc.encode_batch([enc.render(system, turns)])[0]
    assert decoded_spans(tok, ids, mask) == [a + "</s>" for _, a in turns]
    assert tok.decode(ids[:1]) == "<s>" and mask[0] == 0


def test_template_name_tokenizer_needs_a_chat_template(tok):
    with pytest.raises(ValueError, match="has no chat_template"):
        make_encoder(tok, "tokenizer")
    assert make_encoder(tok).template_name == "vicuna"  # auto without one


def test_encoder_pickles_and_fingerprints(tok):
    import pickle

    enc = make_encoder(tok, "chatml")
    r = enc.render(SYSTEM, CONVERSATIONS[1][1])
    enc.encode_batch([r])
    copy = pickle.loads(pickle.dumps(enc))
    assert copy._tok is None
    a, b = enc.encode_batch([r])[0], copy.encode_batch([r])[0]
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    fps = {make_encoder(tok, t).fingerprint for t in ("chatml", "vicuna")}
    fps |= {make_encoder(tok, "chatml", system_prompt="x").fingerprint,
            make_encoder(tok, "chatml", max_length=64).fingerprint}
    assert len(fps) == 4 and enc.fingerprint == copy.fingerprint
