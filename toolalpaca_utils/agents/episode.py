"""The assistant's episode: one instruction's ReAct loop as a state machine (:class:`Episode`)
and what it records (:class:`Step`, :class:`Trajectory`) or asks for (:class:`ModelRequest`)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..llm import LLMError
from ..openapi import function_schemas, function_summary, record_spec, validate_arguments
from ..react import (
    GET_DETAILS, GET_DETAILS_SCHEMA, MAX_THOUGHT_CHARS, ParsedStep, build_messages, format_action, parse_step,
    step_from_json, step_schema,
)
from ..formats.chat_reply import parse_chat_reply
from ..formats.common import tool_schemas
from ..saying import readings
from .chat_prompt import CHAT_FINAL_NUDGE, CHAT_STOP, Renderer, chat_messages, check_chat_options
from .executor import Observation, check_request
from .protocol import ChatModel
from .scaffold import _copies_demonstration, _prose_answer, demonstration_turns
from .user import answer_question

MAX_ERRORS = 3  # as the reference: give up after three failed calls


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
    prompt: str | None = None      # chat format: ``messages`` rendered to text, for a raw completion


FINAL_NUDGE = "You have the information you need. Reply with Thought and Final Answer for the user's request."
RETRY_HINT = {"react": "Reply with Thought, Action and Action Input, or with Thought and Final Answer.",
              "chat": 'Call a function with <tool_call>{"name": ..., "arguments": {...}}</tool_call>, '
                      "or answer the user."}
# The answer after a successful call. The character bounds must fit the token budget even for
# number-heavy text (~2.5 characters a token): with 420 characters in 100 tokens, one answer in
# ten was cut off mid-string and the instance lost (measured on the cpu profile).
FINAL_MAX_TOKENS = 120
# The free-text teacher's answer after a successful call, asked in a short fresh chat: shown its own
# ReAct history, the 135M model repeats its last call instead of answering (4 of 4 seeds, measured).
ANSWER_SYSTEM = "You answer a user's request from an API response."
# The thought before every answer the corpus holds (the teacher's or the verbaliser's): one fixed
# sentence, so a student's "Thought:" never says "I need to call …" and then answers (the 135M
# teacher did so in 62 of its 131 kept answers; cpu, seed 0). The corpus stores it in place of the
# teacher's own: held to it as a const, the teacher wrote empty answers ("You've got it!"): 15 of 575
# kept, against 79 with a thought of its own (cpu, seed 0, 2026-12-07).
ANSWER_THOUGHT = "I have the response and can answer."
FINAL_SCHEMA = {"type": "object", "properties": {
    "thought": {"type": "string", "maxLength": 60},
    "final_answer": {"type": "string", "minLength": 1, "maxLength": 160}},
    "required": ["thought", "final_answer"]}


# The thought before a call code writes (call-first): the documentation line of the function that
# fits the request, so a student chooses a function by reading its documentation and names it in the
# step's ``action`` (a const under constrained decoding), not in free text where a 135M model invents
# names ("I need to call getCurrencyConverter"). benchmarks/thought_lever.py (cpu, seed 0): against
# NAMED_THOUGHT, unseen simulated overall 19.0 -> 42.9 on the same corpus rewritten (38.1 on one
# regenerated with it), real overall 10.0 either way (20.0 grounded on the rewrite).
CALL_THOUGHT = "The request needs this: {summary}"
NAMED_THOUGHT = "I need to call {name} with the details from the request."  # a function without a summary


def call_thought(record: dict, name: str) -> str:
    """The thought before a call of ``name`` that code writes (:data:`CALL_THOUGHT`)."""
    summary = function_summary(record_spec(record), name)
    if not summary:
        return NAMED_THOUGHT.format(name=name)
    return CALL_THOUGHT.format(summary=summary)[:MAX_THOUGHT_CHARS]


# documented decoding's thought before getDetails (asking the user), which no cpu corpus step writes.
# With the answer's thought bound and this one free, the free branch took the student's second steps
# (its top token, whatever it was, could only open that branch): 9 of 21 unseen simulated episodes and
# 3 of 30 real ones ended without an answer, overall 0.0 on both sets (cpu, seed 0, 2026-12-07)
ASK_THOUGHT = "The request leaves out a detail the call needs."


def documented_thoughts(record: dict) -> dict[str, str]:
    """Each function of ``record`` -> its :func:`call_thought`; getDetails -> :data:`ASK_THOUGHT`."""
    return {**{name: call_thought(record, name) for name in function_schemas(record_spec(record))},
            GET_DETAILS: ASK_THOUGHT}


TOOL_CHOICES = ("auto", "required")
# constrained decoding's thoughts: free (any text, up to MAX_THOUGHT_CHARS) | documented (one of the
# call-first corpus's own lines: a call's call_thought, ANSWER_THOUGHT, ASK_THOUGHT: choosing the thought
# chooses the step)
THOUGHTS = ("free", "documented")
# free: ReAct text, parsed; constrained: each step under the tool's JSON schema; grounded: constrained,
# and the first step's free string values are ones the request says (saying.readings); retrieved:
# grounded, and the first step calls the function retrieval chose (Episode's first_function)
MODES = ("free", "constrained", "grounded", "retrieved")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a ValueError naming them."""
    if mode not in MODES:
        raise ValueError(f"mode (decoding) must be one of {MODES}, got {mode!r}")
    return mode


class Episode:
    """The assistant's ReAct loop for one instruction, as a state machine: :meth:`request` says
    which model call comes next (None when finished), :meth:`feed` takes its result (or the
    LLMError it raised). Drivers decide how calls are made (:func:`drive`); many episodes run
    concurrently in threads, each its own state machine.

    ``forced_first`` (call-first strategy) writes the first call for the assistant. ``mode`` is
    ``free`` (parse plain text), ``constrained`` (JSON schema per step) or ``grounded``
    (constrained, and the first step's free string values are among those the request says,
    :func:`~toolalpaca_utils.saying.readings`, a typed parameter's among those of its kind: a weak
    model copies a value rather than invent one). After the first
    successful call ``answer_after_success`` asks for the final answer; a repeat of an identical
    successful call (a weak model looping) is not executed again but answered the same way.
    The nudge that asks for the answer is not stored: the trajectory keeps call → observation →
    answer.

    ``scaffold`` (free mode, for a weak free-text teacher) changes only what the model is shown,
    never what is stored: one worked call per function (built by code from the spec, see
    :func:`demonstration_turns`) comes before the request, and the answer is asked for in a
    short chat holding only the request and the response. A call that copies a worked example's
    arguments is rejected with a corrective observation.

    ``tool_choice`` "required" (constrained mode; as OpenAI's ``tool_choice``): the first step must
    be a call of one of the tool's functions (neither a final answer nor ``getDetails``, which asks
    the user instead), for sets in which every request needs a tool; free text is parsed as
    written. ``schemas`` (constrained mode): the (first, later) steps' JSON schemas in place of
    the tool's own, e.g. an exploration trial's (one function, a short thought). ``thought``
    "documented" (constrained mode): the thought before a call is that function's
    :func:`call_thought`, as the call-first corpus writes it, so the model picks a function by
    picking its documentation line and the name and arguments follow it under the grammar; the
    thought before a final answer is :data:`ANSWER_THOUGHT`, as that corpus writes it too, and the
    one before getDetails :data:`ASK_THOUGHT`.

    ``mode`` "retrieved" is grounded, and the first step calls ``first_function`` (chosen outside
    the model, by :class:`~toolalpaca_utils.function_retrieval.FunctionRetriever`): the model
    writes its arguments, then goes on as in grounded mode.

    ``prompt_format`` "chat" (free mode, no scaffold): the history is the tool-calling chat the
    student was trained on (:mod:`.chat_prompt`), ``render`` turns it into the prompt text that
    :meth:`request` hands out for a raw completion, and a reply is read by
    :func:`~toolalpaca_utils.formats.parse_chat_reply`. Steps are recorded as in ReAct, their
    ``text`` being the raw reply."""

    def __init__(self, record: dict, instruction: str, executor, *, mode: str = "free", max_steps: int = 3,
                 seed: int = 0, user_client: ChatModel | None = None, forced_first: tuple[str, dict] | None = None,
                 answer_after_success: bool = False, step_tokens: int = 120, system: str | None = None,
                 scaffold: bool = False, prompt_format: str = "react", render: Renderer | None = None,
                 tool_choice: str = "auto", schemas: tuple[dict, dict] | None = None, thought: str = "free",
                 first_function: str | None = None):
        check_mode(mode)
        if (mode == "retrieved") != (first_function is not None):
            raise ValueError('mode "retrieved" and first_function go together: the first call\'s function, '
                             f"chosen by retrieval (mode {mode!r}, first_function {first_function!r})")
        if tool_choice not in TOOL_CHOICES:
            raise ValueError(f"tool_choice must be one of {TOOL_CHOICES}, got {tool_choice!r}")
        if thought not in THOUGHTS:
            raise ValueError(f"thought must be one of {THOUGHTS}, got {thought!r}")
        check_chat_options(prompt_format, mode, scaffold=scaffold, system=system)
        if prompt_format == "chat" and render is None:
            raise ValueError('prompt_format "chat" needs render (e.g. agents.chat_renderer(student_model))')
        self.prompt_format, self.render = prompt_format, render
        self.parse = parse_chat_reply if prompt_format == "chat" else parse_step
        self.tools = tool_schemas(record) if prompt_format == "chat" else []
        self.record, self.instruction, self.executor = record, instruction, executor
        self.mode, self.max_steps, self.seed = mode, max_steps, seed
        self.user_client, self.answer_after_success = user_client, answer_after_success
        self.step_tokens, self.system = step_tokens, system
        self.traj = Trajectory()
        self.turns: list[tuple[str, str | None]] = []
        self.errors = 0
        self.succeeded: set[tuple[str, str]] = set()
        self.first_schema, self.schema = self._step_schemas(record, mode, tool_choice, schemas, instruction, thought,
                                                            first_function)
        self.scaffold = scaffold and mode == "free"
        self.demos = demonstration_turns(record) if self.scaffold else []
        self.demo_calls = [parse_step(m["content"]) for m in self.demos if m["role"] == "assistant"]
        self.final_pending = False
        self.final_schema = FINAL_SCHEMA if thought == "free" else {  # the documented answer thought
            **FINAL_SCHEMA, "properties": {**FINAL_SCHEMA["properties"], "thought": {"const": ANSWER_THOUGHT}}}
        self.done = False
        if forced_first is not None:
            name, args = forced_first
            thought = call_thought(record, name)
            text = format_action(thought, name, args)
            self._act(ParsedStep("action", thought, name, args, json.dumps(args, ensure_ascii=False)), text, text)

    @staticmethod
    def _step_schemas(record: dict, mode: str, tool_choice: str, schemas: tuple[dict, dict] | None,
                      instruction: str, thought: str, first_function: str | None) -> tuple[dict | None, dict | None]:
        if mode == "free":
            return None, None
        if schemas is not None:
            return schemas
        bound = ({"thoughts": documented_thoughts(record), "answer_thought": ANSWER_THOUGHT}
                 if thought == "documented" else {})
        later = step_schema(record, **bound)
        # OpenAI's tool_choice="required": the first step calls one of the tool's own functions
        required = tool_choice == "required"
        if mode == "retrieved":  # as grounded, the one function retrieval chose
            first = step_schema(record, with_get_details=False, allow_final=False, values=readings(instruction),
                                functions=[first_function], **bound)
        elif mode == "grounded":  # later steps may pass on values a response gave: only the first is grounded
            first = step_schema(record, with_get_details=not required, allow_final=not required,
                                values=readings(instruction), **bound)
        else:
            first = step_schema(record, with_get_details=False, allow_final=False, **bound) if required else later
        return first, later

    # ------------------------------------------------------------------ driver interface
    def request(self) -> ModelRequest | None:
        if self.done:
            return None
        if self.prompt_format == "chat":
            return self._chat_request()
        messages = build_messages(self.record, self.instruction, self.turns, system=self.system)
        i = len(self.traj.steps)
        if self.final_pending and self.scaffold:
            return ModelRequest(self._answer_messages(), None, {"seed": self.seed + i, "max_tokens": FINAL_MAX_TOKENS,
                                                                "stop": ["Observation:"]})
        messages[1:1] = [dict(m) for m in self.demos]  # fresh dicts, like the rest of the chat
        if self.final_pending:
            messages.append({"role": "user", "content": FINAL_NUDGE})
            if self.mode != "free":
                return ModelRequest(messages, self.final_schema, {"seed": self.seed + i, "max_tokens": FINAL_MAX_TOKENS})
            return ModelRequest(messages, None, {"seed": self.seed + i, "max_tokens": FINAL_MAX_TOKENS,
                                                 "stop": ["Observation:"]})
        if self.schema is not None:
            schema = self.first_schema if i == 0 else self.schema
            return ModelRequest(messages, schema, {"seed": self.seed + i, "max_tokens": self.step_tokens + 60})
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
                text, parsed = raw.strip(), self.parse(raw)
        if self.final_pending:
            if parsed.kind == "invalid" and self.mode == "free" and self.prompt_format == "react":
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
    def _chat_request(self) -> ModelRequest:
        """The next call in the chat format: the chat so far (with the answer nudge when it is
        due), rendered; the turn ends at the template's end-of-turn marker."""
        messages = chat_messages(self.record, self.instruction, self.traj.steps)
        tokens = self.step_tokens
        if self.final_pending:
            messages.append({"role": "user", "content": CHAT_FINAL_NUDGE})
            tokens = FINAL_MAX_TOKENS
        gen = {"seed": self.seed + len(self.traj.steps), "max_tokens": tokens, "stop": list(CHAT_STOP)}
        return ModelRequest(messages, None, gen, prompt=self.render(messages, self.tools))

    def _act(self, parsed: ParsedStep, text: str, raw: str) -> None:
        i = len(self.traj.steps)
        if parsed.kind == "invalid":
            obs = Observation(None, f"Error: {parsed.error}. {RETRY_HINT[self.prompt_format]}", parsed.error)
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
