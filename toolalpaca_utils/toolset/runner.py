"""Many entries: :func:`build_toolset` generates them in parallel with a progress bar, appends
every finished entry to ``progress.jsonl`` at once (a crashed or interrupted run resumes where it
stopped) and stops early when several entries in a row could not reach the endpoint."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..parallel import run_parallel, worker_count
from ..runs import append_jsonl, fingerprint, read_jsonl
from .config import GenerationConfig
from .generate import entry_key, entry_seed, generate_tool, plain_entry
from .outcomes import EndpointUnreachableError, ToolOutcome, ToolsetResult
from .prompts import FUNCTIONS_PROMPT, INTRO_PROMPT, SYSTEM_PROMPT

PROGRESS_FILE = "progress.jsonl"


def settings_fingerprint(client: Any, config: GenerationConfig, max_retries: int, seed: int) -> str:
    """The :func:`~toolalpaca_utils.runs.fingerprint` of everything that decides an entry's outcome
    (model, dialect, config, retries, seed, prompts): finished work is reused only under the same one."""
    who = {"model": getattr(client, "model", type(client).__name__), "dialect": getattr(client, "dialect", None)}
    return fingerprint({"who": who, "config": dataclasses.asdict(config), "max_retries": max_retries,
                        "seed": seed, "prompts": [SYSTEM_PROMPT, INTRO_PROMPT, FUNCTIONS_PROMPT]})


def read_progress(path: str | Path) -> dict[str, ToolOutcome]:
    """Finished outcomes in ``progress.jsonl`` by key (the last line per key wins). A line cut
    off by a crash is ignored."""
    out: dict[str, ToolOutcome] = {}
    for row in read_jsonl(path):
        try:
            o = ToolOutcome.from_json(row)
        except (KeyError, TypeError):
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
    config = config or GenerationConfig()
    progress_path = Path(out_dir) / PROGRESS_FILE
    append_jsonl(progress_path, [])  # the file exists from the start, as the run's record
    settings = settings_fingerprint(client, config, max_retries, seed)
    done = _reusable_outcomes(progress_path, settings)
    rows = _entry_rows(entries)
    start = time.perf_counter()
    result = ToolsetResult(outcomes=[])

    def work(entry: dict) -> list[ToolOutcome]:
        key = entry_key(entry)
        if key in done:
            return [done[key]]
        return [generate_tool(client, entry, max_retries=max_retries, seed=entry_seed(entry, seed), config=config)]

    keep = _Recorder(result, done, progress_path, settings, len(rows), max_consecutive_endpoint_failures)
    try:
        run_parallel(rows, work, keep, workers=worker_count(client, workers), ordered=True,
                     desc="toolset", unit="tool", progress=progress, postfix=keep.postfix)
    finally:
        _finish(result, start, client)
    if result.stopped_early:
        raise EndpointUnreachableError(result.stopped_early + f"; finished work is kept in {progress_path}", result)
    return result


def _reusable_outcomes(progress_path: Path, settings: str) -> dict[str, ToolOutcome]:
    """Finished outcomes to read back: same settings, and not failed only for want of an endpoint."""
    return {k: o for k, o in read_progress(progress_path).items()
            if o.settings == settings and not o.retryable}


def _entry_rows(entries: pd.DataFrame | Iterable[dict]) -> list[dict]:
    """The entries (a catalogue frame or dicts) as JSON-friendly dicts, in order."""
    return [plain_entry(e) for e in (entries.to_dict("records") if isinstance(entries, pd.DataFrame) else entries)]


class _Recorder:
    """Takes the outcomes in entry order into ``result``: a read-back one counts as resumed, a new
    one is stamped and appended to the progress file at once. After ``max_consecutive`` new
    entries in a row that could not reach the endpoint it sets ``result.stopped_early`` and
    answers True (stop)."""

    def __init__(self, result: ToolsetResult, done: dict[str, ToolOutcome], path: Path, settings: str,
                 n_entries: int, max_consecutive: int):
        self.result, self.done, self.path, self.settings = result, done, path, settings
        self.n_entries, self.max_consecutive = n_entries, max_consecutive
        self.consecutive = 0

    def __call__(self, outcome: ToolOutcome) -> bool:
        outcomes = self.result.outcomes
        outcomes.append(outcome)
        if self.done.get(outcome.key) is outcome:
            self.result.resumed += 1
        else:
            outcome.settings = self.settings
            append_jsonl(self.path, [outcome.to_json()])
            self.consecutive = self.consecutive + 1 if outcome.retryable else 0
        if self.consecutive < self.max_consecutive:
            return False
        last = outcomes[-1].failures[-1].reason if outcomes[-1].failures else "unknown"
        self.result.stopped_early = (
            f"stopped after {self.consecutive} consecutive entries could not reach the LLM endpoint "
            f"({len(outcomes)} of {self.n_entries} entries seen); last error: {last}"
        )
        return True

    def postfix(self) -> dict:
        outcomes = self.result.outcomes
        return {"accepted": sum(o.accepted for o in outcomes), "rejected": sum(not o.accepted for o in outcomes)}


def _finish(result: ToolsetResult, start: float, client: Any) -> None:
    """Stamp the run's wall time and the client's LLM statistics on ``result``."""
    result.seconds = time.perf_counter() - start
    stats = getattr(client, "stats", None)
    result.llm_stats = stats.as_dict() if hasattr(stats, "as_dict") else {}
