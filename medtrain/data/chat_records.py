"""SFT input records: the formats, their validation, and the conversation they hold (HF chat messages).

Formats (`--data_format auto` detects each file's format from its first record):

    sharegpt  {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", "value": "..."}],
               "system": "..." (optional), "tools": [...] or "<JSON string>" (optional)}
              roles: system, human/user, gpt/assistant/chatgpt/model, function_call (the assistant calls a
              tool: value {"name": ..., "arguments": {...}}), observation/tool/function (a tool's result)
    openai    {"messages": [{"role": "system", "content": "..."}, {"role": "user", ...},
               {"role": "assistant", "content": "...", "tool_calls": [{"type": "function", "id": "..." (optional),
               "function": {"name": ..., "arguments": ...}}], "reasoning_content": "..." (optional)},
               {"role": "tool", "content": "...", "tool_call_id": "..." (optional)}], "tools": [...] (optional)}
              roles: system/developer, user, assistant, tool
    alpaca    {"instruction": "...", "input": "...", "output": "...", "system": "...",
               "history": [["earlier question", "earlier answer"], ...]}   (input/system/history optional)

A conversation is an optional system prompt, then a user message, then assistant replies answering
users or tool results: user and assistant alternate (user first), an assistant reply with tool calls
is followed by one tool result per call or more, the last message is the assistant's. A conversation
that ends with a user message after complete turns (as MedicalGPT's data has some) trains those turns:
the trailing question is dropped and counted (`Conversation.dropped_question`, the encoder's
`dropped_trailing_question`). The system prompt is a system message at the start, else the record's
`system` field, else its `system_prompt` field (MedicalGPT's name):

    {"system_prompt": "You are a doctor.", "conversations": [{"from": "human", "value": "Fever?"},
     {"from": "gpt", "value": "Rest."}, {"from": "human", "value": "And then?"}]}
    -> Conversation(system="You are a doctor.", messages=[user "Fever?", assistant "Rest."],
                    dropped_question=True) Reasoning is a
reply's `reasoning_content` (or `reasoning`), or `<think>...</think>` at the start of its text:

    {"from": "gpt", "value": "<think>\\nlow salt helps\\n</think>\\n\\nEat less salt."}
    -> {"role": "assistant", "content": "Eat less salt.", "reasoning_content": "low salt helps"}

(`raw` keeps the text as written, for templates that do not read `reasoning_content`.) Anything else is
bad input: `BadRecord(reason, message)`, which the encoder reports with the file and line, or counts
with `--skip_bad_lines` (`missing_role`, `unknown_role`, `missing_content`, `empty_reply`,
`empty_message`, `broken_alternation`, `no_reply`, `misplaced_system`, `missing_field`,
`bad_tool_call`, `bad_tools`, `bad_reasoning`, ...).
"""

from __future__ import annotations

import json
from typing import NamedTuple, Optional

FORMATS = ("sharegpt", "openai", "alpaca")
SYSTEM, USER, ASSISTANT, TOOL, CALL = "system", "user", "assistant", "tool", "function_call"
SHAREGPT_ROLES = {"system": SYSTEM, "human": USER, "user": USER, "gpt": ASSISTANT, "assistant": ASSISTANT,
                  "chatgpt": ASSISTANT, "model": ASSISTANT, "function_call": CALL, "observation": TOOL,
                  "tool": TOOL, "function": TOOL}
OPENAI_ROLES = {"system": SYSTEM, "developer": SYSTEM, "user": USER, "assistant": ASSISTANT, "tool": TOOL}


class BadRecord(Exception):
    """A malformed conversation: `reason` is the skip-counter key, `message` says what is wrong."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class Conversation(NamedTuple):
    system: Optional[str]
    messages: list          # HF chat messages without the system one: user / assistant / tool dicts
    tools: Optional[list] = None
    dropped_question: bool = False   # it ended with a user message without a reply, which was dropped

    @property
    def chars(self) -> int:
        return len(self.system or "") + sum(len(m.get("raw", m.get("content")) or "") for m in self.messages)


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


def _json_value(value, what: str, reason: str):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise BadRecord(reason, f"{what} is not valid JSON ({e.msg} at character {e.pos})") from None
    return value


def _tool_call(name, arguments, what: str, call_id=None) -> dict:
    if not isinstance(name, str) or not name:
        raise BadRecord("bad_tool_call", f"{what} has no function name")
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        arguments = _json_value(arguments, f"the arguments of {what}", "bad_tool_call")
    call = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:   # kept: templates render it (Mistral's 9-character ids, required by its template)
        call["id"] = str(call_id)
    return call


def _tools(obj: dict) -> Optional[list]:
    tools = obj.get("tools")
    if tools in (None, "", []):
        return None
    tools = _json_value(tools, "'tools'", "bad_tools")
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise BadRecord("bad_tools", "'tools' must be a list of tool definitions (objects)")
    return tools


def split_reasoning(content: str, label: str) -> tuple[Optional[str], str]:
    """(reasoning or None, answer) of a reply that may start with <think>...</think>."""
    if "</think>" not in content:
        return None, content
    if content.count("</think>") > 1:
        raise BadRecord("bad_reasoning", f"{label} has more than one </think>")
    reasoning, _, answer = content.partition("</think>")
    head, tag, reasoning = reasoning.partition("<think>")
    if not tag:
        reasoning = head
    elif head.strip():
        raise BadRecord("bad_reasoning", f"{label} has text before <think>")
    return reasoning.strip("\n"), answer.lstrip("\n")


def _raw_messages(items, fmt: str) -> list[tuple]:
    """[(role, message dict, label)] of a ShareGPT or OpenAI message list, roles normalised; `label`
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
        calls = m.get("tool_calls") if fmt == "openai" else None
        if (content_key not in m or m[content_key] is None) and not (role == ASSISTANT and calls):
            raise BadRecord("missing_content", f"{label} has no {content_key!r}")
        content = _text(m.get(content_key) or "", f"the {content_key!r} of {label}")
        msg = {"role": role, "content": content}
        if role == CALL:
            call = _json_value(content, f"the function call of {label}", "bad_tool_call")
            if not isinstance(call, dict):
                raise BadRecord("bad_tool_call", f"{label} must be {{\"name\": ..., \"arguments\": ...}}")
            msg = {"role": ASSISTANT, "content": "", "tool_calls": [
                _tool_call(call.get("name"), call.get("arguments"), label)]}
        elif calls:
            if not isinstance(calls, list):
                raise BadRecord("bad_tool_call", f"the 'tool_calls' of {label} must be a list")
            msg["tool_calls"] = [_tool_call((c.get("function") or {}).get("name"),
                                            (c.get("function") or {}).get("arguments"), f"tool call {k} of {label}",
                                            c.get("id"))
                                 if isinstance(c, dict) else _tool_call(None, None, label)
                                 for k, c in enumerate(calls, 1)]
        if role == ASSISTANT:
            explicit = m.get("reasoning_content", m.get("reasoning"))
            if explicit is not None:
                msg["reasoning_content"] = _text(explicit, f"the reasoning of {label}")
            else:
                reasoning, answer = split_reasoning(content, label)
                if reasoning is not None:
                    msg["raw"], msg["content"], msg["reasoning_content"] = content, answer, reasoning
        if role == TOOL and m.get("name"):
            msg["name"] = str(m["name"])
        if role == TOOL and m.get("tool_call_id") is not None:
            msg["tool_call_id"] = str(m["tool_call_id"])
        out.append((role if role != CALL else ASSISTANT, msg, label, role == CALL))
    return out


def _conversation(items: list, system: Optional[str], tools: Optional[list] = None) -> Conversation:
    """A validated Conversation from [(role, message, label, is_call)] (see the module doc)."""
    if items and items[0][0] == SYSTEM:
        system = items[0][1]["content"]
        items = items[1:]
    if not items:
        raise BadRecord("empty_conversation", "the conversation has no user and assistant messages")
    messages: list = []
    for role, msg, label, is_call in items:
        prev = messages[-1] if messages else None
        if role == SYSTEM:
            raise BadRecord("misplaced_system", f"{label}: a system message may only come first")
        if is_call and prev is not None and prev["role"] == ASSISTANT and not prev.get("tool_calls"):
            prev["tool_calls"] = msg["tool_calls"]          # a reply, then its call: one assistant message
            continue
        if is_call and prev is not None and prev["role"] == ASSISTANT:
            prev["tool_calls"] = prev["tool_calls"] + msg["tool_calls"]   # parallel calls
            continue
        if role == TOOL:
            if prev is None or not (prev["role"] == TOOL or prev.get("tool_calls")):
                raise BadRecord("broken_alternation", f"{label} is a tool result that follows no tool call")
        elif role == ASSISTANT:
            if prev is None or prev["role"] == ASSISTANT:
                expected = USER
                raise BadRecord("broken_alternation", f"{label} is from the {role} where the {expected} was "
                                "expected (user and assistant must alternate, user first)")
        else:  # user
            if prev is not None and prev["role"] != ASSISTANT:
                raise BadRecord("broken_alternation", f"{label} is from the {role} where the "
                                f"{'assistant' if prev['role'] == USER else 'assistant (after the tool result)'} "
                                "was expected (user and assistant must alternate, user first)")
            if prev is not None and prev.get("tool_calls"):
                raise BadRecord("broken_alternation", f"{label} follows a tool call that has no tool result")
        if not msg["content"].strip() and not msg.get("tool_calls"):
            raise BadRecord("empty_reply" if role == ASSISTANT else "empty_message",
                            f"{label} is empty" + (" (an empty assistant reply)" if role == ASSISTANT else ""))
        messages.append(msg)
    dropped = False
    if messages[-1]["role"] == USER and len(messages) > 1:
        messages, dropped = messages[:-1], True   # its complete turns are trained; the question is counted
    if messages[-1]["role"] != ASSISTANT:
        raise BadRecord("no_reply", "the conversation ends with a user message that has no assistant reply"
                        if messages[-1]["role"] == USER else "the conversation ends with a tool result that has no "
                        "assistant reply")
    return Conversation(system or None, messages, tools, dropped)


def _optional_text(obj: dict, name: str) -> Optional[str]:
    value = obj.get(name)
    return None if value is None else _text(value, repr(name))


def _record_system(obj: dict) -> Optional[str]:
    """The record-level system prompt: its "system" field, else "system_prompt" (MedicalGPT's name). A
    system message inside the conversation takes precedence over both."""
    system = _optional_text(obj, "system")
    return system if system is not None and system.strip() else _optional_text(obj, "system_prompt")


def parse_record(obj: dict, fmt: str) -> Conversation:
    """The Conversation of a record in format `fmt`, or BadRecord."""
    if fmt in ("sharegpt", "openai"):
        field = "conversations" if fmt == "sharegpt" else "messages"
        if field not in obj:
            raise BadRecord("missing_field", f"missing field {field!r} (this file is {fmt}; fields: "
                            f"{', '.join(list(obj)[:8])})")
        return _conversation(_raw_messages(obj[field], fmt), _record_system(obj), _tools(obj))
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
        items = []
        pairs = [(q, a, f"the question of history[{i}]", f"the answer of history[{i}]")
                 for i, (q, a) in enumerate(history, 1)] + [(query, output, "'instruction' (with 'input')", "'output'")]
        for q, a, ql, al in pairs:
            items.append((USER, {"role": USER, "content": q}, ql, False))
            reply = {"role": ASSISTANT, "content": a}
            reasoning, answer = split_reasoning(a, al)
            if reasoning is not None:
                reply.update(raw=a, content=answer, reasoning_content=reasoning)
            items.append((ASSISTANT, reply, al, False))
        return _conversation(items, _record_system(obj))
    raise ValueError(f"unknown data format {fmt!r}")


def from_turns(turns: list) -> list:
    """HF chat messages of [(user, assistant), ...] pairs (a convenience for code and tests)."""
    out = []
    for q, a in turns:
        out += [{"role": USER, "content": q}, {"role": ASSISTANT, "content": a}]
    return out
