"""A small OpenAI-compatible stand-in for a vLLM server started with ``--enable-lora``, for the
tests of the gpu profile's student path (:func:`toolalpaca_utils.llm.open_student` with an http
endpoint).

``python tests/vllm_standin.py --port N --log FILE [--base MODEL] [--lora-modules NAME=PATH ...]
[--no-runtime-lora]`` serves on 127.0.0.1 with FastAPI + uvicorn:

* ``GET /v1/models``: the base model and every LoRA name registered so far (vLLM lists each
  adapter as a model whose ``parent`` is the base);
* ``POST /v1/load_lora_adapter`` (absent with ``--no-runtime-lora``, as in vLLM without
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``): ``{"lora_name", "lora_path"}``; 400 when a field is
  missing, the name is already loaded (vLLM's wording) or the path holds no ``adapter_config.json``;
* ``POST /v1/chat/completions``: 404 with an OpenAI-style error for a model it does not serve;
  a request with ``response_format`` ``json_schema`` gets a JSON object valid for the schema (for
  a ReAct step schema: the first ``anyOf`` branch binding an ``action`` const, its ``action_input``
  filled with minimal values; once the chat holds an observation, the ``final_answer`` branch);
  a free request gets a ReAct step naming the tool's first function with ``Action Input: {}``,
  or, after an observation, a final answer; ``json_object`` (the llama.cpp dialect's form, whose
  ``schema`` vLLM does not enforce) gets ``{}``.

Every request (path and JSON body) is appended to the ``--log`` JSONL file as it arrives.
"""

import argparse
import json
import re
from pathlib import Path

OBSERVATION = "Observation:"
FIRST_FUNCTION = re.compile(r"^Functions:\n\s*([A-Za-z_][\w.-]*):", re.M)
FINAL_TEXT = "Thought: I now know the answer\nFinal Answer: done."


def minimal(schema: dict):
    """The smallest simple value valid for ``schema`` (the subset of JSON schema tool specs use)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return minimal(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: minimal(props.get(name, {})) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal(schema.get("items") or {"type": "string"}) for _ in range(schema.get("minItems", 0))]
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1)
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    fmt = schema.get("format")
    text = {"date": "2025-01-01", "date-time": "2025-01-01T00:00:00Z", "time": "00:00:00"}.get(fmt) or \
        "x" * max(1, schema.get("minLength", 1))
    return text[:schema["maxLength"]] if "maxLength" in schema else text


def has_observation(messages: list[dict]) -> bool:
    return any(m.get("role") == "user" and str(m.get("content", "")).startswith(OBSERVATION) for m in messages)


def structured_reply(schema: dict, messages: list[dict]) -> dict:
    """A value valid for ``schema``: for a step schema, a call of the first function, or the final
    answer once a call has been observed."""
    branches = schema.get("anyOf") or []
    calls = [b for b in branches if "const" in ((b.get("properties") or {}).get("action") or {})]
    finals = [b for b in branches if "final_answer" in (b.get("properties") or {})]
    if finals and (has_observation(messages) or not calls):
        value = minimal(finals[0])
        value.update(thought="I now know the answer", final_answer="done.")
        return value
    if calls:
        branch = calls[0]
        value = minimal(branch)
        value["thought"] = f"I call {value['action']}."
        return value
    return minimal(schema)


def free_reply(messages: list[dict]) -> str:
    """A ReAct step as text: the tool's first function, or the final answer after an observation."""
    system = messages[0].get("content", "") if messages and messages[0].get("role") == "system" else ""
    match = FIRST_FUNCTION.search(system)
    if has_observation(messages) or not match:
        return FINAL_TEXT
    return f"Thought: I need to call {match.group(1)}.\nAction: {match.group(1)}\nAction Input: {{}}"


def reply_for(body: dict) -> str:
    messages = body.get("messages") or []
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps(structured_reply(fmt["json_schema"]["schema"], messages))
    if fmt.get("type") == "json_object":  # any JSON object: vLLM enforces no schema in this form
        return "{}"
    return free_reply(messages)


def error(status: int, message: str, kind: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": status}},
                        status_code=status)


def create_app(base: str, log_path: str, lora_modules: dict[str, str], runtime_lora: bool = True):
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse

    app = FastAPI()
    loras: dict[str, str] = dict(lora_modules)

    def log(path: str, body) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps({"path": path, "body": body}) + "\n")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        log("/v1/models", None)
        cards = [{"id": base, "object": "model", "owned_by": "vllm", "root": base, "parent": None}]
        cards += [{"id": name, "object": "model", "owned_by": "vllm", "root": path, "parent": base}
                  for name, path in loras.items()]
        return {"object": "list", "data": cards}

    if runtime_lora:
        @app.post("/v1/load_lora_adapter")
        async def load_lora_adapter(request: Request):
            body = json.loads(await request.body())
            log("/v1/load_lora_adapter", body)
            name, path = body.get("lora_name"), body.get("lora_path")
            if not name or not path:
                return error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
            if name in loras:
                return error(400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput")
            if not (Path(path) / "adapter_config.json").is_file():
                return error(400, f"No adapter found for {path} (no adapter_config.json)", "BadRequestError")
            loras[name] = path
            return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

        @app.post("/v1/unload_lora_adapter")
        async def unload_lora_adapter(request: Request):
            body = json.loads(await request.body())
            log("/v1/unload_lora_adapter", body)
            if loras.pop(body.get("lora_name"), None) is None:
                return error(404, f"The lora adapter '{body.get('lora_name')}' cannot be found.", "NotFoundError")
            return PlainTextResponse(f"Success: LoRA adapter '{body['lora_name']}' removed successfully.")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):  # (no postponed annotations here: FastAPI reads this one)
        body = json.loads(await request.body())
        log("/v1/chat/completions", body)
        model = body.get("model")
        if model != base and model not in loras:
            return error(404, f"The model `{model}` does not exist.", "NotFoundError")
        text = reply_for(body)
        return {
            "id": "vllm-standin", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(text) // 4, "total_tokens": 10 + len(text) // 4},
        }

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True, help="JSONL file every request is appended to")
    parser.add_argument("--base", default="HuggingFaceTB/SmolLM2-135M-Instruct", help="the served base model name")
    parser.add_argument("--lora-modules", nargs="*", default=[], metavar="NAME=PATH",
                        help="adapters served from the start, as vLLM's --lora-modules")
    parser.add_argument("--no-runtime-lora", action="store_true",
                        help="no /v1/load_lora_adapter (vLLM without VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)")
    args = parser.parse_args()
    modules = dict(m.split("=", 1) for m in args.lora_modules)
    app = create_app(args.base, args.log, modules, runtime_lora=not args.no_runtime_lora)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
