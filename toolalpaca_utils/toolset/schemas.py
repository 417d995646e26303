"""The JSON schemas the teacher's output is constrained by (the server turns them into a grammar).

The introduction must begin with "The <name> API" and be one or two whole sentences; the
functions are verb+noun camelCase names (the i-th starting with a verb of ``VERB_GROUPS[i]``),
types from fixed enums and one-sentence descriptions of bounded length. Every pattern is
written so that both Python's ``re`` and the llama.cpp grammar read it the same way.
"""
from __future__ import annotations

from typing import Sequence

from .config import GenerationConfig


PARAM_TYPES = ("string", "integer", "number", "boolean")
FIELD_TYPES = ("string", "integer", "number", "boolean", "array", "object")
METHODS = ("GET", "POST")


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
