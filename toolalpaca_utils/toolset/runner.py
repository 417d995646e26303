"""Many entries: :func:`build_toolset` generates them in parallel with a progress bar, appends
every finished entry to ``progress.jsonl`` at once (a crashed or interrupted run resumes where it
stopped) and stops early when several entries in a row could not reach the endpoint (the shared
mechanism of :mod:`toolalpaca_utils.endpoint`: such entries are retried, never recorded)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..endpoint import EndpointPolicy, EndpointUnreachableError, guard_endpoint
from ..parallel import run_parallel, worker_count
from ..runs import append_jsonl, fingerprint, read_jsonl
from .config import GenerationConfig
from .generate import entry_key, entry_seed, generate_tool, plain_entry
from .outcomes import ToolOutcome, ToolsetResult
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
    max_consecutive_endpoint_failures: int | None = None,
    workers: int | None = None,
    endpoint: EndpointPolicy | None = None,
) -> ToolsetResult:
    """Document every entry; resume from ``out_dir/progress.jsonl``.

    ``workers`` entries are generated at once (default: ``client.parallelism``, one per server
    replica); outcomes are recorded in entry order whichever worker finishes first.

    Entries already finished with the same settings (model, config, retries, seed, prompts) are
    read back, not regenerated. An entry whose endpoint failed is retried with back-off and
    otherwise not recorded, so a later run retries it; after ``max_consecutive_endpoint_failures``
    (default: ``endpoint.max_consecutive``, 3) such entries in a row, raises
    :class:`EndpointUnreachableError` (finished work is kept; ``.result`` holds it).
    """
    config = config or GenerationConfig()
    progress_path = Path(out_dir) / PROGRESS_FILE
    append_jsonl(progress_path, [])  # the file exists from the start, as the run's record
    settings = settings_fingerprint(client, config, max_retries, seed)
    done = _reusable_outcomes(progress_path, settings)
    rows = _entry_rows(entries)
    start = time.perf_counter()
    result = ToolsetResult(outcomes=[])
    policy = _policy(client, endpoint, max_consecutive_endpoint_failures, progress_path)
    guarded = guard_endpoint(client)

    def work(entry: dict) -> list[ToolOutcome]:
        key = entry_key(entry)
        if key in done:
            return [done[key]]
        return [generate_tool(guarded, entry, max_retries=max_retries, seed=entry_seed(entry, seed), config=config)]

    keep = _Recorder(result, done, progress_path, settings)
    try:
        run_parallel(rows, work, keep, workers=worker_count(client, workers), ordered=True,
                     desc="toolset", unit="tool", progress=progress, postfix=keep.postfix, endpoint=policy,
                     label=entry_key)
    except EndpointUnreachableError as exc:
        result.stopped_early, exc.result = str(exc), result
        raise
    finally:
        order = {entry_key(row): i for i, row in enumerate(rows)}  # a last round's outcomes come late
        result.outcomes.sort(key=lambda outcome: order.get(outcome.key, len(order)))
        _finish(result, start, client)
    return result


def _policy(client: Any, endpoint: EndpointPolicy | None, max_consecutive: int | None,
            progress_path: Path) -> EndpointPolicy:
    """The endpoint policy of a toolset run (``max_consecutive``, when given, wins)."""
    policy = endpoint or EndpointPolicy()
    if max_consecutive is not None:
        policy = dataclasses.replace(policy, max_consecutive=max_consecutive)
    return policy.for_stage(client, kept=str(progress_path),
                            resume="run build_toolset again with the same out_dir and settings "
                                   "(the 01_toolset notebook, or `python -m toolalpaca_utils.toolset`)")


def _reusable_outcomes(progress_path: Path, settings: str) -> dict[str, ToolOutcome]:
    """Finished outcomes to read back: same settings, and not failed only for want of an endpoint
    (an older run recorded such entries as ``retryable``; now they are not recorded at all)."""
    return {k: o for k, o in read_progress(progress_path).items()
            if o.settings == settings and not o.retryable}


def _entry_rows(entries: pd.DataFrame | Iterable[dict]) -> list[dict]:
    """The entries (a catalogue frame or dicts) as JSON-friendly dicts, in order."""
    return [plain_entry(e) for e in (entries.to_dict("records") if isinstance(entries, pd.DataFrame) else entries)]


class _Recorder:
    """Takes the outcomes in entry order into ``result``: a read-back one counts as resumed, a new
    one is stamped and appended to the progress file at once."""

    def __init__(self, result: ToolsetResult, done: dict[str, ToolOutcome], path: Path, settings: str):
        self.result, self.done, self.path, self.settings = result, done, path, settings

    def __call__(self, outcome: ToolOutcome) -> None:
        self.result.outcomes.append(outcome)
        if self.done.get(outcome.key) is outcome:
            self.result.resumed += 1
        else:
            outcome.settings = self.settings
            append_jsonl(self.path, [outcome.to_json()])

    def postfix(self) -> dict:
        outcomes = self.result.outcomes
        return {"accepted": sum(o.accepted for o in outcomes), "rejected": sum(not o.accepted for o in outcomes)}


def _finish(result: ToolsetResult, start: float, client: Any) -> None:
    """Stamp the run's wall time and the client's LLM statistics on ``result``."""
    result.seconds = time.perf_counter() - start
    stats = getattr(client, "stats", None)
    result.llm_stats = stats.as_dict() if hasattr(stats, "as_dict") else {}
