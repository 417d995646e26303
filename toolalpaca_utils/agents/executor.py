"""The tool executor: checks a call against the spec, then runs it — simulated by an LLM
(:class:`SimulatedExecutor`) or for real over HTTP (:class:`HttpExecutor`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from ..llm import LLMError
from ..openapi import describe_function, function_schemas, record_spec, response_schema, validate_arguments
from ..react import GET_DETAILS
from .protocol import ChatModel

MAX_OBSERVATION_CHARS = 600


@dataclass
class Observation:
    status: int | None          # HTTP status, or None when nothing was executed
    text: str                   # what the assistant sees
    error: str | None = None    # why the call failed, when it did

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _truncate(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [truncated {len(text) - limit} chars]"


def check_request(record: dict, action: str, args: Any) -> Observation | None:
    """Type-check a call against the spec before executing it, as the reference does; an error
    observation tells the assistant what to fix."""
    schemas = function_schemas(record_spec(record))
    if action not in schemas:
        valid = ", ".join(sorted(schemas)) + f", {GET_DETAILS}"
        return Observation(None, f"Error: {action!r} is not a valid function. Use one of: {valid}.", "unknown function")
    problems = validate_arguments(schemas[action], args)
    if problems:
        return Observation(400, "Status Code: 400. Error: invalid input: " + "; ".join(problems)[:300] +
                           ". Fix the Action Input and try again.", "invalid arguments")
    return None


def _bounded_response(schema: dict, depth: int = 0) -> dict:
    """A response schema small enough to generate within the token budget."""
    if not isinstance(schema, dict) or depth > 2:
        return {"type": "string", "maxLength": 40}
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        props = dict(list((schema.get("properties") or {}).items())[:5])
        if not props:
            return {"type": "object", "properties": {"result": {"type": "string", "maxLength": 120}},
                    "required": ["result"]}
        return {"type": "object", "properties": {k: _bounded_response(v, depth + 1) for k, v in props.items()},
                "required": list(props)}
    if t == "array":
        return {"type": "array", "items": _bounded_response(schema.get("items") or {}, depth + 1),
                "minItems": 1, "maxItems": 2}
    if t in ("integer", "number", "boolean"):
        return {"type": t}
    if "enum" in schema:
        return {"enum": schema["enum"]}
    return {"type": "string", "maxLength": 60}


@dataclass
class SimulatedExecutor:
    """An LLM plays the API: given the spec and a valid request it returns a status code and a
    JSON response constrained by the operation's response schema."""

    client: ChatModel
    statuses: tuple[int, ...] = (200, 404)
    max_tokens: int = 160

    def __call__(self, record: dict, action: str, args: dict, *, seed: int = 0) -> Observation:
        spec = record_spec(record)
        schema = {
            "type": "object",
            "properties": {"status_code": {"enum": list(self.statuses)},
                           "response": _bounded_response(response_schema(spec, action))},
            "required": ["status_code", "response"],
        }
        messages = [
            {"role": "system", "content": f"You simulate the {record['Name']} API. Reply with the status code and "
                                          "a realistic JSON response for the request."},
            {"role": "user", "content": f"Function {action}: {describe_function(spec, action)}\n"
                                        f"Request: {json.dumps(args, ensure_ascii=False)}"},
        ]
        try:
            parsed = self.client.chat(messages, schema=schema, temperature=0.3, seed=seed,
                                      max_tokens=self.max_tokens).parsed
        except LLMError as exc:
            return Observation(None, f"Error: the API did not answer ({type(exc).__name__}).", f"executor: {exc}")
        status = int(parsed["status_code"])
        body = json.dumps(parsed["response"], ensure_ascii=False)
        return Observation(status, _truncate(f"Status Code: {status}. Response: {body}"))


@dataclass
class HttpExecutor:
    """Real execution: the call goes to the tool's service over HTTP (loopback for real tools)."""

    timeout: float = 10.0

    def __call__(self, record: dict, action: str, args: dict, *, seed: int = 0) -> Observation:
        base_url = record.get("base_url")
        if not base_url:
            return Observation(None, "Error: this tool has no service to call.", "no base_url")
        path, method = record["Function_Projection"][action]
        url = base_url.rstrip("/") + path
        try:
            if method.upper() in ("GET", "DELETE"):
                resp = httpx.request(method, url, params=args, timeout=self.timeout)
            else:
                resp = httpx.request(method, url, json=args, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return Observation(None, f"Error: the API could not be reached ({type(exc).__name__}).", f"http: {exc}")
        return Observation(resp.status_code, _truncate(f"Status Code: {resp.status_code}. Response: {resp.text}"),
                           None if resp.is_success else f"http {resp.status_code}")


def executor_for(record: dict, simulated: SimulatedExecutor | None):
    """Real tools are executed for real; all others are simulated."""
    if record.get("source") == "real":
        return HttpExecutor()
    if simulated is None:
        raise ValueError(f"tool {record['Name']!r} needs a simulated executor")
    return simulated
