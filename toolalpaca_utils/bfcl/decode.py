"""The student's recorded actions in BFCL's decoded form, ``[{"func_name": {"arg": value}}, ...]``.

The student expresses parallel calls the only way a ReAct episode can: one call per step, each
answered by a neutral observation, until its final answer (or the step limit). So the decoded
form of an episode is the list of its calls, in order. Which calls count:

- AST categories: the calls that were *executed*, i.e. that passed the project's argument check
  against the function's schema, as every tool call in the project does. A call the check sent back
  (the student then usually retried) is not part of the answer; a retry that never comes leaves
  the call missing, which BFCL's checker counts as wrong.
- irrelevance: every *attempted* call, whether or not it passed the check, to any name — the
  stricter reading of "the model called nothing". A reply whose arguments were not JSON is, as in
  BFCL's decoder, no call.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from ..react import GET_DETAILS


def _args(step: dict) -> dict | None:
    try:
        value = json.loads(step.get("action_input") or "")
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _is_call(step: dict) -> bool:
    """A step that names a function (getDetails asks the user: not a function call)."""
    return step.get("action") not in (None, "", GET_DETAILS)


def executed_calls(steps: Sequence[dict]) -> list[dict]:
    """The calls the episode executed (status 2xx), in order, in BFCL's decoded form."""
    out = []
    for step in steps:
        status = step.get("status")
        if _is_call(step) and status is not None and 200 <= status < 300 and (args := _args(step)) is not None:
            out.append({step["action"]: args})
    return out


def attempted_calls(steps: Sequence[dict]) -> list[dict]:
    """Every call the episode wrote with JSON arguments, executed or not, in BFCL's decoded form."""
    return [{step["action"]: args} for step in steps if _is_call(step) and (args := _args(step)) is not None]


def decoded(category: str, steps: Sequence[dict]) -> list[dict[str, Any]]:
    """What BFCL's checker is shown for an episode of ``category`` (see the module docstring)."""
    return attempted_calls(steps) if "irrelevance" in category else executed_calls(steps)
