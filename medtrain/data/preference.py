"""Preference pairs: records in the formats users have, rendered by the SFT chat-template machinery and
stored as ONE document per pair, so a pair can never be separated and the store is reused across runs.

Formats (detected per record from its fields):

    medicalgpt   {"conversations": [{"from": "human", "value": "..."}, ...], "chosen": "...", "rejected": "...",
                  "system": "..." (optional), "tools": [...] (optional)}
                 the prompt turns end with the user's (or a tool's) message; `chosen` / `rejected` may also be
                 a message object ({"from": "gpt", "value": ...} or {"role": "assistant", "content": ...})
    medicalgpt (older)
                 {"system": "...", "history": [["q", "a"], ...], "question": "...", "response_chosen": "...",
                  "response_rejected": "..."}   (system and history optional)
    trl          TRL's preference formats, standard (strings) or conversational (message lists):
                 explicit prompt  {"prompt": [{"role": "user", "content": "..."}, ...],
                                   "chosen": [{"role": "assistant", ...}], "rejected": [{"role": "assistant", ...}]}
                                  (a prompt given as a string is one user message; a side may be a string)
                 implicit prompt  {"chosen": [whole conversation], "rejected": [whole conversation]}
                                  or {"chosen": "full text", "rejected": "full text"}   (see below)
                 `tools` is read as in SFT. TRL's unpaired format (`prompt` + `completion` + `label`, KTO's) and
                 prompt-completion records are refused: these losses need two responses to one prompt.

Implicit prompts (TRL's `extract_prompt`), turned into the explicit record above, so an implicit record
gives exactly the tokens of its explicit equivalent:

    message lists  the prompt is the longest common prefix of whole messages; what follows it in each list
                   must be one assistant message (the reply): [sys, user, assistant "It is blue."] and
                   [sys, user, assistant "It is green."] give prompt [sys, user]. Refused (the bad-record
                   error, or a count with --skip_bad_lines): lists that share no message (`implicit_no_prompt`),
                   one list a prefix of the other (`implicit_no_response`), anything but one assistant
                   message after the shared part, e.g. when an earlier turn differs (`implicit_not_a_reply`).
                   A `prompt` field next to such lists (TRL's datasets carry one) must be the shared messages,
                   or the text of the last of them (`prompt_mismatch`); the messages are what is trained.
    plain text     split at the longest common prefix of CHARACTERS, as TRL does (a space just before the
                   split goes to the responses): "Is fever dangerous? It can be." / "Is fever dangerous? No."
                   give prompt "Is fever dangerous?", chosen " It can be.", rejected " No.". The prompt is
                   then rendered as one user message and each response as the reply, with the chat
                   template like every other format (TRL itself concatenates standard text without one).
                   Beware: answers that begin alike move their shared words into the prompt
                   ("...? It can be serious." / "...? It can be ignored." give prompt "...? It can be" and
                   responses " serious." / " ignored."), so the user turn ends mid-answer: give such data
                   with an explicit `prompt`. Texts with no common prefix, or one a prefix of the other, are
                   refused as for message lists.

The prompt (system, earlier turns, last question) is validated as an SFT conversation (`chat_records`:
alternation, roles, tools, reasoning), and the pair itself: both sides present (`missing_side`), not
empty (`empty_response`), not the same text (`identical_sides`). A bad pair is a `DataError` naming
the file and line, or, with `--skip_bad_lines`, a count by reason.

Encoding: prompt + chosen and prompt + rejected are each rendered as an SFT conversation whose last
reply is the response (`ConversationEncoder.render`: the registry template or the tokenizer's own,
the end of turn included and trained) and tokenized by `ConversationEncoder.encode_batch` (a token
never crosses the start of the reply), so the prompt ids are exactly the inference prompt's and the
same on both sides. The stored document is

    ids  = prompt ids + chosen response ids + rejected response ids
    mask = 0 ...        1 ...                 2 ...

e.g. (vicuna, demo tokenizer) prompt "A chat between ... USER: Is fever dangerous? ASSISTANT:" (31
ids), chosen "It can be; see a doctor if ...</s>" (12 ids), rejected "No.</s>" (3 ids): 46 ids, mask
31 x 0, 12 x 1, 3 x 2. `preference_collator` splits such a row back into the two sequences.

Lengths (MedicalGPT's flags): a prompt over `max_source_length` tokens keeps its last tokens (the
question the responses answer; a leading BOS is kept) and is counted as `truncated_prompt`; a
response over `max_target_length` keeps its first tokens (`truncated_chosen`, `truncated_rejected`).
A pair whose two responses are the same after truncation is dropped and counted
(`dropped_identical_after_truncation`). A stored pair is at most max_source + 2 x max_target tokens:
the block size of preference runs, one pair per row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import NamedTuple, Optional

import numpy as np

from medtrain.data.chat_records import BadRecord, Conversation, parse_record
from medtrain.data.encoding import own_fields_only
from medtrain.data.chat_templates import Rendered, TemplateError
from medtrain.data.conversations import COUNTERS as CHAT_COUNTERS, ConversationEncoder, _Reporter
from medtrain.data.sources import RecordReader, SkipCounter, WorkUnit
from medtrain.errors import DataError

logger = logging.getLogger(__name__)

PROMPT, CHOSEN, REJECTED = 0, 1, 2          # the stored mask values
COUNTERS = ("truncated_prompt", "truncated_chosen", "truncated_rejected", "dropped_identical_after_truncation")
FORMATS = ("medicalgpt", "medicalgpt_qa", "trl", "trl_implicit")
_UNBOUNDED = 1 << 30                        # the chat encoder's own length limit: lengths are applied here


class PreferencePair(NamedTuple):
    """A validated pair: the same prompt (system, messages, tools) answered by two replies."""

    chosen: Conversation
    rejected: Conversation

    @property
    def chars(self) -> int:
        return self.chosen.chars + len(self.rejected.messages[-1].get("content") or "")


class RenderedPair(NamedTuple):
    chosen: Rendered
    rejected: Rendered


def detect_format(obj: dict) -> Optional[str]:
    if "conversations" in obj:
        return "medicalgpt"
    if "question" in obj or "response_chosen" in obj or "response_rejected" in obj:
        return "medicalgpt_qa"
    if "chosen" not in obj and "rejected" not in obj and "completion" in obj:
        return "trl_unpaired" if "label" in obj else "trl_prompt_completion"
    if "prompt" in obj:
        return "trl"
    if "chosen" in obj or "rejected" in obj:
        return "trl_implicit"
    return None


_ASSISTANT_ROLES = ("assistant", "gpt", "model", "chatgpt")


def _role(message) -> str:
    return str(message.get("role", message.get("from", ""))).lower() if isinstance(message, dict) else ""


def _is_messages(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) for m in value)


def _common_prefix_length(a, b) -> int:
    """How many leading items (characters, or whole messages) `a` and `b` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _implicit_messages(chosen: list, rejected: list) -> tuple[list, dict, dict]:
    """(prompt messages, chosen reply, rejected reply) of two whole conversations (see the module doc)."""
    if chosen == rejected:
        raise BadRecord("identical_sides", "'chosen' and 'rejected' are the same conversation: the pair prefers "
                        "nothing (remove it, or fix the rejected response)")
    n = _common_prefix_length(chosen, rejected)
    if n == 0:
        raise BadRecord("implicit_no_prompt", "'chosen' and 'rejected' (whole conversations, no 'prompt') share no "
                        "first message, so there is no common prompt: both must be the same conversation up to the "
                        "last reply (or give 'prompt' + one-message 'chosen' / 'rejected')")
    if n in (len(chosen), len(rejected)):
        short, long_ = ("chosen", "rejected") if n == len(chosen) else ("rejected", "chosen")
        raise BadRecord("implicit_no_response", f"{short!r} is the start of {long_!r} ({n} shared messages): it has no "
                        "reply of its own after the common prompt; each side must end with its own assistant reply")
    for name, rest in (("chosen", chosen[n:]), ("rejected", rejected[n:])):
        roles = [_role(m) or "?" for m in rest]
        if any(r not in _ASSISTANT_ROLES for r in roles):
            raise BadRecord("implicit_not_a_reply", f"after the {n} message(s) that 'chosen' and 'rejected' share, "
                            f"{name!r} goes on with {', '.join(roles)}, not with the assistant's reply alone: the two "
                            "conversations must be the same up to the last reply (here an earlier turn differs)")
        if len(rest) > 1:
            raise BadRecord("implicit_not_a_reply", f"after the {n} message(s) that 'chosen' and 'rejected' share, "
                            f"{name!r} has {len(rest)} messages ({', '.join(roles)}): each side must end with ONE "
                            "assistant reply (split longer exchanges into an explicit 'prompt' and one-message "
                            "'chosen' / 'rejected')")
    return chosen[:n], chosen[n], rejected[n]


def _implicit_text(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) of two full texts: split at their longest common prefix of characters,
    a space just before the split moved to the responses (TRL's `extract_prompt`; see the module doc)."""
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not text.strip():
            raise BadRecord("empty_response", f"{name!r} is empty")
    n = _common_prefix_length(chosen, rejected)
    if n in (len(chosen), len(rejected)):
        if chosen.strip() == rejected.strip():
            raise BadRecord("identical_sides", "'chosen' and 'rejected' are the same text: the pair prefers nothing "
                            "(remove it, or fix the rejected response)")
        short, long_ = ("chosen", "rejected") if n == len(chosen) else ("rejected", "chosen")
        raise BadRecord("implicit_no_response", f"{short!r} is the start of {long_!r}: with no 'prompt', the prompt is "
                        "their common beginning, and this side has no response after it (give 'prompt' + 'chosen' + "
                        "'rejected')")
    if n > 0 and chosen[n - 1] == " ":
        n -= 1
    if not chosen[:n].strip():
        raise BadRecord("implicit_no_prompt", "'chosen' and 'rejected' (full texts, no 'prompt') have no common "
                        "beginning, so there is no prompt: give 'prompt' + 'chosen' + 'rejected', or full texts that "
                        "start with the same prompt")
    return chosen[:n], chosen[n:], rejected[n:]


def _explicit(obj: dict) -> dict:
    """A TRL record with its prompt made explicit: {'prompt', 'chosen', 'rejected'} (+ 'tools'), each side
    a string or one message; the record itself when it is explicit already (see the module doc)."""
    chosen, rejected = obj.get("chosen"), obj.get("rejected")
    if chosen is None or rejected is None:
        return obj  # reported as a missing side by _sides
    whole = [_is_messages(v) and _role(v[0]) not in _ASSISTANT_ROLES for v in (chosen, rejected)]
    given = obj.get("prompt")  # a null prompt (a column of a table) is no prompt
    if given is not None and not any(whole):
        return obj
    if _is_messages(chosen) and _is_messages(rejected):
        prompt, c, r = _implicit_messages(chosen, rejected)
        if given is not None and given != prompt and not (isinstance(given, str) and given == prompt[-1].get(
                "content", prompt[-1].get("value"))):
            raise BadRecord("prompt_mismatch", "'prompt' is neither the messages that 'chosen' and 'rejected' share "
                            f"({len(prompt)}) nor the text of the last of them: drop 'prompt' (the shared messages "
                            "are the prompt) or make 'chosen' / 'rejected' one assistant message each")
        c, r = [c], [r]
    elif isinstance(chosen, str) and isinstance(rejected, str) and given is None:
        prompt, c, r = _implicit_text(chosen, rejected)
    else:
        kinds = ", ".join(f"{n!r} is {'a conversation' if w else type(v).__name__}"
                          for n, v, w in (("chosen", chosen, whole[0]), ("rejected", rejected, whole[1])))
        raise BadRecord("bad_response", f"{kinds}: give both as whole conversations (message lists that start "
                        "with the prompt), both as full texts without 'prompt', or 'prompt' + one response each")
    return {**{k: obj[k] for k in ("tools",) if obj.get(k) is not None}, "prompt": prompt, "chosen": c, "rejected": r}


def _response_text(value, side: str) -> str:
    """The text of one side: a string, a message object, or a one-message list (TRL)."""
    if isinstance(value, list):
        if len(value) != 1:
            raise BadRecord("bad_response", f"{side!r} must be one assistant message, got a list of {len(value)}")
        value = value[0]
    if isinstance(value, dict):
        role = str(value.get("role", value.get("from", "assistant"))).lower()
        if role not in _ASSISTANT_ROLES:
            raise BadRecord("bad_response", f"{side!r} is a message from {role!r}, not from the assistant")
        value = value.get("content", value.get("value"))
        if value is None:
            raise BadRecord("missing_side", f"{side!r} has no text ('content' or 'value')")
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        value = "".join(str(p.get("text", "")) for p in value)
    if not isinstance(value, str):
        raise BadRecord("bad_response", f"{side!r} is {type(value).__name__}, not a string")
    return value


def _sides(obj: dict, names: tuple) -> tuple[str, str]:
    for name in names:  # both present before either is read
        if obj.get(name) is None:
            other = names[1] if name == names[0] else names[0]
            raise BadRecord("missing_side", f"missing {name!r}: each pair needs both {names[0]!r} and {names[1]!r} "
                            f"(found {other!r}: {'yes' if obj.get(other) is not None else 'no'})")
    texts = [_response_text(obj[name], name) for name in names]
    for name, text in zip(names, texts):
        if not text.strip():
            raise BadRecord("empty_response", f"{name!r} is empty")
    if texts[0].strip() == texts[1].strip():
        raise BadRecord("identical_sides", f"{names[0]!r} and {names[1]!r} are the same text: the pair prefers "
                        "nothing (remove it, or fix the rejected response)")
    return texts[0], texts[1]


def _check_prompt_end(messages: list, role_key: str, label: str) -> None:
    last = messages[-1] if messages else None
    if not isinstance(last, dict):
        raise BadRecord("empty_prompt", f"{label} holds no question")
    role = str(last.get(role_key, "")).lower()
    if role in ("gpt", "assistant", "model", "chatgpt", "function_call"):
        raise BadRecord("prompt_ends_with_reply", f"{label} ends with an assistant message: the prompt must end with "
                        "the question (or tool result) that 'chosen' and 'rejected' answer")


def parse_pair(obj: dict, fmt: Optional[str] = None) -> PreferencePair:
    """The PreferencePair of a record (format detected when `fmt` is None), or BadRecord."""
    fmt = fmt or detect_format(obj)
    if fmt == "medicalgpt":
        chosen, rejected = _sides(obj, ("chosen", "rejected"))
        conv = obj["conversations"]
        if not isinstance(conv, list):
            raise BadRecord("bad_conversation", f"'conversations' must be a list of messages, got {type(conv).__name__}")
        _check_prompt_end([m for m in conv if not (isinstance(m, dict) and m.get("from") == "system")], "from",
                          "'conversations'")
        base = {k: obj[k] for k in ("system", "tools") if obj.get(k) is not None}
        make = lambda text, side: parse_record(  # noqa: E731
            {**base, "conversations": conv + [{"from": "gpt", "value": text}]}, "sharegpt")
    elif fmt == "medicalgpt_qa":
        chosen, rejected = _sides(obj, ("response_chosen", "response_rejected"))
        if obj.get("question") is None:
            raise BadRecord("missing_field", "missing 'question' (the older MedicalGPT format: system, history, "
                            "question, response_chosen, response_rejected)")
        base = {"instruction": obj["question"], "system": obj.get("system") or None,
                "history": obj.get("history") or []}
        make = lambda text, side: parse_record({**base, "output": text}, "alpaca")  # noqa: E731
    elif fmt in ("trl", "trl_implicit"):
        obj = _explicit(obj)
        chosen, rejected = _sides(obj, ("chosen", "rejected"))
        prompt = obj["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not isinstance(prompt, list):
            raise BadRecord("bad_conversation", f"'prompt' must be a list of messages or a string, got "
                            f"{type(prompt).__name__}")
        _check_prompt_end([m for m in prompt if not (isinstance(m, dict) and m.get("role") == "system")], "role",
                          "'prompt'")
        sides = {}
        for name in ("chosen", "rejected"):  # keep reasoning or tool calls of a message response
            v = obj[name][0] if isinstance(obj[name], list) else obj[name]
            sides[name] = ({"role": "assistant", **{k: x for k, x in v.items() if k not in ("role", "from")}}
                           if isinstance(v, dict) else None)
        base = {k: obj[k] for k in ("tools",) if obj.get(k) is not None}

        def make(text, side):
            reply = dict(sides[side]) if sides[side] is not None else {"role": "assistant"}
            reply["content"] = text
            return parse_record({**base, "messages": prompt + [reply]}, "openai")
    elif fmt == "trl_unpaired":
        raise BadRecord("unpaired_format", "this is TRL's unpaired preference format ('prompt' + 'completion' + "
                        "'label', for KTO): DPO, ORPO and the reward model need PAIRS, two responses to one prompt "
                        "('prompt' + 'chosen' + 'rejected'); KTO is not supported")
    elif fmt == "trl_prompt_completion":
        raise BadRecord("unpaired_format", "this is TRL's prompt-completion format ('prompt' + 'completion'), data for "
                        "supervised fine-tuning: preference training needs 'chosen' and 'rejected' responses")
    else:
        raise BadRecord("unknown_format", "cannot tell the preference format: expected 'conversations' + 'chosen' + "
                        "'rejected' (MedicalGPT), 'question' + 'response_chosen' + 'response_rejected' (older "
                        "MedicalGPT), 'prompt' + 'chosen' + 'rejected' or 'chosen' + 'rejected' with an implicit "
                        f"prompt (TRL); fields: {', '.join(list(obj)[:8])}")
    return PreferencePair(make(chosen, "chosen"), make(rejected, "rejected"))


class PreferenceEncoder:
    """Preference pairs for the token store and the streaming path (the `encoding.Encoder` protocol):
    `read` yields each valid pair rendered twice, `encode_batch` one document per pair (see the module
    doc). Picklable; `counters()` returns the counts since its previous call."""

    has_mask = True
    text_field = None

    def __init__(self, chat: ConversationEncoder, max_source_length: int = 2048, max_target_length: int = 512):
        if max_source_length < 1 or max_target_length < 1:
            raise ValueError(f"--max_source_length and --max_target_length must be at least 1, got "
                             f"{max_source_length} and {max_target_length}")
        if chat.max_length < _UNBOUNDED:
            raise ValueError("give PreferenceEncoder a ConversationEncoder built with max_length=preference.UNBOUNDED")
        self.chat = chat
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self._counts = dict.fromkeys(COUNTERS, 0)

    @classmethod
    def from_tokenizer(cls, tokenizer, spec, template_name: Optional[str] = "auto", system_prompt: Optional[str] = None,
                       max_source_length: int = 2048, max_target_length: int = 512,
                       tool_format: Optional[str] = None) -> "PreferenceEncoder":
        chat = ConversationEncoder.from_tokenizer(tokenizer, spec, template_name, "auto", system_prompt, UNBOUNDED,
                                                  tool_format)
        return cls(chat, max_source_length, max_target_length)

    @property
    def max_length(self) -> int:
        """The longest stored pair: the block size of a preference run."""
        return self.max_source_length + 2 * self.max_target_length

    @property
    def template_name(self) -> str:
        return self.chat.template_name

    @property
    def spec(self):
        return self.chat.spec

    @property
    def dtype(self):
        return self.chat.dtype

    @property
    def fingerprint(self) -> str:
        payload = {"kind": "preference", "version": 1, "chat": self.chat.fingerprint,
                   "max_source_length": self.max_source_length, "max_target_length": self.max_target_length}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict:
        return {"encoder": "preference", "template": self.template_name, "max_source_length": self.max_source_length,
                "max_target_length": self.max_target_length}

    def with_backend(self, requested: Optional[str], units, max_units: Optional[int] = None) -> "PreferenceEncoder":
        """This encoder on the tokenizer backend `--tokenizer_backend` chooses: its chat encoder's (the
        rendered pairs are tokenized by it; see `ConversationEncoder.with_backend`)."""
        from copy import copy

        other = copy(self)
        units = list(units)
        samples = self.chat.sample_texts(units, max_units=max_units, reader=self) \
            if (requested or "hf").strip().lower() != "hf" else []
        other.chat = self.chat.with_backend(requested, units, max_units, samples=samples)
        other._counts = dict.fromkeys(COUNTERS, 0)
        return other

    def for_source(self, text_field: Optional[str]) -> "PreferenceEncoder":
        own_fields_only(text_field, "preference pairs", "conversations/chosen/rejected, prompt, question...")
        return self

    def counters(self) -> dict:
        out, self._counts = self._counts, dict.fromkeys(COUNTERS, 0)
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_counts"] = dict.fromkeys(COUNTERS, 0)
        return state

    # -- reading ----------------------------------------------------------------------------------
    def source(self, unit: WorkUnit, key: int) -> str:
        return self.chat.source(unit, key)

    def render(self, pair: PreferencePair) -> RenderedPair:
        """Both sides rendered; TemplateError unless they render the same prompt."""
        out = []
        for conv in pair:
            r = self.chat.render(conv.system, conv.messages, conv.tools)
            start, end = r.spans[-1]
            out.append(Rendered(r.text[:end], ((start, end),), r.append_eos))
        c, r = out
        if c.text[:c.spans[0][0]] != r.text[:r.spans[0][0]]:
            raise TemplateError(f"{self.template_name} renders the prompt differently before the chosen and the "
                                "rejected reply, so the pair has no common prompt")
        return RenderedPair(c, r)

    def read(self, unit: WorkUnit, skip_bad: bool = False, max_chars: Optional[int] = None,
             skipped: Optional[SkipCounter] = None):
        """(key, RenderedPair) for each valid pair of the unit; bad ones reported (see the module doc)."""
        f = unit.file
        if f.fmt == "txt":
            raise DataError(f"{f.path}: preference pairs are read from .jsonl, .json or .parquet files, not plain text")
        skipped = skipped if skipped is not None else SkipCounter()
        reader = RecordReader(unit, None, skip_bad, None, skipped)
        bad = _Reporter(reader, skip_bad, skipped)
        for key, obj in reader:
            try:
                pair = parse_pair(obj)
                if max_chars is not None and pair.chars > max_chars:
                    raise BadRecord("too_long", f"pair of {pair.chars:,} characters is over --max_document_chars "
                                    f"{max_chars:,}")
                rendered = self.render(pair)
            except BadRecord as e:
                bad(e.reason, e.message, key)
                continue
            except TemplateError as e:
                bad("template_error", str(e), key)
                continue
            yield key, rendered

    def size(self, record: RenderedPair) -> int:
        return len(record.chosen.text) + len(record.rejected.text)

    # -- encoding ---------------------------------------------------------------------------------
    def encode_batch(self, records: list) -> list:
        flat = self.chat.encode_batch([r for pair in records for r in pair])
        # nothing is cut or dropped there (unbounded, one reply each): ours are the counts, and the tokenizer's
        for k, v in self.chat.counters().items():
            if k not in CHAT_COUNTERS and v:
                self._counts[k] = self._counts.get(k, 0) + v
        return [self._pair(flat[2 * i], flat[2 * i + 1]) for i in range(len(records))]

    def _pair(self, chosen, rejected):
        (c_ids, c_mask), (r_ids, r_mask) = chosen, rejected
        p = int(np.argmax(c_mask != 0))
        if p != int(np.argmax(r_mask != 0)) or not np.array_equal(c_ids[:p], r_ids[:p]):
            raise DataError("internal: the chosen and rejected sides of a pair tokenize to different prompts")
        prompt, c_resp, r_resp = c_ids[:p], c_ids[p:], r_ids[p:]
        if len(prompt) > self.max_source_length:
            self._counts["truncated_prompt"] += 1
            bos = self.chat.spec.bos_id
            keep = 1 if (self.chat.template is not None and self.chat.spec.add_bos and prompt[0] == bos) else 0
            prompt = np.concatenate([prompt[:keep], prompt[len(prompt) - (self.max_source_length - keep):]])
        if len(c_resp) > self.max_target_length:
            self._counts["truncated_chosen"] += 1
            c_resp = c_resp[: self.max_target_length]
        if len(r_resp) > self.max_target_length:
            self._counts["truncated_rejected"] += 1
            r_resp = r_resp[: self.max_target_length]
        if np.array_equal(c_resp, r_resp):
            self._counts["dropped_identical_after_truncation"] += 1
            return None
        ids = np.concatenate([prompt, c_resp, r_resp]).astype(self.dtype)
        mask = np.concatenate([np.full(len(prompt), PROMPT), np.full(len(c_resp), CHOSEN),
                               np.full(len(r_resp), REJECTED)]).astype(np.uint8)
        return ids, mask


UNBOUNDED = _UNBOUNDED


def split_pair(ids: np.ndarray, mask: np.ndarray, where: str = "a row") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt, chosen response, rejected response) ids of one stored pair; DataError when `mask` is not
    prompt (0) then chosen (1) then rejected (2), each response non-empty."""
    mask = np.asarray(mask)
    p = int(np.argmax(mask != PROMPT)) if (mask != PROMPT).any() else len(mask)
    c = p + int((mask == CHOSEN).sum())
    ok = (len(mask) > c > p and (mask[:p] == PROMPT).all() and (mask[p:c] == CHOSEN).all()
          and (mask[c:] == REJECTED).all())
    if not ok:
        raise DataError(f"{where} is not one whole preference pair (prompt, chosen, rejected): preference training "
                        "needs --packing_strategy none and a block_size of at least max_source_length + 2 x "
                        "max_target_length (set by dpo_training.py / orpo_training.py / reward_modeling.py), and a "
                        "token store built by them")
    return ids[:p], ids[p:c], ids[c:]
