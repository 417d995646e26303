"""Documenting one catalogue entry: the entry gates, then up to ``1 + max_retries`` attempts,
each an introduction call and a functions call under their schemas, followed by the function
gates and the spec assembly. Bad input or model output is recorded, never raised; an endpoint
failure is raised (the entry is tried again, see :mod:`toolalpaca_utils.endpoint`)."""
from __future__ import annotations

import json
import time
import zlib
from typing import Any

import pandas as pd

from ..endpoint import is_endpoint_failure
from ..llm.client import ChatResult, LLMError, LLMOutputError, LLMRequestError
from .config import GenerationConfig
from .gates import FUNCTION_GATES, GateFailure, check_entry, check_introduction, screen_functions
from .outcomes import Attempt, ToolOutcome
from .prompts import functions_messages, intro_messages
from .records import assemble_record
from .schemas import functions_schema, intro_schema
from .text import clean_introduction


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
    ``seed, seed+1, ...``. Never raises for bad input or model output. An endpoint failure
    (:func:`~toolalpaca_utils.endpoint.is_endpoint_failure`) is raised: the entry has no outcome,
    and :func:`build_toolset` tries it again later. A request the endpoint refuses as such (HTTP
    400/422) fails the ``llm_endpoint`` gate and ends the entry, since every attempt would send it."""
    config = config or GenerationConfig()
    entry = plain_entry(entry)
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
    except LLMOutputError as exc:
        attempt.raw_text = (exc.text or "")[:4000]
        attempt.completion_tokens += int(exc.completion_tokens or 0)
        attempt.failures.append(GateFailure("llm_output", str(exc)[:300]))
        return None
    except LLMError as exc:
        if is_endpoint_failure(exc):  # not this entry's fault: no outcome, tried again later
            raise
        # a request refused as such (HTTP 400/422, a bad schema): every attempt would send it again
        gate = "llm_endpoint" if isinstance(exc, LLMRequestError) else "llm_output"
        attempt.failures.append(GateFailure(gate, f"{type(exc).__name__}: {exc}"[:300]))
        return None
    attempt.completion_tokens += int(res.completion_tokens or 0)
    attempt.prompt_tokens += int(res.prompt_tokens or 0)
    attempt.cached = attempt.cached or bool(res.cached)
    return res


def plain_entry(entry: Any) -> dict:
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
