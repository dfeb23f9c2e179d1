"""The hard shapes found in real chat templates (a robustness pass over ~170 templates of public model
repositories), each reproduced by a small template of the project's own writing: exactly the reply and
its end of turn are trained, token by token, compared with the conversation written out by hand as
(text, trained) pieces (`helpers.sft.reference_encoding`); the template renders exactly the pieces' text.

Shapes: a date header in a system turn rendered even without a system prompt (Llama 3.1); the system
prompt folded into the first question (Gemma); reasoning stripped from history and a generation prompt
that opens <think> (DeepSeek-R1); a generation prompt that opens a think block the turn fills in
(Qwen3 variants); tools in the system turn and a reply of tool calls only after such a prompt (QwQ);
no end-of-turn token (role tags only, Ling); an EOS after the whole conversation (InternLM2); another
marker after the last reply (gpt-oss: <|end|>, then <|return|>); the last reply left open (Qwen1.5); a
two-token end run into EOS, and tool calls ended differently (Command-A); a generation prompt appended
to every rendering (GLM-Edge); generation marks that take in the header and the newline (SmolLM3);
tool call arguments joined as text (DeepSeek-V3); tool call ids required (Mistral)."""

import copy
import json

import pytest

from medtrain.data.chat_records import parse_record
from medtrain.data.chat_templates import TemplateError
from medtrain.data.conversations import ConversationEncoder
from medtrain.data.tokenization import spec_from_tokenizer

from helpers.sft import chat_tokenizer, reference_encoding

SYSTEM = "Answer briefly. A good answer here is: drink more water"
Q1, A1 = "Please repeat exactly: drink more water", "drink more water"
Q2, A2 = "And now drink more water in capitals.", "DRINK MORE WATER"
REPEAT = {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": Q1},
                       {"role": "assistant", "content": A1}, {"role": "user", "content": Q2},
                       {"role": "assistant", "content": A2}]}
NO_SYSTEM = {"messages": REPEAT["messages"][1:]}
THINK = {"messages": [{"role": "user", "content": "Is salt bad?"},
                      {"role": "assistant", "content": "<think>\nit raises pressure\n</think>\n\nIn excess, yes."},
                      {"role": "user", "content": "How much?"},
                      {"role": "assistant", "content": "Under 5 g a day.", "reasoning_content": "WHO: under 5 g"}]}
TOOLS = [{"type": "function", "function": {"name": "bmi", "description": "Body mass index",
                                           "parameters": {"type": "object", "properties": {"kg": {"type": "number"}}}}}]
CALL = '{"name": "bmi", "arguments": {"kg": 70}}'
TOOL_CALL = {"messages": [
    {"role": "user", "content": "My BMI? I weigh 70 kg."},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "a1b2c3d4e", "type": "function", "function": {"name": "bmi", "arguments": "{\"kg\": 70}"}}]},
    {"role": "tool", "tool_call_id": "a1b2c3d4e", "content": "{\"bmi\": 22.9}"},
    {"role": "assistant", "content": "Your BMI is 22.9."}], "tools": TOOLS}
TOOLS_JSON = "\n".join(json.dumps(t, ensure_ascii=False) for t in TOOLS)

CHATML = ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>"]
SHAPES = {
    # Llama 3.1: a system turn with a date header even without a system prompt; contents trimmed
    "date_header": (
        "{{ bos_token }}<|start_header_id|>system<|end_header_id|>\n\nToday Date: 26 Jul 2024\n\n"
        "{% if messages[0].role == 'system' %}{{ messages[0].content | trim }}{% endif %}<|eot_id|>"
        "{% for m in messages if m.role != 'system' %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content | trim }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}",
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|eot_id|>",
        "<|begin_of_text|>", NO_SYSTEM,
        [("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\n" + Q1 + "<|eot_id|><|start_header_id|>assistant"
          "<|end_header_id|>\n\n", False), (A1 + "<|eot_id|>", True),
         ("<|start_header_id|>user<|end_header_id|>\n\n" + Q2 + "<|eot_id|><|start_header_id|>assistant"
          "<|end_header_id|>\n\n", False), (A2 + "<|eot_id|>", True)]),
    # Gemma: no system role; the system prompt opens the first question; the assistant is "model"
    "system_folded": (
        "{{ bos_token }}{% for m in messages if m.role != 'system' %}"
        "<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}\n"
        "{% if loop.first and messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
        "{{ m.content | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
        ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], "<eos>", "<bos>", REPEAT,
        [("<bos><start_of_turn>user\n" + SYSTEM + "\n\n" + Q1 + "<end_of_turn>\n<start_of_turn>model\n", False),
         (A1 + "<end_of_turn>", True), ("\n<start_of_turn>user\n" + Q2 + "<end_of_turn>\n<start_of_turn>model\n", False),
         (A2 + "<end_of_turn>", True), ("\n", False)]),
    # DeepSeek-R1: reasoning dropped from every reply; the prompt opens <think>, which history does not have
    "reasoning_stripped": (
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}"
        "{% elif m.role == 'user' %}<｜User｜>{{ m.content }}"
        "{% else %}<｜Assistant｜>{{ m.content.split('</think>')[-1] }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}",
        ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"],
        "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", THINK,
        [("<｜begin▁of▁sentence｜><｜User｜>Is salt bad?<｜Assistant｜>", False),
         ("\n\nIn excess, yes.<｜end▁of▁sentence｜>", True), ("<｜User｜>How much?<｜Assistant｜>", False),
         ("\n\nUnder 5 g a day.<｜end▁of▁sentence｜>", True)]),
    # a prompt that opens "<think>\n\n" where the turn renders its reasoning: trained from where they part
    "prompt_opens_think": (
        "{% for m in messages %}{% if m.role == 'user' %}<|im_start|>user\n{{ m.content }}<|im_end|>\n"
        "{% else %}<|im_start|>assistant\n<think>\n{{ m.reasoning_content or '' }}\n</think>\n\n{{ m.content }}"
        "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n{% endif %}",
        CHATML, "<|im_end|>", None, THINK,
        [("<|im_start|>user\nIs salt bad?<|im_end|>\n<|im_start|>assistant\n<think>\n", False),
         ("it raises pressure\n</think>\n\nIn excess, yes.<|im_end|>", True),
         ("\n<|im_start|>user\nHow much?<|im_end|>\n<|im_start|>assistant\n<think>\n", False),
         ("WHO: under 5 g\n</think>\n\nUnder 5 g a day.<|im_end|>", True), ("\n", False)]),
    # QwQ-like: tools in the system turn, a reply of tool calls only, a prompt that opens <think>
    "tools_in_system": (
        "{% if tools %}<|im_start|>system\n# Tools\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}<|im_end|>\n"
        "{% endif %}{% for m in messages %}{% if m.role == 'user' %}<|im_start|>user\n{{ m.content }}<|im_end|>\n"
        "{% elif m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content }}{% for c in m.tool_calls or [] %}"
        "<tool_call>\n{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}\n</tool_call>"
        "{% endfor %}<|im_end|>\n{% else %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n</tool_response>"
        "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}",
        CHATML + ["<tool_response>", "</tool_response>"], "<|im_end|>", None, TOOL_CALL,
        [("<|im_start|>system\n# Tools\n" + TOOLS_JSON + "\n<|im_end|>\n<|im_start|>user\nMy BMI? I weigh 70 kg."
          "<|im_end|>\n<|im_start|>assistant\n", False), ("<tool_call>\n" + CALL + "\n</tool_call><|im_end|>", True),
         ("\n<|im_start|>user\n<tool_response>\n{\"bmi\": 22.9}\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
          False), ("Your BMI is 22.9.<|im_end|>", True), ("\n", False)]),
    # role tags only, no end of turn (Ling): the tokenizer's EOS is appended and trained; "<role>" never is
    "no_end_of_turn": (
        "{% for m in messages %}<role>{{ m.role | upper }}</role>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<role>ASSISTANT</role>{% endif %}",
        ["<role>", "</role>", "</s>"], "</s>", None, NO_SYSTEM,
        [("<role>USER</role>" + Q1 + "<role>ASSISTANT</role>", False), (A1, True), ("", "eos"),
         ("<role>USER</role>" + Q2 + "<role>ASSISTANT</role>", False), (A2, True), ("", "eos")]),
    # InternLM2: EOS after the whole conversation, after the last end of turn: not trained
    "trailing_eos": (
        "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% elif messages[-1].role == 'assistant' %}"
        "{{ eos_token }}{% endif %}",
        CHATML + ["<s>", "</s>"], "</s>", "<s>", NO_SYSTEM,
        [("<s><|im_start|>user\n" + Q1 + "<|im_end|>\n<|im_start|>assistant\n", False), (A1 + "<|im_end|>", True),
         ("\n<|im_start|>user\n" + Q2 + "<|im_end|>\n<|im_start|>assistant\n", False), (A2 + "<|im_end|>", True),
         ("\n</s>", False)]),
    # gpt-oss: <|end|> ends a reply that a message follows, <|return|> the last one
    "last_marker_differs": (
        "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}"
        "{% if m.role == 'assistant' and loop.last %}<|return|>{% else %}<|end|>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|start|>assistant<|message|>{% endif %}",
        ["<|start|>", "<|message|>", "<|end|>", "<|return|>"], "<|return|>", None, NO_SYSTEM,
        [("<|start|>user<|message|>" + Q1 + "<|end|><|start|>assistant<|message|>", False), (A1 + "<|end|>", True),
         ("<|start|>user<|message|>" + Q2 + "<|end|><|start|>assistant<|message|>", False),
         (A2 + "<|return|>", True)]),
    # Qwen1.5: the last reply is left open (no <|im_end|> unless a generation prompt follows): EOS appended there
    "last_reply_open": (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "{% if not loop.last or add_generation_prompt %}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        CHATML, "<|im_end|>", None, NO_SYSTEM,
        [("<|im_start|>user\n" + Q1 + "<|im_end|>\n<|im_start|>assistant\n", False), (A1 + "<|im_end|>", True),
         ("\n<|im_start|>user\n" + Q2 + "<|im_end|>\n<|im_start|>assistant\n", False), (A2, True), ("", "eos")]),
    # Command-A: a reply ends <|END_RESPONSE|><|END_OF_TURN_TOKEN|> (EOS), tool calls <|END_ACTION|> then EOS
    "end_runs_into_eos": (
        "<BOS_TOKEN>{% if tools %}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{{ tools | tojson }}<|END_OF_TURN_TOKEN|>"
        "{% endif %}{% for m in messages %}<|START_OF_TURN_TOKEN|>{% if m.role == 'user' %}<|USER_TOKEN|>{{ m.content }}"
        "{% elif m.role == 'assistant' %}<|CHATBOT_TOKEN|>{% if m.tool_calls %}<|START_ACTION|>"
        "{% for c in m.tool_calls %}{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}"
        "{% endfor %}<|END_ACTION|>{% else %}<|START_RESPONSE|>{{ m.content }}<|END_RESPONSE|>{% endif %}"
        "{% else %}<|SYSTEM_TOKEN|><|START_TOOL_RESULT|>{{ m.content }}<|END_TOOL_RESULT|>{% endif %}"
        "<|END_OF_TURN_TOKEN|>{% endfor %}{% if add_generation_prompt %}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
        "{% endif %}",
        ["<BOS_TOKEN>", "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>",
         "<|SYSTEM_TOKEN|>", "<|START_RESPONSE|>", "<|END_RESPONSE|>", "<|START_ACTION|>", "<|END_ACTION|>",
         "<|START_TOOL_RESULT|>", "<|END_TOOL_RESULT|>"], "<|END_OF_TURN_TOKEN|>", "<BOS_TOKEN>", TOOL_CALL,
        [("<BOS_TOKEN><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>" + json.dumps(TOOLS, ensure_ascii=False) +
          "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>My BMI? I weigh 70 kg.<|END_OF_TURN_TOKEN|>"
          "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", False),
         ("<|START_ACTION|>" + CALL + "<|END_ACTION|><|END_OF_TURN_TOKEN|>", True),
         ("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><|START_TOOL_RESULT|>{\"bmi\": 22.9}<|END_TOOL_RESULT|>"
          "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", False),
         ("<|START_RESPONSE|>Your BMI is 22.9.<|END_RESPONSE|><|END_OF_TURN_TOKEN|>", True)]),
    # GLM-Edge: the generation prompt is appended to every rendering, and no end of turn: never trained
    "prompt_always_appended": (
        "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{% endfor %}<|assistant|>",
        ["<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>"], "<|endoftext|>", None, NO_SYSTEM,
        [("<|user|>\n" + Q1 + "<|assistant|>", False), ("\n" + A1, True), ("", "eos"),
         ("<|user|>\n" + Q2 + "<|assistant|>", False), ("\n" + A2, True), ("", "eos"), ("<|assistant|>", False)]),
    # SmolLM3: generation marks around the turn's own header and the newline after its end
    "wide_generation_marks": (
        "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}<|im_start|>assistant\n{{ m.content }}"
        "<|im_end|>\n{% endgeneration %}{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        CHATML, "<|im_end|>", None, REPEAT,
        [("<|im_start|>system\n" + SYSTEM + "<|im_end|>\n<|im_start|>user\n" + Q1 + "<|im_end|>\n<|im_start|>assistant\n",
          False), (A1 + "<|im_end|>", True), ("\n<|im_start|>user\n" + Q2 + "<|im_end|>\n<|im_start|>assistant\n", False),
         (A2 + "<|im_end|>", True), ("\n", False)]),
    # Mistral: tool call ids of 9 characters required by the template; [TOOL_CALLS] trained, results not
    "tool_call_ids": (
        "{{ bos_token }}{% if tools %}[AVAILABLE_TOOLS] {{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}"
        "{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }}[/INST]{% elif m.tool_calls %}"
        "[TOOL_CALLS] [{% for c in m.tool_calls %}{% if c.id is not defined or c.id | length != 9 %}"
        "{{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}{% endif %}"
        "{{ {'name': c.function.name, 'arguments': c.function.arguments, 'id': c.id} | tojson }}{% endfor %}]"
        "{{ eos_token }}{% elif m.role == 'tool' %}[TOOL_RESULTS] {{ {'content': m.content, 'call_id': m.tool_call_id}"
        " | tojson }}[/TOOL_RESULTS]{% else %} {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}",
        ["<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
         "[TOOL_RESULTS]", "[/TOOL_RESULTS]"], "</s>", "<s>", TOOL_CALL,
        [("<s>[AVAILABLE_TOOLS] " + json.dumps(TOOLS, ensure_ascii=False) + "[/AVAILABLE_TOOLS][INST] My BMI? I weigh "
          "70 kg.[/INST]", False), ('[TOOL_CALLS] [{"name": "bmi", "arguments": {"kg": 70}, "id": "a1b2c3d4e"}]</s>',
                                    True),
         ('[TOOL_RESULTS] {"content": "{\\"bmi\\": 22.9}", "call_id": "a1b2c3d4e"}[/TOOL_RESULTS]', False),
         (" Your BMI is 22.9.</s>", True)]),
}


def as_encoder_gives(record, template):
    """The HF messages of a record as SFT reads it: arguments parsed, reasoning split from the reply,
    given back as `reasoning_content` to templates that read it, else written in the reply as it was."""
    conv = parse_record(copy.deepcopy(record), "openai")
    out = [{"role": "system", "content": conv.system}] if conv.system else []
    for m in conv.messages:
        m = dict(m)
        raw = m.pop("raw", None)
        if "reasoning_content" in m and "reasoning_content" not in template:
            m["content"] = raw if raw is not None else f"<think>\n{m.pop('reasoning_content')}\n</think>\n\n{m['content']}"
            m.pop("reasoning_content", None)
        out.append(m)
    return out


def encoded(tok, record):
    conv = parse_record(copy.deepcopy(record), "openai")
    enc = ConversationEncoder.from_tokenizer(tok, spec_from_tokenizer(tok, add_eos=False), "tokenizer", max_length=4096)
    return enc.encode_batch([enc.render(conv.system, conv.messages, conv.tools)])[0]


@pytest.mark.parametrize("kind", ["bytelevel", "sentencepiece"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_exactly_reply_and_end_of_turn_trained(shape, kind):
    template, specials, eos, bos, record, pieces = SHAPES[shape]
    texts = [p for p, _ in pieces] + [m["content"] for m in record["messages"]]
    tok = chat_tokenizer(template, specials, eos, bos, texts, kind)
    text, ref_ids, ref_trained = reference_encoding(tok, pieces)
    # the pieces are what the template renders (EOS appended by the encoder aside)
    assert tok.apply_chat_template(as_encoder_gives(record, template), tools=record.get("tools"),
                                   tokenize=False) == text
    ids, mask = encoded(tok, record)
    assert ids.tolist() == ref_ids, (tok.convert_ids_to_tokens(ids.tolist()), tok.convert_ids_to_tokens(ref_ids))
    assert mask.astype(bool).tolist() == ref_trained, [
        (tok.convert_ids_to_tokens(int(i)), bool(m), r) for i, m, r in zip(ids, mask, ref_trained) if bool(m) != r]


# DeepSeek-V3: tool calls rendered with their arguments joined as text, tool definitions not rendered at all
ARGS_AS_TEXT = (
    "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}<｜User｜>{{ m.content }}"
    "{% elif m.role == 'assistant' and m.tool_calls %}<｜Assistant｜>{% for c in m.tool_calls %}"
    "{{ '<｜tool▁call▁begin｜>' + c.function.name + '\\n' + c.function.arguments + '<｜tool▁call▁end｜>' }}"
    "{% endfor %}<｜end▁of▁sentence｜>{% elif m.role == 'assistant' %}<｜Assistant｜>{{ m.content }}<｜end▁of▁sentence｜>"
    "{% else %}<｜tool▁output▁begin｜>{{ m.content }}<｜tool▁output▁end｜>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜>{% endif %}")
ARGS_TOKENS = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜tool▁call▁begin｜>",
               "<｜tool▁call▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"]


def test_tool_call_arguments_given_as_text_to_a_template_that_joins_them():
    record = {"messages": TOOL_CALL["messages"]}       # no tool definitions: the template renders none
    pieces = [("<｜begin▁of▁sentence｜><｜User｜>My BMI? I weigh 70 kg.<｜Assistant｜>", False),
              ('<｜tool▁call▁begin｜>bmi\n{"kg": 70}<｜tool▁call▁end｜><｜end▁of▁sentence｜>', True),
              ('<｜tool▁output▁begin｜>{"bmi": 22.9}<｜tool▁output▁end｜><｜Assistant｜>', False),
              ("Your BMI is 22.9.<｜end▁of▁sentence｜>", True)]
    tok = chat_tokenizer(ARGS_AS_TEXT, ARGS_TOKENS, "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>",
                         [p for p, _ in pieces])
    text, ref_ids, ref_trained = reference_encoding(tok, pieces)
    assert tok.apply_chat_template(record["messages"], tokenize=False) == text
    ids, mask = encoded(tok, record)
    assert ids.tolist() == ref_ids and mask.astype(bool).tolist() == ref_trained


def test_tool_definitions_a_template_cannot_render_are_an_error_not_lost():
    tok = chat_tokenizer(ARGS_AS_TEXT, ARGS_TOKENS, "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", ["bmi"])
    with pytest.raises(TemplateError, match="renders tool calls but not tool definitions.*--tool_format"):
        encoded(tok, TOOL_CALL)


def test_different_end_markers_are_logged(caplog):
    template, specials, eos, bos, record, _ = SHAPES["last_reply_open"]
    tok = chat_tokenizer(template, specials, eos, bos, [Q1, A1])
    with caplog.at_level("WARNING"):
        encoded(tok, record)
    assert "ends the last reply with None and the others with '<|im_end|>'" in caplog.text
    assert "EOS is appended and trained where it renders none" in caplog.text
