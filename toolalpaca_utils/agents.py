"""The three agents of the simulation — user, assistant (ReAct), tool executor — and the loop
that runs them. Evaluation and STE reuse the assistant loop and the executors unchanged.

Every model call goes through an object with ``chat(messages, *, schema=None, **gen) ->
ChatResult`` (a :class:`~toolalpaca_utils.llm.ChatClient` or a
:class:`~toolalpaca_utils.llm.LocalChatModel`). Nothing the model writes can crash the loop:
bad output becomes a recorded step with an error, and the loop goes on or stops with a reason.
"""
from __future__ import annotations

import difflib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import httpx

from .llm import LLMError, parse_json_output
from .openapi import describe_function, function_schemas, record_spec, response_schema, validate_arguments
from .react import (
    GET_DETAILS, GET_DETAILS_SCHEMA, ParsedStep, build_messages, format_action, format_final, parse_step,
    step_from_json, step_schema,
)

MAX_OBSERVATION_CHARS = 600
MAX_ERRORS = 3  # as the reference: give up after three failed calls


class ChatModel(Protocol):
    def chat(self, messages: Sequence[dict], *, schema: dict | None = None, **gen: Any): ...


# =========================================================================== user agent
PLACEHOLDER = re.compile(r"<[^>]*>|\[[^\]]*\]|\{[^}]*\}|\bX{2,}\b|\bplaceholder\b|\byour [a-z]+ here\b", re.I)


def _function_list(record: dict) -> str:
    spec = record_spec(record)
    lines = []
    for name in record["Function_Projection"]:
        summary = describe_function(spec, name).splitlines()[0]
        lines.append(f"- {summary}")
    return "\n".join(lines)


def write_instructions(client: ChatModel, record: dict, k: int, *, seed: int = 0,
                       temperature: float = 0.8, max_chars: int = 200) -> list[str]:
    """The user agent's instruction-first strategy: ``k`` requests for one tool, written as a
    numbered list in plain text (grammar-constrained decoding costs 2–4× per token with
    llama.cpp, and a list is easy to parse). May return fewer than ``k``; raises LLMError."""
    messages = [
        {"role": "system", "content": "You write realistic requests that people send to an assistant."},
        {"role": "user", "content": (
            f"The assistant can use the {record['Name']} API: {record.get('Description', '')}\n"
            f"It can:\n{_function_list(record)}\n\n"
            f"Write {k} different requests a user might send that this API can answer, as a numbered list. "
            "Each request is one full sentence with concrete values (names, places, dates, numbers). Do not name "
            "the API or its functions. Do not use placeholders.\n"
            "Example of the style: 1. What will the weather be like in Lisbon on 12 May 2025?")},
    ]
    result = client.chat(messages, temperature=temperature, seed=seed, max_tokens=45 * k + 20)
    texts = parse_numbered_list(result.text, max_chars)[:k]
    for extra in range(k - len(texts)):  # a small model often stops after one or two items: ask for one at a time
        one = client.chat(_one_more_request(record, texts), temperature=temperature, seed=seed + 1 + extra,
                          max_tokens=60)
        line = next((ln for ln in one.text.splitlines() if ln.strip()), "")
        line = re.sub(r"^\s*(?:\d+[.)]|[-*•]|request:)\s*", "", line, flags=re.I).strip().strip('"').strip()
        if line:
            texts.append(line[:max_chars])
    return texts


def _one_more_request(record: dict, written: Sequence[str]) -> list[dict]:
    others = "".join(f"\n- {t}" for t in written)
    return [
        {"role": "system", "content": "You write realistic requests that people send to an assistant."},
        {"role": "user", "content": (
            f"The assistant can use the {record['Name']} API: {record.get('Description', '')}\n"
            f"It can:\n{_function_list(record)}\n\n"
            "Write one request a user might send that this API can answer: one full sentence with concrete values "
            "(names, places, dates, numbers). Do not name the API or its functions. Do not use placeholders."
            + (f" Ask something different from:{others}" if written else "") + "\nReply with the request only.")},
    ]


def parse_numbered_list(text: str, max_chars: int = 200) -> list[str]:
    """Items of a numbered or bulleted list (one per line); other lines are ignored."""
    items = []
    for line in text.splitlines():
        m = re.match(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$", line)
        if m:
            item = m.group(1).strip().strip('"').strip()
            if item:
                items.append(item[:max_chars])
    return items


def instruction_problems(text: str, record: dict, args: dict | None = None) -> list[str]:
    """Why an instruction is unusable (names the API/function, placeholders, too short).

    With ``args`` (call-first), the argument values are the user's own details: a value that
    happens to contain the API's name does not count as naming it."""
    problems = []
    low = text.lower()
    for value in (args or {}).values():
        if isinstance(value, str) and value:
            low = low.replace(value.lower(), " ")
    if len(text.split()) < 4:
        problems.append("too short")
    if PLACEHOLDER.search(text):
        problems.append("contains a placeholder")
    if re.search(r"\b(Task|Details|Request|Thought|Action|Observation)\s*:", text):
        problems.append("copies the prompt's format")
    names = [record["Name"]] + list(record["Function_Projection"])
    if any(n and n.lower() in low for n in names if len(n) > 3):
        problems.append("names the API or a function")
    return problems


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def dedupe(texts: Sequence[str], threshold: float = 0.85, against: Sequence[str] = ()) -> tuple[list[str], int]:
    """Drop near-duplicates (normalised text similarity ≥ threshold); returns (kept, n_removed)."""
    kept: list[str] = []
    seen = [normalise(t) for t in against]
    removed = 0
    for t in texts:
        n = normalise(t)
        if any(n == s or difflib.SequenceMatcher(None, n, s).ratio() >= threshold for s in seen):
            removed += 1
            continue
        kept.append(t)
        seen.append(n)
    return kept, removed


def sample_call(client: ChatModel, record: dict, rng: random.Random, *, seed: int = 0) -> tuple[str, dict]:
    """Call-first strategy, step 1: a function and schema-valid arguments for it. The model fills
    realistic values under the function's own schema; code checks them."""
    schemas = function_schemas(record_spec(record))
    name = rng.choice(sorted(schemas))
    args_schema = _bounded_args(schemas[name])
    spec = record_spec(record)
    messages = [
        {"role": "system", "content": "You give realistic example arguments for API calls, as JSON."},
        {"role": "user", "content": f"API: {record['Name']}\nFunction {name}: {describe_function(spec, name)}\n"
                                    "Give realistic values for its arguments."},
    ]
    result = client.chat(messages, schema=args_schema, temperature=0.9, seed=seed, max_tokens=80)
    args = result.parsed
    problems = validate_arguments(schemas[name], args)
    if problems:
        raise LLMError("sampled arguments break the schema: " + "; ".join(problems))
    return name, args


def _bounded_args(schema: dict) -> dict:
    """All arguments required (so every value is concrete); strings start with a letter or digit,
    hold no markup (values like ``{{1}}`` cannot be sampled) and are at most 40 characters: a
    user's detail is short, and unbounded values ran into sentences that overflowed max_tokens."""
    props = {}
    for pname, p in (schema.get("properties") or {}).items():
        p = {k: v for k, v in p.items() if k not in ("default", "description")}
        if p.get("type") == "string" and "enum" not in p:
            p["pattern"] = "^[A-Za-z0-9][A-Za-z0-9 .,'-]{0,39}$"
        props[pname] = p
    return {"type": "object", "properties": props, "required": sorted(props), "additionalProperties": False}


def write_instruction_for_call(client: ChatModel, record: dict, name: str, args: dict, *, seed: int = 0) -> str:
    """Call-first strategy, step 2: a request that needs exactly this call (plain text, one line,
    after a worked example of the mapping from details to a request)."""
    spec = record_spec(record)
    summary = describe_function(spec, name).splitlines()[0]
    details = "; ".join(f"{k} = {v}" for k, v in args.items()) or "no details"
    messages = [
        {"role": "system", "content": "You write the message a user sends to an assistant."},
        {"role": "user", "content": (
            "Turn a task and its details into the natural request of a user, in one sentence. Mention every "
            "detail value exactly as given, and never name an API or a function.\n\n"
            f"Task: {summary}\nDetails: {details}\nRequest:")},
    ]
    text = client.chat(messages, temperature=0.7, seed=seed, max_tokens=60, stop=["\n"]).text
    return text.strip().removeprefix("Request:").strip().strip('"')


def template_instruction(record: dict, name: str, args: dict) -> str:
    """A plain request built by code from the call: the call-first fallback when the user
    agent's sentence loses a value (a weak teacher often does). Recorded as such."""
    summary = describe_function(record_spec(record), name).splitlines()[0].strip().rstrip(".")
    # the request must not name the API or a function (the instruction filter's rule)
    for term in [record["Name"], *record["Function_Projection"]]:
        if len(term) > 3:
            summary = re.sub(re.escape(term), "the service", summary, flags=re.IGNORECASE)
    summary = (summary[:1].lower() + summary[1:]) if summary else "a request"
    details = ", ".join(f"{_words(k)} {v}" for k, v in args.items())
    return f"Can you help me with this: {summary}?" + (f" My details: {details}." if details else "")


def _words(identifier: str) -> str:
    """``maxResults`` / ``max_results`` -> ``max results``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", identifier).replace("_", " ").lower()


def missing_values(instruction: str, args: dict) -> list[str]:
    """Argument values that the instruction does not mention (call-first consistency check)."""
    low = normalise(instruction)
    missing = []
    for k, v in args.items():
        if isinstance(v, bool):
            continue
        if normalise(str(v)) not in low:
            missing.append(k)
    return missing


def answer_question(client: ChatModel, instruction: str, question: str, *, seed: int = 0) -> str:
    """The user agent answers the assistant's getDetails question from the conversation."""
    messages = [
        {"role": "system", "content": "You are a user talking to an assistant. Answer its question in a few words."},
        {"role": "user", "content": f"You asked: {instruction}\nThe assistant asks: {question}\n"
                                    "Give the missing detail (if you did not say it, choose a plausible value)."},
    ]
    try:
        return client.chat(messages, temperature=0.3, seed=seed, max_tokens=40).text.strip() or "I have no more details."
    except LLMError as exc:
        return f"(the user could not answer: {exc})"


# =========================================================================== executors
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


# =========================================================================== assistant loop
@dataclass
class Step:
    text: str                    # the assistant's ReAct text for this step
    thought: str
    action: str | None
    action_input: str            # JSON text
    observation: str
    status: int | None
    valid: bool                  # parsed, known function, schema-valid arguments
    error: str | None = None
    raw: str = ""                # the model's raw output (JSON in constrained mode)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Trajectory:
    steps: list[Step] = field(default_factory=list)
    final: dict | None = None        # {"text", "answer"}
    stop_reason: str = ""            # "final answer" | "max steps" | "too many errors" | "llm error: …"
    completion_tokens: int = 0
    prompt_tokens: int = 0

    def successful_calls(self) -> list[Step]:
        return [s for s in self.steps if s.action not in (None, GET_DETAILS) and s.status and 200 <= s.status < 300]


@dataclass
class ModelRequest:
    """One model call an episode is waiting for."""

    messages: list[dict]
    schema: dict | None
    gen: dict                      # seed, max_tokens, stop


FINAL_NUDGE = "You have the information you need. Reply with Thought and Final Answer for the user's request."
# The answer after a successful call. The character bounds must fit the token budget even for
# number-heavy text (~2.5 characters a token): with 420 characters in 100 tokens, one answer in
# ten was cut off mid-string and the instance lost (measured on the cpu profile).
FINAL_MAX_TOKENS = 120
# The free-text teacher's answer after a successful call, asked in a short fresh chat: shown its own
# ReAct history, the 135M model repeats its last call instead of answering (4 of 4 seeds, measured).
ANSWER_SYSTEM = "You answer a user's request from an API response."
FINAL_SCHEMA = {"type": "object", "properties": {
    "thought": {"type": "string", "maxLength": 60},
    "final_answer": {"type": "string", "minLength": 1, "maxLength": 160}},
    "required": ["thought", "final_answer"]}


class Episode:
    """The assistant's ReAct loop for one instruction, as a state machine: :meth:`request` says
    which model call comes next (None when finished), :meth:`feed` takes its result (or the
    LLMError it raised). Drivers decide how calls are made — one by one (:func:`run_assistant`)
    or many episodes per batch (:func:`run_episodes_batched`) — and get the same trajectories.

    ``forced_first`` (call-first strategy) writes the first call for the assistant. ``mode`` is
    ``free`` (parse plain text) or ``constrained`` (JSON schema per step). After the first
    successful call ``answer_after_success`` asks for the final answer; a repeat of an identical
    successful call (a weak model looping) is not executed again but answered the same way.
    The nudge that asks for the answer is not stored: the trajectory keeps call → observation →
    answer.

    ``scaffold`` (free mode, for a weak free-text teacher) changes only what the model is shown,
    never what is stored: one worked call per function (built by code from the spec, see
    :func:`demonstration_turns`) comes before the request, and the answer is asked for in a
    short chat holding only the request and the response. A call that copies a worked example's
    arguments is rejected with a corrective observation."""

    def __init__(self, record: dict, instruction: str, executor, *, mode: str = "free", max_steps: int = 3,
                 seed: int = 0, user_client: ChatModel | None = None, forced_first: tuple[str, dict] | None = None,
                 answer_after_success: bool = False, step_tokens: int = 120, system: str | None = None,
                 scaffold: bool = False):
        if mode not in ("free", "constrained"):
            raise ValueError(f"mode must be 'free' or 'constrained', got {mode!r}")
        self.record, self.instruction, self.executor = record, instruction, executor
        self.mode, self.max_steps, self.seed = mode, max_steps, seed
        self.user_client, self.answer_after_success = user_client, answer_after_success
        self.step_tokens, self.system = step_tokens, system
        self.traj = Trajectory()
        self.turns: list[tuple[str, str | None]] = []
        self.errors = 0
        self.succeeded: set[tuple[str, str]] = set()
        self.schema = step_schema(record) if mode == "constrained" else None
        self.scaffold = scaffold and mode == "free"
        self.demos = demonstration_turns(record) if self.scaffold else []
        self.demo_calls = [parse_step(m["content"]) for m in self.demos if m["role"] == "assistant"]
        self.final_pending = False
        self.done = False
        if forced_first is not None:
            name, args = forced_first
            thought = f"I need to call {name} with the details from the request."
            text = format_action(thought, name, args)
            self._act(ParsedStep("action", thought, name, args, json.dumps(args, ensure_ascii=False)), text, text)

    # ------------------------------------------------------------------ driver interface
    def request(self) -> ModelRequest | None:
        if self.done:
            return None
        messages = build_messages(self.record, self.instruction, self.turns, system=self.system)
        i = len(self.traj.steps)
        if self.final_pending and self.scaffold:
            return ModelRequest(self._answer_messages(), None, {"seed": self.seed + i, "max_tokens": FINAL_MAX_TOKENS,
                                                                "stop": ["Observation:"]})
        messages[1:1] = [dict(m) for m in self.demos]  # fresh dicts, like the rest of the chat
        if self.final_pending:
            messages.append({"role": "user", "content": FINAL_NUDGE})
            if self.mode == "constrained":
                return ModelRequest(messages, FINAL_SCHEMA, {"seed": self.seed + i, "max_tokens": FINAL_MAX_TOKENS})
            return ModelRequest(messages, None, {"seed": self.seed + i, "max_tokens": FINAL_MAX_TOKENS,
                                                 "stop": ["Observation:"]})
        if self.schema is not None:
            return ModelRequest(messages, self.schema, {"seed": self.seed + i, "max_tokens": self.step_tokens + 60})
        return ModelRequest(messages, None, {"seed": self.seed + i, "max_tokens": self.step_tokens,
                                             "stop": ["Observation:"]})

    def feed(self, result) -> None:
        if isinstance(result, LLMError):
            self.traj.completion_tokens += getattr(result, "completion_tokens", 0)
            if not getattr(result, "text", ""):  # nothing came back (server down, timeout): stop here
                self._stop(f"llm error: {result}")
                return
            raw = result.text  # garbage output: record it, tell the model, go on
            parsed, text = ParsedStep("invalid", error=f"the reply was not a valid step ({result})"), raw.strip()[:500]
        else:
            self.traj.completion_tokens += result.completion_tokens
            self.traj.prompt_tokens += result.prompt_tokens
            raw = result.text
            if result.parsed is not None:
                text, parsed = step_from_json(result.parsed)
            else:
                text, parsed = raw.strip(), parse_step(raw)
        if self.final_pending:
            if parsed.kind == "invalid" and self.mode == "free":
                parsed, text = _prose_answer(raw) or (parsed, text)
            if parsed.kind == "final":
                self._finish(text, parsed)
            else:
                self._stop(f"no final answer after the call ({parsed.error or 'another action'})")
            return
        if parsed.kind == "final":
            self._finish(text, parsed)
        elif parsed.kind == "action" and (parsed.action, parsed.action_input_text) in self.succeeded:
            self.final_pending = True  # looping on a call that already worked: ask for the answer
        else:
            self._act(parsed, text, raw)

    # ------------------------------------------------------------------ internals
    def _act(self, parsed: ParsedStep, text: str, raw: str) -> None:
        i = len(self.traj.steps)
        if parsed.kind == "invalid":
            obs = Observation(None, f"Error: {parsed.error}. Reply with Thought, Action and Action Input, "
                                    "or with Thought and Final Answer.", parsed.error)
            valid = False
        elif _copies_demonstration(parsed, self.demo_calls, self.instruction):
            obs = Observation(None, "Error: that Action Input copies the example's values. Use the values from "
                                    "the user's request.", "copied the example call")
            valid = False
        elif parsed.action == GET_DETAILS:
            if validate_arguments(GET_DETAILS_SCHEMA, parsed.action_input):
                obs = Observation(400, 'Error: getDetails needs {"Question": "..."}.', "invalid getDetails")
            elif self.user_client is None:
                obs = Observation(None, "Error: no user is available to answer questions.", "no user")
            else:
                obs = Observation(200, answer_question(self.user_client, self.instruction,
                                                       str(parsed.action_input["Question"]), seed=self.seed + i))
            valid = obs.error is None
        else:
            obs = check_request(self.record, parsed.action, parsed.action_input) or \
                self.executor(self.record, parsed.action, parsed.action_input, seed=self.seed + i)
            valid = obs.error is None or obs.error.startswith(("http", "executor"))
        step = Step(text, parsed.thought, parsed.action, parsed.action_input_text, obs.text, obs.status, valid,
                    obs.error, raw)
        self.traj.steps.append(step)
        self.turns.append((step.text, step.observation))
        if obs.ok and step.action != GET_DETAILS:
            self.succeeded.add((step.action, step.action_input))
        if step.error is not None:
            self.errors += 1
            if self.errors >= MAX_ERRORS:
                self._stop("too many errors")
                return
            if parsed.kind == "invalid" and i and self.traj.steps[i - 1].raw == raw:
                # the same unusable reply after being told what is wrong: a greedy model is looping
                self._stop("repeated the same invalid reply")
                return
        if self.succeeded and self.answer_after_success:
            self.final_pending = True
        elif len(self.traj.steps) >= self.max_steps:
            self._stop("max steps")

    def _answer_messages(self) -> list[dict]:
        response = next((s.observation for s in reversed(self.traj.steps) if s.action != GET_DETAILS
                         and s.status and 200 <= s.status < 300), "")
        return [{"role": "system", "content": ANSWER_SYSTEM},
                {"role": "user", "content": f"Request: {self.instruction}\nAPI response: {response}\n"
                                            "Write the answer for the user in one or two sentences."}]

    def _finish(self, text: str, parsed: ParsedStep) -> None:
        self.traj.final = {"text": text, "answer": parsed.final_answer}
        self._stop("final answer")

    def _stop(self, reason: str) -> None:
        self.traj.stop_reason = reason
        self.done = True


def demonstration_turns(record: dict, max_functions: int = 3) -> list[dict]:
    """Worked examples for a free-text teacher: per function, a request written by code and the
    ReAct call that serves it, with example values taken from the schema (an enum's first value,
    a description's "e.g. 'x'", else a placeholder). Zero-shot, the 135M model wrote a parseable
    call for 0 of 10 requests; with these turns, 2–3 of 10 (measured on two tools)."""
    turns = []
    for name, schema in sorted(function_schemas(record_spec(record)).items())[:max_functions]:
        args = _example_args(schema)
        turns += [{"role": "user", "content": template_instruction(record, name, args)},
                  {"role": "assistant", "content": format_action(f"I need to call {name}.", name, args)}]
    return turns


def _example_args(schema: dict) -> dict:
    props = schema.get("properties") or {}
    required = schema.get("required") or list(props)[:1]
    out: dict[str, Any] = {}
    for name in required:
        p = props.get(name, {})
        if p.get("enum"):
            out[name] = p["enum"][0]
        elif p.get("type") in ("number", "integer"):
            value = max(2, p.get("minimum", 2))
            out[name] = min(value, p["maximum"]) if "maximum" in p else value
        elif p.get("type") == "boolean":
            out[name] = True
        elif p.get("type") in ("array", "object"):
            out[name] = [] if p.get("type") == "array" else {}
        else:
            example = re.search(r"e\.g\.,? ['\"]([^'\"]{1,30})['\"]", p.get("description") or "")
            out[name] = example.group(1) if example else "example"
    return out


def _copies_demonstration(parsed: ParsedStep, calls: list[ParsedStep], instruction: str) -> bool:
    """The call repeats a worked example's arguments word for word, and the request does not
    itself hold those values (a weak model copying instead of reading the request)."""
    return any(c.action == parsed.action and c.action_input == parsed.action_input and c.action_input
               and missing_values(instruction, c.action_input) for c in calls)


def _prose_answer(raw: str) -> tuple[ParsedStep, str] | None:
    """Asked for the answer, a free-text model often writes it as plain prose, without the
    "Final Answer:" label: that prose is the answer (a reply that still calls a tool is not)."""
    body = re.sub(r"^\s*Thought:\s*", "", raw.strip())
    if not body or re.search(r"\bAction( Input)?\s*:|Observation:", body):
        return None
    answer, thought = " ".join(body.split())[:400], "I now know the answer."
    return ParsedStep("final", thought, final_answer=answer), format_final(thought, answer)


def drive(client: ChatModel, episode: Episode) -> Trajectory:
    """Run an episode to its end, one model call at a time."""
    while (req := episode.request()) is not None:
        try:
            result = client.chat(req.messages, schema=req.schema, **req.gen)
        except LLMError as exc:
            result = exc
        episode.feed(result)
    return episode.traj


def run_assistant(client: ChatModel, record: dict, instruction: str, executor, *,
                  user_client: ChatModel | None = None, **options) -> Trajectory:
    """Run one episode (see :class:`Episode` for the options) with ``client``."""
    return drive(client, Episode(record, instruction, executor, user_client=user_client or client, **options))


def run_episodes_batched(model, episodes: Sequence[Episode], *, progress: bool = False,
                         workers: int = 1) -> list[Trajectory]:
    """Drive many episodes with a batched model (``chat_batch``, e.g. LocalChatModel): at each
    round every unfinished episode's next call goes into one batch per generation setting.
    ``workers`` episodes at a time then take their results (and call their tools: a simulated
    tool is an LLM call, so this is where a teacher with several replicas helps)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    bar = tqdm(total=len(episodes), disable=not progress, desc="episodes")
    pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def feed(pair: tuple) -> None:
        pair[0].feed(pair[1])

    try:
        _batched_rounds(model, episodes, bar, pool, feed)
    finally:
        if pool is not None:
            pool.shutdown()
        bar.close()
    return [ep.traj for ep in episodes]


def _batched_rounds(model, episodes: Sequence[Episode], bar, pool, feed) -> None:
    while True:
        pending = [(ep, req) for ep in episodes if (req := ep.request()) is not None]
        if not pending:
            break
        groups: dict[tuple, list] = {}
        for ep, req in pending:
            key = (json.dumps(req.schema, sort_keys=True) if req.schema else None,
                   json.dumps({k: v for k, v in req.gen.items() if k != "seed"}, sort_keys=True))
            groups.setdefault(key, []).append((ep, req))
        for items in groups.values():
            gen = {k: v for k, v in items[0][1].gen.items() if k != "seed"}
            try:
                results = model.chat_batch([req.messages for _, req in items], **gen)
            except LLMError as exc:
                results = [exc] * len(items)
            fed = []
            for (ep, req), res in zip(items, results):
                if req.schema is not None and not isinstance(res, LLMError):
                    try:
                        res.parsed = parse_json_output(res.text, req.schema, res.completion_tokens)
                    except LLMError as exc:
                        res = exc
                fed.append((ep, res))
            was_done = [ep.done for ep, _ in fed]
            if pool is None:
                for pair in fed:
                    feed(pair)
            else:
                list(pool.map(feed, fed))  # re-raises an episode's exception here
            bar.update(sum(ep.done and not before for (ep, _), before in zip(fed, was_done)))
