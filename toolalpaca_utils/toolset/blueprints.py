"""Training tools written by code ("blueprints"), next to the teacher's catalogue tools.

Why: the 135M teacher writes tools of 1-2 functions whose parameters are named ``data``,
``getPhoneSpecials`` or ``listOfFunctions``; a request for them must spell the parameter's label
("with the get phone specials 79"), so the student learns to copy labels, not to read
documentation and map a natural request onto it. The real tools have 3-4 functions with
meaningful parameters and are asked in plain words ("What public holidays does Brazil have in
2025?"). Blueprint tools give the corpus that shape: 3-4 functions each, parameters whose names
and descriptions say what they hold (so :mod:`toolalpaca_utils.values` finds realistic values,
codes a request may say by name), and per function a few natural request templates written with
the function, so requests never name a parameter's label.

The tools are text (:mod:`.blueprint_text`), parsed by :func:`parse_blueprints` into OpenAPI specs
and ToolAlpaca records (``source`` "blueprint", the templates and candidate values in the
project field ``blueprint``). :func:`draw_request` is the call-first step for them: a template,
typed values for its slots, the request that says them.
"""
from __future__ import annotations

import random
import re
from typing import Any

from ..openapi import build_spec, function_schemas, record_from_spec, record_spec
from ..values import Value, sample_value
from .blueprint_text import TEXT

SOURCE = "blueprint"
_PARAM = re.compile(r"^(?P<name>\w+)(?P<req>\*?) (?P<type>string|integer|number)(?: (?P<lo>[\d.]+)\.\.(?P<hi>[\d.]+))?: "
                    r"(?P<rest>.+)$")
_SLOT = re.compile(r"\{(\w+)\}")


def _param(line: str) -> dict:
    m = _PARAM.match(line)
    if not m:
        raise ValueError(f"blueprint parameter line not understood: {line!r}")
    desc, *extras = [s.strip() for s in m["rest"].split(" | ")]
    p: dict[str, Any] = {"name": m["name"], "type": m["type"], "required": bool(m["req"]), "description": desc}
    if m["lo"]:
        cast = int if m["type"] == "integer" else float
        p["minimum"], p["maximum"] = cast(m["lo"]), cast(m["hi"])
    for extra in extras:
        key, _, items = extra.partition(": ")
        sep = ", " if key == "enum" else "; "
        p[key] = [s.strip() for s in items.split(sep)]
    return p


def _functions(lines: list[str]) -> list[dict]:
    functions: list[dict] = []
    for line in lines:
        if not line.startswith("  "):
            name, _, summary = line.partition(": ")
            functions.append({"name": name, "description": summary, "parameters": [],
                              "output": {"description": summary, "properties": []}, "asks": []})
        elif line.startswith("  -> "):
            field, _, desc = line[5:].partition(": ")
            fname, ftype = field.split()
            desc, _, enum = desc.partition(" | enum: ")
            functions[-1]["output"]["properties"].append({"name": fname, "type": ftype, "description": desc,
                                                          **({"enum": enum.split(", ")} if enum else {}),
                                                          **_item_fields(ftype, desc)})
        elif line.startswith("  ? "):
            functions[-1]["asks"].append(line[4:])
        else:
            functions[-1]["parameters"].append(_param(line.strip()))
    return functions


def _check(tool: str, fn: dict) -> None:
    """Every template says every required parameter and only parameters of the function."""
    names = {p["name"] for p in fn["parameters"]}
    required = {p["name"] for p in fn["parameters"] if p["required"]}
    for ask in fn["asks"]:
        slots = set(_SLOT.findall(ask))
        if not slots <= names or not required <= slots:
            raise ValueError(f"{tool}.{fn['name']}: template {ask!r} must say {sorted(required)} "
                             f"and only {sorted(names)}")
    if not fn["asks"]:
        raise ValueError(f"{tool}.{fn['name']}: no request template")


def parse_blueprints(text: str = TEXT) -> list[dict]:
    """The tools of ``text`` as ``{"name", "category", "description", "functions"}`` dicts (see
    :mod:`.blueprint_text` for the layout); a malformed line raises ValueError naming it."""
    tools = []
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        header, *lines = [ln for ln in block.splitlines() if ln.strip()]
        name, category, description = [s.strip() for s in header.split(" | ")]
        functions = _functions(lines)
        for fn in functions:
            _check(name, fn)
        tools.append({"name": name, "category": category, "description": description, "functions": functions})
    return tools


def blueprint_record(tool: dict) -> dict:
    """One blueprint tool as a ToolAlpaca record (``source`` "blueprint"); its request templates
    and candidate values ride in the project field ``blueprint``, never in the documentation."""
    spec = build_spec(tool["name"], tool["description"], tool["functions"])
    intro = f"The {tool['name']} API: {tool['description']}"
    record = record_from_spec(spec, name=tool["name"], description=tool["description"], category=tool["category"],
                              introduction=intro, source=SOURCE)
    record["blueprint"] = {fn["name"]: {"asks": fn["asks"],
                                        "values": {p["name"]: p["values"] for p in fn["parameters"] if "values" in p}}
                           for fn in tool["functions"]}
    return record


_NUMBER_FIELDS = {  # an item field whose name holds one of these words is a number of that type
    "year": "integer", "position": "integer", "stars": "integer", "aqi": "integer", "minutes": "integer",
    "high": "number", "low": "number", "close": "number", "calories": "number", "grams": "number",
    "change": "number", "market_value": "number", "rating": "number", "price": "number", "points": "number",
    "score": "number", "magnitude": "number", "distance": "number", "value": "number", "amount": "number",
}


def _item_fields(ftype: str, description: str) -> dict:
    """An array output described "... with title, author and year" gets items with those fields,
    so the simulated response (:func:`~toolalpaca_utils.agents.responses.fill`) holds books with
    a title, an author and a year rather than anonymous records."""
    m = re.search(r"\bwith (.+)$", description)
    if ftype != "array" or not m:
        return {}
    names = [n.strip().replace(" ", "_") for n in re.split(r",|\band\b", m[1].rstrip(".")) if n.strip()]
    return {"items": {"type": "object", "properties": {
        n: {"type": next((t for k, t in _NUMBER_FIELDS.items() if k in n), "string")} for n in names}}}


def blueprint_records(n: int, seed: int = 0) -> list[dict]:
    """``n`` blueprint tools (all when ``n`` is at least their number), a seeded choice kept in
    the text's order; 0 = none."""
    tools = parse_blueprints()
    if n <= 0:
        return []
    chosen = set(random.Random(seed).sample(range(len(tools)), min(n, len(tools))))
    return [blueprint_record(t) for i, t in enumerate(tools) if i in chosen]


def draw_request(record: dict, rng: random.Random, *, function: str | None = None,
                 ) -> tuple[str, dict[str, Value], str, str]:
    """Call-first for a blueprint tool: (function, values, request, frame id). The function (or
    ``function``) and one of its templates are drawn; each slot gets a candidate value of the
    blueprint or a typed value (:func:`~toolalpaca_utils.values.sample_value`), said as a user
    says it. The frame id is ``function#template``."""
    plan = record["blueprint"]
    name = function or rng.choice(sorted(plan))
    index = rng.randrange(len(plan[name]["asks"]))
    template = plan[name]["asks"][index]
    props = function_schemas(record_spec(record))[name]["properties"]
    values = {}
    for slot in dict.fromkeys(_SLOT.findall(template)):
        candidates = plan[name]["values"].get(slot)
        if candidates:
            choice = rng.choice(candidates)
            values[slot] = Value(choice, choice, "blueprint")
        else:
            values[slot] = sample_value(slot, props[slot], rng)
    _order_range(values)
    text = _SLOT.sub(lambda m: values[m[1]].said, template)
    return name, values, text, f"{name}#{index}"


def _order_range(values: dict[str, Value]) -> None:
    """A ``start_x`` after its ``end_x`` (two independent draws) is swapped: a range runs forwards."""
    for key in [k for k in values if k.startswith("start_")]:
        end = "end_" + key[len("start_"):]
        if end in values and str(values[key].value) > str(values[end].value):
            values[key], values[end] = values[end], values[key]
