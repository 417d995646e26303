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
could not reach the endpoint at all, instead of burning through the catalogue; such entries are
retried with back-off and never recorded, so a rerun tries exactly them (the mechanism all stages
share, :mod:`toolalpaca_utils.endpoint`).

Submodules (every public name is re-exported here, so ``toolset.X`` works for all of them):

- :mod:`.config` — :class:`GenerationConfig`, the bounds of what the model writes per tool;
- :mod:`.prompts` — the system, introduction and functions prompts and their messages;
- :mod:`.schemas` — the JSON schemas (grammars) of the introduction and the functions;
- :mod:`.text` — text helpers (comparison keys, camelCase, cleaning an introduction);
- :mod:`.gates` — :data:`GATES` and the pure gate checks;
- :mod:`.records` — spec assembly and the ToolAlpaca record; the real tools' records;
- :mod:`.outcomes` — result types: attempts, per-entry outcomes, the run's result, the early-stop error;
- :mod:`.generate` — one entry: its attempts and LLM calls;
- :mod:`.runner` — many entries: :func:`build_toolset`, ``progress.jsonl`` and resume;
- :mod:`.report` — tables and plots for the notebook;
- :mod:`.blueprints` — training tools written by code (:func:`blueprint_records`), next to the teacher's.
"""
from __future__ import annotations

# The modules look up openapi.build_spec & co. on the openapi module at call time, so patching
# ``toolset.openapi.build_spec`` (as tests do) patches what the code calls.
from .. import openapi
from .blueprints import blueprint_records, draw_request, parse_blueprints
from .config import GenerationConfig
from .gates import (
    FUNCTION_GATES, GATES, MEDIA_IO_WORDS, PRE_LLM_GATES, RESERVED_NAMES, GateFailure, check_entry,
    check_function, check_introduction, dedupe_names, screen_functions,
)
from .generate import entry_key, entry_seed, generate_tool, plain_entry
from .outcomes import Attempt, EndpointUnreachableError, ToolOutcome, ToolsetResult
from .prompts import FUNCTIONS_PROMPT, INTRO_PROMPT, SYSTEM_PROMPT, functions_messages, intro_messages
from .records import assemble_record, functions_text, load_real_tools, server_url_for, to_spec_functions
from .report import (
    category_coverage, failure_summary, gate_table, plot_category_coverage, plot_gate_yield, tools_table,
)
from .runner import PROGRESS_FILE, build_toolset, read_progress, settings_fingerprint
from .schemas import (
    DESCRIPTION_CHARS, DESCRIPTION_VERBS, FIELD_TYPES, METHODS, PARAM_TYPES, SENTENCE_CHARS, VERB_GROUPS, VERBS,
    functions_schema, intro_schema, regex_literal,
)
from .text import clean_introduction, norm, split_camel

__all__ = [
    "openapi",
    "GenerationConfig", "blueprint_records", "draw_request", "parse_blueprints",
    "FUNCTION_GATES", "GATES", "MEDIA_IO_WORDS", "PRE_LLM_GATES", "RESERVED_NAMES", "GateFailure", "check_entry",
    "check_function", "check_introduction", "dedupe_names", "screen_functions",
    "entry_key", "entry_seed", "generate_tool", "plain_entry",
    "Attempt", "EndpointUnreachableError", "ToolOutcome", "ToolsetResult",
    "FUNCTIONS_PROMPT", "INTRO_PROMPT", "SYSTEM_PROMPT", "functions_messages", "intro_messages",
    "assemble_record", "functions_text", "load_real_tools", "server_url_for", "to_spec_functions",
    "category_coverage", "failure_summary", "gate_table", "plot_category_coverage", "plot_gate_yield", "tools_table",
    "PROGRESS_FILE", "build_toolset", "read_progress", "settings_fingerprint",
    "DESCRIPTION_CHARS", "DESCRIPTION_VERBS", "FIELD_TYPES", "METHODS", "PARAM_TYPES", "SENTENCE_CHARS",
    "VERB_GROUPS", "VERBS", "functions_schema", "intro_schema", "regex_literal",
    "clean_introduction", "norm", "split_camel",
]
