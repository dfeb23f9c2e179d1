"""The SFT encoder: conversations (`chat_records`) rendered by a chat template and tokenized into ids
and a trained-token mask, for the token store and the streaming path exactly as `TextEncoder` gives
pretraining text.

Rendering: a registry template (`chat_templates`, `--template_name`) or the tokenizer's own jinja
chat template, whose replies `reply_locator` locates exactly. Either gives the whole text and the
trained character spans: each assistant reply (with its reasoning and tool calls where the template
renders them) and its end-of-turn marker.

Tokenizing: the whole text is tokenized once, as `apply_chat_template(..., tokenize=True)` does,
except that a token never crosses the start of a reply: a one-character special token inserted
there (and dropped from the ids) makes the prompt end where the inference prompt ends. So:

- the ids before a reply are those of `apply_chat_template(history, add_generation_prompt=True)`
  whenever the prompt the template renders is a prefix of the conversation (all templates that render
  earlier turns as they were; see `reply_locator` for the others);
- the whole sequence equals `apply_chat_template(messages, tokenize=True)` except where that
  tokenization merges the end of a prompt with the start of a reply into one token (e.g. "ASSISTANT: "
  + "Yes" as " Yes" with a byte-level BPE); there the ids are the prompt's, then the reply's, as the
  model sees them at inference; no other token is added or lost (no stray SentencePiece `▁`, since
  the reply is tokenized as a continuation, not as a new text);
- a token is trained when any of its characters is in a trained span; where the template renders no
  end-of-turn marker (GLM-4, ChatGLM3) the tokenizer's EOS is appended after each reply and trained;
- a registry template gets BOS prepended when the tokenizer adds BOS itself (a tokenizer template
  renders BOS itself).

A conversation longer than `max_length` tokens keeps as many whole turns from the start as fit
(counted as `truncated`); when not even the first turn fits, that turn is cut at `max_length`
(counted as `truncated` and `truncated_reply_cut` when the cut falls in the reply); a conversation
left without any trained token is dropped (counted as `dropped_no_target`). With `train_on_inputs`
every token is trained (prompts and system prompt too). A conversation ending with an unanswered user
message is trained without it (counted as `dropped_trailing_question`, see `chat_records`).

Tools: with the tokenizer's template and no `--tool_format`, tool definitions, calls and results are
given to the template (`tools=`, `tool_calls`, `role: tool`) and rendered its way; with a registry
template, or `--tool_format NAME`, they are written as text in that format (`tool_formats`; a registry
template uses `default` when none is given). Either way the calls are trained, results and
definitions are not. Reasoning: see `chat_records`; a template that reads `reasoning_content` gets it
apart from the answer (and keeps or drops it turn by turn, its way); any other gets the reply as
written, `<think>...</think>` included.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from typing import Optional

import numpy as np

from medtrain.data.chat_records import (FORMATS, BadRecord, Conversation, detect_format,  # noqa: F401
                                        from_turns, parse_record)
from medtrain.data.encoding import own_fields_only
from medtrain.data.marked_tokenizer import MARKER, marked_tokenizer
from medtrain.data.chat_templates import ChatTemplate, Rendered, TemplateError, get_template
from medtrain.data.reply_locator import JinjaRenderer
from medtrain.data.tool_formats import as_text, get_tool_format
from medtrain.errors import DataError
from medtrain.data.sources import RecordReader, SkipCounter, WorkUnit, _open_binary
from medtrain.data.tokenization import TokenizerSpec

logger = logging.getLogger(__name__)

COUNTERS = ("truncated", "truncated_reply_cut", "dropped_no_target", "dropped_trailing_question")
SPLIT = MARKER               # the token inserted at each reply start (then dropped): see the module doc


# ---------------------------------------------------------------------------------------------------
# where a record is, for error messages
# ---------------------------------------------------------------------------------------------------
def _array_line(path: str, file, row: int) -> Optional[int]:
    """1-based line on which element `row` of a JSON-array file starts (None if it cannot be told)."""
    try:
        with _open_binary(file) as fh:
            text = fh.read().decode("utf-8-sig")
        i = text.index("[")
        if text[:i].strip():
            return None  # {"data": [...]}: rows are named by number only
        dec, i, n = json.JSONDecoder(), i + 1, 0
        while i < len(text):
            while i < len(text) and text[i] in " \t\r\n,":
                i += 1
            if n == row:
                return text.count("\n", 0, i) + 1
            _, i = dec.raw_decode(text, i)
            n += 1
    except (OSError, ValueError):
        return None
    return None


class _Reporter:
    """Reports a bad record the way `RecordReader._bad` does: `DataError("<file>:<line>: ...")`, or a
    skip counted by reason with `skip_bad`."""

    def __init__(self, reader: RecordReader, skip_bad: bool, skipped: SkipCounter):
        self.reader, self.skip_bad, self.skipped = reader, skip_bad, skipped
        self._how = None

    def where(self, key: int) -> str:
        f = self.reader.unit.file
        if self._how is None:
            array = f.fmt == "json" and self.reader._is_json_array()
            self._how = "row" if f.fmt == "parquet" or array else ("line" if f.compression else "offset")
        if self._how != "row":
            return self.reader._where(key, self._how)
        line = _array_line(f.path, f, key) if f.fmt == "json" else None
        return f"{f.path}:{line} (record {key + 1})" if line else f"{f.path}: row {key + 1}"

    def __call__(self, reason: str, message: str, key: int) -> None:
        if not self.skip_bad:
            raise DataError(f"{self.where(key)}: {message} (pass --skip_bad_lines to skip and count such "
                            "conversations)")
        self.skipped.add(reason, self.where(key) if len(self.skipped.examples) < 20 else "")




# ---------------------------------------------------------------------------------------------------
# the encoder
# ---------------------------------------------------------------------------------------------------
def _chat_templates_of(tokenizer) -> tuple[Optional[str], Optional[str]]:
    """The tokenizer's chat templates: (default, tool_use). A tokenizer may carry several named ones
    (Hermes, Command-R: `default` and `tool_use`); as `apply_chat_template` does, `tool_use` renders the
    conversations that come with tool definitions, `default` the others."""
    t = getattr(tokenizer, "chat_template", None)
    if isinstance(t, list):   # tokenizer_config.json's form: [{"name": ..., "template": ...}]
        t = {e.get("name"): e.get("template") for e in t if isinstance(e, dict)}
    if isinstance(t, dict):
        default, tool_use = t.get("default"), t.get("tool_use")
        if default is None and tool_use is None and t:
            default = next(iter(t.values()))
        return (default or tool_use or None), (tool_use if default else None)
    return (t or None), None


def _chat_template_of(tokenizer) -> Optional[str]:
    return _chat_templates_of(tokenizer)[0]


def special_tokens_of(tokenizer) -> list[str]:
    """The tokenizer's special tokens (candidates for a template's end-of-turn marker)."""
    out = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(tok, "special", False):
            out.add(str(tok))
    return sorted(out)


def _inline_reasoning(m: dict) -> str:
    """A reply's text with its reasoning written in it, for templates that do not read
    `reasoning_content`: as the record wrote it, or `<think>\nR\n</think>\n\nA`."""
    if m.get("raw") is not None:
        return m["raw"]
    if m.get("reasoning_content") is not None:
        return f"<think>\n{m['reasoning_content']}\n</think>\n\n{m['content']}"
    return m["content"]


class ConversationEncoder:
    """SFT records for the token store and the streaming path (the encoder interface): `read` yields
    each valid conversation rendered by the chat template, `encode_batch` returns `(ids, mask)` per
    conversation (mask 1 = trained token) or None for one dropped (and counted).

    Picklable: it holds strings (tokenizer JSON, template); the tokenizer is rebuilt lazily in each
    process. `counters()` returns the counts since its previous call (so per-unit counts sum to the
    corpus total however units are spread over processes).
    """

    has_mask = True
    text_field = None

    def __init__(self, spec: TokenizerSpec, template: Optional[ChatTemplate] = None,
                 chat_template: Optional[str] = None, special_tokens: Optional[dict] = None,
                 data_format: str = "auto", system_prompt: Optional[str] = None, max_length: int = 2048,
                 stop_tokens=(), tool_format: Optional[str] = None, template_kwargs: Optional[dict] = None,
                 template_source: str = "the tokenizer's chat_template", train_on_inputs: bool = False,
                 tool_chat_template: Optional[str] = None):
        if (template is None) == (chat_template is None):
            raise ValueError("give exactly one of a registry template and a tokenizer chat_template")
        if data_format not in ("auto",) + FORMATS:
            raise ValueError(f"--data_format must be auto, {', '.join(FORMATS)}; got {data_format!r}")
        if max_length < 2:
            raise ValueError(f"the maximum sequence length must be at least 2, got {max_length}")
        if tool_format is not None:
            get_tool_format(tool_format)
        self.spec = spec
        self.template = template
        self.jinja = JinjaRenderer(chat_template, special_tokens or {}, stop_tokens, template_source,
                                   template_kwargs) if chat_template is not None else None
        # the tokenizer's `tool_use` template, for conversations with tool definitions
        self.jinja_tools = JinjaRenderer(tool_chat_template, special_tokens or {}, stop_tokens,
                                         f"{template_source} (tool_use)", template_kwargs) \
            if tool_chat_template is not None and chat_template is not None else None
        self.data_format = data_format
        self.system_prompt = system_prompt
        self.max_length = max_length
        self.tool_format = tool_format
        self.train_on_inputs = train_on_inputs   # every token trained, prompts too (MedicalGPT's flag)
        self._tok = None
        self._formats: dict = {}
        self._counts = dict.fromkeys(COUNTERS, 0)

    @classmethod
    def from_tokenizer(cls, tokenizer, spec: TokenizerSpec, template_name: Optional[str] = "auto",
                       data_format: str = "auto", system_prompt: Optional[str] = None,
                       max_length: int = 2048, tool_format: Optional[str] = None,
                       train_on_inputs: bool = False) -> "ConversationEncoder":
        """The encoder for a HF tokenizer: its own chat_template when it has one and template_name is
        auto (or 'tokenizer', or a registry name that prefers the model's own template), else the
        registry template (vicuna when auto and the tokenizer has none)."""
        own, own_tools = _chat_templates_of(tokenizer)
        name = (template_name or "auto").strip()
        if name == "tokenizer" and own is None:
            raise ValueError("--template_name tokenizer: this tokenizer has no chat_template; choose a template "
                             "with --template_name (vicuna, alpaca, chatml, llama3, qwen, ...)")
        entry = None if name in ("auto", "tokenizer") else get_template(name)
        if own is not None and (entry is None or entry.prefer_tokenizer):
            kwargs = dict(entry.template_kwargs) if entry is not None else {}
            if entry is not None:
                logger.info("--template_name %s: using the model's own chat_template%s", name,
                            f" with {kwargs}" if kwargs else "")
                if "<|im_start|>" in entry.user and "<|im_start|>" not in own:
                    logger.warning("--template_name %s asks for the ChatML format, but the model's own chat_template "
                                   "is another: training uses the model's own", name)
            special = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
            source = f"the chat_template of {getattr(tokenizer, 'name_or_path', '') or 'the tokenizer'}"
            return cls(spec, chat_template=own, special_tokens=special, data_format=data_format,
                       system_prompt=system_prompt, max_length=max_length, stop_tokens=special_tokens_of(tokenizer),
                       tool_format=tool_format, template_kwargs=kwargs, template_source=source,
                       train_on_inputs=train_on_inputs, tool_chat_template=own_tools)
        if name == "auto":
            name = "vicuna"
            logger.info("The tokenizer has no chat_template: using the vicuna template (choose one with "
                        "--template_name)")
        template = get_template(name).bind(tokenizer.eos_token, tokenizer.bos_token)
        return cls(spec, template=template, data_format=data_format, system_prompt=system_prompt,
                   max_length=max_length, tool_format=tool_format, train_on_inputs=train_on_inputs)

    # -- description ------------------------------------------------------------------------------
    @property
    def template_name(self) -> str:
        return self.template.name if self.template is not None else "tokenizer chat_template"

    def default_system(self) -> Optional[str]:
        """The system prompt of conversations that have none: --system_prompt, else the template's."""
        if self.system_prompt is not None:
            return self.system_prompt or None
        return (self.template.default_system or None) if self.template is not None else None

    def jinja_template(self) -> Optional[str]:
        """For a registry template: an equivalent jinja chat template to save with the tokenizer."""
        if self.template is None:
            return None
        bos = ""
        if self.spec.add_bos:
            bos = self.tokenizer.id_to_token(self.spec.bos_id) or ""
        return self.template.to_jinja(self.default_system() or "", bos)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tok"] = None
        state["_counts"] = dict.fromkeys(COUNTERS, 0)   # a copy starts counting afresh
        return state

    @property
    def tokenizer(self):
        """This process's tokenizer of marked conversations (`marked_tokenizer`), on the spec's backend."""
        if self._tok is None:
            self._tok = marked_tokenizer(self.spec)
        return self._tok

    def with_spec(self, spec: TokenizerSpec) -> "ConversationEncoder":
        """This encoder with another spec (the same tokenizer with a verified backend)."""
        from copy import copy

        other = copy(self)
        other.spec, other._tok, other._counts = spec, None, dict.fromkeys(COUNTERS, 0)
        return other

    def with_backend(self, requested: Optional[str], units, max_units: Optional[int] = None,
                     samples: Optional[list] = None) -> "ConversationEncoder":
        """This encoder on the backend `--tokenizer_backend` chooses, verified on the edge cases and on
        conversations drawn from `units` (the first few of each, or of `max_units` spread over them), as
        they are tokenized: rendered, with the reply markers (or on `samples`, texts marked so). A tokenizer that is not byte-level BPE keeps
        HuggingFace tokenizers (SFT needs each token's place, which only HF gives for it)."""
        from dataclasses import replace

        from medtrain.data.marked_tokenizer import add_marker
        from medtrain.data.token_bytes import TokenBytes
        from medtrain.data.tokenizer_backends import select_backend
        from medtrain.runtime.measure import release_free_memory

        from medtrain.data.tokenizer_backends import backend_names

        requested = (requested or "hf").strip().lower()
        if requested == "hf":
            return self.with_spec(replace(self.spec, backend="hf"))
        if requested != "auto" and requested not in backend_names():
            raise DataError(f"--tokenizer_backend {requested!r}: unknown backend (choose auto, "
                            f"{', '.join(backend_names())})")
        parsed = json.loads(self.spec.tokenizer_json)   # once: the marker added, the byte table asked
        add_marker(parsed)
        if TokenBytes.of(parsed) is None:
            logger.log(logging.WARNING if requested != "auto" else logging.INFO,
                       "Tokenizer backend: hf for SFT (--tokenizer_backend %s): the tokenizer is not byte-level BPE (or "
                       "HF trims its offsets), so only HuggingFace tokenizers gives each token's place in the text", requested)
            return self.with_spec(replace(self.spec, backend="hf"))
        if samples is None:
            samples = self.sample_texts(units, max_units=max_units)
        marked_json = json.dumps(parsed, ensure_ascii=False)   # as MarkedTokenizer writes it: the same backends
        del parsed
        backend = select_backend(marked_json, requested, samples)
        name = backend.name
        del backend
        release_free_memory()
        logger.info("Tokenizer backend: %s for SFT conversations (--tokenizer_backend %s)", name, requested)
        return self.with_spec(replace(self.spec, backend=name))

    def sample_texts(self, units, per_unit: int = 4, max_units: Optional[int] = None, reader=None) -> list[str]:
        """The first `per_unit` valid records of each unit (read by `reader`, default this encoder), rendered
        and marked as `encode_batch` tokenizes them (bad records are passed over here; the build reports
        them). A record is a Rendered conversation or a pair of them (preference)."""
        from medtrain.data.tokenization import spread

        reader = reader or self
        out = []
        for unit in spread(units, max_units):
            try:
                for n, (_, record) in enumerate(reader.read(unit, skip_bad=True, skipped=SkipCounter())):
                    for rendered in ((record,) if isinstance(record, Rendered) else tuple(record)):
                        out.append(self._with_marks(rendered)[0])
                    if n + 1 >= per_unit:
                        break
            except DataError:
                continue
        self._counts = dict.fromkeys(COUNTERS, 0)
        return out

    @property
    def dtype(self):
        return self.spec.dtype

    @property
    def fingerprint(self) -> str:
        payload = {"kind": "sft", "version": 3, "tokenizer": self.spec.fingerprint,
                   "template": asdict(self.template) if self.template is not None else None,
                   "chat_template": self.jinja.chat_template if self.jinja is not None else None,
                   "special_tokens": self.jinja.special_tokens if self.jinja is not None else None,
                   "stop_tokens": self.jinja.stop_tokens if self.jinja is not None else None,
                   "template_kwargs": self.jinja.template_kwargs if self.jinja is not None else None,
                   **({"tool_chat_template": self.jinja_tools.chat_template} if self.jinja_tools is not None else {}),
                   "tool_format": self.tool_format,
                   "data_format": self.data_format, "system_prompt": self.system_prompt,
                   "max_length": self.max_length, "add_bos": self.spec.add_bos}
        if self.train_on_inputs:
            payload["train_on_inputs"] = True
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def describe(self) -> dict:
        return {"encoder": "conversation", "template": self.template_name}

    def for_source(self, text_field: Optional[str]) -> "ConversationEncoder":
        own_fields_only(text_field, "SFT conversations", "conversations, messages, instruction...")
        return self

    def counters(self) -> dict:
        out, self._counts = self._counts, dict.fromkeys(COUNTERS, 0)
        if self._tok is not None:
            out.update({k: v for k, v in self._tok.take_counters().items() if v})
        return out

    # -- reading ------------------------------------------------------------------------------------
    def _first_format(self, file) -> Optional[str]:
        """The format of a file's first record that has one (read apart from the unit being read)."""
        if file.path not in self._formats:
            fmt = None
            for n, (_, obj) in enumerate(RecordReader(WorkUnit(file), None, skip_bad=True)):
                fmt = detect_format(obj)
                if fmt is not None or n >= 1000:
                    break
            self._formats[file.path] = fmt
        return self._formats[file.path]

    def source(self, unit: WorkUnit, key: int) -> str:
        """Where record `key` of `unit` is: "file:line" (or a row number)."""
        return _Reporter(RecordReader(unit, None, True), True, SkipCounter()).where(key)

    def read(self, unit: WorkUnit, skip_bad: bool = False, max_chars: Optional[int] = None,
             skipped: Optional[SkipCounter] = None):
        """(key, Rendered) for each valid conversation of the unit; bad ones reported (see module doc)."""
        f = unit.file
        if f.fmt == "txt":
            raise DataError(f"{f.path}: SFT reads conversations from .jsonl, .json or .parquet files, not plain "
                            "text (pretraining.py trains on text)")
        skipped = skipped if skipped is not None else SkipCounter()
        reader = RecordReader(unit, None, skip_bad, None, skipped)
        bad = _Reporter(reader, skip_bad, skipped)
        fmt = None if self.data_format == "auto" else self.data_format
        whole = unit.start == 0 and unit.stride == 1 and unit.skip_before is None
        if fmt is None and not whole:
            fmt = self._first_format(f)
        for key, obj in reader:
            try:
                if fmt is None:   # auto, reading the file from its start: its first record decides
                    fmt = detect_format(obj)
                    if fmt is None:
                        raise BadRecord("unknown_format", "cannot tell the conversation format: expected "
                                        "'conversations' (sharegpt), 'messages' (openai) or 'instruction' and "
                                        f"'output' (alpaca); fields: {', '.join(list(obj)[:8])}")
                    self._formats[f.path] = fmt
                    logger.debug("%s: %s format", f.path, fmt)
                conv = parse_record(obj, fmt)
                if conv.dropped_question:
                    self._counts["dropped_trailing_question"] += 1
                if max_chars is not None and conv.chars > max_chars:
                    raise BadRecord("too_long", f"conversation of {conv.chars:,} characters is over "
                                    f"--max_document_chars {max_chars:,}")
                rendered = self.render(conv.system, conv.messages, conv.tools)
            except BadRecord as e:
                bad(e.reason, e.message, key)
                continue
            except TemplateError as e:
                bad("template_error", str(e), key)
                continue
            yield key, rendered

    def render(self, system: Optional[str], messages: list, tools: Optional[list] = None) -> Rendered:
        """The Rendered conversation: `messages` are HF chat messages (user / assistant / tool, see
        `chat_records`), or (user, assistant) pairs."""
        if messages and isinstance(messages[0], (tuple, list)):
            messages = from_turns(messages)
        system = system if system is not None else self.default_system()
        has_tools = bool(tools) or any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
        textual = self.template is not None or self.tool_format is not None
        if has_tools and textual:
            fmt = get_tool_format(self.tool_format or "default")
            system, messages = as_text(system, messages, tools, fmt)
            tools = None
        if self.template is not None:
            return self.template.render(system, [(q["content"], _inline_reasoning(a)) for q, a in
                                                 zip(messages[::2], messages[1::2])])
        jinja = self.jinja_tools if tools and self.jinja_tools is not None else self.jinja
        if tools and not textual and jinja.renders_tool_calls and not jinja.renders_tools:
            raise TemplateError(f"{jinja.name} renders tool calls but not tool definitions, so the conversation's "
                                "'tools' would be lost; pass --tool_format (default, qwen, llama3, mistral, glm4) to "
                                "write them as text, or drop the 'tools' field and describe them in the system prompt")
        if has_tools and not textual and not jinja.renders_tool_calls:
            raise TemplateError(f"{jinja.name} does not render tools or tool calls; pass --tool_format "
                                "(default, qwen, llama3, mistral, glm4) to write them as text")
        keep = jinja.reads_reasoning
        msgs = [{"role": "system", "content": system}] if system else []
        for m in messages:
            m = dict(m)
            raw = m.pop("raw", None)
            if m["role"] == "assistant" and not keep and "reasoning_content" in m:
                m["content"] = _inline_reasoning({**m, "raw": raw})
                del m["reasoning_content"]
            msgs.append(m)
        return jinja.render(msgs, tools)

    def size(self, record: Rendered) -> int:
        return len(record.text)

    # -- encoding -----------------------------------------------------------------------------------
    def _with_marks(self, record: Rendered) -> tuple:
        """The text with SPLIT before each span (and EOS after it when the template renders no end of
        turn), and the spans in that text."""
        eos = ""
        flags = record.append_eos if isinstance(record.append_eos, tuple) else (record.append_eos,) * len(record.spans)
        if any(flags):
            if self.spec.eos_id is None:
                raise DataError("the chat template renders no end-of-turn marker and the tokenizer has no EOS "
                                "token to end replies with; set tokenizer.eos_token")
            eos = self._eos_text()
        text, out, spans, cursor = record.text, [], [], 0
        if SPLIT in text:
            raise DataError(f"a conversation contains the character U+{ord(SPLIT):X}, which medtrain uses to "
                            "mark replies; remove it")
        n = 0
        for (start, end), append in zip(record.spans, flags):
            out.append(text[cursor:start])
            n += start - cursor
            out.append(SPLIT)
            n += 1
            s = n
            tail = eos if append else ""
            out.append(text[start:end] + tail)
            n += end - start + len(tail)
            spans.append((s, n))
            cursor = end
        out.append(text[cursor:])
        return "".join(out), spans

    def _eos_text(self) -> str:
        """The EOS token's text, without building a tokenizer in this process when none is built yet."""
        if getattr(self, "_eos", None) is None:
            if self._tok is not None:
                self._eos = self._tok.id_to_token(self.spec.eos_id)
            else:
                from medtrain.data.marked_tokenizer import token_text

                self._eos = token_text(self.spec.tokenizer_json, self.spec.eos_id)
        return self._eos

    def encode_batch(self, records: list) -> list:
        marked = [self._with_marks(r) for r in records]
        encoded = self.tokenizer.encode([t for t, _ in marked], [spans for _, spans in marked])
        bos = [self.spec.bos_id] if self.template is not None and self.spec.add_bos else []
        out = []
        for ids, trained, ends in encoded:
            ids = np.concatenate([np.asarray(bos, dtype=np.int64), ids])
            mask = np.concatenate([np.zeros(len(bos), dtype=np.uint8), trained.astype(np.uint8)])
            if self.train_on_inputs:
                mask[:] = 1
            out.append(self._fit(ids, mask, [e + len(bos) for e in ends]))
        return out

    def _fit(self, ids: np.ndarray, mask: np.ndarray, turn_ends: list):
        """ids and mask of one conversation, cut to max_length at turn boundaries (see module doc)."""
        limit, total = self.max_length, len(ids)
        if total > limit:
            fitting = [e for e in turn_ends if e <= limit]
            cut = fitting[-1] if fitting else limit
            ids, mask = ids[:cut], mask[:cut]
        if not mask.any():
            self._counts["dropped_no_target"] += 1
            return None
        if total > limit:
            self._counts["truncated"] += 1
            if not fitting:
                self._counts["truncated_reply_cut"] += 1
        return ids.astype(self.spec.dtype), mask.astype(np.uint8)
