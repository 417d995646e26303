"""Stage 1: turn catalogue entries into documented, validated tools.

For each catalogue entry the LLM writes two things, nothing else, both under a JSON-schema
grammar (the main lever on a small model's output):

1. an *introduction*: one or two whole sentences of plain text that must begin with
   "The <name> API" (:func:`intro_schema`);
2. the *functions* (:func:`functions_schema`): verb+noun camelCase names, the i-th function
   starting with a verb of ``VERB_GROUPS[i]`` (so the model cannot repeat its first function),
   types from fixed enums, one-sentence descriptions of bounded length that start with a verb
   (functions) or an article (parameters, outputs), 1..``max_functions`` functions with
   ``min_parameters``..``max_parameters`` parameters and 1..``max_output_fields`` output fields.

Code does the rest: it removes exact repeats of a parameter or output field, applies the quality
gates in :data:`GATES` (a function that fails one is dropped with its reason), assembles the
OpenAPI 3.0 spec with :func:`toolalpaca_utils.openapi.build_spec`, validates it, and derives the
NL documentation and the ToolAlpaca record. Every attempt records *which* gates failed and *why*;
an entry gets ``1 + max_retries`` attempts with different seeds (and a rising temperature), then
it is accepted or lands in the rejects table — it is never silently dropped.

:func:`build_toolset` runs many entries with a progress bar, appends each finished entry to
``progress.jsonl`` as soon as it is done (a crashed or interrupted run resumes where it
stopped), and stops with :class:`EndpointUnreachableError` after a few consecutive entries that
could not reach the endpoint at all, instead of burning through the catalogue.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from . import openapi
from .catalogue import non_text_reason
from .llm.client import (
    ChatResult, LLMConnectionError, LLMError, LLMOutputError, LLMRequestError, LLMTimeoutError,
)

# --------------------------------------------------------------------------------------------
# gates
# --------------------------------------------------------------------------------------------
#: Quality gates in the order they are applied: name -> (level, what *passing* it means).
#: ``entry`` gates run once per catalogue entry before any LLM call; ``attempt`` gates once per
#: attempt; ``function`` gates once per generated function — a function that fails one is
#: dropped (with its reason recorded) and the tool goes on with the functions that remain.
GATES: dict[str, tuple[str, str]] = {
    "entry_fields": ("entry", "the catalogue entry has a name, a description and a category"),
    "text_io_entry": ("entry", "the catalogue entry is not about images, video, audio or files"),
    "llm_endpoint": ("attempt", "the LLM endpoint answered"),
    "llm_output": ("attempt", "the model's output parsed and matched the JSON schema"),
    "introduction": ("attempt", "the introduction is non-trivial, not a copy of the description or prompt"),
    "unique_functions": ("function", "not a repeat (same name or description) of an earlier function"),
    "camel_case_names": ("function", "the function name is camelCase verb+noun and not reserved"),
    "parameter_names": ("function", "parameter and output field names are identifiers, unique per function"),
    "descriptions": ("function", "descriptions are present and not copied from another field"),
    "text_io_functions": ("function", "the function takes and returns text (no images, files, audio, video)"),
    "functions_present": ("attempt", "at least `min_functions` functions pass the function gates"),
    "spec_valid": ("attempt", "the assembled OpenAPI 3.0 spec passes openapi-spec-validator"),
}
PRE_LLM_GATES = tuple(g for g, (level, _) in GATES.items() if level == "entry")
FUNCTION_GATES = tuple(g for g, (level, _) in GATES.items() if level == "function")
#: Function names the later stages use for themselves (the assistant's clarification tool).
RESERVED_NAMES = frozenset({"getdetails", "finalanswer"})
ENDPOINT_ERRORS = (LLMConnectionError, LLMTimeoutError, LLMRequestError)

PARAM_TYPES = ("string", "integer", "number", "boolean")
FIELD_TYPES = ("string", "integer", "number", "boolean", "array", "object")
METHODS = ("GET", "POST")

#: Words that mean a function moves media or files rather than text. A word followed by one of
#: the words in the look-ahead (``image url``, ``file name``) is text about media, and passes.
MEDIA_IO_WORDS = re.compile(
    r"(?<!json )(?<!csv )(?<!xml )(?<!text )\b(images?|photos?|pictures?|videos?|audio|files?|pdfs?|uploads?|downloads?|binary|screenshots?|"
    r"attachments?|mp3|mp4|png|jpe?g|gifs?|svg|thumbnails?|wallpapers?)\b"
    r"(?!\s+(urls?|links?|ids?|names?|titles?|counts?|captions?|formats?|types?|sizes?|paths?|dates?)\b)",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# configuration, outcomes
# --------------------------------------------------------------------------------------------
@dataclass
class GenerationConfig:
    """Bounds of what the model writes per tool (the grammar is the main lever on quality and
    cost with a small model: every bound here is enforced while generating)."""

    max_functions: int = 3
    min_functions: int = 1            # functions that must survive the function gates
    min_parameters: int = 1
    max_parameters: int = 3
    max_output_fields: int = 3
    description_max_chars: int = 100
    intro_max_tokens: int = 160
    intro_max_chars: int = 400
    functions_max_tokens: int = 800
    temperature: float = 0.3          # first attempt
    retry_temperature_step: float = 0.3
    max_temperature: float = 1.0

    def temperature_for(self, attempt: int) -> float:
        return round(min(self.max_temperature, self.temperature + attempt * self.retry_temperature_step), 3)

    @classmethod
    def from_params(cls, params: dict) -> "GenerationConfig":
        """Pick the fields of this class out of a notebook/profile parameter dict."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})


@dataclass
class GateFailure:
    gate: str
    reason: str

    def __str__(self) -> str:
        return f"{self.gate}: {self.reason}"


@dataclass
class Attempt:
    """One try at documenting an entry: what the model wrote and which gates failed."""

    attempt: int
    seed: int
    temperature: float
    failures: list[GateFailure] = field(default_factory=list)     # decisive (attempt level)
    dropped: list[GateFailure] = field(default_factory=list)      # functions dropped, and why
    gates_checked: list[str] = field(default_factory=list)
    functions_checked: int = 0
    functions_kept: int = 0
    introduction: str | None = None
    functions: list | None = None
    raw_text: str = ""
    completion_tokens: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["failures"] = [dataclasses.asdict(f) for f in self.failures]
        d["dropped"] = [dataclasses.asdict(f) for f in self.dropped]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Attempt":
        d = dict(d)
        d["failures"] = [GateFailure(**f) for f in d.get("failures") or []]
        d["dropped"] = [GateFailure(**f) for f in d.get("dropped") or []]
        return cls(**d)


@dataclass
class ToolOutcome:
    """The result for one catalogue entry: an accepted record, or a reject with reasons."""

    key: str
    entry: dict
    record: dict | None = None
    attempts: list[Attempt] = field(default_factory=list)
    entry_failures: list[GateFailure] = field(default_factory=list)   # pre-LLM gates
    retryable: bool = False           # failed only because the endpoint could not be reached
    settings: str = ""                # fingerprint of the generation settings (for resume)

    @property
    def accepted(self) -> bool:
        return self.record is not None

    @property
    def failures(self) -> list[GateFailure]:
        """Failures of the decisive try: the entry gates, else the last attempt's (with the
        function-level reasons when no function survived)."""
        if self.entry_failures:
            return list(self.entry_failures)
        if not self.attempts:
            return []
        last = self.attempts[-1]
        extra = last.dropped if any(f.gate == "functions_present" for f in last.failures) else []
        return list(last.failures) + list(extra)

    @property
    def reasons(self) -> list[str]:
        """Every failure of every attempt, e.g. ``"attempt 2: descriptions: ..."``; dropped
        functions are listed as ``"attempt 1 (function dropped): ..."``."""
        out = [f"entry: {f}" for f in self.entry_failures]
        for a in self.attempts:
            out += [f"attempt {a.attempt + 1}: {f}" for f in a.failures]
            out += [f"attempt {a.attempt + 1} (function dropped): {f}" for f in a.dropped]
        return out

    @property
    def completion_tokens(self) -> int:
        return sum(a.completion_tokens for a in self.attempts)

    @property
    def seconds(self) -> float:
        return sum(a.seconds for a in self.attempts)

    def reject_row(self) -> dict:
        """One row of the rejects table."""
        return {
            "key": self.key,
            "name": self.entry.get("name", ""),
            "category": self.entry.get("category", ""),
            "n_attempts": len(self.attempts),
            "gates": sorted({f.gate for f in self.failures}),
            "reasons": self.reasons,
            "retryable": self.retryable,
            "last_output": self.attempts[-1].raw_text[:1000] if self.attempts else "",
        }

    def to_json(self) -> dict:
        return {
            "key": self.key, "entry": self.entry, "record": self.record,
            "attempts": [a.to_json() for a in self.attempts],
            "entry_failures": [dataclasses.asdict(f) for f in self.entry_failures],
            "retryable": self.retryable, "settings": self.settings,
        }

    @classmethod
    def from_json(cls, d: dict) -> "ToolOutcome":
        return cls(
            key=d["key"], entry=d.get("entry") or {}, record=d.get("record"),
            attempts=[Attempt.from_json(a) for a in d.get("attempts") or []],
            entry_failures=[GateFailure(**f) for f in d.get("entry_failures") or []],
            retryable=bool(d.get("retryable")), settings=d.get("settings", ""),
        )


class EndpointUnreachableError(LLMConnectionError):
    """Several entries in a row could not reach the LLM endpoint; the run stopped early.
    ``result`` holds what was finished (it is also in ``progress.jsonl``)."""

    def __init__(self, message: str, result: "ToolsetResult | None" = None):
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------------------------
# prompts and schema (our own wording)
# --------------------------------------------------------------------------------------------
SYSTEM_PROMPT = (
    "You are a technical writer who documents web APIs for developers. "
    "You write short, concrete, plain English."
)

INTRO_PROMPT = (
    "Write two sentences that introduce the {name} API ({category}) to a developer. "
    "The API is listed as: \"{description}\". "
    "Say what data it offers and what an application can do with it. "
    "Start with \"The {name} API\"."
)

FUNCTIONS_PROMPT = (
    "Now write the functions of the {name} API as JSON, 1 to {max_functions} of them. "
    "Each function does something different. "
    "A function name is a verb and a noun in camelCase. "
    "Give each function a short description (under 12 words), its input parameters "
    "(name, type, whether required, meaning) and its output (a short description and the fields it returns). "
    "Inputs and outputs are plain text or numbers."
)

#: Verbs a function name may start with, by position: the first function looks something up,
#: the second searches or lists, the third acts. Enforced by the grammar, this keeps a small
#: model from writing the same function twice.
VERB_GROUPS = (
    ("get", "lookup", "check", "calculate", "convert", "validate", "translate", "generate"),
    ("search", "list", "find"),
    ("create", "update", "send", "compare", "delete"),
)
VERBS = tuple(v for group in VERB_GROUPS for v in group)
#: How a function description may begin.
DESCRIPTION_VERBS = ("Returns", "Gets", "Lists", "Finds", "Searches", "Looks up", "Checks", "Converts",
                     "Calculates", "Validates", "Translates", "Generates", "Creates", "Updates", "Sends",
                     "Compares", "Deletes", "Counts", "Shows")
#: Characters inside a description: no quotes, braces, brackets, markup (templates, JSON debris)
#: or full stops — a description is one sentence, and the grammar ends it with a full stop.
DESCRIPTION_CHARS = r"[A-Za-z0-9 ,'()%/&:-]"
#: Characters of an introduction sentence (no quote, backslash, newline or full stop inside).
SENTENCE_CHARS = r'[^"\\\n.]'
#: Characters that may appear in a literal of a grammar pattern only inside a character class:
#: llama-cpp-python's pattern converter copies ``\\.`` into the GBNF unchanged, and the server
#: rejects that escape (seen: "parse: error parsing grammar: unknown escape at \\.tm API").
_CLASS_SAFE = set(".$*+?(){}|/&,'!:#@%=~;<>`-")


def regex_literal(text: str) -> str | None:
    """``text`` as a pattern that both Python's ``re`` and the llama.cpp grammar read as the
    literal text (special characters as one-character classes, ``[.]``); ``None`` when the text
    has a character that cannot be written that way (quotes, backslashes, brackets, control
    characters)."""
    out = []
    for ch in text:
        if ch.isalnum() or ch == " ":
            out.append(ch)
        elif ch in _CLASS_SAFE:
            out.append(f"[{ch}]")
        else:
            return None
    return "".join(out)


def intro_schema(entry: dict, config: GenerationConfig | None = None) -> dict:
    """The introduction as a bounded JSON string: it must begin with "The <name> API" and be
    one or two whole sentences (the grammar also stops it from rambling into lists)."""
    c = config or GenerationConfig()
    n = max(40, c.intro_max_chars // 2)
    name = regex_literal(str(entry.get("name") or "").strip())
    start = f"The {name} API " if name else "The "
    pattern = (f"^{start}{SENTENCE_CHARS}{{20,{n}}}[.]"
               f"( [A-Z]{SENTENCE_CHARS}{{20,{n}}}[.])?$")
    return {"type": "object", "properties": {"introduction": {"type": "string", "pattern": pattern}},
            "required": ["introduction"]}


def _function_schema(c: GenerationConfig, verbs: Sequence[str]) -> dict:
    n = max(16, c.description_max_chars)
    # a function description starts with a verb, a parameter or output description with an
    # article: the model cannot copy one into the other, its most common slip
    fn_desc = {"type": "string",
               "pattern": f"^({'|'.join(DESCRIPTION_VERBS)}) {DESCRIPTION_CHARS}{{5,{n - 12}}}[.]$"}
    desc = {"type": "string", "pattern": f"^(The|A|An) {DESCRIPTION_CHARS}{{3,{n - 6}}}[.]$"}
    word = "[A-Z][a-z0-9]{1,11}"
    ident = f"^[a-z]{{2,12}}({word}){{0,2}}$"
    param = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": ident},
            "type": {"enum": list(PARAM_TYPES)},
            "required": {"type": "boolean"},
            "description": desc,
        },
        "required": ["name", "type", "required", "description"],
    }
    out_field = {
        "type": "object",
        "properties": {"name": {"type": "string", "pattern": ident}, "type": {"enum": list(FIELD_TYPES)}},
        "required": ["name", "type"],
    }
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": f"^({'|'.join(verbs)})({word}){{1,2}}$"},
            "method": {"enum": list(METHODS)},
            "description": fn_desc,
            "parameters": {"type": "array", "items": param,
                           "minItems": min(c.min_parameters, c.max_parameters), "maxItems": c.max_parameters},
            "output": {
                "type": "object",
                "properties": {
                    "description": desc,
                    "fields": {"type": "array", "items": out_field, "minItems": 1, "maxItems": c.max_output_fields},
                },
                "required": ["description", "fields"],
            },
        },
        "required": ["name", "method", "description", "parameters", "output"],
    }


def functions_schema(config: GenerationConfig | None = None) -> dict:
    """The JSON schema the model's functions must follow (enforced by the server's grammar,
    then validated again by the client): ``{"functions": [...]}`` with between ``min_functions``
    and ``max_functions`` items, the i-th starting with a verb of ``VERB_GROUPS[i]``."""
    c = config or GenerationConfig()
    lo, hi = max(1, c.min_functions), max(1, c.max_functions)
    items = [_function_schema(c, VERB_GROUPS[i % len(VERB_GROUPS)]) for i in range(hi)]
    options = [{"type": "array", "prefixItems": items[:k], "minItems": k, "maxItems": k}
               for k in range(lo, hi + 1)]
    functions = options[0] if len(options) == 1 else {"anyOf": options}
    return {"type": "object", "properties": {"functions": functions}, "required": ["functions"]}


def intro_messages(entry: dict) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": INTRO_PROMPT.format(**_prompt_fields(entry))},
    ]


def functions_messages(entry: dict, introduction: str, config: GenerationConfig) -> list[dict]:
    """The intro conversation continued: the server reuses the shared prompt prefix."""
    return intro_messages(entry) + [
        {"role": "assistant", "content": introduction},
        {"role": "user", "content": FUNCTIONS_PROMPT.format(max_functions=config.max_functions, **_prompt_fields(entry))},
    ]


def _prompt_fields(entry: dict) -> dict:
    return {k: str(entry.get(k) or "").strip() for k in ("name", "category", "description")}


# --------------------------------------------------------------------------------------------
# text helpers
# --------------------------------------------------------------------------------------------
def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", str(text or "").lower())


def split_camel(name: str) -> str:
    """``getCatFacts`` → ``get cat facts``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name)).replace("_", " ").lower()


_LABEL = re.compile(r"^\s*(introduction|intro|answer|response)\s*:\s*", re.IGNORECASE)


def clean_introduction(text: str, max_chars: int = 400) -> str:
    """Strip labels and markup, drop repeated sentences, keep whole sentences up to ``max_chars``."""
    text = _LABEL.sub("", str(text or "")).replace("**", "").replace("#", "")
    text = re.sub(r"\s+", " ", text).strip().strip('"').strip()
    sentences = re.split(r"(?<=[.!?])\s+", text)
    kept: list[str] = []
    seen: set[str] = set()
    for s in sentences:
        key = _norm(s)
        if not key or key in seen or len(re.findall(r"[A-Za-z]{2,}", s)) < 2:  # repeats, list numbers
            continue
        if kept and len(" ".join(kept + [s])) > max_chars:
            break
        seen.add(key)
        kept.append(s)
    out = " ".join(kept)
    if len(out) > max_chars:
        out = out[:max_chars].rsplit(" ", 1)[0]
    if out and out[-1] not in ".!?" and re.search(r"[.!?]", out):
        out = out[: max(out.rfind("."), out.rfind("!"), out.rfind("?")) + 1]  # drop a cut-off sentence
    return out.strip()


def functions_text(functions: list[dict]) -> str:
    """The ToolAlpaca ``Functions`` field: a numbered, human-readable list."""
    lines = []
    for i, fn in enumerate(functions, 1):
        params = ", ".join(
            f"{p['name']} ({p['type']}, {'required' if p.get('required') else 'optional'}): {p['description']}"
            for p in fn.get("parameters") or []
        ) or "none"
        out = fn.get("output") or {}
        fields = ", ".join(f"{f['name']} ({f['type']})" for f in out.get("fields") or [])
        lines.append(
            f"{i}. {fn['name']}: {fn['description']}\n"
            f"   Parameters: {params}\n"
            f"   Output: {out.get('description', '')}" + (f" Fields: {fields}." if fields else "")
        )
    return "\n".join(lines)


def to_spec_functions(functions: list[dict]) -> list[dict]:
    """The model's function JSON → the function dicts :func:`openapi.build_spec` takes."""
    out = []
    for fn in functions:
        output = fn.get("output") or {}
        out.append({
            "name": fn.get("name", ""),
            "description": fn.get("description", ""),
            "method": str(fn.get("method") or "GET").lower(),
            "parameters": [
                {"name": p.get("name", ""), "type": p.get("type", "string"), "required": bool(p.get("required")),
                 "description": p.get("description", "")}
                for p in fn.get("parameters") or []
            ],
            "output": {
                "description": output.get("description", ""),
                "properties": [
                    {"name": f.get("name", ""), "type": f.get("type", "string"), "description": ""}
                    for f in output.get("fields") or []
                ],
            },
        })
    return out


def server_url_for(name: str) -> str:
    """A placeholder server per tool: catalogue tools are simulated, never called for real."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "tool"
    return f"https://api.example.com/{slug}"


# --------------------------------------------------------------------------------------------
# gate checks (pure functions: tests call them directly)
# --------------------------------------------------------------------------------------------
def check_entry(entry: dict) -> list[GateFailure]:
    """Pre-LLM gates on a catalogue entry."""
    missing = [k for k in ("name", "description", "category") if not str(entry.get(k) or "").strip()]
    if missing:
        return [GateFailure("entry_fields", f"missing {', '.join(missing)}")]
    reason = entry.get("non_text_reason") or non_text_reason(entry["name"], entry["description"], entry["category"])
    if reason:
        return [GateFailure("text_io_entry", reason)]
    return []


_PROMPT_ECHO = re.compile(r"\b(api name|catalogue note|category)\s*:", re.IGNORECASE)


def check_introduction(intro: str, entry: dict) -> list[GateFailure]:
    if len(intro) < 30:
        return [GateFailure("introduction", f"too short ({len(intro)} chars): {intro!r}")]
    if _PROMPT_ECHO.search(intro):
        return [GateFailure("introduction", f"echoes the prompt: {intro[:80]!r}")]
    desc = _norm(entry.get("description", ""))
    if desc and desc in _norm(intro) and len(_norm(intro)) - len(desc) < 40:
        return [GateFailure("introduction", "copies the catalogue description and adds little")]
    if len(set(_norm(w) for w in intro.split())) < 6:
        return [GateFailure("introduction", "fewer than 6 distinct words")]
    return []


def check_function(fn: Any, entry: dict, earlier: Sequence[dict] = ()) -> list[GateFailure]:
    """The function-level gates for one generated function (``earlier``: functions kept
    before it, for the repeat check). Empty when the function passes."""
    if not isinstance(fn, dict):
        return [GateFailure("unique_functions", f"not a function object: {fn!r:.60}")]
    fails: list[GateFailure] = []
    name = str(fn.get("name") or "")
    label = name or "<unnamed>"
    if not name:
        fails.append(GateFailure("camel_case_names", "a function without a name"))
    elif not openapi.CAMEL_CASE.match(name):
        fails.append(GateFailure("camel_case_names", f"{name!r} is not camelCase"))
    elif not re.match(r"^[a-z]+[A-Z]", name):
        fails.append(GateFailure("camel_case_names", f"{name!r} is a single word (expected verb + noun)"))
    if name.lower() in RESERVED_NAMES:
        fails.append(GateFailure("camel_case_names", f"{name!r} is reserved for the assistant"))
    for other in earlier:
        if name and name.lower() == str(other.get("name", "")).lower():
            fails.append(GateFailure("unique_functions", f"{label}: repeats the name of an earlier function"))
        elif _norm(fn.get("description", "")) and _norm(fn.get("description", "")) == _norm(other.get("description", "")):
            fails.append(GateFailure("unique_functions", f"{label}: repeats the description of {other.get('name')!r}"))
    for what, items in (("parameter", fn.get("parameters") or []),
                        ("output field", (fn.get("output") or {}).get("fields") or [])):
        seen: set[str] = set()
        for p in items:
            pname = str(p.get("name") or "") if isinstance(p, dict) else ""
            if not openapi.PARAM_NAME.match(pname):
                fails.append(GateFailure("parameter_names", f"{label}: {what} {pname!r} is not an identifier"))
            elif pname.lower() in seen:
                fails.append(GateFailure("parameter_names", f"{label}: {what} {pname!r} appears twice"))
            seen.add(pname.lower())
    fails += _check_descriptions(fn, label, _norm(entry.get("description", "")))
    media = _media_io(fn)
    if media:
        fails.append(GateFailure("text_io_functions", f"{label}: {media}"))
    return fails


def screen_functions(functions: Any, entry: dict) -> tuple[list[dict], list[GateFailure]]:
    """Run the function gates over the model's functions in order: the ones that pass, and a
    failure per gate a dropped function failed."""
    if not isinstance(functions, list):
        return [], []
    kept: list[dict] = []
    dropped: list[GateFailure] = []
    for fn in functions:
        fn = dedupe_names(fn)
        fails = check_function(fn, entry, kept)
        if fails:
            dropped += fails
        else:
            kept.append(fn)
    return kept, dropped


def dedupe_names(fn: Any) -> Any:
    """The function with exact repeats of a parameter or output field (same name, the model
    writing the same item twice) removed, keeping the first. The only repair code makes."""
    if not isinstance(fn, dict):
        return fn
    fn = dict(fn)
    if isinstance(fn.get("parameters"), list):
        fn["parameters"] = _first_of_each_name(fn["parameters"])
    out = fn.get("output")
    if isinstance(out, dict) and isinstance(out.get("fields"), list):
        fn["output"] = {**out, "fields": _first_of_each_name(out["fields"])}
    return fn


def _first_of_each_name(items: list) -> list:
    seen: set[str] = set()
    kept = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name in seen:
            continue
        seen.add(name) if isinstance(name, str) else None
        kept.append(item)
    return kept


def _check_descriptions(fn: dict, name: str, api_desc: str) -> list[GateFailure]:
    fails = []
    desc = _norm(fn.get("description", ""))
    if len(desc) < 8:
        fails.append(GateFailure("descriptions", f"{name}: function description is empty or too short"))
    elif desc == api_desc:
        fails.append(GateFailure("descriptions", f"{name}: function description copied from the catalogue description"))
    elif desc == _norm(name):
        fails.append(GateFailure("descriptions", f"{name}: function description only repeats its name"))
    for p in fn.get("parameters") or []:
        if not isinstance(p, dict):
            continue
        pdesc = _norm(p.get("description", ""))
        if len(pdesc) < 3:
            fails.append(GateFailure("descriptions", f"{name}: parameter {p.get('name')!r} has no description"))
        elif pdesc == _norm(p.get("name", "")):
            fails.append(GateFailure("descriptions", f"{name}: parameter {p.get('name')!r} description only repeats its name"))
        elif pdesc == desc:
            fails.append(GateFailure("descriptions", f"{name}: parameter {p.get('name')!r} description copied from the function's"))
    odesc = _norm((fn.get("output") or {}).get("description", ""))
    if len(odesc) < 3:
        fails.append(GateFailure("descriptions", f"{name}: output has no description"))
    elif odesc == desc:
        fails.append(GateFailure("descriptions", f"{name}: output description copied from the function's"))
    return fails


def _media_io(fn: dict) -> str:
    """Why a function's inputs/outputs are media or files, or ``""``."""
    parts = [split_camel(fn.get("name", "")), str(fn.get("description", ""))]
    for p in fn.get("parameters") or []:
        parts += [split_camel(p.get("name", "")), str(p.get("description", ""))]
    out = fn.get("output") or {}
    parts.append(str(out.get("description", "")))
    parts += [split_camel(f.get("name", "")) for f in out.get("fields") or []]
    for text in parts:
        m = MEDIA_IO_WORDS.search(text)
        if m:
            return f"mentions {m.group(0)!r} in {text[:80]!r}"
    return ""


def assemble_record(entry: dict, introduction: str, functions: list[dict]) -> tuple[dict | None, list[GateFailure]]:
    """Build and validate the spec; return the ToolAlpaca record or the ``spec_valid`` failure."""
    try:
        spec = openapi.build_spec(entry["name"], entry["description"], to_spec_functions(functions),
                                  server_url=server_url_for(entry["name"]))
        problems = openapi.validate_spec(spec)
    except Exception as exc:  # noqa: BLE001 — any failure to build is a spec failure, recorded
        return None, [GateFailure("spec_valid", f"cannot build the spec: {type(exc).__name__}: {exc}")]
    if problems:
        return None, [GateFailure("spec_valid", p) for p in problems]
    record = openapi.record_from_spec(
        spec, name=entry["name"], description=entry["description"], category=entry["category"],
        link=entry.get("link") or "", introduction=introduction, functions_text=functions_text(functions),
        source="catalogue",
    )
    return record, []


# --------------------------------------------------------------------------------------------
# one entry
# --------------------------------------------------------------------------------------------
def entry_key(entry: dict) -> str:
    return str(entry.get("id") or entry.get("name") or json.dumps(entry, sort_keys=True, default=str))


def entry_seed(entry: dict, seed: int) -> int:
    """A per-entry seed that does not depend on the entry's position (resume-safe)."""
    return (int(seed) * 1_000_003 + zlib.crc32(entry_key(entry).encode())) % (2**31 - 1)


def generate_tool(
    client: Any,
    entry: dict,
    *,
    max_retries: int = 2,
    seed: int = 0,
    config: GenerationConfig | None = None,
) -> ToolOutcome:
    """Document one catalogue entry: up to ``1 + max_retries`` attempts with seeds
    ``seed, seed+1, ...``. Never raises for bad input or model output; endpoint errors end the
    entry at once (``retryable=True``) since a retry would hit the same dead endpoint."""
    config = config or GenerationConfig()
    entry = _plain_entry(entry)
    outcome = ToolOutcome(key=entry_key(entry), entry=entry)
    outcome.entry_failures = check_entry(entry)
    if outcome.entry_failures:
        return outcome
    schema = functions_schema(config)
    for attempt_no in range(max_retries + 1):
        attempt = Attempt(attempt=attempt_no, seed=int(seed) + attempt_no, temperature=config.temperature_for(attempt_no))
        start = time.perf_counter()
        try:
            record = _run_attempt(client, entry, attempt, schema, config)
        finally:
            attempt.seconds = round(time.perf_counter() - start, 3)
        outcome.attempts.append(attempt)
        if record is not None:
            outcome.record = record
            break
        if any(f.gate == "llm_endpoint" for f in attempt.failures):
            outcome.retryable = True
            break
    return outcome


def _run_attempt(client: Any, entry: dict, attempt: Attempt, schema: dict, config: GenerationConfig) -> dict | None:
    # 1. introduction (plain text, bounded)
    attempt.gates_checked += ["llm_endpoint", "llm_output"]
    res = _chat(client, attempt, intro_messages(entry), schema=intro_schema(entry, config),
                temperature=attempt.temperature, max_tokens=config.intro_max_tokens, seed=attempt.seed)
    if res is None:
        return None
    attempt.raw_text = res.text
    parsed = res.parsed if isinstance(res.parsed, dict) else {}
    intro = clean_introduction(str(parsed.get("introduction") or ""), config.intro_max_chars)
    attempt.introduction = intro
    attempt.gates_checked.append("introduction")
    attempt.failures += check_introduction(intro, entry)
    if attempt.failures:
        return None
    # 2. functions (schema-constrained JSON)
    res = _chat(client, attempt, functions_messages(entry, intro, config), schema=schema,
                temperature=attempt.temperature, max_tokens=config.functions_max_tokens, seed=attempt.seed)
    if res is None:
        return None
    attempt.raw_text = res.text
    functions = (res.parsed or {}).get("functions") if isinstance(res.parsed, dict) else None
    attempt.functions = functions
    attempt.gates_checked += list(FUNCTION_GATES) + ["functions_present"]
    attempt.functions_checked = len(functions) if isinstance(functions, list) else 0
    kept, attempt.dropped = screen_functions(functions, entry)
    attempt.functions_kept = len(kept)
    if len(kept) < max(1, config.min_functions):
        attempt.failures.append(GateFailure(
            "functions_present",
            f"{len(kept)} of {attempt.functions_checked} functions passed the function gates "
            f"(need {max(1, config.min_functions)})"))
        return None
    functions = kept
    # 3. code assembles and validates the spec
    attempt.gates_checked.append("spec_valid")
    record, fails = assemble_record(entry, intro, functions)
    attempt.failures += fails
    return record


def _chat(client: Any, attempt: Attempt, messages: list[dict], **kwargs) -> ChatResult | None:
    try:
        res = client.chat(messages, **kwargs)
    except ENDPOINT_ERRORS as exc:
        attempt.failures.append(GateFailure("llm_endpoint", f"{type(exc).__name__}: {exc}"))
        return None
    except LLMOutputError as exc:
        attempt.raw_text = (exc.text or "")[:4000]
        attempt.completion_tokens += int(exc.completion_tokens or 0)
        attempt.failures.append(GateFailure("llm_output", str(exc)[:300]))
        return None
    except LLMError as exc:  # any other LLM-layer failure: recorded, the run goes on
        attempt.failures.append(GateFailure("llm_output", f"{type(exc).__name__}: {exc}"[:300]))
        return None
    attempt.completion_tokens += int(res.completion_tokens or 0)
    attempt.prompt_tokens += int(res.prompt_tokens or 0)
    attempt.cached = attempt.cached or bool(res.cached)
    return res


def _plain_entry(entry: Any) -> dict:
    """A catalogue row (dict or pandas Series) as a JSON-friendly dict."""
    if isinstance(entry, pd.Series):
        entry = entry.to_dict()
    out = {}
    for k, v in dict(entry or {}).items():
        if v is None or v is pd.NA or (isinstance(v, float) and v != v):
            out[k] = None
        elif hasattr(v, "item") and not isinstance(v, (str, bytes)):
            out[k] = v.item()  # numpy / pandas scalars
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# many entries
# --------------------------------------------------------------------------------------------
PROGRESS_FILE = "progress.jsonl"


@dataclass
class ToolsetResult:
    outcomes: list[ToolOutcome]
    seconds: float = 0.0
    resumed: int = 0                  # outcomes read back from progress.jsonl, not generated now
    stopped_early: str = ""           # why the run stopped before the last entry, if it did
    llm_stats: dict = field(default_factory=dict)

    @property
    def records(self) -> list[dict]:
        return [o.record for o in self.outcomes if o.accepted]

    @property
    def rejects(self) -> list[dict]:
        return [o.reject_row() for o in self.outcomes if not o.accepted]

    @property
    def n_accepted(self) -> int:
        return sum(o.accepted for o in self.outcomes)

    @property
    def n_rejected(self) -> int:
        return len(self.outcomes) - self.n_accepted

    @property
    def yield_pct(self) -> float:
        return round(100.0 * self.n_accepted / len(self.outcomes), 1) if self.outcomes else 0.0

    @property
    def categories(self) -> list[str]:
        return sorted({r["Category"] for r in self.records})

    @property
    def generation_seconds(self) -> float:
        """Seconds spent in attempts, resumed outcomes included (their recorded time): the cost
        of the toolset, whether it was generated in one run or resumed."""
        return round(sum(o.seconds for o in self.outcomes), 1)

    def gate_table(self) -> pd.DataFrame:
        """Per gate: how many entries/attempts/functions it checked and how many failed it."""
        return gate_table(self.outcomes)

    def summary(self) -> dict:
        attempts = [a for o in self.outcomes for a in o.attempts]
        return {
            "entries": len(self.outcomes),
            "accepted": self.n_accepted,
            "rejected": self.n_rejected,
            "yield_pct": self.yield_pct,
            "categories": len(self.categories),
            "attempts": len(attempts),
            "accepted_first_try": sum(1 for o in self.outcomes if o.accepted and len(o.attempts) == 1),
            "functions_in_tools": sum(len(openapi.record_functions(r)) for r in self.records),
            "functions_generated": sum(a.functions_checked for a in attempts),
            "functions_dropped": sum(a.functions_checked - a.functions_kept for a in attempts),
            "completion_tokens": sum(a.completion_tokens for a in attempts),
            "prompt_tokens": sum(a.prompt_tokens for a in attempts),
            "seconds": round(self.seconds, 1),
            "generation_seconds": self.generation_seconds,
            "resumed": self.resumed,
            "stopped_early": self.stopped_early,
        }


def gate_table(outcomes: Sequence[ToolOutcome]) -> pd.DataFrame:
    """Yield per gate, in the order the gates apply.

    ``checked``/``failed`` count what the gate's level counts: entries (entry gates), attempts
    (attempt gates) or generated functions (function gates; a failed function is dropped).
    ``entries_stopped`` counts rejected entries whose decisive try failed the gate.
    """
    rows = []
    atts = [a for o in outcomes for a in o.attempts]
    for gate, (level, meaning) in GATES.items():
        if level == "entry":
            checked = sum(1 for o in outcomes if gate == "entry_fields" or not any(
                f.gate == "entry_fields" for f in o.entry_failures))
            failed = sum(1 for o in outcomes if any(f.gate == gate for f in o.entry_failures))
        elif level == "function":
            checked = sum(a.functions_checked for a in atts if gate in a.gates_checked)
            failed = sum(1 for a in atts for f in a.dropped if f.gate == gate)
        else:
            checked = sum(1 for a in atts if gate in a.gates_checked)
            failed = sum(1 for a in atts if any(f.gate == gate for f in a.failures))
        stopped = sum(1 for o in outcomes if not o.accepted and any(f.gate == gate for f in o.failures))
        rows.append({"gate": gate, "level": level, "checks": meaning, "checked": checked, "failed": failed,
                     "pass_pct": round(100.0 * (checked - failed) / checked, 1) if checked else None,
                     "entries_stopped": stopped})
    return pd.DataFrame(rows)


def settings_fingerprint(client: Any, config: GenerationConfig, max_retries: int, seed: int) -> str:
    who = {"model": getattr(client, "model", type(client).__name__), "dialect": getattr(client, "dialect", None)}
    blob = json.dumps({"who": who, "config": dataclasses.asdict(config), "max_retries": max_retries,
                       "seed": seed, "prompts": [SYSTEM_PROMPT, INTRO_PROMPT, FUNCTIONS_PROMPT]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_progress(path: str | Path) -> dict[str, ToolOutcome]:
    """Finished outcomes in ``progress.jsonl`` by key (the last line per key wins). A line cut
    off by a crash is ignored."""
    out: dict[str, ToolOutcome] = {}
    path = Path(path)
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            o = ToolOutcome.from_json(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        out[o.key] = o
    return out


def build_toolset(
    client: Any,
    entries: pd.DataFrame | Iterable[dict],
    *,
    out_dir: str | Path,
    max_retries: int = 2,
    seed: int = 0,
    config: GenerationConfig | None = None,
    progress: bool = True,
    max_consecutive_endpoint_failures: int = 3,
    workers: int | None = None,
) -> ToolsetResult:
    """Document every entry; resume from ``out_dir/progress.jsonl``.

    ``workers`` entries are generated at once (default: ``client.parallelism``, one per server
    replica); outcomes are recorded in entry order whichever worker finishes first.

    Entries already finished with the same settings (model, config, retries, seed, prompts) are
    read back, not regenerated; entries that only failed because the endpoint was unreachable
    are retried. After ``max_consecutive_endpoint_failures`` entries in a row that could not
    reach the endpoint, raises :class:`EndpointUnreachableError` (finished work is kept).
    """
    from tqdm.auto import tqdm

    config = config or GenerationConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress_path = out_dir / PROGRESS_FILE
    settings = settings_fingerprint(client, config, max_retries, seed)
    done = {k: o for k, o in read_progress(progress_path).items()
            if o.settings == settings and not o.retryable}
    rows = [_plain_entry(e) for e in (entries.to_dict("records") if isinstance(entries, pd.DataFrame) else entries)]
    outcomes: list[ToolOutcome] = []
    resumed = 0
    consecutive = 0
    start = time.perf_counter()
    bar = tqdm(total=len(rows), desc="toolset", unit="tool", disable=not progress)
    result = ToolsetResult(outcomes=outcomes)
    workers = max(1, workers or getattr(client, "parallelism", 1))
    pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def generate(entry: dict) -> ToolOutcome:
        return generate_tool(client, entry, max_retries=max_retries, seed=entry_seed(entry, seed), config=config)

    # jobs in flight, in entry order: at most `workers`, so an early stop wastes little
    pending = deque(e for e in rows if entry_key(e) not in done)
    futures: deque[Future] = deque()

    def next_outcome() -> ToolOutcome:
        if pool is None:
            return generate(pending.popleft())
        while pending and len(futures) < workers:
            futures.append(pool.submit(generate, pending.popleft()))
        return futures.popleft().result()

    try:
        with progress_path.open("a", encoding="utf-8") as fh:
            for entry in rows:
                key = entry_key(entry)
                if key in done:
                    outcomes.append(done[key])
                    resumed += 1
                else:
                    outcome = next_outcome()
                    outcome.settings = settings
                    outcomes.append(outcome)
                    fh.write(json.dumps(outcome.to_json(), ensure_ascii=False, default=str) + "\n")
                    fh.flush()
                    consecutive = consecutive + 1 if outcome.retryable else 0
                bar.update(1)
                bar.set_postfix(accepted=sum(o.accepted for o in outcomes),
                                rejected=sum(not o.accepted for o in outcomes))
                if consecutive >= max_consecutive_endpoint_failures:
                    last = outcomes[-1].failures[-1].reason if outcomes[-1].failures else "unknown"
                    result.stopped_early = (
                        f"stopped after {consecutive} consecutive entries could not reach the LLM endpoint "
                        f"({len(outcomes)} of {len(rows)} entries seen); last error: {last}"
                    )
                    break
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        result.seconds = time.perf_counter() - start
        result.resumed = resumed
        stats = getattr(client, "stats", None)
        result.llm_stats = stats.as_dict() if hasattr(stats, "as_dict") else {}
    if result.stopped_early:
        raise EndpointUnreachableError(result.stopped_early + f"; finished work is kept in {progress_path}", result)
    return result


# --------------------------------------------------------------------------------------------
# tables and plots for the notebook
# --------------------------------------------------------------------------------------------
def tools_table(records: Sequence[dict], n: int | None = None) -> pd.DataFrame:
    """One row per tool: name, category, source, functions and a shortened introduction."""
    rows = []
    for r in list(records)[: n if n is not None else len(records)]:
        spec = openapi.record_spec(r)
        schemas = openapi.function_schemas(spec)
        rows.append({
            "Name": r["Name"], "Category": r["Category"], "source": r.get("source", ""),
            "functions": ", ".join(openapi.record_functions(r)),
            "parameters": sum(len(s["properties"]) for s in schemas.values()),
            "Introduction": (r.get("Introduction") or "")[:160],
        })
    return pd.DataFrame(rows)


def category_coverage(catalogue: pd.DataFrame, sampled: pd.DataFrame, records: Sequence[dict]) -> pd.DataFrame:
    """Per category: catalogue entries, text-only entries, sampled entries, accepted catalogue
    tools and real tools (sorted by accepted tools, then sampled)."""
    cats = sorted(set(catalogue["category"]) | {r["Category"] for r in records})
    rows = []
    for cat in cats:
        rows.append({
            "category": cat,
            "catalogue": int((catalogue["category"] == cat).sum()),
            "text_only": int(((catalogue["category"] == cat) & ~catalogue["non_text"]).sum()),
            "sampled": int((sampled["category"] == cat).sum()) if len(sampled) else 0,
            "accepted": sum(1 for r in records if r["Category"] == cat and r.get("source") == "catalogue"),
            "real": sum(1 for r in records if r["Category"] == cat and r.get("source") == "real"),
        })
    df = pd.DataFrame(rows)
    return df.sort_values(["accepted", "real", "sampled", "catalogue"], ascending=False).reset_index(drop=True)


def failure_summary(outcomes: Sequence[ToolOutcome], examples: int = 1) -> pd.DataFrame:
    """What went wrong, over all attempts: per gate, the number of failures (dropped functions
    included) and example reasons."""
    by_gate: dict[str, list[tuple[str, str]]] = {}
    for o in outcomes:
        fails = [(f, "entry") for f in o.entry_failures]
        for a in o.attempts:
            fails += [(f, "attempt") for f in a.failures] + [(f, "function dropped") for f in a.dropped]
        for f, _kind in fails:
            by_gate.setdefault(f.gate, []).append((o.entry.get("name", o.key), f.reason))
    rows = []
    for gate in GATES:
        items = by_gate.get(gate) or []
        if items:
            rows.append({"gate": gate, "failures": len(items),
                         "example": " | ".join(f"{n}: {r[:140]}" for n, r in items[:examples])})
    return pd.DataFrame(rows, columns=["gate", "failures", "example"])


def plot_category_coverage(coverage: pd.DataFrame, ax: Any = None, top: int = 30):
    """Horizontal bars per category: sampled entries vs accepted catalogue tools vs real tools."""
    import matplotlib.pyplot as plt

    df = coverage[(coverage["sampled"] > 0) | (coverage["real"] > 0)].head(top).iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(df) + 1)))
    y = range(len(df))
    ax.barh([i + 0.2 for i in y], df["sampled"], height=0.4, label="sampled entries", color="#c7d4e8")
    ax.barh([i - 0.2 for i in y], df["accepted"], height=0.4, label="accepted tools", color="#2b6cb0")
    ax.barh([i - 0.2 for i in y], df["real"], left=df["accepted"], height=0.4, label="real tools", color="#dd6b20")
    ax.set_yticks(list(y))
    ax.set_yticklabels(df["category"], fontsize=8)
    ax.set_xlabel("count")
    ax.set_title("Category coverage of the toolset")
    ax.legend(loc="lower right", fontsize=8)
    ax.figure.tight_layout()
    return ax


def plot_gate_yield(gates: pd.DataFrame, ax: Any = None):
    """Bars per gate: checked vs failed (function gates count functions, others attempts/entries)."""
    import matplotlib.pyplot as plt

    df = gates[gates["checked"] > 0]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    x = range(len(df))
    ax.bar([i - 0.2 for i in x], df["checked"], width=0.4, label="checked", color="#c7d4e8")
    ax.bar([i + 0.2 for i in x], df["failed"], width=0.4, label="failed", color="#c53030")
    labels = [f"{g}\n({lvl})" for g, lvl in zip(df["gate"], df["level"])]
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("count")
    ax.set_title("Quality gates: checked vs failed", pad=22)
    ax.legend(fontsize=8, ncol=2, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False)
    for i, (checked, failed) in enumerate(zip(df["checked"], df["failed"])):
        if failed:
            ax.annotate(f"{100 * failed / checked:.0f}%", (i + 0.2, failed), ha="center", va="bottom", fontsize=7)
    ax.figure.tight_layout()
    return ax


def load_real_tools(base_url: str | None = None) -> tuple[list[dict], str]:
    """The real tools' records from :mod:`toolalpaca_utils.realtools`, and a note on where they
    came from; ``([], reason)`` when that part of the package is not available."""
    try:
        from .realtools import real_tool_records
    except ImportError as exc:
        return [], f"real tools not available ({exc})"
    records = real_tool_records(base_url=base_url)
    return records, f"{len(records)} real tools from toolalpaca_utils.realtools"
