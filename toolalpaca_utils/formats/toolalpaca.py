"""The original ToolAlpaca release layout: instances ride inside their tool record.

    {<tool record fields>, "Instructions": [str], "Golden_Answers": [[{Action, Action_Input}]],
     "Instances": [{"input", "output", "Final Thought",
                    "intermediate_steps": [[[action, action_input, log], observation]]}]}

``log`` is the assistant's text for the step without its leading ``Thought:`` (as LangChain
kept it); an observation with an HTTP status is written ``Status Code: <n>. Response: <body>``,
as in the release, so the status survives the trip. Instances get no id in this layout: read
back, they are ``<tool>-ta-<n>`` (``n`` counting the tool's instances from 1).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from .. import tools as tool_io
from .common import (FINAL_THOUGHT, FormatError, call_step, checked_instance, final_of, final_thought,
                     input_text, new_instance, record_for, records_by_name, slug, text_step)
from ..react import parse_step

_STATUS = re.compile(r"\AStatus Code: (\d{3})\. Response: (.*)\Z", re.S)


# --------------------------------------------------------------------------------------------
# project -> ToolAlpaca
# --------------------------------------------------------------------------------------------
def _log(step: dict) -> str:
    if not step.get("action"):
        return step.get("text") or ""
    return f"{(step.get('thought') or '').strip()}\nAction: {step['action']}\nAction Input: {input_text(step['action_input'])}"


def _observation(step: dict) -> str:
    body = "" if step.get("observation") is None else str(step["observation"])
    return body if step.get("status") is None else f"Status Code: {step['status']}. Response: {body}"


def toolalpaca_instance(instance: dict, index: int | None = None) -> dict:
    """One item of a tool record's ``Instances``."""
    checked_instance(instance, index)
    final = instance.get("final")
    return {
        "input": instance["instruction"],
        "output": final["answer"] if final else "",
        "Final Thought": final_thought(final) if final else "",
        "intermediate_steps": [[[s.get("action") or "", input_text(s.get("action_input")), _log(s)], _observation(s)]
                               for s in instance["steps"]],
    }


def toolalpaca_records(instances: Iterable[dict], records) -> list[dict]:
    """The tool records (in the records' order) of the tools that have instances, each with
    its instances as ``Instructions``, ``Golden_Answers`` and ``Instances`` (replacing any it had)."""
    by_name = records_by_name(records)
    grouped: dict[str, list[tuple[int, dict]]] = {}
    for i, inst in enumerate(instances):
        where = checked_instance(inst, i)
        grouped.setdefault(record_for(inst, by_name, where)["Name"], []).append((i, inst))
    out = []
    for name, record in by_name.items():
        if name not in grouped:
            continue
        rec = tool_io.to_toolalpaca(record)
        rec["Instructions"] = [inst["instruction"] for _i, inst in grouped[name]]
        rec["Golden_Answers"] = [inst.get("golden") or [] for _i, inst in grouped[name]]
        rec["Instances"] = [toolalpaca_instance(inst, i) for i, inst in grouped[name]]
        out.append(rec)
    return out


def write_toolalpaca(path: str | Path, instances: Iterable[dict], records) -> Path:
    """A ToolAlpaca-format JSON list of the tools of ``instances``, with their Instances."""
    return tool_io.export_toolalpaca(toolalpaca_records(instances, records), path)


# --------------------------------------------------------------------------------------------
# ToolAlpaca -> project
# --------------------------------------------------------------------------------------------
def _thought(log: str) -> str:
    text = log.strip()
    if not re.match(r"(?i)thought\s*:", text):
        text = "Thought: " + text
    return parse_step(text).thought


def _step(pair: Any, where: str, field: str) -> dict:
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], (list, tuple))
            and len(pair[0]) >= 2):
        raise FormatError(where, field, "expected [[action, action_input, log], observation]")
    (action, action_input, *rest), observation = pair
    if not isinstance(observation, str):
        raise FormatError(where, f"{field}[1]", "the observation is not text")
    m = _STATUS.match(observation)
    status, observation = (int(m.group(1)), m.group(2)) if m else (None, observation)
    log = rest[0] if rest and isinstance(rest[0], str) else ""
    if not action:
        return text_step(log, observation, status)
    if not isinstance(action, str):
        raise FormatError(where, f"{field}[0][0]", "the action is not text")
    return call_step(_thought(log), action, input_text(action_input), observation, status)


def _instance(item: Any, tool: str, n: int, golden: dict[str, list], split: str) -> dict:
    iid = f"{slug(tool)}-ta-{n}"
    where = f"instance {iid!r}"
    if not isinstance(item, dict):
        raise FormatError(where, f"Instances[{n - 1}]", "not an object")
    for key in ("input", "intermediate_steps"):
        if key not in item:
            raise FormatError(where, key, "missing")
    if not isinstance(item["intermediate_steps"], list):
        raise FormatError(where, "intermediate_steps", "not a list")
    steps = [_step(pair, where, f"intermediate_steps[{k}]") for k, pair in enumerate(item["intermediate_steps"])]
    output = item.get("output") or ""
    final = final_of(output, item.get("Final Thought", FINAL_THOUGHT) or "") if output else None
    return new_instance(iid, tool, item["input"], steps, final, split=split, fmt="toolalpaca",
                        golden=golden.get(item["input"]))


def from_toolalpaca(source: str | Path | list | dict, *, split: str = "train") -> tuple[list[dict], list[dict]]:
    """(project instances, tool records) of a ToolAlpaca-format file or its parsed data. Golden
    calls come from the record's ``Golden_Answers`` (matched by instruction) when it has them,
    else from the successful calls. Records without ``Instances`` give tools but no instance."""
    if isinstance(source, (str, Path)):
        data = json.loads(Path(source).read_text(encoding="utf-8"))
        records = tool_io.records_from_toolalpaca(data, where=str(source))
    else:
        records = tool_io.records_from_toolalpaca(source)
    instances: list[dict] = []
    for rec in records:
        items = rec.get("Instances") or []
        if not isinstance(items, list):
            raise FormatError(f"tool {rec['Name']!r}", "Instances", "not a list")
        golden = {}
        if isinstance(rec.get("Instructions"), list) and isinstance(rec.get("Golden_Answers"), list):
            golden = dict(zip(rec["Instructions"], rec["Golden_Answers"]))
        instances += [_instance(item, rec["Name"], n, golden, split) for n, item in enumerate(items, 1)]
    return instances, records
