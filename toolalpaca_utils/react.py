"""The ReAct format shared by simulation, training, evaluation and STE.

One prompt builder and one parser, so that what the teacher wrote, what the student is trained
on, and what the evaluator parses are the same text. A trajectory is a chat:

    system     tool documentation + format rules
    user       the instruction
    assistant  "Thought: …\\nAction: fn\\nAction Input: {…}"
    user       "Observation: …"
    …
    assistant  "Thought: …\\nFinal Answer: …"

Only assistant turns carry training loss; observations are user turns (the chat templates of
small models have no tool role).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import jsonschema

from .openapi import function_schemas, record_spec
from .saying import Readings

GET_DETAILS = "getDetails"
GET_DETAILS_SCHEMA = {
    "type": "object",
    "properties": {"Question": {"type": "string", "description": "What to ask the user"}},
    "required": ["Question"],
    "additionalProperties": False,
}
OBSERVATION_PREFIX = "Observation: "
MAX_THOUGHT_CHARS = 200

FORMAT_RULES = """Use this format, one step per reply:
Thought: what to do next
Action: one function name from the list above
Action Input: a JSON object with the function's arguments
Then wait for the Observation. When you have what the user needs, reply:
Thought: I now know the answer
Final Answer: the answer for the user"""


def system_prompt(record: dict, *, with_get_details: bool = True) -> str:
    """Tool documentation and format rules: the system turn of every trajectory."""
    doc = record.get("NLDocumentation") or ""
    lines = [f"You are a helpful assistant with access to the tool \"{record['Name']}\": {record.get('Description', '')}",
             "Functions:", doc]
    if with_get_details:
        lines.append(f'{GET_DETAILS}: Ask the user for a required detail that is missing.\n'
                     f'Parameters: {{"Question": "Required. string. What to ask the user"}}')
    lines += ["", FORMAT_RULES]
    return "\n".join(lines)


def format_action(thought: str, action: str, action_input: Any) -> str:
    """An action step as the assistant writes it."""
    text = action_input if isinstance(action_input, str) else json.dumps(action_input, ensure_ascii=False)
    return f"Thought: {thought.strip()}\nAction: {action}\nAction Input: {text}"


def format_final(thought: str, answer: str) -> str:
    return f"Thought: {thought.strip()}\nFinal Answer: {answer.strip()}"


def format_observation(observation: str) -> str:
    return OBSERVATION_PREFIX + observation


def build_messages(record: dict, instruction: str, turns: list[tuple[str, str]] | None = None,
                   *, system: str | None = None) -> list[dict]:
    """The chat for ``instruction`` so far. ``turns`` are (assistant_text, observation) pairs;
    an observation of ``None`` closes the chat on that assistant turn (the final answer)."""
    messages = [{"role": "system", "content": system if system is not None else system_prompt(record)},
                {"role": "user", "content": instruction}]
    for assistant_text, observation in turns or []:
        messages.append({"role": "assistant", "content": assistant_text})
        if observation is not None:
            messages.append({"role": "user", "content": format_observation(observation)})
    return messages


# --------------------------------------------------------------------------- parsing
@dataclass
class ParsedStep:
    """What one assistant reply says. ``kind`` is always set; ``parse_step`` never raises."""

    kind: str                       # "action" | "final" | "invalid"
    thought: str = ""
    action: str | None = None
    action_input: Any = None        # the parsed JSON value (dict for a valid call)
    action_input_text: str = ""
    final_answer: str | None = None
    error: str | None = None        # why the reply is invalid, phrased for a corrective observation
    extra: dict = field(default_factory=dict)


_FIELD = re.compile(r"^\s*(Thought|Action Input|Action|Final Answer|Observation)\s*:\s?", re.M | re.I)


def _fields(text: str) -> dict[str, str]:
    """First occurrence of each ReAct field, its text up to the next field."""
    out: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    for i, m in enumerate(matches):
        name = m.group(1).lower()
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        if name == "observation":
            break  # anything after a hallucinated observation is not the model's step
        out.setdefault(name, text[m.end():end].strip())
    return out


def parse_step(text: Any) -> ParsedStep:
    """Classify one assistant reply: an action with a JSON input, a final answer, or invalid."""
    if not isinstance(text, str):
        return ParsedStep("invalid", error=f"reply is {type(text).__name__}, not text")
    f = _fields(text[:20_000])
    thought = f.get("thought", "")
    if "action" in f and f["action"].strip():
        action = f["action"].strip().splitlines()[0].strip().strip("`'\"")
        raw = f.get("action input")
        if raw is None:
            return ParsedStep("invalid", thought, action, error="missing 'Action Input:' after 'Action:'")
        value, error = _first_json(raw)
        if error:
            return ParsedStep("invalid", thought, action, action_input_text=raw, error=error)
        return ParsedStep("action", thought, action, value, json.dumps(value, ensure_ascii=False))
    if "final answer" in f:
        answer = f["final answer"]
        if not answer:
            return ParsedStep("invalid", thought, error="'Final Answer:' is empty")
        return ParsedStep("final", thought, final_answer=answer)
    return ParsedStep("invalid", thought, error="no 'Action:' or 'Final Answer:' in the reply")


def _first_json(raw: str) -> tuple[Any, str | None]:
    raw = raw.strip().strip("`")
    if raw.lower().startswith("json"):
        raw = raw[4:]
    start = raw.find("{")
    if start < 0:
        return None, "'Action Input' is not a JSON object"
    try:
        value, _ = json.JSONDecoder().raw_decode(raw[start:])
    except json.JSONDecodeError as exc:
        return None, f"'Action Input' is not valid JSON ({exc.msg})"
    if not isinstance(value, dict):
        return None, "'Action Input' must be a JSON object"
    return value, None


# --------------------------------------------------------------------------- constrained decoding
def step_schema(record: dict, *, with_get_details: bool = True, allow_final: bool = True,
                thought_chars: int = MAX_THOUGHT_CHARS, answer_chars: int = 400,
                values: Sequence[str] = (), thoughts: Mapping[str, str] | None = None,
                answer_thought: str | None = None, functions: Sequence[str] | None = None) -> dict:
    """JSON schema of one assistant step. Each ``anyOf`` branch binds one function name (``const``)
    to its own argument schema, so a grammar-constrained model can only emit well-typed calls.
    ``values`` (grounded decoding: :func:`toolalpaca_utils.saying.readings` of the request) are the
    only strings a call may pass where its schema allows any string (no enum of its own).
    ``thoughts`` (function name -> its thought) binds the thought before a call of that function
    too: the model then chooses a function by choosing its thought, and the call follows it;
    ``answer_thought`` is the one thought before a final answer. ``functions``: only these
    functions may be called (decoding "retrieved": the one retrieval chose); an unknown one is
    a ValueError."""
    thought = {"type": "string", "maxLength": thought_chars}
    thoughts = thoughts or {}
    branches = []
    schemas = function_schemas(record_spec(record))
    if functions is not None:
        unknown = sorted(set(functions) - set(schemas))
        if unknown:
            raise ValueError(f"{record.get('Name')!r} has no function {', '.join(unknown)}; it has {sorted(schemas)}")
        schemas = {name: args for name, args in schemas.items() if name in functions}
    if with_get_details:
        schemas = {**schemas, GET_DETAILS: GET_DETAILS_SCHEMA}
    for name, args in schemas.items():
        branches.append({
            "type": "object",
            "properties": {"thought": {"const": thoughts[name]} if name in thoughts else thought,
                           "action": {"const": name}, "action_input": _bounded(args, values)},
            "required": ["thought", "action", "action_input"],
            "additionalProperties": False,
        })
    if allow_final:
        branches.append({
            "type": "object",
            "properties": {"thought": {"const": answer_thought} if answer_thought else thought,
                           "final_answer": {"type": "string", "maxLength": answer_chars}},
            "required": ["thought", "final_answer"],
            "additionalProperties": False,
        })
    return {"anyOf": branches}


def _bounded(schema: dict, values: Sequence[str] = (), max_chars: int = 80) -> dict:
    """Bound free strings so a constrained step cannot run away with the token budget; with
    ``values``, a free string is one of those its own schema accepts (its pattern, its format;
    unbounded as before when none is); with :class:`~toolalpaca_utils.saying.Readings`, one of
    those of the parameter's kind where the request says any (a date, a currency: typed grounding),
    and a number one of the numbers it says."""
    out = dict(schema)
    props = {}
    typed = isinstance(values, Readings)
    for name, p in (schema.get("properties") or {}).items():
        p = dict(p)
        free = p.get("type") == "string" and "enum" not in p
        fitting = (_fitting(p, values.for_parameter(name, p)) if free and typed else []) or \
            (_fitting(p, values) if free else [])
        if free and fitting:
            p = {"type": "string", "enum": fitting, **({"description": p["description"]} if "description" in p else {})}
        elif free and "maxLength" not in p:
            p["maxLength"] = max_chars
        elif typed and _numeric(p) and (said := _fitting(p, values.numbers)):  # a number the request says
            p = {"type": p["type"], "enum": said, **({"description": p["description"]} if "description" in p else {})}
        props[name] = p
    out["properties"] = props
    return _typed_presence(schema, out, values) if typed else out


def _numeric(schema: dict) -> bool:
    return schema.get("type") in ("integer", "number") and "enum" not in schema


def _typed_presence(schema: dict, bounded: dict, values: Readings) -> dict:
    """Typed grounding's other half, on ``schema`` bounded (:func:`_bounded`). A kind the request
    does not say is no optional parameter's value (no ``"country": "world"``); a value of a kind
    only one parameter takes is that parameter's, so the call passes it (the cpu student, on its
    own, closes the object after the required arguments and drops the ``"date"`` the request gave)."""
    props, required = dict(bounded["properties"]), list(schema.get("required", []))
    kinds = {name: Readings.kind_of(name, p) for name, p in (schema.get("properties") or {}).items()
             if p.get("type") == "string" and "enum" not in p}
    kinds = {name: kind for name, kind in kinds.items() if kind}
    for name, kind in kinds.items():
        p = schema["properties"][name]
        said = bool(_fitting(p, values.for_parameter(name, p)))
        if not said and name not in required:
            del props[name]
        elif said and list(kinds.values()).count(kind) == 1 and name not in required:
            required.append(name)
    _numbers_presence(schema, props, required, values.numbers)
    return {**bounded, "properties": props, **({"required": required} if required else {})}


def _numbers_presence(schema: dict, props: dict, required: list[str], numbers: Sequence[float]) -> None:
    """Numbers, as :func:`_typed_presence` does kinds (in place): with no number left over for
    them once the required numeric parameters have theirs, the optional ones are left out; with
    one left over for each, they are passed (the student drops "top 15"'s ``"limit": 15``)."""
    numeric = [name for name, p in (schema.get("properties") or {}).items() if _numeric(p)]
    optional = [name for name in numeric if name not in required]
    spare = len(numbers) - (len(numeric) - len(optional))
    for name in optional:
        if spare <= 0:
            del props[name]
        elif spare >= len(optional) and _fitting(schema["properties"][name], numbers):
            required.append(name)


def _fitting(schema: dict, values: Sequence[str]) -> list[str]:
    """The ``values`` that a string parameter's own schema accepts (formats checked too)."""
    if not values:
        return []
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [v for v in values if validator.is_valid(v)]


def step_from_json(value: dict) -> tuple[str, ParsedStep]:
    """ReAct text and parsed step for one schema-constrained step."""
    thought = str(value.get("thought", ""))
    if "final_answer" in value:
        answer = str(value["final_answer"])
        return format_final(thought, answer), ParsedStep("final", thought, final_answer=answer)
    text = format_action(thought, value["action"], value.get("action_input", {}))
    args = value.get("action_input", {})
    return text, ParsedStep("action", thought, value["action"], args, json.dumps(args, ensure_ascii=False))
