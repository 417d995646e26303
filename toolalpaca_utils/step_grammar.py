"""Constrained decoding in the words the student was trained on: a GBNF grammar whose sentences
are ReAct steps (``Thought: …`` then ``Action: fn`` and ``Action Input: {…}``, or ``Final
Answer: …``), built from the JSON schema of a step (:func:`toolalpaca_utils.react.step_schema`).

A constrained step is written as that schema's JSON object (``{"thought", "action",
"action_input"}``), a text the student, fine-tuned on ReAct text, never saw. This grammar allows
exactly the same calls as the trained text itself (llama.cpp's ``grammar``, sent by
:meth:`toolalpaca_utils.llm.ChatClient.chat`). Measured, it is not the better choice: the cpu
student of 2026-12-02 (third session) on the 30 real-tool items scored API match 20.0 % and
overall 3.3 % in ReAct text against 36.7 % and 10.0 % as JSON, constrained and grounded alike
(``python benchmarks/step_format.py --models fine-tuned``), so episodes keep the JSON object and
this grammar serves that benchmark.
"""
from __future__ import annotations

import functools
import json


def step_grammar(schema: dict) -> str:
    """The GBNF grammar of the ReAct steps that ``schema`` allows: its ``anyOf`` branches (or the
    one object) are calls (``action`` a ``const``) or final answers; ``thought`` and
    ``final_answer`` are strings on one line, within their schema's length bounds."""
    return _grammar(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=512)
def _grammar(schema_json: str) -> str:
    from llama_cpp.llama_grammar import SchemaConverter

    schema = json.loads(schema_json)
    branches = schema.get("anyOf") or [schema]
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    thoughts = {json.dumps(b.get("properties", {}).get("thought"), sort_keys=True) for b in branches}
    if len(thoughts) != 1:
        raise ValueError("every branch of a step schema must share one thought schema")
    lines = [f"thought ::= {_line(branches[0]['properties'].get('thought'))}"]
    alternatives = []
    for i, branch in enumerate(branches):
        props = branch.get("properties") or {}
        if "action" in props:
            args = converter.visit(props.get("action_input") or {"type": "object"}, f"args{i}")
            alternatives.append(f'"Action: " {json.dumps(props["action"]["const"])} "\\nAction Input: " {args}')
        elif "final_answer" in props:
            lines.append(f"answer{i} ::= {_line(props['final_answer'])}")
            alternatives.append(f'"Final Answer: " answer{i}')
        else:
            raise ValueError(f"a step schema branch is a call or a final answer, got properties {sorted(props)}")
    root = 'root ::= "Thought: " thought "\\n" (' + " | ".join(f"({a})" for a in alternatives) + ")"
    return "\n".join([root, *lines, converter.format_grammar()])


def _line(schema: dict | None) -> str:
    """One line of text within ``schema``'s length bounds (at least one character), or its ``const``."""
    schema = schema or {}
    if "const" in schema:
        return json.dumps(str(schema["const"]))
    low = max(1, int(schema.get("minLength", 1)))
    high = schema.get("maxLength")
    return f"[^\\n]{{{low},{int(high)}}}" if high is not None else f"[^\\n]{{{low},}}"
