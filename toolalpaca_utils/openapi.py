"""OpenAPI specs as tool documentation: build, validate, describe, and check calls against them.

Every tool in the project — LLM-written catalogue tools, real tools served by
:mod:`toolalpaca_utils.realtools`, and imported ToolAlpaca files — ends up as one *tool record*
in the ToolAlpaca format (see ``shared/reference/toolalpaca.md``)::

    Name, Description, Link, Category, Introduction, Functions, Documentation (spec as JSON text),
    NLDocumentation, Function_Description, Function_Projection

plus two project fields: ``source`` ("catalogue", "real" or "import") and ``base_url`` (real tools).
Code, never the LLM, derives everything after ``Documentation`` from the spec.
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any, Iterable

import jsonschema

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
CAMEL_CASE = re.compile(r"^[a-z][a-zA-Z0-9]*$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")

RECORD_FIELDS = (
    "Name", "Description", "Link", "Category", "Introduction", "Functions", "Documentation",
    "NLDocumentation", "Function_Description", "Function_Projection",
)


class SpecError(ValueError):
    """A spec that cannot serve as tool documentation."""


# --------------------------------------------------------------------------------------------
# building a spec from structured function descriptions (the toolset stage's LLM output)
# --------------------------------------------------------------------------------------------
def build_spec(
    name: str,
    description: str,
    functions: list[dict],
    *,
    server_url: str = "https://api.example.com",
) -> dict:
    """Assemble an OpenAPI 3.0 spec from function dicts.

    A function dict is ``{"name", "description", "method"?, "parameters": [{"name", "type",
    "required", "description", "enum"?, "minimum"?, "maximum"?}], "output": {"description",
    "properties"?: [{"name","type","description", "enum"?, "items"?}]}}``. GET functions take query parameters; POST/PUT/PATCH
    functions take a JSON body, as REST APIs do.
    """
    paths: dict[str, dict] = {}
    for fn in functions:
        method = str(fn.get("method") or "get").lower()
        method = method if method in HTTP_METHODS else "get"
        paths.setdefault("/" + _kebab(fn["name"]), {})[method] = _build_operation(fn, method)
    return {
        "openapi": "3.0.3",
        "info": {"title": name, "version": "1.0.0", "description": description},
        "servers": [{"url": server_url}],
        "paths": paths,
    }


def _build_operation(fn: dict, method: str) -> dict:
    """One function of :func:`build_spec` as an OpenAPI operation: query parameters (GET, DELETE) or
    a JSON body, and its 200 response schema."""
    params_schema = {"type": "object", "properties": {}, "required": []}
    for p in fn.get("parameters") or []:
        params_schema["properties"][p["name"]] = _parameter_schema(p)
        if p.get("required"):
            params_schema["required"].append(p["name"])
    op: dict[str, Any] = {
        "operationId": fn["name"],
        "summary": fn.get("description", ""),
        "description": fn.get("description", ""),
    }
    if method in ("get", "delete"):
        op["parameters"] = [
            {
                "name": pname,
                "in": "query",
                "required": pname in params_schema["required"],
                "description": pschema.get("description", ""),
                "schema": {k: v for k, v in pschema.items() if k != "description"},
            }
            for pname, pschema in params_schema["properties"].items()
        ]
    elif params_schema["properties"]:
        body = {k: v for k, v in params_schema.items() if k != "required" or v}
        op["requestBody"] = {"required": bool(params_schema["required"]),
                             "content": {"application/json": {"schema": body}}}
    output = fn.get("output") or {}
    response_schema: dict[str, Any] = {"type": "object", "properties": {}}
    for prop in output.get("properties") or []:
        response_schema["properties"][prop["name"]] = _output_schema(prop)
    op["responses"] = {
        "200": {
            "description": output.get("description") or "Successful response",
            "content": {"application/json": {"schema": response_schema}},
        },
        "400": {"description": "Invalid request"},
    }
    return op


def _parameter_schema(p: dict) -> dict:
    """One parameter's JSON schema: its type (an array of strings), enum and bounds when given."""
    schema: dict[str, Any] = {"type": p.get("type") if p.get("type") in JSON_TYPES else "string"}
    if schema["type"] == "array":
        schema["items"] = {"type": "string"}
    if p.get("enum"):
        schema["enum"] = list(p["enum"])
    for bound in ("minimum", "maximum"):
        if bound in p:
            schema[bound] = p[bound]
    schema["description"] = p.get("description", "")
    return schema


def _output_schema(prop: dict) -> dict:
    """One response field's JSON schema: an array holds ``items`` (objects unless given), and a
    field may carry an enum."""
    ptype = prop.get("type") if prop.get("type") in JSON_TYPES else "string"
    schema: dict[str, Any] = {"type": ptype, "description": prop.get("description", "")}
    if ptype == "array":
        schema["items"] = prop.get("items") or {"type": "object"}
    if prop.get("enum"):
        schema["enum"] = list(prop["enum"])
    return schema


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower() or "op"


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def validate_spec(spec: Any) -> list[str]:
    """Problems that make ``spec`` unusable, as readable strings; empty when it is valid.

    Uses openapi-spec-validator (3.0 and 3.1), then the project's own needs: every operation
    has a unique operationId.
    """
    from openapi_spec_validator import validate

    if not isinstance(spec, dict):
        return [f"spec is {type(spec).__name__}, not a JSON object"]
    try:
        validate(spec)
    except Exception as exc:  # the validator raises several exception types
        message = getattr(exc, "message", None) or str(exc)
        return [f"openapi-spec-validator: {message.splitlines()[0][:300]}"]
    problems = []
    seen: set[str] = set()
    for path, method, op in iter_operations(spec):
        op_id = op.get("operationId")
        if not op_id:
            problems.append(f"{method.upper()} {path} has no operationId")
        elif op_id in seen:
            problems.append(f"duplicate operationId {op_id!r}")
        seen.add(op_id or "")
    if not seen:
        problems.append("spec has no operations")
    return problems


def iter_operations(spec: dict) -> Iterable[tuple[str, str, dict]]:
    for path, item in (spec.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield path, method, op


# --------------------------------------------------------------------------------------------
# schemas of a function's arguments and response
# --------------------------------------------------------------------------------------------
def resolve_refs(node: Any, spec: dict, _depth: int = 0) -> Any:
    """Inline local ``$ref``s (bounded depth: recursive schemas become plain objects)."""
    if _depth > 12:
        return {"type": "object"}
    if isinstance(node, dict):
        if "$ref" in node and isinstance(node["$ref"], str) and node["$ref"].startswith("#/"):
            target: Any = spec
            for part in node["$ref"][2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            return resolve_refs(target, spec, _depth + 1)
        return {k: resolve_refs(v, spec, _depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_refs(v, spec, _depth + 1) for v in node]
    return node


def _simplify(schema: dict) -> dict:
    """Collapse FastAPI's ``anyOf: [X, {type: null}]`` for optional values into ``X``."""
    schema = dict(schema)
    options = schema.get("anyOf")
    if isinstance(options, list):
        non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if len(non_null) == 1:
            schema.pop("anyOf")
            schema = {**non_null[0], **{k: v for k, v in schema.items() if k in ("description", "default", "title")}}
    schema.pop("title", None)
    return schema


def function_schemas(spec: dict) -> dict[str, dict]:
    """JSON schema of the arguments object of every operation, keyed by operationId.

    Query/path parameters and JSON-body properties become properties of one flat object, which
    is how the assistant writes an Action Input.
    """
    out: dict[str, dict] = {}
    for _path, _method, op in iter_operations(spec):
        op = resolve_refs(op, spec)
        props: dict[str, dict] = {}
        required: list[str] = []
        for p in op.get("parameters") or []:
            if not isinstance(p, dict) or p.get("in") not in ("query", "path") or "name" not in p:
                continue
            schema = _simplify(p.get("schema") or {"type": "string"})
            if p.get("description") and "description" not in schema:
                schema["description"] = p["description"]
            props[p["name"]] = schema
            if p.get("required"):
                required.append(p["name"])
        body = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get("schema")
        if isinstance(body, dict) and isinstance(body.get("properties"), dict):
            for name, schema in body["properties"].items():
                props[name] = _simplify(schema if isinstance(schema, dict) else {})
            required += [r for r in body.get("required") or [] if r in body["properties"]]
        out[op.get("operationId", "")] = {
            "type": "object", "properties": props, "required": required, "additionalProperties": False,
        }
    return out


def response_schema(spec: dict, operation_id: str) -> dict:
    """The JSON schema of the 2xx response of an operation ({} when the spec gives none)."""
    for _path, _method, op in iter_operations(spec):
        if op.get("operationId") != operation_id:
            continue
        for code, resp in (op.get("responses") or {}).items():
            if str(code).startswith("2"):
                content = (resolve_refs(resp, spec).get("content") or {}).get("application/json") or {}
                return content.get("schema") or {}
    return {}


def validate_arguments(schema: dict, args: Any) -> list[str]:
    """Type-check an Action Input against a function's argument schema, as the reference does
    before "executing" a call. Returns readable problems; empty when the call is valid."""
    if not isinstance(args, dict):
        return [f"Action Input must be a JSON object, got {type(args).__name__}"]
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(args), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.path) or "input"
        problems.append(f"{where}: {err.message}")
    return problems


# --------------------------------------------------------------------------------------------
# documentation derived from the spec
# --------------------------------------------------------------------------------------------
def _type_text(schema: dict) -> str:
    if "enum" in schema:
        return "One of: " + ", ".join(str(v) for v in schema["enum"])
    t = schema.get("type", "string")
    if t == "array":
        return f"array of {_type_text(schema.get('items') or {})}"
    return str(t)


def _structure_text(schema: dict, depth: int = 0) -> str:
    if depth > 3 or not isinstance(schema, dict):
        return "any"
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        inner = ", ".join(f"{k}: {_structure_text(v, depth + 1)}" for k, v in (schema.get("properties") or {}).items())
        return "Object{" + inner + "}"
    if t == "array":
        return "Array[" + _structure_text(schema.get("items") or {}, depth + 1) + "]"
    return _simplify(schema).get("type", "any") if isinstance(schema, dict) else "any"


def _operation(spec: dict, operation_id: str) -> dict:
    return next(op for _p, _m, op in iter_operations(spec) if op.get("operationId") == operation_id)


def function_summary(spec: dict, operation_id: str) -> str:
    """The line a function's documentation opens with (its summary, else its description)."""
    op = _operation(spec, operation_id)
    return " ".join(str(op.get("summary") or op.get("description") or "").split())


def describe_function(spec: dict, operation_id: str) -> str:
    """One function's documentation, in the ToolAlpaca layout (summary, parameters, output)."""
    op = _operation(spec, operation_id)
    schema = function_schemas(spec)[operation_id]
    params = {}
    for name, p in schema["properties"].items():
        flag = "Required" if name in schema["required"] else "Optional"
        params[name] = f"{flag}. {_type_text(p)}. {p.get('description', '')}".strip()
    resp_desc = next(
        (str(r.get("description", "")) for c, r in (op.get("responses") or {}).items() if str(c).startswith("2")),
        "",
    )
    summary = op.get("summary") or op.get("description") or ""
    return (
        f"{summary}\n"
        f"Parameters: {json.dumps(params, ensure_ascii=False)}\n"
        f"Output: {resp_desc}\n"
        f" - Format: application/json\n"
        f" - Structure: {_structure_text(response_schema(spec, operation_id))}"
    )


def nl_documentation(spec: dict) -> str:
    """The whole tool's NL documentation: one block per function."""
    return "\n\n".join(
        f"{op['operationId']}: {describe_function(spec, op['operationId'])}"
        for _p, _m, op in iter_operations(spec)
        if op.get("operationId")
    )


def record_from_spec(
    spec: dict,
    *,
    name: str,
    description: str,
    category: str,
    link: str = "",
    introduction: str | None = None,
    functions_text: str | None = None,
    source: str = "catalogue",
    base_url: str | None = None,
) -> dict:
    """A ToolAlpaca-format tool record whose derived fields all come from ``spec``."""
    problems = validate_spec(spec)
    if problems:
        raise SpecError(f"{name}: " + "; ".join(problems))
    ops = [op for _p, _m, op in iter_operations(spec)]
    projection = {op["operationId"]: [p, m.upper()] for p, m, op in iter_operations(spec)}
    fn_desc = {op["operationId"]: describe_function(spec, op["operationId"]) for op in ops}
    components = (spec.get("components") or {}).get("schemas") or {}
    fn_desc["components"] = json.dumps(components, ensure_ascii=False) if components else ""
    if functions_text is None:
        functions_text = "\n".join(
            f"{i}. {op['operationId']}: {op.get('summary') or op.get('description', '')}" for i, op in enumerate(ops, 1)
        )
    if introduction is None:
        introduction = f"{name}: {description}"
    return {
        "Name": name,
        "Description": description,
        "Link": link,
        "Category": category,
        "Introduction": introduction,
        "Functions": functions_text,
        "Documentation": json.dumps(spec, ensure_ascii=False),
        "NLDocumentation": nl_documentation(spec),
        "Function_Description": fn_desc,
        "Function_Projection": projection,
        "source": source,
        "base_url": base_url,
    }


def record_spec(record: dict) -> dict:
    """The parsed OpenAPI spec of a tool record."""
    doc = record["Documentation"]
    return copy.deepcopy(doc) if isinstance(doc, dict) else json.loads(doc)


def record_functions(record: dict) -> list[str]:
    """Function names of a tool record, in spec order."""
    return [k for k in record["Function_Projection"]]
