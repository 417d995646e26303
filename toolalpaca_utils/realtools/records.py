"""Per-tool OpenAPI specs cut from the app's spec, and the project's tool records for them."""
from __future__ import annotations

import copy
from typing import Any, Iterator

from fastapi import FastAPI

from .app import TOOLS, app_spec


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            yield ref.rsplit("/", 1)[1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _compact_parameter(param: dict) -> dict:
    """Drop FastAPI's parameter-schema noise: ``title`` and ``anyOf: [X, null]`` of optional params.

    An optional query parameter is simply left out, so "or null" says nothing; shorter
    documentation also fits the small model's context better.
    """
    schema = dict(param.get("schema") or {})
    options = schema.get("anyOf")
    if isinstance(options, list):
        non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if len(non_null) == 1:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf",)}
            schema = {**non_null[0], **rest}
    schema.pop("title", None)
    if schema.get("default", 0) is None:
        schema.pop("default")
    schema.pop("description", None)  # repeated at parameter level
    return {**param, "schema": schema}


def tool_specs(app: FastAPI | None = None, *, base_url: str | None = None) -> dict[str, dict]:
    """One OpenAPI spec per tool: that tool's paths plus the component schemas they reference.

    With ``base_url`` each spec gets a ``servers`` entry, so it is directly callable.
    """
    full = app_spec(app)
    schemas = (full.get("components") or {}).get("schemas") or {}
    specs: dict[str, dict] = {}
    for tool in TOOLS.values():
        paths: dict[str, dict] = {}
        for path, item in full["paths"].items():
            if path.startswith(tool.prefix + "/"):
                item = copy.deepcopy(item)
                for op in item.values():
                    if isinstance(op, dict) and "parameters" in op:
                        op["parameters"] = [_compact_parameter(p) for p in op["parameters"]]
                paths[path] = item
        needed: set[str] = set()
        pending = list(_refs(paths))
        while pending:
            name = pending.pop()
            if name not in needed and name in schemas:
                needed.add(name)
                pending.extend(_refs(schemas[name]))
        spec: dict[str, Any] = {
            "openapi": full["openapi"],
            "info": {"title": tool.name, "version": full["info"].get("version", "1.0.0"), "description": tool.description},
            "tags": [{"name": tool.name, "description": tool.description}],
            "paths": paths,
            "components": {"schemas": {name: copy.deepcopy(schemas[name]) for name in sorted(needed)}},
        }
        if base_url:
            spec["servers"] = [{"url": base_url.rstrip("/")}]
        specs[tool.name] = spec
    return specs


def real_tool_records(base_url: str | None = None, app: FastAPI | None = None) -> list[dict]:
    """ToolAlpaca-format tool records (``source="real"``) for every real tool, in TOOLS order."""
    from ..openapi import record_from_spec  # imported lazily: a sibling module of the package

    specs = tool_specs(app, base_url=base_url)
    return [
        record_from_spec(specs[tool.name], name=tool.name, description=tool.description, category=tool.category,
                         link=tool.link, source="real", base_url=base_url)
        for tool in TOOLS.values()
    ]
