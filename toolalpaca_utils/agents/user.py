"""The user agent: writes requests for a tool (instruction-first or call-first), checks and
deduplicates them, and answers the assistant's clarifying questions (getDetails)."""
from __future__ import annotations

import difflib
import random
import re
from typing import Sequence

from ..llm import LLMError
from ..openapi import describe_function, function_schemas, record_spec, validate_arguments
from ..saying import mentioned
from ..values import GUESS, Value, sample_value
from .protocol import ChatModel

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
    after a worked example of the mapping from details to a request). ``args`` values may be
    :class:`~toolalpaca_utils.values.Value`: the request is asked to say them as ``said``."""
    spec = record_spec(record)
    summary = describe_function(spec, name).splitlines()[0]
    details = "; ".join(f"{k} = {v.said if isinstance(v, Value) else v}" for k, v in args.items()) or "no details"
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
    """Argument values that the instruction does not say, in any accepted form
    (:func:`toolalpaca_utils.saying.mentioned`); booleans are never required to be said."""
    return [k for k, v in args.items() if not isinstance(v, bool) and not mentioned(v, instruction)]


def typed_call(record: dict, rng: random.Random, *, optional_share: float = 0.5,
               function: str | None = None, examples_share: float = 0.0) -> tuple[str, dict[str, Value]]:
    """Call-first strategy, step 1, written by code: a function and typed, realistic values
    (:func:`toolalpaca_utils.values.sample_value`) for its required parameters and, each with
    probability ``optional_share``, its optional ones for which a generator knows a value (a
    guessed word for an optional 'subdivision' is one the tool refuses: it is left out)
    (``function``: that one, else a seeded choice; ``examples_share``: see
    :func:`~toolalpaca_utils.values.sample_value`). Raises
    ValueError when the values break the schema (a pattern no generator meets): the instance is
    rejected with that reason."""
    schemas = function_schemas(record_spec(record))
    name = function or rng.choice(sorted(schemas))
    schema = schemas[name]
    required = set(schema.get("required") or [])
    values = {p: sample_value(p, s, rng, examples_share=examples_share) for p, s in (schema.get("properties") or {}).items()
              if p in required or rng.random() < optional_share}
    values = {p: v for p, v in values.items() if p in required or not v.kind.startswith(GUESS)}
    problems = validate_arguments(schema, {p: v.value for p, v in values.items()})
    if problems:
        raise ValueError("typed values break the schema: " + "; ".join(problems))
    return name, values


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
