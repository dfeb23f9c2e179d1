"""Registry chat templates (`--template_name`): how a conversation becomes text, and which characters
of that text are trained.

A conversation renders to a `Rendered`: the whole text and the character spans that are trained, one
per assistant reply: the reply and its end-of-turn marker (`</s>`, `<|im_end|>`, `<|eot_id|>` ...),
never the next turn's header. E.g. `chatml`, one turn:

    <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
    <|im_start|>user\nWhat lowers blood pressure?<|im_end|>\n<|im_start|>assistant\n
    Less salt, more exercise.<|im_end|>                          <- the trained span
    \n  (the separator before a next user turn: untrained)

A registry entry is a `ChatTemplate`; its spans are exact by construction (the pieces are joined,
nothing is searched for). Every name MedicalGPT's `--template_name` accepts is registered, written
in the family's real format (the form the model was released with; see the comment at each entry).
Adding one is a few lines:

    register(ChatTemplate("mychat", user="<user>{content}</user>", assistant_prefix="<bot>",
                          assistant="{content}</bot>", system="<sys>{content}</sys>"))

`{content}` is the message; `{eos}` / `{bos}` are the tokenizer's EOS / BOS strings. When the
tokenizer adds BOS itself (Llama), BOS is prepended as the tokenizer would. `to_jinja()` turns an
entry into an equivalent jinja chat template, which SFT saves with the tokenizer so that
`apply_chat_template` at inference renders exactly the training format.

Entries with `prefer_tokenizer` (qwen3, qwen3_nothink, qwen3_5, qwen3_5_nothink) name families
whose own templates do more than a registry entry can (reasoning kept only after the last question,
tool calls): when the tokenizer ships a chat_template it is used (with `template_kwargs`, e.g.
`enable_thinking=False` for the *_nothink names); otherwise the entry renders the ChatML form.

The tokenizer's own jinja templates are rendered and their replies located by `reply_locator`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Optional

logger = logging.getLogger(__name__)


class Rendered(NamedTuple):
    """A rendered conversation: `text`, the trained character `spans` ((start, end), one per assistant
    reply, in order), and `append_eos`: the template renders no end-of-turn marker, so the tokenizer's
    EOS is appended (and trained) after each span; or a tuple of one such flag per span (Qwen1.5 renders
    the marker after every reply but the last). `source` names the template in messages."""

    text: str
    spans: tuple
    append_eos: object = False   # bool, or a tuple of bools (one per span)


class TemplateError(ValueError):
    """A chat template cannot render this conversation, or its replies cannot be located."""


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    user: str                       # a user message: "{content}" is its text
    assistant_prefix: str           # what opens a reply (the generation prompt); untrained
    assistant: str                  # the reply and its end-of-turn marker; trained
    system: str = "{content}"       # how a system prompt is written (before the first user message)
    default_system: str = ""        # used when a conversation has none and --system_prompt is not given
    separator: str = ""             # untrained text between a reply and the next user message
    prefix: str = ""                # untrained text at the very start (after BOS)
    stop: str = "{eos}"             # the end-of-turn marker: where generation should stop
    first_user: str = ""            # the first user message when there is a system prompt and the family puts
    #                                 it inside that message ("{system}" and "{content}"), e.g. llama2
    prefer_tokenizer: bool = False  # use the tokenizer's own chat_template when it has one (see module doc)
    template_kwargs: tuple = ()     # (name, value) pairs passed to the tokenizer's template (enable_thinking)
    aliases: tuple = field(default=(), compare=False)

    def bind(self, eos: Optional[str], bos: Optional[str]) -> "ChatTemplate":
        """This template with {eos}/{bos} replaced by the tokenizer's strings."""
        def sub(s: str) -> str:
            if "{eos}" in s and eos is None:
                raise ValueError(f"template {self.name!r} ends replies with EOS but the tokenizer has no eos_token")
            if "{bos}" in s and bos is None:
                raise ValueError(f"template {self.name!r} uses BOS but the tokenizer has no bos_token")
            return s.replace("{eos}", eos or "").replace("{bos}", bos or "")

        return replace(self, user=sub(self.user), assistant_prefix=sub(self.assistant_prefix),
                       assistant=sub(self.assistant), system=sub(self.system), separator=sub(self.separator),
                       prefix=sub(self.prefix), stop=sub(self.stop), default_system=sub(self.default_system),
                       first_user=sub(self.first_user))

    @staticmethod
    def _fill(fmt: str, content: str, system: Optional[str] = None) -> str:
        if system is not None:  # first_user: "{system}" comes before "{content}"
            before, _, rest = fmt.partition("{system}")
            return before + system + ChatTemplate._fill(rest, content)
        before, _, after = fmt.partition("{content}")
        return before + content + after

    def render(self, system: Optional[str], turns: list) -> Rendered:
        """A bound template's rendering of (system, [(user, assistant), ...]); the spans are the replies
        with their end-of-turn marker."""
        text = self.prefix
        folded = bool(system and self.first_user)
        if system and not folded:
            text += self._fill(self.system, system)
        spans = []
        for i, (q, a) in enumerate(turns):
            text += self.separator if i else ""
            text += self._fill(self.first_user, q, system) if (i == 0 and folded) else self._fill(self.user, q)
            text += self.assistant_prefix
            start = len(text)
            text += self._fill(self.assistant, a)
            spans.append((start, len(text)))
        return Rendered(text, tuple(spans), False)

    def to_jinja(self, default_system: Optional[str] = None, bos: str = "") -> str:
        """An equivalent jinja chat template (for a bound template): the same text for the same
        messages, `add_generation_prompt` appending `assistant_prefix`."""
        lit = lambda s: json.dumps(s)  # noqa: E731  (a JSON string is a valid jinja string literal)
        parts = lambda fmt: [lit(x) for x in fmt.partition("{content}")[::2]]  # noqa: E731
        (s0, s1), (u0, u1), (a0, a1) = parts(self.system), parts(self.user), parts(self.assistant)
        default = self.default_system if default_system is None else default_system
        if self.first_user:
            f_sys, _, f_rest = self.first_user.partition("{system}")
            f1, _, f2 = f_rest.partition("{content}")
            first = (f"{{%- if loop.first and system_message -%}}{{{{- {lit(f_sys)} + system_message + {lit(f1)} + "
                     f"message['content'] + {lit(f2)} -}}}}{{%- else -%}}{{{{- {u0} + message['content'] + {u1} -}}}}"
                     "{%- endif -%}")
            system_part = ""
        else:
            first = f"{{{{- {u0} + message['content'] + {u1} -}}}}"
            system_part = f"{{%- if system_message -%}}{{{{- {s0} + system_message + {s1} -}}}}{{%- endif -%}}"
        return (
            "{%- if messages and messages[0]['role'] == 'system' -%}"
            "{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
            f"{{%- else -%}}{{%- set system_message = {lit(default)} -%}}{{%- set loop_messages = messages -%}}"
            "{%- endif -%}"
            f"{{{{- {lit(bos + self.prefix)} -}}}}"
            + system_part +
            "{%- for message in loop_messages -%}"
            "{%- if message['role'] == 'user' -%}"
            f"{{%- if not loop.first -%}}{{{{- {lit(self.separator)} -}}}}{{%- endif -%}}"
            + first +
            "{%- elif message['role'] == 'assistant' -%}"
            f"{{{{- {lit(self.assistant_prefix)} + {a0} + message['content'] + {a1} -}}}}"
            "{%- else -%}{{- raise_exception('only user and assistant messages may follow the system message') -}}"
            "{%- endif -%}"
            "{%- endfor -%}"
            f"{{%- if add_generation_prompt -%}}{{{{- {lit(self.assistant_prefix)} -}}}}{{%- endif -%}}"
        )


TEMPLATES: dict[str, ChatTemplate] = {}


def register(t: ChatTemplate) -> ChatTemplate:
    for name in (t.name, *t.aliases):
        TEMPLATES[name] = t
    return t


def _chatml(name: str, default_system: str = "", assistant_prefix: str = "<|im_start|>assistant\n", **kw):
    return ChatTemplate(
        name, user="<|im_start|>user\n{content}<|im_end|>\n", assistant_prefix=assistant_prefix,
        assistant="{content}<|im_end|>", system="<|im_start|>system\n{content}<|im_end|>\n", separator="\n",
        default_system=default_system, stop="<|im_end|>", **kw)


LLAMA2_SYSTEM = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe. "
    "Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal content. "
    "Please ensure that your responses are socially unbiased and positive in nature.\n\n"
    "If a question does not make any sense, or is not factually coherent, explain why instead of answering "
    "something not correct. If you don't know the answer to a question, please don't share false information.")
CURIOUS_HUMAN = ("A chat between a curious human and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the human's questions.")

# Vicuna v1.1 (FastChat): "SYSTEM USER: q ASSISTANT: a</s>USER: ..."
register(ChatTemplate(
    "vicuna", user="USER: {content} ", assistant_prefix="ASSISTANT: ", assistant="{content}{eos}",
    system="{content} ",
    default_system="A chat between a curious user and an artificial intelligence assistant. "
                   "The assistant gives helpful, detailed, and polite answers to the user's questions."))
# Stanford Alpaca
register(ChatTemplate(
    "alpaca", user="### Instruction:\n{content}\n\n", assistant_prefix="### Response:\n",
    assistant="{content}{eos}", system="{content}\n\n", separator="\n\n",
    default_system="Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request."))
# ChatML (Qwen 1.5/2/2.5, ...); MedicalGPT's qwen is ChatML with Qwen's default system prompt
register(_chatml("chatml", "You are a helpful assistant.", aliases=("qwen",)))
# Yi chat: ChatML without a default system prompt
register(_chatml("yi"))
# InternLM2 chat: ChatML with its own default system prompt
register(_chatml("intern2", "You are an AI assistant whose name is InternLM (书生·浦语)."))
# Qwen3 / Qwen3.5: the model's own template when it ships one (reasoning, tools); otherwise ChatML with the
# reasoning as written in the reply. The *_nothink forms open every reply with an empty think block, as the
# models' templates do with enable_thinking=False.
_NOTHINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"
register(_chatml("qwen3", "", prefer_tokenizer=True))
register(_chatml("qwen3_5", "", prefer_tokenizer=True))
register(_chatml("qwen3_nothink", "", _NOTHINK, prefer_tokenizer=True, template_kwargs=(("enable_thinking", False),)))
register(_chatml("qwen3_5_nothink", "", _NOTHINK, prefer_tokenizer=True,
                 template_kwargs=(("enable_thinking", False),)))
# Llama 3 / 3.1 (BOS <|begin_of_text|> comes from the tokenizer, which adds it itself)
register(ChatTemplate(
    "llama3", user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
    assistant_prefix="<|start_header_id|>assistant<|end_header_id|>\n\n", assistant="{content}<|eot_id|>",
    system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>", stop="<|eot_id|>"))
# Llama 2 chat: "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nq [/INST] a </s><s>[INST] q2 [/INST] a2 </s>"
register(ChatTemplate(
    "llama2", user="[INST] {content} [/INST]", assistant_prefix=" ", assistant="{content} {eos}",
    first_user="[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{content} [/INST]", separator="{bos}",
    default_system=LLAMA2_SYSTEM))
# Chinese-LLaMA-Alpaca-2: the Llama 2 format with its own default system prompt
register(ChatTemplate(
    "llama2-zh", user="[INST] {content} [/INST]", assistant_prefix=" ", assistant="{content} {eos}",
    first_user="[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{content} [/INST]", separator="{bos}",
    default_system="You are a helpful assistant. 你是一个乐于助人的助手。"))
# Mistral instruct (v0.1/v0.2): "<s>[INST] q [/INST]a</s>[INST] q2 [/INST]a2</s>", the system prompt
# written at the start of the first user message
register(ChatTemplate(
    "mistral", user="[INST] {content} [/INST]", assistant_prefix="", assistant="{content}{eos}",
    first_user="[INST] {system}\n\n{content} [/INST]"))
# Baichuan 1 / 2 chat: reserved tokens as role markers
register(ChatTemplate("baichuan", user="<reserved_102>{content}", assistant_prefix="<reserved_103>",
                      assistant="{content}{eos}"))
register(ChatTemplate("baichuan2", user="<reserved_106>{content}", assistant_prefix="<reserved_107>",
                      assistant="{content}{eos}"))
# Ziya (IDEA-CCNL)
register(ChatTemplate("ziya", user="<human>:{content}\n", assistant_prefix="<bot>:", assistant="{content}{eos}",
                      separator="\n"))
# Linly
register(ChatTemplate("linly", user="User: {content}\n", assistant_prefix="Bot: ", assistant="{content}{eos}",
                      separator="\n"))
# ChatGLM-6B / ChatGLM2-6B (the round counters of the originals left out, as MedicalGPT does)
register(ChatTemplate("chatglm", user="问：{content}\n", assistant_prefix="答：", assistant="{content}{eos}",
                      separator="\n"))
register(ChatTemplate("chatglm2", user="问：{content}\n\n", assistant_prefix="答：", assistant="{content}{eos}",
                      separator="\n\n"))
# ChatGLM3: role tokens; the family renders no end-of-turn marker, so EOS ends each reply (as LLaMA-Factory does)
register(ChatTemplate("chatglm3", user="<|user|>\n{content}", assistant_prefix="<|assistant|>\n",
                      assistant="{content}{eos}", system="<|system|>\n{content}"))
# Phoenix
register(ChatTemplate("phoenix", user="Human: <s>{content}</s>", assistant_prefix="Assistant: <s>",
                      assistant="{content}{eos}", system="{content}\n\n", default_system=CURIOUS_HUMAN))
# BELLE
register(ChatTemplate("belle", user="Human: {content}\n\n", assistant_prefix="Belle: ", assistant="{content}{eos}",
                      separator="\n\n"))
# Aquila
register(ChatTemplate("aquila", user="Human: {content}###", assistant_prefix="Assistant:",
                      assistant="{content}{eos}", system="{content}###", separator="###",
                      default_system=CURIOUS_HUMAN))
# InternLM (first generation)
register(ChatTemplate("intern", user="<|User|>:{content}<eoh>\n", assistant_prefix="<|Bot|>:",
                      assistant="{content}<eoa>", separator="\n", stop="<eoa>"))
# StarChat
register(ChatTemplate("starchat", user="<|user|>\n{content}<|end|>\n", assistant_prefix="<|assistant|>\n",
                      assistant="{content}<|end|>", system="<|system|>\n{content}<|end|>\n", separator="\n",
                      stop="<|end|>"))
# XVERSE
register(ChatTemplate("xverse", user="Human: {content}\n\n", assistant_prefix="Assistant: ",
                      assistant="{content}{eos}"))
# DeepSeek LLM chat: "User: q\n\nAssistant: a<eos>User: ..."
register(ChatTemplate("deepseek", user="User: {content}\n\n", assistant_prefix="Assistant: ",
                      assistant="{content}{eos}", system="{content}\n\n"))
# DeepSeek V3 / R1 (registry form: the reply as written; the models' own templates strip reasoning)
register(ChatTemplate("deepseek3", user="<｜User｜>{content}", assistant_prefix="<｜Assistant｜>",
                      assistant="{content}{eos}", prefer_tokenizer=True))
# DeepSeek Coder instruct
register(ChatTemplate(
    "deepseekcoder", user="### Instruction:\n{content}\n", assistant_prefix="### Response:\n",
    assistant="{content}\n<|EOT|>", separator="\n", stop="<|EOT|>",
    default_system="You are an AI programming assistant, utilizing the Deepseek Coder model, developed by "
                   "Deepseek Company, and you only answer questions related to computer science. For politically "
                   "sensitive questions, security and privacy issues, and other non-computer science questions, "
                   "you will refuse to answer\n"))
# Orion: "Human: q\n\nAssistant: </s>a</s>"
register(ChatTemplate("orion", user="Human: {content}\n\n", assistant_prefix="Assistant: </s>",
                      assistant="{content}{eos}"))
# Cohere Command-R
register(ChatTemplate(
    "cohere", user="<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{content}<|END_OF_TURN_TOKEN|>",
    assistant_prefix="<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", assistant="{content}<|END_OF_TURN_TOKEN|>",
    system="<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{content}<|END_OF_TURN_TOKEN|>", stop="<|END_OF_TURN_TOKEN|>"))
# No roles: the prompt, a newline, the reply and EOS (MedicalGPT's base)
register(ChatTemplate("plain", user="{content}\n", assistant_prefix="", assistant="{content}{eos}",
                      system="{content}\n", separator="\n", aliases=("base",)))

MEDICALGPT_NAMES = (
    "vicuna", "base", "alpaca", "baichuan", "baichuan2", "ziya", "linly", "chatglm", "chatglm2", "chatglm3",
    "phoenix", "belle", "aquila", "intern", "intern2", "starchat", "llama2", "llama3", "llama2-zh", "mistral",
    "xverse", "chatml", "deepseek", "deepseek3", "deepseekcoder", "yi", "orion", "cohere", "qwen", "qwen3",
    "qwen3_nothink", "qwen3_5", "qwen3_5_nothink")


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown --template_name {name!r}; choose one of {', '.join(sorted(TEMPLATES))} "
                         "(or add a ChatTemplate in medtrain/data/chat_templates.py)") from None
