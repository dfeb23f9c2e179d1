"""SFT conversations: the input formats, their validation, and the encoder that puts them into the
token store and the streaming path exactly as `TextEncoder` puts pretraining text.

Formats (`--data_format auto` detects each file's format from its first record):

    sharegpt  {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}],
               "system": "..." (optional)}       roles: system, human/user, gpt/assistant/chatgpt/model
    openai    {"messages": [{"role": "system", "content": "..."}, {"role": "user", ...},
               {"role": "assistant", ...}]}     roles: system/developer, user, assistant
    alpaca    {"instruction": "...", "input": "...", "output": "...", "system": "...",
               "history": [["earlier question", "earlier answer"], ...]}   (input/system/history optional)

in .jsonl, .json (JSON lines or one array) or .parquet files. A conversation is an optional system
prompt, then user and assistant messages alternating, starting with the user and ending with the
assistant. Anything else is bad input: an error naming the file and line, or with
`--skip_bad_lines` a skip counted by reason (`missing_role`, `unknown_role`, `missing_content`,
`empty_reply`, `empty_message`, `broken_alternation`, `no_reply`, `misplaced_system`,
`missing_field`, `unknown_format`, ...).

`ConversationEncoder` renders each conversation with the chat template (`chat_templates`), tokenizes
it piece by piece, and returns the ids with a mask that is 1 exactly on the assistant replies and
their end-of-turn token. A conversation longer than `max_length` tokens keeps as many whole turns
from the start as fit (counted as `truncated`); when not even the first turn fits, that turn is cut
at `max_length` (counted as `truncated` and `truncated_reply_cut` when the cut falls in the reply);
a conversation left without any trained token is dropped (counted as `dropped_no_target`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from typing import Optional

import numpy as np

from medtrain.data.chat_templates import ChatTemplate, JinjaRenderer, Rendered, TemplateError, get_template
from medtrain.errors import DataError
from medtrain.data.sources import RecordReader, SkipCounter, WorkUnit, _open_binary
from medtrain.data.tokenization import TokenizerSpec

logger = logging.getLogger(__name__)

FORMATS = ("sharegpt", "openai", "alpaca")
SYSTEM, USER, ASSISTANT = "system", "user", "assistant"
SHAREGPT_ROLES = {"system": SYSTEM, "human": USER, "user": USER, "gpt": ASSISTANT, "assistant": ASSISTANT,
                  "chatgpt": ASSISTANT, "model": ASSISTANT}
OPENAI_ROLES = {"system": SYSTEM, "developer": SYSTEM, "user": USER, "assistant": ASSISTANT}
COUNTERS = ("truncated", "truncated_reply_cut", "dropped_no_target")


class BadRecord(Exception):
    """A malformed conversation: `reason` is the skip-counter key, `message` says what is wrong."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


# ---------------------------------------------------------------------------------------------------
# formats
# ---------------------------------------------------------------------------------------------------
def detect_format(obj: dict) -> Optional[str]:
    """The format a record is written in, from its fields (None: none of them)."""
    if "conversations" in obj:
        return "sharegpt"
    if "messages" in obj:
        return "openai"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    return None


def _text(value, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        return "".join(str(p.get("text", "")) for p in value)  # OpenAI content parts, text only
    raise BadRecord("bad_content", f"{what} is {type(value).__name__}, not a string")


def _messages(items, fmt: str) -> list[tuple[str, str, str]]:
    """[(role, content, label)] of a ShareGPT or OpenAI message list, roles normalised; `label`
    names the message in error messages ("message 3 (gpt)")."""
    field, role_key, content_key, roles = (
        ("conversations", "from", "value", SHAREGPT_ROLES) if fmt == "sharegpt"
        else ("messages", "role", "content", OPENAI_ROLES))
    if not isinstance(items, list):
        raise BadRecord("bad_conversation", f"{field!r} must be a list of {{{role_key!r}, {content_key!r}}} "
                        f"objects, got {type(items).__name__}")
    out = []
    for i, m in enumerate(items, 1):
        if not isinstance(m, dict):
            raise BadRecord("bad_message", f"message {i} is {type(m).__name__}, not an object")
        if m.get(role_key) is None:
            raise BadRecord("missing_role", f"message {i} has no {role_key!r} (its role)")
        role = roles.get(str(m[role_key]).strip().lower())
        label = f"message {i} ({m[role_key]})"
        if role is None:
            raise BadRecord("unknown_role", f"{label} has an unknown role (expected one of {', '.join(roles)})")
        if content_key not in m or m[content_key] is None:
            raise BadRecord("missing_content", f"{label} has no {content_key!r}")
        out.append((role, _text(m[content_key], f"the {content_key!r} of {label}"), label))
    return out


def _conversation(messages: list[tuple[str, str, str]], system: Optional[str]) -> tuple:
    """(system, [(user, assistant), ...]) from alternating (role, content, label) messages."""
    if messages and messages[0][0] == SYSTEM:
        system = messages[0][1]
        messages = messages[1:]
    if not messages:
        raise BadRecord("empty_conversation", "the conversation has no user and assistant messages")
    turns: list = []
    for i, (role, content, label) in enumerate(messages):
        expected = USER if i % 2 == 0 else ASSISTANT
        if role == SYSTEM:
            raise BadRecord("misplaced_system", f"{label}: a system message may only come first")
        if role != expected:
            raise BadRecord("broken_alternation", f"{label} is from the {role} where the {expected} was expected "
                            "(user and assistant must alternate, user first)")
        if not content.strip():
            raise BadRecord("empty_reply" if role == ASSISTANT else "empty_message",
                            f"{label} is empty" + (" (an empty assistant reply)" if role == ASSISTANT else ""))
        if role == USER:
            turns.append([content, None])
        else:
            turns[-1][1] = content
    if turns[-1][1] is None:
        raise BadRecord("no_reply", "the conversation ends with a user message that has no assistant reply")
    return (system or None), [tuple(t) for t in turns]


def _optional_text(obj: dict, name: str) -> Optional[str]:
    value = obj.get(name)
    return None if value is None else _text(value, repr(name))


def parse_record(obj: dict, fmt: str) -> tuple:
    """(system or None, [(user, assistant), ...]) of a record in format `fmt`, or BadRecord."""
    if fmt in ("sharegpt", "openai"):
        field = "conversations" if fmt == "sharegpt" else "messages"
        if field not in obj:
            raise BadRecord("missing_field", f"missing field {field!r} (this file is {fmt}; fields: "
                            f"{', '.join(list(obj)[:8])})")
        return _conversation(_messages(obj[field], fmt), _optional_text(obj, "system"))
    if fmt == "alpaca":
        for name in ("instruction", "output"):
            if obj.get(name) is None:
                raise BadRecord("missing_field", f"missing field {name!r} (this file is alpaca; fields: "
                                f"{', '.join(list(obj)[:8])})")
        instruction, output = _text(obj["instruction"], "'instruction'"), _text(obj["output"], "'output'")
        extra = _optional_text(obj, "input") or ""
        query = "\n".join(p for p in (instruction, extra) if p.strip())  # "instruction\ninput"
        history = obj.get("history") or []
        if not isinstance(history, list) or not all(
                isinstance(h, (list, tuple)) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in history):
            raise BadRecord("bad_history", "'history' must be a list of [question, answer] pairs of strings")
        msgs = []
        for i, (q, a) in enumerate(history, 1):
            msgs += [(USER, q, f"the question of history[{i}]"), (ASSISTANT, a, f"the answer of history[{i}]")]
        msgs += [(USER, query, "'instruction' (with 'input')"), (ASSISTANT, output, "'output'")]
        return _conversation(msgs, _optional_text(obj, "system"))
    raise ValueError(f"unknown data format {fmt!r}")


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
def _chat_template_of(tokenizer) -> Optional[str]:
    t = getattr(tokenizer, "chat_template", None)
    if isinstance(t, dict):  # several named templates: the default one
        t = t.get("default")
    return t or None


class ConversationEncoder:
    """SFT records for the token store and the streaming path (the `TextEncoder` interface):
    `read` yields each valid conversation rendered by the chat template, `encode_batch` returns
    `(ids, mask)` per conversation (mask 1 = trained token) or None for one dropped (and counted).

    Picklable: it holds strings (tokenizer JSON, template); the tokenizer is rebuilt lazily in each
    process. `counters()` returns the counts since its previous call (so per-unit counts sum to the
    corpus total however units are spread over processes).
    """

    has_mask = True
    text_field = None

    def __init__(self, spec: TokenizerSpec, template: Optional[ChatTemplate] = None,
                 chat_template: Optional[str] = None, special_tokens: Optional[dict] = None,
                 data_format: str = "auto", system_prompt: Optional[str] = None, max_length: int = 2048):
        if (template is None) == (chat_template is None):
            raise ValueError("give exactly one of a registry template and a tokenizer chat_template")
        if data_format not in ("auto",) + FORMATS:
            raise ValueError(f"--data_format must be auto, {', '.join(FORMATS)}; got {data_format!r}")
        if max_length < 2:
            raise ValueError(f"the maximum sequence length must be at least 2, got {max_length}")
        self.spec = spec
        self.template = template
        self.jinja = JinjaRenderer(chat_template, special_tokens or {}) if chat_template is not None else None
        self.data_format = data_format
        self.system_prompt = system_prompt
        self.max_length = max_length
        self._tok = None
        self._formats: dict = {}
        self._counts = dict.fromkeys(COUNTERS, 0)

    @classmethod
    def from_tokenizer(cls, tokenizer, spec: TokenizerSpec, template_name: Optional[str] = "auto",
                       data_format: str = "auto", system_prompt: Optional[str] = None,
                       max_length: int = 2048) -> "ConversationEncoder":
        """The encoder for a HF tokenizer: its own chat_template when it has one and template_name is
        auto (or 'tokenizer'), else the registry template (vicuna when auto and the tokenizer has none)."""
        own = _chat_template_of(tokenizer)
        name = (template_name or "auto").strip()
        if name == "tokenizer" and own is None:
            raise ValueError("--template_name tokenizer: this tokenizer has no chat_template; choose a template "
                             "with --template_name (vicuna, alpaca, chatml, llama3, plain)")
        if name in ("auto", "tokenizer") and own is not None:
            special = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
            return cls(spec, chat_template=own, special_tokens=special, data_format=data_format,
                       system_prompt=system_prompt, max_length=max_length)
        if name == "auto":
            name = "vicuna"
            logger.info("The tokenizer has no chat_template: using the vicuna template (choose one with "
                        "--template_name)")
        template = get_template(name).bind(tokenizer.eos_token, tokenizer.bos_token)
        return cls(spec, template=template, data_format=data_format, system_prompt=system_prompt,
                   max_length=max_length)

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
        if self._tok is None:  # the process's shared tokenizer for this spec (see TokenizerSpec.build)
            self._tok = self.spec.build()._tok
        return self._tok

    @property
    def dtype(self):
        return self.spec.dtype

    @property
    def fingerprint(self) -> str:
        payload = {"kind": "sft", "version": 1, "tokenizer": self.spec.fingerprint,
                   "template": asdict(self.template) if self.template is not None else None,
                   "chat_template": self.jinja.chat_template if self.jinja is not None else None,
                   "special_tokens": self.jinja.special_tokens if self.jinja is not None else None,
                   "data_format": self.data_format, "system_prompt": self.system_prompt,
                   "max_length": self.max_length, "add_bos": self.spec.add_bos}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def describe(self) -> dict:
        return {"encoder": "conversation", "template": self.template_name}

    def for_source(self, text_field: Optional[str]) -> "ConversationEncoder":
        if text_field:
            raise DataError(f"a mixture source's text_field ({text_field!r}) applies to pretraining text; SFT "
                            "conversations are read from their own fields (conversations, messages, instruction...)")
        return self

    def counters(self) -> dict:
        out, self._counts = self._counts, dict.fromkeys(COUNTERS, 0)
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
                system, turns = parse_record(obj, fmt)
                if max_chars is not None:
                    chars = len(system or "") + sum(len(q) + len(a) for q, a in turns)
                    if chars > max_chars:
                        raise BadRecord("too_long", f"conversation of {chars:,} characters is over "
                                        f"--max_document_chars {max_chars:,}")
                rendered = self.render(system, turns)
            except BadRecord as e:
                bad(e.reason, e.message, key)
                continue
            except TemplateError as e:
                bad("template_error", str(e), key)
                continue
            yield key, rendered

    def render(self, system: Optional[str], turns: list) -> Rendered:
        system = system if system is not None else self.default_system()
        if self.template is not None:
            return self.template.render(system, turns)
        return self.jinja.render(system, turns)

    def size(self, record: Rendered) -> int:
        return len(record.head) + sum(len(p) + len(r) for p, r in record.turns) + len(record.tail)

    # -- encoding -----------------------------------------------------------------------------------
    def encode_batch(self, records: list) -> list:
        pieces = []
        for r in records:
            pieces.append(r.head)
            for p, a in r.turns:
                pieces += [p, a]
            pieces.append(r.tail)
        tok = self.tokenizer
        encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
        ids = iter([e.ids for e in encode(pieces, add_special_tokens=False)])
        bos = [self.spec.bos_id] if self.template is not None and self.spec.add_bos else []
        out = []
        for r in records:
            head = bos + next(ids)
            turns = [(next(ids), next(ids)) for _ in r.turns]
            tail = next(ids)
            out.append(self._fit(head, turns, tail))
        return out

    def _fit(self, head: list, turns: list, tail: list):
        """ids and mask of one conversation, cut to max_length at turn boundaries (see module doc)."""
        limit = self.max_length
        total = len(head) + sum(len(p) + len(a) for p, a in turns) + len(tail)
        keep, cut = turns, None
        if total > limit:
            n, k = len(head), 0
            for p, a in turns:
                if n + len(p) + len(a) > limit:
                    break
                n += len(p) + len(a)
                k += 1
            keep, tail = turns[:k], []
            if k == 0:
                cut = limit   # not even the first turn fits: it is cut at max_length
                keep = turns[:1]
        ids = list(head)
        mask = [0] * len(head)
        for p, a in keep:
            ids += p
            ids += a
            mask += [0] * len(p) + [1] * len(a)
        ids += tail
        mask += [0] * len(tail)
        if cut is not None:
            ids, mask = ids[:cut], mask[:cut]
        if not any(mask):
            self._counts["dropped_no_target"] += 1
            return None
        if total > limit:
            self._counts["truncated"] += 1
            if cut is not None and len(head) + len(keep[0][0]) < cut:
                self._counts["truncated_reply_cut"] += 1
        return np.asarray(ids, dtype=self.spec.dtype), np.asarray(mask, dtype=np.uint8)
