"""A model's reply in the tool-calling chat format, read back as a step: the inverse, for one
assistant turn, of what the training chat template writes
(:data:`toolalpaca_utils.training.chat_template.TRAINING_CHAT_TEMPLATE`)::

    thought text
    <tool_call>{"name": "getWeather", "arguments": {"city": "Oslo"}}</tool_call><|im_end|>

* a reply with a ``<tool_call>`` is an action: its text before the tag is the thought, the tag's
  JSON object gives the function (``name``) and its input (``arguments``, a JSON object, or JSON
  text holding one, as OpenAI writes it);
* a reply without one is the final answer (the template writes an answer as plain content);
* anything else (a broken tag, JSON that does not parse, no name, arguments that are not an
  object, an empty reply) is an "invalid" step whose ``error`` says what is wrong, phrased for
  the corrective observation. :func:`parse_chat_reply` never raises.

Only the first call of a reply is read (an episode runs one call a step); how many more there
were is kept in ``extra["ignored_calls"]``.
"""
from __future__ import annotations

import json
import re
from typing import Any

from ..react import ParsedStep

OPEN, CLOSE = "<tool_call>", "</tool_call>"
# what ends the assistant's turn in the ChatML template; a server usually stops before it, but a
# completion asked without stop strings may run on into a hallucinated next turn
_END_OF_TURN = re.compile(r"<\|im_end\|>|<\|im_start\|>")
_TAG_WORD = re.compile(r"</?\s*tool_call", re.I)


def parse_chat_reply(text: Any) -> ParsedStep:
    """Classify one assistant reply of the tool-calling chat format (see the module docstring)."""
    if not isinstance(text, str):
        return ParsedStep("invalid", error=f"reply is {type(text).__name__}, not text")
    text = _END_OF_TURN.split(text[:20_000], maxsplit=1)[0]
    start = text.find(OPEN)
    if start < 0:
        if _TAG_WORD.search(text):
            return ParsedStep("invalid", text.strip(), error=f"a malformed tool call tag (write {OPEN}...{CLOSE})")
        if not text.strip():
            return ParsedStep("invalid", error="the reply is empty: call a function or answer the user")
        return ParsedStep("final", final_answer=text.strip())
    thought, body = text[:start].strip(), text[start + len(OPEN):]
    step = _call(thought, body.split(CLOSE, 1)[0])
    if step.kind == "action":
        step.extra["ignored_calls"] = body.count(OPEN)
    return step


def _call(thought: str, body: str) -> ParsedStep:
    """The step of one ``<tool_call>`` body (the text up to ``</tool_call>``, or to the end of a
    reply cut before it: the JSON object alone decides whether the call is whole)."""
    raw = body.strip()
    if not raw.startswith("{"):  # not a search for the first brace: that would read inside a list
        return ParsedStep("invalid", thought, action_input_text=raw, error="the tool call is not a JSON object")
    try:
        call, _end = json.JSONDecoder().raw_decode(raw)
    except json.JSONDecodeError as exc:
        return ParsedStep("invalid", thought, action_input_text=raw, error=f"the tool call is not valid JSON ({exc.msg})")
    if not isinstance(call, dict):
        return ParsedStep("invalid", thought, action_input_text=raw, error="the tool call is not a JSON object")
    name = call.get("name")
    if not isinstance(name, str) or not name.strip():
        return ParsedStep("invalid", thought, action_input_text=raw, error='the tool call has no "name"')
    args, error = _arguments(call.get("arguments"))
    if error:
        return ParsedStep("invalid", thought, name.strip(), action_input_text=raw, error=error)
    return ParsedStep("action", thought, name.strip(), args, json.dumps(args, ensure_ascii=False))


def _arguments(value: Any) -> tuple[dict | None, str | None]:
    """(arguments, None), or (None, why not): a JSON object, or JSON text that holds one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            return None, f'the tool call\'s "arguments" text is not valid JSON ({exc.msg})'
    if value is None:
        return None, 'the tool call has no "arguments" (a JSON object, {} when there are none)'
    if not isinstance(value, dict):
        return None, f'the tool call\'s "arguments" must be a JSON object, not {type(value).__name__}'
    return value, None
