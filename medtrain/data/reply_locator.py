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
           `<think>...</think>` block, is trained); otherwise where `full` and that prompt part, when that
           is after the previous message (QwQ and DeepSeek-R1, whose prompts end in `<think>\\n` that
           history does not have; a prompt that opens `<think>\\n\\n` where the turn renders its
           reasoning: trained from the reasoning on; a reply of tool calls only), moved back to just after
           whitespace or a special token; otherwise the start of the reply's region (Mistral v0.3 with a
           system prompt, folded into the last question), widened over whitespace that follows a special
           token (Mistral's `[/INST] reply`)
    end    the end of the first end-of-turn marker after the reply (and after its tool calls), before
           the next message's region (where a marker ending in EOS is not there, the first EOS: Command-A
           ends tool calls `<|END_ACTION|><|END_OF_TURN_TOKEN|>`, replies `<|END_RESPONSE|>` + the same)

E.g. Qwen3, [user "Please repeat exactly: drink more water", assistant "drink more water", user "And
now in capitals.", assistant "DRINK MORE WATER"]: the first span is `drink more water<|im_end|>` after
the first `<|im_start|>assistant\\n`, whatever the user wrote; the second, after the last question,
is `<think>\\n\\n</think>\\n\\nDRINK MORE WATER<|im_end|>`, as the template renders it.

The end-of-turn marker is learned once per template from a probe conversation of sentinels: the text
after a reply that is the same before a next question and at the end of the conversation, up to and
including its first special token (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, `<|end|>`,
`</s>` ...; never the next header), and the tokenizer's EOS when only special tokens come between
(`<|END_RESPONSE|><|END_OF_TURN_TOKEN|>`). Where the two differ, each is learned apart
(`end_markers`): gpt-oss ends the last reply `<|return|>`, the others `<|end|>`; Qwen1.5 leaves the
last reply open. A special token counts between turns only when a next header follows it and the last
reply has a marker too or it is the EOS (Ling's `<role>` opens the next header), and after the last
reply only when it is not the assistant's own header (GLM-Edge appends `<|assistant|>` to every
rendering). Where a template renders none (GLM-4, ChatGLM3, and Qwen1.5's last reply) the tokenizer's
EOS is appended and trained (`Rendered.append_eos`, per reply where they differ), with a log line.

Templates with `{% generation %}` marks are taken at their word, cut to the reply and its end of turn:
from the end of the inference prompt (SmolLM3 and LFM2 mark the turn's own header) to the end of the
first end-of-turn marker (they mark the newline after it too), or extended over the marker right after
a mark that stops before it.

Tool calls are given with their arguments as objects, or as JSON text to templates that fail on objects
because they join them to strings (DeepSeek-V3/R1, functionary).

Where a span cannot be located this way (a template that renders a reply twice, or not at all; an
end-of-turn marker that does not follow a reply), `TemplateError` names the template and the cause; the
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
        self.renders_tool_calls = "tool_calls" in chat_template        # DeepSeek-V3 renders calls,
        self.renders_tools = self.renders_tool_calls and "tools" in chat_template  # not definitions
        self._eot = _UNSET
        self._warned_system = False

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
        """The text that ends every reply (see the module doc); None when the template renders none, or
        renders different ones after the last reply and after the others (see `end_markers`)."""
        mid, last = self.end_markers
        return mid if mid == last else None

    @property
    def end_markers(self) -> tuple:
        """(after a reply that another message follows, after the last reply): the end-of-turn markers,
        either None where the template renders none there (the tokenizer's EOS is then appended)."""
        if self._eot is _UNSET:
            self._eot = self._probe_end_of_turn()
            mid, last = self._eot
            if mid is None and last is None:
                logger.warning("%s renders no end-of-turn marker after a reply: the tokenizer's EOS is appended "
                               "and trained after each reply so that the model learns to stop", self.name)
            elif mid != last:
                logger.warning("%s ends the last reply with %r and the others with %r%s", self.name, last, mid,
                               "; the tokenizer's EOS is appended and trained where it renders none"
                               if None in (mid, last) else "")
        return self._eot

    def _probe_end_of_turn(self) -> tuple:
        u1, a1, u2, a2 = (sentinel(i) for i in range(4))
        turns = [{"role": "user", "content": u1}, {"role": "assistant", "content": a1},
                 {"role": "user", "content": u2}, {"role": "assistant", "content": a2}]
        text = None
        # without tools, then with the conversation's (Hermes' tool_use template needs them)
        tries = [(s, t) for t in (None, getattr(self, "_probe_tools", None)) for s in ([], [
            {"role": "system", "content": sentinel(9)}])]
        why = ""
        for system, tools in tries:
            try:
                text = self._render(system + turns, tools)
            except TemplateError as e:
                why = why or str(e).replace(f"{self.name} cannot render this conversation: ", "")
                continue
            if all(text.count(x) == 1 for x in (a1, u2, a2)):
                break
            why = why or "a message is rendered {} times".format(
                next(text.count(x) for x in (a1, u2, a2) if text.count(x) != 1))
            text = None
        if text is None:
            raise TemplateError(f"{self.name} does not render a plain two-turn conversation with each message "
                                f"once ({why}), so its end-of-turn marker cannot be told")
        between = text[text.index(a1) + len(a1): text.index(u2)]
        final = text[text.index(a2) + len(a2):]
        common = self._first_stop(os.path.commonprefix([between, final]))
        if common is not None:
            return common, common
        # different markers (gpt-oss: <|end|> then <|return|>), or one only between turns (Qwen1.5 renders the
        # last reply open): between turns, a special token counts only when a next header follows it (GLM-4's
        # "<|user|>" right before the next question is a header, not the end of the reply)
        # a marker that opens the assistant's own header is a header, not an end (GLM-Edge appends "<|assistant|>"
        # after every conversation); a marker between turns only with a next header after it and either a marker
        # after the last reply too or the tokenizer's EOS (Ling's "<role>" opens the next header)
        header = text[text.index(u1) + len(u1): text.index(a1)]
        last = self._first_stop(final)
        if last is not None and self._last_stop(last) in header:
            last = None
        mid = self._first_stop(between)
        if mid is not None and (self._first_stop(between[len(mid):]) is None or (
                last is None and self._last_stop(mid) != self.special_tokens.get("eos_token"))):
            mid = None
        return mid, last

    def _last_stop(self, marker: str) -> str:
        """The special token a marker from `_first_stop` ends with."""
        return next(t for t in self.stop_tokens if marker.endswith(t))

    def _first_stop(self, text: str) -> Optional[str]:
        """text up to and including its first special token (None: it has none)."""
        for i in range(len(text)):
            tok = self._stop_at(text, i)
            if tok:
                end = run = i + len(tok)
                # the tokenizer's EOS right after it (only special tokens between) ends the turn too: Command-A's
                # <|END_RESPONSE|><|END_OF_TURN_TOKEN|>; never a next header (<|eot_id|><|start_header_id|>)
                eos = self.special_tokens.get("eos_token")
                while tok != eos and self._stop_at(text, run):
                    nxt = self._stop_at(text, run)
                    run += len(nxt)
                    if nxt == eos:
                        end = run
                        break
                return text[:end]
        return None

    def _stop_at(self, text: str, i: int) -> Optional[str]:
        return next((t for t in self.stop_tokens if text.startswith(t, i)), None)

    def _snap(self, text: str, i: int, floor: int) -> int:
        """i moved back (not below floor) to just after whitespace or a special token: where the prompt and
        the rendered turn part is not a place to cut text (Nemotron: "<think>\\n" against "<TOOLCALL>")."""
        while i > floor and not text[i - 1].isspace() and not any(text.endswith(t, 0, i) for t in self.stop_tokens):
            i -= 1
        return i

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
        `reasoning_content` and `tool_calls`), `tools` the tool definitions. Tool call arguments are given
        as objects, or as JSON text to templates that join them to strings (DeepSeek-V3/R1, functionary)."""
        try:
            full = self._render(messages, tools)
        except TemplateError:
            if not any(m.get("tool_calls") for m in messages):
                raise
            messages = _arguments_as_text(messages)
            full = self._render(messages, tools)
        self._probe_tools = tools
        if _OPEN in full or _CLOSE in full:
            raise TemplateError("the conversation contains the private-use characters U+F0000/U+F0001, which "
                                "medtrain uses to locate replies; remove them")
        mid_eot, last_eot = self.end_markers
        if self.has_generation_marks:
            return self._from_marks(messages, tools, mid_eot, last_eot)
        regions = {}
        for i, m in enumerate(messages):
            content = m.get("content")
            if isinstance(content, str) and content:
                regions[i] = self.region(full, messages, i, tools)
        if messages and messages[0]["role"] == "system" and regions.get(0) is None and not self._warned_system:
            self._warned_system = True
            logger.warning("%s does not render the system prompt of a conversation that ends with a reply (Mistral "
                           "v0.3 writes it into the last question only when that is the last message): it is not "
                           "trained on; fold it into the first question to keep it", self.name)
        spans, appended, prev_end = [], [], 0
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
            common = self._snap(full, len(os.path.commonprefix([full, prompt])), prev_end)
            if full.startswith(prompt) and prev_end <= len(prompt) <= (own[1] if own else nxt):
                start = len(prompt)   # the prompt may take in the start of the reply (QwQ's last one: "<think>\n")
            elif prev_end < common <= limit:
                # the prompt ends differently from the rendered turn (QwQ, DeepSeek-R1: the prompt opens a think
                # block that history does not have): the reply starts where the two part, after the previous
                # message, so that what the template renders for the reply (reasoning kept, tool calls) is trained
                start = common
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
            eot = mid_eot if i < len(messages) - 1 else last_eot
            appended.append(eot is None)
            if eot is None:
                if m.get("tool_calls"):
                    raise TemplateError(f"{where}: the template renders no end-of-turn marker, so the end of a "
                                        "reply with tool calls cannot be told; pass --tool_format")
                end = after
            else:
                eos = self.special_tokens.get("eos_token")
                if eot not in full[after:nxt] and eos and eot.endswith(eos) and eos in full[after:nxt]:
                    eot = eos   # Command-A: <|END_RESPONSE|><|END_OF_TURN_TOKEN|>, tool calls <|END_ACTION|>...
                if eot not in full[after:nxt]:
                    raise TemplateError(f"{where}: the end-of-turn marker {eot!r} does not follow this reply (the "
                                        "template renders this turn without it), so the reply's end cannot be told")
                end = full.index(eot, after, nxt) + len(eot)   # the first one ends the turn
            spans.append((start, end))
            prev_end = end
        return Rendered(full, tuple(spans), _appended(appended))

    def _from_marks(self, messages: list, tools, mid_eot: Optional[str], last_eot: Optional[str]) -> Rendered:
        """The marked spans, each cut to the reply and its end of turn: from the end of the inference prompt
        (SmolLM3 and LFM2 mark the turn's own header; LLaVA's mark starts after a space) to the end of the first
        end-of-turn marker in it (they mark the newline after it too), or extended over the marker right
        after a mark that stops before it."""
        full, marks = self._render(messages, tools, marks=True)
        if not marks:
            raise TemplateError(f"{self.name} has {{% generation %}} marks but marks nothing in this conversation")
        replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if len(marks) != len(replies):
            raise TemplateError(f"{self.name} marks {len(marks)} spans with {{% generation %}} in a conversation of "
                                f"{len(replies)} assistant messages; one mark per reply is needed")
        spans, appended = [], []
        for (start, end), i in zip(marks, replies):
            eot = mid_eot if i < len(messages) - 1 else last_eot
            appended.append(eot is None)
            prompt = self._render(messages[:i], tools, add_generation_prompt=True)
            floor = spans[-1][1] if spans else 0
            if full.startswith(prompt) and floor <= len(prompt) < end:
                start = len(prompt)   # what the model generates after its prompt, whatever the mark's start
            if eot and eot in full[start:end]:
                end = full.index(eot, start, end) + len(eot)
            elif eot and full.startswith(eot, end):
                end += len(eot)
            spans.append((start, end))
        return Rendered(full, tuple(spans), _appended(appended))


def _arguments_as_text(messages: list) -> list:
    """messages with each tool call's arguments written as JSON text (OpenAI's own form)."""
    import json

    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = {**m, "tool_calls": [{**c, "function": {**c["function"], "arguments": c["function"]["arguments"]
                                                        if isinstance(c["function"].get("arguments"), str) else
                                                        json.dumps(c["function"].get("arguments", {}),
                                                                   ensure_ascii=False)}} for c in m["tool_calls"]]}
        out.append(m)
    return out


def _appended(flags: list):
    """Rendered.append_eos: a bool when the same for every span, else one per span."""
    return flags[0] if len(set(flags)) == 1 else tuple(flags)
