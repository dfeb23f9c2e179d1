"""The trained spans of a conversation rendered by a tokenizer's own jinja chat template, located
exactly: never by searching for a reply's text, so a reply that also occurs in the system prompt,
in a question or in the template's own words cannot be confused with it.

The conversation is rendered once as it is (`full`). Then, for each message in turn, it is rendered
again with that message's content replaced by a sentinel (a private-use character string that no
text contains): the two renderings differ exactly where the template put that content, so

    full   = P + X + S        X: the content as the template rendered it (trimmed, say)
    other  = P + <sentinel> + S

gives X's place in `full` (its "region") without looking at the content. Each assistant reply is then
the span

    start  the end of the inference prompt `render(history, add_generation_prompt=True)` when `full`
           begins with it (so what precedes a reply is exactly what the model is given at inference,
           and what the template renders between the prompt and the content, such as Qwen3's
           `<think>...</think>` block, is trained); otherwise the start of the reply's region (templates
           that render history differently from the prompt: QwQ and DeepSeek-R1, whose prompts end in
           `<think>\\n`; Mistral v0.3 with a system prompt, folded into the last question), widened over
           whitespace that follows a special token (Mistral's `[/INST] reply`)
    end    the end of the template's end-of-turn marker after the reply (and after its tool calls): the
           marker must occur exactly once between the reply's region and the next message's region

E.g. Qwen3, [user "Please repeat exactly: drink more water", assistant "drink more water", user "And
now in capitals.", assistant "DRINK MORE WATER"]: the first span is `drink more water<|im_end|>` after
the first `<|im_start|>assistant\\n`, whatever the user wrote; the second, after the last question,
is `<think>\\n\\n</think>\\n\\nDRINK MORE WATER<|im_end|>`, as the template renders it.

The end-of-turn marker is learned once per template from a probe conversation of sentinels: the text
after a reply that is the same before a next question and at the end of the conversation, up to and
including its first special token (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, `<|end|>`,
`</s>` ...; never the next header). A template that renders none (GLM-4, ChatGLM3) gets the tokenizer's
EOS appended and trained after each reply (`Rendered.append_eos`), with a log line naming it.

Templates with `{% generation %}` marks are taken at their word: the marked spans (plus the end-of-turn
marker right after one, when the mark stops before it).

Where a span cannot be located this way (a template that renders a reply twice, or not at all; an
end-of-turn marker found twice or not at all), `TemplateError` names the template and the cause; the
encoder turns it into a `DataError` with the file and line. Nothing is guessed.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Optional

from medtrain.data.chat_templates import Rendered, TemplateError

logger = logging.getLogger(__name__)

_OPEN, _CLOSE = "\U000F0000", "\U000F0001"   # supplementary private use area: in no real text
_UNSET = object()
# end-of-turn markers of the common families, candidates besides the tokenizer's special tokens (a tokenizer
# may carry a family's template without having its marker registered as special)
COMMON_STOPS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                "<｜end▁of▁sentence｜>", "<|END_OF_TURN_TOKEN|>", "<|EOT|>")


def sentinel(i: int) -> str:
    return f"{_OPEN}{i}{_CLOSE}"


class JinjaRenderer:
    """Renders with a tokenizer's jinja `chat_template` and locates the trained spans (see the module
    doc). `special_tokens` are the template's variables (bos_token, eos_token ...), `stop_tokens` the
    tokenizer's special tokens (candidates for the end-of-turn marker), `template_kwargs` extra template
    variables (`enable_thinking`). Holds only strings, so it pickles; the template is compiled (and
    cached) on first use."""

    def __init__(self, chat_template: str, special_tokens: dict, stop_tokens=(), name: str = "the tokenizer's "
                 "chat_template", template_kwargs: Optional[dict] = None):
        self.chat_template = chat_template
        self.special_tokens = {k: v for k, v in special_tokens.items() if isinstance(v, str)}
        self.stop_tokens = tuple(sorted({t for t in (*stop_tokens, *COMMON_STOPS, self.special_tokens.get("eos_token"))
                                         if t}, key=len, reverse=True))
        self.name = name
        self.template_kwargs = dict(template_kwargs or {})
        self.has_generation_marks = bool(re.search(r"\{%-?\s*generation\s*-?%\}", chat_template))
        self.reads_reasoning = "reasoning_content" in chat_template
        self.renders_tools = "tools" in chat_template and "tool_calls" in chat_template
        self._eot = _UNSET

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_eot"] = _UNSET
        return state

    # -- rendering ----------------------------------------------------------------------------------
    def _render(self, messages: list, tools=None, add_generation_prompt: bool = False, marks: bool = False):
        from transformers.utils.chat_template_utils import render_jinja_template

        try:
            texts, indices = render_jinja_template(
                conversations=[messages], tools=tools or None, chat_template=self.chat_template,
                add_generation_prompt=add_generation_prompt, return_assistant_tokens_mask=marks,
                **self.special_tokens, **self.template_kwargs)
        except Exception as e:  # jinja raise_exception(), or a template bug
            raise TemplateError(f"{self.name} cannot render this conversation: {e}") from None
        return (texts[0], indices[0]) if marks else texts[0]

    @property
    def end_of_turn(self) -> Optional[str]:
        """The text that ends every reply (see the module doc); None when the template renders none."""
        if self._eot is _UNSET:
            self._eot = self._probe_end_of_turn()
            if self._eot is None:
                logger.warning("%s renders no end-of-turn marker after a reply: the tokenizer's EOS is appended "
                               "and trained after each reply so that the model learns to stop", self.name)
        return self._eot

    def _probe_end_of_turn(self) -> Optional[str]:
        u1, a1, u2, a2 = (sentinel(i) for i in range(4))
        turns = [{"role": "user", "content": u1}, {"role": "assistant", "content": a1},
                 {"role": "user", "content": u2}, {"role": "assistant", "content": a2}]
        text = None
        for system in ([], [{"role": "system", "content": sentinel(9)}]):
            try:
                text = self._render(system + turns)
            except TemplateError:
                continue
            if all(text.count(x) == 1 for x in (a1, u2, a2)):
                break
            text = None
        if text is None:
            raise TemplateError(f"{self.name} does not render a plain two-turn conversation with each message "
                                "once, so its end-of-turn marker cannot be told")
        between = text[text.index(a1) + len(a1): text.index(u2)]
        final = text[text.index(a2) + len(a2):]
        common = os.path.commonprefix([between, final])
        for i in range(len(common)):
            for tok in self.stop_tokens:
                if common.startswith(tok, i):
                    return common[: i + len(tok)]
        return None

    def region(self, full: str, messages: list, i: int, tools=None) -> Optional[tuple]:
        """Where message i's content is in `full` (start, end), or None when the template does not
        render it exactly once."""
        s = sentinel(i)
        alt = list(messages)
        alt[i] = {**messages[i], "content": s}
        try:
            other = self._render(alt, tools)
        except TemplateError:
            return None
        k = other.find(s)
        if k < 0 or other.find(s, k + 1) >= 0:
            return None
        before, after = other[:k], other[k + len(s):]
        if not (full.startswith(before) and full.endswith(after)) or len(full) - len(after) < k:
            return None
        return k, len(full) - len(after)

    def render(self, messages: list, tools=None) -> Rendered:
        """`messages` in the HF chat format (system first if any; assistant messages may carry
        `reasoning_content` and `tool_calls`), `tools` the tool definitions."""
        full = self._render(messages, tools)
        if _OPEN in full or _CLOSE in full:
            raise TemplateError("the conversation contains the private-use characters U+F0000/U+F0001, which "
                                "medtrain uses to locate replies; remove them")
        eot = self.end_of_turn
        if self.has_generation_marks:
            return self._from_marks(messages, tools, eot)
        regions = {}
        for i, m in enumerate(messages):
            content = m.get("content")
            if isinstance(content, str) and content:
                regions[i] = self.region(full, messages, i, tools)
        spans, prev_end = [], 0
        for i, m in enumerate(messages):
            own = regions.get(i)
            if m["role"] != "assistant":
                prev_end = own[1] if own else prev_end
                continue
            where = f"{self.name}, message {i + 1} (assistant)"
            if own is None and m.get("content"):
                raise TemplateError(f"{where}: the template does not render the reply's text exactly once, so its "
                                    "span cannot be located")
            nxt = next((regions[j][0] for j in range(i + 1, len(messages)) if regions.get(j)), len(full))
            prompt = self._render(messages[:i], tools, add_generation_prompt=True)
            limit = own[0] if own else nxt
            if full.startswith(prompt) and prev_end <= len(prompt) <= limit:
                start = len(prompt)
            elif own is not None:
                start = own[0]
                # whitespace between a special token ending the prompt and the reply is the reply's (Mistral's
                # "[/INST] reply"): the model generates it after that token
                ws = start
                while ws > prev_end and full[ws - 1] in " \t\n":
                    ws -= 1
                if ws < start and any(full.endswith(t, prev_end, ws) for t in self.stop_tokens):
                    start = ws
            else:
                raise TemplateError(f"{where}: a reply without text (tool calls only) in a template that renders the "
                                    "conversation differently from its inference prompt cannot be located")
            after = own[1] if own else start
            if eot is None:
                if m.get("tool_calls"):
                    raise TemplateError(f"{where}: the template renders no end-of-turn marker, so the end of a "
                                        "reply with tool calls cannot be told; pass --tool_format")
                end = after
            else:
                n = full.count(eot, after, nxt)
                if n != 1:
                    raise TemplateError(f"{where}: the end-of-turn marker {eot!r} occurs {n} times between the reply "
                                        "and the next message, so the reply's end cannot be told")
                end = full.index(eot, after, nxt) + len(eot)
            spans.append((start, end))
            prev_end = end
        return Rendered(full, tuple(spans), eot is None)

    def _from_marks(self, messages: list, tools, eot: Optional[str]) -> Rendered:
        full, marks = self._render(messages, tools, marks=True)
        spans = []
        for start, end in marks:
            if eot and not full[start:end].endswith(eot) and full.startswith(eot, end):
                end += len(eot)
            spans.append((start, end))
        if not spans:
            raise TemplateError(f"{self.name} has {{% generation %}} marks but marks nothing in this conversation")
        return Rendered(full, tuple(spans), eot is None)
