"""BFCL function docs as the project's tool records: the student sees a BFCL question's functions
exactly as it sees any tool (the same system prompt, the same step schema, the same argument check).

A BFCL doc is ``{"name", "description", "parameters": {"type": "dict", "properties", "required"}}``
with Python type names. Each function becomes one POST operation of an OpenAPI 3.0 spec whose JSON
body is the parameters' JSON schema (a body, not query parameters, because BFCL arguments nest:
lists of dicts, dicts of lists), then :func:`~toolalpaca_utils.openapi.record_from_spec` derives
the documentation the prompt shows, as it does for every tool.
"""
from __future__ import annotations

from typing import Any

from ..openapi import record_from_spec

# BFCL's Python type names in JSON schema terms. "any" has no JSON type: the schema leaves it open.
TYPE_MAP = {"dict": "object", "float": "number", "tuple": "array", "integer": "integer", "string": "string",
            "boolean": "boolean", "array": "array", "object": "object", "number": "number", "any": None}
# Schema keywords kept as they are; BFCL's own "optional" flag is not JSON schema ("required" says it).
KEPT = ("description", "enum", "default", "maximum", "minimum", "minItems", "maxItems", "format")
TOOL_NAME = "Python functions"
TOOL_DESCRIPTION = "functions that can be called for the user"  # neutral: the same for every category


def json_schema(node: Any) -> dict:
    """One BFCL parameter schema as OpenAPI 3.0 / JSON schema, recursively."""
    if not isinstance(node, dict):
        return {}
    out: dict[str, Any] = {k: node[k] for k in KEPT if k in node and node[k] is not None}
    bfcl_type = node.get("type")
    json_type = TYPE_MAP.get(bfcl_type, "string") if bfcl_type is not None else None
    if json_type:
        out["type"] = json_type
    if json_type == "array":
        out["items"] = json_schema(node.get("items")) if isinstance(node.get("items"), dict) else {}
    if isinstance(node.get("properties"), dict):
        out["properties"] = {name: json_schema(sub) for name, sub in node["properties"].items()}
        required = [r for r in node.get("required") or [] if r in out["properties"]]
        if required:  # OpenAPI 3.0 forbids an empty "required" list
            out["required"] = required
    if json_type == "string" and "format" in out and not isinstance(out["format"], str):
        out.pop("format")
    return out


def _operation(fn: dict) -> dict:
    body = json_schema({**(fn.get("parameters") or {}), "type": "dict"})
    body.setdefault("properties", {})
    op: dict[str, Any] = {"operationId": fn["name"], "summary": fn.get("description", ""),
                          "description": fn.get("description", ""),
                          "responses": {"200": {"description": "The call was recorded",
                                                "content": {"application/json": {"schema": {"type": "object"}}}}}}
    if body["properties"]:
        op["requestBody"] = {"required": bool(body.get("required")),
                             "content": {"application/json": {"schema": body}}}
    return op


def spec_from_functions(functions: list[dict]) -> dict:
    """An OpenAPI 3.0 spec with one POST operation per BFCL function (operationId = its name,
    dots and all: the name the student writes is the name BFCL checks)."""
    paths = {f"/{fn['name']}": {"post": _operation(fn)} for fn in functions}
    return {"openapi": "3.0.3", "info": {"title": TOOL_NAME, "version": "1.0.0", "description": TOOL_DESCRIPTION},
            "servers": [{"url": "https://bfcl.invalid"}], "paths": paths}


def record_from_functions(functions: list[dict]) -> dict:
    """The tool record of one BFCL question's functions (``source`` "bfcl", nothing to call)."""
    return record_from_spec(spec_from_functions(functions), name=TOOL_NAME, description=TOOL_DESCRIPTION,
                            category="BFCL", source="bfcl")
