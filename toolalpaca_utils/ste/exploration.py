"""STE exploration: simulated trial and error on the real tools, one trial at a time.

For every tool, ``episodes`` × ``trials``. Episode *e* explores one function of the tool (STE
explores one API at a time; the functions take turns across episodes). A trial is *imagination*
(the explorer invents a request that one call of the function answers — directly, as in the
paper, or *call-first*: argument values under the function's schema, then the request that needs
them, which a weak explorer manages far better), a *trial* (the shared ReAct episode of
:mod:`toolalpaca_utils.agents`, executed for real over HTTP, at most ``max_steps`` steps, parse
errors returned as corrective observations) and a *reflection* ("did you fulfil the request?",
decoded under a Yes/No enum). *Short-term memory* puts the current episode's earlier trials
(request, calls, observations, answer, reflection) into the trial's system turn and the
imagination prompt; *long-term memory* lists every request of the tool's earlier episodes with
its Solved label when imagining, with the instruction to explore something different. Each memory
and the reflection can be switched off (:class:`ExploreConfig`); a switch removes exactly its part
of the prompts (:func:`imagination_messages`, :func:`trial_system_prompt`). Every trial is
appended to a JSONL file as it finishes, so an interrupted exploration resumes; a trial whose
explorer endpoint failed is not recorded but retried (:mod:`toolalpaca_utils.endpoint`).

What makes a request usable (:func:`request_problems`, :func:`clean_query`) lives here too:
the trial needs it, and distillation applies the same test to what it keeps.
"""
from __future__ import annotations

import random
import re
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ..agents import (Episode, HttpExecutor, drive, instruction_problems, missing_values, normalise,
                      template_instruction, typed_call)
from ..agents.requests import bank_request
from ..endpoint import EndpointPolicy, guard_endpoint
from ..llm import LLMError
from ..openapi import describe_function, function_schemas, record_spec, validate_arguments
from ..parallel import run_parallel, worker_count
from ..react import GET_DETAILS, build_messages, step_schema, system_prompt
from ..runs import append_jsonl, fingerprint, read_jsonl
from ..saying import mentioned, readings
from .common import YES_NO, clip


REFLECTION_QUESTION = "Did you fulfil the request? Answer Yes or No."
REFLECTION_SCHEMA = {
    "type": "object",
    "properties": {"fulfilled": {"enum": list(YES_NO)}},
    "required": ["fulfilled"],
    "additionalProperties": False,
}

STM_HEADER = ("Earlier in this session you handled these requests with the tool. Learn from what worked "
              "and what failed:")
LTM_HEADER = ("Requests already explored with this tool in earlier sessions, with whether they were solved. "
              "Explore something different from all of them:")
STM_IMAGINE_HINT = "Use what you learned earlier in this session, and ask for something you have not tried yet."


@dataclass
class ExploreConfig:
    """Parameters of :func:`explore` (the notebook's parameters cell mirrors them)."""

    episodes: int = 2
    trials: int = 2
    max_steps: int = 4
    mode: str = "constrained"               # "free" ReAct text, "constrained" one JSON-schema step per reply,
                                            # or "grounded": constrained, and a call's values are ones the
                                            # request says (trial_step_schema)
    answer_after_success: bool = True       # ask for the final answer right after the first 2xx call
    short_term_memory: bool = True
    long_term_memory: bool = True
    reflection: bool = True
    imagination: str = "call-first"         # "query" (STE: write the request), "call-first" (values, then request)
                                            # or "typed" (code: typed values, a request from the bank of frames)
    trial_scope: str = "function"           # "function": a trial sees (and can call) the explored function only
    rotate_functions: bool = True           # episode e explores function e mod n (else a seeded choice)
    imagine_temperature: float = 0.9
    imagine_tokens: int = 48                # budget of the request (or of the imagined call's JSON)
    phrase_temperature: float = 0.7
    step_tokens: int = 100
    tool_choice: str = "auto"               # "required": a trial's first constrained step is a call
    examples_share: float = 0.0             # typed imagination: share of values from the documentation's examples
    thought_chars: int = 80                 # bound of the thought in constrained steps
    memory_observation_chars: int = 160
    seed: int = 0

    @property
    def condition(self) -> str:
        """A short name of the ablation setting ("full", "no-ltm", "no-stm+no-reflection", …)."""
        off = [name for name, on in (("stm", self.short_term_memory), ("ltm", self.long_term_memory),
                                     ("reflection", self.reflection)) if not on]
        return "full" if not off else "+".join(f"no-{x}" for x in off)

    @property
    def requests_read_memory(self) -> bool:
        """Whether the memories can shape the imagined requests: only when the model imagines them.
        Typed imagination writes each request by code from the trial's seed, so an ablation of a
        memory leaves the requests as they were (notebook 06 skips its diversity comparison)."""
        return self.imagination != "typed"

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """What a recorded trial depends on (everything but the numbers of episodes and trials):
        :func:`explore` only resumes from trials with the same fingerprint."""
        return fingerprint({k: v for k, v in self.to_dict().items() if k not in ("episodes", "trials")})


def _label(row: dict) -> str:
    return row.get("reflection") or "unknown"


def format_trial_memory(row: dict, *, with_reflection: bool = True, observation_chars: int = 160) -> str:
    """One earlier trial as the short-term memory shows it: request, calls, observations, answer
    and (with reflection) whether the explorer judged it fulfilled."""
    lines = [f"Request: {row['query']}"]
    for s in row.get("steps") or []:
        if s.get("action"):
            lines.append(f"Action: {s['action']}\nAction Input: {s.get('action_input') or '{}'}")
        else:
            lines.append("(a reply that was not a valid step)")
        lines.append(f"Observation: {clip(s.get('observation', ''), observation_chars)}")
    answer = (row.get("final") or {}).get("answer")
    lines.append(f"Final Answer: {clip(answer, 200)}" if answer else "Final Answer: (none)")
    if with_reflection:
        lines.append(f"Fulfilled: {_label(row)}")
    return "\n".join(lines)


def short_term_block(episode_rows: Sequence[dict], cfg: ExploreConfig) -> str:
    """The short-term memory: every earlier trial of the current episode ("" when switched off or
    when the episode has just started)."""
    tried = [r for r in episode_rows if r.get("query")]  # a trial whose imagination failed tried nothing
    if not cfg.short_term_memory or not tried:
        return ""
    blocks = [f"[{i}]\n" + format_trial_memory(r, with_reflection=cfg.reflection,
                                                 observation_chars=cfg.memory_observation_chars)
              for i, r in enumerate(tried, 1)]
    return STM_HEADER + "\n" + "\n\n".join(blocks)


def long_term_block(earlier_rows: Sequence[dict], cfg: ExploreConfig) -> str:
    """The long-term memory: every request of the tool's earlier episodes, each with its Solved
    label (without reflection there is no label), and the instruction to explore elsewhere."""
    if not cfg.long_term_memory or not earlier_rows:
        return ""
    lines = [f"- {r['query']}" + (f" (Solved: {_label(r)})" if cfg.reflection else "")
             for r in earlier_rows if r.get("query")]
    return LTM_HEADER + "\n" + "\n".join(lines) if lines else ""


def scoped_record(record: dict, function: str) -> dict:
    """The tool record as a trial of one function sees it: documentation of that function only
    (STE explores one API at a time). Calls still go through the full record."""
    spec = record_spec(record)
    return {**record, "Function_Projection": {function: record["Function_Projection"][function]},
            "NLDocumentation": f"{function}: {describe_function(spec, function)}"}


def trial_system_prompt(record: dict, episode_rows: Sequence[dict], cfg: ExploreConfig,
                        function: str | None = None) -> str:
    """The system turn of a trial: the shared tool prompt (without ``getDetails``: nobody answers
    questions during exploration; with ``cfg.trial_scope == "function"`` documenting only the
    explored ``function``) plus the short-term memory."""
    shown = scoped_record(record, function) if (function and cfg.trial_scope == "function") else record
    stm = short_term_block(episode_rows, cfg)
    return system_prompt(shown, with_get_details=False) + ("\n\n" + stm if stm else "")


def trial_step_schema(record: dict, cfg: ExploreConfig, function: str | None = None, *,
                      allow_final: bool = True, query: str = "") -> dict:
    """The JSON schema of a constrained trial step: a call of the tool's functions (only of the
    explored one with function scope), or (``allow_final``) the final answer. Grounded mode: a
    call's free string values are among the ``query``'s readings (:func:`toolalpaca_utils.saying.readings`),
    and its choices (enums) among those the query names (:func:`_said_choices`)."""
    values = readings(query) if cfg.mode == "grounded" else ()
    only = [function] if function and cfg.trial_scope == "function" else None
    schema = step_schema(record, with_get_details=False, thought_chars=cfg.thought_chars, allow_final=allow_final,
                         values=values, functions=only)
    if cfg.mode == "grounded":
        schema = {"anyOf": [_said_choices(b, query) for b in schema["anyOf"]]}
    return schema


def _said_choices(branch: dict, query: str) -> dict:
    """A call branch whose enum parameters offer only the values ``query`` names; an optional one
    it names none of is left out (a weak explorer fills every option: language "en" for a joke
    nobody asked in English, and the example would teach that value). A required one it names
    none of keeps its enum: the call needs some value."""
    args = branch["properties"].get("action_input")
    if not args:
        return branch
    required, props = set(args.get("required") or []), {}
    for name, p in (args.get("properties") or {}).items():
        said = [v for v in p.get("enum") or [] if mentioned(v, query)]
        if "enum" not in p or said:
            props[name] = {**p, "enum": said} if said else p
        elif name in required:
            props[name] = p
    return {**branch, "properties": {**branch["properties"], "action_input": {**args, "properties": props}}}


IMAGINE_SYSTEM = "You invent realistic requests that people send to an assistant. You reply with one request only."
ARGS_SYSTEM = "You choose realistic example values for the arguments of API calls, as JSON."
PHRASE_SYSTEM = "You write the message a user sends to an assistant, in one sentence."
# worked examples on made-up tools (not the real ones), shown as chat turns: a tiny model follows
# a demonstrated mapping far better than a description of it
_SHOT_FUNCTIONS = (
    ("Weather", "forecasts for any city",
     'getForecast: The forecast for a city on a date. Parameters: {"city": "Required. string.", '
     '"date": "Required. string. YYYY-MM-DD"}', {"city": "Porto", "date": "2025-03-14"},
     "Will it rain in Porto on 2025-03-14?"),
    ("Library", "a book catalogue",
     'searchBooks: Find books by words in the title or author. Parameters: {"query": "Required. string.", '
     '"limit": "Optional. integer."}', {"query": "Agatha Christie", "limit": 3},
     "Find me 3 books by Agatha Christie."),
)


def _trigrams(text: str) -> set[tuple[str, ...]]:
    w = normalise(text).split()
    return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}


_SHOT_TRIGRAMS = set().union(*(_trigrams(shot[-1]) for shot in _SHOT_FUNCTIONS))


def copies_worked_example(text: str) -> bool:
    """Whether a request reuses a word trigram of the worked examples (a tiny model often
    copies "Find me 3 books by …" whatever the tool)."""
    return bool(_trigrams(text) & _SHOT_TRIGRAMS)


def function_line(record: dict, function: str) -> str:
    """A function's summary and parameters on one line (no output description)."""
    doc = describe_function(record_spec(record), function).split("\nOutput:")[0]
    return f"{function}: " + " ".join(doc.split())


def _memory_parts(episode_rows: Sequence[dict], earlier_rows: Sequence[dict], cfg: ExploreConfig) -> list[str]:
    parts = []
    stm = short_term_block(episode_rows, cfg)
    if stm:
        parts += [stm, STM_IMAGINE_HINT]
    ltm = long_term_block(earlier_rows, cfg)
    if ltm:
        parts.append(ltm)
    return parts


def _tool_task(tool: str, description: str, line: str, ask: str) -> str:
    return f"Tool: {tool} ({description})\nFunction: {line}\n{ask}"


def imagination_messages(record: dict, target_function: str | None, episode_rows: Sequence[dict],
                         earlier_rows: Sequence[dict], cfg: ExploreConfig) -> list[dict]:
    """The chat in which the explorer imagines the next trial, with the short-term memory (the
    episode so far) and the long-term memory (earlier episodes' requests with their labels).

    ``cfg.imagination == "query"`` (STE's imagination): the explorer writes the request itself,
    after two worked examples. ``"call-first"`` (for a weak explorer): it first chooses the
    values of a call of the target function — JSON under the function's schema, so they are
    concrete and typed — and :func:`phrasing_messages` then turns them into the request. Either
    way the trial only sees the request."""
    description = clip(record.get("Description", ""), 120)
    target = target_function or next(iter(record["Function_Projection"]))
    line = function_line(record, target)
    memory = _memory_parts(episode_rows, earlier_rows, cfg)
    if cfg.imagination == "call-first":
        ask = "Choose realistic values for its arguments" + (
            " for a new request, different from the requests above." if memory else ".")
        user = "\n\n".join([f"Tool: {record['Name']} ({description})\nFunction: {line}", *memory, ask])
        return [{"role": "system", "content": ARGS_SYSTEM}, {"role": "user", "content": user}]
    if cfg.imagination != "query":
        raise ValueError(f"imagination must be 'query', 'call-first' or 'typed', got {cfg.imagination!r}")
    ask = ("Write a new request for it, with concrete values (names, places, dates, numbers). "
           "Do not mention the tool or the function.")
    messages = [{"role": "system", "content": IMAGINE_SYSTEM}]
    for tool, desc, fn_line, _args, request in _SHOT_FUNCTIONS:
        messages += [{"role": "user", "content": _tool_task(tool, desc, fn_line, ask)},
                     {"role": "assistant", "content": request}]
    last = f"Tool: {record['Name']} ({description})\nFunction: {line}"
    messages.append({"role": "user", "content": "\n\n".join([last, *memory, ask])})
    return messages


def phrasing_messages(record: dict, function: str, args: dict) -> list[dict]:
    """Call-first imagination, second step: the request of a user that needs these values."""
    def task(line: str, values: dict) -> str:
        details = "; ".join(f"{k} = {v}" for k, v in values.items()) or "(no details)"
        return (f"Function: {line}\nDetails: {details}\nWrite the request of a user who needs this, mentioning "
                "every detail value exactly, without naming the tool or the function.")

    messages = [{"role": "system", "content": PHRASE_SYSTEM}]
    for _tool, _desc, fn_line, values, request in _SHOT_FUNCTIONS:
        messages += [{"role": "user", "content": task(fn_line, values)}, {"role": "assistant", "content": request}]
    messages.append({"role": "user", "content": task(function_line(record, function), args)})
    return messages


_IMAGINE_STRING = "^[A-Za-z0-9(][A-Za-z0-9 .,'()+*/^=:_-]*$"


def imagined_args_schema(function_schema: dict) -> dict:
    """The schema an imagined call is decoded under: the function's own properties and required
    list and types, strings starting with a letter or digit and free of markup (so no ``{{x}}``
    or ``<placeholder>``); lengths bounded by the token budget, not by the grammar (slow)."""
    props = {}
    for name, p in (function_schema.get("properties") or {}).items():
        # bounds are left to the real service: llama.cpp's grammar does not enforce them all, and a
        # value out of range is a realistic request whose 4xx answer is part of the exploration
        p = {k: v for k, v in p.items() if k not in ("default", "description", "title", "maxLength", "minLength",
                                                       "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum")}
        if p.get("type") == "string" and "enum" not in p and "format" not in p:
            p["pattern"] = _IMAGINE_STRING
        props[name] = p
    return {"type": "object", "properties": props, "required": list(function_schema.get("required") or []),
            "additionalProperties": False}


_QUERY_PREFIX = re.compile(r"^\s*(?:\d+[.)]\s*|[-*•]\s*|(?:new\s+)?(?:user\s+)?(?:request|query|user|question)\s*:\s*)+",
                           re.I)


def clean_query(text: str, max_chars: int = 240) -> str:
    """The request in an imagination reply: first non-empty line, without list markers,
    "Request:" prefixes or quotes."""
    for line in (text or "").splitlines():
        line = _QUERY_PREFIX.sub("", line).strip().strip('"“”\'`').strip()
        if line:
            return line[:max_chars]
    return ""


NAMES_API = "names the API or a function"


def request_problems(query: str, record: dict) -> list[str]:
    """Why a request is unusable: :func:`toolalpaca_utils.agents.instruction_problems`, except that
    a tool's name said as words ("jokes", "public holidays") may appear — only a function name or
    a compound tool name as an identifier ("UnitConverter", "unit_converter") names the API."""
    problems = [p for p in instruction_problems(query, record) if p != NAMES_API]
    if copies_worked_example(query):
        problems.append("copies the worked example")
    low = query.lower()
    joined = re.sub(r"(?<=\w)[_-](?=\w)", "", low)  # "unit_converter" is UnitConverter, "unit converter" is words
    if any(name.lower() in (joined if name == record["Name"] else low) for name in unsayable_names(record)):
        problems.append(NAMES_API)
    return problems


def unsayable_names(record: dict) -> list[str]:
    """The names a request may not say as written: the functions' and a compound tool name
    ("UnitConverter"); a tool named by ordinary words ("Cities", "public holidays") may be said, as
    people say it (a cpu run dropped 4 of its 80 typed requests for saying "public holidays")."""
    compound = len(re.findall(r"[A-Z]", record["Name"])) >= 2
    return [*record["Function_Projection"], *([record["Name"]] if compound else [])]


def reflection_messages(system: str, record: dict, query: str, traj) -> list[dict]:
    """The trial's chat (as the explorer saw it) followed by the reflection question."""
    turns = [(s.text, s.observation) for s in traj.steps]
    if traj.final:
        turns.append((traj.final["text"], None))
    return build_messages(record, query, turns, system=system) + [{"role": "user", "content": REFLECTION_QUESTION}]


def _count(tokens: dict, res) -> None:
    tokens["prompt"] += res.prompt_tokens
    tokens["completion"] += res.completion_tokens


def explored_function(record: dict, episode: int, cfg: ExploreConfig) -> str:
    """The function an episode explores: the tool's functions in turn (or a seeded choice)."""
    functions = list(record["Function_Projection"])
    if cfg.rotate_functions:
        return functions[episode % len(functions)]
    return random.Random(trial_seed(cfg, record["Name"], episode, 0)).choice(functions)


def trial_seed(cfg: ExploreConfig, tool: str, episode: int, trial: int) -> int:
    """A stable per-trial seed: the same in every ablation condition, so conditions differ only
    by their prompts."""
    return cfg.seed * 100_003 + zlib.crc32(f"{tool}/{episode}/{trial}".encode()) % 100_000


def run_trial(client, record: dict, episode: int, trial: int, episode_rows: Sequence[dict],
              earlier_rows: Sequence[dict], cfg: ExploreConfig, *, executor=None) -> dict:
    """Imagine, try, reflect: one exploration trial as a JSON-able row."""
    t0 = time.perf_counter()
    seed = trial_seed(cfg, record["Name"], episode, trial)
    target = explored_function(record, episode, cfg)
    tokens = {"prompt": 0, "completion": 0}
    row = _new_trial_row(record, episode, trial, episode_rows, earlier_rows, cfg, target, seed)
    try:
        if cfg.imagination == "typed":
            _imagine_typed(record, target, seed, row, cfg)
        elif cfg.imagination == "call-first":
            messages = imagination_messages(record, target, episode_rows, earlier_rows, cfg)
            _imagine_call_first(client, messages, record, target, cfg, seed, row, tokens)
        else:
            _imagine_query(client, imagination_messages(record, target, episode_rows, earlier_rows, cfg), cfg, seed,
                           row, tokens)
    except (LLMError, ValueError) as exc:  # ValueError: typed values that break the schema
        row["stop_reason"] = f"imagination failed: {exc}"[:300]
    if row["query"]:
        row["query_problems"] = request_problems(row["query"], record)
    if len(row["query"].split()) < 3:  # nothing worth trying: the row still records the attempt
        row["stop_reason"] = row["stop_reason"] or "imagination gave no usable request"
        return _finish_trial_row(row, tokens, t0)
    system = trial_system_prompt(record, episode_rows, cfg, target)
    traj = _execute_trial(client, record, row["query"], system, cfg, target, seed, executor)
    _record_trajectory(row, traj, tokens)
    if cfg.reflection:
        _reflect(client, system, record, traj, seed, row, tokens)
    return _finish_trial_row(row, tokens, t0)


def _new_trial_row(record: dict, episode: int, trial: int, episode_rows: Sequence[dict],
                   earlier_rows: Sequence[dict], cfg: ExploreConfig, target: str, seed: int) -> dict:
    """A trial's row before anything ran: its identity, its memories' sizes and empty results
    (every key present from the start, so rows of failed trials have the same shape)."""
    return {
        "id": f"{record['Name']}-e{episode}-t{trial}", "condition": cfg.condition, "config": cfg.fingerprint(),
        "tool": record["Name"],
        "episode": episode, "trial": trial, "target_function": target, "seed": seed,
        "memory": {"short_term_trials": len(episode_rows) if cfg.short_term_memory else 0,
                   "long_term_queries": len(earlier_rows) if cfg.long_term_memory else 0},
        "query": "", "query_raw": "", "query_source": None, "query_problems": [], "imagined_call": None,
        "steps": [], "final": None, "stop_reason": "",
        "reflection": None, "reflection_error": None, "statuses": [], "n_calls": 0, "n_ok_calls": 0,
        "solved_by_execution": False,
    }


def _imagine_call_first(client, messages: list[dict], record: dict, function: str, cfg: ExploreConfig, seed: int,
                        row: dict, tokens: dict) -> None:
    """Call-first imagination into ``row``: values of a call under the function's schema, then the
    request that needs them — or the code template, when the phrasing loses a value (the call
    would not answer it) or copies a worked example."""
    schema = function_schemas(record_spec(record))[function]
    res = client.chat(messages, schema=imagined_args_schema(schema), temperature=cfg.imagine_temperature,
                      max_tokens=cfg.imagine_tokens + 20, seed=seed)
    _count(tokens, res)
    args = res.parsed
    row["imagined_call"] = {"action": function, "args": args,
                            "problems": validate_arguments(schema, args)}
    res = client.chat(phrasing_messages(record, function, args), temperature=cfg.phrase_temperature,
                      max_tokens=cfg.imagine_tokens + 12, seed=seed, stop=["\n"])
    _count(tokens, res)
    row["query_raw"] = res.text
    row["query"] = clean_query(res.text)
    missing = missing_values(row["query"], args)
    row["query_source"] = "model"
    if missing or len(row["query"].split()) < 3 or copies_worked_example(row["query"]):
        row["query_missing_values"] = missing
        row["query_copied_example"] = copies_worked_example(row["query"])
        row["query"] = template_instruction(record, function, args)
        row["query_source"] = "template"


def _imagine_typed(record: dict, function: str, seed: int, row: dict, cfg: ExploreConfig) -> None:
    """Imagination by code into ``row``, for a weak explorer: typed, realistic values of the
    target function (:func:`toolalpaca_utils.agents.typed_call`) said in a request from the bank
    of frames (:func:`toolalpaca_utils.agents.requests.bank_request`). The memories still shape
    the trial (its system turn), not the request."""
    rng = random.Random(seed)
    function, values = typed_call(record, rng, function=function, examples_share=cfg.examples_share)
    args = {k: v.value for k, v in values.items()}
    row["imagined_call"] = {"action": function, "args": args, "problems": []}
    row["query"], row["query_frame"] = bank_request(record, function, values, rng, unsayable_names(record))
    row["query_raw"], row["query_source"] = row["query"], "bank"


def _imagine_query(client, messages: list[dict], cfg: ExploreConfig, seed: int, row: dict, tokens: dict) -> None:
    """STE's own imagination into ``row``: the explorer writes the request (one line)."""
    res = client.chat(messages, temperature=cfg.imagine_temperature, max_tokens=cfg.imagine_tokens,
                      seed=seed, stop=["\n"])
    _count(tokens, res)
    row["query_raw"] = res.text
    row["query"] = clean_query(res.text)
    row["query_source"] = "model"


def _execute_trial(client, record: dict, query: str, system: str, cfg: ExploreConfig, target: str, seed: int,
                   executor):
    """The trial proper: the shared ReAct episode on the request, executed for real."""
    # constrained steps: no getDetails, the explored function, a short thought
    # grounded: every call of the trial, not only the first (a retry after an error reads no new values)
    schemas = (trial_step_schema(record, cfg, target, allow_final=cfg.tool_choice != "required", query=query),
               trial_step_schema(record, cfg, target, query=query)) if cfg.mode != "free" else None
    episode = Episode(record, query, executor or HttpExecutor(), mode=cfg.mode, max_steps=cfg.max_steps,
                      seed=seed, user_client=None, answer_after_success=cfg.answer_after_success,
                      step_tokens=cfg.step_tokens, system=system, tool_choice=cfg.tool_choice, schemas=schemas)
    return drive(client, episode)


def _record_trajectory(row: dict, traj, tokens: dict) -> None:
    """The trajectory's steps, calls and outcome into ``row``; its tokens into ``tokens``."""
    tokens["prompt"] += traj.prompt_tokens
    tokens["completion"] += traj.completion_tokens
    calls = [s for s in traj.steps if s.action not in (None, GET_DETAILS) and s.status is not None]
    row.update(steps=[s.as_dict() for s in traj.steps], final=traj.final, stop_reason=traj.stop_reason,
               statuses=[s.status for s in traj.steps], n_calls=len(calls),
               n_ok_calls=len(traj.successful_calls()))
    row["solved_by_execution"] = bool(traj.final and row["n_ok_calls"])


def _reflect(client, system: str, record: dict, traj, seed: int, row: dict, tokens: dict) -> None:
    """The explorer's Yes/No verdict on its own trial into ``row`` (a failed call is recorded,
    not raised: the trial itself still counts)."""
    try:
        res = client.chat(reflection_messages(system, record, row["query"], traj), schema=REFLECTION_SCHEMA,
                          temperature=0.0, max_tokens=12, seed=seed)
        row["reflection"] = res.parsed["fulfilled"]
        _count(tokens, res)
    except LLMError as exc:
        row["reflection_error"] = str(exc)[:300]


def _finish_trial_row(row: dict, tokens: dict, t0: float) -> dict:
    row.update(tokens=tokens, seconds=round(time.perf_counter() - t0, 3))
    return row


def explore(client, records: Sequence[dict], cfg: ExploreConfig | None = None, *, out_path: str | Path | None = None,
            executor=None, progress: bool = True, workers: int | None = None,
            endpoint: EndpointPolicy | None = None) -> list[dict]:
    """Explore every tool: ``cfg.episodes`` × ``cfg.trials`` trials each. Rows already in
    ``out_path`` (same configuration) are reused — and serve as memory — so a killed run resumes.
    Tools are independent (each has its own memories), so ``workers`` of them (default:
    ``client.parallelism``, one per server replica) are explored at once; rows come back in tool order.

    A tool whose explorer endpoint failed is retried from its first unfinished trial as ``endpoint``
    says; the failed trial is not recorded, and after a few such tools in a row the run stops with
    :class:`~toolalpaca_utils.endpoint.EndpointUnreachableError` (a rerun does exactly the rest)."""
    cfg = cfg or ExploreConfig()
    fp = cfg.fingerprint()
    done = {(r["tool"], r["episode"], r["trial"]): r for r in read_jsonl(out_path)
            if r.get("config") == fp} if out_path else {}
    per_tool: list[list[dict]] = [[] for _ in records]
    fresh: dict[tuple[int, int, int], dict] = {}  # (tool index, episode, trial) -> a row of this run, kept
    policy = (endpoint or EndpointPolicy()).for_stage(
        client, kept=str(out_path or "nowhere (no out_path was given)"),
        resume="run explore again with the same out_path and configuration (the 06_ste notebook)")
    guarded = guard_endpoint(client)

    def explore_tool(index: int) -> Iterator[tuple[dict, bool]]:
        """The tool's trials in turn, each with whether it is new (not read back); a retry after an
        endpoint failure starts the tool again, reading back the trials it finished."""
        record = records[index]
        tool_rows = per_tool[index] = []
        for e in range(cfg.episodes):
            episode_rows: list[dict] = []
            earlier = list(tool_rows)
            for t in range(cfg.trials):
                row = done.get((record["Name"], e, t)) or fresh.get((index, e, t))
                new = row is None
                if new:
                    row = run_trial(guarded, record, e, t, episode_rows, earlier, cfg, executor=executor)
                episode_rows.append(row)
                yield row, new
                if new:  # handed over and kept: a retry of this tool reads it back
                    fresh[(index, e, t)] = row
            tool_rows += episode_rows

    def keep(result: tuple[dict, bool]) -> None:
        row, new = result
        if new and out_path:
            append_jsonl(out_path, [row])

    run_parallel(range(len(records)), explore_tool, keep, workers=worker_count(client, workers),
                 total=len(records) * cfg.episodes * cfg.trials, desc=f"explore[{cfg.condition}]", progress=progress,
                 endpoint=policy, label=lambda index: records[index]["Name"])
    return [row for rows in per_tool for row in rows]


def render_trial(row: dict) -> str:
    """An exploration trial as readable markdown."""
    lines = [f"**{row['tool']}** episode {row['episode']} trial {row['trial']} "
             f"(target `{row.get('target_function')}`) — {row.get('query') or '(no request)'}", "", "```text"]
    for s in row.get("steps") or []:
        lines += [s["text"], f"Observation: {clip(s['observation'], 300)}"]
    if row.get("final"):
        lines.append(row["final"]["text"])
    lines += ["```", f"reflection: *{row.get('reflection')}* · solved by execution: *{row.get('solved_by_execution')}* "
              f"· stop: {row.get('stop_reason')}"]
    return "\n".join(lines)
