"""From generated functions to a ToolAlpaca record: the OpenAPI spec (built and validated by
:mod:`toolalpaca_utils.openapi`), the NL ``Functions`` text, and the real tools' records."""
from __future__ import annotations

import re

from .. import openapi
from .gates import GateFailure


def functions_text(functions: list[dict]) -> str:
    """The ToolAlpaca ``Functions`` field: a numbered, human-readable list."""
    lines = []
    for i, fn in enumerate(functions, 1):
        params = ", ".join(
            f"{p['name']} ({p['type']}, {'required' if p.get('required') else 'optional'}): {p['description']}"
            for p in fn.get("parameters") or []
        ) or "none"
        out = fn.get("output") or {}
        fields = ", ".join(f"{f['name']} ({f['type']})" for f in out.get("fields") or [])
        lines.append(
            f"{i}. {fn['name']}: {fn['description']}\n"
            f"   Parameters: {params}\n"
            f"   Output: {out.get('description', '')}" + (f" Fields: {fields}." if fields else "")
        )
    return "\n".join(lines)


def to_spec_functions(functions: list[dict]) -> list[dict]:
    """The model's function JSON → the function dicts :func:`openapi.build_spec` takes."""
    out = []
    for fn in functions:
        output = fn.get("output") or {}
        out.append({
            "name": fn.get("name", ""),
            "description": fn.get("description", ""),
            "method": str(fn.get("method") or "GET").lower(),
            "parameters": [
                {"name": p.get("name", ""), "type": p.get("type", "string"), "required": bool(p.get("required")),
                 "description": p.get("description", "")}
                for p in fn.get("parameters") or []
            ],
            "output": {
                "description": output.get("description", ""),
                "properties": [
                    {"name": f.get("name", ""), "type": f.get("type", "string"), "description": ""}
                    for f in output.get("fields") or []
                ],
            },
        })
    return out


def server_url_for(name: str) -> str:
    """A placeholder server per tool: catalogue tools are simulated, never called for real."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "tool"
    return f"https://api.example.com/{slug}"


def assemble_record(entry: dict, introduction: str, functions: list[dict]) -> tuple[dict | None, list[GateFailure]]:
    """Build and validate the spec; return the ToolAlpaca record or the ``spec_valid`` failure."""
    try:
        spec = openapi.build_spec(entry["name"], entry["description"], to_spec_functions(functions),
                                  server_url=server_url_for(entry["name"]))
        problems = openapi.validate_spec(spec)
    except Exception as exc:  # noqa: BLE001 — any failure to build is a spec failure, recorded
        return None, [GateFailure("spec_valid", f"cannot build the spec: {type(exc).__name__}: {exc}")]
    if problems:
        return None, [GateFailure("spec_valid", p) for p in problems]
    record = openapi.record_from_spec(
        spec, name=entry["name"], description=entry["description"], category=entry["category"],
        link=entry.get("link") or "", introduction=introduction, functions_text=functions_text(functions),
        source="catalogue",
    )
    return record, []


def load_real_tools(base_url: str | None = None) -> tuple[list[dict], str]:
    """The real tools' records from :mod:`toolalpaca_utils.realtools`, and a note on where they
    came from (the real tools are part of this package: failing to import them is a bug, not a
    reason to build a toolset without them)."""
    from ..realtools import real_tool_records

    records = real_tool_records(base_url=base_url)
    return records, f"{len(records)} real tools from toolalpaca_utils.realtools"
