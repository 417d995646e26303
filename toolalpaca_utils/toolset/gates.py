"""The quality gates: what each one checks (:data:`GATES`, in the order they apply) and the pure
check functions behind them. A function that fails a function gate is dropped with its reason;
the only repair code makes is removing exact repeats of a parameter or output field."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from .. import openapi
from ..catalogue import non_text_reason
from .text import norm, split_camel


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


#: Words that mean a function moves media or files rather than text. A word followed by one of
#: the words in the look-ahead (``image url``, ``file name``) is text about media, and passes.
MEDIA_IO_WORDS = re.compile(
    r"(?<!json )(?<!csv )(?<!xml )(?<!text )\b(images?|photos?|pictures?|videos?|audio|files?|pdfs?|uploads?|downloads?|binary|screenshots?|"
    r"attachments?|mp3|mp4|png|jpe?g|gifs?|svg|thumbnails?|wallpapers?)\b"
    r"(?!\s+(urls?|links?|ids?|names?|titles?|counts?|captions?|formats?|types?|sizes?|paths?|dates?)\b)",
    re.IGNORECASE,
)


@dataclass
class GateFailure:
    gate: str
    reason: str

    def __str__(self) -> str:
        return f"{self.gate}: {self.reason}"


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
    desc = norm(entry.get("description", ""))
    if desc and desc in norm(intro) and len(norm(intro)) - len(desc) < 40:
        return [GateFailure("introduction", "copies the catalogue description and adds little")]
    if len(set(norm(w) for w in intro.split())) < 6:
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
        elif norm(fn.get("description", "")) and norm(fn.get("description", "")) == norm(other.get("description", "")):
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
    fails += _check_descriptions(fn, label, norm(entry.get("description", "")))
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
    desc = norm(fn.get("description", ""))
    if len(desc) < 8:
        fails.append(GateFailure("descriptions", f"{name}: function description is empty or too short"))
    elif desc == api_desc:
        fails.append(GateFailure("descriptions", f"{name}: function description copied from the catalogue description"))
    elif desc == norm(name):
        fails.append(GateFailure("descriptions", f"{name}: function description only repeats its name"))
    for p in fn.get("parameters") or []:
        if not isinstance(p, dict):
            continue
        pdesc = norm(p.get("description", ""))
        if len(pdesc) < 3:
            fails.append(GateFailure("descriptions", f"{name}: parameter {p.get('name')!r} has no description"))
        elif pdesc == norm(p.get("name", "")):
            fails.append(GateFailure("descriptions", f"{name}: parameter {p.get('name')!r} description only repeats its name"))
        elif pdesc == desc:
            fails.append(GateFailure("descriptions", f"{name}: parameter {p.get('name')!r} description copied from the function's"))
    odesc = norm((fn.get("output") or {}).get("description", ""))
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
