"""Responses and answers written by code, for a weak teacher.

:class:`SchemaExecutor` answers a call from the function's response schema, filled with typed
values (:mod:`toolalpaca_utils.values`); a field named like an argument carries the argument's
value, so the response agrees with the request. A 135M model asked for the response echoed the
request or the schema's own words (``{"result": "string. The type of data to return."}``).

:func:`answer_problems` says why a final answer is not grounded in the observation (it quotes no
value of it, is a status line, or holds JSON), and :func:`verbalise` writes a short answer from
the observation when the teacher's is not grounded.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any, Iterator

from ..openapi import record_spec, response_schema
from ..saying import mentioned
from ..values import sample_value, words
from .executor import MAX_OBSERVATION_CHARS, Observation

STATUS_LINE = re.compile(r"^\s*\d{3}\b|status code|response\s*:", re.I)


def fill(schema: Any, rng: random.Random, args: dict, name: str = "result", depth: int = 0) -> Any:
    """A value for ``schema``: objects field by field, arrays of 1–3 items, scalars by the field's
    name and type; a field named like an argument carries that argument's value."""
    if not isinstance(schema, dict):
        schema = {}
    kind = schema.get("type") or ("object" if "properties" in schema else "string")
    if name in args and kind not in ("object", "array"):
        return args[name]
    if kind == "object":
        props = dict(list((schema.get("properties") or {}).items())[:6])
        if not props or depth > 2:  # a schema without fields: a small record of typed fields
            props = {"name": {"type": "string"}, "count": {"type": "integer"}}
        return {k: fill(v, rng, args, k, depth + 1) for k, v in props.items()}
    if kind == "array":
        item_name = re.sub(r"s$", "", name) or name
        return [fill(schema.get("items") or {}, rng, args, item_name, depth + 1) for _ in range(rng.randint(1, 3))]
    return sample_value(name, schema, rng).value


@dataclass
class SchemaExecutor:
    """Code plays the API: status 200 and the response schema filled by :func:`fill`."""

    def __call__(self, record: dict, action: str, args: dict, *, seed: int = 0) -> Observation:
        rng = random.Random(f"{record['Name']}:{action}:{seed}")
        body = json.dumps(fill(response_schema(record_spec(record), action), rng, args or {}), ensure_ascii=False)
        text = f"Status Code: 200. Response: {body}"
        if len(text) > MAX_OBSERVATION_CHARS:  # never cut JSON mid-way: fewer items instead
            text = f"Status Code: 200. Response: {body[:MAX_OBSERVATION_CHARS - 40]}..."
        return Observation(200, text)


def response_body(observation: str) -> Any:
    """The JSON after ``Response:`` in an observation (None when there is none or it is cut)."""
    _, _, tail = observation.partition("Response:")
    try:
        return json.loads(tail.strip())
    except json.JSONDecodeError:
        return None


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, scalar) pairs of a JSON value, depth first."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, path + (i,))
    elif value is not None and not isinstance(value, bool):
        yield path, value


def answer_problems(answer: str, observation: str) -> list[str]:
    """Why ``answer`` is not grounded in ``observation`` (empty: it is)."""
    problems = []
    if STATUS_LINE.search(answer):
        problems.append("a status line")
    if re.search(r"[{}\[\]]", answer):
        problems.append("holds JSON")
    quotable = [v for _, v in leaves(response_body(observation)) if len(str(v)) >= 2]
    if not any(mentioned(v, answer) for v in quotable):
        problems.append("quotes no value of the observation")
    return problems


def verbalise(observation: str, rng: random.Random) -> str:
    """A short answer that states up to three values of the observation, in words."""
    found = list(leaves(response_body(observation)))
    if not found:
        return "The service answered, but its response held no details to report."
    facts = []
    for path, value in found[:3]:
        label = " ".join(words(str(next((p for p in reversed(path) if isinstance(p, str)), "result"))))
        facts.append(f"the {label} is {value}")
    lists = [p for p, v in leaves(response_body(observation)) if any(isinstance(x, int) for x in p)]
    opener = rng.choice(("Here is what I found: ", "The service reports that ", "According to the service, ", ""))
    text = opener + (", ".join(facts[:-1]) + " and " + facts[-1] if len(facts) > 1 else facts[0]) + "."
    if lists and len(found) > 3:
        text += f" The response lists {len(found)} values in all."
    return text[:1].upper() + text[1:]
