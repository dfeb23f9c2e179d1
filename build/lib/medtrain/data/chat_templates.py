"""Chat templates: how a conversation becomes text, and which parts of that text are trained.

A conversation renders to a `Rendered`: an untrained `head` (BOS, prefix, system prompt), then one
`(prompt, reply)` pair per turn, then an untrained `tail`. Only the replies are trained: each is the
assistant's text followed by its end-of-turn marker (`</s>`, `<|im_end|>`, `<|eot_id|>` ...), e.g.
with `chatml` and one turn:

    head    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    prompt  <|im_start|>user\\nWhat lowers blood pressure?<|im_end|>\\n<|im_start|>assistant\\n
    reply   Less salt, more exercise.<|im_end|>                          <- trained
    tail    (empty)

Two kinds of template:

- The tokenizer's own `chat_template` (the jinja template chat models ship), used when the tokenizer
  has one and no `--template_name` is given. Replies are located in the rendered text by rendering
  prefixes: the reply of message k spans from the end of `render(messages[:k], add_generation_prompt)`
  to the end of `render(messages[:k+1])` (trailing whitespace stays untrained). Templates that mark
  replies with `{% generation %}` are read from those marks instead; a template that renders
  earlier turns differently from prefixes (e.g. one that drops reasoning from old turns) falls back
  to finding each reply's text in the full rendering, plus the end-of-turn marker that follows it.
- A registry template (`--template_name vicuna|alpaca|chatml|qwen|llama3|plain`), a `ChatTemplate`
  entry below. Adding one is a few lines:

      register(ChatTemplate("mychat", user="<user>{content}</user>", assistant_prefix="<bot>",
                            assistant="{content}</bot>", system="<sys>{content}</sys>"))

  `{content}` is the message; `{eos}` / `{bos}` are the tokenizer's EOS / BOS strings. When the
  tokenizer adds BOS itself (Llama), BOS is prepended as the tokenizer would. `to_jinja()` turns an
  entry into an equivalent jinja chat template, which SFT saves with the tokenizer so that
  `apply_chat_template` at inference renders exactly the training format.

Each piece is tokenized separately (`add_special_tokens=False`), so a token never straddles the
boundary between a prompt and a reply, and a reply's tokens are those the model generates after the
prompt at inference.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Optional

logger = logging.getLogger(__name__)

# end-of-turn markers looked for after a reply when a tokenizer template must be searched
COMMON_STOPS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


class Rendered(NamedTuple):
    head: str
    turns: list          # [(prompt, reply)]: prompt untrained, reply trained
    tail: str = ""

    @property
    def text(self) -> str:
        return self.head + "".join(p + r for p, r in self.turns) + self.tail


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
                       prefix=sub(self.prefix), stop=sub(self.stop), default_system=sub(self.default_system))

    @staticmethod
    def _fill(fmt: str, content: str) -> str:
        before, _, after = fmt.partition("{content}")
        return before + content + after

    def render(self, system: Optional[str], turns: list, bos: str = "") -> Rendered:
        """A bound template's rendering of (system, [(user, assistant), ...])."""
        head = bos + self.prefix + (self._fill(self.system, system) if system else "")
        out = []
        for i, (q, a) in enumerate(turns):
            prompt = (self.separator if i else "") + self._fill(self.user, q) + self.assistant_prefix
            out.append((prompt, self._fill(self.assistant, a)))
        return Rendered(head, out, "")

    def to_jinja(self, default_system: Optional[str] = None, bos: str = "") -> str:
        """An equivalent jinja chat template (for a bound template): the same text for the same
        messages, `add_generation_prompt` appending `assistant_prefix`."""
        lit = lambda s: json.dumps(s)  # noqa: E731  (a JSON string is a valid jinja string literal)
        parts = lambda fmt: [lit(x) for x in fmt.partition("{content}")[::2]]  # noqa: E731
        (s0, s1), (u0, u1), (a0, a1) = parts(self.system), parts(self.user), parts(self.assistant)
        default = self.default_system if default_system is None else default_system
        return (
            "{%- if messages and messages[0]['role'] == 'system' -%}"
            "{%- set system_message = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
            f"{{%- else -%}}{{%- set system_message = {lit(default)} -%}}{{%- set loop_messages = messages -%}}"
            "{%- endif -%}"
            f"{{{{- {lit(bos + self.prefix)} -}}}}"
            f"{{%- if system_message -%}}{{{{- {s0} + system_message + {s1} -}}}}{{%- endif -%}}"
            "{%- for message in loop_messages -%}"
            "{%- if message['role'] == 'user' -%}"
            f"{{%- if not loop.first -%}}{{{{- {lit(self.separator)} -}}}}{{%- endif -%}}"
            f"{{{{- {u0} + message['content'] + {u1} -}}}}"
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
# ChatML (Qwen, Yi, ...)
register(ChatTemplate(
    "chatml", user="<|im_start|>user\n{content}<|im_end|>\n", assistant_prefix="<|im_start|>assistant\n",
    assistant="{content}<|im_end|>", system="<|im_start|>system\n{content}<|im_end|>\n", separator="\n",
    default_system="You are a helpful assistant.", stop="<|im_end|>", aliases=("qwen",)))
# Llama 3 / 3.1 (BOS <|begin_of_text|> comes from the tokenizer, which adds it itself)
register(ChatTemplate(
    "llama3", user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
    assistant_prefix="<|start_header_id|>assistant<|end_header_id|>\n\n", assistant="{content}<|eot_id|>",
    system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>", stop="<|eot_id|>"))
# No roles: the prompt, a newline, the reply and EOS
register(ChatTemplate("plain", user="{content}\n", assistant_prefix="", assistant="{content}{eos}",
                      system="{content}\n", separator="\n"))


def get_template(name: str) -> ChatTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown --template_name {name!r}; choose one of {', '.join(sorted(TEMPLATES))} "
                         "(or add a ChatTemplate in medtrain/chat_templates.py)") from None


# ---------------------------------------------------------------------------------------------------
# the tokenizer's own jinja chat template
# ---------------------------------------------------------------------------------------------------
class JinjaRenderer:
    """Renders with a tokenizer's jinja `chat_template` and locates the replies (see module doc).
    Holds only strings, so it pickles; the template is compiled (and cached) on first use."""

    def __init__(self, chat_template: str, special_tokens: dict):
        self.chat_template = chat_template
        self.special_tokens = {k: v for k, v in special_tokens.items() if isinstance(v, str)}
        self.has_generation_marks = bool(re.search(r"\{%-?\s*generation\s*-?%\}", chat_template))
        self.fallbacks = 0   # conversations whose replies had to be searched for

    def _render(self, messages: list, add_generation_prompt: bool = False, marks: bool = False):
        from transformers.utils.chat_template_utils import render_jinja_template

        try:
            texts, indices = render_jinja_template(
                conversations=[messages], chat_template=self.chat_template,
                add_generation_prompt=add_generation_prompt, return_assistant_tokens_mask=marks,
                **self.special_tokens)
        except Exception as e:  # jinja raise_exception(), or a template bug
            raise TemplateError(f"the tokenizer's chat template cannot render this conversation: {e}") from None
        return (texts[0], indices[0]) if marks else texts[0]

    def render(self, system: Optional[str], turns: list) -> Rendered:
        messages = [{"role": "system", "content": system}] if system else []
        for q, a in turns:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        if self.has_generation_marks:
            full, spans = self._render(messages, marks=True)
            if len(spans) == len(turns):
                return self._split(full, spans)
        full = self._render(messages)
        spans, cursor = [], 0
        first = 1 if system else 0
        for t, (_, reply) in enumerate(turns):
            k = first + 2 * t + 1
            p = self._render(messages[:k], add_generation_prompt=True)
            q = full if k + 1 == len(messages) else self._render(messages[: k + 1])
            if full.startswith(q) and q.startswith(p) and len(p) >= cursor and len(q.rstrip()) > len(p):
                start, end = len(p), len(q.rstrip())
            else:
                start, end = self._search(full, reply, cursor)
            spans.append((start, end))
            cursor = end
        return self._split(full, spans)

    def _search(self, full: str, reply: str, cursor: int) -> tuple[int, int]:
        if not self.fallbacks:
            logger.warning("The tokenizer's chat template renders earlier turns differently from prefixes of the "
                           "conversation: assistant replies are located by searching for their text (check the "
                           "trained spans with --preview_samples)")
        self.fallbacks += 1
        for text in (reply, reply.strip()):
            i = full.find(text, cursor)
            if i >= 0:
                end = i + len(text)
                stops = [self.special_tokens.get("eos_token")] + list(COMMON_STOPS)
                for stop in stops:
                    if stop and full.startswith(stop, end):
                        end += len(stop)
                        break
                return i, end
        raise TemplateError("the tokenizer's chat template does not reproduce an assistant reply verbatim, so "
                            "its trained span cannot be located; use --template_name instead")

    @staticmethod
    def _split(full: str, spans: list) -> Rendered:
        turns, cursor = [], 0
        for start, end in spans:
            turns.append((full[cursor:start], full[start:end]))
            cursor = end
        return Rendered("", turns, full[cursor:])
