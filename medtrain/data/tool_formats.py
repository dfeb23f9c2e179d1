"""Tool-calling conversations written as plain text, for templates that do not render tools themselves
(`--tool_format`, MedicalGPT's flag; the registry templates, or any template when the flag is given).

A format writes three things: the tool definitions (appended to the system prompt, untrained), an
assistant's tool calls (its reply text: trained) and a tool's result (a user-side turn: untrained).
E.g. `qwen`, one call of `get_weather` with {"city": "Paris"}:

    call     <tool_call>\\n{"name": "get_weather", "arguments": {"city": "Paris"}}\\n</tool_call>
    result   <tool_response>\\n{"temp": 21}\\n</tool_response>

Formats: default (ReAct-style `Action:` / `Action Input:` / `Observation:`), qwen, llama3, mistral,
glm4; each writes the calls the way that family's models emit them.
"""

from __future__ import annotations

import json
from typing import Callable, NamedTuple


def _args(arguments) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _schema(tool: dict) -> dict:
    """A definition as {"name", "description", "parameters"} (OpenAI's {"type": "function",
    "function": {...}} unwrapped)."""
    return tool.get("function", tool) if isinstance(tool, dict) else tool


def _default_tools(tools: list) -> str:
    lines, names = [], []
    for t in map(_schema, tools):
        names.append(str(t.get("name", "")))
        lines.append(f"> Tool Name: {t.get('name', '')}\nTool Description: {t.get('description', '')}\n"
                     f"Tool Args: {_json(t.get('parameters', {}))}\n")
    return ("You have access to the following tools:\n" + "".join(lines) +
            f"Use the following format if using a tool:\nAction: tool name (one of [{', '.join(names)}])\n"
            "Action Input: the input to the tool, in JSON\n")


def _qwen_tools(tools: list) -> str:
    body = "".join("\n" + _json({"type": "function", "function": _schema(t)}) for t in tools)
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided "
            f"with function signatures within <tools></tools> XML tags:\n<tools>{body}\n</tools>\n\nFor each "
            "function call, return a json object with function name and arguments within <tool_call></tool_call> "
            'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def _llama3_tools(tools: list) -> str:
    return ("You have access to the following functions. To call a function, respond with JSON in the format "
            '{"name": function name, "parameters": dictionary of argument name and its value}.\n\n' +
            "\n\n".join(_json({"type": "function", "function": _schema(t)}) for t in tools))


def _mistral_tools(tools: list) -> str:
    return "[AVAILABLE_TOOLS] " + _json([{"type": "function", "function": _schema(t)} for t in tools]) + \
        "[/AVAILABLE_TOOLS]"


def _glm4_tools(tools: list) -> str:
    return "# 可用工具" + "".join(f"\n\n## {_schema(t).get('name', '')}\n\n{_json(_schema(t))}\n在调用上述函数时，请使用 "
                                 "Json 格式表示调用的参数。" for t in tools)


class ToolFormat(NamedTuple):
    name: str
    tools: Callable[[list], str]            # definitions -> text for the system prompt
    calls: Callable[[list], str]            # [(name, arguments)] -> the assistant's text
    result: Callable[[str], str]            # a tool's output -> the text of its turn


TOOL_FORMATS = {f.name: f for f in (
    ToolFormat("default", _default_tools,
               lambda calls: "".join(f"Action: {n}\nAction Input: {_args(a)}\n" for n, a in calls),
               lambda r: f"Observation: {r}"),
    ToolFormat("qwen", _qwen_tools,
               lambda calls: "\n".join(f'<tool_call>\n{{"name": "{n}", "arguments": {_args(a)}}}\n</tool_call>'
                                       for n, a in calls),
               lambda r: f"<tool_response>\n{r}\n</tool_response>"),
    ToolFormat("llama3", _llama3_tools,
               lambda calls: "\n".join(f'{{"name": "{n}", "parameters": {_args(a)}}}' for n, a in calls),
               lambda r: r),
    ToolFormat("mistral", _mistral_tools,
               lambda calls: "[TOOL_CALLS] [" + ", ".join(f'{{"name": "{n}", "arguments": {_args(a)}}}'
                                                          for n, a in calls) + "]",
               lambda r: f'[TOOL_RESULTS] {{"content": {r}}}[/TOOL_RESULTS]'),
    ToolFormat("glm4", _glm4_tools,
               lambda calls: "\n".join(f"{n}\n{_args(a)}" for n, a in calls),
               lambda r: f"<|observation|>\n{r}"),
)}


def get_tool_format(name: str) -> ToolFormat:
    try:
        return TOOL_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown --tool_format {name!r}; choose one of {', '.join(TOOL_FORMATS)}") from None


def as_text(system, messages: list, tools, fmt: ToolFormat):
    """(system, messages) with tool definitions, calls and results written as text in `fmt`: tool
    results become user turns (consecutive ones joined by a newline), calls the assistant's text."""
    if tools:
        defs = fmt.tools(tools)
        system = f"{system}\n\n{defs}" if system else defs
    out: list = []
    for m in messages:
        if m["role"] == "tool":
            text = fmt.result(m["content"])
            if out and out[-1]["role"] == "user" and out[-1].get("_tool"):
                out[-1] = {"role": "user", "content": out[-1]["content"] + "\n" + text, "_tool": True}
            else:
                out.append({"role": "user", "content": text, "_tool": True})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            calls = [(c["function"]["name"], c["function"].get("arguments", {})) for c in m["tool_calls"]]
            text = "\n".join(x for x in (m.get("content") or "", fmt.calls(calls)) if x)
            out.append({**{k: v for k, v in m.items() if k != "tool_calls"}, "content": text})
        else:
            out.append(m)
    return system, [{k: v for k, v in m.items() if k != "_tool"} for m in out]
