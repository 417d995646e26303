"""What every format converter shares: the error, checking a project instance, the tool's
function schemas and system message, and building project steps and instances back."""
from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

from .. import openapi
from ..react import GET_DETAILS, GET_DETAILS_SCHEMA, format_action, format_final, parse_step

#: The thought of a final answer when a format does not carry one (the ReAct prompt's own words).
FINAL_THOUGHT = "I now know the answer"
GET_DETAILS_DESCRIPTION = "Ask the user for a required detail that is missing."
SYSTEM_TEMPLATE = ('You are a helpful assistant with access to the tool "{name}": {description}\n'
                   "Call its functions to serve the user's request; if a required detail is missing, ask the user "
                   f"with {GET_DETAILS}. When you have what the user needs, answer the user.")
_SYSTEM_TOOL = re.compile(r'access to the tool "(.+?)"')


class FormatError(ValueError):
    """A record that cannot be converted. The message names the instance (its id, or its index
    when it has none) and the field, e.g. ``instance 'x-01': field 'steps[0].action_input': missing``."""

    def __init__(self, where: str, field: str, problem: str):
        self.where, self.field, self.problem = where, field, problem
        super().__init__(f"{where}: field {field!r}: {problem}")


def where_of(row: Any, index: int | None) -> str:
    """How an error names a record: its ``id`` when it has one, else its index."""
    iid = row.get("id") if isinstance(row, dict) else None
    return f"instance {iid!r}" if iid else f"instance #{index if index is not None else '?'}"


def records_by_name(records: Mapping[str, dict] | Iterable[dict] | None) -> dict[str, dict]:
    """Tool records keyed by Name (from a list, or a mapping such as :func:`corpus.load_tools`)."""
    if records is None:
        return {}
    if isinstance(records, Mapping):
        return dict(records)
    return {r["Name"]: r for r in records}


def record_for(instance: dict, records: Mapping[str, dict], where: str) -> dict:
    try:
        return records[instance["tool"]]
    except KeyError:
        raise FormatError(where, "tool", f"no tool record named {instance['tool']!r}") from None


def checked_instance(instance: Any, index: int | None = None) -> str:
    """Check that a project instance has what every format needs; return how errors name it."""
    if not isinstance(instance, dict):
        raise FormatError(f"instance #{index}", "instance", f"is {type(instance).__name__}, not an object")
    where = where_of(instance, index)
    for key, kind in (("tool", str), ("instruction", str), ("steps", list)):
        if key not in instance:
            raise FormatError(where, key, "missing")
        if not isinstance(instance[key], kind):
            raise FormatError(where, key, f"is {type(instance[key]).__name__}, not {kind.__name__}")
    for k, step in enumerate(instance["steps"]):
        if not isinstance(step, dict):
            raise FormatError(where, f"steps[{k}]", "not an object")
        for key in ("action", "action_input", "observation"):
            if key not in step:
                raise FormatError(where, f"steps[{k}].{key}", "missing")
    final = instance.get("final")
    if final is not None and not (isinstance(final, dict) and isinstance(final.get("answer"), str)):
        raise FormatError(where, "final.answer", "missing (final must be null or {text, answer})")
    return where


# --------------------------------------------------------------------------------------------
# the tool as chat formats see it
# --------------------------------------------------------------------------------------------
def _function(name: str, description: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def tool_schemas(record: dict, *, with_get_details: bool = True) -> list[dict]:
    """OpenAI-style function schemas of a tool record, in spec order, from its OpenAPI spec
    (arguments as :func:`openapi.function_schemas` flattens them), plus ``getDetails``."""
    spec = openapi.record_spec(record)
    params = openapi.function_schemas(spec)
    out = [_function(op["operationId"], op.get("description") or op.get("summary") or "", params[op["operationId"]])
           for _p, _m, op in openapi.iter_operations(spec) if op.get("operationId")]
    if with_get_details:
        out.append(_function(GET_DETAILS, GET_DETAILS_DESCRIPTION, GET_DETAILS_SCHEMA))
    return out


def system_message(record: dict) -> str:
    """The system turn of the chat formats: which tool, and how to use it (the functions
    themselves travel in ``tools``)."""
    description = (record.get("Description") or "").strip()
    return SYSTEM_TEMPLATE.format(name=record["Name"], description=description)


def tool_from_system(text: Any) -> str | None:
    """The tool name a :func:`system_message` names, or None."""
    m = _SYSTEM_TOOL.search(text) if isinstance(text, str) else None
    return m.group(1) if m else None


def call_arguments(step: dict) -> dict | None:
    """The arguments of a step that is a well-formed call (an action and a JSON object as its
    input), else None: such a step travels as a plain reply in the chat formats."""
    if not step.get("action"):
        return None
    text = step.get("action_input")
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def input_text(value: Any) -> str:
    """An action input as the corpus stores it: JSON text."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# project steps and instances, built back
# --------------------------------------------------------------------------------------------
def call_step(thought: str, action: str, action_input: str, observation: str = "",
              status: int | None = None) -> dict:
    """A step that is a call; its ReAct text is rebuilt from thought, action and input."""
    return {"text": format_action(thought, action, action_input), "thought": thought, "action": action,
            "action_input": action_input, "observation": observation, "status": status,
            "valid": call_arguments({"action": action, "action_input": action_input}) is not None, "error": None}


def text_step(text: str, observation: str, status: int | None = None) -> dict:
    """A step that is not a well-formed call: thought, action and input are re-read from its text."""
    parsed = parse_step(text)
    return {"text": text, "thought": parsed.thought, "action": parsed.action,
            "action_input": parsed.action_input_text, "observation": observation, "status": status,
            "valid": False, "error": parsed.error}


def final_of(answer: str, thought: str = FINAL_THOUGHT) -> dict:
    return {"text": format_final(thought, answer), "answer": answer}


def final_thought(final: dict | None) -> str:
    """The thought before a final answer (the ReAct default when its text has none)."""
    text = (final or {}).get("text") or ""
    return parse_step(text).thought if "Thought" in text else FINAL_THOUGHT


def calls_golden(steps: list[dict]) -> list[dict]:
    """Golden calls rebuilt from steps: the well-formed calls but getDetails, and when a status is
    known only the successful ones (as the simulation's golden)."""
    return [{"Action": s["action"], "Action_Input": s["action_input"]} for s in steps
            if s.get("action") not in (None, "", GET_DETAILS) and s.get("valid")
            and (s.get("status") is None or 200 <= s["status"] < 300)]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "tool"


def new_instance(iid: str, tool: str, instruction: str, steps: list[dict], final: dict | None, *,
                 split: str, fmt: str, golden: list[dict] | None = None) -> dict:
    """A project instance read from a format (``mode`` says which; ``strategy`` is "import")."""
    return {"id": iid, "tool": tool, "instruction": instruction, "strategy": "import", "mode": fmt,
            "steps": steps, "final": final, "kept": True, "drop_reason": None, "split": split,
            "golden": calls_golden(steps) if golden is None else golden, "tokens": {"prompt": 0, "completion": 0}}
