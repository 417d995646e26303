"""The free-mode scaffold for a weak free-text teacher: worked example calls shown before the
request, the check that a call does not copy them, and reading a prose reply as the answer."""
from __future__ import annotations

import re
from typing import Any

from ..openapi import function_schemas, record_spec
from ..react import ParsedStep, format_action, format_final
from .user import missing_values, template_instruction


def demonstration_turns(record: dict, max_functions: int = 3) -> list[dict]:
    """Worked examples for a free-text teacher: per function, a request written by code and the
    ReAct call that serves it, with example values taken from the schema (an enum's first value,
    a description's "e.g. 'x'", else a placeholder). Zero-shot, the 135M model wrote a parseable
    call for 0 of 10 requests; with these turns, 2–3 of 10 (measured on two tools)."""
    turns = []
    for name, schema in sorted(function_schemas(record_spec(record)).items())[:max_functions]:
        args = _example_args(schema)
        turns += [{"role": "user", "content": template_instruction(record, name, args)},
                  {"role": "assistant", "content": format_action(f"I need to call {name}.", name, args)}]
    return turns


def _example_args(schema: dict) -> dict:
    props = schema.get("properties") or {}
    required = schema.get("required") or list(props)[:1]
    out: dict[str, Any] = {}
    for name in required:
        p = props.get(name, {})
        if p.get("enum"):
            out[name] = p["enum"][0]
        elif p.get("type") in ("number", "integer"):
            value = max(2, p.get("minimum", 2))
            out[name] = min(value, p["maximum"]) if "maximum" in p else value
        elif p.get("type") == "boolean":
            out[name] = True
        elif p.get("type") in ("array", "object"):
            out[name] = [] if p.get("type") == "array" else {}
        else:
            example = re.search(r"e\.g\.,? ['\"]([^'\"]{1,30})['\"]", p.get("description") or "")
            out[name] = example.group(1) if example else "example"
    return out


def _copies_demonstration(parsed: ParsedStep, calls: list[ParsedStep], instruction: str) -> bool:
    """The call repeats a worked example's arguments word for word, and the request does not
    itself hold those values (a weak model copying instead of reading the request)."""
    return any(c.action == parsed.action and c.action_input == parsed.action_input and c.action_input
               and missing_values(instruction, c.action_input) for c in calls)


def _prose_answer(raw: str) -> tuple[ParsedStep, str] | None:
    """Asked for the answer, a free-text model often writes it as plain prose, without the
    "Final Answer:" label: that prose is the answer (a reply that still calls a tool is not)."""
    body = re.sub(r"^\s*Thought:\s*", "", raw.strip())
    if not body or re.search(r"\bAction( Input)?\s*:|Observation:", body):
        return None
    answer, thought = " ".join(body.split())[:400], "I now know the answer."
    return ParsedStep("final", thought, final_answer=answer), format_final(thought, answer)
