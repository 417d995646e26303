"""The real-tool evaluation set: hand-written instructions with golden calls, checked and executable.

Data: ``toolalpaca_utils/data/real_eval.json``, a list of
``{"id": "real-001", "tool": "<tool name>", "instruction": "...",
"golden": [{"Action": "<operationId>", "Action_Input": "<JSON text>"}]}``. All golden calls of an
item belong to its tool (ToolAlpaca evaluates one tool at a time) and every argument is explicit
(dates, years, amounts, UTC instants), so the calls are deterministic and can be executed.

``python -m toolalpaca_utils.realtools.evalset [--execute]`` prints the statistics and, with
``--execute``, runs every golden call against a freshly started server.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

EVAL_PATH = Path(__file__).resolve().parents[1] / "data" / "real_eval.json"
_ID = re.compile(r"^real-\d{3}$")


class EvalSetError(ValueError):
    """The evaluation set file is malformed (the message lists every problem)."""


def _operations(spec: dict | None = None) -> dict[str, dict[str, Any]]:
    """operationId -> {"tool", "path", "schema" (JSON schema of its arguments)}."""
    from ..openapi import function_schemas, iter_operations
    from .app import TOOLS, app_spec

    spec = spec or app_spec()
    schemas = function_schemas(spec)
    out: dict[str, dict[str, Any]] = {}
    for path, _method, op in iter_operations(spec):
        tool = next((t.name for t in TOOLS.values() if path.startswith(t.prefix + "/")), None)
        out[op["operationId"]] = {"tool": tool, "path": path, "schema": schemas[op["operationId"]]}
    return out


def check_items(items: Any, spec: dict | None = None) -> list[str]:
    """Every problem of an eval set as readable text; empty when it is valid."""
    from ..openapi import validate_arguments
    from .app import TOOLS

    if not isinstance(items, list):
        return [f"the eval set must be a JSON list, got {type(items).__name__}"]
    operations = _operations(spec)
    problems: list[str] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        where = f"item {n}"
        if not isinstance(item, dict) or set(item) != {"id", "tool", "instruction", "golden"}:
            problems.append(f"{where}: needs exactly the keys id, tool, instruction, golden")
            continue
        where = str(item["id"])
        if not isinstance(item["id"], str) or not _ID.match(item["id"]) or item["id"] in seen:
            problems.append(f"{where}: id must look like 'real-001' and be unique")
        seen.add(str(item["id"]))
        if item["tool"] not in TOOLS:
            problems.append(f"{where}: unknown tool {item['tool']!r}")
        if not isinstance(item["instruction"], str) or len(item["instruction"].strip()) < 10:
            problems.append(f"{where}: instruction must be a sentence")
        golden = item["golden"]
        if not isinstance(golden, list) or not golden:
            problems.append(f"{where}: golden must be a non-empty list of calls")
            continue
        for k, call in enumerate(golden):
            at = f"{where} call {k + 1}"
            if not isinstance(call, dict) or set(call) != {"Action", "Action_Input"}:
                problems.append(f"{at}: needs exactly the keys Action, Action_Input")
                continue
            op = operations.get(call["Action"])
            if op is None:
                problems.append(f"{at}: unknown operation {call['Action']!r}")
                continue
            if op["tool"] != item["tool"]:
                problems.append(f"{at}: {call['Action']} belongs to {op['tool']}, not {item['tool']}")
            if not isinstance(call["Action_Input"], str):
                problems.append(f"{at}: Action_Input must be JSON text")
                continue
            try:
                args = json.loads(call["Action_Input"])
            except json.JSONDecodeError as exc:
                problems.append(f"{at}: Action_Input is not JSON ({exc.msg})")
                continue
            problems += [f"{at}: {p}" for p in validate_arguments(op["schema"], args)]
    return problems


def load_real_eval(path: str | Path | None = None) -> list[dict]:
    """The evaluation set, validated (structure, known tools and operations, valid arguments)."""
    items = json.loads(Path(path or EVAL_PATH).read_text(encoding="utf-8"))
    problems = check_items(items)
    if problems:
        raise EvalSetError(f"{len(problems)} problem(s) in the real-tool eval set:\n" + "\n".join(problems[:50]))
    return items


def eval_stats(items: list[dict]) -> "Any":
    """A pandas DataFrame, one row per tool plus 'TOTAL': instructions, 1/2/3+-step counts, calls,
    and how many of the tool's operations the golden calls cover."""
    import pandas as pd

    from .app import TOOLS

    operations = _operations()
    per_tool_ops = Counter(op["tool"] for op in operations.values())
    rows = []
    for name in TOOLS:
        mine = [it for it in items if it["tool"] == name]
        steps = Counter(min(len(it["golden"]), 3) for it in mine)
        used = {c["Action"] for it in mine for c in it["golden"]}
        rows.append({"tool": name, "instructions": len(mine), "steps_1": steps[1], "steps_2": steps[2],
                     "steps_3+": steps[3], "calls": sum(len(it["golden"]) for it in mine),
                     "operations_covered": f"{len(used)}/{per_tool_ops[name]}"})
    frame = pd.DataFrame(rows).set_index("tool")
    total = frame[["instructions", "steps_1", "steps_2", "steps_3+", "calls"]].sum()
    covered = len({c["Action"] for it in items for c in it["golden"]})
    frame.loc["TOTAL"] = [*total.tolist(), f"{covered}/{len(operations)}"]
    return frame


def to_toolalpaca_eval(items: list[dict], records: list[dict]) -> list[dict]:
    """ToolAlpaca-format eval records: each tool record plus its ``Instructions`` and
    ``Golden_Answers`` (one list of {Action, Action_Input} per instruction), in record order.
    ``Instruction_Ids`` keeps the item ids alongside (extra field, ignored by ToolAlpaca tools)."""
    by_tool: dict[str, list[dict]] = {}
    for item in items:
        by_tool.setdefault(item["tool"], []).append(item)
    names = {r["Name"] for r in records}
    missing = sorted(set(by_tool) - names)
    if missing:
        raise KeyError(f"no tool record for {', '.join(missing)}; pass real_tool_records()")
    out = []
    for record in records:
        mine = by_tool.get(record["Name"])
        if not mine:
            continue
        out.append({
            **record,
            "Instructions": [it["instruction"] for it in mine],
            "Golden_Answers": [[{"Action": c["Action"], "Action_Input": c["Action_Input"]} for c in it["golden"]] for it in mine],
            "Instruction_Ids": [it["id"] for it in mine],
        })
    return out


def golden_requests(items: list[dict]) -> list[tuple[str, str, dict]]:
    """(item id, path, query params) of every golden call, ready for an HTTP GET."""
    operations = _operations()
    return [(it["id"], operations[c["Action"]]["path"], json.loads(c["Action_Input"])) for it in items for c in it["golden"]]


def execute_golden(items: list[dict], base_url: str, timeout: float = 30.0) -> list[dict]:
    """Run every golden call against a served instance; one result dict per call."""
    import httpx

    results = []
    with httpx.Client(base_url=base_url, timeout=timeout, trust_env=False) as client:
        for item_id, path, params in golden_requests(items):
            response = client.get(path, params=params)
            results.append({"id": item_id, "path": path, "params": params, "status": response.status_code,
                            "body": response.json() if response.headers.get("content-type", "").startswith("application/json") else response.text})
    return results


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Statistics (and execution) of the real-tool eval set.")
    parser.add_argument("--execute", action="store_true", help="run every golden call against a local server")
    args = parser.parse_args(argv)
    items = load_real_eval()
    print(f"{len(items)} instructions; multi-step share {sum(len(i['golden']) > 1 for i in items) / len(items):.0%}")
    print(eval_stats(items).to_string())
    if args.execute:
        from .server import serve_realtools

        with serve_realtools() as base_url:
            results = execute_golden(items, base_url)
        failed = [r for r in results if not 200 <= r["status"] < 300]
        print(f"golden calls: {len(results)}, 2xx: {len(results) - len(failed)}")
        for r in failed:
            print(f"  {r['id']} {r['path']} {r['params']} -> {r['status']} {r['body']}")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
