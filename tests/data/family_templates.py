"""Chat templates of the project's own writing in the formats of current model families, and for each
a plain-Python reference renderer that gives the same text as (piece, trained) pairs: the independent
computation the family tests compare the encoder with. Written from the formats the families use
(Qwen2.5, Qwen3, QwQ, Llama 3.1, Mistral v0.3, Gemma 3, DeepSeek-R1, Phi-3.5, GLM-4, Yi); no original
template is copied here."""

import json

CHATML_TOKENS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>",
                 "</tool_call>", "<tool_response>", "</tool_response>"]

# ---- Qwen2.5: a default system prompt, tools in the system prompt, tool calls and responses ---------------------
# the text around the tool definitions, as the family's models were trained with it
QWEN_TOOLS_INTRO = ("You may call one or more functions to assist with the user query.\n\nYou are provided with "
                    "function signatures within <tools></tools> XML tags:\n")
QWEN_TOOLS_OUTRO = ("\n\nFor each function call, return a json object with function name and arguments within "
                    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                    "<args-json-object>}\n</tool_call>")
QWEN25 = ("{%- set TOOLS_INTRO = " + json.dumps(QWEN_TOOLS_INTRO) + " %}{%- set TOOLS_OUTRO = " + json.dumps(QWEN_TOOLS_OUTRO)
          + " %}" + 
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content }}{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}"
    "{%- endif %}{{- '\\n\\n# Tools\\n\\n' + TOOLS_INTRO + '<tools>' }}{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}"
    "{%- endfor %}{{- '\\n</tools>' + TOOLS_OUTRO + '<|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'user' or (m.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- elif m.role == 'assistant' %}{{- '<|im_start|>assistant' }}{%- if m.content %}{{- '\\n' + m.content }}{%- endif %}"
    "{%- for c in m.tool_calls or [] %}{{- '\\n<tool_call>\\n{\"name\": \"' + c.function.name + '\", \"arguments\": ' }}"
    "{{- c.function.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif m.role == 'tool' %}"
    "{%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + m.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def ref_qwen25(system, messages, tools):
    out = []
    if tools:
        out.append(("<|im_start|>system\n" + (system or "You are Qwen, created by Alibaba Cloud. You are a helpful "
                    "assistant.") + "\n\n# Tools\n\n" + QWEN_TOOLS_INTRO + "<tools>" + "".join("\n" + json.dumps(t) for t in tools)
                    + "\n</tools>" + QWEN_TOOLS_OUTRO + "<|im_end|>\n", False))
    else:
        out.append(("<|im_start|>system\n" + (system or "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") + "<|im_end|>\n", False))
    for i, m in enumerate(messages):
        if m["role"] == "user":
            out.append(("<|im_start|>user\n" + m["content"] + "<|im_end|>\n", False))
        elif m["role"] == "assistant":
            out.append(("<|im_start|>assistant", False))
            body = ("\n" + m["content"] if m["content"] else "")
            for c in m.get("tool_calls") or []:
                body += ('\n<tool_call>\n{"name": "' + c["function"]["name"] + '", "arguments": '
                         + json.dumps(c["function"]["arguments"]) + "}\n</tool_call>")
            # the trained span starts after the generation prompt "<|im_start|>assistant\n"
            out.append((body[:1], False)) if body.startswith("\n") else None
            out.append((body[1:] if body.startswith("\n") else body, True))
            out += [("<|im_end|>", True), ("\n", False)]
        else:
            first = i == 0 or messages[i - 1]["role"] != "tool"
            last = i == len(messages) - 1 or messages[i + 1]["role"] != "tool"
            out.append((("<|im_start|>user" if first else "") + "\n<tool_response>\n" + m["content"]
                        + "\n</tool_response>" + ("<|im_end|>\n" if last else ""), False))
    return out


# ---- Qwen3: reasoning kept only after the last question; an empty think block on the last reply -----------------
QWEN3 = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- set ns = namespace(last_query=-1) %}"
    "{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last_query = loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'user' %}{{- '<|im_start|>user\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- elif m.role == 'assistant' %}"
    "{%- set content = m.content %}{%- set reasoning = '' %}"
    "{%- if m.reasoning_content is string %}{%- set reasoning = m.reasoning_content %}"
    "{%- elif '</think>' in content %}{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}")


def _split(m):
    if m.get("reasoning_content") is not None:
        return m["reasoning_content"], m["content"]
    if "</think>" in m["content"]:
        r, _, a = m["content"].partition("</think>")
        return r.rstrip("\n").split("<think>")[-1].lstrip("\n"), a.lstrip("\n")
    return "", m["content"]


def ref_qwen3(system, messages, tools):
    out = [("<|im_start|>system\n" + system + "<|im_end|>\n", False)] if system else []
    last_query = max(i for i, m in enumerate(messages) if m["role"] == "user")
    for i, m in enumerate(messages):
        if m["role"] == "user":
            out.append(("<|im_start|>user\n" + m["content"] + "<|im_end|>\n", False))
            continue
        reasoning, answer = _split(m)
        out.append(("<|im_start|>assistant\n", False))
        if i > last_query and (i == len(messages) - 1 or reasoning):
            out.append(("<think>\n" + reasoning.strip("\n") + "\n</think>\n\n" + answer.lstrip("\n"), True))
        else:
            out.append((answer, True))
        out += [("<|im_end|>", True), ("\n", False)]
    return out


# ---- QwQ: reasoning dropped from every reply but the last; the prompt opens the think block ----------------------
QWQ = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}{%- if m.role == 'user' %}{{- '<|im_start|>user\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- elif m.role == 'assistant' %}{%- set content = m.content %}"
    "{%- if not loop.last %}{%- set content = m.content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}")


def ref_qwq(system, messages, tools):
    out = [("<|im_start|>system\n" + system + "<|im_end|>\n", False)] if system else []
    for i, m in enumerate(messages):
        if m["role"] == "user":
            out.append(("<|im_start|>user\n" + m["content"] + "<|im_end|>\n", False))
            continue
        out.append(("<|im_start|>assistant\n", False))
        content = m["content"] if i == len(messages) - 1 else m["content"].split("</think>")[-1].lstrip("\n")
        if content.startswith("<think>\n"):   # the last reply as written: its prompt opens the think block
            out.append(("<think>\n", False))
            content = content[len("<think>\n"):]
        out += [(content, True), ("<|im_end|>", True), ("\n", False)]
    return out


# ---- Llama 3.1: BOS, a date header in the system turn, trimmed messages -----------------------------------------
LLAMA31_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"]
LLAMA31 = (
    "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- if messages[0].role == 'system' %}{%- set system = messages[0].content | trim %}{%- set rest = messages[1:] %}"
    "{%- else %}{%- set system = '' %}{%- set rest = messages %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\nToday Date: ' + date_string"
    " + '\\n\\n' + system + '<|eot_id|>' }}"
    "{%- for m in rest %}{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + (m.content | trim) + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")


def ref_llama31(system, messages, tools):
    out = [("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n" + (system or "").strip() + "<|eot_id|>", False)]
    for m in messages:
        head = "<|start_header_id|>" + m["role"] + "<|end_header_id|>\n\n"
        if m["role"] == "user":
            out.append((head + m["content"].strip() + "<|eot_id|>", False))
        else:
            out += [(head, False), (m["content"].strip() + "<|eot_id|>", True)]
    return out


# ---- Mistral v0.3: the system prompt in the last question, only when that is the last message -----------------
MISTRAL_TOKENS = ["<s>", "</s>", "[INST]", "[/INST]"]
MISTRAL03 = (
    "{%- if messages[0].role == 'system' %}{%- set system = messages[0].content %}{%- set rest = messages[1:] %}"
    "{%- else %}{%- set rest = messages %}{%- endif %}"
    "{{- bos_token }}{%- for m in rest %}{%- if m.role == 'user' %}"
    "{%- if system is defined and loop.last %}{{- '[INST] ' + system + '\\n\\n' + m.content + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + m.content + '[/INST]' }}{%- endif %}"
    "{%- elif m.role == 'assistant' %}{{- ' ' + m.content | trim + eos_token }}{%- endif %}{%- endfor %}")


def ref_mistral03(system, messages, tools):
    """The system prompt goes into the question only when that question is the last message (at inference):
    a conversation that ends with a reply is rendered without it."""
    out = [("<s>", False)]
    for i, m in enumerate(messages):
        if m["role"] == "user":
            text = (system + "\n\n" + m["content"]) if (system and i == len(messages) - 1) else m["content"]
            out.append(("[INST] " + text + "[/INST]", False))
        else:
            out.append((" " + m["content"].strip() + "</s>", True))
    return out


# ---- Gemma 3: the system prompt folded into the first question, the assistant called "model" --------------------
GEMMA_TOKENS = ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"]
GEMMA3 = (
    "{{- bos_token }}{%- if messages[0].role == 'system' %}{%- set first_prefix = messages[0].content + '\\n\\n' %}"
    "{%- set rest = messages[1:] %}{%- else %}{%- set first_prefix = '' %}{%- set rest = messages %}{%- endif %}"
    "{%- for m in rest %}{%- set role = 'model' if m.role == 'assistant' else m.role %}"
    "{{- '<start_of_turn>' + role + '\\n' + (first_prefix if loop.first else '') + (m.content | trim) + '<end_of_turn>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}")


def ref_gemma3(system, messages, tools):
    out = [("<bos>", False)]
    for i, m in enumerate(messages):
        first = (system + "\n\n") if (system and i == 0) else ""
        if m["role"] == "user":
            out.append(("<start_of_turn>user\n" + first + m["content"].strip() + "<end_of_turn>\n", False))
        else:
            out += [("<start_of_turn>model\n", False), (m["content"].strip() + "<end_of_turn>", True), ("\n", False)]
    return out


# ---- DeepSeek-R1: reasoning dropped from every reply; the prompt opens the think block --------------------------
R1_TOKENS = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"]
R1 = (
    "{{- bos_token }}{%- if messages[0].role == 'system' %}{{- messages[0].content }}{%- endif %}"
    "{%- for m in messages %}{%- if m.role == 'user' %}{{- '<｜User｜>' + m.content }}"
    "{%- elif m.role == 'assistant' %}{{- '<｜Assistant｜>' + m.content.split('</think>')[-1] + eos_token }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<｜Assistant｜><think>\\n' }}{%- endif %}")


def ref_r1(system, messages, tools):
    out = [("<｜begin▁of▁sentence｜>" + (system or ""), False)]
    for m in messages:
        if m["role"] == "user":
            out.append(("<｜User｜>" + m["content"], False))
        else:
            out += [("<｜Assistant｜>", False), (m["content"].split("</think>")[-1] + "<｜end▁of▁sentence｜>", True)]
    return out


# ---- Phi-3.5: <|end|> ends each turn, EOS after the whole conversation ------------------------------------------
PHI_TOKENS = ["<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
PHI35 = (
    "{%- for m in messages %}{%- if m.role == 'system' and m.content %}{{- '<|system|>\\n' + m.content + '<|end|>\\n' }}"
    "{%- elif m.role == 'user' %}{{- '<|user|>\\n' + m.content + '<|end|>\\n' }}"
    "{%- elif m.role == 'assistant' %}{{- '<|assistant|>\\n' + m.content + '<|end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- else %}{{- eos_token }}{%- endif %}")


def ref_phi35(system, messages, tools):
    out = [("<|system|>\n" + system + "<|end|>\n", False)] if system else []
    for m in messages:
        if m["role"] == "user":
            out.append(("<|user|>\n" + m["content"] + "<|end|>\n", False))
        else:
            out += [("<|assistant|>\n", False), (m["content"] + "<|end|>", True), ("\n", False)]
    return out + [("<|endoftext|>", False)]


# ---- GLM-4: role tokens and no end-of-turn marker (EOS is appended and trained) ---------------------------------
GLM_TOKENS = ["[gMASK]", "<sop>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]
GLM4 = (
    "[gMASK]<sop>{%- for m in messages %}{{- '<|' + m.role + '|>\\n' + m.content }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}")


def ref_glm4(system, messages, tools):
    out = [("[gMASK]<sop>" + ("<|system|>\n" + system if system else ""), False)]
    for m in messages:
        if m["role"] == "user":
            out.append(("<|user|>\n" + m["content"], False))
        else:
            out += [("<|assistant|>\n", False), (m["content"], True), ("<|endoftext|>", "eos")]
    return out


# ---- Yi: ChatML without a default system prompt (a SentencePiece tokenizer) -------------------------------------
YI = (
    "{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def ref_yi(system, messages, tools):
    out = [("<|im_start|>system\n" + system + "<|im_end|>\n", False)] if system else []
    for m in messages:
        if m["role"] == "user":
            out.append(("<|im_start|>user\n" + m["content"] + "<|im_end|>\n", False))
        else:
            out += [("<|im_start|>assistant\n", False), (m["content"] + "<|im_end|>", True), ("\n", False)]
    return out


# name: (template, reference, special tokens, eos, bos, the inference prompt is a prefix of the conversation,
#        renders tools)
FAMILIES = {
    "qwen2.5": (QWEN25, ref_qwen25, CHATML_TOKENS, "<|im_end|>", None, True, True),
    "qwen3": (QWEN3, ref_qwen3, CHATML_TOKENS, "<|im_end|>", None, True, False),
    "qwq": (QWQ, ref_qwq, CHATML_TOKENS, "<|im_end|>", None, False, False),
    "llama3.1": (LLAMA31, ref_llama31, LLAMA31_TOKENS, "<|eot_id|>", "<|begin_of_text|>", True, False),
    "mistral0.3": (MISTRAL03, ref_mistral03, MISTRAL_TOKENS, "</s>", "<s>", "no_system", False),
    "gemma3": (GEMMA3, ref_gemma3, GEMMA_TOKENS, "<eos>", "<bos>", True, False),
    "deepseek-r1": (R1, ref_r1, R1_TOKENS, "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", False, False),
    "phi3.5": (PHI35, ref_phi35, PHI_TOKENS, "<|endoftext|>", "<s>", True, False),
    "glm4": (GLM4, ref_glm4, GLM_TOKENS, "<|endoftext|>", None, True, False),
    "yi": (YI, ref_yi, CHATML_TOKENS, "<|im_end|>", None, True, False),
}
