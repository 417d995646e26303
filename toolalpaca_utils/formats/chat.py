"""Chat formats with native tool calls: messages + tools (TRL's ``SFTTrainer``) and OpenAI's
fine-tuning JSONL. Both are the same conversation; they differ in how arguments are written.

    system     which tool (its functions travel in ``tools``)
    user       the instruction
    assistant  content: the thought; tool_calls: [{id, type: "function", function: {name, arguments}}]
    tool       tool_call_id, (name,) content: the observation
    ...
    assistant  content: the final answer

* **messages** (TRL / transformers chat templates): ``arguments`` is a dict and the tool message
  names its function, as transformers' tool-use templates expect;
* **openai**: ``arguments`` is the JSON text of the call (the corpus's ``action_input`` as is),
  the tool message has no name, and each line adds ``"parallel_tool_calls": false``.

A step that is not a well-formed call (no action, or an input that is not a JSON object) is a plain
assistant reply (its ReAct text) followed by a user message with the observation, as the ReAct chat
tells a model what was wrong.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import openapi
from ..react import GET_DETAILS
from ..runs import write_jsonl
from .common import (FormatError, call_arguments, call_step, checked_instance, final_of, input_text,
                     new_instance, record_for, records_by_name, slug, system_message, text_step,
                     tool_from_system, tool_schemas, where_of)

ROLES = ("system", "user", "assistant", "tool")
DIALECTS = ("messages", "openai")


# --------------------------------------------------------------------------------------------
# project instance -> conversation
# --------------------------------------------------------------------------------------------
def _step_messages(step: dict, k: int, dialect: str) -> list[dict]:
    observation = step.get("observation")
    observation = "" if observation is None else str(observation)
    args = call_arguments(step)
    if args is None:
        return [{"role": "assistant", "content": step.get("text") or ""}, {"role": "user", "content": observation}]
    cid = f"call_{k + 1}"
    arguments = args if dialect == "messages" else input_text(step["action_input"])
    assistant: dict[str, Any] = {"role": "assistant", "content": step.get("thought") or ""}
    if dialect == "openai" and not assistant["content"]:
        del assistant["content"]  # OpenAI's own examples leave it out next to tool_calls
    assistant["tool_calls"] = [{"id": cid, "type": "function",
                                "function": {"name": step["action"], "arguments": arguments}}]
    tool = {"role": "tool", "tool_call_id": cid, "name": step["action"], "content": observation}
    if dialect == "openai":
        del tool["name"]  # an OpenAI tool message is tied to its call by tool_call_id alone
    return [assistant, tool]


def conversation(instance: dict, record: dict, *, dialect: str = "messages", index: int | None = None) -> list[dict]:
    """The chat of one project instance (see the module docstring)."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
    checked_instance(instance, index)
    messages = [{"role": "system", "content": system_message(record)},
                {"role": "user", "content": instance["instruction"]}]
    for k, step in enumerate(instance["steps"]):
        messages += _step_messages(step, k, dialect)
    if instance.get("final") is not None:
        messages.append({"role": "assistant", "content": instance["final"]["answer"]})
    return messages


def to_messages(instance: dict, record: dict, *, index: int | None = None, tools: list[dict] | None = None) -> dict:
    """``{"messages", "tools"}`` of one instance for TRL's ``SFTTrainer`` (arguments as dicts)."""
    return {"messages": conversation(instance, record, dialect="messages", index=index),
            "tools": tool_schemas(record) if tools is None else tools}


def to_openai(instance: dict, record: dict, *, index: int | None = None, tools: list[dict] | None = None) -> dict:
    """One line of OpenAI's chat fine-tuning JSONL (arguments as JSON text)."""
    return {"messages": conversation(instance, record, dialect="openai", index=index),
            "tools": tool_schemas(record) if tools is None else tools, "parallel_tool_calls": False}


def converted_rows(instances: Iterable[dict], records, convert) -> Iterable[tuple[dict, dict]]:
    """(instance, converted row) pairs; the tools of each tool are derived once."""
    by_name, schemas = records_by_name(records), {}
    for i, inst in enumerate(instances):
        where = checked_instance(inst, i)
        record = record_for(inst, by_name, where)
        if record["Name"] not in schemas:
            schemas[record["Name"]] = tool_schemas(record)
        yield inst, convert(inst, record, index=i, tools=schemas[record["Name"]])


# --------------------------------------------------------------------------------------------
# conversation -> project instance
# --------------------------------------------------------------------------------------------
def _message(m: Any, where: str, i: int) -> dict:
    if not isinstance(m, dict):
        raise FormatError(where, f"messages[{i}]", f"is {type(m).__name__}, not an object")
    if "role" not in m or m["role"] is None:
        raise FormatError(where, f"messages[{i}].role", "missing")
    if m["role"] not in ROLES:
        raise FormatError(where, f"messages[{i}].role", f"unknown role {m['role']!r} (expected one of {ROLES})")
    return {k: v for k, v in m.items() if v is not None}  # datasets fills absent struct fields with None


def _content(m: dict, where: str, i: int) -> str:
    content = m.get("content")
    if isinstance(content, list):  # OpenAI's content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise FormatError(where, f"messages[{i}].content", "missing" if content is None else "not text")
    return content


def _arguments(value: Any, where: str, field: str) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, str):
        raise FormatError(where, field, "missing" if value is None else f"is {type(value).__name__}, not JSON")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise FormatError(where, field, f"not JSON ({exc.msg})") from None
    if not isinstance(parsed, dict):
        raise FormatError(where, field, "not a JSON object")
    return value


def _call(call: Any, thought: str, where: str, field: str) -> tuple[str | None, dict]:
    """(call id, step) of one tool call."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        raise FormatError(where, f"{field}.function", "missing")
    if not isinstance(fn.get("name"), str) or not fn["name"]:
        raise FormatError(where, f"{field}.function.name", "missing")
    action_input = _arguments(fn.get("arguments"), where, f"{field}.function.arguments")
    return call.get("id"), call_step(thought, fn["name"], action_input)


def _answer(m: dict, open_calls: dict, where: str, i: int) -> int:
    """The step a tool message answers (by tool_call_id, else the oldest open call)."""
    cid = m.get("tool_call_id")
    if cid is None and open_calls:
        cid = next(iter(open_calls))
    if cid not in open_calls:
        raise FormatError(where, f"messages[{i}].tool_call_id", f"{cid!r} answers no open tool call")
    return open_calls.pop(cid)[0]


def _all_answered(open_calls: dict, where: str) -> None:
    if open_calls:
        cid, (_step, field) = next(iter(open_calls.items()))
        raise FormatError(where, f"{field}.id", f"tool call {cid!r} has no matching tool message")


def _turns(msgs: list[dict], start: int, where: str) -> tuple[list[dict], dict | None]:
    """Steps and final answer of the messages after the instruction."""
    steps: list[dict] = []
    final, open_calls, i = None, {}, start
    while i < len(msgs):
        m, role = msgs[i], msgs[i]["role"]
        if role == "assistant" and m.get("tool_calls"):
            _all_answered(open_calls, where)
            for j, call in enumerate(m["tool_calls"]):
                field = f"messages[{i}].tool_calls[{j}]"
                cid, step = _call(call, (m.get("content") or "") if j == 0 else "", where, field)
                open_calls[cid if cid is not None else f"#{len(steps)}"] = (len(steps), field)
                steps.append(step)
        elif role == "tool":
            steps[_answer(m, open_calls, where, i)]["observation"] = _content(m, where, i)
        elif role == "assistant":
            _all_answered(open_calls, where)
            if i + 1 == len(msgs):
                final = final_of(_content(m, where, i))
            elif msgs[i + 1]["role"] == "user":
                steps.append(text_step(_content(m, where, i), _content(msgs[i + 1], where, i + 1)))
                i += 1
            else:
                raise FormatError(where, f"messages[{i + 1}].role", "a reply without tool calls must be "
                                  "followed by a user message or end the conversation")
        else:
            raise FormatError(where, f"messages[{i}].role", f"unexpected {role!r} message after the instruction")
        i += 1
    _all_answered(open_calls, where)
    return steps, final


def _tool_name(msgs: list[dict], tools: Any, records: Mapping[str, dict], where: str) -> str:
    """The tool of a conversation: named by the system message, else the record whose
    functions the ``tools`` list offers."""
    name = tool_from_system(msgs[0].get("content")) if msgs[0]["role"] == "system" else None
    if name:
        return name
    offered = {t["function"].get("name") for t in tools or []
               if isinstance(t, dict) and isinstance(t.get("function"), dict)} - {GET_DETAILS}
    for record in records.values():
        if offered and offered <= set(openapi.record_functions(record)):
            return record["Name"]
    raise FormatError(where, "tool", "cannot tell which tool: no system message names it and no tool record "
                      "has the functions in `tools`")


def instance_from_chat(row: Any, *, fmt: str, index: int | None = None, split: str = "train",
                       records=None, where: str | None = None) -> dict:
    """A project instance from one conversation row (``{"messages", "tools", "id"?, "tool"?}``).
    Without an ``id`` the instance gets ``<tool>-<fmt>-<index + 1>``."""
    where = where or where_of(row, index)
    msgs = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise FormatError(where, "messages", "missing" if msgs is None else "not a non-empty list")
    msgs = [_message(m, where, i) for i, m in enumerate(msgs)]
    first = 1 if msgs[0]["role"] == "system" else 0
    if first >= len(msgs) or msgs[first]["role"] != "user":
        raise FormatError(where, f"messages[{first}]", "the instruction (a user message) is missing")
    steps, final = _turns(msgs, first + 1, where)
    tool = row.get("tool") or _tool_name(msgs, row.get("tools"), records_by_name(records), where)
    iid = row.get("id") or f"{slug(tool)}-{fmt}-{(index or 0) + 1}"
    return new_instance(iid, tool, _content(msgs[first], where, first), steps, final, split=split, fmt=fmt)


def from_messages(row: Any, *, index: int | None = None, split: str = "train", records=None) -> dict:
    """A project instance from one messages + tools row (the inverse of :func:`to_messages`)."""
    return instance_from_chat(row, fmt="messages", index=index, split=split, records=records)


def from_openai(row: Any, *, index: int | None = None, split: str = "train", records=None) -> dict:
    """A project instance from one OpenAI fine-tuning line (the inverse of :func:`to_openai`)."""
    return instance_from_chat(row, fmt="openai", index=index, split=split, records=records)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def write_openai_jsonl(path: str | Path, instances: Iterable[dict], records) -> Path:
    """OpenAI's chat fine-tuning JSONL: one ``{"messages", "tools", "parallel_tool_calls"}`` a line."""
    rows = [row for _inst, row in converted_rows(instances, records, to_openai)]  # all checked before a byte is written
    return write_jsonl(path, rows)


def read_openai_jsonl(path: str | Path, *, split: str = "train", records=None) -> list[dict]:
    """Project instances from an OpenAI fine-tuning JSONL file; ids are ``<tool>-openai-<n>``,
    ``n`` counting each tool's lines from 1."""
    path = Path(path)
    out: list[dict] = []
    counts: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"instance #{n - 1} (line {n} of {path.name})"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(where, "line", f"not JSON ({exc.msg})") from None
        inst = instance_from_chat(row, fmt="openai", index=n - 1, split=split, records=records, where=where)
        counts[inst["tool"]] = counts.get(inst["tool"], 0) + 1
        inst["id"] = f"{slug(inst['tool'])}-openai-{counts[inst['tool']]}"
        out.append(inst)
    return out
